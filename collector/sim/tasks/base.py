"""What every simulated task provides: its bodies, a seeded layout, and success read from the sim state."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Tuple

import mujoco
import numpy as np

from collector.errors import ConfigError

# Task objects collide with the world, each other and the robot (robot geoms: contype 2, conaffinity 1).
OBJECT_CONTYPE = 1
OBJECT_CONAFFINITY = 3


@dataclass
class TaskSite:
    """Where the task area is: its centre on the table top (world frame) and its half extent (x, y)."""

    origin: np.ndarray
    half_extent: np.ndarray


class Task:
    """One task scene. Subclasses add bodies to the scene spec, place them per seed, and judge success."""

    name = "task"
    instruction = ""
    #: seconds of physics after placing objects so they rest before the episode starts
    settle_s = 0.2

    def __init__(self, params: dict | None = None):
        unknown = set(params or {}) - set(self.default_params())
        if unknown:
            raise ConfigError(f"task {self.name!r}: unknown task_params {sorted(unknown)} "
                              f"(known: {sorted(self.default_params())})")
        self.params = {**self.default_params(), **(params or {})}
        self.model = None
        self.data = None
        self.site: TaskSite | None = None
        self.layout: dict = {}
        self._gripper_geoms: set = set()

    # --- to implement -----------------------------------------------------------------------------
    @classmethod
    def default_params(cls) -> dict:
        return {}

    def build(self, spec: mujoco.MjSpec, site: TaskSite) -> None:
        """Add the task's bodies to the scene spec (before it is compiled)."""
        raise NotImplementedError

    def weighted_objects(self) -> List[str]:
        """Body names the weight condition sets the mass of."""
        raise NotImplementedError

    def fixed_masses(self) -> dict:
        """Masses (kg) the weight condition leaves alone but an episode should record (e.g. the water)."""
        return {}

    def place(self, rng: np.random.Generator) -> dict:
        """Put every object at its start pose for this episode; return the layout as plain types."""
        raise NotImplementedError

    def object_poses(self) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
        raise NotImplementedError

    def grasp_targets(self) -> dict:
        raise NotImplementedError

    def metrics(self) -> dict:
        raise NotImplementedError

    def success(self) -> bool:
        raise NotImplementedError

    # --- shared machinery ---------------------------------------------------------------------------
    def bind(self, model, data, site: TaskSite, gripper_geoms) -> None:
        """Attach to the compiled scene (called after every compile)."""
        self.model, self.data, self.site = model, data, site
        self._gripper_geoms = set(int(g) for g in gripper_geoms)

    def body_pose(self, body: str) -> Tuple[np.ndarray, np.ndarray]:
        b = self.data.body(body)
        return b.xpos.copy(), b.xquat.copy()

    def set_free_pose(self, body: str, pos, quat=(1.0, 0.0, 0.0, 0.0)) -> None:
        joint_id = self.model.body_jntadr[self.model.body(body).id]
        adr = self.model.jnt_qposadr[joint_id]
        self.data.qpos[adr:adr + 3] = pos
        self.data.qpos[adr + 3:adr + 7] = quat
        dof = self.model.jnt_dofadr[joint_id]
        self.data.qvel[dof:dof + 6] = 0.0

    def set_mocap_pose(self, body: str, pos, quat=(1.0, 0.0, 0.0, 0.0)) -> None:
        mocap_id = self.model.body_mocapid[self.model.body(body).id]
        self.data.mocap_pos[mocap_id] = pos
        self.data.mocap_quat[mocap_id] = quat

    def body_speed(self, body: str) -> float:
        velocity = np.zeros(6)
        mujoco.mj_objectVelocity(self.model, self.data, mujoco.mjtObj.mjOBJ_BODY,
                                 self.model.body(body).id, velocity, 0)
        return float(np.linalg.norm(velocity[3:]))

    def touching_gripper(self, body: str) -> bool:
        """Whether any gripper geom is in contact with the body (i.e. the object is not released)."""
        body_id = self.model.body(body).id
        for contact in self.data.contact[: self.data.ncon]:
            geoms = (int(contact.geom1), int(contact.geom2))
            bodies = (self.model.geom_bodyid[geoms[0]], self.model.geom_bodyid[geoms[1]])
            if body_id in bodies and (geoms[0] in self._gripper_geoms or geoms[1] in self._gripper_geoms):
                return True
        return False


def add_box(body, name, size, pos, rgba, **extra):
    return body.add_geom(name=name, type=mujoco.mjtGeom.mjGEOM_BOX, size=list(size), pos=list(pos),
                         rgba=list(rgba), **extra)


def ring_walls(body, prefix: str, inner_radius: float, thickness: float, height: float, z0: float,
               segments: int, rgba, **extra) -> None:
    """A round wall made of `segments` boxes (a cup or pitcher side) standing on z0."""
    radius = inner_radius + thickness / 2.0
    half_width = (inner_radius + thickness) * np.tan(np.pi / segments) + 0.0005
    for k in range(segments):
        angle = 2.0 * np.pi * k / segments
        quat = [np.cos(angle / 2.0), 0.0, 0.0, np.sin(angle / 2.0)]
        body.add_geom(
            name=f"{prefix}_wall{k}", type=mujoco.mjtGeom.mjGEOM_BOX,
            size=[thickness / 2.0, half_width, height / 2.0],
            pos=[radius * np.cos(angle), radius * np.sin(angle), z0 + height / 2.0],
            quat=quat, rgba=list(rgba), **extra,
        )


def rounded(values) -> list:
    return [round(float(v), 6) for v in values]
