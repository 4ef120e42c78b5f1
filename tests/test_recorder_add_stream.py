"""EpisodeWriter.add_stream: a stream declared while an episode records (a ROS topic discovered late)
is in the file from its first pushed sample, also after a kill -9 and `collector recover`."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from collector.errors import ConfigError, DataError
from collector.recorder import EpisodeReader, EpisodeWriter, recover_episode
from collector.recorder.streams import FieldSpec, StreamSpec, camera_stream

JOINTS = StreamSpec("joints", {"position": FieldSpec((3,))}, 100.0, kind="joints")
POSE = StreamSpec("pose_cube", {"pose": FieldSpec((7,))}, 30.0, kind="pose", attrs={"topic": "/cube/pose"})


def test_a_stream_added_mid_episode_is_recorded_from_its_first_sample(tmp_path):
    writer = EpisodeWriter(tmp_path, "episode_000001", [JOINTS], metadata={"sim": True}, min_free_bytes=0,
                           flush_interval_s=0.2)
    writer.start()
    for k in range(50):
        assert writer.push("joints", k * 0.01, position=np.full(3, k, float))
    assert writer.push("pose_cube", 0.3, pose=np.zeros(7)) is False  # not declared yet: ignored
    writer.add_stream(POSE)
    # pushed at once, before the disk writer has created the stream's group
    poses = [(0.5 + i / 30, np.arange(7, dtype=float) + i) for i in range(20)]
    for t, pose in poses[:5]:
        assert writer.push("pose_cube", t, pose=pose)
    time.sleep(0.5)  # a flush or two: the group now exists
    for t, pose in poses[5:]:
        assert writer.push("pose_cube", t, pose=pose)
    for k in range(50, 150):
        writer.push("joints", k * 0.01, position=np.full(3, k, float))
    with pytest.raises(ConfigError, match="declared twice"):
        writer.add_stream(POSE)
    with pytest.raises(ConfigError, match="before start"):
        writer.add_stream(camera_stream("camera_late", 32, 24, 10.0))
    path = writer.stop(outcome="success")
    with pytest.raises(DataError, match="add_stream\\(\\) while stopped"):
        writer.add_stream(StreamSpec("late", {"v": FieldSpec(())}, 10.0))
    with EpisodeReader(path) as r:
        assert r.streams["pose_cube"].attrs["topic"] == "/cube/pose"
        np.testing.assert_array_equal(r.stamps("pose_cube"), [t for t, _ in poses])
        np.testing.assert_array_equal(r.raw("pose_cube", "pose")[:], np.stack([p for _, p in poses]))
        assert r.count("joints") == 150
        assert r.counters["pose_cube"] == {"pushed": 20, "written": 20, "dropped": 0, "rejected": 0}
        assert r.recorder_stats["streams"]["pose_cube"]["written"] == 20


CHILD = textwrap.dedent("""
    import sys, time
    import numpy as np
    from collector.recorder import EpisodeWriter
    from collector.recorder.streams import FieldSpec, StreamSpec
    joints = StreamSpec("joints", {"position": FieldSpec((3,))}, 100.0, kind="joints")
    pose = StreamSpec("pose_cube", {"pose": FieldSpec((7,))}, 30.0, kind="pose")
    w = EpisodeWriter(sys.argv[1], "episode_000001", [joints], metadata={"sim": True}, min_free_bytes=0,
                      flush_interval_s=0.2)
    w.start()
    for k in range(30):
        w.push("joints", k * 0.01, position=np.zeros(3))
    w.add_stream(pose)
    for i in range(10):
        w.push("pose_cube", 0.3 + i * 0.03, pose=np.full(7, i, float))
    time.sleep(1.0)  # several flushes
    print("READY", flush=True)
    time.sleep(60)
""")


def test_a_kill_after_a_stream_was_added_leaves_it_recoverable(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "READY"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
    final = recover_episode(tmp_path / "episode_000001.partial.h5")
    with EpisodeReader(final) as r:
        assert r.count("pose_cube") == 10 and r.count("joints") == 30
        np.testing.assert_array_equal(r.raw("pose_cube", "pose")[:, 0], np.arange(10))
        assert json.loads(r.h5["recorder/counters"].attrs["streams"]) == ["joints", "pose_cube"]
