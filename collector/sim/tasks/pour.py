"""Pour: a pitcher holding small spheres ("water") stands on the table; pour them into the cup.

Success (from the sim state): at least `success_share` of the particles are inside the cup (within its
inner radius, between its floor and its rim). The pitcher is a 6.5 cm cylinder the gripper closes on.
"""
from __future__ import annotations

import mujoco
import numpy as np

from collector.sim.tasks.base import OBJECT_CONAFFINITY, OBJECT_CONTYPE, Task, TaskSite, ring_walls, rounded

PITCHER = "pitcher"
CUP = "cup"
WATER_RGBA = [0.20, 0.55, 0.95, 1.0]


class Pour(Task):
    name = "pour"
    instruction = "Pour the water from the white pitcher into the orange cup."
    settle_s = 0.4

    @classmethod
    def default_params(cls) -> dict:
        return {
            "particles": 28,
            "particle_radius": 0.007,
            "particle_mass": 0.0015,          # kg each, about water at this size
            "particle_dofs": 3,               # 3: slide joints (fast), 6: free joints (spheres also roll)
            "particle_friction": 0.0,         # 0 = frictionless (condim 1), like a liquid
            "particle_damping": 0.0,          # N s/m on each slide joint
            "pitcher_inner_radius": 0.0265,   # 6.5 cm outside diameter
            "pitcher_wall": 0.006,
            "pitcher_height": 0.11,
            "cup_inner_radius": 0.045,
            "cup_wall": 0.006,
            "cup_height": 0.075,
            "success_share": 0.5,             # share of particles that must end in the cup
        }

    def build(self, spec: mujoco.MjSpec, site: TaskSite) -> None:
        p = self.params
        origin = site.origin
        solid = {"contype": OBJECT_CONTYPE, "conaffinity": OBJECT_CONAFFINITY}
        grip = {"condim": 4, "friction": [1.0, 0.01, 0.0005]}

        pitcher = spec.worldbody.add_body(name=PITCHER, pos=list(origin + [0.0, 0.2, 0.0]))
        pitcher.add_freejoint(name=f"{PITCHER}_free")
        outer = p["pitcher_inner_radius"] + p["pitcher_wall"]
        white = [0.93, 0.93, 0.95, 1.0]
        pitcher.add_geom(name="pitcher_bottom", type=mujoco.mjtGeom.mjGEOM_CYLINDER, size=[outer, 0.004],
                         pos=[0, 0, 0.004], rgba=white, mass=0.05, **solid, **grip)
        ring_walls(pitcher, "pitcher", p["pitcher_inner_radius"], p["pitcher_wall"], p["pitcher_height"] - 0.008,
                   0.008, 16, white, mass=0.01, **solid, **grip)

        cup = spec.worldbody.add_body(name=CUP, pos=list(origin + [0.0, 0.0, 0.0]), mocap=True)
        orange = [0.95, 0.45, 0.10, 1.0]
        cup_outer = p["cup_inner_radius"] + p["cup_wall"]
        cup.add_geom(name="cup_bottom", type=mujoco.mjtGeom.mjGEOM_CYLINDER, size=[cup_outer, 0.003],
                     pos=[0, 0, 0.003], rgba=orange, **solid)
        ring_walls(cup, "cup", p["cup_inner_radius"], p["cup_wall"], p["cup_height"] - 0.006, 0.006, 20, orange, **solid)

        for k in range(int(p["particles"])):
            particle = spec.worldbody.add_body(name=f"particle{k}", pos=[0.0, 0.0, 0.0])
            if p["particle_dofs"] == 6:
                particle.add_freejoint(name=f"particle{k}_free")
            else:
                # Translation only: without rotational dofs a particle costs half as much to simulate.
                for axis_name, axis in zip("xyz", np.eye(3)):
                    particle.add_joint(name=f"particle{k}_{axis_name}", type=mujoco.mjtJoint.mjJNT_SLIDE,
                                       axis=list(axis), damping=p["particle_damping"])
            friction = p["particle_friction"]
            # priority 2: contacts with the (high-friction, condim 4) pitcher walls take the particle's
            # friction, otherwise the particles would stick to the walls instead of flowing.
            particle.add_geom(name=f"particle{k}_geom", type=mujoco.mjtGeom.mjGEOM_SPHERE,
                              size=[p["particle_radius"]], rgba=WATER_RGBA, mass=p["particle_mass"],
                              condim=3 if friction > 0 else 1, friction=[max(friction, 1e-6), 0.005, 0.0001],
                              solref=[0.01, 1.0], priority=2, **solid)
        self.particle_names = [f"particle{k}" for k in range(int(p["particles"]))]

    def bind(self, model, data, site, gripper_geoms) -> None:
        super().bind(model, data, site, gripper_geoms)
        self.particle_body_ids = np.array([model.body(name).id for name in self.particle_names], dtype=int)

    def weighted_objects(self):
        return [PITCHER]

    def fixed_masses(self) -> dict:
        """Masses the weight condition does not change, recorded alongside it."""
        return {"water_total": round(len(self.particle_names) * self.params["particle_mass"], 6)}

    def place(self, rng: np.random.Generator) -> dict:
        p = self.params
        origin = self.site.origin
        cup_pos = origin + [rng.uniform(0.0, 0.04), rng.uniform(-0.03, 0.03), 0.0]
        self.set_mocap_pose(CUP, cup_pos)
        side = float(rng.choice([-1.0, 1.0]))
        pitcher_pos = origin + [rng.uniform(-0.05, 0.0), side * rng.uniform(0.15, 0.20), 0.0]
        self.set_free_pose(PITCHER, pitcher_pos)
        # Stack the particles in rings of 1 + 6 per layer so they start inside without overlapping.
        r = p["particle_radius"]
        ring = p["pitcher_inner_radius"] - r - 0.001
        offsets = [(0.0, 0.0)] + [(ring * np.cos(a), ring * np.sin(a)) for a in np.arange(6) * np.pi / 3]
        for k, name in enumerate(self.particle_names):
            layer, slot = divmod(k, len(offsets))
            twist = layer * np.pi / 6  # rotate alternate layers so spheres nest
            dx, dy = offsets[slot]
            dx, dy = dx * np.cos(twist) - dy * np.sin(twist), dx * np.sin(twist) + dy * np.cos(twist)
            self.set_particle_position(name, pitcher_pos + [dx, dy, 0.008 + r + 0.001 + layer * (2 * r + 0.001)])
        return {"cup": rounded(cup_pos), "pitcher": rounded(pitcher_pos), "pitcher_side": "left" if side > 0 else "right",
                "particles": len(self.particle_names)}

    def set_particle_position(self, name: str, pos) -> None:
        if self.params["particle_dofs"] == 6:
            self.set_free_pose(name, pos)
            return
        joint = self.model.body_jntadr[self.model.body(name).id]
        adr, dof = self.model.jnt_qposadr[joint], self.model.jnt_dofadr[joint]
        self.data.qpos[adr:adr + 3] = pos  # the body sits at the world origin, so qpos is its position
        self.data.qvel[dof:dof + 3] = 0.0

    def object_poses(self):
        return {PITCHER: self.body_pose(PITCHER), CUP: self.body_pose(CUP)}

    # --- particle bookkeeping -------------------------------------------------------------------------
    def _particle_positions(self) -> np.ndarray:
        return self.data.xpos[self.particle_body_ids]

    def _inside(self, body: str, radius: float, height: float) -> np.ndarray:
        pos, _ = self.body_pose(body)
        rot = self.data.body(body).xmat.reshape(3, 3)
        local = (self._particle_positions() - pos) @ rot
        radial = np.linalg.norm(local[:, :2], axis=1)
        return (radial < radius) & (local[:, 2] > 0.0) & (local[:, 2] < height)

    def particles_in_cup(self) -> int:
        p = self.params
        return int(np.count_nonzero(self._inside(CUP, p["cup_inner_radius"], p["cup_height"])))

    def particles_in_pitcher(self) -> int:
        p = self.params
        return int(np.count_nonzero(self._inside(PITCHER, p["pitcher_inner_radius"], p["pitcher_height"])))

    def metrics(self) -> dict:
        n = len(self.particle_names)
        in_cup = self.particles_in_cup()
        in_pitcher = self.particles_in_pitcher()
        return {
            "particles": n,
            "particles_in_cup": round(in_cup / n, 6),
            "particles_in_pitcher": round(in_pitcher / n, 6),
            "particles_spilled": round((n - in_cup - in_pitcher) / n, 6),
            "success_share": self.params["success_share"],
        }

    def success(self) -> bool:
        return self.particles_in_cup() / len(self.particle_names) >= self.params["success_share"]

    def grasp_targets(self) -> dict:
        """Grasp and pour hints for a scripted operator (world frame, metres; plain types).

        A pour that works (tested): side grasp of the pitcher at `grasp_point`, lift it clear of the cup,
        bring the grasp point to `pour.hold_position` (pitcher beside the cup, its bottom just above the
        cup rim), then tilt about `pour.tilt_axis` (through the grasp point) to `tilt_rad` over ~3 s.
        """
        p = self.params
        pitcher_pos, pitcher_quat = self.body_pose(PITCHER)
        cup_pos, _ = self.body_pose(CUP)
        outer = p["pitcher_inner_radius"] + p["pitcher_wall"]
        grasp_height = 0.6 * p["pitcher_height"]
        grasp_point = pitcher_pos + [0.0, 0.0, grasp_height]
        toward_cup = np.append(cup_pos[:2] - pitcher_pos[:2], 0.0)
        toward_cup /= max(np.linalg.norm(toward_cup), 1e-9)
        cup_rim_z = cup_pos[2] + p["cup_height"]
        # Beside the cup so the mouth ends over it when tipped; bottom 1.5 cm above the rim.
        hold = cup_pos - toward_cup * (outer + 0.033)
        hold[2] = cup_rim_z + 0.015 + grasp_height
        tilt_axis = np.cross([0.0, 0.0, 1.0], toward_cup)  # tipping about it moves the mouth toward the cup
        return {
            "objects": {
                PITCHER: {
                    "shape": "cylinder", "position": rounded(pitcher_pos), "quat": rounded(pitcher_quat),
                    "grasp_point": rounded(grasp_point), "grasp_width": round(2 * outer, 6),
                    "height": p["pitcher_height"], "rim_z": round(float(pitcher_pos[2] + p["pitcher_height"]), 6),
                    "approach": "side",
                },
                CUP: {
                    "shape": "cylinder", "position": rounded(cup_pos),
                    "inner_radius": p["cup_inner_radius"], "height": p["cup_height"],
                    "rim_z": round(float(cup_rim_z), 6),
                },
            },
            "target_object": PITCHER,
            "pour": {
                "hold_position": rounded(hold),
                "cup_center": rounded(cup_pos),
                "cup_rim_z": round(float(cup_rim_z), 6),
                "direction": rounded(toward_cup),
                "tilt_axis": rounded(tilt_axis),
                "tilt_rad": 2.2,
                "tilt_duration_s": 3.0,
            },
            "particles": len(self.particle_names),
        }
