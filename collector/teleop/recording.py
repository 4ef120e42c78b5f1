"""The loop's last stage: what it records, declared up front and pushed to the sink as the tick passes.

The loop's own streams (vocabulary names): `joints` (measured), `command` (the safe command sent),
`input` (every operator message received), `ik_target`, `safety` (the gate), `control` (the command
source in control); then whatever the backend declares for its sensors: cameras, `illuminance`, and
in simulation `sim_state` and `pose_objects_<name>` (collector/backends/base.py, sensor_streams).
"""
from __future__ import annotations

import math
from typing import List

import numpy as np

from collector.recorder import vocabulary
from collector.recorder.streams import StreamSpec
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
            *self.backend.sensor_streams(),  # taken now: a theme change rebuilds the sim's world
        ]

    def start(self) -> None:
        self._next_illuminance_t = -math.inf
        self.latest_frames = {}

    def _push(self, stream: str, t: float, **fields) -> None:
        if self.sink is not None and not self.sink.push(stream, t, **fields):
            self.stats.sink_rejected += 1

    # -- the tick's data path ------------------------------------------------------------------------
    def input(self, t: float, msg: OperatorInput) -> None:
        self._push(vocabulary.INPUT, t, **flatten_for_recording(msg))

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

