"""Quality checks on a recorded episode: validate_episode(path) -> list of problems (empty = passes).

Each problem is one sentence naming what is wrong and where, so the CLI can list them and the
session layer can store them in its catalogue. Checks:
  schema/metadata  the file is an episode of a version we read, finalized, with the required
                   attributes (conditions with lighting and weights included);
  streams          required streams present and non-empty, every declared stream has samples
                   (but `input` may be empty when `control` shows the operator never commanded:
                   a policy rollout);
  gaps             no interval between samples longer than the stream's tolerance;
  frozen cameras   no camera repeating an identical frame for `frozen_s` seconds or more (in a simulated
                   take, unless another camera's picture changed meanwhile: a still view, not a stall);
  NaNs             no non-finite value in raw float fields or the aligned view;
  joint limits     positions and actions inside the robot's limits (argument, or the episode's
                   `joint_limits` metadata), up to a small margin;
  too short        at least `min_duration_s` long with at least 2 aligned rows;
  aligned view     present, consistent row counts, every row within tolerance of every stream;
  damage           every camera frame matches its stored CRC32 and JPEG frames decode (naming the
                   frames); stamps finite, /timestamps increasing, a stream's stamps not mostly
                   repeating; /sync and every aligned dataset and frame equal to what /raw gives.
A file whose structure is wrong (collector.recorder.structure, checked by EpisodeReader) is one
problem naming the file and what is wrong.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import h5py
import numpy as np

from collector.errors import DataError
from collector.recorder import schema
from collector.recorder.frames import decode_jpeg, frame_crc32
from collector.recorder.reader import EpisodeReader, about_file
from collector.recorder.vocabulary import COMMAND, CONTROL, INPUT, JOINTS

DEFAULT_REQUIRED_STREAMS = (JOINTS, COMMAND)
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
    except Exception as exc:  # a damaged file is a problem to report; anything else is a bug to raise
        named = about_file(reader.path, exc)
        if not isinstance(named, DataError):
            raise
        return [f"cannot be checked: {named}"]
    finally:
        reader.close()


def episode_files(path) -> List[Path]:
    """The episode files a path names: itself, or every episode file under a folder (*.hdf5, legacy *.h5,
    partial ones included)."""
    path = Path(path)
    if path.is_dir():
        return schema.episode_files_under(path)
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
        self._changes: Optional[Dict[str, np.ndarray]] = None  # camera -> stamps where its picture changed (_picture_changes)
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
    def _operator_never_commanded(self) -> bool:
        """The `control` stream has rows and none of them names the operator (e.g. a policy rollout)."""
        spec = self.r.streams.get(CONTROL)
        codes = (spec.attrs or {}).get("sources") if spec is not None else None
        n = self.r.count(CONTROL) if spec is not None else 0
        if not isinstance(codes, dict) or "operator" not in codes or n == 0:
            return False
        return not np.any(self.r.raw(CONTROL, "source")[:n] == codes["operator"])

    def check_streams(self) -> None:
        from collector.sync import stream_report

        specs = self.r.streams
        for name in self.required:
            if name not in specs:
                self.problems.append(f"missing stream {name!r} (declared: {sorted(specs)})")
        for name, spec in specs.items():
            n = self.r.count(name)
            if n == 0:
                if not (name == INPUT and self._operator_never_commanded()):  # a policy rollout hears no operator
                    self.problems.append(f"stream {name!r} has no samples")
                continue
            t = self.r.stamps(name)
            if not self.check_stamps(t, f"stream {name!r}"):
                continue
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
            repeats = int(np.count_nonzero(np.diff(t) == 0))
            # A sensor may repeat some stamps; a stream whose stamps mostly stand still was damaged.
            if repeats > 0.5 * n:
                self.problems.append(f"stream {name!r}: {repeats} of {n} stamp(s) repeat the previous one")
            if spec.is_camera:
                self.check_frozen(name, t)
                self.check_frames(name, n)
            else:
                for field_name, field in spec.fields.items():
                    if np.dtype(field.dtype).kind == "f":
                        self.check_finite(self.r.raw(name, field_name), n, f"/raw/{name}/{field_name}")
        if JOINTS in specs and "position" in specs[JOINTS].fields and self.r.count(JOINTS):
            self.check_limits(self.r.raw(JOINTS, "position"), self.r.count(JOINTS), "raw joints position")

    def check_stamps(self, t: np.ndarray, label: str) -> bool:
        """False (and a problem) if stamps are not finite: no timing check can use them then."""
        bad = np.flatnonzero(~np.isfinite(t))
        if bad.size:
            self.problems.append(f"{label}: {bad.size} stamp(s) are NaN or inf (first at index {bad[0]})")
        return not bad.size

    def check_frames(self, name: str, n: int) -> None:
        """Every stored frame still has the CRC32 it was recorded with, and JPEG frames decode."""
        frames = self.r.images(name)
        stored = self.r.frame_crc32(name)
        wrong, undecodable = [], []
        for i in range(n):
            data = frames.encoded(i) if frames.is_jpeg else self.r.h5[schema.RAW_GROUP][name]["image"][i]
            buffer = np.frombuffer(data, np.uint8) if frames.is_jpeg else data
            if frame_crc32(buffer) != int(stored[i]):
                wrong.append(i)
            elif frames.is_jpeg and not _decodes(buffer):
                undecodable.append(i)
        if wrong:
            self.problems.append(f"camera {name!r}: {len(wrong)} of {n} frame(s) fail their stored CRC32 "
                                 f"(frames {_indices(wrong)}): the stored bytes changed after recording")
        if undecodable:
            self.problems.append(f"camera {name!r}: {len(undecodable)} frame(s) do not decode as JPEG "
                                 f"(frames {_indices(undecodable)})")

    def check_frozen(self, name: str, t: np.ndarray) -> None:
        starts, ends = _identical_runs(self.r.frame_crc32(name))
        if starts.size == 0:
            return
        spans = t[ends] - t[starts]
        long_runs = [i for i in np.flatnonzero((spans >= self.frozen_s) & (ends > starts))
                     if not self._another_camera_changed(name, t[starts[i]], t[ends[i]])]
        if long_runs:
            worst = max(long_runs, key=lambda i: spans[i])
            frames = int(ends[worst] - starts[worst] + 1)
            self.problems.append(
                f"camera {name!r}: frozen for {spans[worst]:.2f} s ({frames} identical frames from "
                f"t={t[starts[worst]]:.3f} s)")

    def _another_camera_changed(self, name: str, t0: float, t1: float) -> bool:
        """In a simulated take every camera is rendered from one scene in the same tick, so one camera's
        identical frames while another's change are a still view (a wrist camera on an arm at rest, noise-free
        rendering), not a stalled camera. A real camera has sensor noise: identical frames are a stall."""
        if not self.r.metadata.get("sim"):
            return False
        return any(np.any((changes > t0) & (changes <= t1))
                   for other, changes in self._picture_changes().items() if other != name)

    def _picture_changes(self) -> Dict[str, np.ndarray]:
        """Per camera, the stamps at which its picture changed; read once per episode, whatever the runs."""
        if self._changes is None:
            self._changes = {}
            for other, spec in self.r.streams.items():
                if spec.is_camera and self.r.count(other) >= 2:
                    starts, _ = _identical_runs(self.r.frame_crc32(other))
                    self._changes[other] = np.asarray(self.r.stamps(other))[starts[1:]]
        return self._changes

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
        lower, upper, tolerance, names = self.limits
        allowed = np.maximum(tolerance, self.margin)  # per joint: the episode's recorded tolerance (sim soft limits)
        if ds.shape[1:] != lower.shape:
            self.problems.append(f"{label}: {ds.shape[1:]} values per row but the joint limits have {lower.size}")
            return
        rows_out = 0
        excess = np.zeros(lower.shape)
        for start in range(0, n, _BLOCK_ROWS):
            block = ds[start:min(n, start + _BLOCK_ROWS)].astype(np.float64)
            over = np.maximum(block - upper, lower - block)  # > 0 outside
            rows_out += int(np.count_nonzero((over > allowed).any(axis=1)))
            excess = np.maximum(excess, over.max(axis=0))
        if rows_out:
            joint = int(np.argmax(excess - allowed))
            name = f"{names[joint]!r} (joint {joint})" if names else f"joint {joint}"
            self.problems.append(f"{label}: {rows_out} row(s) outside the joint limits (worst: {name} by "
                                 f"{excess[joint]:.4g}, tolerance {allowed[joint]:.4g})")

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
        timestamps = self.r.timestamps
        if not self.check_stamps(timestamps, f"aligned /{schema.TIMESTAMPS}"):
            return
        if T > 1 and np.any(np.diff(timestamps) <= 0):
            self.problems.append(f"aligned /{schema.TIMESTAMPS}: {int(np.count_nonzero(np.diff(timestamps) <= 0))} "
                                 "row(s) do not come after the previous one")
        for stream in self.r.synced_streams:
            self.check_sync_matches_raw(stream, timestamps)
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
        for camera in self.r.aligned_cameras:
            self.check_aligned_frames(camera)
        compressed = bool(self.r.metadata.get("compress", False))
        if compressed and schema.COMPRESS_LEN not in self.h5:
            self.problems.append("aligned view: compress=True but /compress_len is missing")


    def check_sync_matches_raw(self, stream: str, timestamps: np.ndarray) -> None:
        """/sync/<stream> and the view's datasets from that stream are what /raw and /timestamps give."""
        sync = self.r.sync(stream)
        t = self.r.stamps(stream)
        if not np.isfinite(t).all():
            return  # reported with the stream
        index = sync["index"].astype(np.int64)
        off = np.flatnonzero(~(np.abs(t[index] - timestamps - sync["error"]) <= 1e-6))
        if off.size:
            self.problems.append(f"aligned view: /sync/{stream} disagrees with the raw stamps and /timestamps in "
                                 f"{off.size} row(s) (rows {_indices(off.tolist())})")
            return
        for path, ds in self._view_datasets_from(stream):
            field_name = ds.attrs["source"].rsplit("/", 1)[-1]
            expected = _realign(self.h5, self.r.streams[stream], field_name, path, timestamps, index)
            differ = ~_same_rows(expected, ds[()])
            if differ.any():
                rows = np.flatnonzero(differ).tolist()
                self.problems.append(f"aligned /{path}: {len(rows)} row(s) differ from the raw samples of "
                                     f"{stream!r} they were made from (rows {_indices(rows)})")

    def _view_datasets_from(self, stream: str):
        found = []

        def visit(name, node):
            if isinstance(node, h5py.Dataset) and str(node.attrs.get("source", "")).startswith(
                    f"/{schema.RAW_GROUP}/{stream}/"):
                found.append((node.name.lstrip("/"), node))
        for root in (schema.OBSERVATIONS, schema.ACTION):
            node = self.h5.get(root)
            if isinstance(node, h5py.Dataset):
                visit(root, node)
            elif isinstance(node, h5py.Group):
                node.visititems(visit)
        return [(path, ds) for path, ds in found if not path.startswith(schema.IMAGES)]

    def check_aligned_frames(self, camera: str) -> None:
        """Each aligned frame is the raw frame its /sync row names (same CRC32), or at least decodes."""
        stream = next(name for name, spec in self.r.streams.items() if spec.is_camera and spec.camera_name == camera)
        if stream not in self.r.synced_streams:
            return
        index = self.r.sync(stream)["index"].astype(np.int64)
        view = self.r.aligned_images(camera)
        raw_crc = self.r.frame_crc32(stream)
        raw_is_jpeg = self.r.images(stream).is_jpeg
        wrong = []
        for row in range(len(view)):
            if view.is_jpeg and raw_is_jpeg:
                ok = frame_crc32(np.frombuffer(view.encoded(row), np.uint8)) == int(raw_crc[index[row]])
            elif not view.is_jpeg and not raw_is_jpeg:
                ok = frame_crc32(view[row]) == int(raw_crc[index[row]])
            else:  # converted at finalize: only decoding can be checked
                ok = not view.is_jpeg or _decodes(np.frombuffer(view.encoded(row), np.uint8))
            if not ok:
                wrong.append(row)
        if wrong:
            self.problems.append(f"aligned /{schema.IMAGES}/{camera}: {len(wrong)} row(s) are not the raw frame they "
                                 f"name (rows {_indices(wrong)})")


def _realign(h5: h5py.File, spec, field_name: str, path: str, timestamps: np.ndarray, index: np.ndarray) -> np.ndarray:
    """The view dataset `path` as the writer makes it from /raw (same code, into a file in memory)."""
    from collector.recorder.aligned import _write_numeric

    with h5py.File(f"realign-{id(h5)}", "w", driver="core", backing_store=False) as scratch:
        _write_numeric(scratch, h5[schema.RAW_GROUP][spec.name], spec, field_name, path, timestamps, index)
        return scratch[path][()]


def _same_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.shape != b.shape:
        return np.zeros(b.shape[:1], dtype=bool)
    a = a.reshape(a.shape[0], -1)
    b = b.reshape(b.shape[0], -1)
    if a.dtype.kind == "f" or b.dtype.kind == "f":
        # float32 rounding (and alignment code of an older release) differ far below this; damage does not
        return (np.isclose(a, b, rtol=1e-5, atol=1e-6) | (np.isnan(a) & np.isnan(b))).all(axis=1)
    return (a == b).all(axis=1)


def _parse_limits(limits, problems: List[str]) -> Optional[Tuple[np.ndarray, np.ndarray, np.ndarray, Optional[list]]]:
    if limits is None:
        return None
    try:
        if isinstance(limits, Mapping):
            lower, upper = limits["lower"], limits["upper"]
        else:
            lower, upper = limits
        lower = np.asarray(lower, dtype=np.float64)
        upper = np.asarray(upper, dtype=np.float64)
        extra = limits if isinstance(limits, Mapping) else {}
        tolerance = np.broadcast_to(np.asarray(extra.get("tolerance", 0.0), dtype=np.float64), lower.shape)
        names = [str(n) for n in extra.get("joint_names", [])]
        names = names if len(names) == lower.size else None
    except (KeyError, TypeError, ValueError) as exc:
        problems.append(f"joint limits unusable ({exc}); expected {{'lower': [...], 'upper': [...]}}")
        return None
    if lower.shape != upper.shape or lower.ndim != 1 or np.any(lower > upper):
        problems.append(f"joint limits unusable: lower {lower.shape} / upper {upper.shape} must be equal-length "
                        "lists with lower <= upper")
        return None
    return lower, upper, tolerance, names


def _decodes(buffer: np.ndarray) -> bool:
    try:
        decode_jpeg(buffer)
    except DataError:
        return False
    return True


def _indices(indices: Sequence[int], shown: int = 8) -> str:
    text = ", ".join(map(str, indices[:shown]))
    return text + (f", ... ({len(indices) - shown} more)" if len(indices) > shown else "")


def _identical_runs(crc: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """First and last index of each run of identical frames (by CRC32); empty for fewer than 2 frames."""
    if crc.size < 2:
        return np.empty(0, int), np.empty(0, int)
    change = np.flatnonzero(crc[1:] != crc[:-1]) + 1
    return np.concatenate(([0], change)), np.concatenate((change, [crc.size])) - 1

