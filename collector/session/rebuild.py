"""Re-create a lost or corrupted catalogue from the episode files themselves.

Every episode file carries its own id, task, conditions, operator, station, outcome and duration as
root attributes (the recorder's schema), so the catalogue is an index that can always be rebuilt.
Files in episodes/ come back as 'kept', or 'recovered' when the file says it was recovered after a
crash (its `status`/`recovered` attributes); files in discarded/ as 'discarded', except partial files
kept there, which are 'interrupted' (`collector catalog restore` recovers them); unfinished partial
files in episodes/ as 'interrupted' (run `collector recover` on them). QA is re-run on every file.
Reviewers' labels come back too: every record in a file's /annotations group or its review journal
(`<file>.review.jsonl`) is mirrored again, with the verdict and any outcome override it gives.
"""
from __future__ import annotations

import re
import shutil
from datetime import datetime
from pathlib import Path
from typing import Dict, List

from collector.errors import ConfigError
from collector.session.catalog import INTERRUPTIONS, Catalog, utc_now
from collector.session.catalog_engine import public_url
from collector.session.layout import DatasetLayout

_NUMBERED = re.compile(r"^episode_(\d+)$")


def rebuild_catalog(layout: DatasetLayout, force: bool = False) -> str:
    from collector.recorder.schema import PARTIAL_SUFFIX, episode_files_under

    if layout.catalog_url is not None:  # a server's catalogue holds other folders' rows: never overwritten from here
        raise ConfigError(f"{layout.root}: its catalogue is on a server ({public_url(layout.catalog_url)});"
                          " rebuild re-creates a folder's own catalog.sqlite only")
    if layout.catalog_path.exists():
        if not force:
            raise ConfigError(f"{layout.catalog_path} exists; pass --force to move it aside and rebuild")
        stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
        for suffix in ("", "-wal", "-shm"):
            old = Path(str(layout.catalog_path) + suffix)
            if old.exists():
                shutil.move(str(old), str(old) + f".bad-{stamp}")
    layout.ensure()
    catalog = Catalog(layout.catalog_path)
    added, reviewed, skipped = 0, 0, []
    files = [(p, "kept") for p in episode_files_under(layout.episodes_dir, final_only=True, recursive=False)]
    # A partial file in discarded/ is an interrupted take kept aside for `catalog restore`.
    files += [(p, "interrupted" if p.name.endswith(PARTIAL_SUFFIX) else "discarded")
              for p in episode_files_under(layout.discard_dir, recursive=False)]
    files += [(p, "interrupted") for p in sorted(layout.episodes_dir.glob(f"*{PARTIAL_SUFFIX}"))]
    for path, status in files:
        try:
            row = _row_from_file(layout, path, status)
            catalog.insert_episode(row)
            added += 1
        except Exception as exc:  # one bad file must not stop the rebuild of the others
            skipped.append(f"{path.name}: {exc}")
            continue
        try:
            reviewed += _restore_reviews(catalog, row["episode_index"], path, status)
        except Exception as exc:  # the episode is back; only its labels could not be read
            skipped.append(f"{path.name}: review labels not restored: {exc}")
    lines = [f"rebuilt {layout.catalog_path}: {added} episode(s)" + (f", {reviewed} reviewed" if reviewed else "")]
    lines += [f"  skipped {item}" for item in skipped]
    return "\n".join(lines)


def _row_from_file(layout: DatasetLayout, path: Path, status: str) -> Dict:
    from collector.recorder.schema import episode_id_from_name, open_episode, read_metadata
    from collector.session.lifecycle import EpisodeLifecycle

    episode_id = episode_id_from_name(path.name)
    match = _NUMBERED.match(episode_id)
    if not match:
        raise ValueError("not named episode_<number> by a collector session")
    if status == "interrupted":
        meta = _partial_metadata(path)
        problems: List[str] = ["partial file: run `collector recover` on it"]
        interrupted_by = str(meta.get("interrupted_by") or "crash")
    else:
        with open_episode(path) as handle:
            meta = read_metadata(handle)
        problems = EpisodeLifecycle.qa(path)
        if status == "kept" and (meta.get("status") == "recovered" or meta.get("recovered") is True):
            status = "recovered"  # the file says a crash cut its take short: keep saying so
        interrupted_by = str(meta.get("interrupted_by") or ("crash" if status == "recovered" else ""))
    conditions = meta.get("conditions") or {}
    return {
        "episode_index": int(match.group(1)), "episode_id": episode_id,
        "session_id": str(meta.get("session_id", "")), "plan": str(meta.get("plan", "")),
        "task": str(meta.get("task", "")), "instruction": str(meta.get("instruction", "")),
        "lighting": str(meta.get("lighting_preset") or _preset(conditions, "lighting")),
        "weight": str(meta.get("weight_preset") or _preset(conditions, "weights")),
        "operator": str(meta.get("operator", "")), "station": str(meta.get("station", "")),
        "robot": str(meta.get("robot", "")), "backend": "sim" if meta.get("sim", True) else "ros2",
        "status": status, "outcome": str(meta.get("outcome", "unknown")),
        "qa": "pass" if not problems else "fail", "qa_problems": problems,
        "duration_s": meta.get("duration_s"), "path": layout.relative(path), "conditions": conditions,
        "note": "rebuilt from the file", "started_at": str(meta.get("started_at", utc_now())),
        "finished_at": None, "interrupted_by": interrupted_by if interrupted_by in INTERRUPTIONS else "crash",
    }


def _restore_reviews(catalog: Catalog, episode_index: int, path: Path, status: str) -> int:
    """Mirror the file's review records into the catalogue; 1 if it had any."""
    from collector.review.annotations import read_review

    if status == "interrupted":
        return 0  # a partial file: nobody reviews a take that never finished
    review = read_review(path)
    if not review:
        return 0
    catalog.record_review(episode_index, review)
    return 1


def _partial_metadata(path: Path) -> Dict:
    """What a partial file says about its take (its root attributes are written at start), or {}."""
    from collector.errors import CollectorError
    from collector.recorder.schema import open_episode, read_metadata

    try:
        with open_episode(path) as handle:
            return read_metadata(handle)
    except (CollectorError, OSError, ValueError):
        return {}


def _preset(conditions: Dict, key: str) -> str:
    value = conditions.get(key) if isinstance(conditions, dict) else None
    if isinstance(value, dict):
        return str(value.get("preset") or value.get("name") or "")
    return str(value or "")
