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
