"""Re-create a lost or corrupted catalogue from the episode files themselves.

Every episode file carries its own id, task, conditions, operator, station, outcome and duration as
root attributes (the recorder's schema), so the catalogue is an index that can always be rebuilt.
Files in episodes/ come back as 'kept', files in discarded/ as 'discarded', unfinished partial files
as 'interrupted' (run `collector recover` on them). QA is re-run on every file.
"""
from __future__ import annotations

import re
import shutil
from datetime import datetime
from pathlib import Path
from typing import Dict, List

from collector.errors import ConfigError
from collector.session.catalog import Catalog, utc_now
from collector.session.layout import DatasetLayout

_NUMBERED = re.compile(r"^episode_(\d+)$")


def rebuild_catalog(layout: DatasetLayout, force: bool = False) -> str:
    from collector.recorder.schema import PARTIAL_SUFFIX

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
    added, skipped = 0, []
    files = [(p, "kept") for p in sorted(layout.episodes_dir.glob("*.h5")) if not p.name.endswith(PARTIAL_SUFFIX)]
    files += [(p, "discarded") for p in sorted(layout.discard_dir.glob("*.h5"))]
    files += [(p, "interrupted") for p in sorted(layout.episodes_dir.glob(f"*{PARTIAL_SUFFIX}"))]
    for path, status in files:
        try:
            catalog.insert_episode(_row_from_file(layout, path, status))
            added += 1
        except Exception as exc:  # one bad file must not stop the rebuild of the others
            skipped.append(f"{path.name}: {exc}")
    lines = [f"rebuilt {layout.catalog_path}: {added} episode(s)"]
    lines += [f"  skipped {item}" for item in skipped]
    return "\n".join(lines)


def _row_from_file(layout: DatasetLayout, path: Path, status: str) -> Dict:
    from collector.recorder.schema import PARTIAL_SUFFIX, open_episode, read_metadata
    from collector.session.lifecycle import EpisodeLifecycle

    episode_id = path.name[: -len(PARTIAL_SUFFIX)] if path.name.endswith(PARTIAL_SUFFIX) else path.stem
    match = _NUMBERED.match(episode_id)
    if not match:
        raise ValueError("not named episode_<number> by a collector session")
    if status == "interrupted":
        meta: Dict = {}
        problems: List[str] = ["partial file: run `collector recover` on it"]
    else:
        with open_episode(path) as handle:
            meta = read_metadata(handle)
        problems = EpisodeLifecycle.qa(path)
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
        "finished_at": None,
    }


def _preset(conditions: Dict, key: str) -> str:
    value = conditions.get(key) if isinstance(conditions, dict) else None
    if isinstance(value, dict):
        return str(value.get("preset") or value.get("name") or "")
    return str(value or "")
