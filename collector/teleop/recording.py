"""The loop's last stage: what it records, declared up front and pushed to the sink as the tick passes.

The loop's own streams (vocabulary names): `joints` (measured), `command` (the safe command sent),
`input` (every operator message received), `ik_target`, `safety` (the gate), `control` (the command
source in control); then whatever the backend declares for its sensors: cameras, `illuminance`, and
in simulation `sim_state` and `pose_objects_<name>` (collector/backends/base.py, sensor_streams).

A robot with hands (`hands:` in its YAML) adds `hand_tracking` (whether the operator's newest input tracked
each hand, and the tick each was lost, by the rule the hand drive and the safety gate's HandTrackingHold use:
a controller or a skeleton, as retarget.gripper_source allows), `retarget_residual` (the fingertip retargeter's
per-fingertip error, every tick, with which hands it solved on that tick; declared when
collector/teleop/hand_retarget.py is installed), and when its backend declares them `hand_touch` and
`grasp_force` (the simulator does: collector/backends/sim.py), taken from `backend.hand_sample()` every tick.
"""
from __future__ import annotations

import importlib.util
import math
from typing import List

import numpy as np

from collector.recorder import vocabulary
from collector.recorder.streams import StreamSpec
from collector.robot.hands import FINGERS
from collector.teleop.messages import OperatorInput, flatten_for_recording, recording_field_shapes
from collector.teleop.safety import GateState

GATE_STATE_CODES = {GateState.DISARMED: 0, GateState.ACTIVE: 1, GateState.HOLD: 2, GateState.STOPPED: 3}


class RecordingTap:
    def __init__(self, backend, kin, cfg, arbiter, stats, sink=None):
        self.backend = backend
        self.robot = backend.robot
        self.kin = kin
        self.cfg = cfg
        self.arbiter = arbiter
        self.stats = stats
        self.sink = sink
        self._camera_names = list(backend.cameras())
        declared = {spec.name: spec for spec in backend.sensor_streams()}
        self._records_world = vocabulary.SIM_STATE in declared
        illuminance = declared.get(vocabulary.ILLUMINANCE)
        self._illuminance_period = None if illuminance is None else 1.0 / illuminance.rate_hz
        self._next_illuminance_t = -math.inf
        self._no_targets = {side: None for side in self.robot.end_effectors}  # a source without IK: arms hold
        self._hand_sides = sorted(self.robot.hands)
        # A backend that declares a hand stream produces it through hand_sample() (the simulator's does).
        self._records_hands = any(name in declared for name in (vocabulary.HAND_TOUCH, vocabulary.GRASP_FORCE))
        self._tracked = np.zeros(len(self._hand_sides), dtype=np.uint8)  # from the newest input message
        self._was_tracked = self._tracked.copy()  # as recorded on the previous tick
        self._gripper_source = cfg.retarget.gripper_source
        self._records_residual = bool(self._hand_sides) and importlib.util.find_spec(
            "collector.teleop.hand_retarget") is not None
        self._residual_seen: dict = {}  # side -> the residual array last recorded (a solve makes a new one)
        self.latest_frames: dict = {}  # camera -> (t, image): the newest frame captured (what sources see)

    def stream_specs(self) -> List[StreamSpec]:
        """Everything the loop will push, so the recorder can be set up before the episode starts."""
        joints = list(self.kin.command_joints)
        rate = self.cfg.control.rate_hz
        return [
            vocabulary.joints_spec(joints, rate),
            vocabulary.command_spec(joints, rate),
            vocabulary.input_spec(recording_field_shapes(), rate, operator_frame=self.cfg.retarget.operator_frame),
            vocabulary.ik_target_spec(list(self.robot.end_effectors), rate),
            vocabulary.safety_spec({s.value: c for s, c in GATE_STATE_CODES.items()}, rate),
            vocabulary.control_spec(self.arbiter.codes, rate),
            *([vocabulary.hand_tracking_spec(self._hand_sides, rate)] if self._hand_sides else []),
            *([vocabulary.retarget_residual_spec(self._fingers(), rate)] if self._records_residual else []),
            *self.backend.sensor_streams(),  # taken now: a theme change rebuilds the sim's world
        ]

    def start(self) -> None:
        self._next_illuminance_t = -math.inf
        self.latest_frames = {}
        self._tracked[:] = 0
        self._was_tracked[:] = 0
        self._residual_seen = {}

    def _push(self, stream: str, t: float, **fields) -> None:
        if self.sink is not None and not self.sink.push(stream, t, **fields):
            self.stats.sink_rejected += 1

    # -- the tick's data path ------------------------------------------------------------------------
    def input(self, t: float, msg: OperatorInput) -> None:
        self._push(vocabulary.INPUT, t, **flatten_for_recording(msg))
        for i, side in enumerate(self._hand_sides):
            self._tracked[i] = hand_tracked(msg, side, self._gripper_source)

    def joints(self, state) -> None:
        self._push(vocabulary.JOINTS, state.t, position=state.position, velocity=state.velocity,
                   effort=state.effort)

    def command(self, now: float, out, proposal) -> None:
        """The safe command, the IK targets behind it, the gate's verdict and who was in control."""
        self._push(vocabulary.COMMAND, now, position=out.q)
        self._push_ik_target(now, out.q, proposal.ik_targets or self._no_targets)
        self._push(vocabulary.SAFETY, now, state=np.uint8(GATE_STATE_CODES[out.state]),
                   enable=np.uint8(proposal.enable), clamped=np.uint8(out.clamped))
        self._push(vocabulary.CONTROL, now, source=np.uint8(self.arbiter.active_code))
        if self._hand_sides:
            self._push_hands(now)

    def _push_ik_target(self, now: float, q_command: np.ndarray, targets) -> None:
        if self.sink is None:
            return
        held = None
        fields = {}
        for side, target in targets.items():
            if target is None:  # no target: the arm holds where it is commanded
                held = held or self.kin.ee_poses(q_command)
                target = held[side]
            fields[side] = np.concatenate([target[0] + self.kin.base_offset, target[1]])
        fields["active"] = np.array([t is not None for t in targets.values()], dtype=np.uint8)
        self._push(vocabulary.IK_TARGET, now, **fields)

    def _fingers(self) -> dict:
        """side -> the fingers the retargeter reports a residual for (its order: FINGERS with a fingertip site)."""
        return {side: [f for f in FINGERS if f in self.robot.hands[side].fingertips] for side in self._hand_sides}

    def _fingertip_retargeter(self):
        operator = self.arbiter.sources.get("operator")
        drive = getattr(getattr(operator, "retargeter", None), "hands", None)
        return getattr(drive, "fingertip_retargeter", None)

    def _push_hands(self, now: float) -> None:
        lost = (self._was_tracked == 1) & (self._tracked == 0)
        self._push(vocabulary.HAND_TRACKING, now, tracked=self._tracked.copy(), lost=lost.astype(np.uint8))
        self._was_tracked[:] = self._tracked
        if self._records_residual:
            self._push_residual(now)
        if self._records_hands and self.sink is not None:
            sample = self.backend.hand_sample()
            if sample is not None:
                t, streams = sample
                for stream, fields in streams.items():
                    self._push(stream, t, **fields)

    def _push_residual(self, now: float) -> None:
        """The fingertip retargeter's newest residual per hand, every tick, and which hands it solved this tick
        (each solve makes a new array). Zeros before the first skeleton (a controller take records only zeros)."""
        retargeter = self._fingertip_retargeter()
        fields, solved = {}, np.zeros(len(self._hand_sides), dtype=np.uint8)
        for i, side in enumerate(self._hand_sides):
            residual = None if retargeter is None else retargeter.residual.get(side)
            if residual is None:
                fields[side] = np.zeros(len(self.robot.hands[side].fingertips))
                continue
            # A solve assigns a new array; the retargeter's initial zeros are no solve (a real fit is never exact).
            solved[i] = self._residual_seen.get(side) is not residual and bool(np.any(residual))
            self._residual_seen[side] = residual
            fields[side] = np.asarray(residual, dtype=np.float64)
        self._push(vocabulary.RETARGET_RESIDUAL, now, solved=solved, **fields)

    def sensors(self, now: float) -> None:
        """The camera frames that are due, the world's state at its rate, illuminance at its rate."""
        for name in self._camera_names:
            frame = self.backend.capture(name)
            if frame is not None:
                self.stats.frames += 1
                self.latest_frames[name] = (frame[0], frame[1])
                self._push(vocabulary.camera_stream_name(name), frame[0], image=frame[1])
        if self._records_world and self.sink is not None:
            self._push_world()
        if self._illuminance_period is not None and now >= self._next_illuminance_t:
            value = self.backend.illuminance()
            if value is not None:
                self._push(vocabulary.ILLUMINANCE, now, value=np.float64(value))
            self._next_illuminance_t = now + self._illuminance_period

    def _push_world(self) -> None:
        sample = self.backend.world_sample()
        if sample is not None:
            t, state, poses = sample
            self._push(vocabulary.SIM_STATE, t, state=state)
            for stream, pose in poses.items():
                self._push(stream, t, pose=pose)

    def finish(self) -> None:
        """Frames rendered off-thread that the last ticks did not hand out yet."""
        for name, t, image in self.backend.finish_frames():
            self.stats.frames += 1
            self._push(vocabulary.camera_stream_name(name), t, image=image)


def hand_tracked(msg: OperatorInput, side: str, gripper_source: str) -> bool:
    """Whether a message tracks a hand: a controller (trigger -> synergy) or a skeleton (retargeted), as
    gripper_source allows; the rule of collector/teleop/hand_drive.py, whose untracked hands the gate freezes."""
    return ((msg.controller(side) is not None and gripper_source in ("auto", "trigger"))
            or (msg.hand(side) is not None and gripper_source in ("auto", "pinch")))
