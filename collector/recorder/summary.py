"""episode_summary: the numbers `collector inspect` shows, as one JSON-able dict.

Per stream: samples, nominal and effective rate, jitter, gaps, drops and rejections, bytes per
frame for cameras. Per aligned stream: how far the chosen samples were from their rows.
"""
from __future__ import annotations

from typing import Any, Dict

import numpy as np

from collector.recorder import schema
from collector.recorder.reader import EpisodeReader

_METADATA_SHOWN_ELSEWHERE = ("recorder_stats", "conditions", "aligned_view")


def _ms(x):
    return None if x is None or not np.isfinite(x) else round(float(x) * 1e3, 3)


def stream_summaries(r: EpisodeReader) -> Dict[str, Dict[str, Any]]:
    from collector.sync import stream_report

    counters = r.counters
    finals = r.recorder_stats.get("streams", {})
    out: Dict[str, Dict[str, Any]] = {}
    for name, spec in r.streams.items():
        n = r.count(name)
        counter = counters.get(name, {})
        final = finals.get(name, {})
        entry: Dict[str, Any] = {
            "kind": spec.kind,
            "count": n,
            "nominal_rate_hz": spec.rate_hz,
            "tolerance_ms": _ms(spec.tolerance),
            "dropped": int(final.get("dropped", counter.get("dropped", 0))),
            "rejected": final.get("rejected", counter.get("rejected", 0)),
        }
        if "queue_high_water" in final:
            entry["queue_high_water"] = final["queue_high_water"]
            entry["queue_capacity"] = final["queue_capacity"]
        if n:
            report = stream_report(r.stamps(name), name=name, nominal_rate_hz=spec.rate_hz,
                                   gap_periods=spec.tolerance * spec.rate_hz)
            entry.update({
                "effective_rate_hz": None if not np.isfinite(report.effective_rate_hz)
                else round(report.effective_rate_hz, 3),
                "jitter_std_ms": _ms(report.jitter_std_s),
                "jitter_p99_ms": _ms(report.jitter_p99_s),
                "max_interval_ms": _ms(report.max_interval_s),
                "gaps": report.n_gaps,
                "duplicates": report.n_duplicates,
            })
        if spec.is_camera:
            group = r.h5[schema.RAW_GROUP][name]
            # JPEG: the frames' own bytes; pixels: stored chunk bytes (one frame per chunk, after lzf).
            stored = (int(group["jpeg_size"][:n].sum()) if "jpeg" in group
                      else int(group["image"].id.get_storage_size()))
            entry["codec"] = spec.codec
            entry["frame_size"] = list(spec.fields["image"].shape)
            entry["bytes_per_frame"] = int(stored / n) if n else None
        out[name] = entry
    return out


def sync_summaries(r: EpisodeReader) -> Dict[str, Dict[str, Any]]:
    if not r.has_aligned_view:
        return {}
    out = {}
    for name in r.synced_streams:
        sync = r.sync(name)
        err = np.abs(sync["error"][np.isfinite(sync["error"])])
        out[name] = {
            "rows": int(sync["valid"].size),
            "invalid_rows": int(np.count_nonzero(~sync["valid"])),
            "abs_error_mean_ms": _ms(err.mean()) if err.size else None,
            "abs_error_p99_ms": _ms(np.percentile(err, 99)) if err.size else None,
            "abs_error_max_ms": _ms(err.max()) if err.size else None,
        }
    return out


def episode_summary(r: EpisodeReader) -> Dict[str, Any]:
    metadata = r.metadata
    stats = metadata.get("recorder_stats") or {}
    recorder = {k: stats[k] for k in ("drops", "rejected", "write_latency", "durable_latency", "flushes",
                                      "max_flush_s", "drain_s", "aligned_view_s", "finalize_s", "error")
                if k in stats}
    return {
        "path": str(r.path),
        "metadata": {k: v for k, v in metadata.items() if k not in _METADATA_SHOWN_ELSEWHERE},
        "conditions": metadata.get("conditions") or {},
        "aligned_view": {
            "config": metadata.get("aligned_view"),
            "rows": int(r.h5[schema.TIMESTAMPS].shape[0]) if r.has_aligned_view else None,
            "cameras": r.aligned_cameras if r.has_aligned_view else [],
        },
        "streams": stream_summaries(r),
        "sync": sync_summaries(r),
        "recorder": recorder,
    }
