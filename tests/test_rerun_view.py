"""`collector view` and `--display`: episodes and live takes in Rerun, read back with Rerun's own reader.

Every .rrd written here is opened with rerun.chunk.RrdReader (the SDK's reader of recording files) and
compared with the episode file it came from: entities, sample counts, stamps to the nanosecond, values.
"""
import json
import shutil
import time
from collections import defaultdict

import numpy as np
import pytest

pytestmark = pytest.mark.dataset(episodes=3, duration_s=1.5)  # the shape of the `dataset` fixture (conftest.py)


class Recording:
    """One recording of an .rrd file: per entity its rows, stamps (ns) and column values."""

    def __init__(self, reader, store):
        self.id = store.recording_id
        self.rows = defaultdict(int)
        self.times = defaultdict(list)
        self.columns = defaultdict(lambda: defaultdict(list))
        self.static = defaultdict(dict)
        for chunk in reader.stream(store=store):
            batch = chunk.to_record_batch()
            values = {name: batch.column(name).to_pylist() for name in batch.schema.names
                      if name not in ("rerun.controls.RowId", "time")}
            if chunk.is_static:
                self.static[chunk.entity_path].update({k: v[-1] for k, v in values.items()})
                continue
            self.rows[chunk.entity_path] += chunk.num_rows
            self.times[chunk.entity_path].append(batch.column("time").cast("int64").to_numpy())
            for name, column in values.items():
                self.columns[chunk.entity_path][name].extend(column)

    def stamps_ns(self, entity):
        order = np.concatenate(self.times[entity])
        return np.sort(order)

    def sorted_column(self, entity, name):
        order = np.argsort(np.concatenate(self.times[entity]), kind="stable")
        return [self.columns[entity][name][i] for i in order]


def read_rrd(path):
    from rerun.chunk import RrdReader

    reader = RrdReader(path)
    return {store.recording_id: Recording(reader, store) for store in reader.recordings()}


def nanos(t):
    return np.round(np.asarray(t, np.float64) * 1e9).astype(np.int64)


def view(*args):
    from collector.cli import main

    return main(["view", *map(str, args), "--quiet"])


# -- collector view ------------------------------------------------------------------------------------

def test_saved_episode_has_every_stream_on_its_recorded_stamps(demo_take, tmp_path):
    from collector.recorder import EpisodeReader

    out = tmp_path / "take.rrd"
    assert view(demo_take, "--recorded-jpeg", "--save", out) == 0
    (recording,) = read_rrd(out).values()
    with EpisodeReader(demo_take) as reader:
        assert recording.id == reader.metadata["episode_id"]
        cameras = [s.camera_name for s in reader.streams.values() if s.is_camera]
        assert cameras, "the demo take records cameras"
        for camera in cameras:
            entity = f"/cameras/{camera}"
            frames = reader.images(camera)
            assert recording.rows[entity] == len(frames)
            np.testing.assert_array_equal(recording.stamps_ns(entity), nanos(reader.stamps(f"camera_{camera}")))
            blobs = recording.sorted_column(entity, "EncodedImage:blob")
            for i in (0, len(frames) // 2, len(frames) - 1):  # the recorded bytes, not a re-encoding
                assert bytes(blobs[i][0]) == frames.encoded(i)

        names = reader.streams["joints"].attrs["joint_names"]
        measured, commanded = reader.raw("joints", "position")[:], reader.raw("command", "position")[:]
        limbs = {"left_elbow": "left_arm", "right_wrist_roll": "right_arm", "waist_yaw": "waist",
                 "head_tilt": "head", "left_finger_a": "left_hand"}
        for joint, limb in limbs.items():
            i = names.index(joint)
            entity = f"/joints/{limb}/{joint}/measured"
            assert recording.rows[entity] == reader.count("joints")
            np.testing.assert_array_equal(recording.stamps_ns(entity), nanos(reader.stamps("joints")))
            values = [v[0] for v in recording.sorted_column(entity, "Scalars:scalars")]
            np.testing.assert_array_equal(values, measured[:, i])
            entity = f"/joints/{limb}/{joint}/commanded"
            np.testing.assert_array_equal(recording.stamps_ns(entity), nanos(reader.stamps("command")))
            np.testing.assert_array_equal([v[0] for v in recording.sorted_column(entity, "Scalars:scalars")],
                                          commanded[:, i])
        unit = {"left_finger_a": "(m)", "left_elbow": "(rad)"}
        for joint, text in unit.items():
            label = recording.static[f"/joints/{limbs[joint]}/{joint}/measured"]["SeriesLines:names"]
            assert label[0].endswith(text)
        assert sum(1 for e in recording.rows if e.startswith("/joints/") and e.endswith("/measured")) == len(names)

        objects = [n for n in reader.streams if n.startswith("pose_objects_")]
        assert objects, "simulated takes record the task objects' poses"
        for stream in objects:
            entity = f"/world/objects/{stream[len('pose_objects_'):]}"
            assert recording.rows[entity] == reader.count(stream)
            np.testing.assert_array_equal(recording.stamps_ns(entity), nanos(reader.stamps(stream)))
            pose = reader.raw(stream, "pose")[:]
            translation = np.array([v[0] for v in recording.sorted_column(entity, "Transform3D:translation")])
            np.testing.assert_allclose(translation, pose[:, :3], atol=1e-6)
            quaternion = np.array([v[0] for v in recording.sorted_column(entity, "Transform3D:quaternion")])
            np.testing.assert_allclose(quaternion, pose[:, [4, 5, 6, 3]], atol=1e-6)  # wxyz -> xyzw
        for side in ("left", "right"):
            assert recording.rows[f"/world/ee_target/{side}"] == reader.count("ik_target")
        assert recording.sorted_column("/status/control", "StateChange:state")[0] == ["operator"]

        conditions = recording.static["/__properties/conditions"]
        assert json.loads(conditions["lighting"][0])["preset"] == reader.conditions["lighting"]["preset"]
        assert conditions["seed"] == [reader.conditions["seed"]]
        episode = recording.static["/__properties/episode"]
        assert episode["task"] == [reader.metadata["task"]]
        assert episode["instruction"] == [reader.metadata["instruction"]]


def test_frames_decode_to_the_recorded_colours_with_a_standard_decoder(demo_take, tmp_path):
    import cv2

    from collector.recorder import EpisodeReader

    out = tmp_path / "colours.rrd"
    assert view(demo_take, "--save", out) == 0  # the default: colours right for any decoder
    (recording,) = read_rrd(out).values()
    with EpisodeReader(demo_take) as reader:
        frames = reader.images("head")
        blobs = recording.sorted_column("/cameras/head", "EncodedImage:blob")
        assert len(blobs) == len(frames)
        for i in (0, len(frames) - 1):
            standard = cv2.imdecode(np.frombuffer(bytes(blobs[i][0]), np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
            recorded = frames[i].astype(np.int16)  # RGB, as the recorder's own decoder returns it
            assert np.abs(standard.astype(np.int16) - recorded).mean() < 3.0
            swapped = cv2.imdecode(np.frombuffer(frames.encoded(i), np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
            assert np.abs(swapped.astype(np.int16) - recorded).mean() > \
                np.abs(standard.astype(np.int16) - recorded).mean()  # what a viewer shows without it


def test_review_labels_show_as_a_subtask_lane_and_review_properties(demo_take, tmp_path):
    from collector.review.annotations import Labels, Subtask, save_labels

    episode = tmp_path / demo_take.name
    shutil.copy2(demo_take, episode)  # labels are saved into the file: never into the shared fixture
    save_labels(episode, Labels(reviewer="ana", verdict="accept", instructions=["Put the ball in the tray."],
                                subtasks=[Subtask("reach", 0.5, 1.5), Subtask("grasp", 1.5, 2.25)]))
    save_labels(episode, Labels(reviewer="ben", verdict="accept", instructions=["Ball into the tray, please."]))
    out = tmp_path / "reviewed.rrd"
    assert view(episode, "--save", out) == 0
    (recording,) = read_rrd(out).values()

    lane = "/annotations/subtask"
    np.testing.assert_array_equal(recording.stamps_ns(lane), nanos([0.5, 1.5, 2.25]))
    assert recording.sorted_column(lane, "StateChange:state") == [["reach"], ["grasp"], [""]]  # "" ends the lane
    review = recording.static["/__properties/review"]
    assert review["verdict"] == ["accepted"]
    assert "Ball into the tray, please." in review["instructions"][0]
    text = recording.static["/annotations/review"]["TextDocument:text"][0]
    assert "ana" in text and "ben" in text and "Put the ball in the tray." in text


def test_a_dataset_is_one_recording_per_episode_and_episode_picks_some(dataset, tmp_path):
    from collector.session.catalog import Catalog

    rows = Catalog(dataset / "catalog.sqlite").episodes()
    out = tmp_path / "all.rrd"
    assert view(dataset, "--save", out) == 0
    recordings = read_rrd(out)
    assert sorted(recordings) == sorted(r.episode_id for r in rows)
    for rec in recordings.values():
        assert rec.rows["/cameras/head"] > 0 and any(e.startswith("/joints/") for e in rec.rows)

    picked = tmp_path / "picked.rrd"
    second = rows[1]
    assert view(dataset, "--episode", second.episode_index, "--save", picked) == 0
    assert list(read_rrd(picked)) == [second.episode_id]
    assert view(dataset, "--episode", rows[2].episode_id, "--save", picked) == 0
    assert list(read_rrd(picked)) == [rows[2].episode_id]


@pytest.mark.parametrize("case", ["missing", "corrupt", "not_rrd", "no_episode"])
def test_bad_input_is_one_line_error_and_writes_nothing(case, dataset, tmp_path, capsys):
    source, save = tmp_path / "nowhere.hdf5", tmp_path / "out.rrd"
    extra = []
    if case == "corrupt":
        source.write_bytes(b"this is not an HDF5 episode" * 50)
    elif case == "not_rrd":
        source, save = dataset, tmp_path / "out.txt"
    elif case == "no_episode":
        source, extra = dataset, ["--episode", "999"]
    before = source.read_bytes() if source.is_file() else None
    assert view(source, "--save", save, *extra) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("collector view: error:") and "Traceback" not in err[0]
    assert not save.exists() and not list(tmp_path.glob(".view-*"))
    if before is not None:
        assert source.read_bytes() == before


# -- --display -----------------------------------------------------------------------------------------

def test_display_tap_never_blocks_the_loop_and_drops_the_oldest():
    from collector.recorder import vocabulary
    from collector.review.live_display import DisplayTap

    spec = vocabulary.joints_spec(["a", "b"], 100.0)
    tap = DisplayTap("take", [spec], sink=None, capacity=100)  # nobody drains it: a stalled display
    q = np.zeros(2)
    started = time.perf_counter()
    for i in range(20000):
        assert tap.push("joints", i * 0.01, position=q, velocity=q, effort=q)
    per_push_s = (time.perf_counter() - started) / 20000
    assert per_push_s < 50e-6  # an append, whatever the display does
    assert tap.pushed == 20000 and tap.dropped == 19900
    assert [round(t / 0.01) for _, t, _ in tap.queue] == list(range(19900, 20000))  # the newest are kept
    assert tap.push("input", 0.0, seq=np.int64(1))  # recorded streams with nothing to show pass by
    assert len(tap.queue) == 100 and tap.pushed == 20000


def test_a_display_process_that_dies_never_stops_the_take(tmp_path):
    import os
    import signal

    from collector.recorder import vocabulary
    from collector.review.live_display import open_display

    spec = vocabulary.joints_spec(["a", "b"], 100.0)
    display = open_display(str(tmp_path / "live.rrd"))
    tap = display.take("take", [spec])
    assert display.wait_ready(60.0)
    os.kill(display.pid, signal.SIGKILL)  # the viewer side crashed, or was killed for memory
    q = np.zeros(2)
    started = time.monotonic()
    for i in range(300):  # three seconds of a 100 Hz stream, pushed as the loop would
        assert tap.push("joints", i * 0.01, position=q, velocity=q, effort=q)
        if i % 50 == 0:
            time.sleep(0.15)  # let the display thread try to send a batch
    display.close()
    assert time.monotonic() - started < 10.0
    assert display.error and "display process" in display.error
    assert tap.pushed == 300


def test_live_display_keeps_the_tick_rate_and_shows_every_sample(tmp_path):
    from collector.recorder import EpisodeReader
    from collector.review.live_display import run_ticks

    without = run_ticks(150, display=False, realtime=True)
    shown = run_ticks(150, display=True, realtime=True, out_rrd=tmp_path / "live.rrd", record_dir=tmp_path)
    assert shown["display_error"] is None and shown["display_dropped"] == 0
    assert shown["control_hz"] >= 0.8 * without["control_hz"], (shown["control_hz"], without["control_hz"])
    (recording,) = read_rrd(tmp_path / "live.rrd").values()
    with EpisodeReader(shown["episode"]) as reader:
        names = reader.streams["joints"].attrs["joint_names"]
        i = names.index("right_elbow")
        entity = "/joints/right_arm/right_elbow/measured"
        assert recording.rows[entity] == reader.count("joints") == shown["ticks"]
        np.testing.assert_array_equal(recording.stamps_ns(entity), nanos(reader.stamps("joints")))
        np.testing.assert_array_equal([v[0] for v in recording.sorted_column(entity, "Scalars:scalars")],
                                      reader.raw("joints", "position")[:, i])
        assert recording.rows["/world/ee_target/left"] == reader.count("ik_target")
    assert 0 < recording.rows["/cameras/head"] <= shown["frames"]
    assert shown["display_logged"]["joints"] == shown["ticks"]


def test_teleop_display_writes_each_take_to_its_own_file(tmp_path):
    from collector.cli import main
    from collector.recorder import EpisodeReader

    live = tmp_path / "live.rrd"
    assert main(["teleop", "--duration", "0.6", "--episodes", "2", "--no-stop-on-success",
                 "--record", str(tmp_path / "takes"), "--display", str(live)]) == 0
    takes = sorted((tmp_path / "takes").glob("*.hdf5"))
    assert len(takes) == 2
    for take, rrd in zip(takes, (live, tmp_path / "live-2.rrd")):
        (recording,) = read_rrd(rrd).values()
        assert recording.id.startswith(take.name.split(".")[0] + "-live-")
        with EpisodeReader(take) as reader:
            entity = "/joints/waist/waist_yaw/commanded"
            np.testing.assert_array_equal(recording.stamps_ns(entity), nanos(reader.stamps("command")))


@pytest.fixture
def viewer(tmp_path):
    """Rerun's own viewer binary, headless on loopback: it serves the viewer protocol and saves what
    arrives. Yields (url, received) where received() stops it and reads what it got."""
    import signal
    import socket
    import subprocess
    import sys
    import warnings

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    saved = tmp_path / "received.rrd"
    server = subprocess.Popen([sys.executable, "-m", "rerun_cli", "--bind", "127.0.0.1", "--port", str(port),
                               "--save", str(saved)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def received():
        if server.poll() is None:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=30)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a stream saved by the viewer has no footer; the reader says so
            return read_rrd(saved)

    try:
        for line in server.stderr:
            if "Listening" in line:
                break
        yield f"rerun+http://127.0.0.1:{port}/proxy", received
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        server.stderr.close()


def test_view_streams_each_episode_to_a_running_viewer(dataset, viewer):
    url, received = viewer
    assert view(dataset, "--connect", url) == 0
    recordings = received()
    assert len(recordings) == 3
    for recording in recordings.values():
        assert recording.rows["/cameras/head"] > 0


def test_display_streams_to_a_running_viewer_by_its_url(viewer, capsys):
    from collector.cli import main

    url, received = viewer
    assert main(["teleop", "--duration", "0.5", "--no-stop-on-success", "--display", url]) == 0
    (recording,) = received().values()
    assert recording.id.startswith("teleop_pick_place_000000-live-")
    ticks = json.loads(capsys.readouterr().out.splitlines()[0])["ticks"]
    assert ticks >= 50 and recording.rows["/joints/waist/waist_yaw/measured"] == ticks  # every tick shown


@pytest.mark.parametrize("command", [["view", "{episode}"], ["view", "{episode}", "--connect", "{dead}"],
                                     ["teleop", "--duration", "0.1", "--display"],
                                     ["teleop", "--duration", "0.1", "--display", "{dead}"]])
def test_no_viewer_to_show_it_is_one_line_error(command, demo_take, monkeypatch, capsys):
    import socket

    from collector.cli import main

    monkeypatch.delenv("DISPLAY", raising=False)  # a headless station: nowhere to open a window
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"rerun+http://127.0.0.1:{probe.getsockname()[1]}/proxy"  # nothing listens there
    argv = [part.format(episode=demo_take, dead=dead) for part in command]
    started = time.monotonic()
    assert main(argv) == 2
    assert time.monotonic() - started < 30.0  # said at once, not after waiting on a viewer
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"collector {argv[0]}: error:") and ("display" in err[-1] or "answers" in err[-1])


def test_collect_display_streams_the_take_it_records(tmp_path):
    from collector.cli import main
    from collector.recorder import EpisodeReader

    plan = tmp_path / "short.yaml"  # one short take of one cell: the display is under test, not the task
    plan.write_text("name: short\nrobot: humanoid\nbackend: sim\noperator: scripted\ntasks: [pick_place]\n"
                    "lighting: [bright]\nweights: [light]\ntakes_per_cell: 1\nepisode_time_limit_s: 1.5\n"
                    "reset: auto\noutcome: auto\n")
    live = tmp_path / "live.rrd"
    assert main(["collect", "--plan", str(plan), "--out", str(tmp_path / "data"), "--max-takes", "1",
                 "--no-progress", "--display", str(live)]) == 0
    (take,) = sorted((tmp_path / "data" / "episodes").glob("*.hdf5"))
    (recording,) = read_rrd(live).values()
    with EpisodeReader(take) as reader:
        assert recording.id.startswith(reader.metadata["episode_id"] + "-live-")
        assert recording.rows["/joints/left_arm/left_elbow/measured"] == reader.count("joints")
        assert recording.rows["/cameras/head"] > 0


def test_a_display_target_that_is_not_a_viewer_or_rrd_file_is_refused(tmp_path, capsys):
    from collector.cli import main

    assert main(["teleop", "--duration", "0.1", "--display", str(tmp_path / "live.txt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("collector teleop: error: --display") and ".rrd" in err[-1]
