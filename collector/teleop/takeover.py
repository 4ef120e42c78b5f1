"""Policy in the loop with an operator who can take over: one button toggles who commands.

    takeover = PolicyTakeover(policy_source(checkpoint, backend))
    loop = TeleopLoop(backend, device=..., sources=takeover.sources, choose=takeover.choose)

The policy drives from the start of each take. A press of the takeover button (below, per input)
hands control to the operator, the next press hands it back; the whole attempt stays one episode
and the recording never pauses. Both directions are bumpless: the operator's hands re-anchor to
where the robot is held (OperatorSource.take_control), the policy's chunk schedule restarts from
the current observation (PolicySource.take_control), and the safety gate limits every step. A dexterous
hand's fingers hold the policy's last command until the operator's catches up (FingerPickup, below).

The deadman stays the operator's while the policy drives (supervised autonomy): the policy moves
only while the operator's deadman is held and their input is fresh; let go, or lose the link, and
the gate holds or stops exactly as it does for the operator's own commands.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from collector.policy.assists import Assists
from collector.teleop.arbiter import CommandSource, Proposal, TickContext
from collector.teleop.messages import OperatorInput

OPERATOR = "operator"  # OperatorSource.id

# The takeover button of each input, by the message's `source` (collector/teleop/messages.py):
# (controller side, button name). VR: the left thumbstick click (it is also a clutch, so the arms
# hold while it is down and pick up from where they are on release; clutch with the right stick).
# Gamepad: Y (west face button; unused otherwise). The keyboard (key `p`) and the scripted corrector
# press the right controller's `menu`, which no other input uses.
TAKEOVER_BUTTONS: Dict[str, Tuple[str, str]] = {"vr": ("left", "thumbstick"), "gamepad": ("right", "y")}
DEFAULT_TAKEOVER_BUTTON = ("right", "menu")


def takeover_button(msg: OperatorInput) -> Tuple[str, str]:
    return TAKEOVER_BUTTONS.get(msg.source, DEFAULT_TAKEOVER_BUTTON)


def takeover_pressed(msg: Optional[OperatorInput]) -> bool:
    """Whether the message holds its input's takeover button down."""
    if msg is None:
        return False
    side, button = takeover_button(msg)
    controller = msg.controller(side)
    return controller is not None and controller.pressed(button)


class TakeoverSwitch:
    """The arbiter's chooser: each press of the takeover button (its rising edge) toggles between the
    policy and the operator. `reset()` at each take: the policy starts."""

    def __init__(self, policy_id: str, operator_id: str = OPERATOR):
        self.policy_id = policy_id
        self.operator_id = operator_id
        self.presses: List[float] = []  # session times of the presses this take
        self.reset()

    def reset(self) -> None:
        self.in_control = self.policy_id
        self._down = False
        self.presses = []

    def __call__(self, tick: TickContext) -> str:
        if tick.new_input:
            down = takeover_pressed(tick.operator_input)
            if down and not self._down:
                self.in_control = self.operator_id if self.in_control == self.policy_id else self.policy_id
                self.presses.append(tick.now)
            self._down = down
        return self.in_control


class SupervisedSource(CommandSource):
    """A source that moves only under the operator's deadman: its proposal is enabled while the
    newest operator message holds enable, and counts as fresh only while that message is."""

    def __init__(self, inner: CommandSource, on_start=None):
        self.inner = inner
        self.id = inner.id
        self._on_start = on_start

    def start(self) -> None:
        if self._on_start is not None:
            self._on_start()
        self.inner.start()

    def observe(self, tick: TickContext) -> None:
        self.inner.observe(tick)

    def take_control(self, tick: TickContext) -> None:
        self.inner.take_control(tick)

    def propose(self, tick: TickContext) -> Proposal:
        proposal = self.inner.propose(tick)
        msg = tick.operator_input
        deadman = msg is not None and bool(msg.enable)
        fresh = [t for t in (proposal.fresh_at, tick.operator_input_t) if t is not None]
        fresh_at = min(fresh) if len(fresh) == 2 else None  # the older of the two decides staleness
        return Proposal(proposal.q, bool(proposal.enable and deadman), fresh_at, proposal.ik_targets)

    def gate_result(self, outcome) -> None:
        self.inner.gate_result(outcome)

    def __getattr__(self, name):
        # timing(), close(), runner...: the wrapped source's
        return getattr(self.inner, name)


class PolicyTakeover:
    """The policy source under the operator's deadman plus the takeover switch, ready for the loop."""

    def __init__(self, policy: CommandSource):
        self.switch = TakeoverSwitch(policy.id)
        self.policy = SupervisedSource(policy, on_start=self.switch.reset)

    @property
    def sources(self) -> List[CommandSource]:
        return [self.policy]

    def tell(self, conditions: Optional[Callable[[], dict]] = None) -> None:
        """What the policy is told at each take's start: conditions() (task, instruction, object layout;
        by default the backend's). Checked now: a task or object it never learned is a ConfigError."""
        if conditions is not None:
            self.policy.inner.set_conditions(conditions)
        self.policy.reset_instruction()

    def choose(self, tick: TickContext) -> str:
        return self.switch(tick)

    def close(self) -> None:
        self.policy.close()


def policy_takeover(checkpoint, backend, *, device: str = "cpu", schedule: str = "ensemble",
                    assists: Assists = Assists()) -> PolicyTakeover:
    """A checkpoint driving `backend` under the takeover switch; the policy is told each take's task and
    object from the backend's conditions when the take starts (`tell()` checks them before recording)."""
    from collector.policy.source import policy_source

    return PolicyTakeover(policy_source(checkpoint, backend, device=device, schedule=schedule, assists=assists))


FINGER_PICKUP_TOLERANCE = 0.05  # share of a finger joint's range within which the operator's command picks it up


class FingerPickup:
    """After a takeover, each finger joint of a dexterous hand keeps the command it was held at until the
    operator's command for that joint meets it (within FINGER_PICKUP_TOLERANCE of the joint's range) or
    crosses it; from then on that joint follows the operator. The gripper's pick-up, joint by joint.

    Why per joint, and why hold rather than blend: a blend towards the operator's pose moves the fingers
    at the handover whatever the operator does, so a released trigger would open a hand round an object
    the policy holds. And a whole hand's six targets rarely come within a tolerance of another pose all
    at once: a trigger drives a synergy, a one-dimensional path through the six joints, which a policy's
    grasp is usually not on, so a per-hand "meet" could hold the fingers for ever. Joint by joint, each
    one is taken over where the operator's command reaches it: no joint moves at the handover, and at its
    pick-up it steps by at most the tolerance (which the safety gate spreads over its per-tick limit).
    """

    def __init__(self, indices: Dict[str, np.ndarray], lower: np.ndarray, upper: np.ndarray,
                 tolerance: float = FINGER_PICKUP_TOLERANCE):
        self.indices = {side: np.asarray(i, dtype=int) for side, i in indices.items()}
        self._tolerance = {side: tolerance * (np.asarray(upper)[i] - np.asarray(lower)[i])
                           for side, i in self.indices.items()}
        self._held: Dict[str, np.ndarray] = {}  # side -> held command per finger joint (NaN: picked up)
        self._last_sign: Dict[str, np.ndarray] = {}

    def hold(self, command: np.ndarray) -> None:
        """A takeover: every finger joint holds its value in `command` (the robot's held command)."""
        self._held = {side: np.array(command[i], dtype=float) for side, i in self.indices.items()}
        self._last_sign = {side: np.zeros(len(i)) for side, i in self.indices.items()}

    def clear(self) -> None:
        self._held = {}
        self._last_sign = {}

    def holding(self, side: str) -> np.ndarray:
        """Which of the hand's joints still hold (a bool per joint)."""
        held = self._held.get(side)
        return np.zeros(len(self.indices[side]), bool) if held is None else ~np.isnan(held)

    def apply(self, side: str, wanted: np.ndarray) -> np.ndarray:
        """The hand's finger command: the held value for each joint not yet picked up, else `wanted`."""
        held = self._held.get(side)
        if held is None:
            return wanted
        wanted = np.asarray(wanted, dtype=float)
        sign = np.sign(wanted - held)
        crossed = (self._last_sign[side] != 0) & (sign != self._last_sign[side])
        met = np.abs(wanted - held) <= self._tolerance[side]
        held[met | crossed] = np.nan
        self._last_sign[side] = sign
        if np.all(np.isnan(held)):
            del self._held[side]
            return wanted
        return np.where(np.isnan(held), wanted, held)


def handover_events(arbiter) -> List[dict]:
    """The take's handovers as episode metadata: [{"t": session time, "from": id, "to": id}, ...]."""
    return [{"t": round(float(t), 6), "from": a, "to": b} for t, a, b in arbiter.handovers]
