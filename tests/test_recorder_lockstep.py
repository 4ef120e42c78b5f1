"""A lockstep sim outruns the recorder on a loaded machine; the recorder makes it wait rather than drop.

Realtime producers keep the never-wait rule (tests/test_recorder.py); a lockstep loop has no wall-clock
deadline, so a full queue makes push wait for room and no sample is lost. The queues here are tiny
(16 samples) so the sim, running faster than real time, fills them within a fraction of a second:
before the fix this take dropped samples on a quiet machine (a control run without waiting did, every
time); on a loaded one the sim may be too slow to overflow them, so no control run is kept here.
"""
import pytest

from collector.recorder import EpisodeReader
from collector.teleop.rig import build_sim_rig


@pytest.fixture()
def rig():
    rig = build_sim_rig(task="pick_place", device="scripted", render=True, seed=3)
    rig.backend.reset(seed=3)
    yield rig
    rig.close()


def _record(rig, out):
    writer = rig.recorder(out, "take", {"task": "pick_place", "sim": True}, queue_seconds=0.01)
    rig.run_episode(3.0, sink=writer, seed=3, stop_on_success=False)
    path = writer.stop(outcome="unknown")
    with EpisodeReader(path) as reader:
        return reader.counters


def test_a_lockstep_take_loses_no_sample_even_with_tiny_queues(rig, tmp_path):
    counters = _record(rig, tmp_path)
    assert all(c["dropped"] == 0 and c["written"] == c["pushed"] for c in counters.values()), counters
    assert counters["joints"]["written"] >= 290  # 3 s at 100 Hz


def test_a_lockstep_producer_waits_out_a_writer_stalled_longer_than_the_old_5_s_limit(tmp_path, monkeypatch):
    """Found in the learning study: a corrected take recorded beside CPU- and fsync-heavy jobs dropped
    samples from four streams (queue full) because a lockstep push gave up after 5 s without room.
    Here the disk writer really stalls for 6.5 s inside a flush; the producer waits and nothing is lost."""
    import threading
    import time

    import numpy as np

    from collector.recorder import EpisodeWriter, FieldSpec, StreamSpec
    from collector.recorder.disk_writer import DiskWriter

    stalled, real_flush = threading.Event(), DiskWriter.flush

    def flush_that_stalls_once(self):
        if not stalled.is_set():
            stalled.set()
            time.sleep(6.5)
        real_flush(self)

    monkeypatch.setattr(DiskWriter, "flush", flush_that_stalls_once)
    spec = StreamSpec("joints", {"position": FieldSpec((3,))}, rate_hz=10)
    writer = EpisodeWriter(tmp_path, "episode_000001", [spec], metadata={"sim": True}, queue_seconds=1.0)
    writer.start()
    writer.set_lockstep(True)
    assert writer.push("joints", 0.0, position=np.zeros(3))
    assert stalled.wait(10.0)  # the writer is now inside its stalled flush, draining nothing
    started = time.monotonic()
    kept = [writer.push("joints", 0.1 * (i + 1), position=np.full(3, float(i))) for i in range(60)]
    waited = time.monotonic() - started
    path = writer.stop(outcome="unknown")
    assert all(kept) and waited > 5.0, waited  # it did wait past the old limit, and kept every sample
    with EpisodeReader(path) as reader:
        counters = reader.counters["joints"]
        assert counters["dropped"] == 0 and counters["written"] == counters["pushed"] == 61, counters


def test_a_lockstep_push_stops_waiting_when_the_consumer_has_failed():
    import threading

    from collector.recorder.queues import SampleQueue

    queue = SampleQueue(1)
    assert queue.put_wait("first", threading.Event(), 30.0)
    failed = threading.Event()
    threading.Timer(0.2, failed.set).start()
    started = __import__("time").monotonic()
    assert not queue.put_wait("second", failed.is_set, 30.0)  # given up on the failure, not after 30 s
    assert __import__("time").monotonic() - started < 5.0 and queue.dropped == 1
