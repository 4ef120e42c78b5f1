"""Running a trained policy one tick at a time, for a control loop (the loop itself comes with the
command arbiter of issue 14; this is what it will call).

    runner = PolicyRunner("policy.pt", joint_names=robot.joints, cameras=robot.cameras)
    runner.reset("Put the red cube in the blue tray.", task="pick_place")
    target = runner.step({"qpos": q, "images": {"head": frame, ...}})   # joint targets, robot units

`step` is meant to be called at the checkpoint's `rate_hz` (the aligned view's rate the chunk was
learned at); a faster loop holds or interpolates between calls. Each call normalizes the joint
state, downscales the frames exactly as training did (collector.policy.images), predicts a chunk
when the schedule needs one (every call with temporal ensembling, once per chunk with the queue),
and maps the action back to joint units. Inference time per call is kept (`timing()`). The network runs
as a frozen TorchScript trace of itself (collector.policy.compiled), checked against the eager module at
start-up; `frozen=False` runs it eagerly. `assists` (collector.policy.assists) add to the network's action:
`grasp_gate_m` holds each gripper open while its hand is higher
than that above the policy's estimate of the target, until a close goes through
(collector.policy.grasp_gate); the network then also returns the estimate from the same pass.
`steer_hands` sends each hand near the target to the estimate plus the policy's predicted offset from it,
through the teleop's IK (collector.policy.hand_steering; a policy trained with hand_offsets); the offsets
then go through the schedule with the chunk, so the offset applied is the one of the action applied.
`hold_estimate_m` makes the gate and the steering act on the estimate seen while both hands were farther
than that from the target, held while one is nearer (collector.policy.held_estimate: the estimate degrades
as a hand comes near the target).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Union

import numpy as np
import torch

from collector.errors import ConfigError, DataError
from collector.policy.assists import Assists
from collector.policy.checkpoint import Checkpoint, check_compatible
from collector.policy.compiled import InferenceNetwork, freeze_for_inference
from collector.policy.end_effectors import EndEffectorKinematics
from collector.policy.ensembling import ChunkQueue, TemporalEnsembler
from collector.policy.grasp_gate import GraspGate, grasp_gate_for
from collector.policy.hand_steering import HandSteering
from collector.policy.held_estimate import HeldEstimate
from collector.policy.images import policy_frame
from collector.recorder.vocabulary import camera_stream_name

SCHEDULES = ("ensemble", "queue")


class PolicyRunner:
    def __init__(self, checkpoint: Union[str, Path, Checkpoint], *, joint_names: Optional[Sequence[str]] = None,
                 cameras: Optional[Sequence[str]] = None, schedule: str = "ensemble", m: float = 0.01,
                 replan: Optional[int] = None, device: str = "cpu", frozen: bool = True,
                 assists: Assists = Assists()):
        self.checkpoint = checkpoint if isinstance(checkpoint, Checkpoint) else Checkpoint.load(checkpoint)
        if joint_names is not None or cameras is not None:
            check_compatible(self.checkpoint,
                             self.checkpoint.joint_names if joint_names is None else joint_names,
                             self.checkpoint.spec.cameras if cameras is None else cameras)
        if schedule not in SCHEDULES:
            raise ConfigError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
        self.device = device
        self.policy = self.checkpoint.build_policy(device)
        spec = self.checkpoint.spec
        self.kinematics = None  # a policy that reads its hands' positions computes them from qpos, here
        if spec.end_effectors:
            self.kinematics = EndEffectorKinematics(spec.robot, self.checkpoint.joint_names, spec.robot_model_hash)
        self.schedule = TemporalEnsembler(spec.chunk, m) if schedule == "ensemble" else ChunkQueue(spec.chunk, replan)
        self.grasp_gate: Optional[GraspGate] = None
        self._target_m: Optional[np.ndarray] = None  # the newest estimate of the target (gate, steering), metres
        self.assists = assists
        if assists.grasp_gate_m is not None:
            self.grasp_gate = self._grasp_gate(assists.grasp_gate_m)
        self.steering: Optional[HandSteering] = self._steering() if assists.steer_hands else None
        # Assists checked that the gate or the steering reads the held estimate
        self.held = HeldEstimate(assists.hold_estimate_m) if assists.hold_estimate_m is not None else None
        method = ("predict_chunk_objects_offsets" if self.steering is not None
                  else "predict_chunk_and_objects" if self.grasp_gate is not None else "predict_chunk")
        self.network = (freeze_for_inference(self.policy, self._example_batch(), method) if frozen
                        else InferenceNetwork(getattr(self.policy, method), False, "eager by request"))
        self.inference_ms: List[float] = []
        self.step_ms: List[float] = []
        self._conditioning: Optional[torch.Tensor] = None
        self.task = self.target = None

    def _grasp_gate(self, height_m: float) -> GraspGate:
        where = self.checkpoint.path or "this policy"
        if getattr(self.policy, "object_head", None) is None or self.kinematics is None:
            raise ConfigError(f"{where}: the grasp gate needs a policy that estimates the target and reads its hands' "
                              "positions (a baseline trained with object_loss > 0 and ee_to_head)")
        return grasp_gate_for(self._robot_spec(), list(self.checkpoint.action_names), height_m)

    def _steering(self) -> HandSteering:
        if getattr(self.policy, "offset_width", 0) == 0:
            raise ConfigError(f"{self.checkpoint.path or 'this policy'}: hand steering needs a policy that predicts "
                              "its hands' offsets from the target (a baseline trained with hand_offsets > 0)")
        return HandSteering(self._robot_spec(), list(self.checkpoint.action_names))

    def _robot_spec(self):
        """The robot the policy's hands were located on (the gate and the steering act on its grippers and arms)."""
        from collector.robot.loader import load_robot

        return load_robot(self.kinematics.robot)

    def warm_up(self) -> None:
        """One inference on a blank observation, not counted in the timing: torch's first call costs
        ~0.1-0.5 s (lazy initialization, holding the GIL part of it), which a realtime loop must not
        meet on its first step (a ROS 2 node's executor thread would miss its joint states)."""
        with torch.inference_mode():
            self.network.predict(self._example_batch())

    def _example_batch(self) -> Dict[str, torch.Tensor]:
        """A batch laid out as `_batch` lays out every observation (the layout a trace is recorded for),
        with values drawn from a fixed generator so that a check of the trace sees more than zeros."""
        spec = self.checkpoint.spec
        h, w = spec.image_size
        generator = torch.Generator().manual_seed(0)
        batch = {"images": torch.rand((1, len(spec.cameras), 3, h, w), generator=generator),
                 "state": torch.randn((1, spec.state_dim), generator=generator),
                 "conditioning": torch.zeros((1, 2), dtype=torch.int64)}
        if self.kinematics is not None:
            batch["ee"] = torch.randn((1, spec.end_effectors), generator=generator) * 0.1 + 0.5
        return {k: v.to(self.device) for k, v in batch.items()}

    @property
    def rate_hz(self) -> float:
        return self.checkpoint.rate_hz

    def reset(self, instruction: str = "", *, task: Optional[str] = None, target: Optional[str] = None) -> None:
        """Start a new take: forget earlier chunks, set what the policy is told to do."""
        self.task, self.target = self.checkpoint.vocabulary.resolve(instruction, task, target)
        ids = self.checkpoint.vocabulary.encode(self.task, self.target)
        self._conditioning = torch.tensor([ids], dtype=torch.int64, device=self.device)
        self.schedule.reset()
        self._target_m = None
        if self.grasp_gate is not None:
            self.grasp_gate.reset()
        if self.steering is not None:
            self.steering.reset()
        if self.held is not None:
            self.held.reset()

    def step(self, observation: Mapping) -> np.ndarray:
        """Joint targets (action_dim,) in robot units for this tick's observation:
        {"qpos": (state_dim,), "images": {camera: (H, W, 3) uint8 RGB}}."""
        if self._conditioning is None:
            raise ConfigError("PolicyRunner.step before reset(instruction)")
        started = time.perf_counter()
        chunk = None
        if self.schedule.needs_chunk:
            batch = self._batch(observation)
            t0 = time.perf_counter()
            with torch.inference_mode():
                chunk = self._predict(batch)[0].cpu().numpy()
            self.inference_ms.append((time.perf_counter() - t0) * 1e3)
        row = self.schedule.update(chunk)
        width = self.checkpoint.spec.action_dim
        action = self.checkpoint.unnormalize_action(row[:width]).astype(np.float64)
        target = self._target_m
        if target is not None and (self.grasp_gate is not None or self.held is not None):
            hands = self.kinematics.positions(np.asarray(observation["qpos"], dtype=np.float64).reshape(1, -1))[0]
            if self.held is not None:
                # a new estimate only with a new chunk: the queue's held ticks must not count one pass many times
                target = self.held.update(target, hands) if chunk is not None else self.held.value
            if self.grasp_gate is not None and target is not None:
                action = self.grasp_gate.apply(action, hands, target)
        if self.steering is not None and target is not None:  # after the gate: it reads the gated close
            action = self.steering.apply(action, np.asarray(row[width:], np.float64), target)
        self.step_ms.append((time.perf_counter() - started) * 1e3)
        return action

    def _predict(self, batch: Dict[str, torch.Tensor]) -> torch.Tensor:
        """The network's chunk; with the grasp gate or steering, keeps the target estimate of the same pass;
        with steering, each step's hand offsets (metres) follow its action, (B, chunk, action + offsets)."""
        out = self.network.predict(batch)
        if self.grasp_gate is None and self.steering is None:
            return out
        self._target_m = self.policy.target_in_metres(out[1])[0].cpu().numpy().astype(np.float64)
        return out[0] if self.steering is None else torch.cat([out[0], out[2]], dim=-1)

    def predict_chunk(self, observation: Mapping) -> np.ndarray:
        """The raw chunk (chunk, action_dim) in robot units for one observation, without the schedule."""
        with torch.inference_mode():
            chunk = self._predict(self._batch(observation))[0].cpu().numpy()
        return self.checkpoint.unnormalize_action(chunk[:, :self.checkpoint.spec.action_dim]).astype(np.float64)

    def estimate_objects(self, observation: Mapping) -> np.ndarray:
        """A baseline with an object head: where it sees the named target and every object, normalized as
        its training targets (collector.policy.object_targets), for diagnosing what the policy perceives."""
        if getattr(self.policy, "object_head", None) is None:
            raise ConfigError(f"{self.checkpoint.path or 'this policy'}: no object head (a baseline trained with "
                              "object_loss > 0 has one)")
        with torch.inference_mode():
            return self.policy.predict_objects(self._batch(observation))[0].cpu().numpy().astype(np.float64)

    def _batch(self, observation: Mapping) -> Dict[str, torch.Tensor]:
        spec = self.checkpoint.spec
        qpos = np.asarray(observation["qpos"], dtype=np.float32).reshape(-1)
        if qpos.shape != (spec.state_dim,):
            raise DataError(f"observation qpos has {qpos.size} values; the policy expects {spec.state_dim} "
                            f"({', '.join(self.checkpoint.joint_names)})")
        images = observation.get("images") or {}
        frames = []
        for camera in spec.cameras:
            frame = images.get(camera, images.get(camera_stream_name(camera)))
            if frame is None:
                raise DataError(f"observation has no frame from camera {camera!r} (has: {', '.join(images) or 'none'})")
            frames.append(policy_frame(np.asarray(frame), spec.image_size))
        h, w = spec.image_size
        stacked = np.stack(frames)[None] if frames else np.zeros((1, 0, 3, h, w), np.float32)
        batch = {"images": torch.from_numpy(stacked).to(self.device),
                 "state": torch.from_numpy(self.checkpoint.normalize_state(qpos)[None]).to(self.device),
                 "conditioning": self._conditioning}
        if self.kinematics is not None:
            batch["ee"] = torch.from_numpy(self.kinematics.positions(qpos[None])).to(self.device)
        return batch

    def timing(self) -> Dict[str, float]:
        """Milliseconds per inference and per step call: p50, p99, max, count."""
        out: Dict[str, float] = {}
        for name, values in (("inference", self.inference_ms), ("step", self.step_ms)):
            if values:
                v = np.asarray(values)
                out.update({f"{name}_p50_ms": round(float(np.percentile(v, 50)), 3),
                            f"{name}_p99_ms": round(float(np.percentile(v, 99)), 3),
                            f"{name}_max_ms": round(float(v.max()), 3), f"{name}_calls": len(v)})
        return out
