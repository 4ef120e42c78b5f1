"""Differential IK for both arms with mink, on the robot's own MuJoCo model (robot alone, no scene).

One frame task per end-effector site, a posture task pulling towards the home pose (keeps
elbows natural and resolves redundancy), configuration and velocity limits, and collision
avoidance between the geom groups the robot YAML lists (arms/hands vs torso/head/other arm).
Joints outside the IK groups (waist, head, fingers) are frozen with an equality constraint
at their current command, so the solver sees the true kinematic chain but never moves them.

The IK state is the last *safe* command (what the gate let through), so a held or clamped
command never lets the solver run ahead of the robot.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import mink
import qpsolvers
import mujoco
import numpy as np

from collector.errors import ConfigError
from collector.teleop.config import IKConfig
from collector.teleop.transforms import mat_to_quat

PoseTuple = Tuple[np.ndarray, np.ndarray]

# Bit used, in the IK's private copy of the model only, to let mink's collision-avoidance
# limit consider robot-robot geom pairs (robots usually disable self-contacts in the sim).
_IK_COLLISION_BIT = 1 << 5


class RobotKinematics:
    """The robot's MuJoCo model indexed by the robot YAML's command joints: FK and joint limits."""

    def __init__(self, robot, model: Optional[mujoco.MjModel] = None):
        self.robot = robot
        self.model = model if model is not None else robot.load_model()
        self.data = mujoco.MjData(self.model)
        self.command_joints: List[str] = list(robot.command_joints)
        self.joint_ids = np.array([self._joint_id(j) for j in self.command_joints], dtype=int)
        self.qpos_idx = self.model.jnt_qposadr[self.joint_ids].copy()
        self.dof_idx = self.model.jnt_dofadr[self.joint_ids].copy()
        self.ee_site_ids: Dict[str, int] = {}
        for side, site in robot.end_effectors.items():
            sid = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_SITE, site)
            if sid < 0:
                raise ConfigError(f"robot {robot.name!r}: end-effector site {site!r} ({side}) not in the model")
            self.ee_site_ids[side] = sid
        # The scene may place the robot away from the origin; the IK model is the robot alone.
        self.base_offset = np.asarray((getattr(robot, "scene", None) or {}).get("base_pos", [0.0, 0.0, 0.0]), float)
        self.q_reference = self.model.qpos0.copy()
        self.q_home = np.asarray(robot.home_vector(), dtype=np.float64)
        self.q_reference[self.qpos_idx] = self.q_home

    def _joint_id(self, name: str) -> int:
        jid = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_JOINT, name)
        if jid < 0:
            raise ConfigError(f"robot {self.robot.name!r}: command joint {name!r} not in the model")
        if int(self.model.jnt_type[jid]) not in (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE)):
            raise ConfigError(f"robot {self.robot.name!r}: command joint {name!r} must be a hinge or slide joint")
        return jid

    def index(self, joint: str) -> int:
        return self.command_joints.index(joint)

    def position_limits(self) -> Tuple[np.ndarray, np.ndarray]:
        rng = self.model.jnt_range[self.joint_ids].copy()
        limited = self.model.jnt_limited[self.joint_ids].astype(bool)
        missing = [j for j, lim in zip(self.command_joints, limited) if not lim]
        if missing:
            raise ConfigError(f"robot {self.robot.name!r}: command joints without a range in the MJCF: {missing} "
                              "(the safety gate needs finite joint limits)")
        return rng[:, 0], rng[:, 1]

    def full_q(self, q_cmd: np.ndarray) -> np.ndarray:
        q = self.q_reference.copy()
        q[self.qpos_idx] = q_cmd
        return q

    def ee_poses(self, q_cmd: np.ndarray) -> Dict[str, PoseTuple]:
        """World poses of the end-effector sites at command q_cmd."""
        self.data.qpos[:] = self.full_q(q_cmd)
        mujoco.mj_kinematics(self.model, self.data)
        return {side: (self.data.site_xpos[sid].copy(), mat_to_quat(self.data.site_xmat[sid].reshape(3, 3)))
                for side, sid in self.ee_site_ids.items()}

    def ee_positions(self, q_cmd: np.ndarray) -> Dict[str, np.ndarray]:
        self.data.qpos[:] = self.full_q(q_cmd)
        mujoco.mj_kinematics(self.model, self.data)
        return {side: self.data.site_xpos[sid].copy() for side, sid in self.ee_site_ids.items()}

    def joint_world_axis(self, joint: str, q_cmd: Optional[np.ndarray] = None) -> np.ndarray:
        self.data.qpos[:] = self.full_q(self.q_home if q_cmd is None else q_cmd)
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_comPos(self.model, self.data)
        return self.data.xaxis[self._joint_id(joint)].copy()


@dataclass
class IKResult:
    q: np.ndarray  # command-joint vector with the IK joints replaced
    solve_s: float
    position_error: Dict[str, float]  # metres, per side with a target
    ok: bool
    error: str = ""


class ArmIK:
    def __init__(self, kin: RobotKinematics, cfg: IKConfig, control_dt: float,
                 velocity_limits: Dict[str, float]):
        self.kin = kin
        self.cfg = cfg
        robot = kin.robot
        model = self._private_model(kin.model)
        self.model = model
        unknown = [g for g in cfg.groups if g not in robot.groups]
        if unknown:
            raise ConfigError(f"teleop ik.groups {unknown} not among robot {robot.name!r} groups {sorted(robot.groups)}")
        self.ik_joints = [j for g in cfg.groups for j in robot.groups[g]]
        not_commanded = [j for j in self.ik_joints if j not in kin.command_joints]
        if not_commanded:
            raise ConfigError(f"robot {robot.name!r}: IK joints {not_commanded} are not command joints")
        self.ik_cmd_idx = np.array([kin.index(j) for j in self.ik_joints], dtype=int)
        ik_dofs = {int(model.jnt_dofadr[kin.joint_ids[i]]) for i in self.ik_cmd_idx}
        frozen = [d for d in range(model.nv) if d not in ik_dofs]

        self.configuration = mink.Configuration(model, kin.q_reference.copy())
        self.frame_tasks = {
            side: mink.FrameTask(frame_name=site, frame_type="site", position_cost=cfg.position_cost,
                                 orientation_cost=cfg.orientation_cost, lm_damping=cfg.lm_damping)
            for side, site in robot.end_effectors.items()
        }
        self.posture = mink.PostureTask(model, cost=cfg.posture_cost)
        self.posture.set_target(kin.q_reference)
        self.tasks = [*self.frame_tasks.values(), self.posture]
        self.constraints = [mink.DofFreezingTask(model, dof_indices=frozen)] if frozen else []
        self.limits = [
            mink.ConfigurationLimit(model),
            mink.VelocityLimit(model, {j: velocity_limits[j] for j in self.ik_joints}),
        ]
        pairs = self._collision_pairs(robot)
        if pairs:
            self.limits.append(mink.CollisionAvoidanceLimit(
                model, geom_pairs=pairs,
                minimum_distance_from_collisions=cfg.collision_min_distance,
                collision_detection_distance=cfg.collision_detection_distance))
        self.iterations = int(cfg.iterations)
        # Split one control period over the iterations so the velocity limit bounds the whole tick.
        self.iteration_dt = min(control_dt / self.iterations, cfg.max_iteration_dt)
        self._have_target = {side: False for side in self.frame_tasks}
        self._lower = model.jnt_range[:, 0]
        self._upper = model.jnt_range[:, 1]

    @staticmethod
    def _private_model(model: mujoco.MjModel) -> mujoco.MjModel:
        # The IK needs kinematics only: equality constraints (e.g. coupled fingers) would make
        # mink assemble constraint rows on every update for nothing.
        ik_model = copy.copy(model)
        ik_model.eq_active0[:] = 0
        return ik_model

    def _collision_pairs(self, robot) -> list:
        pairs = []
        for first, second in getattr(robot, "ik_collision_pairs", []) or []:
            first, second = list(first), list(second)
            for name in first + second:
                gid = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_GEOM, name)
                if gid < 0:
                    raise ConfigError(f"robot {robot.name!r}: ik_collision_pairs geom {name!r} not in the model")
                self.model.geom_contype[gid] |= _IK_COLLISION_BIT
                self.model.geom_conaffinity[gid] |= _IK_COLLISION_BIT
            pairs.append((first, second))
        return pairs

    def reset(self) -> None:
        self._have_target = {side: False for side in self.frame_tasks}

    def set_target(self, side: str, pose: PoseTuple) -> None:
        pos, quat = pose
        self.frame_tasks[side].set_target(mink.SE3.from_rotation_and_translation(mink.SO3(np.asarray(quat)), np.asarray(pos)))
        self._have_target[side] = True

    def solve(self, q_cmd: np.ndarray, targets: Dict[str, Optional[PoseTuple]]) -> IKResult:
        """One control tick of IK from the current safe command towards the targets."""
        t0 = time.perf_counter()
        for side, pose in targets.items():
            if pose is not None and side in self.frame_tasks:
                self.set_target(side, pose)
        q_full = np.clip(self.kin.full_q(q_cmd), self._lower, self._upper)
        self.configuration.update(q_full)
        for side, has in self._have_target.items():
            if not has:  # hold that arm where it is until it gets a target
                self.frame_tasks[side].set_target_from_configuration(self.configuration)
                self._have_target[side] = True
        try:
            for _ in range(self.iterations):
                # mink.solve_ik minus its configuration-limit check: q_full is clipped into the limits
                # above, and that check alone costs ~0.08 ms a call, a tenth of the IK budget.
                problem = mink.build_ik(self.configuration, self.tasks, self.iteration_dt,
                                        damping=self.cfg.damping, limits=self.limits, constraints=self.constraints)
                solution = qpsolvers.solve_problem(problem, solver=self.cfg.solver)
                if not solution.found or solution.x is None or not np.all(np.isfinite(solution.x)):
                    raise mink.NoSolutionFound(self.cfg.solver)
                self.configuration.integrate_inplace(solution.x / self.iteration_dt, self.iteration_dt)
        except mink.MinkError as exc:
            return IKResult(np.asarray(q_cmd, float).copy(), time.perf_counter() - t0, {}, False, str(exc))
        q_out = np.asarray(q_cmd, dtype=np.float64).copy()
        q_new = self.configuration.q
        q_out[self.ik_cmd_idx] = q_new[self.kin.qpos_idx[self.ik_cmd_idx]]
        errors = {}
        site_xpos = self.configuration.data.site_xpos
        for side, pose in targets.items():
            if pose is not None and side in self.kin.ee_site_ids:
                errors[side] = float(np.linalg.norm(site_xpos[self.kin.ee_site_ids[side]] - pose[0]))
        return IKResult(q_out, time.perf_counter() - t0, errors, True)
