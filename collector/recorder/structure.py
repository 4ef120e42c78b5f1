"""check_structure: is an open episode file shaped as the format says, before anyone reads its data?

Every reader (EpisodeReader, so every command) runs this once when it opens a file, so a damaged file
is refused with one `DataError("<file>: <what is wrong>")` instead of failing later, deep in some
command, with a KeyError or an IndexError. It reads metadata only (attributes, dataset shapes and
dtypes, the chunk indexes of raw datasets) plus the small per-row index arrays (JPEG offsets and
sizes, /sync indexes, /compress_len): cheap next to any data read, and independent of image sizes.

What it checks:
  metadata      every root attribute decodes (JSON ones included);
  /raw          each stream has a readable description (attribute `spec`) and the datasets its
                layout needs, with the declared dtype and row shape; in a finished file every
                dataset of a stream has one row per stamp and every JPEG frame lies inside the bytes;
  aligned view  a finished file has /timestamps, and every /observations, /action, image and /sync
                dataset has one row per timestamp, numeric dtypes, the widths of the raw fields it was
                made from, and /sync indexes that point at existing raw samples;
  counters      /recorder/counters (a killed file's only drop counts) decodes.
What is left to `collector validate` (qa.py): the values themselves (stamps in order, NaN, frame CRCs
and decoding, aligned rows equal to the raw samples they name, gaps, limits).
"""
from __future__ import annotations

import json
from typing import Dict

import h5py
import numpy as np

from collector.errors import CollectorError, DataError
from collector.recorder import schema
from collector.recorder.raw_store import LAYOUT_FRAMES, LAYOUT_JPEG, layout_for
from collector.recorder.streams import StreamSpec

# Errors h5py raises for a damaged file (bad object headers, B-trees, heaps, unreadable attributes).
HDF5_ERRORS = (OSError, RuntimeError, KeyError, ValueError, TypeError, AttributeError, IndexError)


class _Damaged(DataError):
    """One structural problem, without the file name (check_structure and EpisodeReader add it)."""


def check_structure(h5: h5py.File, path, metadata: Dict) -> Dict[str, StreamSpec]:
    """Raise DataError naming `path` and the first structural problem; return the stream specs."""
    try:
        specs = _raw_streams(h5)
        partial = metadata.get("status") == schema.STATUS_RECORDING
        counts = {name: _check_stream(h5[schema.RAW_GROUP][name], spec, partial) for name, spec in specs.items()}
        if not partial:
            _check_aligned_view(h5, specs, counts, metadata)
        _check_counters(h5)
    except _Damaged as exc:
        raise DataError(f"{path}: {exc}") from None
    except CollectorError as exc:
        raise DataError(f"{path}: {exc}") from exc
    except HDF5_ERRORS as exc:
        raise DataError(f"{path}: damaged file, HDF5 cannot read its structure ({type(exc).__name__}: {exc})") from exc
    return specs


# -- /raw ------------------------------------------------------------------------------------------------

def _raw_streams(h5: h5py.File) -> Dict[str, StreamSpec]:
    raw = h5.get(schema.RAW_GROUP)
    if not isinstance(raw, h5py.Group):
        raise _Damaged(f"no /{schema.RAW_GROUP} group (the recorded streams)")
    specs = {}
    for name, group in raw.items():
        if not isinstance(group, h5py.Group):
            raise _Damaged(f"/{schema.RAW_GROUP}/{name} is not a stream group")
        text = group.attrs.get("spec")
        if text is None:
            raise _Damaged(f"/{schema.RAW_GROUP}/{name} has no stream description (attribute 'spec')")
        try:
            spec = StreamSpec.from_json(text.decode() if isinstance(text, bytes) else str(text))
        except (ValueError, CollectorError) as exc:
            raise _Damaged(f"/{schema.RAW_GROUP}/{name}: stream description (attribute 'spec') is unreadable: "
                           f"{exc}") from None
        specs[name] = spec
    return specs


def _expected_datasets(spec: StreamSpec) -> Dict[str, tuple]:
    """{dataset: (dtype kinds accepted, row shape or None for any, exact dtype or None)}."""
    layout = layout_for(spec)
    out = {"t": ("f", (), None)}
    if layout == LAYOUT_JPEG:
        out.update({"jpeg": ("u", (), "uint8"), "jpeg_offset": ("i", (), None), "jpeg_size": ("iu", (), None),
                    "crc32": ("u", (), "uint32")})
    elif layout == LAYOUT_FRAMES:
        out.update({"image": ("u", spec.fields["image"].shape, "uint8"), "crc32": ("u", (), "uint32")})
    else:
        for field_name, field in spec.fields.items():
            out[field_name] = ("biuf", field.shape, field.dtype)
    return out


def _check_stream(group: h5py.Group, spec: StreamSpec, partial: bool) -> int:
    where = group.name
    datasets = {}
    for name, (kinds, row_shape, dtype) in _expected_datasets(spec).items():
        ds = group.get(name)
        if not isinstance(ds, h5py.Dataset):
            raise _Damaged(f"{where} has no dataset {name!r} (its {layout_for(spec)} layout needs it)")
        if ds.dtype.kind not in kinds or (dtype is not None and ds.dtype != np.dtype(dtype)):
            raise _Damaged(f"{where}/{name} holds {ds.dtype} values, expected {dtype or _kind_names(kinds)}")
        if ds.ndim == 0 or tuple(ds.shape[1:]) != tuple(row_shape):
            raise _Damaged(f"{where}/{name} has shape {ds.shape}, expected {('N',) + tuple(row_shape)}"
                           .replace("'N'", "N"))
        if ds.chunks is not None and not partial:  # (a partial file may be growing under a live writer)
            ds.id.get_num_chunks()  # reads the chunk index: a damaged one fails here, not mid-command
        datasets[name] = ds
    n = int(datasets["t"].shape[0])
    if partial:
        return n  # rows may disagree until recovery trims them (raw_store.consistent_length)
    for name, ds in datasets.items():
        if name != "jpeg" and ds.shape[0] != n:
            raise _Damaged(f"{where}/{name} has {ds.shape[0]} rows but {where}/t has {n} stamps")
    if layout_for(spec) == LAYOUT_JPEG and n:
        offsets = datasets["jpeg_offset"][()].astype(np.int64)
        sizes = datasets["jpeg_size"][()].astype(np.int64)
        total = int(datasets["jpeg"].shape[0])
        bad = np.flatnonzero((offsets < 0) | (sizes <= 0) | (offsets + sizes > total))
        if bad.size:
            k = int(bad[0])
            raise _Damaged(f"{where}: {bad.size} frame(s) lie outside the stored JPEG bytes (first: frame {k}, "
                           f"offset {offsets[k]}, size {sizes[k]}, {total} bytes stored)")
    return n


def _kind_names(kinds: str) -> str:
    names = {"b": "bool", "i": "signed integer", "u": "unsigned integer", "f": "float"}
    return " or ".join(names[k] for k in kinds) + " values"


# -- aligned view ----------------------------------------------------------------------------------------

def _check_aligned_view(h5: h5py.File, specs: Dict[str, StreamSpec], counts: Dict[str, int],
                        metadata: Dict) -> None:
    stamps = h5.get(schema.TIMESTAMPS)
    if not isinstance(stamps, h5py.Dataset):
        raise _Damaged(f"a finished episode without its aligned view (/{schema.TIMESTAMPS} is missing)")
    if stamps.dtype.kind != "f" or stamps.ndim != 1:
        raise _Damaged(f"/{schema.TIMESTAMPS} is {stamps.dtype} with shape {stamps.shape}, expected (T,) float")
    T = int(stamps.shape[0])
    sync = h5.get(schema.SYNC_GROUP)
    if not isinstance(sync, h5py.Group):
        raise _Damaged(f"aligned view has no /{schema.SYNC_GROUP} group (which raw sample fed each row)")
    for stream in sync.keys():
        _check_sync(sync[stream], stream, specs, counts, T)
    targets, cameras = _view_contents(specs, metadata)
    # A stream with samples is in the view (its /sync group, its datasets) whenever the view has rows.
    needed = [s for s in sorted({s for s, _, _ in targets} | {c.name for c in cameras}) if counts.get(s)]
    missing = [s for s in needed if s not in sync] if T else []
    if missing:
        raise _Damaged(f"aligned view has no /{schema.SYNC_GROUP}/{missing[0]} although the stream has samples")
    for stream, field_name, path in targets:
        if stream in sync:
            _check_view_dataset(h5, path, T, specs[stream].fields[field_name].shape)
    for root in (schema.OBSERVATIONS, schema.ACTION):
        node = h5.get(root)
        if isinstance(node, h5py.Dataset):
            _check_view_dataset(h5, root, T, None)
        elif isinstance(node, h5py.Group):
            for name, child in node.items():
                if isinstance(child, h5py.Dataset):
                    _check_view_dataset(h5, f"{root}/{name}", T, None)
    _check_images(h5, [c for c in cameras if c.name in sync], T)


def _view_contents(specs: Dict[str, StreamSpec], metadata: Dict):
    """(numeric targets, cameras) the recorded aligned-view settings put in the view."""
    from collector.recorder.aligned import AlignedViewConfig, view_targets

    settings = metadata.get("aligned_view")
    if not isinstance(settings, dict):
        raise _Damaged("root attribute 'aligned_view' (the aligned view's settings) is missing or not a JSON object")
    try:
        config = AlignedViewConfig.from_dict(settings).resolve(specs)
    except (CollectorError, KeyError, TypeError, ValueError) as exc:
        raise _Damaged(f"root attribute 'aligned_view' does not fit the recorded streams: {exc}") from None
    return view_targets(specs, config), [s for s in specs.values() if s.is_camera]


def _check_sync(group, stream: str, specs, counts, T: int) -> None:
    where = f"/{schema.SYNC_GROUP}/{stream}"
    if stream not in specs:
        raise _Damaged(f"{where} names a stream that /{schema.RAW_GROUP} does not have")
    for key, kinds in (("index", "iu"), ("error", "f"), ("valid", "bu")):
        ds = group.get(key) if isinstance(group, h5py.Group) else None
        if not isinstance(ds, h5py.Dataset):
            raise _Damaged(f"{where} has no {key!r} dataset")
        if ds.dtype.kind not in kinds or ds.shape != (T,):
            raise _Damaged(f"{where}/{key} is {ds.dtype} with shape {ds.shape}, expected ({T},) "
                           f"(one per row of /{schema.TIMESTAMPS})")
    index = group["index"][()].astype(np.int64)
    bad = np.flatnonzero((index < 0) | (index >= counts[stream]))
    if bad.size:
        raise _Damaged(f"{where}/index points at {bad.size} raw sample(s) that do not exist (first: row {bad[0]} "
                       f"-> sample {index[bad[0]]}; /{schema.RAW_GROUP}/{stream} has {counts[stream]})")


def _check_view_dataset(h5, path: str, T: int, row_shape) -> None:
    ds = h5.get(path)
    if not isinstance(ds, h5py.Dataset):
        raise _Damaged(f"aligned view has no /{path}")
    if ds.dtype.kind not in "biuf":
        raise _Damaged(f"aligned view /{path} holds {ds.dtype} values, expected numbers")
    if ds.ndim == 0 or ds.shape[0] != T:
        raise _Damaged(f"aligned view /{path} has {ds.shape[0] if ds.ndim else 0} rows, /{schema.TIMESTAMPS} has {T}")
    if row_shape is not None and tuple(ds.shape[1:]) != tuple(row_shape):
        raise _Damaged(f"aligned view /{path} has rows of shape {ds.shape[1:]}, its raw field has {tuple(row_shape)}")


def _check_images(h5, camera_specs, T: int) -> None:
    cameras = {spec.camera_name: spec for spec in camera_specs}
    if not cameras:
        return
    images = h5.get(schema.IMAGES)
    if not isinstance(images, h5py.Group):
        raise _Damaged(f"aligned view has no /{schema.IMAGES} group for cameras {sorted(cameras)}")
    lengths = None
    for camera, spec in sorted(cameras.items()):
        ds = images.get(camera)
        where = f"/{schema.IMAGES}/{camera}"
        if not isinstance(ds, h5py.Dataset):
            raise _Damaged(f"aligned view has no {where} (cameras there: {sorted(images.keys())})")
        codec = ds.attrs.get("codec")
        if ds.dtype != np.uint8 or ds.ndim == 0 or ds.shape[0] != T:
            raise _Damaged(f"aligned view {where} is {ds.dtype} with shape {ds.shape}, expected uint8 with {T} rows")
        if codec == "jpeg":
            if ds.ndim != 2:
                raise _Damaged(f"aligned view {where} has shape {ds.shape}, expected (T, bytes) padded JPEG rows")
            lengths = _compress_len(h5, T) if lengths is None else lengths
            names, table = lengths
            if camera not in names:
                raise _Damaged(f"/{schema.COMPRESS_LEN} does not list camera {camera!r} (it lists {names})")
            row = table[names.index(camera)]
            if np.any(row <= 0) or np.any(row > ds.shape[1]):
                raise _Damaged(f"/{schema.COMPRESS_LEN}: {int(np.count_nonzero((row <= 0) | (row > ds.shape[1])))} "
                               f"JPEG length(s) of camera {camera!r} outside 1..{ds.shape[1]}")
        elif tuple(ds.shape[1:]) != tuple(spec.fields["image"].shape):
            raise _Damaged(f"aligned view {where} has frames of shape {ds.shape[1:]}, the camera records "
                           f"{spec.fields['image'].shape}")


def _compress_len(h5, T: int):
    ds = h5.get(schema.COMPRESS_LEN)
    if not isinstance(ds, h5py.Dataset):
        raise _Damaged(f"JPEG images in the aligned view but no /{schema.COMPRESS_LEN} (their byte lengths)")
    try:
        names = json.loads(ds.attrs["cameras"])
    except (KeyError, ValueError) as exc:
        raise _Damaged(f"/{schema.COMPRESS_LEN}: attribute 'cameras' is missing or not JSON ({exc})") from None
    if not isinstance(names, list) or ds.dtype.kind not in "iu" or ds.shape != (len(names), T):
        raise _Damaged(f"/{schema.COMPRESS_LEN} is {ds.dtype} with shape {ds.shape}, expected ({len(names)}, {T})")
    return names, ds[()].astype(np.int64)


# -- counters --------------------------------------------------------------------------------------------

def read_counters(h5: h5py.File) -> Dict[str, Dict[str, int]]:
    """/recorder/counters as {stream: {column: value}} ({} when absent); _Damaged if unreadable."""
    ds = h5.get(schema.COUNTERS_PATH)
    if ds is None:
        return {}
    try:
        columns = json.loads(ds.attrs["columns"])
        names = json.loads(ds.attrs["streams"])
        table = ds[()]
        if table.shape != (len(names), len(columns)):
            raise ValueError(f"table shape {table.shape} does not match {len(names)} streams x {len(columns)} columns")
        return {str(name): dict(zip(columns, map(int, table[i]))) for i, name in enumerate(names)}
    except (KeyError, ValueError, TypeError) as exc:
        raise _Damaged(f"/{schema.COUNTERS_PATH} is unreadable ({type(exc).__name__}: {exc})") from None


def _check_counters(h5: h5py.File) -> None:
    read_counters(h5)
