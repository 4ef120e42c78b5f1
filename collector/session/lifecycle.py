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
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from collector.errors import CollectorError, DataError
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

    # -- recording -----------------------------------------------------------------------------
    def begin(self, cell: Cell, streams: Sequence, conditions: Dict, extra_metadata: Optional[Dict] = None) -> Take:
        from collector.recorder import EpisodeWriter

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
        }
        try:
            writer = EpisodeWriter(self.layout.episodes_dir, episode_id=row.episode_id, streams=list(streams),
                                   metadata=metadata)
            writer.start()
        except Exception as exc:
            # The number stays accounted for: the row says the take never started and why.
            self.catalog.update_episode(row.episode_index, status="interrupted", finished_at=utc_now(),
                                        note=f"recorder failed to start: {exc}")
            raise
        return Take(row, writer, time.monotonic())

    def finish(self, take: Take, outcome: str, duration_s: Optional[float] = None, note: str = "") -> EpisodeRow:
        """Stop the recorder, run QA on the finished file and record the result."""
        try:
            path = Path(take.writer.stop(outcome=outcome))
        except CollectorError as exc:
            # e.g. the disk filled up: the partial file holds everything up to the last flush.
            log.error("episode %s: recorder failed at stop (%s); recovering the partial file", take.row.episode_id, exc)
            row = self.catalog.update_episode(take.row.episode_index, note=f"recorder failed at stop: {exc}")
            return self._recover(row)
        duration = duration_s if duration_s is not None else time.monotonic() - take.started
        problems = self.qa(path)
        return self.catalog.update_episode(
            take.row.episode_index, status="kept", outcome=outcome, qa="pass" if not problems else "fail",
            qa_problems=problems, duration_s=float(duration), path=self.layout.relative(path),
            finished_at=utc_now(), note=note)

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
        """Undo a discard (the file comes back from discarded/)."""
        row = self.catalog.episode(episode_index)
        if row.status != "discarded" or not row.path:
            raise DataError(f"{row.episode_id} is not a discarded take with a file (status {row.status})")
        path = self.layout.move_to_episodes(self.layout.absolute(row.path))
        return self.catalog.update_episode(episode_index, status="kept", path=self.layout.relative(path),
                                           note=_join(row.note, "restored"))

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
            settled.append(self._recover(row))
        return settled

    def _recover(self, row: EpisodeRow) -> EpisodeRow:
        from collector.recorder import recover_episode

        finished = self._final_path(row.episode_id)
        if finished is not None:
            # The recorder finished the file but the process died before the catalogue heard of it.
            problems = self.qa(finished)
            return self.catalog.update_episode(
                row.episode_index, status="recovered", qa="pass" if not problems else "fail", qa_problems=problems,
                path=self.layout.relative(finished), finished_at=utc_now(),
                note=_join(row.note, "interrupted after the file was finalized"))
        partials = self._partial_paths(row.episode_id)
        if not partials:
            return self.catalog.update_episode(row.episode_index, status="interrupted", finished_at=utc_now(),
                                               note=_join(row.note, "interrupted before any data was written"))
        partial = partials[0]
        try:
            recovered = Path(recover_episode(partial))
        except Exception as exc:  # unreadable: keep the bytes in discarded/ for a human to look at
            kept = self.layout.move_to_discard(partial)
            return self.catalog.update_episode(
                row.episode_index, status="interrupted", path=self.layout.relative(kept), finished_at=utc_now(),
                note=_join(row.note, f"interrupted; recovery failed: {exc}"))
        problems = self.qa(recovered)
        duration = read_duration(recovered)
        return self.catalog.update_episode(
            row.episode_index, status="recovered", outcome="unknown", qa="pass" if not problems else "fail",
            qa_problems=problems, path=self.layout.relative(recovered), duration_s=duration,
            finished_at=utc_now(), note=_join(row.note, "interrupted; recovered up to the last flush"))

    def _final_path(self, episode_id: str) -> Optional[Path]:
        from collector.recorder.schema import final_path

        candidate = final_path(self.layout.episodes_dir, episode_id)
        return candidate if candidate.exists() else None

    def _partial_paths(self, episode_id: str) -> List[Path]:
        from collector.recorder.schema import partial_path

        candidate = partial_path(self.layout.episodes_dir, episode_id)
        return [candidate] if candidate.exists() else []


def set_file_outcome(path: Path, outcome: str) -> None:
    from collector.recorder.schema import open_episode

    with open_episode(path, "r+") as handle:
        handle.attrs["outcome"] = outcome


def read_duration(path: Path) -> Optional[float]:
    from collector.recorder.schema import open_episode

    try:
        with open_episode(path) as handle:
            value = handle.attrs.get("duration_s")
            return float(value) if value is not None else None
    except DataError:
        return None


def _join(note: str, extra: str) -> str:
    return f"{note}; {extra}" if note else extra
