"""What every export needs: provenance records, review labels, frame rates, joint names, and atomic output paths."""
from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

import collector
from collector.dataset.episode import AlignedEpisode
from collector.dataset.selection import EpisodeRef
from collector.episodes.conditions import condition_label
from collector.errors import DataError
from collector.json_values import json_default

# Root attributes copied into every export's per-episode provenance record.
PROVENANCE_KEYS = ("episode_id", "session_id", "robot", "task", "instruction", "operator", "station", "started_at",
                   "duration_s", "outcome", "sim", "software_version", "robot_model_hash", "status", "recovered")
# Tolerated jitter of an aligned timeline before it is refused as "not a fixed rate".
RATE_TOLERANCE = 0.02


def provenance(ref: EpisodeRef, episode: AlignedEpisode) -> Dict[str, object]:
    """Where an exported episode came from and under which conditions, as plain JSON values."""
    meta = episode.metadata
    record: Dict[str, object] = {key: _plain(meta[key]) for key in PROVENANCE_KEYS if key in meta}
    conditions = episode.conditions
    record["conditions"] = conditions
    record["lighting"] = condition_label(conditions, "lighting") or ref.lighting
    record["weight"] = condition_label(conditions, "weight") or ref.weight
    record["source_path"] = str(ref.path.resolve())
    if ref.index is not None:
        record["catalog_index"] = ref.index
    for key in ("qa", "status"):
        if ref.catalog.get(key):
            record[f"catalog_{key}"] = ref.catalog[key]
    rows = control_rows(episode)
    if rows is not None:
        record["control_rows"] = rows
    review = review_labels(ref.path)
    record["review_verdict"] = review["verdict"]
    record["review"] = review if review["reviewers"] else {}  # every episode has the key: columnar formats need it
    return record


def review_labels(path) -> Dict[str, object]:
    """What the reviewers said about an episode (collector/review), as plain JSON values: the verdict,
    reasons, outcome override, current subtasks (seconds on the episode clock) and instruction phrasings,
    their agreement and every saved record (history and both reviewers' labels kept)."""
    from collector.review.annotations import read_review

    review = read_review(path)
    return {"verdict": review.verdict, "reviewers": len(review.latest()), "reasons": review.reasons,
            "outcome": review.outcome, "instructions": review.instructions,
            "subtasks": [{"name": s.name, "start_t": s.start_t, "end_t": s.end_t} for s in review.subtasks],
            "agreement": review.agreement() if review else {},
            "records": [r.to_json() for r in review.records]}


def instructions_of(record: Dict[str, object]) -> List[str]:
    """Every phrasing of an exported episode's instruction: the recorded one, then the reviewers'."""
    recorded = str(record.get("instruction") or "").strip()
    reviewed = list((record.get("review") or {}).get("instructions") or [])
    return list(dict.fromkeys(([recorded] if recorded else []) + reviewed))


def control_rows(episode: AlignedEpisode) -> Optional[Dict[str, int]]:
    """Aligned rows per command source ({"operator": 412, "policy": 1033}); None without an aligned view."""
    if not episode.reader().has_aligned_view:
        return None
    return episode.control().counts()


def screen_episodes(refs: Sequence[EpisodeRef], kind: str, *, keep_qa_failed: bool = False,
                    cameras: Optional[Sequence[str]] = None) -> Tuple[List[EpisodeRef], List[Tuple[EpisodeRef, str]]]:
    """Split a selection into the episodes an export of `kind` takes and the ones it skips, with why.

    Skipped: episodes the catalogue's QA failed (unless keep_qa_failed: the user asked for them), and
    episodes that lack what the format needs (an aligned view with /action and /observations/qpos for
    robomimic and LeRobot, raw samples for MCAP), found before any worker starts so that one bad take
    costs a warning line instead of the whole export."""
    good: List[EpisodeRef] = []
    skipped: List[Tuple[EpisodeRef, str]] = []
    for ref in refs:
        problem = None
        if not keep_qa_failed and str(ref.catalog.get("qa", "")) == "fail":
            problem = "QA failed: " + ("; ".join(map(str, ref.catalog.get("qa_problems") or [])) or "no detail recorded")
        else:
            problem = _format_problem(ref, kind, cameras)
        if problem:
            skipped.append((ref, problem))
        else:
            good.append(ref)
    return good, skipped


def view_camera_names(refs: Sequence[EpisodeRef], cameras: Optional[Sequence[str]]) -> Optional[List[str]]:
    """--cameras as the aligned view names them: "camera_head" (the raw stream's name, as inspect and
    the dashboard show it) means "head"."""
    if not cameras or not refs:
        return None if cameras is None else list(cameras)
    from collector.dataset.episode_dataset import view_camera_name

    try:
        with AlignedEpisode(refs[0].path) as episode:
            available = episode.cameras
    except (DataError, OSError, KeyError, ValueError):
        return list(cameras)
    return [view_camera_name(c, available) for c in cameras]


def _format_problem(ref: EpisodeRef, kind: str, cameras: Optional[Sequence[str]]) -> Optional[str]:
    try:
        with AlignedEpisode(ref.path) as episode:
            if kind == "mcap":
                reader = episode.reader()
                if not any(reader.count(name) > 0 for name in reader.streams):
                    return "no recorded samples"
                return None
            missing = [f"/{key}" for key in ("observations/qpos", "action") if not episode.has(key)]
            if missing:
                return f"no {' or '.join(missing)} (no aligned view: recover or re-record it)"
            if episode.length < 2:
                return f"aligned view has {episode.length} row(s); at least 2 are needed"
            absent = [c for c in (cameras or ()) if c not in episode.cameras]
            if absent:
                return f"no camera {', '.join(absent)} (cameras: {', '.join(episode.cameras) or 'none'})"
    except (DataError, OSError, KeyError, ValueError, TypeError) as exc:  # a damaged file is a reason to skip
        return f"cannot be read: {exc}"
    return None


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    return value


def export_header(source, filters: str, kind: str) -> Dict[str, object]:
    return {"format": kind, "exported_by": f"collector {collector.__version__}",
            "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "source": str(source), "filters": filters}


def episode_rate(episode: AlignedEpisode) -> float:
    """Frames per second of an episode's aligned view; it must be a fixed grid for video exports."""
    h5 = episode.file()
    rate = h5["sync"].attrs.get("rate_hz") if "sync" in h5 else None
    if rate:
        return float(rate)
    t = episode.read("timestamps")
    if t.size < 2:
        raise DataError(f"{episode.path}: fewer than two aligned rows; no frame rate")
    dt = np.diff(t)
    period = float(np.median(dt))
    if period <= 0 or np.max(np.abs(dt - period)) > RATE_TOLERANCE * period:
        raise DataError(f"{episode.path}: the aligned view is not on a fixed-rate grid (it follows a stream's "
                        "stamps); record with aligned_rate_hz to export it as video")
    return 1.0 / period


def joint_names(episode: AlignedEpisode, stream: str, width: int) -> Optional[List[str]]:
    """Joint names a stream declared (spec attrs joint_names), if they fit the width."""
    try:
        spec = episode.reader().streams.get(stream)
    except DataError:
        return None
    names = list((spec.attrs or {}).get("joint_names") or []) if spec else []
    return names if len(names) == width else None


@contextmanager
def atomic_output(path: Path, overwrite: bool = False, is_dir: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success it replaces `path` in one rename.

    A failed or interrupted export never leaves a half-written dataset under the final name, and an
    existing export is only replaced when asked to (and only once the new one is complete).
    """
    path = Path(path)
    if path.exists() and not overwrite:
        if not (is_dir and path.is_dir() and not any(path.iterdir())):
            raise DataError(f"{path} exists; choose another output or pass --overwrite")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    _remove(tmp)
    if is_dir:
        tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    old = None
    if path.exists():
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        _remove(old)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def dumps(value) -> str:
    return json.dumps(value, sort_keys=True, default=json_default)


def hand_observations(episode: AlignedEpisode) -> List[Tuple[str, str, Optional[List[str]]]]:
    """(aligned-view key, flat name, entry names) of each hand stream's field in the view: touch, grasp force,
    tracking, retarget residual (collector/recorder/vocabulary.py), e.g. ("observations/hand_touch/left",
    "hand_touch_left", ["thumb", ..., "palm"]). Empty for an episode without hands."""
    from collector.recorder.vocabulary import HAND_STREAMS

    specs = episode.reader().streams
    found = []
    for stream in HAND_STREAMS:
        spec = specs.get(stream)
        if spec is None:
            continue
        attrs = spec.attrs or {}
        for field_name, field_spec in spec.fields.items():
            key = f"observations/{stream}/{field_name}"
            if not episode.has(key):
                continue
            width = int(np.prod(field_spec.shape)) if field_spec.shape else 1
            names = (attrs.get("names") or {}).get(field_name) or attrs.get("sides")
            found.append((key, f"{stream}_{field_name}", list(names) if names and len(names) == width else None))
    return found
