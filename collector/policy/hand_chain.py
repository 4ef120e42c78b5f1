"""Where a chunk of joint targets puts the hands, in torch, so a loss can be measured there.

The action loss is an L1 over normalized joint angles: every joint counts the same, although a small
error at the shoulder moves the hand several centimetres and the same error at the wrist barely at all.
The study's failures are a reach that stops 3-5 cm short (docs/learning.md, eighth run); a joint-space
loss that is already small says nothing about that. This module computes the end-effector sites'
positions from joint angles with the robot model's own kinematic tree (body offsets, hinge and slide
axes, as MuJoCo's forward kinematics composes them), as differentiable torch operations, so training
can also penalize the distance between where the predicted and the recorded targets put each hand
(`hand_loss` of the baseline policy).

Everything above the first joint the policy commands on a hand's path (the stand, a fixed or floating
base) is taken at the robot's home pose: one fixed frame per hand, computed once by MuJoCo. Joints on the
path that the policy does not command stay at their home values. Training only: a checkpoint does not
need it to run.
"""
from __future__ import annotations

from typing import List, Sequence

import numpy as np
import torch

from collector.errors import ConfigError


def _rotation(cross: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotations by `angle` (...) about a unit axis given as its cross-product matrix (3, 3):
    Rodrigues' formula."""
    eye = torch.eye(3, dtype=cross.dtype, device=cross.device)
    s, c = torch.sin(angle)[..., None, None], torch.cos(angle)[..., None, None]
    return eye + s * cross + (1 - c) * (cross @ cross)


def _cross_matrix(axis) -> torch.Tensor:
    x, y, z = (float(v) for v in axis)
    return torch.tensor([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]], dtype=torch.float64)


class HandChain:
    """positions(q): (..., 3 x end effectors) metres in the model frame for joint angles q (..., joints) in
    `joint_names` order, the same values `EndEffectorKinematics.positions` gives, with gradients."""

    def __init__(self, robot: str, joint_names: Sequence[str], model_hash: str = ""):
        import mujoco

        from collector.policy.end_effectors import robot_with_hands

        spec = robot_with_hands(robot, model_hash, "the episodes were recorded with")
        model = spec.load_model()
        column = {}
        for i, name in enumerate(joint_names):
            joint = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)
            if joint < 0:
                raise ConfigError(f"robot {robot!r} has no joint {name!r} of the policy's actions")
            column[joint] = i
        data = mujoco.MjData(model)
        data.qpos[:] = model.qpos0
        data.qpos[spec.qpos_indices(model)] = spec.home_vector()
        mujoco.mj_kinematics(model, data)
        self.width = 3 * len(spec.end_effectors)
        self._hands: List[dict] = []
        for site in spec.end_effectors.values():
            self._hands.append(self._chain(mujoco, model, data, model.site(site).id, column))

    def _chain(self, mujoco, model, data, site: int, column: dict) -> dict:
        path = []  # bodies from the site's body up to the world
        body = int(model.site_bodyid[site])
        while body != 0:
            path.append(body)
            body = int(model.body_parentid[body])
        path.reverse()
        commanded = [b for b in path if any(j in column for j in _joints(model, b))]
        start = path.index(commanded[0]) if commanded else len(path)
        anchor = path[start - 1] if start > 0 else 0  # its pose at home is fixed for this hand
        steps = []
        for b in path[start:]:
            joints = []
            for j in _joints(model, b):
                kind = int(model.jnt_type[j])
                if kind not in (mujoco.mjtJoint.mjJNT_HINGE, mujoco.mjtJoint.mjJNT_SLIDE):
                    raise ConfigError(f"joint {model.joint(j).name!r} on a hand's path is neither a hinge nor a "
                                      f"slide; the hand loss cannot follow it")
                adr = int(model.jnt_qposadr[j])
                joints.append({"hinge": kind == mujoco.mjtJoint.mjJNT_HINGE, "column": column.get(j),
                               "home": float(data.qpos[adr]), "zero": float(model.qpos0[adr]),
                               "axis": torch.tensor(model.jnt_axis[j], dtype=torch.float64),
                               "cross": _cross_matrix(model.jnt_axis[j]),
                               "at": torch.tensor(model.jnt_pos[j], dtype=torch.float64)})
            rotation = np.zeros(9)
            mujoco.mju_quat2Mat(rotation, model.body_quat[b])
            steps.append({"offset": torch.tensor(model.body_pos[b], dtype=torch.float64),
                          "rotation": torch.tensor(rotation.reshape(3, 3), dtype=torch.float64), "joints": joints})
        return {"origin": torch.tensor(data.xpos[anchor], dtype=torch.float64),
                "frame": torch.tensor(data.xmat[anchor].reshape(3, 3), dtype=torch.float64),
                "steps": steps, "site": torch.tensor(model.site_pos[site], dtype=torch.float64)}

    def __call__(self, q: torch.Tensor) -> torch.Tensor:
        lead = q.shape[:-1]
        out = []
        for hand in self._hands:
            frame = hand["frame"].to(q).expand(*lead, 3, 3)
            origin = hand["origin"].to(q).expand(*lead, 3)
            for step in hand["steps"]:
                origin = origin + frame @ step["offset"].to(q)
                frame = frame @ step["rotation"].to(q)
                for joint in step["joints"]:
                    angle = (q[..., joint["column"]] if joint["column"] is not None
                             else q.new_full(lead, joint["home"])) - joint["zero"]
                    at, axis = joint["at"].to(q), joint["axis"].to(q)
                    if joint["hinge"]:
                        pivot = origin + frame @ at  # MuJoCo rotates the body about the joint's anchor
                        frame = frame @ _rotation(joint["cross"].to(q), angle)
                        origin = pivot - frame @ at
                    else:
                        origin = origin + (frame @ axis) * angle[..., None]
            out.append(origin + frame @ hand["site"].to(q))
        return torch.cat(out, dim=-1)


def _joints(model, body: int) -> range:
    start = int(model.body_jntadr[body])
    return range(start, start + int(model.body_jntnum[body])) if start >= 0 else range(0)
