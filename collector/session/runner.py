"""The session runner: walks a plan's cells, records takes, keeps the catalogue and coverage current.

One runner = one station working one plan on one dataset folder. Opening it:
  1. takes the station lock (one session per station and dataset at a time),
  2. settles this station's takes that a previous process left 'recording' (recover or mark them),
  3. resumes the station's unfinished session of this plan, or starts a new one,
  4. registers the station in the catalogue and starts its heartbeat thread (collector/fleet/stations.py),
     and lays the plan out as cell slots to claim (collector/fleet/claims.py).
Then each take is: claim the next cell (the one the plan's order prefers among those no other station
holds) -> apply its condition (the driver resets the sim with the lighting and weight presets, or the
operator is told what to set up on hardware) -> record with the live tap in front of the recorder ->
finalize, QA, update the catalogue and coverage -> finish the claim with the take's outcome.
Claims are what keep several stations on one plan and one catalogue from recording the same cells; a
single station claims its own choice each time, so it behaves exactly as without them.

The runner does no input/robot work itself: a `TakeDriver` (collector.session.drivers) owns the
backend, the operator input and the teleop loop, so the same runner serves the sim demo, hardware
sessions and the dashboard.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import os
import socket
import threading
import time
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Dict, List, Optional

from collector.errors import ConfigError, DataError
from collector.fleet.claims import DEFAULT_LEASE_S, CellClaims, Claim
from collector.fleet.station_status import station_state
from collector.fleet.stations import Heartbeat, StationRegistry
from collector.interrupts import deferred, signal_behind, signal_name_of
from collector.session.catalog import Catalog, EpisodeRow
from collector.session.cells import Cell, focus_note, next_cell, plan_cells
from collector.session.coverage import Coverage, is_good
from collector.session.layout import DatasetLayout, StationLock, station_slug
from collector.session.lifecycle import EpisodeLifecycle, restore_hint
from collector.session.live import LiveState, LiveTap, dashboard_joint_groups
from collector.session.plan import Plan
from collector.session.policy_records import PolicySuccess, policy_success

log = logging.getLogger(__name__)

# Cells ranked exactly by the plan's order for a claim; the rest follow in the plan's sequential order
# (a station only goes that deep when that many other stations hold the cells it prefers).
RANKED_CELLS = 8
HEARTBEAT_MAX_S = 10.0


@dataclass
class TakeResult:
    """What a driver reports after a take: success is None when only the operator can judge it."""

    success: Optional[bool]
    duration_s: float
    stopped_by: str = "time_limit"  # success | time_limit | operator | input_lost
    metrics: Dict = field(default_factory=dict)
    episode_metadata: Dict = field(default_factory=dict)  # written into the episode file at stop (handovers)


class TakeDriver(ABC):
    """Interface between the session and the robot side (see collector.session.drivers).

    A driver must say which streams it records, set a cell's condition up, and run a take; showing a
    preview, adding metadata and closing are optional."""

    kind = "abstract"
    camera_streams: tuple = ()
    joint_stream: Optional[str] = None
    joint_names: Optional[List[str]] = None
    robot = None  # the RobotSpec the driver loaded, if it loads one (the dashboard's joint groups reuse it)

    @abstractmethod
    def streams(self) -> list:
        """The StreamSpecs every take of this driver records."""

    @abstractmethod
    def prepare(self, cell: Cell, seed: int) -> Dict:
        """Put the scene in the cell's condition and reset it; returns the conditions as applied."""

    @abstractmethod
    def run(self, sink, time_limit_s: float, stop: threading.Event) -> TakeResult:
        """Record one take into `sink` until it ends, `time_limit_s` passes or `stop` is set."""

    def preview(self, live: LiveState) -> None:
        """Show the current scene on the dashboard between takes (optional)."""

    def recording_metadata(self) -> Dict:
        """Episode metadata from the robot side (the joint limits QA checks against)."""
        return {}

    def close(self) -> None:
        pass


def take_seed(plan_seed: int, take: int) -> int:
    """The scene seed of a plan's take number `take` (1, 2, ...); evaluation's held-out seeds start above those
    of every plan seed below 1000 (collector.policy.evaluate.DEFAULT_SEED_BASE)."""
    return plan_seed * 1_000_003 + take


def default_station() -> str:
    return socket.gethostname() or "station"


class SessionRunner:
    def __init__(self, plan: Plan, dataset: Path, driver: TakeDriver, *, station: Optional[str] = None,
                 operator: str = "operator", live: Optional[LiveState] = None, lease_s: Optional[float] = None):
        if lease_s is not None and not (math.isfinite(lease_s) and lease_s > 0):
            raise ConfigError(f"claim lease: must be a number of seconds above 0, got {lease_s}")
        self.plan = plan
        self.layout = DatasetLayout(dataset)
        self.driver = driver
        self.station = station or default_station()
        self.operator = operator
        self.live = live or LiveState()
        self.catalog: Optional[Catalog] = None
        self.lifecycle: Optional[EpisodeLifecycle] = None
        self.session_id: Optional[str] = None
        self.resumed = False
        self.recovered: List[EpisodeRow] = []
        self._lock: Optional[StationLock] = None
        self._prepared: Optional[tuple] = None  # (cell, conditions) the scene is currently set up for
        self.forced_cell: Optional[Cell] = None  # re-record: the next take repeats this cell
        self.policy = PolicySuccess()  # the latest policy evaluation per cell, read once at open
        self.display = None  # --display: a LiveDisplay each take is also streamed to (collector/review/live_display.py)
        self.publisher = None  # the plan's `publish:` copies kept takes to shared storage (collector/fleet)
        # The fleet (collector/fleet): the cell this station holds, and what its heartbeat says it does.
        self.lease_s = float(lease_s or DEFAULT_LEASE_S)
        self.claims: Optional[CellClaims] = None
        self.claim: Optional[Claim] = None
        self._verdict_pending: Optional[int] = None  # the episode under `claim` awaiting the operator's verdict
        self._heartbeat: Optional[Heartbeat] = None
        self._activity = {"activity": "idle", "take": "", "cell": {}}

    # -- opening and closing ---------------------------------------------------------------------
    def open(self) -> "SessionRunner":
        self.layout.ensure()
        self._lock = StationLock(self.layout, self.station).acquire()
        try:
            self.catalog = Catalog(self.layout.catalog_path)
            self.session_id, self.resumed = self._session_to_use()
            self.lifecycle = EpisodeLifecycle(self.layout, self.catalog, self.plan, session_id=self.session_id,
                                              station=self.station, operator=self.operator)
            self.recovered = self.lifecycle.recover_interrupted()
            self.policy = policy_success(self.layout.root, [task.name for task in self.plan.tasks])
            self.catalog.open_session(session_id=self.session_id, plan=self.plan.name,
                                      plan_fingerprint=self.plan.fingerprint, station=self.station,
                                      operator=self.operator, host=socket.gethostname(), pid=os.getpid())
            snapshot = self.layout.sessions_dir / f"{self.session_id}.yaml"
            if not snapshot.exists():
                snapshot.write_text(self.plan.text, encoding="utf-8")
            self._start_publisher()
            self._join_fleet()
        except BaseException:
            if self._heartbeat is not None:
                self._heartbeat.stop()
            self._lock.release()
            raise
        coverage = self.coverage()
        note = focus_note(self.plan, coverage)
        if note:  # a focus with nothing to focus on is worth a line even above the progress bar
            (log.info if self.policy else log.warning)(note)
        self.live.update(plan=self.plan.name, session_id=self.session_id, station=self.station,
                         operator=self.operator, backend=self.plan.backend, coverage=coverage.as_dict(),
                         totals=self.totals(), last_episode=self._last_row_dict(),
                         joint_groups=dashboard_joint_groups(self.driver.robot or self.plan.robot))
        return self

    def _session_to_use(self):
        """Resume this station's unfinished session of the same plan, else start a new one."""
        for session in reversed(self.catalog.sessions(plan=self.plan.name, station=self.station)):
            if session["state"] != "finished":
                if session["plan_fingerprint"] != self.plan.fingerprint:
                    log.warning("plan %s changed since session %s started; resuming with the new plan",
                                self.plan.name, session["session_id"])
                return session["session_id"], True
            break
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        return f"{self.plan.name}-{station_slug(self.station)}-{stamp}", False

    def _join_fleet(self) -> None:
        """Register the station, lay the plan out as cell slots and account this station's takes in them,
        then start the heartbeat. The station lock is held: slots this station still holds belong to a
        process that is gone (its takes were just settled), so they are released first."""
        from collector import __version__

        registry = StationRegistry(self.catalog)
        registry.register(self.station, robot=self.plan.robot, cameras=list(self.driver.camera_streams),
                          version=__version__, host=socket.gethostname())
        self.claims = CellClaims(self.catalog, self.plan.name, lease_s=self.lease_s)
        coverage = self.coverage()  # no station completes slots before they exist: no ordering to keep here
        self.claims.need([(tuple(cell), coverage.needed_for(cell)) for cell in plan_cells(self.plan)],
                         done=self._good_takes_by_cell)
        self.claims.release(self.station)
        self._reconcile_plan()
        self._heartbeat = Heartbeat(registry, self.station, self.station_state, self.claims,
                                    interval_s=min(self.lease_s / 3.0, HEARTBEAT_MAX_S)).start()

    def _good_takes_by_cell(self) -> Dict[tuple, List[str]]:
        """The plan's good takes per cell, oldest first (read when the plan is first laid out as slots)."""
        verdict = "accepted" if self.plan.count == "accepted" else None
        good: Dict[tuple, List[str]] = {}
        for row in self.catalog.episodes(plan=self.plan.name, status=["kept", "recovered"], outcome="success",
                                         qa="pass", verdict=verdict):
            good.setdefault((row.task, row.lighting, row.weight), []).append(row.episode_id)
        return good

    def station_state(self) -> Dict:
        """The heartbeat's state (collector/fleet/station_status.py)."""
        publisher = getattr(self.publisher, "publisher", None)
        return station_state(**self._activity, plan=self.plan.name, operator=self.operator, dataset=self.layout.root,
                             publish_to=getattr(publisher, "destination", None))

    def _set_activity(self, activity: str, take: str = "") -> None:
        cell = self.claim.cell if self.claim is not None else None
        self._activity = {"activity": activity, "take": take,
                          "cell": dict(zip(("task", "lighting", "weight"), cell)) if cell else {}}
        if self._heartbeat is not None:
            self._heartbeat.beat_now()

    def close(self, state: Optional[str] = None) -> None:
        with deferred():  # a SIGTERM now must not leave the session 'running'
            if self.catalog is not None and self.session_id is not None:
                final = state or ("finished" if not self.open_cells() else "stopped")
                self.catalog.close_session(self.session_id, final)
            try:
                self._leave_fleet()
                if self.publisher is not None:
                    self.publisher.stop()  # a file mid-upload stays queued and is published on the next start
                if self.display is not None:
                    self.display.close()
                self.driver.close()
            finally:
                if self._lock is not None:
                    self._lock.release()
                    self._lock = None

    def _leave_fleet(self) -> None:
        if self.claims is not None:
            try:
                self.claims.release(self.station)
            except DataError as exc:  # the catalogue is away: the lease runs out by itself
                log.warning("could not release the cells station %s holds (%s); they pass on when the lease ends",
                            self.station, exc)
            self.claim = None
        if self._heartbeat is not None:
            self._activity = {"activity": "stopped", "take": "", "cell": {}}
            self._heartbeat.stop()
            self._heartbeat = None

    def __enter__(self):
        return self.open()

    def __exit__(self, exc_type, exc, tb):
        self.close("interrupted" if exc_type is not None else None)

    # -- progress ----------------------------------------------------------------------------------
    def plan_rows(self) -> List[EpisodeRow]:
        return self.catalog.episodes(plan=self.plan.name)

    def coverage(self) -> Coverage:
        """One GROUP BY on the catalogue (Catalog.coverage), never the plan's rows: a take reads it
        several times, and a fleet's plan may hold hundreds of thousands of rows."""
        return self.catalog.coverage(self.plan, self.policy)

    def open_cells(self) -> List[Cell]:
        coverage = self.coverage()
        return [cell for cell in plan_cells(self.plan) if coverage.is_open(cell)]

    def totals(self) -> Dict[str, int]:
        return self.catalog.totals(self.plan.name)

    def next_cell(self) -> Optional[Cell]:
        """The cell of the next take, claimed for this station: the cell it holds if that is still open,
        else the first of the plan's preferred open cells that no other station holds. None when no open
        cell is free (the plan is done, or other stations hold what is left: see `wait_for_cell`)."""
        if self.claims is None:  # not opened (nothing to claim in)
            if self.forced_cell is not None:
                return self.forced_cell
            return next_cell(self.plan, self.coverage())
        self._settle_pending_verdict()
        coverage = self._reconcile_plan()
        if self.forced_cell is not None:  # re-record: the operator asked for this cell again
            self._claim_for(self.forced_cell)
            return self.forced_cell
        preferred = ranked_cells(self.plan, coverage)
        if self.claim is not None:
            if Cell(*self.claim.cell) in preferred:
                return Cell(*self.claim.cell)
            self.claims.release(self.station, self.claim)  # done meanwhile (e.g. a take marked good later)
            self.claim = None
        if not preferred:
            return None
        self.claim = self.claims.claim(self.station, preferred)
        self._set_activity("idle")
        return Cell(*self.claim.cell) if self.claim is not None else None

    def cells_held_by_others(self) -> Dict[Cell, List[str]]:
        """The plan's open cells other stations hold right now, and who holds them (why `next_cell` may
        find nothing while the plan is not complete)."""
        if self.claims is None:
            return {}
        open_cells = set(self.open_cells())
        held = {Cell(*cell): [s for s in holders if s != self.station] for cell, holders in self.claims.held().items()}
        return {cell: holders for cell, holders in held.items() if holders and cell in open_cells}

    def wait_for_cell(self, stop: threading.Event, poll_s: Optional[float] = None) -> Optional[Cell]:
        """`next_cell`, waiting while other stations hold every open cell (a failed take of theirs frees
        its cell, a dead station's lease runs out). None when the plan has no open cell left, or on stop."""
        poll_s = poll_s if poll_s is not None else min(1.0, self.lease_s / 4.0)
        while not stop.is_set():
            cell = self.next_cell()
            if cell is not None or not self.open_cells():
                return cell
            self.live.update(phase="ready", message="waiting: other stations hold every open cell", controls=[])
            stop.wait(poll_s)
        return None

    def _reconcile_plan(self) -> Coverage:
        """Slots follow the catalogue, checked per cell by counting: a cell whose done slots are not its
        good takes (capped at its slots) has a slot whose take is no longer good, or a good take without a
        slot; only that cell's rows are read and reconciled (`_reconcile`). Returns the plan's coverage,
        read after the slots (CellClaims.reconcile says why)."""
        slots = self.claims.slot_counts()
        coverage = self.coverage()
        for cell, (count, done) in slots.items():
            if done != min(coverage.good(Cell(*cell)), count):
                task, lighting, weight = cell
                self._reconcile(lambda: self.catalog.episodes(plan=self.plan.name, task=task, lighting=lighting,
                                                              weight=weight), cell=cell)
        return coverage

    def _reconcile(self, rows: Callable[[], List[EpisodeRow]], cell: Optional[tuple] = None) -> None:
        """Slots follow the catalogue: takes no longer good free theirs, this station's good takes without
        one (recovered after a crash, judged good later) complete a free one or are extra takes. `rows`
        reads the takes to look at (one take, or one cell's: `cell`)."""
        _, done = self.claims.reconcile(rows, self.station, lambda row: is_good(row, self.plan.count), cell=cell)
        if done.reopened:
            log.info("cells open again: %s no longer good take(s)", ", ".join(done.reopened))
        if done.extra:
            log.warning("%s: good take(s) beyond the cell's need (other stations completed it); kept as extra takes",
                        ", ".join(done.extra))

    def _claim_for(self, cell: Cell) -> None:
        """A take of `cell` is wanted (re-recorded, or recorded directly): hold a claim on it if a slot is
        free; if none is, the take is an extra take."""
        if self.claims is None or (self.claim is not None and Cell(*self.claim.cell) == cell):
            return
        if self.claim is not None:
            self.claims.release(self.station, self.claim)
        self.claim = self.claims.claim(self.station, [cell])
        self._set_activity("idle")
        if self.claim is None:
            log.info("%s: no free slot (done, or held by other stations): recording an extra take", cell.label())

    def _settle_claim(self, row: EpisodeRow, verdict_may_follow: bool = False) -> None:
        """Finish the claim with the take's outcome: a good take completes the slot, others free it. A
        take whose outcome only the operator can give keeps the claim until the verdict (mark/discard)."""
        if self.claim is None:
            if self.claims is not None:
                self._reconcile(lambda: [row])
            return
        if verdict_may_follow and row.status in ("kept", "recovered") and row.outcome == "unknown" \
                and self.plan.outcome == "operator":
            self._verdict_pending = row.episode_index
            return
        good = is_good(row, self.plan.count)
        if not self.claims.finish(self.claim, good, row.episode_id) and good:
            self._reconcile(lambda: [row])  # the lease ran out meanwhile: complete a free slot, or it is an extra take
        self.claim, self._verdict_pending = None, None
        self._set_activity("idle")

    def _settle_pending_verdict(self, row: Optional[EpisodeRow] = None) -> bool:
        """The take awaiting a verdict got one (or the operator moved on without): finish its claim."""
        if self._verdict_pending is None or (row is not None and row.episode_index != self._verdict_pending):
            return False
        self._settle_claim(row or self.catalog.episode(self._verdict_pending))
        return True

    # -- one take ----------------------------------------------------------------------------------
    def prepare(self, cell: Cell) -> Dict:
        """Set the scene up for `cell` (sim: reset with its presets; hardware: tell the operator)."""
        seed = take_seed(self.plan.seed, self.coverage().total_attempts() + 1)
        self._set_activity("resetting")
        conditions = self.driver.prepare(cell, seed)
        self._set_activity("idle")
        self._prepared = (cell, conditions)
        spec = self.plan.task(cell.task)
        self.live.update(cell=cell._asdict(), instruction=spec.instruction_for(conditions), condition=conditions,
                         setup_note=self.setup_note(cell), episode=None)
        self.driver.preview(self.live)
        return conditions

    def is_prepared(self, cell: Cell) -> bool:
        return self._prepared is not None and self._prepared[0] == cell

    def setup_note(self, cell: Cell) -> str:
        manual = ", then reset the scene by hand" if self.plan.reset.mode == "manual" else ""
        if self.plan.backend == "sim":
            return "conditions applied automatically in simulation" + manual
        return f"Set up lighting '{cell.lighting}' and weight '{cell.weight}' before starting{manual}"

    def record(self, cell: Cell, stop: Optional[threading.Event] = None,
               ask_outcome: Optional[Callable[[EpisodeRow], Optional[str]]] = None) -> EpisodeRow:
        """Record one take of `cell` and return its catalogue row (kept, with QA)."""
        stop = stop or threading.Event()
        self._claim_for(cell)
        if self._prepared is None or self._prepared[0] != cell:
            self.prepare(cell)
        conditions = self._prepared[1]
        self._prepared = None  # the scene is used up: the next take prepares again
        if self.plan.reset.settle_s > 0:
            # Let a reset scene (or a robot that just moved home) come to rest before recording.
            self._set_activity("resetting")
            time.sleep(self.plan.reset.settle_s)
        take = None
        try:
            with deferred():  # a signal while the take starts is acted on once it can be finalized
                take = self.lifecycle.begin(cell, self.driver.streams(), conditions,
                                            self.driver.recording_metadata())
            time_limit = self.plan.time_limit_for(cell.task)
            self._set_activity("recording", take.row.episode_id)
            self.live.start_timer()
            self.live.update(phase="recording", episode={"episode_id": take.row.episode_id,
                                                         "time_limit_s": time_limit},
                             message=f"recording {take.row.episode_id}", controls=["stop", "discard"])
            sink = take.writer if self.display is None else \
                self.display.take(take.row.episode_id, self.driver.streams(), take.writer)
            tap = LiveTap(self.live, sink, self.driver.camera_streams, self.driver.joint_stream,
                          self.driver.joint_names)
            result = self.driver.run(tap, time_limit, stop)
        except BaseException as exc:
            self.live.stop_timer()
            signalled = signal_behind(exc)
            if signalled is not None:
                # Ctrl-C, SIGTERM or SIGHUP mid-take: finalize what was recorded so it is a valid
                # episode, then stop the session.
                if take is not None:
                    name = signal_name_of(signalled)
                    self.lifecycle.finish(take, "unknown", interrupted_by=name,
                                          note=f"interrupted by {'Ctrl-C' if name == 'SIGINT' else name}")
                if signalled is exc:
                    raise
                raise signalled from exc
            if take is None or not isinstance(exc, Exception):  # the recorder did not start; the row says why
                raise
            row = self.lifecycle.abort(take, f"{type(exc).__name__}: {exc}")
            self._after_take(row)
            raise
        with deferred():  # from here the take is finalized even if a SIGTERM arrives
            self.live.stop_timer()
            self.live.update(phase="finalizing", controls=[])
            if self.plan.outcome == "auto" and result.success is not None:
                outcome = "success" if result.success else "failure"
            else:
                outcome = "unknown"
            row = self.lifecycle.finish(take, outcome, duration_s=result.duration_s,
                                        note=f"stopped by {result.stopped_by}", metadata=result.episode_metadata)
            if row.interrupted_by == "disk_full":
                # Nothing more fits: stop the session with what to do about this take.
                self._after_take(row)
                raise DataError(restore_hint(row, self.layout.root))
        self._set_activity("idle")
        self.forced_cell = None
        if outcome == "unknown" and ask_outcome is not None:
            verdict = ask_outcome(row)
            if verdict in ("success", "failure"):
                row = self.lifecycle.mark(row.episode_index, verdict)
        self._settle_claim(row, verdict_may_follow=ask_outcome is None)
        self._after_take(row)
        return row

    def _start_publisher(self) -> None:
        if self.plan.publish is not None:
            from collector.fleet.publisher import BackgroundPublisher

            self.publisher = BackgroundPublisher(self.layout.root, self.plan.publish.to,
                                                 keep_local=self.plan.publish.keep_local).start()

    def _after_take(self, row: EpisodeRow) -> None:
        if self.publisher is not None:
            self.publisher.notify()
        self.live.update(last_episode=_row_summary(row), coverage=self.coverage().as_dict(), totals=self.totals(),
                         episode=None)

    # -- operator actions on the last take ------------------------------------------------------------
    def set_operator(self, name: str) -> None:
        """The person who starts the next take is its operator (and the operator of the takes after it)."""
        self.operator = name
        if self.lifecycle is not None:
            self.lifecycle.operator = name
        self.live.update(operator=name)

    def last_row(self) -> Optional[EpisodeRow]:
        return self.catalog.last_episode(self.session_id) if self.catalog else None

    def _last_row_dict(self):
        row = self.last_row()
        return _row_summary(row) if row else None

    def discard_last(self, reason: str = "discarded by the operator") -> EpisodeRow:
        row = self._require_last()
        row = self.lifecycle.discard(row.episode_index, reason)
        self._account_changed(row)
        self._after_take(row)
        return row

    def mark_last(self, outcome: str) -> EpisodeRow:
        row = self.lifecycle.mark(self._require_last().episode_index, outcome)
        self._account_changed(row)
        self._after_take(row)
        return row

    def _account_changed(self, row: EpisodeRow) -> None:
        """The operator judged or discarded a take after it ended: its claim, or its slot, follows."""
        if self.claims is not None and not self._settle_pending_verdict(row):
            self._reconcile(lambda: [row])

    def rerecord_last(self) -> EpisodeRow:
        """Discard the last take and make the next take repeat its cell."""
        row = self._require_last()
        if row.status not in ("discarded", "purged"):
            row = self.discard_last("discarded to re-record")
        self.forced_cell = Cell(row.task, row.lighting, row.weight)
        return row

    def _require_last(self) -> EpisodeRow:
        row = self.last_row()
        if row is None:
            raise DataError("no take recorded in this session yet")
        return row

    # -- the whole plan, unattended --------------------------------------------------------------------
    def run_plan(self, *, max_takes: Optional[int] = None, on_take: Optional[Callable[[EpisodeRow], None]] = None,
                 ask_outcome=None, confirm_setup: Optional[Callable[[Cell, str], None]] = None,
                 stop: Optional[threading.Event] = None) -> List[EpisodeRow]:
        """Record takes until the plan is covered (or `max_takes` / `stop`). Returns the rows recorded."""
        recorded: List[EpisodeRow] = []
        stop = stop or threading.Event()
        while not stop.is_set() and (max_takes is None or len(recorded) < max_takes):
            cell = self.wait_for_cell(stop)
            if cell is None:
                break
            self.live.update(phase="ready", message=f"next: {cell.label()}", controls=[])
            self.prepare(cell)
            if confirm_setup is not None:
                confirm_setup(cell, self.setup_note(cell))
            row = self.record(cell, stop=None, ask_outcome=ask_outcome)
            recorded.append(row)
            if on_take is not None:
                on_take(row)
        self.live.update(phase="done" if not self.open_cells() else "ready",
                         message="plan complete" if not self.open_cells() else "paused")
        return recorded


def ranked_cells(plan: Plan, coverage: Coverage, depth: int = RANKED_CELLS) -> List[Cell]:
    """The open cells, best first as the plan's order and focus rank them (collector.session.cells): the
    plan's next cell, then its next cell were that one taken, and so on for `depth` cells; the rest
    in sequential order. A station claims the first of them no other station holds."""
    ranked: List[Cell] = []
    taken = Counter(coverage.good_counts)
    while len(ranked) < depth:
        cell = next_cell(plan, dataclasses.replace(coverage, good_counts=taken))
        if cell is None:
            break
        ranked.append(cell)
        taken[cell] = coverage.needed_for(cell)  # as if done: the next call picks among the others
    return ranked + [cell for cell in plan_cells(plan) if coverage.is_open(cell) and cell not in ranked]


def _row_summary(row: EpisodeRow) -> Dict:
    return {key: getattr(row, key) for key in ("episode_index", "episode_id", "task", "lighting", "weight", "status",
                                               "outcome", "qa", "qa_problems", "duration_s", "path", "note")}
