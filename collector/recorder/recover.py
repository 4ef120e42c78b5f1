"""recover_episode: turn the partial file of a killed (or storage-stopped) recording into a valid episode.

What a partial file holds is everything up to its writer's last flush. Recovery trims each raw stream
to the rows every one of its datasets holds with a real stamp, rebuilds the aligned view from /raw,
marks the episode `status=recovered`, `recovered=True`, and gives it its final name. It never
touches any other file, and refuses to overwrite an existing episode.
"""
from __future__ import annotations

import json
import logging
import math
import re
from pathlib import Path
from typing import Dict

import h5py
import numpy as np

from collector.errors import DataError
from collector.recorder import schema
from collector.recorder.aligned import AlignedViewConfig, write_aligned_view
from collector.recorder.raw_store import consistent_length, truncate
from collector.recorder.storage_guard import MiB, StorageGuard
from collector.recorder.streams import StreamSpec
from collector.recorder.writer import publish

log = logging.getLogger(__name__)

_TRUNCATED = re.compile(r"truncated file: eof = (\d+), sblock->base_addr = \d+, stored_eof = (\d+)")


def _open_partial(path: Path) -> h5py.File:
    """Open read-write. A file cut short by a full disk has a superblock that records a larger end of
    file than exists; padding the file to that size (with zeros) makes it openable again, and the
    row checks in consistent_length then discard whatever never reached the disk."""
    try:
        return schema.open_episode(path, "r+")
    except DataError as exc:
        match = _TRUNCATED.search(str(exc.__cause__ or exc))
        if not match:
            raise
        actual, stored = int(match.group(1)), int(match.group(2))
        if actual != path.stat().st_size or stored <= actual:
            raise
        log.warning("%s: file ends at %d bytes but its superblock says %d; padding it to open it",
                    path, actual, stored)
        with open(path, "r+b") as fh:
            fh.truncate(stored)
        return schema.open_episode(path, "r+")


def recover_episode(path, min_free_bytes: int = 16 * MiB) -> Path:
    """Finalize a partial episode in place and return its final path (`<id>.h5` beside it)."""
    path = Path(path)
    final = schema.final_path_for_partial(path)
    if final.exists():
        raise DataError(f"{final} already exists; not touching it (the partial file {path} is left as is)")
    h5 = _open_partial(path)
    try:
        status = schema.read_metadata(h5).get("status")
        if status != schema.STATUS_RECORDING:
            raise DataError(f"{path} has status {status!r}: only a partial episode (status 'recording') "
                            "can be recovered")
        raw = h5.get(schema.RAW_GROUP)
        if raw is None:
            raise DataError(f"{path} has no /{schema.RAW_GROUP} group: nothing was recorded before the writer died")
        specs: Dict[str, StreamSpec] = {name: StreamSpec.from_json(group.attrs["spec"]) for name, group in raw.items()}
        trimmed = {}
        for name, group in raw.items():
            n = consistent_length(group)
            longest = max((ds.shape[0] for key, ds in group.items()
                           if isinstance(ds, h5py.Dataset) and key != "jpeg"), default=0)
            if longest != n:
                trimmed[name] = longest - n
            truncate(group, n)
            group.attrs["count"] = n
        counters = _counters(h5)
        for name, entry in counters.items():
            if name in raw:
                raw[name].attrs["dropped"] = entry.get("dropped", 0)
                raw[name].attrs["rejected"] = json.dumps({"total": entry.get("rejected", 0)})
        config = AlignedViewConfig.from_dict(json.loads(h5.attrs["aligned_view"])).resolve(specs)
        guard = StorageGuard(path, min_free_bytes=min_free_bytes, reserve_file_bytes=0)
        view = write_aligned_view(h5, specs, config, guard=guard)
        first, last = math.inf, -math.inf
        for group in raw.values():
            if group["t"].shape[0]:
                first = min(first, float(group["t"][0]))
                last = max(last, float(group["t"][-1]))
        metadata = schema.read_metadata(h5)
        schema.write_metadata(h5, {
            "duration_s": float(last - first) if last >= first else 0.0,
            "t_start": float(first) if math.isfinite(first) else 0.0,
            "t_end": float(last) if math.isfinite(last) else 0.0,
            "recovered_at": schema.utc_now_iso(),
            "recovery": {"rows_trimmed": trimmed, "previous_outcome": metadata.get("outcome", "unknown")},
            "recorder_stats": {"streams": counters, "drops": sum(c.get("dropped", 0) for c in counters.values()),
                               "rejected": sum(c.get("rejected", 0) for c in counters.values()),
                               "note": "counters as of the last flush before the writer stopped"},
            "aligned_rows": view["rows"],
        })
        h5.attrs["recovered"] = np.bool_(True)
        h5.attrs["status"] = schema.STATUS_RECOVERED
    except (OSError, RuntimeError, KeyError, ValueError) as exc:
        # HDF5 could not read part of the file (damaged beyond the row checks): say so in one line.
        h5.close()
        raise DataError(f"{path}: cannot recover: {type(exc).__name__}: {exc}") from exc
    except BaseException:
        h5.close()
        raise
    h5.close()
    publish(path, final)
    StorageGuard(path).release_reserve()  # a killed writer leaves its disk reserve behind
    log.info("recovered %s -> %s (%s)", path, final, trimmed or "no rows trimmed")
    return final


def _counters(h5: h5py.File) -> Dict[str, Dict[str, int]]:
    if schema.COUNTERS_PATH not in h5:
        return {}
    ds = h5[schema.COUNTERS_PATH]
    columns = json.loads(ds.attrs["columns"])
    names = json.loads(ds.attrs["streams"])
    table = ds[...]
    return {name: dict(zip(columns, map(int, table[i]))) for i, name in enumerate(names)}
