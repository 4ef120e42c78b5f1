"""Finger catch-up after a takeover (collector/teleop/takeover.py FingerPickup), over the real loop on the
dexterous humanoid in MuJoCo: a "policy" holds each hand at a grasp, the operator (a gamepad-like script
with analogue triggers) takes over with its takeover button, and the fingers wait for the operator's
triggers to reach them: the right hand from the open side, the left from the closed side."""
from __future__ import annotations

import numpy as np
import pytest

from collector.backends.sim import SimBackend
from collector.sim import SimEnv
from collector.teleop.arbiter import JointTargetSource
from collector.teleop.config import load_teleop_config
from collector.teleop.devices.base import NEUTRAL_HEAD, NEUTRAL_WRIST, InputDevice
from collector.teleop.hand_synergies import HandSynergies
from collector.teleop.loop import TeleopLoop
from collector.teleop.messages import ControllerState, OperatorInput, Pose
from collector.teleop.takeover import FINGER_PICKUP_TOLERANCE, FingerPickup, SupervisedSource, TakeoverSwitch

TICK = 0.01
TAKEOVER_AT, RAMP_FROM, RAMP_TO, HAND_BACK_AT, END = 0.5, 0.8, 1.8, 2.2, 2.5
POLICY_GRASP = {"right": 0.6, "left": 0.4}  # power synergy amounts the policy holds each hand at


def trigger(side: str, t: float) -> float:
    """The operator's triggers: right released (0) then squeezed to 1, left squeezed (1) then released."""
    share = float(np.clip((t - RAMP_FROM) / (RAMP_TO - RAMP_FROM), 0.0, 1.0))
    return share if side == "right" else 1.0 - share


class GamepadScript(InputDevice):
    """Neutral wrists, deadman held, triggers as above, the takeover button (Y) down for one message at
    each of `presses` (seconds into the take)."""

    name = "gamepad"

    def __init__(self, presses):
        self.presses = list(presses)
        self.seq = 0

    def start(self, context) -> None:
        self.t0 = context.backend.now()

    def poll(self, now):
        t = now - self.t0
        press = any(abs(t - p) < TICK / 2 for p in self.presses)
        controllers = {f"{side}_controller": ControllerState(trigger=trigger(side, t),
                                                             buttons={"y": press and side == "right"})
                       for side in ("left", "right")}
        msg = OperatorInput(stamp=now, seq=self.seq, source=self.name, head=Pose(NEUTRAL_HEAD), enable=True,
                            **{f"{s}_wrist": Pose(NEUTRAL_WRIST[s]) for s in ("left", "right")}, **controllers)
        self.seq += 1
        return msg


@pytest.fixture(scope="module")
def take():
    """One take: policy, takeover at 0.5 s, the operator's triggers sweep 0.8-1.8 s, hand back at 2.2 s."""
    config = load_teleop_config()
    env = SimEnv(robot="humanoid_dex", task="pick_place", control_hz=config.control.rate_hz, seed=0)
    synergies = HandSynergies(env.robot)
    backend = SimBackend(env, render=False)
    backend.reset(seed=0)
    grasp = {}

    def policy(tick):
        if not grasp:
            grasp["q"] = tick.command.copy()
            for side, amount in POLICY_GRASP.items():
                grasp["q"][loop.retargeter.hands.indices[side]] = synergies.targets(side, "power", amount)
        return grasp["q"]

    switch = TakeoverSwitch("policy")
    source = SupervisedSource(JointTargetSource(policy, "policy"), on_start=switch.reset)
    loop = TeleopLoop(backend, config=config, device=GamepadScript([TAKEOVER_AT, HAND_BACK_AT]),
                      sources=[source], choose=switch)
    times, commands, in_control, measured = [], [], [], []
    try:
        loop.start(seed=0)
        t0 = backend.now()
        while backend.now() - t0 < END:
            loop.tick()
            times.append(backend.now() - t0)
            commands.append(loop.gate.command.copy())
            in_control.append(loop.arbiter.active.id)
            measured.append(loop.backend.read_state().position.copy())
    finally:
        loop.close()
    limit = loop.limits.velocity * loop.control_dt
    return dict(loop=loop, synergies=synergies, times=np.asarray(times), commands=np.asarray(commands),
                in_control=in_control, limit=limit, grasp=grasp["q"], measured=np.asarray(measured))


def fingers(take, side, rows=slice(None)):
    return take["commands"][rows][..., take["loop"].retargeter.hands.indices[side]]


def test_the_takeover_happens_and_the_fingers_do_not_move_at_it(take):
    switched = take["in_control"].index("operator")
    assert take["times"][switched] == pytest.approx(TAKEOVER_AT, abs=2 * TICK)
    assert take["in_control"][-1] == "policy", "the second press handed back"
    until_ramp = (take["times"] >= take["times"][switched] - 0.1) & (take["times"] < RAMP_FROM)
    for side, amount in POLICY_GRASP.items():
        held = take["synergies"].targets(side, "power", amount)
        np.testing.assert_allclose(fingers(take, side, switched - 1), held, atol=1e-6)  # the policy's grasp reached
        drift = np.abs(fingers(take, side, until_ramp) - held).max()
        # Without the pick-up the right hand opens towards the released trigger (and the left closes) here.
        assert drift < 1e-9, f"{side} fingers moved {drift:.3f} rad after the takeover, the operator's trigger did not reach them"


@pytest.mark.parametrize("side", ["right", "left"])
def test_each_finger_follows_the_operator_once_its_command_meets_it(take, side):
    """Right: trigger from 0 up through the policy's 0.6 (open side); left: from 1 down through 0.4."""
    synergies, times = take["synergies"], take["times"]
    held = synergies.targets(side, "power", POLICY_GRASP[side])
    span = take["loop"].limits.upper - take["loop"].limits.lower
    tolerance = FINGER_PICKUP_TOLERANCE * span[take["loop"].retargeter.hands.indices[side]]
    operator = (times >= TAKEOVER_AT + 0.05) & (times < HAND_BACK_AT - 0.05)
    q, t = fingers(take, side, operator), times[operator]
    wanted = np.array([synergies.targets(side, "power", trigger(side, x - TICK)) for x in t])  # the message acted on
    per_tick = np.abs(np.diff(wanted, axis=0)).max(axis=0)
    for j in range(len(held)):
        left = np.flatnonzero(np.abs(q[:, j] - held[j]) > 1e-9)
        assert len(left), f"{side} finger joint {j} never caught up over the trigger's sweep"
        k = left[0]
        assert abs(wanted[k, j] - held[j]) <= tolerance[j] + per_tick[j] + 1e-9, \
            f"{side} finger joint {j} left its hold at t={t[k]:.2f}, {abs(wanted[k, j] - held[j]):.3f} rad from the operator's"
        # From its pick-up on the joint is the operator's (the gate closes the last <= tolerance in a tick or two).
        assert np.all(np.abs(q[k:, j] - wanted[k:, j]) <= tolerance[j] + 1e-9)
        np.testing.assert_allclose(q[k + 5:, j], wanted[k + 5:, j], atol=1e-6)
    end = synergies.targets(side, "power", trigger(side, HAND_BACK_AT))
    before_hand_back = np.argmax(times > HAND_BACK_AT - 0.05)
    np.testing.assert_allclose(fingers(take, side, before_hand_back), end, atol=1e-6)
    # The simulated fingers followed: flexions within 0.15 rad of the operator's command, far from the hold.
    measured = take["measured"][before_hand_back, take["loop"].retargeter.hands.indices[side]]
    assert np.abs(measured - end)[1:].max() < 0.15 and np.abs(measured - held)[1:].max() > 0.2


def test_no_finger_step_exceeds_the_gates_per_tick_limit_at_either_handover(take):
    indices = np.concatenate([take["loop"].retargeter.hands.indices[s] for s in ("left", "right")])
    steps = np.abs(np.diff(take["commands"][:, indices], axis=0))
    assert np.all(steps <= take["limit"][indices] + 1e-9)
    # Hand back: the policy's grasp is commanded again, reached within the gate's limit.
    for side, amount in POLICY_GRASP.items():
        np.testing.assert_allclose(fingers(take, side, -1), take["synergies"].targets(side, "power", amount), atol=1e-6)


def test_a_joint_is_picked_up_when_it_meets_or_crosses_its_hold():
    pickup = FingerPickup({"right": np.array([0, 1])}, np.zeros(2), np.ones(2), tolerance=0.05)
    pickup.hold(np.array([0.5, 0.5]))
    np.testing.assert_allclose(pickup.apply("right", np.array([0.2, 0.9])), [0.5, 0.5])
    np.testing.assert_allclose(pickup.apply("right", np.array([0.47, 0.6])), [0.47, 0.5])  # within 5 %: met
    np.testing.assert_allclose(pickup.apply("right", np.array([0.3, 0.4])), [0.3, 0.4])  # jumped across: crossed
    assert not pickup.holding("right").any()
    pickup.hold(np.array([0.5, 0.5]))
    pickup.clear()
    np.testing.assert_allclose(pickup.apply("right", np.array([0.1, 0.1])), [0.1, 0.1])
