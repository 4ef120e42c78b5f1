"""Policy in the loop with an operator who can take over: one button toggles who commands.

    takeover = PolicyTakeover(policy_source(checkpoint, backend))
    loop = TeleopLoop(backend, device=..., sources=takeover.sources, choose=takeover.choose)

The policy drives from the start of each take. A press of the takeover button (below, per input)
hands control to the operator, the next press hands it back; the whole attempt stays one episode
and the recording never pauses. Both directions are bumpless: the operator's hands re-anchor to
where the robot is held (OperatorSource.take_control), the policy's chunk schedule restarts from
the current observation (PolicySource.take_control), and the safety gate limits every step.

The deadman stays the operator's while the policy drives (supervised autonomy): the policy moves
only while the operator's deadman is held and their input is fresh; let go, or lose the link, and
the gate holds or stops exactly as it does for the operator's own commands.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Tuple

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


def policy_takeover(checkpoint, backend, *, device: str = "cpu", schedule: str = "ensemble") -> PolicyTakeover:
    """A checkpoint driving `backend` under the takeover switch; the policy is told each take's task and
    object from the backend's conditions when the take starts (`tell()` checks them before recording)."""
    from collector.policy.source import policy_source

    return PolicyTakeover(policy_source(checkpoint, backend, device=device, schedule=schedule))


def handover_events(arbiter) -> List[dict]:
    """The take's handovers as episode metadata: [{"t": session time, "from": id, "to": id}, ...]."""
    return [{"t": round(float(t), 6), "from": a, "to": b} for t, a, b in arbiter.handovers]
