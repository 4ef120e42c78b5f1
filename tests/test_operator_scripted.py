"""The scripted operator: seeded, human-like, and speaking the same messages as a VR headset."""
import numpy as np
import pytest

from collector.errors import DeviceError
from collector.sim import SimEnv
from collector.backends.sim import SimBackend
from collector.teleop.config import load_teleop_config
from collector.teleop.devices.base import DeviceContext
from collector.teleop.devices.scripted import ScriptedOperator
from collector.teleop.loop import TeleopLoop
from collector.teleop.messages import decode, encode

CFG = load_teleop_config()
DT = 0.01


@pytest.fixture(scope="module")
def pick_loop():
    env = SimEnv(robot="humanoid", task="pick_place", seed=4)
    backend = SimBackend(env, render=False)
    loop = TeleopLoop(backend, device=ScriptedOperator(CFG.devices.scripted))
    yield backend, loop
    loop.close()
    env.close()


def play(backend, loop, seed, hand_tracking=False, stride=1):
    """Run the operator's plan open loop (no physics needed) and collect its messages."""
    op = ScriptedOperator(CFG.devices.scripted, seed=seed, hand_tracking=hand_tracking)
    backend.reset(seed=4)
    op.start(DeviceContext(backend, loop.retargeter, loop.kin, DT))
    msgs, phases = [], []
    t = 0.0
    while not op.done:
        msgs.append(op.poll(t))
        phases.append(op.phase)
        t += DT * stride
    return op, msgs, phases


def test_same_seed_same_operator_other_seed_other_timing(pick_loop):
    backend, loop = pick_loop
    _, a, _ = play(backend, loop, seed=1, stride=5)
    _, b, _ = play(backend, loop, seed=1, stride=5)
    _, c, _ = play(backend, loop, seed=2, stride=5)
    assert len(a) == len(b) and all(encode(x) == encode(y) for x, y in zip(a, b))
    assert len(a) != len(c) or any(encode(x) != encode(y) for x, y in zip(a, c))


def test_plan_goes_through_the_pick_and_place_phases_in_order(pick_loop):
    backend, loop = pick_loop
    op, msgs, phases = play(backend, loop, seed=3)
    order = [p for i, p in enumerate(phases) if i == 0 or phases[i - 1] != p]
    expected = ["approach", "descend", "grasp", "lift", "carry", "lower", "release", "retreat", "return"]
    positions = [order.index(p) for p in expected]
    assert positions == sorted(positions), order
    # Messages are what a headset sends: enable pressed after a moment, seq counting up, valid on the wire.
    assert not msgs[0].enable and msgs[-1].enable
    assert [m.seq for m in msgs] == list(range(len(msgs)))
    assert decode(encode(msgs[len(msgs) // 2])).right_controller is not None
    # The gripper closes during grasp and opens at release, through the controller trigger.
    trigger = np.array([max(m.left_controller.trigger, m.right_controller.trigger) for m in msgs])
    phase = np.array(phases)
    assert trigger[phase == "lift"].min() == pytest.approx(1.0) and trigger[phase == "retreat"].max() == 0.0


def test_motion_is_human_like(pick_loop):
    backend, loop = pick_loop
    _, msgs, phases = play(backend, loop, seed=5)
    reaching = 0
    for side in ("left", "right"):
        p = np.array([getattr(m, f"{side}_wrist").position for m in msgs])
        speed = np.linalg.norm(np.diff(p, axis=0), axis=1) / DT
        if speed.max() < 0.1:
            continue  # the idle hand only trembles
        reaching += 1
        # Reaching peaks around the configured 0.35 m/s; minimum-jerk starts and ends at rest.
        assert 0.2 < speed.max() < 0.8
        accel = np.abs(np.diff(speed)) / DT
        assert accel.max() < 15.0  # no teleporting (tremor alone stays well below this)
    assert reaching == 1  # pick-and-place is one-handed
    # Tremor: while "resting" at the end the hands still move, by about a millimetre, not more.
    rest = np.array([m.left_wrist.position for m, ph in zip(msgs, phases) if ph == "rest"])
    wobble = np.ptp(rest, axis=0)
    assert np.all(wobble > 1e-5) and np.all(wobble < 0.006)


def test_hand_tracking_mode_encodes_closure_as_pinch(pick_loop):
    backend, loop = pick_loop
    _, msgs, phases = play(backend, loop, seed=6, hand_tracking=True, stride=2)
    lift = next(m for m, ph in zip(msgs, phases) if ph == "lift")
    side = "left" if loop.retargeter.gripper_closure(lift, "left") > 0.5 else "right"
    assert lift.hand(side) is not None and lift.controller(side) is None
    assert loop.retargeter.gripper_closure(lift, side) == pytest.approx(1.0)
    first = msgs[0]
    assert loop.retargeter.gripper_closure(first, side) == pytest.approx(0.0)


def test_needs_a_simulated_task():
    op = ScriptedOperator(CFG.devices.scripted)

    class NoTask:
        pass

    with pytest.raises(DeviceError, match="needs a simulated task"):
        op.start(DeviceContext(NoTask(), None, None, DT))
    with pytest.raises(DeviceError, match="before start"):
        op.poll(0.0)
