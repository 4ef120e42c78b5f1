"""EpisodeWriter / EpisodeReader: what goes in comes out, the aligned view, bad input, lifecycle."""
import datetime as dt
import json
import os
import time
import zlib

import cv2
import h5py
import numpy as np
import pytest

from collector.errors import ConfigError, DataError
from collector.recorder import EpisodeReader, EpisodeWriter, FieldSpec, StreamSpec, camera_stream
from collector.recorder.frames import decode_jpeg, encode_jpeg
from collector.recorder.writer import publish
from collector.sync import fixed_grid
from helpers.recorder import (CONDITIONS, METADATA, N_JOINTS, T0, events, frame, joint_position, record,
                                  specs)


def test_raw_streams_metadata_and_frames_round_trip(tmp_path):
    path, writer = record(tmp_path, codecs=("raw", "lzf", "jpeg"), seconds=2.0)
    assert path == tmp_path / "episode_000001.hdf5" and not (tmp_path / "episode_000001.partial.h5").exists()
    sent = events(2.0, n_cams=3)
    with EpisodeReader(path) as r:
        assert set(r.streams) == {"joints", "command", "input", "camera_head", "camera_wrist", "camera_left"}
        assert r.streams["input"] == specs(("raw", "lzf", "jpeg"))[2]
        joints = [e for e in sent if e[1] == "joints"]
        t = r.stamps("joints")
        np.testing.assert_array_equal(t, [e[0] for e in joints])
        np.testing.assert_array_equal(r.raw("joints", "position")[:], joint_position(t))
        np.testing.assert_array_equal(r.raw("joints", "effort")[:], 3 * joint_position(t))
        np.testing.assert_array_equal(r.raw("input", "buttons")[:], [e[2]["buttons"] for e in sent if e[1] == "input"])

        frames_sent = {name: [e[2]["image"] for e in sent if e[1] == name] for name in
                       ("camera_head", "camera_wrist", "camera_left")}
        head, wrist, left = r.images("head"), r.images("camera_wrist"), r.images("left")
        assert len(head) == len(wrist) == len(left) == 60
        np.testing.assert_array_equal(head[5], frames_sent["camera_head"][5])  # raw: exact
        np.testing.assert_array_equal(wrist[0:60], np.stack(frames_sent["camera_wrist"]))  # lzf: exact
        # JPEG: lossy, but the encoder is deterministic, so the stored frame is exactly what encoding
        # the pushed frame at quality 90 gives (close to it, and not a neighbouring frame).
        assert left[7].shape == (24, 32, 3)
        np.testing.assert_array_equal(left[7], decode_jpeg(encode_jpeg(frames_sent["camera_left"][7], 90)))
        assert np.abs(left[7].astype(int) - frames_sent["camera_left"][7].astype(int)).mean() < 5
        assert r.frame_crc32("wrist")[7] == zlib.crc32(frames_sent["camera_wrist"][7].tobytes())  # pixels
        assert r.frame_crc32("left")[7] == zlib.crc32(r.images("left").encoded(7))  # JPEG bytes as stored

        md = r.metadata
        assert md["conditions"] == CONDITIONS
        assert md["camera_calibration"]["head"]["fx"] == 30.0
        assert md["sim"] is True and md["outcome"] == "success" and md["status"] == "complete"
        assert md["recovered"] is False
        assert md["schema"] == "collector.episode" and md["schema_version"] == 1
        assert md["episode_id"] == "episode_000001" and md["task"] == "pour"
        assert md["duration_s"] == pytest.approx(t[-1] - T0, abs=0.02)
        assert dt.datetime.fromisoformat(md["started_at"]).tzinfo is not None
        assert md["software_version"].startswith("collector ")
        assert md["recorder_stats"]["drops"] == 0
    # Everything readable with plain h5py, no collector code.
    with h5py.File(path, "r") as h5:
        assert json.loads(h5.attrs["conditions"])["weights"] == {"cup": 0.25, "box": 1.5}
        assert h5["raw/joints/position"].shape == (200, N_JOINTS)
        assert h5["raw/camera_left/jpeg"].shape[0] == h5["raw/camera_left/jpeg_size"][:].sum()  # no padding
    assert writer.stats["streams"]["camera_left"]["written"] == 60


def test_aligned_view_holds_the_samples_the_alignment_core_picks(tmp_path):
    path, _ = record(tmp_path, codecs=("jpeg", "jpeg"), seconds=3.0, jitter=0.5, aligned_streams=["input"])
    with EpisodeReader(path) as r:
        ts = r.timestamps
        starts = [r.stamps(s)[0] for s in ("joints", "command", "input", "camera_head", "camera_wrist")]
        ends = [r.stamps(s)[-1] for s in ("joints", "command", "input", "camera_head", "camera_wrist")]
        np.testing.assert_array_equal(ts, fixed_grid(max(starts), min(ends), 30.0))  # default: camera rate
        t = r.stamps("joints")
        sync = r.sync("joints")
        brute = np.abs(t[None, :] - ts[:, None]).argmin(axis=1)  # nearest, the default method
        np.testing.assert_array_equal(sync["index"], brute)
        np.testing.assert_allclose(sync["error"], t[brute] - ts)
        assert sync["valid"].all()
        qpos = r.aligned("qpos")
        assert qpos.dtype == np.float32 and qpos.shape == (len(ts), N_JOINTS)
        np.testing.assert_allclose(qpos[:], joint_position(t[brute]), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(r.aligned("qvel")[:], 2 * joint_position(t[brute]), rtol=1e-6, atol=1e-7)
        c = r.stamps("command")
        c_idx = r.sync("command")["index"]
        np.testing.assert_allclose(r.aligned("action")[:], joint_position(c[c_idx]) + 0.01, rtol=1e-6, atol=1e-7)
        # input.pose is aligned linearly: its first two entries are linear in t, so exact at every row.
        pose = r.aligned("input/pose")[:]
        np.testing.assert_allclose(pose[:, 0], ts - T0, atol=1e-9)
        np.testing.assert_allclose(pose[:, 1], 2 * (ts - T0), atol=1e-9)
        # buttons use backward: the last sample at or before each row.
        it = r.stamps("input")
        back = np.searchsorted(it, ts, side="right") - 1
        np.testing.assert_array_equal(r.aligned("input/buttons")[:], r.raw("input", "buttons")[:][back])
        # Every image row is the frame the sync index names.
        cam_idx = r.sync("camera_wrist")["index"]
        for row in (0, 17, len(ts) - 1):
            np.testing.assert_array_equal(r.aligned_images("wrist")[row], r.images("wrist")[cam_idx[row]])


def test_aloha_act_loader_reads_the_view_unchanged(tmp_path):
    path, _ = record(tmp_path, codecs=("jpeg", "jpeg"), seconds=2.0)
    # What ACT / ALOHA loaders do, with plain h5py and OpenCV.
    with h5py.File(path, "r") as root:
        is_sim = root.attrs["sim"]
        compressed = root.attrs.get("compress", False)
        T, nq = root["/action"].shape
        start_ts = 11
        qpos = root["/observations/qpos"][start_ts]
        qvel = root["/observations/qvel"][start_ts]
        image_dict = {cam: root[f"/observations/images/{cam}"][start_ts] for cam in ("head", "wrist")}
        if compressed:
            image_dict = {cam: cv2.imdecode(buf, 1) for cam, buf in image_dict.items()}
        compress_len = root["/compress_len"][:]
        padded_width = root["/observations/images/head"].shape[1]
    assert bool(is_sim) and bool(compressed) and nq == N_JOINTS and qpos.shape == qvel.shape == (N_JOINTS,)
    assert compress_len.shape == (2, T) and padded_width == compress_len[0].max()  # padded to the longest frame
    with EpisodeReader(path) as r:
        for cam in ("head", "wrist"):
            assert image_dict[cam].shape == (24, 32, 3)
            np.testing.assert_array_equal(image_dict[cam], r.aligned_images(cam)[start_ts])
            # RGB convention: the decoded frame is the RGB frame that was pushed, not BGR.
            raw_idx = r.sync(f"camera_{cam}")["index"][start_ts]
            pushed = frame(raw_idx, seed=0 if cam == "head" else 1)
            np.testing.assert_array_equal(image_dict[cam], decode_jpeg(encode_jpeg(pushed, 90)))


def test_reference_stream_timeline(tmp_path):
    path, _ = record(tmp_path, codecs=("raw",), seconds=1.5, aligned_reference="camera_head")
    with EpisodeReader(path) as r:
        cam_t = r.stamps("camera_head")
        lo = max(r.stamps(s)[0] for s in ("joints", "command", "camera_head"))
        np.testing.assert_array_equal(r.timestamps, cam_t[cam_t >= lo])
        np.testing.assert_array_equal(r.sync("camera_head")["error"], 0.0)
        assert not r.h5.attrs["compress"]
        assert r.aligned_images("head")[:].shape == (len(r.timestamps), 24, 32, 3)


def test_bad_samples_are_rejected_counted_and_the_episode_goes_on(tmp_path, caplog):
    writer = EpisodeWriter(tmp_path, "episode_000001", specs(("jpeg",)), metadata={"sim": True})
    writer.start()
    q = np.zeros(N_JOINTS)
    good = dict(position=q, velocity=q, effort=q)
    assert writer.push("joints", 1.0, **good)
    bad = [
        ("non_finite", dict(position=np.full(N_JOINTS, np.nan), velocity=q, effort=q), 1.1),
        ("non_finite", dict(position=q, velocity=np.r_[np.inf, q[1:]], effort=q), 1.1),
        ("shape", dict(position=np.zeros(N_JOINTS + 1), velocity=q, effort=q), 1.1),
        ("dtype", dict(position=q.astype(complex), velocity=q, effort=q), 1.1),
        ("fields", dict(position=q, velocity=q), 1.1),
        ("fields", dict(position=q, velocity=q, effort=q, torque=q), 1.1),
        ("backwards", good, 0.5),
        ("bad_stamp", good, float("nan")),
        ("bad_stamp", good, "soon"),
    ]
    for reason, fields, t in bad:
        assert writer.push("joints", t, **fields) is False, reason
    assert writer.push("camera_head", 1.0, image=np.zeros((24, 32, 3), np.float32)) is False  # float image
    assert writer.push("camera_head", 1.0, image=np.zeros((32, 24, 3), np.uint8)) is False  # transposed
    assert writer.push("no_such_stream", 1.0, x=1) is False
    assert writer.push("joints", 1.2, **good)  # the episode goes on
    assert writer.push("joints", 1.2, position=q.astype(np.float32), velocity=[0] * N_JOINTS, effort=q)  # castable
    path = writer.stop()
    stats = writer.stats
    assert stats["streams"]["joints"]["rejected"] == {"non_finite": 2, "shape": 1, "dtype": 1, "fields": 2,
                                                      "backwards": 1, "bad_stamp": 2}
    assert stats["streams"]["camera_head"]["rejected"] == {"dtype": 1, "shape": 1}
    assert stats["unknown_stream_pushes"] == {"no_such_stream": 1}
    assert stats["rejected"] == 11
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "stream 'joints' field 'position': contains NaN or inf" in messages
    assert "went backwards" in messages and "undeclared stream 'no_such_stream'" in messages
    with EpisodeReader(path) as r:
        assert r.count("joints") == 3
        assert json.loads(r.h5["raw/joints"].attrs["rejected"])["non_finite"] == 2
        assert r.metadata["recorder_stats"]["streams"]["joints"]["rejected"]["bad_stamp"] == 2
        assert r.counters["joints"] == {"pushed": 12, "written": 3, "dropped": 0, "rejected": 9}


def test_full_queue_drops_are_counted_and_recorded(tmp_path):
    spec = StreamSpec("joints", {"position": FieldSpec((N_JOINTS,))}, rate_hz=10)
    writer = EpisodeWriter(tmp_path, "episode_000001", [spec], metadata={"sim": True}, queue_seconds=1.0)
    writer.start()
    assert writer.stats["streams"]["joints"]["queue_capacity"] == 16
    results = [writer.push("joints", k * 0.001, position=np.full(N_JOINTS, k)) for k in range(3000)]
    path = writer.stop()
    stats = writer.stats["streams"]["joints"]
    assert stats["dropped"] > 0 and stats["dropped"] == results.count(False)
    assert stats["pushed"] == stats["written"] + stats["dropped"] == 3000
    assert stats["queue_high_water"] == 16
    with EpisodeReader(path) as r:
        assert r.h5["raw/joints"].attrs["dropped"] == stats["dropped"]
        assert r.counters["joints"]["dropped"] == stats["dropped"]
        kept = r.raw("joints", "position")[:, 0]
        np.testing.assert_array_equal(kept, np.flatnonzero(results))  # exactly the accepted samples, in order


def test_lifecycle_never_touches_an_existing_episode(tmp_path):
    existing = tmp_path / "episode_000001.hdf5"
    existing.write_bytes(b"earlier episode")
    writer = EpisodeWriter(tmp_path, "episode_000001", specs(()), metadata={"sim": False})
    with pytest.raises(DataError, match="already exists"):
        writer.start()
    assert existing.read_bytes() == b"earlier episode"
    assert not (tmp_path / "episode_000001.partial.h5").exists()

    second = EpisodeWriter(tmp_path, "episode_000002", specs(()), metadata={"sim": False})
    second.start()
    assert (tmp_path / "episode_000002.partial.h5").exists()
    second.discard()
    assert not (tmp_path / "episode_000002.partial.h5").exists()
    assert second.push("joints", 1.0, position=np.zeros(N_JOINTS), velocity=np.zeros(N_JOINTS),
                       effort=np.zeros(N_JOINTS)) is False

    third = EpisodeWriter(tmp_path, "episode_000003", specs(()), metadata={"sim": False})
    with pytest.raises(DataError, match="stop\\(\\) while new"):
        third.stop()
    with pytest.raises(ValueError, match="boom"), third:
        third.push("command", 5.0, position=np.ones(N_JOINTS))
        raise ValueError("boom")
    with EpisodeReader(tmp_path / "episode_000003.hdf5") as r:  # kept, outcome unknown, reason recorded
        assert r.metadata["outcome"] == "unknown" and "boom" in r.metadata["stop_reason"]
        assert r.count("command") == 1
    with pytest.raises(DataError):
        third.stop()
    # Finalizing never replaces an existing file either.
    partial = tmp_path / "x.partial.h5"
    partial.write_bytes(b"new")
    with pytest.raises(DataError, match="already exists"):
        publish(partial, existing)
    assert existing.read_bytes() == b"earlier episode" and partial.exists()
    assert sorted(os.listdir(tmp_path)) == ["episode_000001.hdf5", "episode_000003.hdf5", "x.partial.h5"]


@pytest.mark.parametrize("kwargs, message", [
    (dict(flush_interval_s=2.0), "flush_interval_s"),
    (dict(episode_id="../escape"), "episode id"),
    (dict(metadata={"outcome": "great"}), "outcome"),
    (dict(metadata={"sim": "yes"}), "'sim' must be true or false"),
    (dict(metadata={"duration_s": float("nan")}), "finite"),
    (dict(metadata={"conditions": "dim"}), "conditions"),
    (dict(metadata={"schema": "mine"}), "reserved"),
    (dict(metadata={"calib": object()}), "unsupported type"),
    (dict(aligned_reference="camera_x"), "aligned_reference"),
    (dict(aligned_streams=["nope"]), "aligned_streams"),
    (dict(aligned_rate_hz=-1), "aligned_rate_hz"),
    (dict(streams=[]), "at least one stream"),
    (dict(streams=specs(()) + specs(())[:1]), "declared twice"),
])
def test_wrong_configuration_is_refused_before_recording(tmp_path, kwargs, message):
    args = dict(directory=tmp_path, episode_id="episode_000001", streams=specs(("jpeg",)), metadata={"sim": True})
    args.update(kwargs)
    with pytest.raises(ConfigError, match=message):
        EpisodeWriter(**args)
    assert list(tmp_path.iterdir()) == []


def test_stop_rejects_a_bad_outcome_and_keeps_recording(tmp_path):
    writer = EpisodeWriter(tmp_path, "episode_000001", specs(()), metadata={"sim": True})
    writer.start()
    with pytest.raises(ConfigError, match="outcome"):
        writer.stop(outcome="meh")
    assert writer.recording
    assert writer.stop(outcome="failure", metadata_updates={"note": "dropped the cup"}).exists()
    with EpisodeReader(tmp_path / "episode_000001.hdf5") as r:
        assert r.metadata["outcome"] == "failure" and r.metadata["note"] == "dropped the cup"


def test_files_that_are_not_episodes_get_a_clear_error(tmp_path):
    text = tmp_path / "notes.h5"
    text.write_text("hello")
    with pytest.raises(DataError, match="not an HDF5 file"):
        EpisodeReader(text)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as h5:
        h5["x"] = [1, 2, 3]
    with pytest.raises(DataError, match="not a collector episode"):
        EpisodeReader(other)
    path, _ = record(tmp_path, seconds=0.5, codecs=())
    with h5py.File(path, "r+") as h5:
        h5.attrs["schema_version"] = 99
    with pytest.raises(DataError, match="schema version 99, newer than this collector reads"):
        EpisodeReader(path)
    with pytest.raises(DataError, match="no such file"):
        EpisodeReader(tmp_path / "missing.h5")
    with pytest.raises(DataError, match="is a directory"):
        EpisodeReader(tmp_path)


def test_reader_names_what_is_missing(tmp_path):
    path, _ = record(tmp_path, seconds=0.5, codecs=("jpeg",))
    with EpisodeReader(path) as r:
        with pytest.raises(DataError, match="no stream 'gripper'.*joints"):
            r.stamps("gripper")
        with pytest.raises(DataError, match="no field 'torque'"):
            r.raw("joints", "torque")
        with pytest.raises(DataError, match="is a camera"):
            r.raw("camera_head", "image")
        with pytest.raises(DataError, match="no camera 'tail'"):
            r.images("tail")
        with pytest.raises(DataError, match="aligned view has no 'gripper'"):
            r.aligned("gripper")
        with pytest.raises(IndexError):
            r.images("head")[10_000]
        assert len(r.images("head").encoded(0)) == r.h5["raw/camera_head/jpeg_size"][0]


def test_camera_spec_checks(tmp_path):
    with pytest.raises(ConfigError, match="jpeg_quality"):
        camera_stream("camera_x", 32, 24, 30, jpeg_quality=0)
    with pytest.raises(ConfigError, match="cannot be interpolated"):
        EpisodeWriter(tmp_path, "e1", [camera_stream("camera_x", 32, 24, 30, default_align="linear")])


@pytest.mark.parametrize("recorded, view", [(("raw", "jpeg"), "jpeg"), (("jpeg", "lzf"), "pixels")])
def test_view_image_format_converts_cameras_recorded_the_other_way(tmp_path, recorded, view):
    path, _ = record(tmp_path, codecs=recorded, seconds=1.0, aligned_images=view)
    with EpisodeReader(path) as r:
        assert bool(r.h5.attrs["compress"]) == (view == "jpeg")
        assert json.loads(r.h5.attrs["aligned_view"])["image_format"] == view
        for cam in ("head", "wrist"):
            aligned = r.aligned_images(cam)
            index = r.sync(f"camera_{cam}")["index"]
            assert len(aligned) == len(r.timestamps)
            for row in (0, len(index) // 2, len(index) - 1):
                got, raw = aligned[row].astype(int), r.images(cam)[index[row]].astype(int)
                if view == "pixels" or r.streams[f"camera_{cam}"].codec == "jpeg":
                    np.testing.assert_array_equal(got, raw)  # same bytes or same decoder: identical
                else:  # encoded at stop from the raw frame, deterministically
                    np.testing.assert_array_equal(got, decode_jpeg(encode_jpeg(r.images(cam)[index[row]], 90)))
        if view == "jpeg":
            lengths = r.h5["compress_len"][:]
            assert lengths.shape == (2, len(r.timestamps)) and (lengths > 0).all()


def test_no_room_for_the_aligned_view_keeps_the_recording_for_recover(tmp_path):
    from collector.recorder import recover_episode, validate_episode

    writer = EpisodeWriter(tmp_path, "episode_000001", specs(("jpeg",)), metadata=METADATA, queue_seconds=1000)
    writer.start()
    for t, stream, fields in events(1.5):
        writer.push(stream, t, **fields)
    deadline = time.monotonic() + 30
    while any(s["written"] < s["pushed"] for s in writer.stats["streams"].values()) and time.monotonic() < deadline:
        time.sleep(0.05)  # everything is on disk ...
    writer._guard.min_free_bytes = 1 << 62  # ... then the disk "fills up" before stop()
    with pytest.raises(DataError, match="no room to write the aligned view.*run `collector recover`"):
        writer.stop(outcome="success")
    partial = tmp_path / "episode_000001.partial.h5"
    assert partial.exists() and not (tmp_path / "episode_000001.hdf5").exists()
    assert validate_episode(recover_episode(partial)) == []


@pytest.mark.parametrize("fsync", [True, False])
def test_flushes_and_the_finished_file_reach_the_disk(tmp_path, monkeypatch, fsync):
    """With fsync (the default) every periodic flush and the closed file before its rename are
    fsynced, so a power cut loses no more than a killed process; fsync=False only flushes to the OS."""
    synced = []
    real_fsync = os.fsync

    def recording_fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    writer = EpisodeWriter(tmp_path, "episode_000001", specs(()), metadata=dict(METADATA), flush_interval_s=0.1,
                           fsync=fsync)
    writer.start()
    sent = [e for e in events(0.6) if e[1] == "joints"]
    for k, (t, stream, fields) in enumerate(sent):
        assert writer.push(stream, t, **fields)
        if k % 10 == 9:
            time.sleep(0.05)  # 0.3 s of wall time: a few periodic flushes
    final = writer.stop(outcome="success")
    partial = str(tmp_path / "episode_000001.partial.h5")
    file_syncs = synced.count(partial)
    assert synced.count(str(tmp_path)) == 1  # the rename is always made durable
    if fsync:
        assert file_syncs >= 3 and writer.stats["flushes"] >= 2
    else:
        assert file_syncs == 0
    with EpisodeReader(final) as r:
        assert r.stamps("joints").size == len(sent)
