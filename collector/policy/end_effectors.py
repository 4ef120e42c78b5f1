"""Where the hands are: the end-effector sites' positions computed from the joint state by forward kinematics.

A pick-and-place policy that is told where the target is (the object head's estimate) must still work
out where its own hand is from seven arm angles, a nonlinear map an MLP learns poorly from 100 takes
(docs/learning.md, the study: the grasp is what fails). The robot's model computes it exactly, in
microseconds, from the same joint state the policy already reads, in training and on any backend, so
the policy gets it as an input: proprioception, not a reading of the simulator.

Positions are in the robot's model frame (its base where the robot file puts it), metres, one (x, y, z)
per end effector in the robot file's `end_effectors` order. Joints of the robot the state does not
carry stay at their home values.
"""
from __future__ import annotations

from typing import List, Sequence

import numpy as np

from collector.errors import ConfigError


def robot_with_hands(robot: str, model_hash: str, model_was: str):
    """The robot's spec (a name or YAML: collector.robot.loader), checked to be the model `model_hash` names
    (a different arm would put the hands elsewhere; `model_was` says where that hash came from) and to name
    the end effectors whose positions are wanted."""
    from collector.robot.loader import load_robot

    spec = load_robot(robot)
    if model_hash and spec.model_hash != model_hash:
        raise ConfigError(f"robot {robot!r}: its model ({spec.model_hash[:12]}) is not the one {model_was} "
                          f"({model_hash[:12]})")
    if not spec.end_effectors:
        raise ConfigError(f"robot {robot!r} names no end_effectors: there are no hands to locate")
    return spec


class EndEffectorKinematics:
    def __init__(self, robot: str, joint_names: Sequence[str], model_hash: str = ""):
        """model_hash: the robot model the policy was trained on, checked against the one loaded here."""
        import mujoco

        spec = robot_with_hands(robot, model_hash, "the policy's hand positions were learned on")
        self.robot, self.model_hash = spec.name, spec.model_hash
        self.sites: List[str] = list(spec.end_effectors.values())
        self._mujoco = mujoco
        self.model = spec.load_model()
        self.data = mujoco.MjData(self.model)
        for name in joint_names:
            if mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_JOINT, name) < 0:
                raise ConfigError(f"robot {robot!r} has no joint {name!r} of the policy's joint state")
        self._addresses = spec.qpos_indices(self.model, joint_names)
        self._home = np.array(self.model.qpos0)
        self._home[spec.qpos_indices(self.model)] = spec.home_vector()
        self._site_ids = [self.model.site(site).id for site in self.sites]  # the robot loader checked they exist

    @property
    def width(self) -> int:
        return 3 * len(self.sites)

    def positions(self, states: np.ndarray) -> np.ndarray:
        """(N, 3 x end effectors) float32 for joint states (N, joints) in the policy's joint order."""
        states = np.asarray(states, dtype=np.float64)
        single = states.ndim == 1
        states = np.atleast_2d(states)
        if states.shape[1] != len(self._addresses):
            raise ConfigError(f"joint state has {states.shape[1]} values; the hand positions need "
                              f"{len(self._addresses)}")
        out = np.empty((len(states), self.width), np.float32)
        for row, state in enumerate(states):
            self.data.qpos[:] = self._home
            self.data.qpos[self._addresses] = state
            self._mujoco.mj_kinematics(self.model, self.data)
            out[row] = self.data.site_xpos[self._site_ids].reshape(-1)
        return out[0] if single else out
