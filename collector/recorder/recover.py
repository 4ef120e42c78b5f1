"""recover_episode: turn the partial file of a killed (or storage-stopped) recording into a valid episode.

What a partial file holds is everything up to its writer's last flush. Recovery trims each raw stream
to the rows every one of its datasets holds with a real stamp, rebuilds the aligned view from /raw,
marks the episode `status=recovered`, `recovered=True`, and gives it its final name. It never
touches any other file, and refuses to overwrite an existing episode.

It works on a copy (a hidden file in the same folder): the partial file is left byte for byte as it
was unless recovery succeeds, and only then replaced by the finished episode. A recovery that fails
(a file damaged beyond the row checks, a full disk) can be retried, or the file handed to someone
who can repair it, with nothing lost by the attempt.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
from pathlib import Path
from typing import Dict

import h5py
import numpy as np

from collector.errors import CollectorError, DataError
from collector.recorder import schema
from collector.recorder.disk_writer import fsync_path
from collector.recorder.aligned import AlignedViewConfig, write_aligned_view
from collector.recorder.raw_store import consistent_length, truncate
from collector.recorder.storage_guard import MiB, StorageGuard
from collector.recorder.streams import StreamSpec
from collector.recorder.structure import check_structure
from collector.recorder.writer import publish

log = logging.getLogger(__name__)

_TRUNCATED = re.compile(r"truncated file: eof = (\d+), sblock->base_addr = \d+, stored_eof = (\d+)")


def _open_partial(work: Path, shown: Path) -> h5py.File:
    """Open the working copy read-write. A file cut short by a full disk has a superblock that records
    a larger end of file than exists; padding the copy to that size (with zeros) makes it openable
    again, and the row checks in consistent_length then discard whatever never reached the disk.
    Errors name `shown` (the user's file), not the hidden copy."""
    try:
        try:
            return schema.open_episode(work, "r+")
        except DataError as exc:
            match = _TRUNCATED.search(str(exc.__cause__ or exc))
            if not match:
                raise
            actual, stored = int(match.group(1)), int(match.group(2))
            if actual != work.stat().st_size or stored <= actual:
                raise
            log.warning("%s: file ends at %d bytes but its superblock says %d; padding a copy to open it",
                        shown, actual, stored)
            with open(work, "r+b") as fh:
                fh.truncate(stored)
            return schema.open_episode(work, "r+")
    except DataError as exc:
        raise DataError(str(exc).replace(str(work), str(shown))) from exc


def _working_copy(path: Path) -> Path:
    """A copy of the partial file beside it (same filesystem, so the final rename is atomic)."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    _remove_stale_copies(path)
    work = path.with_name(f"{_COPY_PREFIX.format(name=path.name)}{os.getpid()}")
    try:
        shutil.copyfile(path, work)
    except OSError as exc:
        _remove(work)
        raise DataError(f"{path}: cannot recover: copying it to work on failed ({exc}); the file is unchanged")
    return work


_COPY_PREFIX = ".{name}.recovering-"


def _remove_stale_copies(path: Path) -> None:
    """Working copies left by a recovery that was itself killed (its process is gone)."""
    prefix = _COPY_PREFIX.format(name=path.name)
    for copy in path.parent.glob(f"{prefix}*"):
        pid = copy.name[len(prefix):]
        if pid.isdigit() and not _process_exists(int(pid)):
            _remove(copy)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def recover_episode(path, min_free_bytes: int = 16 * MiB) -> Path:
    """Finalize a partial episode and return its final path (`<id>.hdf5` beside it). The partial file
    is replaced only once the finished episode is complete; on any failure it is left unchanged."""
    path = Path(path)
    final = schema.final_path_for_partial(path)
    if final.exists():
        raise DataError(f"{final} already exists; not touching it (the partial file {path} is left as is)")
    work = _working_copy(path)
    try:
        _finish(work, path, min_free_bytes)
        if final.exists():
            raise DataError(f"{final} already exists; not touching it (the partial file {path} is left as is)")
        publish(work, final)
    except BaseException:
        _remove(work)
        raise
    _remove(path)
    StorageGuard(path).release_reserve()  # a killed writer leaves its disk reserve behind
    log.info("recovered %s -> %s", path, final)
    return final


def _finish(work: Path, path: Path, min_free_bytes: int) -> None:
    """Trim, rebuild the aligned view and mark recovered, in the working copy `work` of `path`."""
    h5 = _open_partial(work, shown=path)
    try:
        metadata = schema.read_metadata(h5)
        status = metadata.get("status")
        if status != schema.STATUS_RECORDING:
            raise DataError(f"{path} has status {status!r}: only a partial episode (status 'recording') "
                            "can be recovered")
        raw = h5.get(schema.RAW_GROUP)
        if raw is None:
            raise DataError(f"{path} has no /{schema.RAW_GROUP} group: nothing was recorded before the writer died")
        # Every dataset the trimming and the aligned view need, with the right dtypes and shapes.
        specs: Dict[str, StreamSpec] = check_structure(h5, path, metadata)
        if not isinstance(metadata.get("aligned_view"), dict):
            raise DataError(f"{path}: root attribute 'aligned_view' (how to build the aligned view) is missing or "
                            "not a JSON object, so the episode cannot be finished")
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
        config = AlignedViewConfig.from_dict(metadata["aligned_view"]).resolve(specs)
        guard = StorageGuard(work, min_free_bytes=min_free_bytes, reserve_file_bytes=0)
        view = write_aligned_view(h5, specs, config, guard=guard)
        first, last = math.inf, -math.inf
        for group in raw.values():
            if group["t"].shape[0]:
                first = min(first, float(group["t"][0]))
                last = max(last, float(group["t"][-1]))
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
    except DataError as exc:
        h5.close()
        message = str(exc).replace(str(work), str(path))
        raise DataError(message if str(path) in message else f"{path}: cannot recover: {message}") from exc
    except (CollectorError, OSError, RuntimeError, KeyError, ValueError, TypeError, AttributeError,
            IndexError) as exc:
        # HDF5 could not read part of the file (damaged beyond the row checks): say so in one line.
        h5.close()
        detail = str(exc).replace(str(work), str(path))
        raise DataError(f"{path}: cannot recover: {type(exc).__name__}: {detail}; the file is unchanged") from exc
    except BaseException:
        h5.close()
        raise
    h5.close()
    fsync_path(work)
    log.info("%s: %s", path, f"rows trimmed {trimmed}" if trimmed else "no rows trimmed")


def _counters(h5: h5py.File) -> Dict[str, Dict[str, int]]:
    if schema.COUNTERS_PATH not in h5:
        return {}
    ds = h5[schema.COUNTERS_PATH]
    columns = json.loads(ds.attrs["columns"])
    names = json.loads(ds.attrs["streams"])
    table = ds[...]
    return {name: dict(zip(columns, map(int, table[i]))) for i, name in enumerate(names)}
