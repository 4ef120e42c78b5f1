"""The scripted corrector with dexterous hands (robots/humanoid_dex): it takes over a "policy" that stops
short, plans as the scripted operator plans for fingers, and finishes the pick-and-place.

The "policy" replays the joint commands of a scripted dexterous take up to a chosen moment and then holds
still (a policy that stalls), over the real teleop loop and the in-process simulator (no cameras needed).
"""
import os

import numpy as np
import pytest

from collector.backends.sim import SimBackend
from collector.sim import SimEnv
from collector.teleop.arbiter import JointTargetSource
from collector.teleop.config import CorrectorConfig, load_teleop_config
from collector.teleop.devices.corrector import ScriptedCorrector
from collector.teleop.devices.scripted import ScriptedOperator
from collector.teleop.loop import TeleopLoop, run_episode
from collector.teleop.takeover import SupervisedSource, TakeoverSwitch
from helpers.teleop import ListSink

pytestmark = pytest.mark.slow
SEED = 3004  # one of the bench's dexterous pick seeds (bench_hands.py), light objects


def dex_backend(config):
    env = SimEnv(robot="humanoid_dex", task="pick_place", control_hz=config.control.rate_hz, seed=SEED)
    backend = SimBackend(env, render=False)
    backend.reset(seed=SEED, lighting="bright", weight="light")
    return backend


@pytest.fixture(scope="module")
def scripted_take():
    """The scripted operator's dexterous pick: (its commands, the control tick each phase began at)."""
    config = load_teleop_config()
    backend = dex_backend(config)
    operator = ScriptedOperator(config.devices.scripted)
    sink = ListSink()
    loop = TeleopLoop(backend, config=config, device=operator, sink=sink, endpoint=f"inproc://dex-take-{os.getpid()}",
                      bind=True)
    try:
        result = run_episode(backend, operator, max_duration_s=40.0, seed=SEED, loop=loop)
        phases = operator.operator_phases()
    finally:
        loop.close()
        backend.close()
    assert result.success, "the scripted dexterous pick this test builds on failed"
    stamps = np.asarray([t for t, _ in sink.samples["command"]])
    commands = np.asarray([f["position"] for _, f in sink.samples["command"]])
    began = {}
    for phase in phases:
        began.setdefault(phase["name"], int(np.searchsorted(stamps, phase["start_t"])))
    return commands, began


def corrected(commands, stall_s=1.0):
    config = load_teleop_config()
    backend = dex_backend(config)
    switch = TakeoverSwitch("policy")
    replay = SupervisedSource(JointTargetSource(commands, "policy"), on_start=switch.reset)
    corrector = ScriptedCorrector(CorrectorConfig(stall_s=stall_s))
    loop = TeleopLoop(backend, config=config, device=corrector, sink=ListSink(),
                      endpoint=f"inproc://dex-corrected-{os.getpid()}-{len(commands)}", bind=True, sources=[replay],
                      choose=switch)
    try:
        result = run_episode(backend, corrector, max_duration_s=45.0, loop=loop)
        synergies = {side: loop.retargeter.hands.synergy(side) for side in loop.retargeter.hands.sides}
    finally:
        loop.close()
        backend.close()
    return result, corrector, loop, synergies


def test_the_corrector_finishes_a_dexterous_pick_the_policy_held_and_stopped(scripted_take):
    commands, began = scripted_take
    result, corrector, loop, _ = corrected(commands[:began["lift"] + 100])
    assert result.success
    assert corrector.took_over_at is not None and corrector.reason == "no progress for 1 s"
    assert [s.name for s in corrector.plan.segments][:3] == ["wait", "lift", "carry"], "no second grasp"
    assert [(a, b) for _, a, b in loop.arbiter.handovers] == [("policy", "operator")]


def test_the_corrector_grasps_with_the_fingers_when_the_policy_stops_short_of_the_object(scripted_take):
    commands, began = scripted_take
    result, corrector, loop, synergies = corrected(commands[:began["descend"]])
    assert result.success
    assert corrector.took_over_at is not None
    names = [s.name for s in corrector.plan.segments]
    assert "grasp" in names and names.index("grasp") < names.index("lift")
    side = next(side for side, closure in corrector.plan.segments[names.index("grasp")].closure.items() if closure > 0)
    assert synergies[side] == corrector.grasp_synergy == "tripod"  # chosen on the controller, as the plan asks
