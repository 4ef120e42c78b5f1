"""Who commands the robot: command sources and the arbiter that picks one per tick.

A command source proposes desired joint positions for a tick: the operator through retargeting
and IK (operator_source.py), a stream of joint targets (JointTargetSource below: tests, replayed
actions, and a learned policy's actions next). The arbiter shows every source the tick, picks the
one in control, and the loop passes that source's proposal through the same safety gate whatever
it is. The controlling source is recorded every tick (the `control` stream, docs/recorder.md).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from collector.backends.base import JointSample
from collector.errors import ConfigError

if TYPE_CHECKING:
    from collector.teleop.messages import OperatorInput


@dataclass
class TickContext:
    """What every source sees on a tick."""

    now: float  # session time
    state: JointSample  # the measured joint state
    command: np.ndarray  # the gate's last safe command: where the robot is being held
    new_input: bool = False  # an operator message was accepted this tick
    operator_input: Optional["OperatorInput"] = None  # the newest accepted operator message
    operator_input_t: Optional[float] = None  # its arrival on the session clock (how fresh it is)
    # the newest frame captured of each camera, {camera: (t, RGB image)}: what the recorder records,
    # up to the previous tick (a policy's view of the scene)
    frames: Mapping[str, Tuple[float, np.ndarray]] = field(default_factory=dict)
    realtime: bool = False  # ticks are paced on the wall clock (else lockstep: time stops between ticks)


@dataclass
class Proposal:
    """A source's wish for this tick, before the safety gate."""

    q: Optional[np.ndarray]  # desired joint positions (command_joints order); None: nothing to command
    enable: bool  # the source asks to move (the operator's deadman); False: the gate holds
    fresh_at: Optional[float]  # session time of the newest input behind q; the gate holds/stops when stale
    ik_targets: Optional[dict] = None  # side -> (pos, quat) IK was asked for (the operator), recorded as ik_target


class CommandSource(ABC):
    """One way to command the robot. `id` names it in the recording."""

    id: str

    def start(self) -> None:
        """A new episode begins."""

    def observe(self, tick: TickContext) -> None:
        """Every tick, in control or not (a source can keep its state current for a takeover)."""

    def take_control(self, tick: TickContext) -> None:
        """Control was just handed to this source (and at an episode's first tick): start from where
        the robot is held (`tick.command`), so the handover is bumpless."""

    @abstractmethod
    def propose(self, tick: TickContext) -> Proposal:
        """This tick's command; called only while the source is in control."""

    def gate_result(self, outcome) -> None:
        """What the safety gate made of this source's proposal (collector.teleop.safety.GateOutput)."""


Chooser = Callable[[TickContext], Optional[str]]


class CommandArbiter:
    """Picks the source in control each tick: `choose(tick)` returns a source id (None: keep the
    current one); without a chooser the source last `select`ed (at first the first one) commands."""

    def __init__(self, sources: Sequence[CommandSource], choose: Optional[Chooser] = None):
        if not sources:
            raise ConfigError("command arbiter: needs at least one command source")
        ids = [s.id for s in sources]
        if len(set(ids)) != len(ids):
            raise ConfigError(f"command arbiter: source ids must be unique, got {ids}")
        self.sources: Dict[str, CommandSource] = {s.id: s for s in sources}
        # The recorded code of each source: its position in the list (the `control` stream's attrs).
        self.codes: Dict[str, int] = {s.id: i for i, s in enumerate(sources)}
        self.choose = choose
        self.active: CommandSource = sources[0]
        self._in_control: Optional[CommandSource] = None  # the source that commanded the last tick
        self.handovers: list = []  # (session time, from id, to id) of this episode

    def select(self, source_id: str) -> None:
        """Hand control to a source from the next decision on."""
        source = self.sources.get(source_id)
        if source is None:
            raise ConfigError(f"command arbiter: no source {source_id!r} (have {sorted(self.sources)})")
        self.active = source

    def start(self) -> None:
        self._in_control = None
        self.handovers = []
        for source in self.sources.values():
            source.start()

    def decide(self, tick: TickContext) -> CommandSource:
        """Show every source the tick and return the one in control."""
        for source in self.sources.values():
            source.observe(tick)
        if self.choose is not None:
            chosen = self.choose(tick)
            if chosen is not None:
                self.select(chosen)
        if self.active is not self._in_control:
            if self._in_control is not None:
                self.handovers.append((tick.now, self._in_control.id, self.active.id))
            self._in_control = self.active
            self.active.take_control(tick)
        return self.active

    @property
    def active_code(self) -> int:
        return self.codes[self.active.id]


class JointTargetSource(CommandSource):
    """Emits joint targets directly: rows of an array, one per tick in control (then nothing, so the
    gate holds), or a callable(tick) -> joint positions or None."""

    def __init__(self, targets: Union[np.ndarray, Callable[[TickContext], Optional[np.ndarray]]],
                 source_id: str = "joint_targets"):
        self.id = source_id
        if callable(targets):
            self._fn = targets
            self._rows = None
        else:
            rows = np.asarray(targets, dtype=np.float64)
            if rows.ndim != 2:
                raise ConfigError(f"joint target source {source_id!r}: expected a 2-D array (ticks x joints), "
                                  f"got shape {rows.shape}")
            self._fn = None
            self._rows = rows
        self._next = 0

    def start(self) -> None:
        self._next = 0

    def _target(self, tick: TickContext) -> Optional[np.ndarray]:
        if self._fn is not None:
            return self._fn(tick)
        if self._next >= len(self._rows):
            return None
        self._next += 1
        return self._rows[self._next - 1]

    def propose(self, tick: TickContext) -> Proposal:
        q = self._target(tick)
        if q is None:
            return Proposal(None, False, None)
        return Proposal(np.array(q, dtype=np.float64), True, tick.now)
