"""Build a task scene around a robot: room, table, theme materials, light slots, cameras, task objects.

The robot's own MJCF is the starting MjSpec (so any robot YAML works), and the world is added to it.
Where the table goes comes from the robot YAML's `scene:` block, so a user's robot gets a table it can reach.
"""
from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from collector.errors import ConfigError
from collector.robot import RobotSpec
from collector.sim.conditions import MAX_LIGHTS, theme as load_theme
from collector.sim.lighting import LIGHT_SLOT_PREFIX
from collector.sim.tasks import Task, TaskSite

# World geoms (table top) collide with the robot (contype 2/conaffinity 1) and with objects.
WORLD_CONTYPE = 1
WORLD_CONAFFINITY = 3
VISUAL = {"contype": 0, "conaffinity": 0}
INTEGRATORS = {
    "euler": mujoco.mjtIntegrator.mjINT_EULER,
    "rk4": mujoco.mjtIntegrator.mjINT_RK4,
    "implicit": mujoco.mjtIntegrator.mjINT_IMPLICIT,
    "implicitfast": mujoco.mjtIntegrator.mjINT_IMPLICITFAST,
}
SCENE_DEFAULTS = {
    "base_pos": [0.0, 0.0, 0.0],
    "table_height": 0.9,
    "table_front_x": 0.2,
    "task_center": [0.38, 0.0],
    "task_half_extent": [0.07, 0.26],
}
SCENE_CAMERA_SIZE = (640, 480)


@dataclass
class SceneLayout:
    """Where the table and the task area are (world frame)."""

    base_pos: np.ndarray
    table_height: float
    table_front_x: float
    task_center: np.ndarray
    task_half_extent: np.ndarray

    @classmethod
    def from_robot(cls, robot: RobotSpec) -> "SceneLayout":
        cfg = {**SCENE_DEFAULTS, **(robot.scene or {})}
        try:
            return cls(
                base_pos=np.array(cfg["base_pos"], dtype=float).reshape(3),
                table_height=float(cfg["table_height"]),
                table_front_x=float(cfg["table_front_x"]),
                task_center=np.array(cfg["task_center"], dtype=float).reshape(2),
                task_half_extent=np.array(cfg["task_half_extent"], dtype=float).reshape(2),
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{robot.yaml_path}: scene: {exc}") from exc

    @property
    def task_origin(self) -> np.ndarray:
        """Centre of the task area on the table top."""
        return np.array([self.task_center[0], self.task_center[1], self.table_height])

    def task_site(self) -> TaskSite:
        return TaskSite(origin=self.task_origin, half_extent=self.task_half_extent.copy())


def build_scene(robot: RobotSpec, theme_name: str, task: Task, render_quality: str = "fast") -> tuple:
    """The scene as an MjSpec (not yet compiled) and its layout."""
    theme = load_theme(theme_name)
    layout = SceneLayout.from_robot(robot)
    spec = robot.load_mjspec()
    spec.modelname = f"{robot.name}_{task.name}_{theme_name}"
    _physics(spec, robot)
    _offset_robot(spec, layout.base_pos)
    _visual(spec, robot, render_quality)
    _room(spec, theme, layout)
    _table(spec, theme, layout)
    _props(spec, theme, layout)
    _light_slots(spec)
    _cameras(spec, layout)
    task.build(spec, layout.task_site())
    return spec, layout


def compile_scene(spec) -> mujoco.MjModel:
    try:
        return spec.compile()
    except ValueError as exc:
        raise ConfigError(f"the scene does not compile: {exc}") from exc


# --- pieces ----------------------------------------------------------------------------------------

def _physics(spec, robot: RobotSpec) -> None:
    physics = robot.physics or {}
    spec.option.timestep = float(physics.get("timestep", 0.002))
    integrator = str(physics.get("integrator", "implicitfast"))
    if integrator not in INTEGRATORS:
        raise ConfigError(f"{robot.yaml_path}: physics.integrator must be one of {sorted(INTEGRATORS)}")
    spec.option.integrator = int(INTEGRATORS[integrator])
    # Grasping small objects: elliptic cones hold a pinch grip with less creep than pyramidal ones.
    spec.option.cone = int(mujoco.mjtCone.mjCONE_ELLIPTIC)
    spec.option.impratio = float(physics.get("impratio", 5.0))


def _offset_robot(spec, base_pos) -> None:
    if not np.any(base_pos):
        return
    body = spec.worldbody.first_body()
    while body is not None:
        body.pos = list(np.asarray(body.pos) + base_pos)
        body = spec.worldbody.next_body(body)


def _visual(spec, robot: RobotSpec, render_quality: str) -> None:
    # The offscreen buffer must hold the largest camera image.
    widths = [c.width for c in robot.cameras.values()] + [SCENE_CAMERA_SIZE[0], 1280]
    heights = [c.height for c in robot.cameras.values()] + [SCENE_CAMERA_SIZE[1], 960]
    spec.visual.global_.offwidth = max(widths)
    spec.visual.global_.offheight = max(heights)
    high = render_quality == "high"
    # Software rendering (llvmpipe) pays per fragment and per triangle: "fast" skips multisampling
    # (halves the frame time) and tessellates round shapes more coarsely.
    spec.visual.quality.offsamples = 4 if high else 0
    spec.visual.quality.numslices = 28 if high else 16
    spec.visual.quality.numstacks = 16 if high else 8
    spec.visual.quality.shadowsize = 1024  # a 2048^2 shadow map alone costs ~80 ms per frame on llvmpipe
    spec.visual.map.znear = 0.01
    spec.stat.center = [0.3, 0.0, 1.0]
    spec.stat.extent = 2.0


def _material(spec, name, rgb, reflectance=0.0, texture=None, texrepeat=(1, 1), specular=0.2):
    if texture is not None:
        spec.add_material(name=name, textures=["", texture], texrepeat=list(texrepeat), texuniform=True,
                          reflectance=reflectance, specular=specular)
    else:
        spec.add_material(name=name, rgba=[*rgb, 1.0], reflectance=reflectance, specular=specular)
    return name


def _checker(spec, name, rgb1, rgb2, flat=False):
    builtin = mujoco.mjtBuiltin.mjBUILTIN_FLAT if flat else mujoco.mjtBuiltin.mjBUILTIN_CHECKER
    spec.add_texture(name=name, type=mujoco.mjtTexture.mjTEXTURE_2D, builtin=builtin,
                     rgb1=list(rgb1), rgb2=list(rgb2), width=256, height=256,
                     mark=mujoco.mjtMark.mjMARK_RANDOM if flat else mujoco.mjtMark.mjMARK_NONE,
                     random=0.05 if flat else 0.0, markrgb=list(rgb2))
    return name


def _room(spec, theme, layout: SceneLayout) -> None:
    floor = theme["floor"]
    texture = _checker(spec, "scene_floor_tex", floor["rgb1"], floor["rgb2"], flat=floor["pattern"] == "flat")
    repeat = 1.0 / floor["square"] / 2.0  # checker texture holds 2x2 squares
    _material(spec, "scene_floor", None, floor["reflectance"], texture, (repeat, repeat), specular=0.1)
    _material(spec, "scene_wall", theme["walls"]["rgb"], specular=0.05)
    world = spec.worldbody
    cx, cy = layout.task_center
    # A thin box, not a plane: MuJoCo draws planes as a fine grid of quads, which costs a software
    # renderer about half of every frame; a box is 12 triangles.
    world.add_geom(name="scene_floor", type=mujoco.mjtGeom.mjGEOM_BOX, size=[2.6, 2.4, 0.01],
                   pos=[cx + 0.05, cy, -0.01], material="scene_floor",
                   contype=WORLD_CONTYPE, conaffinity=WORLD_CONAFFINITY)
    height = 2.6
    walls = {
        "scene_wall_far": ([cx + 1.7, cy, height / 2], [0.02, 3.0, height / 2]),
        "scene_wall_back": ([layout.base_pos[0] - 1.6, cy, height / 2], [0.02, 3.0, height / 2]),
        "scene_wall_left": ([cx, cy + 2.2, height / 2], [3.0, 0.02, height / 2]),
        "scene_wall_right": ([cx, cy - 2.2, height / 2], [3.0, 0.02, height / 2]),
    }
    for name, (pos, size) in walls.items():
        world.add_geom(name=name, type=mujoco.mjtGeom.mjGEOM_BOX, pos=pos, size=size, material="scene_wall", **VISUAL)


def _table(spec, theme, layout: SceneLayout) -> None:
    table = theme["table"]
    _material(spec, "scene_table_top", table["top_rgb"], table["reflectance"], specular=0.3)
    _material(spec, "scene_table_base", table["base_rgb"], specular=0.2)
    depth, width, thick = table["depth"], table["width"], table["thickness"]
    top_z = layout.table_height
    cx = layout.table_front_x + depth / 2
    cy = layout.task_center[1]
    body = spec.worldbody.add_body(name="scene_table", pos=[cx, cy, 0.0])
    body.add_geom(name="scene_table_top", type=mujoco.mjtGeom.mjGEOM_BOX, size=[depth / 2, width / 2, thick / 2],
                  pos=[0, 0, top_z - thick / 2], material="scene_table_top", condim=3, friction=[1.0, 0.005, 0.0001],
                  contype=WORLD_CONTYPE, conaffinity=WORLD_CONAFFINITY)
    below = top_z - thick
    if table["style"] == "counter":
        body.add_geom(name="scene_table_cabinet", type=mujoco.mjtGeom.mjGEOM_BOX,
                      size=[depth / 2 - 0.03, width / 2 - 0.01, below / 2 - 0.05], pos=[0.03, 0, below / 2 + 0.05],
                      material="scene_table_base", **VISUAL)
        body.add_geom(name="scene_table_plinth", type=mujoco.mjtGeom.mjGEOM_BOX,
                      size=[depth / 2 - 0.08, width / 2 - 0.03, 0.05], pos=[0.08, 0, 0.05], rgba=[0.1, 0.1, 0.1, 1],
                      **VISUAL)
        for k, y in enumerate(np.linspace(-width / 2, width / 2, 5)[1:-1]):
            body.add_geom(name=f"scene_table_door_gap{k}", type=mujoco.mjtGeom.mjGEOM_BOX,
                          size=[0.002, 0.003, below / 2 - 0.08], pos=[-depth / 2 + 0.028, y, below / 2 + 0.05],
                          rgba=[0.5, 0.5, 0.5, 1], **VISUAL)
    else:
        leg = 0.025 if table["style"] == "desk" else 0.035
        for k, (sx, sy) in enumerate([(1, 1), (1, -1), (-1, 1), (-1, -1)]):
            body.add_geom(name=f"scene_table_leg{k}", type=mujoco.mjtGeom.mjGEOM_BOX, size=[leg, leg, below / 2],
                          pos=[sx * (depth / 2 - 0.05), sy * (width / 2 - 0.05), below / 2],
                          material="scene_table_base", **VISUAL)
        if table["style"] == "bench":
            body.add_geom(name="scene_table_shelf", type=mujoco.mjtGeom.mjGEOM_BOX,
                          size=[depth / 2 - 0.05, width / 2 - 0.05, 0.012], pos=[0, 0, 0.18],
                          material="scene_table_top", **VISUAL)
    if theme["backsplash"]:
        splash = theme["backsplash"]
        texture = _checker(spec, "scene_splash_tex", splash["rgb1"], splash["rgb2"])
        _material(spec, "scene_splash", None, 0.05, texture, (width / 0.15 / 2, splash["height"] / 0.15 / 2))
        body.add_geom(name="scene_backsplash", type=mujoco.mjtGeom.mjGEOM_BOX,
                      size=[0.01, width / 2, splash["height"] / 2],
                      pos=[depth / 2 + 0.01, 0, top_z + splash["height"] / 2], material="scene_splash", **VISUAL)


def _props(spec, theme, layout: SceneLayout) -> None:
    origin = layout.task_origin
    types = {"box": mujoco.mjtGeom.mjGEOM_BOX, "cylinder": mujoco.mjtGeom.mjGEOM_CYLINDER,
             "sphere": mujoco.mjtGeom.mjGEOM_SPHERE, "capsule": mujoco.mjtGeom.mjGEOM_CAPSULE}
    for prop in theme["props"]:
        size = (prop["size"] + [0.0, 0.0])[:3]
        spec.worldbody.add_geom(name=f"scene_prop_{prop['name']}", type=types[prop["type"]], size=size,
                                pos=list(origin + prop["pos"]), rgba=[*prop["rgb"], 1.0], **VISUAL)


def _light_slots(spec) -> None:
    # Fixed slots, switched on/off and set by collector.sim.lighting when a condition is applied.
    for slot in range(MAX_LIGHTS):
        spec.worldbody.add_light(name=f"{LIGHT_SLOT_PREFIX}{slot}", pos=[0, 0, 2.5], dir=[0, 0, -1],
                                 type=mujoco.mjtLightType.mjLIGHT_SPOT, castshadow=False,
                                 diffuse=[0, 0, 0], active=False)


def look_at_quat(eye, target, up=(0.0, 0.0, 1.0)) -> list:
    """Quaternion of a MuJoCo camera at `eye` looking at `target` (cameras look along their -z)."""
    forward = np.asarray(target, float) - np.asarray(eye, float)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    true_up = np.cross(right, forward)
    mat = np.column_stack([right, true_up, -forward])
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, mat.flatten())
    return quat.tolist()


def scene_cameras(layout: SceneLayout) -> dict:
    """Scene camera name -> (eye, target), placed relative to the robot base and the task area."""
    base = layout.base_pos
    origin = layout.task_origin
    return {
        # From the robot's left-front: the whole humanoid, the table and the task area.
        "overview": (base + [0.75, 1.1, 1.7], base + [0.18, 0.0, 1.0]),
        # Straight down onto the task area.
        "top": (origin + [0.0, 0.0, 0.9], origin + [0.0001, 0.0, 0.0]),
    }


def _cameras(spec, layout: SceneLayout) -> None:
    for name, (eye, target) in scene_cameras(layout).items():
        spec.worldbody.add_camera(name=name, pos=list(eye), quat=look_at_quat(eye, target), fovy=55)
