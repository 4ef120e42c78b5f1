"""Faults with real processes: kill -9 mid-recording, the file-size limit, a full (tmpfs) disk.

The recording runs in a child process (this file run as a script); the parent kills it or limits it,
then checks the partial file with plain h5py and recovers it. Samples carry values computed from
their stamps, so the parent can check every surviving row is intact, not just present.
"""
import hashlib
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

import collector
from helpers.small_disk import tmpfs_available

REPO = Path(collector.__file__).resolve().parents[1]
N_JOINTS = 12


def joint_values(t):
    return np.sin(t * 3.0 + np.arange(N_JOINTS))


def frame_for(k):
    """A small smooth frame that changes every step (so the camera is never 'frozen')."""
    x = np.linspace(0, 255, 64, dtype=np.float32)
    img = (x[None, :, None] + k * 7 + np.zeros((48, 1, 3), np.float32)) % 256
    return img.astype(np.uint8)


# ---------------------------------------------------------------- child process ---------------
def _specs(camera_codec="jpeg", camera_size=(64, 48)):
    from collector.recorder import FieldSpec, StreamSpec, camera_stream

    # Generous tolerances: the child runs on a loaded CI machine; the checks here are about crashes.
    return [
        StreamSpec("joints", {"position": FieldSpec((N_JOINTS,)), "velocity": FieldSpec((N_JOINTS,))},
                   rate_hz=200, tolerance_s=0.5, kind="joints"),
        StreamSpec("command", {"position": FieldSpec((N_JOINTS,))}, rate_hz=50, tolerance_s=0.5, kind="command"),
        camera_stream("camera_head", camera_size[0], camera_size[1], 30, codec=camera_codec, tolerance_s=0.5),
    ]


METADATA = {"task": "crash", "sim": True, "operator": "test",
            "conditions": {"lighting": {"name": "dim"}, "weights": {"cube": 0.3}}}


def _record_realtime(writer, seconds, stop_when=lambda: False, frame=None):
    """Push joints 200 Hz, command 50 Hz, camera 30 Hz stamped with the system-wide monotonic clock."""
    start = time.monotonic()
    k = 0
    while time.monotonic() - start < seconds and not stop_when():
        t = time.monotonic()
        q = joint_values(t)
        writer.push("joints", t, position=q, velocity=q * 2)
        if k % 4 == 0:
            writer.push("command", t, position=q)
        if k % 7 == 0:
            writer.push("camera_head", t, image=frame if frame is not None else frame_for(k))
        k += 1
        time.sleep(0.005)


def child_kill(directory):
    from collector.recorder import EpisodeWriter

    first = EpisodeWriter(directory, "episode_000001", _specs(), metadata=METADATA)
    first.start()
    _record_realtime(first, 0.5)
    print("EP1", first.stop(outcome="success"), flush=True)
    second = EpisodeWriter(directory, "episode_000002", _specs(), metadata=METADATA)
    second.start()
    print("RECORDING", time.monotonic(), flush=True)
    _record_realtime(second, 60)


def child_limit(directory, min_free, reserve):
    """Record big raw frames until the recorder reports it had to stop."""
    from collector.errors import DataError
    from collector.recorder import EpisodeWriter

    writer = EpisodeWriter(directory, "episode_000001", _specs("raw", (160, 120)), metadata=METADATA,
                           min_free_bytes=int(min_free), reserve_bytes=int(reserve))
    writer.start()
    frame = np.full((120, 160, 3), 90, np.uint8)
    _record_realtime(writer, 20, stop_when=lambda: writer.error is not None, frame=frame)
    time.sleep(0.2)
    accepted_after = writer.push("joints", time.monotonic(), position=np.zeros(N_JOINTS), velocity=np.zeros(N_JOINTS))
    result = {"error": str(writer.error) if writer.error else None, "accepted_after_error": accepted_after,
              "written": writer.stats["streams"]["camera_head"]["written"]}
    try:
        writer.stop(outcome="success")
        result["stop"] = "finished"
    except DataError as exc:
        result["stop"] = f"DataError: {exc}"
    if len(sys.argv) > 5:  # the tmpfs vanishes with the child's mount namespace: keep a copy
        for path in [*Path(directory).glob("*.h5"), *Path(directory).glob("*.hdf5")]:
            shutil.copy(path, sys.argv[5])
    print("RESULT", json.dumps(result), flush=True)


# ---------------------------------------------------------------- parent helpers --------------
def _child(*args, **kw):
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, __file__, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, **kw)


def _wait_line(proc, prefix, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith(prefix):
            return line[len(prefix):].strip()
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"child never printed {prefix!r}: {proc.stderr.read()[-2000:]}")


def _sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _check_rows_intact(h5):
    """Every surviving joints row holds exactly the values computed from its stamp."""
    t = h5["raw/joints/t"][:]
    n = min(len(t), h5["raw/joints/position"].shape[0])
    expected = joint_values(t[:n, None])
    np.testing.assert_array_equal(h5["raw/joints/position"][:n], expected)
    return t[:n]


# ---------------------------------------------------------------- tests -----------------------
def test_kill_9_at_random_moments_loses_at_most_a_flush_and_recovers(tmp_path):
    from collector.recorder import EpisodeReader, recover_episode, validate_episode

    rng = random.Random(1234)
    losses = []
    for trial in range(3):
        directory = tmp_path / f"trial{trial}"
        proc = _child("kill", directory)
        first = Path(_wait_line(proc, "EP1 "))
        first_hash = _sha(first)
        started_at = float(_wait_line(proc, "RECORDING "))
        time.sleep(rng.uniform(0.2, 2.0))
        killed_at = time.monotonic()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        proc.stdout.close(), proc.stderr.close()
        assert proc.returncode == -signal.SIGKILL

        partial = directory / "episode_000002.partial.h5"
        with h5py.File(partial, "r") as h5:  # plain h5py, no collector code involved
            assert h5.attrs["status"] == "recording"
            stamps = _check_rows_intact(h5)
        # Everything up to the last flush is there: at most flush_interval_s (0.5 s) plus queueing.
        loss = killed_at - (stamps[-1] if len(stamps) else started_at)
        losses.append(loss)
        assert loss <= 1.0, f"trial {trial}: {loss:.3f} s of data lost (flush every 0.5 s)"

        final = recover_episode(partial)
        assert final == directory / "episode_000002.hdf5" and not partial.exists()
        assert _sha(first) == first_hash, "the earlier episode was modified"
        with EpisodeReader(final) as r:
            assert r.metadata["recovered"] is True and r.status == "recovered"
            assert r.count("joints") == len(stamps)
            assert r.metadata["conditions"]["lighting"] == {"name": "dim"}
            has_view = all(r.count(s) for s in ("joints", "command", "camera_head"))
            if has_view:
                assert len(r.timestamps) > 0 and r.aligned("qpos").shape[1] == N_JOINTS
        if has_view and stamps[-1] - stamps[0] > 0.2:
            assert validate_episode(final, min_duration_s=0.2) == []
        assert sorted(p.name for p in directory.iterdir()) == ["episode_000001.hdf5", "episode_000002.hdf5"]
    print("kill -9 losses (s):", [round(float(x), 3) for x in losses])


def test_file_size_limit_stops_cleanly_and_keeps_what_was_written(tmp_path):
    from collector.recorder import EpisodeReader, recover_episode

    limit = 4 * 1024 * 1024

    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = _child("limit", tmp_path, 1024 * 1024, 0, preexec_fn=limit_file_size)
    out, err = proc.communicate(timeout=60)
    # SIGXFSZ would have killed it: the recorder ignores that signal and stops before the limit.
    assert proc.returncode == 0, err[-2000:]
    result = json.loads(out.split("RESULT", 1)[1])
    assert "file-size limit" in result["error"]
    assert result["accepted_after_error"] is False
    assert result["stop"].startswith("DataError") and "file-size limit" in result["stop"]

    partial = tmp_path / "episode_000001.partial.h5"
    assert partial.stat().st_size <= limit
    with h5py.File(partial, "r") as h5:
        frames = h5["raw/camera_head/image"].shape[0]
        assert frames >= result["written"] * 0.5 > 0
        assert np.all(h5["raw/camera_head/image"][frames - 1] == 90)
        _check_rows_intact(h5)
    final = recover_episode(partial)  # no limit in this process: the episode can be finished
    with EpisodeReader(final) as r:
        assert r.metadata["recovered"] is True and r.count("camera_head") == frames


@pytest.mark.skipif(not tmpfs_available(), reason="needs user namespaces to mount a small tmpfs")
def test_disk_full_on_small_tmpfs_stops_cleanly(tmp_path):
    from collector.recorder import EpisodeReader, recover_episode

    mount = tmp_path / "small"
    mount.mkdir()
    keep = tmp_path / "kept"
    keep.mkdir()
    # min_free_bytes=0: the guard does not stop early, the writes really hit ENOSPC and the recorder
    # must release its reserve file to flush cleanly.
    script = (f"mount -t tmpfs -o size=6m tmpfs {mount} && "
              f"PYTHONPATH={REPO} {sys.executable} {__file__} limit {mount} 0 {1024 * 1024} {keep}")
    out = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.split("RESULT", 1)[1])
    assert "disk full" in result["error"]
    assert result["stop"].startswith("DataError")
    partial = keep / "episode_000001.partial.h5"
    with h5py.File(partial, "r") as h5:
        assert h5["raw/camera_head/image"].shape[0] > 0
        _check_rows_intact(h5)
    with EpisodeReader(recover_episode(partial)) as r:
        assert r.metadata["recovered"] is True and r.count("joints") > 0


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "kill":
        child_kill(sys.argv[2])
    elif mode == "limit":
        child_limit(sys.argv[2], sys.argv[3], sys.argv[4])
