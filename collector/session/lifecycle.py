"""The life of one take: start, stop, QA, discard, mark success/failure, recover after an interruption.

Every take gets its dataset-wide number from the catalogue *before* recording starts, so a take that
is interrupted (Ctrl-C, crash, power loss) still has a catalogue row ('recording') that says which
number and which partial file to look at on resume. The catalogue row and the file move together:
  begin    -> row 'recording', the recorder writes episodes/<id> (partial name until stopped)
  finish   -> file finalized, QA run on it, row 'kept' with outcome, QA result, duration, path
  discard  -> file moved to discarded/ (never deleted here), row 'discarded'
  mark     -> outcome written into the file's root attribute and the row
  recover  -> a 'recording' row of this station whose process is gone: the recorder turns the partial
              file into a valid episode ('recovered'), or the row says why nothing could be ('interrupted')
A take that did not run to its end records why in `interrupted_by` (signal name, 'crash', 'disk_full'):
it is not an operator's attempt at the cell (see coverage.py). A partial file that could not be
recovered (e.g. no room on the disk) is kept in discarded/ and `restore` recovers it later.
Finalizing and settling a take run under `interrupts.deferred()`: a SIGTERM arriving meanwhile waits
until the file and its row agree (the runner also starts takes under it, so that a signal during the
start is acted on once the take can be finalized).
"""
from __future__ import annotations

import errno
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from collector.errors import CollectorError, DataError
from collector.interrupts import deferred
from collector.session.catalog import Catalog, EpisodeRow, utc_now
from collector.session.cells import Cell
from collector.session.layout import DatasetLayout
from collector.session.plan import Plan

log = logging.getLogger(__name__)


@dataclass
class Take:
    row: EpisodeRow
    writer: object  # collector.recorder.EpisodeWriter
    started: float  # monotonic


class EpisodeLifecycle:
    def __init__(self, layout: DatasetLayout, catalog: Catalog, plan: Plan, *, session_id: str, station: str,
                 operator: str):
        self.layout = layout
        self.catalog = catalog
        self.plan = plan
        self.session_id = session_id
        self.station = station
        self.operator = operator
        # A robot with hands under VR hand tracking: the operator's hand calibration goes to each take's
        # retargeter and into its metadata (collector/session/hand_calibration.py HandCalibrationStep).
        self.hand_calibration = None

    # -- recording -----------------------------------------------------------------------------
    def begin(self, cell: Cell, streams: Sequence, conditions: Dict, extra_metadata: Optional[Dict] = None) -> Take:
        from collector.recorder import EpisodeWriter
        from collector.recorder.vocabulary import aligned_hand_streams

        instruction = self.plan.task(cell.task).instruction_for(conditions)
        row = self.catalog.allocate_episode(
            session_id=self.session_id, plan=self.plan.name, task=cell.task, lighting=cell.lighting,
            weight=cell.weight, instruction=instruction, operator=self.operator, station=self.station,
            robot=self.plan.robot, backend=self.plan.backend, conditions=conditions)
        metadata = {
            "session_id": self.session_id, "robot": self.plan.robot, "task": cell.task,
            "instruction": instruction, "operator": self.operator, "station": self.station,
            "conditions": dict(conditions), "sim": self.plan.backend == "sim",
            "plan": self.plan.name, "lighting_preset": cell.lighting, "weight_preset": cell.weight,
            **(extra_metadata or {}),
            **(self.hand_calibration.before_take() if self.hand_calibration is not None else {}),
        }
        try:
            writer = EpisodeWriter(self.layout.episodes_dir, episode_id=row.episode_id, streams=list(streams),
                                   metadata=metadata, aligned_streams=aligned_hand_streams(streams))
            writer.start()
        except Exception as exc:
            # The number stays accounted for: the row says the take never started and why.
            self.catalog.update_episode(row.episode_index, status="interrupted", finished_at=utc_now(),
                                        note=f"recorder failed to start: {exc}",
                                        interrupted_by="disk_full" if _is_disk_full(exc) else "")
            raise
        return Take(row, writer, time.monotonic())

    def finish(self, take: Take, outcome: str, duration_s: Optional[float] = None, note: str = "",
               interrupted_by: str = "", metadata: Optional[Dict] = None) -> EpisodeRow:
        """Stop the recorder, run QA on the finished file and record the result.

        `interrupted_by` names the signal that cut the take short ('' when it ran to its end)."""
        with deferred():
            try:
                # The file records why the take ended early too, so `catalog rebuild` can say so again.
                updates = {**(metadata or {}), **({"interrupted_by": interrupted_by} if interrupted_by else {})}
                path = Path(take.writer.stop(outcome=outcome, metadata_updates=updates))
            except Exception as exc:
                return self._settle_failed_stop(take, outcome, exc, note)
            if interrupted_by and not holds_samples(path):
                # Stopped before a single sample arrived: there is no take to keep, only an empty file.
                path.unlink()
                return self.catalog.update_episode(
                    take.row.episode_index, status="interrupted", finished_at=utc_now(), interrupted_by=interrupted_by,
                    note=_join(note, "nothing was recorded before the interruption (empty file removed)"))
            duration = duration_s if duration_s is not None else time.monotonic() - take.started
            problems = self.qa(path)
            return self.catalog.update_episode(
                take.row.episode_index, status="kept", outcome=outcome, qa="pass" if not problems else "fail",
                qa_problems=problems, duration_s=float(duration), path=self.layout.relative(path),
                finished_at=utc_now(), note=note, interrupted_by=interrupted_by)

    def _settle_failed_stop(self, take: Take, outcome: str, exc: Exception, note: str) -> EpisodeRow:
        """The recorder could not finish the file (e.g. the disk filled up): recover the partial file.

        If recording stopped itself mid-take, the file holds only the first part of the take, so the
        task's outcome is not claimed for it; if only finalizing failed, the file already records the
        outcome (the writer stores it before the aligned view) and recovery keeps it."""
        cut_short = take.writer.error is not None
        log.error("episode %s: recorder failed at stop (%s); recovering the partial file", take.row.episode_id, exc)
        what = f"recording cut short ({exc}); the task reported {outcome}" if cut_short \
            else f"recorder failed at stop: {exc}"
        interrupted_by = "disk_full" if _is_disk_full(exc) else ""
        row = self.catalog.update_episode(take.row.episode_index, note=_join(note, what),
                                          interrupted_by=interrupted_by)
        return self._recover(row)

    def abort(self, take: Take, reason: str) -> EpisodeRow:
        """The take failed part-way (device lost, backend error): keep what was recorded, marked 'unknown'."""
        try:
            return self.finish(take, "unknown", note=f"aborted: {reason}")
        except Exception as exc:  # the recorder itself failed: the partial file is left for recovery
            log.error("episode %s: could not finalize after abort: %s", take.row.episode_id, exc)
            return self.catalog.update_episode(take.row.episode_index, status="interrupted", finished_at=utc_now(),
                                               note=f"aborted: {reason}; finalize failed: {exc}")

    @staticmethod
    def qa(path: Path) -> List[str]:
        from collector.recorder import validate_episode

        try:
            return [str(p) for p in validate_episode(path)]
        except CollectorError as exc:
            return [f"validation could not run: {exc}"]

    # -- after the take --------------------------------------------------------------------------
    def discard(self, episode_index: int, reason: str = "discarded by the operator") -> EpisodeRow:
        row = self.catalog.episode(episode_index)
        if row.status in ("discarded", "purged"):
            raise DataError(f"{row.episode_id} is already discarded")
        if row.status == "recording":
            raise DataError(f"{row.episode_id} is still recording; stop it first")
        path = None
        if row.path and self.layout.absolute(row.path).exists():
            path = self.layout.relative(self.layout.move_to_discard(self.layout.absolute(row.path)))
        return self.catalog.update_episode(episode_index, status="discarded", path=path,
                                           note=_join(row.note, reason))

    def restore(self, episode_index: int) -> EpisodeRow:
        """Undo a discard (the file comes back from discarded/), or recover an interrupted take whose
        partial file was kept aside because it could not be recovered then (e.g. the disk was full)."""
        row = self.catalog.episode(episode_index)
        if row.status == "interrupted" and row.path:
            return self._restore_interrupted(row)
        if row.status != "discarded" or not row.path:
            raise DataError(f"{row.episode_id} is not a discarded take with a file (status {row.status})")
        path = self.layout.move_to_episodes(self.layout.absolute(row.path))
        return self.catalog.update_episode(episode_index, status="kept", path=self.layout.relative(path),
                                           note=_join(row.note, "restored"))

    def _restore_interrupted(self, row: EpisodeRow) -> EpisodeRow:
        from collector.recorder import recover_episode
        from collector.recorder.schema import PARTIAL_SUFFIX

        path = self.layout.absolute(row.path)
        if not path.is_file():
            raise DataError(f"{row.episode_id}: its file {path} is gone; nothing to restore")
        with deferred():
            if path.name.endswith(PARTIAL_SUFFIX):
                try:
                    path = Path(recover_episode(path))  # finished beside the partial, in discarded/
                except CollectorError as exc:
                    hint = "free some space and run this again" if _is_disk_full(exc) else \
                        "the file may be damaged beyond recovery"
                    raise DataError(f"{row.episode_id}: cannot recover {path} yet ({exc}); {hint}") from None
                # The row follows the file at each step, so a failed move below leaves them agreeing.
                row = self.catalog.update_episode(row.episode_index, path=self.layout.relative(path))
            restored = self.layout.move_to_episodes(path)
            return self._settle_recovered(row, restored, "restored and recovered by `catalog restore`")

    def mark(self, episode_index: int, outcome: str) -> EpisodeRow:
        """Set success/failure (the operator's verdict on hardware, or a correction later)."""
        row = self.catalog.episode(episode_index)
        if row.status not in ("kept", "recovered"):
            raise DataError(f"{row.episode_id} is {row.status}; only kept takes can be marked")
        set_file_outcome(self.layout.absolute(row.path), outcome)
        return self.catalog.update_episode(episode_index, outcome=outcome)

    # -- resume ------------------------------------------------------------------------------------
    def recover_interrupted(self) -> List[EpisodeRow]:
        """Settle this station's takes left 'recording' by a process that is gone (caller holds the station lock)."""
        settled = []
        for row in self.catalog.episodes(station=self.station, status="recording"):
            with deferred():
                settled.append(self._recover(row))
        return settled

    def _recover(self, row: EpisodeRow) -> EpisodeRow:
        """Settle a take whose recorder did not finish: keep whatever reached the disk, say why in the row."""
        from collector.recorder import recover_episode

        interrupted_by = row.interrupted_by or "crash"
        partial = self._partial_path(row.episode_id)
        finished = self._final_path(row.episode_id)
        if finished is None and partial is not None and _file_status(partial) == "complete":
            # Killed between closing the finished file and renaming it: it only lacks its final name.
            from collector.recorder.schema import final_path_for_partial
            from collector.recorder.writer import publish

            publish(partial, final_path_for_partial(partial))
            finished, partial = self._final_path(row.episode_id), None
        if finished is not None:
            # The recorder finished the file but the process died before the catalogue heard of it.
            if partial is not None and partial.exists() and partial.samefile(finished):
                partial.unlink()  # killed between the two steps of publish(): the same file, twice named
            self._remove_reserve(row.episode_id)
            problems = self.qa(finished)
            meta = read_file_facts(finished)
            return self.catalog.update_episode(
                row.episode_index, status="kept", outcome=meta.get("outcome", "unknown"),
                qa="pass" if not problems else "fail", qa_problems=problems, duration_s=meta.get("duration_s"),
                path=self.layout.relative(finished), finished_at=utc_now(), interrupted_by=interrupted_by,
                note=_join(row.note, "interrupted after the file was finalized"))
        if partial is None or not holds_samples(partial):
            # Nothing of the take reached the disk (killed in its first flush interval): no episode to
            # keep. An empty partial file holds no data, only the metadata the row has too.
            if partial is not None:
                partial.unlink()
            self._remove_reserve(row.episode_id)
            return self.catalog.update_episode(row.episode_index, status="interrupted", finished_at=utc_now(),
                                               interrupted_by=interrupted_by,
                                               note=_join(row.note, "interrupted before any data was written"))
        try:
            recovered = Path(recover_episode(partial))
        except Exception as exc:  # no room, or unreadable: keep the bytes in discarded/ until restored
            kept = self.layout.move_to_discard(partial)
            self._remove_reserve(row.episode_id)
            first = "free some space, then " if _is_disk_full(exc) else ""
            how = (f"the partial file is kept as {self.layout.relative(kept)}: {first}"
                   f"`collector catalog restore {self.layout.root} {row.episode_index}` recovers it")
            log.warning("%s: recovery failed (%s); %s", row.episode_id, exc, how)
            return self.catalog.update_episode(
                row.episode_index, status="interrupted", path=self.layout.relative(kept), finished_at=utc_now(),
                interrupted_by=interrupted_by, note=_join(row.note, f"interrupted; recovery failed: {exc}; {how}"))
        self._remove_reserve(row.episode_id)
        settled = self.catalog.update_episode(row.episode_index, interrupted_by=interrupted_by)
        return self._settle_recovered(settled, recovered, "interrupted; recovered up to the last flush")

    def _settle_recovered(self, row: EpisodeRow, path: Path, what: str) -> EpisodeRow:
        """Row of a take whose partial file became `path`: outcome as the file records it (known at stop
        if the recorder got that far, else 'unknown'), QA re-run."""
        problems = self.qa(path)
        meta = read_file_facts(path)
        return self.catalog.update_episode(
            row.episode_index, status="recovered", outcome=meta.get("outcome", "unknown"),
            qa="pass" if not problems else "fail", qa_problems=problems, path=self.layout.relative(path),
            duration_s=meta.get("duration_s"), finished_at=utc_now(), note=_join(row.note, what))

    def _final_path(self, episode_id: str) -> Optional[Path]:
        from collector.recorder.schema import final_path

        candidate = final_path(self.layout.episodes_dir, episode_id)
        return candidate if candidate.exists() else None

    def _partial_path(self, episode_id: str) -> Optional[Path]:
        from collector.recorder.schema import partial_path

        candidate = partial_path(self.layout.episodes_dir, episode_id)
        return candidate if candidate.exists() else None

    def _remove_reserve(self, episode_id: str) -> None:
        """A killed writer leaves its disk reserve file (8 MiB) beside the partial file."""
        from collector.recorder.schema import partial_path
        from collector.recorder.storage_guard import StorageGuard

        StorageGuard(partial_path(self.layout.episodes_dir, episode_id)).release_reserve()


def restore_hint(row: EpisodeRow, root: Path) -> str:
    """What a user does about a take the disk cut short (one line)."""
    if row.status == "interrupted" and row.path:
        return (f"disk full: {row.episode_id} was cut short; its recording is kept in {root / row.path}: free some "
                f"space, then run `collector catalog restore {root} {row.episode_index}` to recover it")
    return (f"disk full: {row.episode_id} was cut short and recovered up to the last flush ({row.status}); "
            f"free some space before recording more")


def _is_disk_full(exc: BaseException) -> bool:
    from collector.recorder.storage_guard import StorageFull

    text = str(exc)
    return isinstance(exc, StorageFull) or getattr(exc, "errno", None) == errno.ENOSPC or any(
        words in text for words in ("disk full", "No space left", "errno = 28", "not enough disk space"))


def _file_status(path: Path) -> Optional[str]:
    from collector.recorder.schema import open_episode

    try:
        with open_episode(path) as handle:
            return str(handle.attrs.get("status", ""))
    except CollectorError:
        return None


def holds_samples(partial: Path) -> bool:
    """Whether any stream of a partial file has a sample (an unreadable file counts as holding some:
    recovery decides what it is worth)."""
    from collector.recorder.schema import RAW_GROUP, open_episode

    try:
        with open_episode(partial) as handle:
            raw = handle.get(RAW_GROUP)
            return raw is not None and any("t" in group and group["t"].shape[0] > 0 for group in raw.values())
    except (CollectorError, OSError, KeyError, ValueError):
        return True


def set_file_outcome(path: Path, outcome: str) -> None:
    from collector.recorder.schema import open_episode

    with open_episode(path, "r+") as handle:
        handle.attrs["outcome"] = outcome


def read_file_facts(path: Path) -> Dict:
    """Outcome and duration as an episode file records them ({} for what cannot be read)."""
    from collector.recorder.schema import OUTCOMES, open_episode

    facts: Dict = {}
    try:
        with open_episode(path) as handle:
            duration = handle.attrs.get("duration_s")
            outcome = handle.attrs.get("outcome")
    except DataError:
        return facts
    if duration is not None:
        facts["duration_s"] = float(duration)
    outcome = outcome.decode() if isinstance(outcome, bytes) else outcome
    if outcome in OUTCOMES:
        facts["outcome"] = str(outcome)
    return facts


def _join(note: str, extra: str) -> str:
    return f"{note}; {extra}" if note else extra
