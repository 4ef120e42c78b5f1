"""Damaged episode files: every file-reading command answers with a result or one named error line.

From a real take (`collector demo --episodes 1`, its first 1.5 s re-recorded through the real writer
so that every command stays cheap) this makes damaged copies: files cut short, byte ranges zeroed
with the size kept, datasets and attributes missing, wrong dtypes and shapes, NaN/inf, reversed and
duplicated stamps, corrupted JPEG bytes, and aligned views that disagree with /raw. Each command that
reads episodes runs on each copy in-process (collector.cli.main). The rules, from issue 13:
  - it succeeds, or exits non-zero with one `collector <cmd>: error: ...` line naming the file;
  - no traceback, and never the CLI's last-resort "unexpected" report;
  - the input file is byte-for-byte unchanged (recover may only replace it by a finished episode);
  - `validate` flags every damaged copy.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import traceback
from pathlib import Path

import h5py
import numpy as np
import pytest

from collector.cli import main
from collector.recorder import EpisodeReader, EpisodeWriter, schema

REPO = Path(__file__).resolve().parents[1]
BASE_SECONDS = 1.2
# Root attributes the writer sets itself (or refuses as reserved) when the take is re-recorded.
_WRITER_OWNED = {"schema", "schema_version", "status", "recovered", "json_attrs", "aligned_view", "recorder_stats",
                 "duration_s", "t_start", "t_end", "aligned_rows", "started_at", "episode_id", "outcome", "compress"}


# -- the base episode: a real take ---------------------------------------------------------------------

def _rerecord(source: Path, directory: Path, episode_id: str, seconds: float, finish: bool) -> Path:
    """The first `seconds` of a recorded take, pushed again through the real EpisodeWriter: the same
    streams, metadata, conditions and aligned-view settings, in a file small enough for many commands.
    finish=False abandons the writer after its flushes, as a killed recording leaves its partial file."""
    with EpisodeReader(source) as reader:
        metadata = {k: v for k, v in reader.metadata.items() if k not in _WRITER_OWNED}
        view = reader.metadata["aligned_view"]
        specs = list(reader.streams.values())
        outcome = reader.metadata.get("outcome", "unknown")
        t0 = min(reader.stamps(s)[0] for s in reader.streams if reader.count(s))
        events = []
        for name, spec in reader.streams.items():
            t = reader.stamps(name)
            keep = np.flatnonzero(t < t0 + seconds)
            if spec.is_camera:
                frames = reader.images(name)
                events += [(t[i], name, {"image": frames[int(i)]}) for i in keep]
            else:
                columns = {f: reader.raw(name, f)[: t.size] for f in spec.fields}
                events += [(t[i], name, {f: c[i] for f, c in columns.items()}) for i in keep]
    events.sort(key=lambda e: e[0])
    writer = EpisodeWriter(directory, episode_id, specs, metadata=metadata, aligned_rate_hz=view.get("rate_hz"),
                           aligned_reference=view.get("reference"), aligned_streams=view.get("extra_streams", ()),
                           queue_seconds=1000.0, fsync=False, min_free_bytes=0, reserve_bytes=0)
    writer.start()
    for t, name, fields in events:
        assert writer.push(name, t, **fields), (name, t)
    if finish:
        return writer.stop(outcome=outcome)
    writer.abandon()  # drains what was pushed and closes the file as a partial one, as a crash at exit leaves it
    return writer.partial_path


@pytest.fixture(scope="module")
def base(tmp_path_factory, demo_take):
    root = tmp_path_factory.mktemp("fuzz")
    final = _rerecord(demo_take, root / "base", "episode_000001", BASE_SECONDS, finish=True)
    partial = _rerecord(demo_take, root / "base", "episode_000002", BASE_SECONDS, finish=False)
    return {"final": final, "partial": partial, "root": root}


# -- damage ----------------------------------------------------------------------------------------------

def _truncate(fraction):
    def damage(path):
        with open(path, "r+b") as fh:
            fh.truncate(int(path.stat().st_size * fraction))
    return damage


def _zero(start_fraction, length_fraction=None, length_bytes=None):
    def damage(path):
        size = path.stat().st_size
        start = int(size * start_fraction)
        length = length_bytes if length_bytes is not None else int(size * length_fraction)
        with open(path, "r+b") as fh:
            fh.seek(start)
            fh.write(b"\0" * min(length, size - start))
    return damage


def _h5(edit):
    def damage(path):
        with h5py.File(path, "r+") as h5:
            edit(h5)
    return damage


def _delete(node):
    return _h5(lambda h5: h5.__delitem__(node))


def _del_attr(node, name):
    return _h5(lambda h5: h5[node].attrs.__delitem__(name))


def _set_attr(node, name, value):
    return _h5(lambda h5: h5[node].attrs.__setitem__(name, value))


def _replace(node, make):
    """Replace a dataset by make(old values) (any dtype or shape)."""
    def edit(h5):
        old = h5[node][()]
        del h5[node]
        h5.create_dataset(node, data=make(old))
    return _h5(edit)


def _write(node, change):
    """Change values in place (same dtype and shape): change(array) -> array."""
    return _h5(lambda h5: _write_in(h5, node, change))


def _write_in(h5, node, change):
    h5[node][...] = change(h5[node][()].copy())


def _rows(rows, value):
    def change(a):
        a[rows] = value
        return a
    return change


def _duplicate_stamps(a):
    a[20:25] = a[19]
    return a


def _zero_half_of_frames(h5):
    """Half of the head camera's JPEG frames zeroed in place: sizes, offsets and CRCs untouched."""
    group = h5["raw/camera_head"]
    offsets, sizes = group["jpeg_offset"][()], group["jpeg_size"][()]
    blob = group["jpeg"][()]
    for k in range(0, offsets.size, 2):
        blob[offsets[k]:offsets[k] + sizes[k]] = 0
    group["jpeg"][...] = blob


def _garble_frame_keeping_crc(h5):
    """One frame's entropy-coded bytes scrambled and its CRC rewritten to match: only decoding finds it."""
    from collector.recorder.frames import frame_crc32

    group = h5["raw/camera_left_wristcamera" if "raw/camera_left_wristcamera" in h5 else "raw/camera_head"]
    k = 3
    start, size = int(group["jpeg_offset"][k]), int(group["jpeg_size"][k])
    frame = group["jpeg"][start:start + size]
    frame[2:] = np.random.default_rng(0).integers(0, 256, size - 2, dtype=np.uint8)
    group["jpeg"][start:start + size] = frame
    group["crc32"][k] = frame_crc32(frame)


def _garble_aligned_row(h5):
    images = h5["observations/images/head"]
    images[4, :] = np.random.default_rng(1).integers(0, 256, images.shape[1], dtype=np.uint8)


def _shift(node, seconds):
    return _write(node, lambda a: a + seconds)


def _nudge_qpos(a):
    a[10:20] += 0.05
    return a


FINAL_VARIANTS = {
    # files cut short (a copy interrupted, a disk that filled)
    "cut_at_10pct": _truncate(0.10),
    "cut_at_50pct": _truncate(0.50),
    "cut_at_90pct": _truncate(0.90),
    "cut_last_100_bytes": lambda p: _truncate((p.stat().st_size - 100) / p.stat().st_size)(p),
    "empty_file": _truncate(0.0),
    # byte ranges zeroed, size kept (a bad sector, a torn write)
    "zeroed_last_30pct": _zero(0.70, 0.30),
    "zeroed_superblock": _zero(0.0, length_bytes=512),
    "zeroed_middle_10pct": _zero(0.45, 0.10),
    "zeroed_64k_at_20pct": _zero(0.20, length_bytes=65536),
    "zeroed_4k_at_97pct": _zero(0.97, length_bytes=4096),
    # missing datasets, groups and attributes
    "no_joints_t": _delete("raw/joints/t"),
    "no_joints_position": _delete("raw/joints/position"),
    "no_command_stream": _delete("raw/command"),
    "no_raw_group": _delete("raw"),
    "no_timestamps": _delete("timestamps"),
    "no_qpos": _delete("observations/qpos"),
    "no_action": _delete("action"),
    "no_head_images": _delete("observations/images/head"),
    "no_compress_len": _delete("compress_len"),
    "no_head_crc32": _delete("raw/camera_head/crc32"),
    "no_head_jpeg_offset": _delete("raw/camera_head/jpeg_offset"),
    "no_sync_joints": _delete("sync/joints"),
    "no_schema_attr": _del_attr("/", "schema"),
    "no_status_and_conditions_attrs": _h5(lambda h5: [h5.attrs.__delitem__(k) for k in ("status", "conditions")]),
    "no_joints_spec_attr": _del_attr("raw/joints", "spec"),
    "conditions_not_json": _set_attr("/", "conditions", "{lighting: oops"),
    "joints_spec_not_json": _set_attr("raw/joints", "spec", "{not json"),
    "joints_spec_incomplete": _set_attr("raw/joints", "spec", json.dumps({"name": "joints"})),
    "counters_columns_not_json": _set_attr("recorder/counters", "columns", "[pushed"),
    "schema_version_99": _set_attr("/", "schema_version", 99),
    "status_says_recording": _set_attr("/", "status", "recording"),
    # wrong dtypes and shapes
    "joints_position_strings": _replace("raw/joints/position", lambda a: a.astype("S8")),
    "timestamps_strings": _replace("timestamps", lambda a: a.astype("S12")),
    "head_crc32_float": _replace("raw/camera_head/crc32", lambda a: a.astype(np.float64) + 0.5),
    "joints_position_1d": _replace("raw/joints/position", lambda a: a[:, 0].copy()),
    "qpos_one_joint_less": _replace("observations/qpos", lambda a: a[:, :-1].copy()),
    "head_images_3d": _replace("observations/images/head", lambda a: a[:, :, None].copy()),
    "joints_t_2d": _replace("raw/joints/t", lambda a: np.stack([a, a], axis=1)),
    # rows that disagree in count
    "qpos_shorter_than_timestamps": _replace("observations/qpos", lambda a: a[:-10].copy()),
    "joints_t_longer_than_position": _replace("raw/joints/t", lambda a: np.r_[a, a[-1] + 0.01 * np.arange(1, 6)]),
    # NaN and inf
    "nan_in_joints_position_inf_in_action": _h5(lambda h5: [
        _write_in(h5, "raw/joints/position", _rows(slice(10, 20), np.nan)),
        _write_in(h5, "action", _rows(slice(5, 8), np.inf))]),
    "nan_in_joints_t": _write("raw/joints/t", _rows(50, np.nan)),
    "nan_in_timestamps": _write("timestamps", _rows(7, np.nan)),
    # reversed and duplicated stamps
    "joints_t_reversed": _write("raw/joints/t", lambda a: a[::-1].copy()),
    "timestamps_reversed": _write("timestamps", lambda a: a[::-1].copy()),
    "joints_t_duplicated": _write("raw/joints/t", _duplicate_stamps),
    "timestamps_duplicated": _write("timestamps", _duplicate_stamps),
    # corrupted camera frames
    "head_frames_half_zeroed": _h5(_zero_half_of_frames),
    "frame_garbled_crc_rewritten": _h5(_garble_frame_keeping_crc),
    "aligned_head_row_garbled": _h5(_garble_aligned_row),
    "head_jpeg_offset_past_end": _write("raw/camera_head/jpeg_offset", _rows(-1, 10 ** 9)),
    "head_jpeg_size_zero": _write("raw/camera_head/jpeg_size", _rows(3, 0)),
    # aligned view inconsistent with /raw
    "sync_index_out_of_range": _write("sync/joints/index", _rows(5, 10 ** 6)),
    "qpos_not_from_raw": _write("observations/qpos", _nudge_qpos),
    "timestamps_shifted_100s": _shift("timestamps", 100.0),
}

PARTIAL_VARIANTS = {
    "intact": lambda p: None,
    "cut_at_60pct": _truncate(0.60),
    "cut_at_95pct": _truncate(0.95),
    "zeroed_last_30pct": _zero(0.70, 0.30),
    "zeroed_middle_10pct": _zero(0.45, 0.10),
    "no_joints_t": _delete("raw/joints/t"),
    "joints_position_strings": _replace("raw/joints/position", lambda a: a.astype("S8")),
    "no_aligned_view_attr": _del_attr("/", "aligned_view"),
    "joints_spec_not_json": _set_attr("raw/joints", "spec", "{not json"),
    "nan_in_joints_t": _write("raw/joints/t", _rows(30, np.nan)),
    "status_says_complete": _set_attr("/", "status", "complete"),
}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _stat(path: Path):
    """Size, modification time and inode: any write to the file (or a replacement of it) changes one."""
    st = path.stat() if path.exists() else None
    return None if st is None else (st.st_size, st.st_mtime_ns, st.st_ino)


def _make(variants, source: Path, folder: Path, suffix: str):
    folder.mkdir(parents=True, exist_ok=True)
    made = {}
    for name, damage in variants.items():
        path = folder / f"{name}{suffix}"
        shutil.copyfile(source, path)
        damage(path)
        made[name] = path
    return made


# -- running commands -----------------------------------------------------------------------------------

class Run:
    def __init__(self, argv, code, out, err, seconds):
        self.argv, self.code, self.out, self.err, self.seconds = argv, code, out, err, seconds


def _run(capsys, argv) -> Run:
    capsys.readouterr()
    started = time.perf_counter()
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse
        code = exc.code
    except BaseException as exc:  # noqa: BLE001 - anything escaping main is a finding
        out, err = capsys.readouterr()
        return Run(argv, "escaped", out, err + "".join(traceback.format_exception(exc)), time.perf_counter() - started)
    out, err = capsys.readouterr()
    return Run(argv, code, out, err, time.perf_counter() - started)


# How the CLI's last-resort handler reports an exception no code path turned into a message.
_LAST_RESORT = ": error: unexpected "


def _problem(run: Run, name: str):
    """None if the run obeys the rules for a damaged file named `name`, else what is wrong."""
    command = run.argv[0]
    if run.code == "escaped" or "Traceback" in run.err or "Traceback" in run.out:
        return f"traceback:\n{run.err[-1500:]}"
    if _LAST_RESORT in run.err:
        return f"the CLI's last-resort handler answered: {run.err.strip()[-500:]}"
    if run.code == 0:
        return None
    errors = [line for line in run.err.splitlines() if line.startswith(f"collector {command}: error:")]
    if run.code == 2:
        if len(errors) != 1:
            return f"exit 2 without exactly one error line: {run.err.strip()[-800:]!r}"
        warnings = [line for line in run.err.splitlines() if line.startswith(f"collector {command}: warning:")]
        # A dataset command that skips a damaged episode names it (and why) in its warning.
        if name not in errors[0] and not any(name in w for w in warnings):
            return f"error line does not name the file: {errors[0]!r} {warnings}"
        return None
    if run.code == 1 and command in ("validate", "check", "stats") and name in run.out:
        return None  # a QA or statistics report that lists the file with its problems
    return f"exit {run.code}: {run.err.strip()[-800:]!r} {run.out.strip()[-300:]!r}"


def _figures(path: Path):
    """The figures that draw what a damage touched (rendering costs 0.2-1 s a figure, joints the most)."""
    name = path.name
    if any(word in name for word in ("cut_", "zeroed", "empty")):
        return ["timeline", "sync", "frames"]  # byte-level damage, which lands anywhere in the file
    if "joints_t" in name:
        return ["timeline"]  # the stamps of every stream, drawn
    figures = []
    if "joints" in name or "command" in name:
        figures.append("joints")
    if any(word in name for word in ("timestamps", "sync", "qpos", "action")):
        figures.append("sync")
    if any(word in name for word in ("head", "frame", "images", "compress")):
        figures.append("frames")
    return figures or ["timeline"]


ENGINE = ["--engine", "inline", "--no-progress"]


def _file_commands(path: Path, out: Path):
    """Commands that take one episode file."""
    return [
        ["inspect", path],
        ["recover", path],
        # the damaged camera data is the head camera's (and byte-level damage): render that one only
        ["replay", path, "--sim", "--no-video", "--max-frames", "2", "--height", "48", "--cameras", "head"],
        ["replay", path, "--sim", "--actions", "--no-video"],
        ["plot", path, "--out", out / "plot.png", "--dpi", "20", "--figures", *_figures(path)],
    ]


def _folder_commands(folder: Path, out: Path):
    """Commands that take a folder of episodes: one call covers every damaged file."""
    return [
        ["validate", folder],
        ["check", folder, *ENGINE],
        ["stats", folder, *ENGINE, "--image-samples", "2"],
        ["export", folder, "--to", "mcap", "--out", out / "mcap", "--overwrite", *ENGINE],
        # One camera for the training formats (their cost is mostly image work); MCAP takes every stream.
        ["export", folder, "--to", "robomimic", "--out", out / "robomimic.hdf5", "--overwrite", "--cameras", "head",
         *ENGINE],
        ["export", folder, "--to", "lerobot", "--out", out / "lerobot", "--overwrite", "--cameras", "head", *ENGINE],
    ]


def test_the_base_episode_is_clean(base, capsys):
    """Every command succeeds on the undamaged take (the folder commands run on it together with the
    damaged files below), so what the damaged files get is due to their damage."""
    for argv in _file_commands(base["final"], base["root"] / "out-clean"):
        if argv[0] == "plot":  # every figure but the joints panels (tests/test_plot.py draws those)
            argv = argv[:argv.index("--figures")] + ["--figures", "timeline", "sync", "frames"]
        run = _run(capsys, argv)
        if argv[0] == "recover":
            assert run.code == 2 and "not a partial episode" in run.err, run.err
        else:
            assert run.code == 0, (argv, run.err[-2000:], run.out[-1000:])


def test_every_command_on_every_damaged_file(base, capsys, tmp_path):
    started = time.perf_counter()
    variants = _make(FINAL_VARIANTS, base["final"], tmp_path / "damaged", schema.FINAL_SUFFIX)
    assert len(variants) >= 30
    clean = tmp_path / "damaged" / f"undamaged{schema.FINAL_SUFFIX}"
    shutil.copyfile(base["final"], clean)
    hashes = {name: _sha256(path) for name, path in variants.items()}
    stamps = {name: _stat(path) for name, path in variants.items()}
    findings, timings = [], {}

    def record(name, argv, run):
        key = " ".join(map(str, argv[:1] + [a for a in argv[2:4] if str(a).startswith("--") or argv[0] != "plot"]))
        timings[argv[0]] = timings.get(argv[0], 0.0) + run.seconds
        if os.environ.get("FUZZ_TIMINGS"):  # a file to append per-command timings to, when tuning this test
            with open(os.environ["FUZZ_TIMINGS"], "a") as fh:
                fh.write(f"{run.seconds:.3f} {name} {key} rc={run.code}\n")
        # Size and modification time after each command say which command wrote a file; the hashes at
        # the end catch any change of content (cheaper than hashing 57 files after every command).
        for other, path in variants.items():
            if (name is None or other == name) and _stat(path) != stamps[other]:
                findings.append(f"{other}: {key} changed the input file")
                stamps[other] = _stat(path)

    for name, path in variants.items():
        out = tmp_path / "out" / name
        out.mkdir(parents=True)
        for argv in _file_commands(path, out):
            run = _run(capsys, argv)
            record(name, argv, run)
            problem = _problem(run, name)
            if problem:
                findings.append(f"{name}: {' '.join(map(str, argv[:1] + argv[2:4]))}: {problem}")

    # Folder mode: one damaged file must not stop the others from being checked, counted or exported;
    # and `validate` of the folder must flag every damaged file, each on its own.
    folder = tmp_path / "damaged"
    for argv in _folder_commands(folder, tmp_path / "out-folder"):
        run = _run(capsys, argv)
        record(None, argv, run)
        label = " ".join(map(str, argv[:1] + argv[2:4]))
        if run.code == "escaped" or "Traceback" in run.err + run.out or _LAST_RESORT in run.err:
            findings.append(f"folder: {label}: traceback or unexpected error:\n{run.err[-1500:]}")
            continue
        errors = [line for line in run.err.splitlines() if line.startswith(f"collector {argv[0]}: error:")]
        if run.code not in (0, 1, 2) or (run.code == 2 and len(errors) != 1):
            findings.append(f"folder: {label}: exit {run.code} with {len(errors)} error line(s): {run.err[-800:]}")
        if argv[0] in ("validate", "check"):
            passed = [n for n, p in variants.items()
                      if any(line.startswith("ok") and str(p) in line for line in run.out.splitlines())]
            unreported = [n for n, p in variants.items() if str(p) not in run.out]
            if run.code != 1 or passed or unreported:
                findings.append(f"folder: {label}: exit {run.code}, passed {passed}, not reported {unreported}")
            if not any(line.startswith("ok") and str(clean) in line for line in run.out.splitlines()):
                findings.append(f"folder: {label}: the undamaged copy did not pass:\n{run.out[-3000:]}")
        if argv[0] == "export" and run.code != 0 and clean.name in run.err:
            findings.append(f"folder: {label}: the undamaged copy was not exported: {run.err[-1500:]}")
    findings += [f"{name}: its content changed" for name, path in variants.items() if _sha256(path) != hashes[name]]
    elapsed = time.perf_counter() - started
    print(f"\n{len(variants)} damaged files, {len(_file_commands(Path('x'), Path('y')))} file commands each and "
          f"{len(_folder_commands(Path('x'), Path('y')))} folder commands over all, in {elapsed:.1f} s; "
          + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(timings.items())))
    assert not findings, f"{len(findings)} finding(s):\n" + "\n\n".join(findings)


def test_recover_and_readers_on_damaged_partial_files(base, capsys, tmp_path):
    variants = _make(PARTIAL_VARIANTS, base["partial"], tmp_path / "made", "")
    findings = []
    for name, work in variants.items():
        # Each in its own folder under its real partial name, so recover's final name cannot clash.
        folder = tmp_path / name
        folder.mkdir()
        path = folder / base["partial"].name
        os.replace(work, path)
        before = _sha256(path)
        for argv in (["inspect", path], ["validate", path]):
            run = _run(capsys, argv)
            problem = _problem(run, str(folder.name))
            if problem:
                findings.append(f"partial {name}: {argv[0]}: {problem}")
            if argv[0] == "validate" and run.code == 0:
                findings.append(f"partial {name}: validate passed a partial file")
            if _sha256(path) != before:
                findings.append(f"partial {name}: {argv[0]} changed the input file")
        run = _run(capsys, ["recover", path])
        problem = _problem(run, str(folder.name))
        if problem:
            findings.append(f"partial {name}: recover: {problem}")
        left = sorted(p.name for p in folder.iterdir())
        if run.code == 0:
            final = schema.final_path_for_partial(path)
            if left != [final.name]:
                findings.append(f"partial {name}: recover succeeded but left {left}")
            else:
                check = _run(capsys, ["validate", final, "--min-duration", "0.5"])
                if check.code not in (0, 1) or "Traceback" in check.err:
                    findings.append(f"partial {name}: the recovered file cannot be validated: {check.err[-800:]}")
        else:
            if not path.exists() or _sha256(path) != before:
                findings.append(f"partial {name}: recover failed (exit {run.code}) and changed its input")
            if left != [path.name]:
                findings.append(f"partial {name}: recover failed and left {left}")
    assert "intact" not in " ".join(findings), findings
    assert not (tmp_path / "intact" / base["partial"].name).exists(), "the undamaged partial file was not recovered"
    assert not findings, f"{len(findings)} finding(s):\n" + "\n\n".join(findings)
