"""Every stream of a session onto one reference at once, spread over the machine's cores.

numpy releases the GIL inside its array loops (searchsorted, take, repeat, ufuncs), so streams aligned
in threads really run in parallel. The biggest streams start first, so that one large stream (1 kHz
joints) is not the last one left running on a single core while the others sit idle.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, Mapping, Optional

import numpy as np

from collector.errors import ConfigError
from collector.sync.align import AlignResult, align_stream
from collector.sync.stamps import check_stamps

STREAM_KEYS = ("t", "values", "method", "tolerance", "quat_slices", "duplicates", "check_finite")


def _stream_arguments(name, spec) -> dict:
    if not isinstance(spec, Mapping):
        raise ConfigError(f"stream {name!r}: expected a mapping of align_stream arguments "
                          f"({', '.join(STREAM_KEYS)}), got {type(spec).__name__}")
    unknown = sorted(set(spec) - set(STREAM_KEYS))
    if unknown:
        raise ConfigError(f"stream {name!r}: unknown key(s) {unknown}; allowed: {', '.join(STREAM_KEYS)}")
    if "t" not in spec:
        raise ConfigError(f"stream {name!r}: no stamps (key 't')")
    return dict(spec)


# Below this many source samples in all, starting threads costs more than it saves (a 3-minute
# session of the benchmark's streams aligns in ~2.5 ms on one thread, ~3 ms on two).
PARALLEL_MIN_SAMPLES = 500_000


def default_workers(n_streams: int, total_samples: int = PARALLEL_MIN_SAMPLES) -> int:
    """One thread per core, never more than there are streams; one for small inputs."""
    if total_samples < PARALLEL_MIN_SAMPLES:
        return 1
    return max(1, min(n_streams, os.cpu_count() or 1))


def align_streams(ref, streams: Mapping[str, Mapping], workers: Optional[int] = None) -> Dict[str, AlignResult]:
    """Align several streams onto the same reference stamps: {name: AlignResult}, in the given order.

    streams: {name: {"t": stamps, "values": ..., "method": ..., "tolerance": ..., "quat_slices": ...,
      "duplicates": ..., "check_finite": ...}}, each the arguments of `align_stream` (only "t" needed).
    workers: threads to use; default one per core (at most one per stream, and one when there are
      fewer than PARALLEL_MIN_SAMPLES samples in all); 1 runs them in turn.
    Results are identical to calling align_stream on each stream. The first stream to fail raises its
    error (which names the stream).
    """
    ref, _ = check_stamps(ref, "reference", allow_empty=True, what="reference stamps")
    jobs = {name: _stream_arguments(name, spec) for name, spec in streams.items()}
    if workers is None:
        workers = default_workers(len(jobs), sum(int(np.size(job["t"])) for job in jobs.values()))
    elif not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ConfigError(f"workers must be a positive integer, got {workers!r}")

    def run(name):
        return align_stream(ref, name=name, **jobs[name])

    if workers == 1 or len(jobs) <= 1:
        return {name: run(name) for name in jobs}
    biggest_first = sorted(jobs, key=lambda name: -int(np.size(jobs[name]["t"])))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="collector-align") as pool:
        futures = {name: pool.submit(run, name) for name in biggest_first}
        return {name: futures[name].result() for name in jobs}
