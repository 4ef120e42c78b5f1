"""Review annotations: reviewers' labels kept beside and inside the episode file they judge.

    saved = save_labels(path, Labels(reviewer="ana", verdict="accept",
                                     subtasks=[Subtask("grasp", 2.1, 3.4)], instructions=["Put the red cube ..."]))
    review = read_review(path)       # every save, each reviewer's current labels, the verdict, agreement

Each save is one record (who, when, what). Nothing is ever overwritten: a reviewer's new save is a new
record, so the history stays and two reviewers' labels sit side by side.

Durability without touching recorded data:
1. the record is appended as one JSON line to a journal beside the episode (`<file>.review.jsonl`) and
   fsync'd: when save_labels returns, the save survives a crash;
2. the journal is folded into the episode file's own group `/annotations` (one dataset per record). The
   fold writes a copy of the file, fsyncs it and renames it over the original, so at any instant the
   episode is either the old file or the new one, never a half-written HDF5 whose recorded data a crash
   could make unreadable. Records already in the file are then dropped from the journal.
Readers merge both places by record id, so a fold that never ran (a crash, a full disk) loses nothing.
A lock on the episode's folder serialises savers (two reviewers on one episode) across processes.
"""
from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import shutil
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence

import h5py
import numpy as np

from collector.errors import ConfigError, DataError
from collector.recorder.disk_writer import fsync_path

log = logging.getLogger(__name__)

REVIEW_GROUP = "annotations"
FORMAT_VERSION = 1
JOURNAL_SUFFIX = ".review.jsonl"
FOLD_SUFFIX = ".review-fold.tmp"
VERDICTS = ("accept", "reject")
OUTCOME_OVERRIDES = ("success", "failure")
EPISODE_VERDICTS = ("unreviewed", "accepted", "rejected", "disputed")
_RECORD_PREFIX = "record_"


@dataclass
class Subtask:
    """One labelled segment, in seconds on the episode's own clock (the aligned view's /timestamps)."""

    name: str
    start_t: float
    end_t: float


@dataclass
class Labels:
    """One reviewer's labels for one episode, as saved at one moment."""

    reviewer: str
    verdict: Optional[str] = None
    reasons: List[str] = field(default_factory=list)
    outcome: Optional[str] = None
    subtasks: List[Subtask] = field(default_factory=list)
    instructions: List[str] = field(default_factory=list)
    notes: str = ""
    record_id: str = ""
    saved_at: str = ""
    revision: int = 0

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "Labels":
        if not isinstance(data, dict):
            raise ValueError("a record must be a JSON object")
        subtasks = [Subtask(str(s["name"]), float(s["start_t"]), float(s["end_t"]))
                    for s in data.get("subtasks") or []]
        return cls(reviewer=str(data["reviewer"]), verdict=data.get("verdict"),
                   reasons=[str(r) for r in data.get("reasons") or []], outcome=data.get("outcome"),
                   subtasks=subtasks, instructions=[str(i) for i in data.get("instructions") or []],
                   notes=str(data.get("notes") or ""), record_id=str(data.get("record_id") or ""),
                   saved_at=str(data.get("saved_at") or ""), revision=int(data.get("revision") or 0))


def check_labels(labels: Labels) -> Labels:
    """Refuse labels a reader could not trust, with one line naming the field."""
    if not isinstance(labels.reviewer, str) or not labels.reviewer.strip():
        raise ConfigError("labels: reviewer must be a non-empty name")
    if labels.verdict not in (None,) + VERDICTS:
        raise ConfigError(f"labels: verdict must be one of {', '.join(VERDICTS)} (or none), not {labels.verdict!r}")
    if labels.outcome not in (None,) + OUTCOME_OVERRIDES:
        raise ConfigError(f"labels: outcome must be one of {', '.join(OUTCOME_OVERRIDES)} (or none), "
                          f"not {labels.outcome!r}")
    for i, sub in enumerate(labels.subtasks):
        if not isinstance(sub.name, str) or not sub.name.strip():
            raise ConfigError(f"labels: subtask {i} has no name")
        if not (math.isfinite(sub.start_t) and math.isfinite(sub.end_t)) or sub.end_t < sub.start_t:
            raise ConfigError(f"labels: subtask {i} ({sub.name}) must have finite times with start <= end, "
                              f"not {sub.start_t}..{sub.end_t}")
    for name, values in (("reasons", labels.reasons), ("instructions", labels.instructions)):
        if any(not isinstance(v, str) for v in values):
            raise ConfigError(f"labels: {name} must be a list of text")
    if not isinstance(labels.notes, str):
        raise ConfigError("labels: notes must be text")
    return labels


# -- saving ------------------------------------------------------------------------------------------

def save_labels(path, labels: Labels, fold: bool = True) -> Labels:
    """Save one reviewer's labels; durable when this returns. Returns the record as saved.

    fold=False leaves the record in the journal only (fold_journal later, e.g. when the reviewer moves
    to the next take), which keeps a save to one fsync however large the episode file is."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such episode file")
    check_labels(labels)
    with _locked(path):
        existing = _merged_records(path)
        record = Labels.from_json({**labels.to_json(),
                                   "subtasks": [asdict(s) for s in sorted(labels.subtasks, key=lambda s: s.start_t)],
                                   "record_id": uuid.uuid4().hex,
                                   "saved_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                                   "revision": 1 + max((r.revision for r in existing), default=0)})
        _append_journal(path, record)
        if fold:
            _fold_locked(path)
    return record


def fold_journal(path) -> int:
    """Move journalled records into the episode file; returns how many were folded. Never raises for a
    fold that cannot run now (full disk, read-only file): the journal keeps the records."""
    path = Path(path)
    if not _journal_path(path).exists() and not path.with_name(path.name + FOLD_SUFFIX).exists():
        return 0  # nothing to do, and no need to open the file (it may be a damaged partial)
    with _locked(path):
        return _fold_locked(path)


def _append_journal(path: Path, record: Labels) -> None:
    line = json.dumps(record.to_json(), sort_keys=True) + "\n"
    journal = _journal_path(path)
    try:
        fd = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise DataError(f"{journal}: cannot save the review ({exc.strerror or exc})") from exc


def _fold_locked(path: Path) -> int:
    journal = _journal_path(path)
    pending = _journal_records(journal)
    in_file = {r.record_id for r in _file_records(path)}
    new = [r for r in pending if r.record_id not in in_file]
    tmp = path.with_name(path.name + FOLD_SUFFIX)
    tmp.unlink(missing_ok=True)  # a copy left by a fold that was killed
    if new:
        try:
            shutil.copyfile(path, tmp)
            shutil.copymode(path, tmp)
            with h5py.File(tmp, "r+") as h5:
                _write_records(h5, new)
            fsync_path(tmp)
            os.replace(tmp, path)
            fsync_path(path.parent)
        except (OSError, RuntimeError, ValueError) as exc:
            tmp.unlink(missing_ok=True)
            log.warning("%s: review kept in %s, not folded into the file yet (%s)", path, journal, exc)
            return 0
    _rewrite_journal(journal, [])
    return len(new)


def _write_records(h5: h5py.File, records: Sequence[Labels]) -> None:
    group = h5.require_group(REVIEW_GROUP)
    group.attrs["format_version"] = FORMAT_VERSION
    group.attrs["description"] = "review labels: one JSON record per save (collector/review/annotations.py)"
    taken = [int(name[len(_RECORD_PREFIX):]) for name in group if name.startswith(_RECORD_PREFIX)]
    number = max(taken, default=0)
    for record in records:
        number += 1
        data = group.create_dataset(f"{_RECORD_PREFIX}{number:06d}",
                                    data=json.dumps(record.to_json(), sort_keys=True),
                                    dtype=h5py.string_dtype("utf-8"))
        data.attrs["reviewer"] = record.reviewer
        data.attrs["saved_at"] = record.saved_at
        data.attrs["record_id"] = record.record_id


def _rewrite_journal(journal: Path, records: Sequence[Labels]) -> None:
    if not records:
        journal.unlink(missing_ok=True)
        return
    tmp = journal.with_name(journal.name + ".tmp")
    tmp.write_text("".join(json.dumps(r.to_json(), sort_keys=True) + "\n" for r in records), encoding="utf-8")
    fsync_path(tmp)
    os.replace(tmp, journal)


# -- reading -----------------------------------------------------------------------------------------

def read_review(path) -> "Review":
    """Every saved record of an episode (file and journal), oldest first. An episode nobody reviewed
    gives an empty Review; a damaged annotation record is skipped with a warning, never fatal."""
    return Review(_merged_records(Path(path)))


def _merged_records(path: Path) -> List[Labels]:
    by_id: Dict[str, Labels] = {}
    for record in _file_records(path) + _journal_records(_journal_path(path)):
        by_id.setdefault(record.record_id, record)
    return sorted(by_id.values(), key=lambda r: (r.revision, r.saved_at))


def _file_records(path: Path) -> List[Labels]:
    try:
        with h5py.File(path, "r", locking=False) as h5:
            group = h5.get(REVIEW_GROUP)
            if not isinstance(group, h5py.Group):
                return []
            records = []
            for name in sorted(n for n in group if n.startswith(_RECORD_PREFIX)):
                try:
                    raw = group[name][()]
                    records.append(Labels.from_json(json.loads(raw.decode() if isinstance(raw, bytes) else raw)))
                except (KeyError, ValueError, TypeError, OSError) as exc:
                    log.warning("%s: /%s/%s is unreadable, skipped (%s)", path, REVIEW_GROUP, name, exc)
            return records
    except OSError as exc:
        raise DataError(f"{path}: cannot read its review annotations ({exc})") from exc


def _journal_records(journal: Path) -> List[Labels]:
    try:
        text = journal.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise DataError(f"{journal}: cannot read ({exc.strerror or exc})") from exc
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(Labels.from_json(json.loads(line)))
        except (KeyError, ValueError, TypeError):
            # A crash mid-append leaves at most a torn last line: the save it held never returned.
            log.warning("%s: line %d is not a complete record, ignored", journal, number)
    return records


class Review:
    """All labels of one episode and what they add up to."""

    def __init__(self, records: Sequence[Labels]):
        self.records: List[Labels] = list(records)

    def __bool__(self) -> bool:
        return bool(self.records)

    def latest(self) -> Dict[str, Labels]:
        """Each reviewer's current labels (their newest save)."""
        current: Dict[str, Labels] = {}
        for record in self.records:
            current[record.reviewer] = record
        return current

    @property
    def reviewers(self) -> List[str]:
        return list(self.latest())

    @property
    def verdict(self) -> str:
        verdicts = {labels.verdict for labels in self.latest().values() if labels.verdict}
        if not verdicts:
            return "unreviewed"
        if len(verdicts) > 1:
            return "disputed"
        return "accepted" if verdicts == {"accept"} else "rejected"

    @property
    def reasons(self) -> List[str]:
        return _unique(r for labels in self.latest().values() for r in labels.reasons)

    @property
    def outcome(self) -> Optional[str]:
        """The newest outcome override any reviewer gave (None: keep the recorded outcome)."""
        overrides = [labels for labels in self.latest().values() if labels.outcome]
        return max(overrides, key=lambda l: l.revision).outcome if overrides else None

    @property
    def instructions(self) -> List[str]:
        return _unique(i.strip() for labels in self.latest().values() for i in labels.instructions if i.strip())

    @property
    def subtasks(self) -> List[Subtask]:
        with_segments = [labels for labels in self.latest().values() if labels.subtasks]
        if not with_segments:
            return []
        return list(max(with_segments, key=lambda l: l.revision).subtasks)

    def subtask_at(self, t) -> np.ndarray:
        """The subtask name at each time in `t` ("" outside every segment; a later segment wins an overlap)."""
        t = np.asarray(t, dtype=np.float64)
        names = np.full(t.shape, "", dtype=object)
        for sub in sorted(self.subtasks, key=lambda s: s.start_t):
            names[(t >= sub.start_t) & (t <= sub.end_t)] = sub.name
        return names

    def agreement(self) -> dict:
        """How far the reviewers' current labels agree (the first two reviewers with labels compared)."""
        current = list(self.latest().values())
        verdicts = [labels.verdict for labels in current if labels.verdict]
        result = {"reviewers": len(current),
                  "verdict_agreement": (len(set(verdicts)) == 1) if len(verdicts) >= 2 else None,
                  "boundary_mean_diff_s": None, "segment_iou": None}
        segmented = [labels.subtasks for labels in current if labels.subtasks]
        if len(segmented) >= 2:
            result["boundary_mean_diff_s"], result["segment_iou"] = _compare_segments(segmented[0], segmented[1])
        return result


def _compare_segments(a: Sequence[Subtask], b: Sequence[Subtask]):
    """Mean distance between boundaries of same-named segments, and their mean time IoU."""
    diffs, ious = [], []
    remaining = list(b)
    for seg in a:
        match = [s for s in remaining if s.name == seg.name]
        if not match:
            ious.append(0.0)
            continue
        other = min(match, key=lambda s: abs(s.start_t - seg.start_t))
        remaining.remove(other)
        diffs += [abs(seg.start_t - other.start_t), abs(seg.end_t - other.end_t)]
        overlap = max(0.0, min(seg.end_t, other.end_t) - max(seg.start_t, other.start_t))
        union = max(seg.end_t, other.end_t) - min(seg.start_t, other.start_t)
        ious.append(overlap / union if union > 0 else 1.0)
    ious += [0.0] * len(remaining)
    return (float(np.mean(diffs)) if diffs else None), (float(np.mean(ious)) if ious else None)


def _unique(values) -> List[str]:
    seen: Dict[str, None] = {}
    for value in values:
        seen.setdefault(value, None)
    return list(seen)


# -- files -------------------------------------------------------------------------------------------

def _journal_path(path: Path) -> Path:
    return path.with_name(path.name + JOURNAL_SUFFIX)


def review_sidecars(path) -> List[Path]:
    """The files that travel with an episode while it has unfolded reviews (move/copy them with it)."""
    path = Path(path)
    return [p for p in (_journal_path(path),) if p.exists()]


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialise savers of the episodes in one folder. The lock is on the folder, not a file beside the
    episode: the fold replaces the episode file (a lock on it would stay on the old inode) and a folder
    lock leaves nothing behind."""
    try:
        fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise DataError(f"{path.parent}: cannot lock the folder to save a review ({exc.strerror or exc})") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
