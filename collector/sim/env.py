"""SimEnv: one robot + one task scene in MuJoCo, with lighting/weight/theme conditions and cameras.

    env = SimEnv(robot="humanoid", task="pick_place", theme="kitchen", lighting="bright", weight="medium")
    conditions = env.reset(seed=3)              # plain dict, recorded with the episode
    env.set_command(env.robot.home_vector())    # joint targets in robot.command_joints order
    env.step()                                  # one control period
    image = env.render("head")                  # (H, W, 3) uint8 at the camera's configured size

Lighting and weight changes only rewrite model arrays; a theme change rebuilds the model, so read
env.model / env.data again after reset(theme=...).
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional

import mujoco
import numpy as np

from collector.errors import ConfigError, DataError
from collector.robot import RobotSpec, load_robot
from collector.sim.conditions import lighting_presets, sample_lighting, sample_weight, themes, weight_presets
from collector.sim.lighting import apply_lighting, illuminance
from collector.sim.render import RENDER_QUALITIES, CameraRenderer
from collector.sim.scene import SCENE_CAMERA_SIZE, build_scene, compile_scene, scene_cameras
from collector.sim.tasks import Task, make_task


class SimEnv:
    def __init__(self, robot="humanoid", task: str = "pick_place", theme: str = "kitchen",
                 lighting: str = "bright", weight: str = "medium", seed: int = 0,
                 render_quality: str = "fast", control_hz: float = 100.0, task_params: Optional[dict] = None):
        self.robot: RobotSpec = robot if isinstance(robot, RobotSpec) else load_robot(robot)
        if not (isinstance(control_hz, (int, float)) and math.isfinite(control_hz) and control_hz > 0):
            raise ConfigError(f"control_hz must be a positive number, got {control_hz!r}")
        if render_quality not in RENDER_QUALITIES:
            raise ConfigError(f"render_quality must be one of {RENDER_QUALITIES}, got {render_quality!r}")
        self.task_name = task
        self.task_params = dict(task_params or {})
        self.render_quality = render_quality
        self.control_hz = float(control_hz)
        self.lighting_name = _check_name(lighting, lighting_presets(), "lighting preset", "configs/lighting.yaml")
        self.weight_name = _check_name(weight, weight_presets(), "weight preset", "configs/weights.yaml")
        self.theme_name = _check_name(theme, themes(), "theme", "configs/themes.yaml")
        self.seed = int(seed)
        self.conditions: dict = {}
        self._renderer: Optional[CameraRenderer] = None
        self._build()
        self.reset(seed=self.seed)

    # --- construction ------------------------------------------------------------------------------
    def _build(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
        self.task: Task = make_task(self.task_name, self.task_params)
        spec, self.layout = build_scene(self.robot, self.theme_name, self.task, self.render_quality)
        self.model = compile_scene(spec)
        self.data = mujoco.MjData(self.model)
        self._renderer = CameraRenderer(self.model, self.render_quality)
        self.physics_dt = float(self.model.opt.timestep)
        self.substeps = max(1, int(round(1.0 / self.control_hz / self.physics_dt)))
        self.control_dt = self.substeps * self.physics_dt

        robot = self.robot
        self._qpos_idx = robot.qpos_indices(self.model)
        self._dof_idx = robot.dof_indices(self.model)
        self._act_idx = robot.actuator_indices(self.model)
        self._ctrl_low = self.model.actuator_ctrlrange[self._act_idx, 0].copy()
        self._ctrl_high = self.model.actuator_ctrlrange[self._act_idx, 1].copy()
        limited = self.model.actuator_ctrllimited[self._act_idx].astype(bool)
        self._ctrl_low[~limited] = -np.inf
        self._ctrl_high[~limited] = np.inf
        self._scene_cameras = list(scene_cameras(self.layout))
        self.task.bind(self.model, self.data, self.layout.task_site(), self._gripper_geoms())
        weighted = [self.model.body(name).id for name in self.task.weighted_objects()]
        self._nominal_mass = {b: float(self.model.body_mass[b]) for b in weighted}
        self._nominal_inertia = {b: self.model.body_inertia[b].copy() for b in weighted}

    def _gripper_geoms(self) -> List[int]:
        """Geoms of the finger bodies and the hand body carrying them (contact = object not released)."""
        bodies = set()
        for joint in self.robot.grasping_joints():
            body = int(self.model.jnt_bodyid[self.model.joint(joint).id])
            bodies.update({body, int(self.model.body_parentid[body])})
        return [g for g in range(self.model.ngeom) if int(self.model.geom_bodyid[g]) in bodies]

    # --- episodes ----------------------------------------------------------------------------------
    def reset(self, seed: Optional[int] = None, lighting: Optional[str] = None,
              weight: Optional[str] = None, theme: Optional[str] = None) -> dict:
        """Start an episode: home pose, conditions applied, objects placed and settled, time 0.

        seed=None takes the previous seed + 1, so a session of resets is reproducible from its first seed.
        Returns (and stores in env.conditions) everything applied, as plain JSON-able types.
        """
        # Check every name before changing anything, so a bad argument leaves the env as it was.
        if lighting is not None:
            _check_name(lighting, lighting_presets(), "lighting preset", "configs/lighting.yaml")
        if weight is not None:
            _check_name(weight, weight_presets(), "weight preset", "configs/weights.yaml")
        if theme is not None:
            _check_name(theme, themes(), "theme", "configs/themes.yaml")
        self.lighting_name = lighting or self.lighting_name
        self.weight_name = weight or self.weight_name
        if seed is not None:
            self.seed = int(seed)
        elif self.conditions:
            self.seed += 1
        if theme is not None and theme != self.theme_name:
            self.theme_name = theme
            self._build()

        model, data = self.model, self.data
        mujoco.mj_resetData(model, data)

        weight_condition = sample_weight(self.weight_name, self.task.weighted_objects(), self.seed)
        for name, mass in weight_condition["masses_kg"].items():
            body = model.body(name).id
            model.body_mass[body] = mass
            model.body_inertia[body] = self._nominal_inertia[body] * (mass / self._nominal_mass[body])
        mujoco.mj_setConst(model, data)  # recomputes mass-dependent constants; it also resets qpos to qpos0

        home = self.robot.home_vector()
        data.qpos[self._qpos_idx] = home
        data.ctrl[self._act_idx] = np.clip(home, self._ctrl_low, self._ctrl_high)
        self._command = data.ctrl[self._act_idx].copy()

        lighting_condition = sample_lighting(self.lighting_name, self.seed)
        apply_lighting(model, lighting_condition, self.layout.task_origin)

        object_layout = self.task.place(np.random.default_rng([self.seed, 3]))
        mujoco.mj_forward(model, data)
        for _ in range(int(round(self.task.settle_s / self.physics_dt))):
            mujoco.mj_step(model, data)
        data.time = 0.0
        mujoco.mj_forward(model, data)
        self._next_frame = {name: 0.0 for name in self.robot.cameras}

        weight_condition["masses_kg"].update(self.task.fixed_masses())
        theme_info = themes()[self.theme_name]
        self.conditions = _plain({
            "task": self.task.name,
            "instruction": self.task.instruction,
            "task_params": _plain(self.task.params),
            "theme": self.theme_name,
            "theme_description": theme_info["description"],
            "lighting": lighting_condition,
            "illuminance_lux": round(self.illuminance(), 3),
            "weights": weight_condition,  # the episode schema's key (DESIGN.md)
            "seed": self.seed,
            "object_layout": object_layout,
            "robot": self.robot.name,
            "robot_model_hash": self.robot.model_hash,
            "render_quality": self.render_quality,
            "physics": {"timestep": self.physics_dt, "control_dt": self.control_dt,
                        "integrator": self.robot.physics.get("integrator", "implicitfast")},
        })
        return self.conditions

    # --- control -----------------------------------------------------------------------------------
    @property
    def time(self) -> float:
        return float(self.data.time)

    def set_command(self, q) -> np.ndarray:
        """Joint targets in robot.command_joints order; clipped to the actuators' ranges. Returns what was set."""
        q = np.asarray(q, dtype=float)
        if q.shape != (len(self.robot.command_joints),):
            raise DataError(f"command has shape {q.shape}, expected ({len(self.robot.command_joints)},) "
                            f"for joints {self.robot.command_joints}")
        bad = ~np.isfinite(q)
        if bad.any():
            names = [j for j, b in zip(self.robot.command_joints, bad) if b]
            raise DataError(f"command is not finite for joint(s) {names}")
        q = np.clip(q, self._ctrl_low, self._ctrl_high)
        self.data.ctrl[self._act_idx] = q
        self._command = q
        return q.copy()

    def command(self) -> np.ndarray:
        """The joint targets currently applied (after clipping)."""
        return self._command.copy()

    def step(self, n: int = 1) -> None:
        """Advance n control periods (each control_dt / physics_dt physics steps)."""
        for _ in range(int(n) * self.substeps):
            mujoco.mj_step(self.model, self.data)

    def pose_robot(self, q) -> None:
        """Put the robot's joints at q (joint_positions order) without simulating: kinematics only, so
        nothing else moves and time stands still (a still picture of a pose, e.g. for scene views)."""
        q = np.asarray(q, dtype=float)
        if q.shape != (len(self._qpos_idx),) or not np.isfinite(q).all():
            raise DataError(f"robot pose must be {len(self._qpos_idx)} finite joint positions, got shape {q.shape}")
        self.data.qpos[self._qpos_idx] = q
        mujoco.mj_forward(self.model, self.data)

    def joint_positions(self) -> np.ndarray:
        return self.data.qpos[self._qpos_idx].copy()

    def joint_velocities(self) -> np.ndarray:
        return self.data.qvel[self._dof_idx].copy()

    def joint_efforts(self) -> np.ndarray:
        """Actuator torque/force at each joint (N m or N), as a joint_states effort field reports it."""
        return self.data.qfrc_actuator[self._dof_idx].copy()

    def ee_pose(self, side: str):
        """(position, quaternion wxyz) of an end-effector site in the world frame."""
        site = self.data.site(self.robot.end_effectors[side])
        quat = np.zeros(4)
        mujoco.mju_mat2Quat(quat, site.xmat)
        return site.xpos.copy(), quat

    # --- cameras and light -------------------------------------------------------------------------
    def camera_names(self) -> List[str]:
        return list(self.robot.cameras) + self._scene_cameras

    def render(self, camera_name: str, width: Optional[int] = None, height: Optional[int] = None) -> np.ndarray:
        """(H, W, 3) uint8 from a robot camera (its configured size) or a scene camera (640x480)."""
        if camera_name in self.robot.cameras:
            camera = self.robot.cameras[camera_name]
            mjcf_name, size = camera.mjcf_camera, (camera.width, camera.height)
        elif camera_name in self._scene_cameras or mujoco.mj_name2id(
                self.model, mujoco.mjtObj.mjOBJ_CAMERA, camera_name) >= 0:
            mjcf_name, size = camera_name, SCENE_CAMERA_SIZE
        else:
            raise ConfigError(f"unknown camera {camera_name!r} (cameras: {self.camera_names()})")
        return self._renderer.render(self.data, mjcf_name, width or size[0], height or size[1])

    def due_cameras(self) -> List[str]:
        """Robot cameras whose next frame is due at the current sim time (each at its own fps)."""
        due = []
        for name, camera in self.robot.cameras.items():
            if self.time + 1e-9 >= self._next_frame[name]:
                due.append(name)
                # Catch up without a burst if the caller fell behind by more than a period.
                self._next_frame[name] = max(self._next_frame[name] + camera.period_s, self.time)
        return due

    def render_due(self) -> Dict[str, np.ndarray]:
        return {name: self.render(name) for name in self.due_cameras()}

    def illuminance(self) -> float:
        """Lux-like light level on the table at the task area centre, from the current lights."""
        return illuminance(self.model, self.layout.task_origin)

    # --- lifetime ----------------------------------------------------------------------------------
    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _check_name(name, known: dict, what: str, where: str) -> str:
    if name not in known:
        raise ConfigError(f"unknown {what} {name!r} ({where} has {sorted(known)})")
    return name


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
