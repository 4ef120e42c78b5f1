"""Issue 13, items 5, 6, 13 and 18: damaged episode files get a named answer, never a traceback.

5   validate checks every stored frame CRC32 and that every JPEG frame decodes, naming the frames;
6   recover never changes its input unless it succeeds;
13  structurally wrong files (no /raw/joints/t, string-typed positions, /observations/qpos shorter
    than /timestamps, the last 30 % zeroed) are refused in one line naming the file, and in folder
    mode every other file is still reported;
18  inspect's tables keep long stream names apart from the next column.
(tests/test_corruption_fuzz.py runs every command over many more damaged files.)
"""
import hashlib
import re
import shutil
import subprocess

import h5py
import numpy as np
import pytest

from collector.cli import main
from collector.dataset.synthetic import write_synthetic_episode
from collector.errors import DataError
from collector.recorder import EpisodeReader, EpisodeWriter, recover_episode, validate_episode
from collector.recorder.frames import frame_crc32
from helpers.recorder import METADATA, events, specs


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """Two cameras, one with a long stream name (camera_left_wrist), as the simulator records them."""
    return write_synthetic_episode(tmp_path_factory.mktemp("synthetic"), "episode_000001", duration_s=1.5,
                                   camera_size=(24, 32), n_joints=4)


def _copy(source, folder, name):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    shutil.copyfile(source, path)
    return path


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _cli(capsys, *argv):
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(command, err, path):
    lines = [line for line in err.splitlines() if line.startswith(f"collector {command}: error:")]
    assert len(lines) == 1 and str(path) in lines[0], err
    assert "Traceback" not in err and "unexpected" not in err, err
    return lines[0]


# -- item 5: frame CRCs and decoding ----------------------------------------------------------------------

def test_validate_names_the_frames_whose_bytes_fail_their_crc32(good, tmp_path):
    path = _copy(good, tmp_path, "episode_000001.hdf5")
    with h5py.File(path, "r+") as h5:
        group = h5["raw/camera_head"]
        offsets, sizes, blob = group["jpeg_offset"][()], group["jpeg_size"][()], group["jpeg"][()]
        for k in range(0, offsets.size, 2):  # half of one camera's frames zeroed, as in the issue
            blob[offsets[k]:offsets[k] + sizes[k]] = 0
        group["jpeg"][...] = blob
        n = offsets.size
    problems = validate_episode(path)
    expected = (f"camera 'camera_head': {(n + 1) // 2} of {n} frame(s) fail their stored CRC32 "
                "(frames 0, 2, 4, 6, 8, 10, 12, 14, ...")
    assert any(p.startswith(expected) for p in problems), problems
    assert not any("camera_wrist" in p for p in problems), problems


def test_validate_checks_raw_pixel_frames_too(good, tmp_path):
    path = _copy(good, tmp_path, "episode_000001.hdf5")
    with h5py.File(path, "r+") as h5:
        h5["raw/camera_wrist/image"][7, 0, 0, 0] ^= 0xFF
    problems = validate_episode(path)
    assert any(p.startswith("camera 'camera_wrist': 1 of 60 frame(s) fail their stored CRC32 (frames 7)")
               for p in problems), problems


def test_validate_names_frames_that_do_not_decode_even_with_a_matching_crc(good, tmp_path):
    path = _copy(good, tmp_path, "episode_000001.hdf5")
    with h5py.File(path, "r+") as h5:
        group = h5["raw/camera_head"]
        start, size = int(group["jpeg_offset"][5]), int(group["jpeg_size"][5])
        frame = group["jpeg"][start:start + size]
        frame[2:] = np.random.default_rng(0).integers(0, 256, size - 2, dtype=np.uint8)
        group["jpeg"][start:start + size] = frame
        group["crc32"][5] = frame_crc32(frame)
    problems = validate_episode(path)
    assert "camera 'camera_head': 1 frame(s) do not decode as JPEG (frames 5)" in problems, problems


def test_validate_finds_an_aligned_frame_that_is_not_its_raw_frame(synthetic, tmp_path):
    path = _copy(synthetic, tmp_path, "episode_000001.hdf5")
    assert validate_episode(path) == []
    with h5py.File(path, "r+") as h5:
        row = h5["observations/images/head"][3]
        length = int(h5["compress_len"][0, 3])
        row[length // 2:length - 2] = 0  # damaged bytes in the ALOHA view, the raw frame intact
        h5["observations/images/head"][3] = row
    problems = validate_episode(path)
    assert "aligned /observations/images/head: 1 row(s) are not the raw frame they name (rows 3)" in problems, \
        problems


# -- item 6: recover changes nothing unless it succeeds ----------------------------------------------------

def _partial(folder):
    writer = EpisodeWriter(folder, "episode_000001", specs(("jpeg",)), metadata=METADATA, queue_seconds=1000)
    writer.start()
    for t, stream, fields in events(1.5):
        writer.push(stream, t, **fields)
    writer.abandon()
    return folder / "episode_000001.partial.h5"


def test_a_failed_recovery_leaves_the_partial_file_byte_for_byte(tmp_path, capsys):
    """The issue's case: a partial cut short (as by a full disk) that recovery pads to open, and that
    is damaged beyond repair: it used to be padded in place (7.9 -> 15.8 MB) and then fail."""
    path = _partial(tmp_path)
    with h5py.File(path, "r+") as h5:
        del h5.attrs["aligned_view"]
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.truncate(int(size * 0.8))
    before = _sha(path)
    code, _, err = _cli(capsys, "recover", path)
    assert _sha(path) == before and path.stat().st_size == int(size * 0.8)
    assert code == 2
    assert "root attribute 'aligned_view'" in _one_line_error("recover", err, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no final file, no working copy left


def test_a_successful_recovery_replaces_the_partial_file(tmp_path):
    path = _partial(tmp_path)
    with open(path, "r+b") as fh:  # cut short: recovery pads its working copy, not the input
        fh.truncate(int(path.stat().st_size * 0.9))
    gone = subprocess.Popen(["true"])
    gone.wait()
    stale = tmp_path / f".{path.name}.recovering-{gone.pid}"  # left by a recovery that was itself killed
    stale.write_bytes(b"half a copy")
    final = recover_episode(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [final.name]
    with EpisodeReader(final) as reader:
        assert reader.metadata["recovered"] is True and reader.count("joints") > 0


def test_recover_of_an_unreadable_partial_changes_nothing(tmp_path):
    path = _partial(tmp_path)
    with h5py.File(path, "r+") as h5:
        del h5["raw/joints/t"]
    before = _sha(path)
    with pytest.raises(DataError, match=r"/raw/joints has no dataset 't'"):
        recover_episode(path)
    assert _sha(path) == before and sorted(p.name for p in tmp_path.iterdir()) == [path.name]


# -- item 13: structurally wrong files ---------------------------------------------------------------------

def test_no_joint_stamps_is_one_line_for_inspect_plot_and_export(good, tmp_path, capsys):
    path = _copy(good, tmp_path / "in", "episode_000001.hdf5")
    with h5py.File(path, "r+") as h5:
        del h5["raw/joints/t"]
    before = _sha(path)
    for argv in (["inspect", path], ["plot", path, "--out", tmp_path / "p.png"],
                 ["export", path, "--to", "mcap", "--out", tmp_path / "x.mcap", "--engine", "inline",
                  "--no-progress"]):
        code, _, err = _cli(capsys, *argv)
        assert code == 2, (argv, err)
        if argv[0] != "export":  # export may say it skipped the file, in a warning that names it
            assert "/raw/joints has no dataset 't'" in _one_line_error(argv[0], err, path)
        else:
            assert "/raw/joints has no dataset 't'" in err and "Traceback" not in err, err
    assert _sha(path) == before


def test_string_typed_positions_are_one_line_for_validate_plot_and_export(good, tmp_path, capsys):
    path = _copy(good, tmp_path / "in", "episode_000001.hdf5")
    with h5py.File(path, "r+") as h5:
        position = h5["raw/joints/position"][()]
        del h5["raw/joints/position"]
        h5["raw/joints/position"] = position.astype("S8")
    problems = validate_episode(path)
    assert problems == [f"{path}: /raw/joints/position holds |S8 values, expected float64"], problems
    for argv in (["plot", path, "--out", tmp_path / "p.png"],
                 ["export", path, "--to", "robomimic", "--out", tmp_path / "x.hdf5", "--engine", "inline",
                  "--no-progress"]):
        code, _, err = _cli(capsys, *argv)
        assert code == 2 and "/raw/joints/position holds |S8 values" in err and "Traceback" not in err, err


def test_qpos_shorter_than_timestamps_is_refused_on_open(good, tmp_path, capsys):
    path = _copy(good, tmp_path, "episode_000001.hdf5")
    with h5py.File(path, "r+") as h5:
        qpos = h5["observations/qpos"][()]
        del h5["observations/qpos"]
        h5["observations/qpos"] = qpos[:-10]
        rows = h5["timestamps"].shape[0]
    with pytest.raises(DataError, match=re.escape(f"{path}: aligned view /observations/qpos has {rows - 10} rows, "
                                                  f"/timestamps has {rows}")):
        EpisodeReader(path)
    code, _, err = _cli(capsys, "replay", path, "--sim", "--no-video")
    assert code == 2 and "aligned view /observations/qpos has" in _one_line_error("replay", err, path)


def test_a_zeroed_tail_is_one_line_and_folder_mode_reports_every_other_file(good, tmp_path, capsys):
    folder = tmp_path / "episodes"
    intact = _copy(good, folder, "episode_000001.hdf5")
    damaged = _copy(good, folder, "episode_000002.hdf5")
    size = damaged.stat().st_size
    with open(damaged, "r+b") as fh:  # the last 30 % zeroed, the size kept
        fh.seek(int(size * 0.7))
        fh.write(b"\0" * (size - int(size * 0.7)))
    code, _, err = _cli(capsys, "inspect", damaged)
    assert code == 2
    _one_line_error("inspect", err, damaged)
    code, out, err = _cli(capsys, "validate", folder)
    assert code == 1 and "Traceback" not in err, err
    assert f"ok    {intact}" in out and f"FAIL  {damaged}" in out and "1 of 2 episode(s) passed" in out, out


# -- item 18: inspect's tables --------------------------------------------------------------------------

def test_inspect_keeps_long_stream_names_apart_from_the_next_column(synthetic, capsys):
    code, out, _ = _cli(capsys, "inspect", synthetic)
    assert code == 0
    lines = out.splitlines()
    start = lines.index("  streams:") + 1
    header = re.split(r"\s{2,}", lines[start].strip())
    assert header[:3] == ["name", "kind", "count"] and len(header) == 11
    with EpisodeReader(synthetic) as reader:
        kinds = {name: spec.kind for name, spec in reader.streams.items()}
    assert "camera_left_wrist" in kinds
    rows = {}
    for line in lines[start + 1:start + 1 + len(kinds)]:
        cells = re.split(r"\s{2,}", line.strip())
        rows[cells[0]] = cells
    assert {name: cells[1] for name, cells in rows.items()} == kinds, rows
    sync_start = next(i for i, line in enumerate(lines) if line.strip().startswith("stream") and "invalid" in line)
    for line in lines[sync_start + 1:]:
        if not line.startswith("    "):
            break
        name = re.split(r"\s{2,}", line.strip())[0]
        assert name in kinds, line
