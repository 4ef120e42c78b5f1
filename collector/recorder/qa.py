"""Quality checks on a recorded episode: validate_episode(path) -> list of problems (empty = passes).

Each problem is one sentence naming what is wrong and where, so the CLI can list them and the
session layer can store them in its catalogue. Checks:
  schema/metadata  the file is an episode of a version we read, finalized, with the required
                   attributes (conditions with lighting and weights included);
  streams          required streams present and non-empty, every declared stream has samples;
  gaps             no interval between samples longer than the stream's tolerance;
  frozen cameras   no camera repeating an identical frame for `frozen_s` seconds or more;
  NaNs             no non-finite value in raw float fields or the aligned view;
  joint limits     positions and actions inside the robot's limits (argument, or the episode's
                   `joint_limits` metadata), up to a small margin;
  too short        at least `min_duration_s` long with at least 2 aligned rows;
  aligned view     present, consistent row counts, every row within tolerance of every stream.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import h5py
import numpy as np

from collector.errors import DataError
from collector.recorder import schema
from collector.recorder.reader import EpisodeReader

DEFAULT_REQUIRED_STREAMS = ("joints", "command")
_BLOCK_ROWS = 65536

Limits = Union[Mapping[str, Sequence[float]], Tuple[Sequence[float], Sequence[float]]]


def validate_episode(path, robot_limits: Optional[Limits] = None, *,
                     required_streams: Iterable[str] = DEFAULT_REQUIRED_STREAMS, min_duration_s: float = 1.0,
                     frozen_s: float = 1.0, limit_margin: float = 1e-3) -> List[str]:
    """Check one episode file against the schema and the QA rules; returns every problem found.

    robot_limits: {"lower": [...], "upper": [...]} or (lower, upper) joint position limits, one per
    qpos entry. When None, the episode's `joint_limits` metadata is used if it has one.
    """
    try:
        reader = EpisodeReader(path)
    except DataError as exc:
        return [str(exc)]
    try:
        return _Checks(reader, robot_limits, tuple(required_streams), min_duration_s, frozen_s, limit_margin).run()
    except (DataError, OSError, KeyError, ValueError) as exc:  # a damaged file is a problem to report
        return [f"cannot be checked: {type(exc).__name__}: {exc}"]
    finally:
        reader.close()


def episode_files(path) -> List[Path]:
    """The episode files a path names: itself, or every *.h5 under a folder (partial ones included)."""
    path = Path(path)
    if path.is_dir():
        return sorted(p for p in path.rglob("*.h5") if p.is_file())
    return [path]


class _Checks:
    def __init__(self, reader: EpisodeReader, robot_limits, required, min_duration_s, frozen_s, margin):
        self.r = reader
        self.h5 = reader.h5
        self.required = required
        self.min_duration_s = min_duration_s
        self.frozen_s = frozen_s
        self.margin = margin
        self.problems: List[str] = []
        self.limits = _parse_limits(robot_limits if robot_limits is not None
                                    else reader.metadata.get("joint_limits"), self.problems)

    def run(self) -> List[str]:
        self.check_metadata()
        self.check_streams()
        self.check_duration()
        if self.r.is_partial:
            self.problems.append("partial episode: its writer did not finish it; run `collector recover` on it")
        else:
            self.check_aligned_view()
        return self.problems

    # -- metadata ------------------------------------------------------------------------------
    def check_metadata(self) -> None:
        md = self.r.metadata
        for key in schema.REQUIRED_METADATA:
            if key not in md:
                self.problems.append(f"metadata: required attribute {key!r} is missing")
        if "outcome" in md and md["outcome"] not in schema.OUTCOMES:
            self.problems.append(f"metadata: outcome {md['outcome']!r} is not one of {schema.OUTCOMES}")
        conditions = md.get("conditions")
        if "conditions" in md and not isinstance(conditions, dict):
            self.problems.append("metadata: conditions is not a JSON object")
        elif isinstance(conditions, dict):
            for key in ("lighting", "weights"):
                if not conditions.get(key):
                    self.problems.append(
                        f"metadata: conditions has no {key!r} (conditions are recorded with every take)")

    # -- raw streams ----------------------------------------------------------------------------
    def check_streams(self) -> None:
        from collector.sync import stream_report

        specs = self.r.streams
        for name in self.required:
            if name not in specs:
                self.problems.append(f"missing stream {name!r} (declared: {sorted(specs)})")
        for name, spec in specs.items():
            n = self.r.count(name)
            if n == 0:
                self.problems.append(f"stream {name!r} has no samples")
                continue
            t = self.r.stamps(name)
            report = stream_report(t, name=name, nominal_rate_hz=spec.rate_hz,
                                   gap_periods=spec.tolerance * spec.rate_hz)
            if report.gaps:
                longest = max(report.gaps, key=lambda g: g[1] - g[0])
                self.problems.append(
                    f"stream {name!r}: {len(report.gaps)} gap(s) longer than its tolerance "
                    f"{spec.tolerance * 1e3:.1f} ms, longest {(longest[1] - longest[0]) * 1e3:.1f} ms "
                    f"after t={longest[0]:.3f} s")
            if report.n_non_monotonic:
                self.problems.append(f"stream {name!r}: {report.n_non_monotonic} stamp(s) go backwards")
            if spec.is_camera:
                self.check_frozen(name, t)
            else:
                for field_name, field in spec.fields.items():
                    if np.dtype(field.dtype).kind == "f":
                        self.check_finite(self.r.raw(name, field_name), n, f"/raw/{name}/{field_name}")
        if "joints" in specs and "position" in specs["joints"].fields and self.r.count("joints"):
            self.check_limits(self.r.raw("joints", "position"), self.r.count("joints"), "raw joints position")

    def check_frozen(self, name: str, t: np.ndarray) -> None:
        crc = self.r.frame_crc32(name)
        if crc.size < 2:
            return
        change = np.flatnonzero(crc[1:] != crc[:-1]) + 1
        starts = np.concatenate(([0], change))
        ends = np.concatenate((change, [crc.size])) - 1  # last index of each run
        spans = t[ends] - t[starts]
        worst = int(np.argmax(spans))
        if spans[worst] >= self.frozen_s and ends[worst] > starts[worst]:
            frames = int(ends[worst] - starts[worst] + 1)
            self.problems.append(
                f"camera {name!r}: frozen for {spans[worst]:.2f} s ({frames} identical frames from "
                f"t={t[starts[worst]]:.3f} s)")

    def check_finite(self, ds: h5py.Dataset, n: int, label: str) -> None:
        bad = 0
        for start in range(0, n, _BLOCK_ROWS):
            block = ds[start:min(n, start + _BLOCK_ROWS)]
            bad += int(np.count_nonzero(~np.isfinite(block.reshape(block.shape[0], -1)).all(axis=1)))
        if bad:
            self.problems.append(f"{label}: {bad} row(s) with NaN or inf")

    def check_limits(self, ds: h5py.Dataset, n: int, label: str) -> None:
        if self.limits is None:
            return
        lower, upper = self.limits
        if ds.shape[1:] != lower.shape:
            self.problems.append(f"{label}: {ds.shape[1:]} values per row but the joint limits have {lower.size}")
            return
        rows_out = 0
        excess = np.zeros(lower.shape)
        for start in range(0, n, _BLOCK_ROWS):
            block = ds[start:min(n, start + _BLOCK_ROWS)].astype(np.float64)
            over = np.maximum(block - upper, lower - block)  # > 0 outside
            rows_out += int(np.count_nonzero((over > self.margin).any(axis=1)))
            excess = np.maximum(excess, over.max(axis=0))
        if rows_out:
            joint = int(np.argmax(excess))
            self.problems.append(f"{label}: {rows_out} row(s) outside the joint limits (worst: joint {joint} by "
                                 f"{excess[joint]:.4g})")

    def check_duration(self) -> None:
        md = self.r.metadata
        duration = float(md.get("duration_s") or 0.0)
        if self.r.is_partial:
            spans = [self.r.stamps(s)[[0, -1]] for s in self.r.streams if self.r.count(s)]
            duration = float(max(b for _, b in spans) - min(a for a, _ in spans)) if spans else 0.0
        if duration < self.min_duration_s:
            self.problems.append(f"too short: {duration:.2f} s (minimum {self.min_duration_s:.2f} s)")

    # -- aligned view ---------------------------------------------------------------------------
    def check_aligned_view(self) -> None:
        if not self.r.has_aligned_view:
            self.problems.append("no aligned view (/timestamps missing)")
            return
        T = int(self.h5[schema.TIMESTAMPS].shape[0])
        if T < 2:
            self.problems.append(f"aligned view has {T} row(s); at least 2 are needed for training")
        datasets: Dict[str, h5py.Dataset] = {}

        def collect(name, node):
            if isinstance(node, h5py.Dataset):
                datasets[name] = node
        for root in (schema.OBSERVATIONS, schema.ACTION):
            node = self.h5.get(root)
            if isinstance(node, h5py.Dataset):
                datasets[root] = node
            elif isinstance(node, h5py.Group):
                node.visititems(lambda name, obj, root=root: collect(f"{root}/{name}", obj))
        for name, ds in sorted(datasets.items()):
            if ds.shape[0] != T:
                self.problems.append(f"aligned view: /{name} has {ds.shape[0]} rows, /timestamps has {T}")
            elif ds.dtype.kind == "f":
                self.check_finite(ds, T, f"aligned /{name}")
        if schema.ACTION in datasets and T:
            self.check_limits(datasets[schema.ACTION], T, "aligned /action")
        qpos = datasets.get("observations/qpos")
        if qpos is not None and T:
            self.check_limits(qpos, T, "aligned /observations/qpos")
        for stream in self.r.synced_streams:
            sync = self.r.sync(stream)
            invalid = int(np.count_nonzero(~sync["valid"]))
            if invalid:
                tolerance = float(self.h5[schema.SYNC_GROUP][stream].attrs.get("tolerance_s", np.nan))
                self.problems.append(f"aligned view: {invalid} of {T} rows have no {stream!r} sample within "
                                     f"its tolerance {tolerance * 1e3:.1f} ms")
        compressed = bool(self.r.metadata.get("compress", False))
        if compressed and schema.COMPRESS_LEN not in self.h5:
            self.problems.append("aligned view: compress=True but /compress_len is missing")


def _parse_limits(limits, problems: List[str]) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    if limits is None:
        return None
    try:
        if isinstance(limits, Mapping):
            lower, upper = limits["lower"], limits["upper"]
        else:
            lower, upper = limits
        lower = np.asarray(lower, dtype=np.float64)
        upper = np.asarray(upper, dtype=np.float64)
    except (KeyError, TypeError, ValueError) as exc:
        problems.append(f"joint limits unusable ({exc}); expected {{'lower': [...], 'upper': [...]}}")
        return None
    if lower.shape != upper.shape or lower.ndim != 1 or np.any(lower > upper):
        problems.append(f"joint limits unusable: lower {lower.shape} / upper {upper.shape} must be equal-length "
                        "lists with lower <= upper")
        return None
    return lower, upper
