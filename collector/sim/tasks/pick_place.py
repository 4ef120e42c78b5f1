"""Pick-and-place: a cube, a cylinder and a ball on the table; put the named one into the tray.

Success (from the sim state): the target object rests inside the tray (centre within the tray's inner
square, on its floor, nearly still) and no gripper geom touches it (it has been released).
"""
from __future__ import annotations

import mujoco
import numpy as np

from collector.errors import ConfigError
from collector.sim.tasks.base import OBJECT_CONAFFINITY, OBJECT_CONTYPE, Task, TaskSite, add_box, rounded

OBJECT_FRICTION = [1.0, 0.01, 0.0005]
# name -> shape, MuJoCo size, colour word, rgba. Sized for the 9 cm gripper span (5-5.4 cm across).
OBJECTS = {
    "cube": ("box", [0.025, 0.025, 0.025], "red", [0.85, 0.12, 0.10, 1.0]),
    "cylinder": ("cylinder", [0.025, 0.04], "green", [0.15, 0.65, 0.25, 1.0]),
    "ball": ("sphere", [0.027], "yellow", [0.95, 0.80, 0.10, 1.0]),
}
GEOM_TYPES = {"box": mujoco.mjtGeom.mjGEOM_BOX, "cylinder": mujoco.mjtGeom.mjGEOM_CYLINDER,
              "sphere": mujoco.mjtGeom.mjGEOM_SPHERE}
TRAY = "tray"


def half_height(shape: str, size) -> float:
    return size[1] if shape == "cylinder" else size[0] if shape == "sphere" else size[2]


def grasp_width(shape: str, size) -> float:
    return 2.0 * (size[0] if shape != "box" else min(size[0], size[1]))


class PickPlace(Task):
    name = "pick_place"
    instruction = "Put the named object in the blue tray."  # replaced per episode by place()
    settle_s = 0.2

    @classmethod
    def default_params(cls) -> dict:
        return {
            "tray_inner_half": 0.07,      # inner half width of the square tray (m)
            "tray_wall_height": 0.03,
            "max_rest_speed": 0.05,       # m/s: slower than this counts as resting
            "target": None,               # object to move; None = chosen by the seed
            # lateral slots (m, relative to the task centre) the objects are spread over
            "slots_y": [-0.25, -0.14, 0.14, 0.25],
        }

    def build(self, spec: mujoco.MjSpec, site: TaskSite) -> None:
        origin = site.origin
        for index, (name, (shape, size, _, rgba)) in enumerate(OBJECTS.items()):
            body = spec.worldbody.add_body(name=name, pos=list(origin + [0.0, 0.1 * index, 0.1]))
            body.add_freejoint(name=f"{name}_free")
            body.add_geom(name=f"{name}_geom", type=GEOM_TYPES[shape], size=size, rgba=rgba, mass=0.2,
                          condim=6 if shape == "sphere" else 4, friction=OBJECT_FRICTION,
                          contype=OBJECT_CONTYPE, conaffinity=OBJECT_CONAFFINITY, priority=0)
        inner = self.params["tray_inner_half"]
        wall_h = self.params["tray_wall_height"]
        thick = 0.008
        floor = 0.006
        tray = spec.worldbody.add_body(name=TRAY, pos=list(origin), mocap=True)
        rgba = [0.15, 0.35, 0.80, 1.0]
        solid = {"contype": OBJECT_CONTYPE, "conaffinity": OBJECT_CONAFFINITY}
        add_box(tray, "tray_floor", [inner + thick, inner + thick, floor / 2], [0, 0, floor / 2], rgba, **solid)
        for k, (dx, dy) in enumerate([(1, 0), (-1, 0), (0, 1), (0, -1)]):
            half = [thick / 2, inner + thick, wall_h / 2] if dx else [inner + thick, thick / 2, wall_h / 2]
            pos = [dx * (inner + thick / 2), dy * (inner + thick / 2), wall_h / 2]
            add_box(tray, f"tray_wall{k}", half, pos, rgba, **solid)
        self._tray_floor = floor

    def weighted_objects(self):
        return list(OBJECTS)

    def place(self, rng: np.random.Generator) -> dict:
        origin, half = self.site.origin, self.site.half_extent
        target = self.params["target"] or str(rng.choice(list(OBJECTS)))
        if target not in OBJECTS:
            raise ConfigError(f"pick_place task_params.target {target!r} is not one of {list(OBJECTS)}")
        self.target = target
        tray_pos = origin + [rng.uniform(-0.02, 0.03), rng.uniform(-0.03, 0.03), 0.0]
        self.set_mocap_pose(TRAY, tray_pos)
        slots = rng.permutation(len(self.params["slots_y"]))[: len(OBJECTS)]
        layout = {"tray": rounded(tray_pos), "target": target, "objects": {}}
        for slot, (name, (shape, size, _, _)) in zip(slots, OBJECTS.items()):
            x = origin[0] + rng.uniform(-half[0] + 0.02, half[0] - 0.02)
            y = origin[1] + self.params["slots_y"][slot] + rng.uniform(-0.015, 0.015)
            z = origin[2] + half_height(shape, size) + 0.001
            yaw = rng.uniform(-np.pi, np.pi) if shape == "box" else 0.0
            quat = [np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)]
            self.set_free_pose(name, [x, y, z], quat)
            layout["objects"][name] = {"pos": rounded([x, y, z]), "yaw": round(float(yaw), 6)}
        self.instruction = self.describe(target)
        return layout

    @staticmethod
    def describe(target: str) -> str:
        shape, _, colour, _ = OBJECTS[target]
        return f"Put the {colour} {target} in the blue tray."

    def object_poses(self):
        return {name: self.body_pose(name) for name in [*OBJECTS, TRAY]}

    def grasp_targets(self) -> dict:
        objects = {}
        for name, (shape, size, colour, _) in OBJECTS.items():
            pos, quat = self.body_pose(name)
            h = half_height(shape, size)
            objects[name] = {
                "shape": shape, "colour": colour, "size": rounded(size),
                "position": rounded(pos), "quat": rounded(quat),
                "grasp_point": rounded(pos), "grasp_width": grasp_width(shape, size),
                "height": 2 * h, "top_z": round(float(pos[2] + h), 6), "approach": "top",
            }
        tray_pos, _ = self.body_pose(TRAY)
        shape, size, _, _ = OBJECTS[self.target]
        release_z = tray_pos[2] + self._tray_floor + half_height(shape, size) + 0.04
        return {
            "target_object": self.target,
            "objects": objects,
            "place": {
                "position": rounded([tray_pos[0], tray_pos[1], release_z]),
                "region_center": rounded(tray_pos),
                "region_half_extent": [self.params["tray_inner_half"]] * 2,
                "wall_top_z": round(float(tray_pos[2] + self.params["tray_wall_height"]), 6),
            },
        }

    def _in_tray(self, name: str) -> bool:
        pos, _ = self.body_pose(name)
        tray_pos, _ = self.body_pose(TRAY)
        shape, size, _, _ = OBJECTS[name]
        inside = np.all(np.abs(pos[:2] - tray_pos[:2]) <= self.params["tray_inner_half"])
        on_floor = pos[2] <= tray_pos[2] + self._tray_floor + half_height(shape, size) + 0.01
        return bool(inside and on_floor)

    def metrics(self) -> dict:
        pos, _ = self.body_pose(self.target)
        tray_pos, _ = self.body_pose(TRAY)
        return {
            "target": self.target,
            "in_tray": self._in_tray(self.target),
            "released": not self.touching_gripper(self.target),
            "speed": round(self.body_speed(self.target), 6),
            "distance_to_tray": round(float(np.linalg.norm(pos[:2] - tray_pos[:2])), 6),
            "objects_in_tray": sum(self._in_tray(name) for name in OBJECTS),
        }

    def success(self) -> bool:
        return (self._in_tray(self.target)
                and self.body_speed(self.target) < self.params["max_rest_speed"]
                and not self.touching_gripper(self.target))
