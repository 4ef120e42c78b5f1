"""A lockstep sim outruns the recorder on a loaded machine; the recorder makes it wait rather than drop.

Realtime producers keep the never-wait rule (tests/test_recorder.py); a lockstep loop has no wall-clock
deadline, so a full queue makes push wait for room and no sample is lost. The queues here are tiny
(16 samples) so the sim, running faster than real time, fills them within a fraction of a second.
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


def _record(rig, out, lockstep_waits: bool):
    writer = rig.recorder(out, "take", {"task": "pick_place", "sim": True}, queue_seconds=0.01)
    if not lockstep_waits:
        writer.set_lockstep = lambda lockstep: None  # the recorder as it was: never waits
    rig.run_episode(3.0, sink=writer, seed=3, stop_on_success=False)
    path = writer.stop(outcome="unknown")
    with EpisodeReader(path) as reader:
        return reader.counters


def test_a_lockstep_take_loses_no_sample_even_with_tiny_queues(rig, tmp_path):
    counters = _record(rig, tmp_path, lockstep_waits=True)
    assert all(c["dropped"] == 0 and c["written"] == c["pushed"] for c in counters.values()), counters
    assert counters["joints"]["written"] >= 290  # 3 s at 100 Hz


def test_without_waiting_the_same_take_drops_samples(rig, tmp_path):
    """The control experiment: the tiny queues do overflow when the recorder never waits."""
    counters = _record(rig, tmp_path, lockstep_waits=False)
    assert sum(c["dropped"] for c in counters.values()) > 0, counters
