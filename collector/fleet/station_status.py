"""What a station's heartbeat says it is doing: the JSON object in `stations.state` that the floor
manager's dashboard (`collector fleet`) shows. Keys (docs/fleet.md, "Stations and claims"):

  activity              "idle" | "recording" | "resetting" | "stopped"
  plan                  the plan's name
  take                  the episode id being recorded, or ""
  cell                  the conditions of the cell the station holds ({"task", "lighting", "weight"}), or {}
  operator              who operates the station
  disk_free_bytes       free space on the dataset folder's filesystem
  upload_backlog        episodes queued for publishing and not yet verified (0 without publishing)
  upload_backlog_bytes  their size on the local disk
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Dict, Optional, Tuple

ACTIVITIES = ("idle", "recording", "resetting", "stopped")
KEYS = ("activity", "plan", "take", "cell", "operator", "disk_free_bytes", "upload_backlog", "upload_backlog_bytes")


def station_state(*, activity: str, plan: str, take: str = "", cell: Optional[Dict[str, str]] = None,
                  operator: str = "", dataset: Path, publish_to: Optional[str] = None) -> Dict:
    if activity not in ACTIVITIES:
        raise ValueError(f"activity {activity!r} not in {ACTIVITIES}")
    backlog, backlog_bytes = upload_backlog(dataset, publish_to)
    return {"activity": activity, "plan": plan, "take": take or "", "cell": dict(cell or {}),
            "operator": operator, "disk_free_bytes": disk_free_bytes(dataset), "upload_backlog": backlog,
            "upload_backlog_bytes": backlog_bytes}


def disk_free_bytes(folder: Path) -> int:
    try:
        return int(shutil.disk_usage(folder).free)
    except OSError:  # the folder went away (unmounted): say nothing is free rather than fail the heartbeat
        return 0


def upload_backlog(dataset: Path, publish_to: Optional[str]) -> Tuple[int, int]:
    """(episodes, bytes) queued for the destination `publish_to` (as the publisher names it) and not yet
    verified; (0, 0) when the station does not publish."""
    from collector.fleet.upload_queue import QUEUE_FILE, UploadQueue

    if publish_to is None or not (Path(dataset) / QUEUE_FILE).is_file():
        return 0, 0
    waiting = [u for u in UploadQueue(dataset).all(publish_to) if u.state != "verified"]
    return len({u.episode_id for u in waiting}), sum(_size(Path(dataset) / u.local_path) for u in waiting)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
