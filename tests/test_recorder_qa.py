"""validate_episode: each QA rule finds what it should, and only that; recover of an abandoned file."""
import json

import h5py
import numpy as np
import pytest

from collector.errors import DataError
from collector.recorder import EpisodeReader, EpisodeWriter, FieldSpec, StreamSpec, recover_episode, validate_episode
from helpers.recorder import METADATA, N_JOINTS, T0, events, record, specs


def test_a_clean_episode_passes(good):
    assert validate_episode(good) == []
    assert validate_episode(good, robot_limits={"lower": [-0.2] * N_JOINTS, "upper": [0.2] * N_JOINTS}) == []


def test_gap_over_tolerance(tmp_path):
    path, _ = record(tmp_path, seconds=2.0, gap=(T0 + 0.5, T0 + 0.9))
    problems = validate_episode(path)
    assert any(p.startswith("stream 'joints': 1 gap(s) longer than its tolerance 15.0 ms, longest 410.0 ms")
               for p in problems), problems
    assert any("rows have no 'joints' sample within its tolerance" in p for p in problems), problems
    assert not any("camera" in p for p in problems), problems


def test_frozen_camera(tmp_path):
    path, _ = record(tmp_path, seconds=2.0, frozen=(T0 + 0.2, T0 + 1.5))
    problems = validate_episode(path)
    assert len(problems) == 1 and problems[0].startswith("camera 'camera_head': frozen for 1.27 s (39 identical"), \
        problems
    assert validate_episode(path, frozen_s=2.0) == []


def test_a_still_camera_in_a_simulated_take_is_not_frozen_while_another_camera_changes(tmp_path):
    # Noise-free rendering of a wrist camera on an arm at rest repeats its picture exactly (a policy take in
    # tests/test_takeover.py failed QA so); a real camera's sensor noise never does, and a stall freezes all.
    window = (T0 + 0.2, T0 + 1.5)
    still = record(tmp_path / "sim", seconds=2.0, codecs=("jpeg", "jpeg"), frozen=window, frozen_cams={1})[0]
    assert validate_episode(still) == []
    real = record(tmp_path / "real", seconds=2.0, codecs=("jpeg", "jpeg"), frozen=window, frozen_cams={1},
                  metadata={**METADATA, "sim": False})[0]
    assert [p[:38] for p in validate_episode(real)] == ["camera 'camera_wrist': frozen for 1.27"]
    stalled = record(tmp_path / "stall", seconds=2.0, codecs=("jpeg", "jpeg"), frozen=window)[0]
    assert sorted(p[:24] for p in validate_episode(stalled)) == ["camera 'camera_head': fr", "camera 'camera_wrist': f"]


def test_joint_limits_from_argument_or_metadata(tmp_path, good):
    tight = {"lower": [-0.05] * N_JOINTS, "upper": [0.05] * N_JOINTS}
    problems = validate_episode(good, robot_limits=tight)
    assert {p.split(":")[0] for p in problems} == {"raw joints position", "aligned /action",
                                                   "aligned /observations/qpos"}, problems
    path, _ = record(tmp_path, seconds=2.0, codecs=(), metadata={**METADATA, "joint_limits": tight})
    assert any(p.startswith("raw joints position:") and "outside the joint limits" in p
               for p in validate_episode(path))
    assert any("the joint limits have 3" in p
               for p in validate_episode(good, robot_limits=([-1, -1, -1], [1, 1, 1])))


def test_too_short_and_missing_streams(tmp_path):
    path, _ = record(tmp_path, seconds=0.5, codecs=())
    assert validate_episode(path) == ["too short: 0.49 s (minimum 1.00 s)"]
    only_joints = [s for s in specs(()) if s.name in ("joints", "input")]
    writer = EpisodeWriter(tmp_path, "episode_000002", only_joints, metadata=METADATA)
    writer.start()
    for t, stream, fields in events(1.5):
        if stream == "joints":
            writer.push(stream, t, **fields)
    problems = validate_episode(writer.stop())
    assert "missing stream 'command' (declared: ['input', 'joints'])" in problems
    assert "stream 'input' has no samples" in problems


def test_missing_conditions_and_nan_in_the_view(tmp_path):
    path, _ = record(tmp_path, seconds=1.5, codecs=(), metadata={"sim": True})
    with h5py.File(path, "r+") as h5:
        h5["observations/qpos"][3, 2] = np.nan
    problems = validate_episode(path)
    assert "metadata: conditions has no 'lighting' (conditions are recorded with every take)" in problems
    assert "metadata: conditions has no 'weights' (conditions are recorded with every take)" in problems
    assert "aligned /observations/qpos: 1 row(s) with NaN or inf" in problems


def test_abandoned_partial_file_fails_qa_until_recovered(tmp_path):
    writer = EpisodeWriter(tmp_path, "episode_000001", specs(("jpeg",)), metadata=METADATA, queue_seconds=1000)
    writer.start()
    for t, stream, fields in events(1.5):
        writer.push(stream, t, **fields)
    writer.abandon()  # what happens at interpreter exit without stop()
    partial = tmp_path / "episode_000001.partial.h5"
    problems = validate_episode(partial)
    assert problems == ["partial episode: its writer did not finish it; run `collector recover` on it"]
    with EpisodeReader(partial) as r:
        assert r.is_partial and not r.has_aligned_view and r.count("joints") == 150
    final = recover_episode(partial)
    assert validate_episode(final) == []
    with EpisodeReader(final) as r:
        assert r.metadata["recovered"] is True and r.metadata["recovery"]["rows_trimmed"] == {}
        assert r.metadata["recorder_stats"]["streams"]["joints"]["written"] == 150
    with pytest.raises(DataError, match="is not a partial episode"):
        recover_episode(final)


def test_recover_refuses_to_replace_or_redo(tmp_path, good):
    fake = tmp_path / "episode_000001.partial.h5"
    with h5py.File(good, "r") as src, h5py.File(fake, "w") as dst:
        for key, value in src.attrs.items():
            dst.attrs[key] = value
    (tmp_path / "episode_000001.hdf5").write_bytes(b"keep me")
    with pytest.raises(DataError, match="already exists; not touching it"):
        recover_episode(fake)
    (tmp_path / "episode_000001.hdf5").unlink()
    with pytest.raises(DataError, match="has status 'complete'"):
        recover_episode(fake)


def test_not_an_episode_is_one_problem(tmp_path):
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"\x89HDF\r\n")
    assert validate_episode(junk) == [f"{junk} is not an HDF5 file, so not a collector episode"]


def test_stream_spec_with_int_only_fields_is_fine(tmp_path):
    spec = StreamSpec("buttons", {"state": FieldSpec((3,), "uint8")}, rate_hz=20)
    writer = EpisodeWriter(tmp_path, "e", [spec], metadata={"sim": True, **{"conditions": METADATA["conditions"]}},
                           aligned_streams=["buttons"])
    writer.start()
    for k in range(40):
        assert writer.push("buttons", k / 20, state=np.array([k % 2, 1, 0], np.uint8))
    path = writer.stop()
    assert validate_episode(path, required_streams=["buttons"]) == []
    with EpisodeReader(path) as r:
        assert r.aligned("buttons/state").dtype == np.uint8
        assert json.loads(r.h5.attrs["aligned_view"])["rate_hz"] == 50.0


def test_recovering_a_file_killed_before_any_sample_was_flushed(tmp_path):
    writer = EpisodeWriter(tmp_path, "episode_000001", specs(("jpeg",)), metadata=METADATA)
    writer.start()
    writer.abandon()
    final = recover_episode(tmp_path / "episode_000001.partial.h5")
    with EpisodeReader(final) as r:
        assert r.metadata["recovered"] is True and len(r.timestamps) == 0 and r.count("joints") == 0
    problems = validate_episode(final)
    assert "stream 'joints' has no samples" in problems and "too short: 0.00 s (minimum 1.00 s)" in problems


def test_recover_after_a_kill_during_finalize_rebuilds_the_half_written_view(tmp_path):
    writer = EpisodeWriter(tmp_path, "episode_000001", specs(("jpeg",)), metadata=METADATA, queue_seconds=1000)
    writer.start()
    for t, stream, fields in events(1.5):
        writer.push(stream, t, **fields)
    writer.abandon()
    partial = tmp_path / "episode_000001.partial.h5"
    with h5py.File(partial, "r+") as h5:  # what a kill in the middle of stop() leaves behind
        h5["timestamps"] = np.zeros(7)
        h5.create_dataset("observations/qpos", data=np.full((7, N_JOINTS), np.nan))
        h5.create_group("sync/joints")
    final = recover_episode(partial)
    with EpisodeReader(final) as r:
        assert len(r.timestamps) == 45 and np.isfinite(r.aligned("qpos")[:]).all()
    assert validate_episode(final) == []
