"""The simulated world's state as episodes record it, and how replay and exports read it back.

Every simulated episode records, at the record rate (the fastest camera's fps, else 30 Hz), on the
same ticks as that camera's frames:
  sim_state            field `state` (N,) float64: MuJoCo's mj_getState with STATE_SPEC below, i.e.
                       time, qpos, qvel, act, actuator history and plugin state (mjSTATE_FULLPHYSICS),
                       plus ctrl, active equalities and mocap poses (the cup and the tray are mocap
                       bodies). Particles ("water") are bodies with joints, so they are in qpos/qvel.
                       Applied forces and the solver's warm start are left out: the collector never
                       applies external forces, and warm start only seeds the solver.
  pose_objects_<name>  field `pose` (7,) x y z qw qx qy qz (world frame), one stream per task object,
                       named like the ROS recorder names /objects/<name>/pose.
The stream attrs carry the spec (`state_spec`, `state_components`), its size and the model's sizes,
so a reader can tell whether a model can take the state (mj_stateSize must equal N).
Both streams are named and specified in collector/recorder/vocabulary.py.
"""
from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np

from collector.recorder.vocabulary import SIM_STATE, object_pose_spec, pose_stream_name, sim_state_spec

DEFAULT_RATE_HZ = 30.0
STATE_COMPONENTS = ("mjSTATE_FULLPHYSICS", "mjSTATE_CTRL", "mjSTATE_EQ_ACTIVE", "mjSTATE_MOCAP_POS",
                    "mjSTATE_MOCAP_QUAT")


def state_spec() -> int:
    import mujoco

    spec = 0
    for name in STATE_COMPONENTS:
        spec |= int(getattr(mujoco.mjtState, name))
    return spec


def state_size(model) -> int:
    import mujoco

    return int(mujoco.mj_stateSize(model, state_spec()))


def get_state(model, data) -> np.ndarray:
    import mujoco

    out = np.empty(state_size(model))
    mujoco.mj_getState(model, data, out, state_spec())
    return out


def set_state(model, data, state: np.ndarray, forward: bool = True) -> None:
    """Restore a recorded state and (forward) recompute everything derived from it (poses, contacts)."""
    import mujoco

    mujoco.mj_setState(model, data, np.asarray(state, dtype=np.float64), state_spec())
    if forward:
        mujoco.mj_forward(model, data)


def state_attrs(model, robot=None) -> dict:
    """What a reader needs to put the state back (into a model that must have the same sizes)."""
    import mujoco

    attrs = {"state_spec": state_spec(), "state_components": list(STATE_COMPONENTS), "state_size": state_size(model),
             "restore": "mujoco.mj_setState(model, data, state, state_spec); mujoco.mj_forward(model, data)",
             "nq": int(model.nq), "nv": int(model.nv), "na": int(model.na), "nu": int(model.nu),
             "nmocap": int(model.nmocap), "mujoco_version": mujoco.__version__}
    if robot is not None:
        attrs["robot"] = robot.name
        attrs["robot_model_hash"] = robot.model_hash
    return attrs


def world_stream_specs(model, object_names: List[str], rate_hz: float, robot=None) -> list:
    return ([sim_state_spec(state_size(model), rate_hz, state_attrs(model, robot))]
            + [object_pose_spec(name, rate_hz) for name in object_names])


# -- reading it back ---------------------------------------------------------------------------------

def states_at(reader, stamps: np.ndarray) -> Optional[np.ndarray]:
    """For each stamp, the index of the recorded state nearest to it (None when nothing was recorded)."""
    if SIM_STATE not in reader.streams or reader.count(SIM_STATE) == 0:
        return None
    t = reader.stamps(SIM_STATE)
    pos = np.clip(np.searchsorted(t, stamps), 1, max(t.size - 1, 1))
    if t.size == 1:
        return np.zeros(len(stamps), dtype=np.int64)
    before = t[pos - 1]
    after = t[pos]
    return np.where(np.abs(stamps - before) <= np.abs(after - stamps), pos - 1, pos).astype(np.int64)


def frame_stamps(reader, camera_stream: str) -> np.ndarray:
    """The stamp of the raw frame each aligned row shows for a camera (its own capture time)."""
    index = reader.sync(camera_stream)["index"]
    t = reader.stamps(camera_stream)
    return t[np.clip(index, 0, t.size - 1)]


def state_problem(reader, model) -> Optional[str]:
    """Why the recorded states cannot be put into `model`, or None if they can."""
    spec = reader.streams.get(SIM_STATE)
    if spec is None:
        return "the episode has no world state (recorded before sim_state streams existed)"
    recorded_spec = spec.attrs.get("state_spec")
    if recorded_spec is not None and int(recorded_spec) != state_spec():
        return f"its world state uses spec {recorded_spec}, this version uses {state_spec()}"
    width = spec.fields["state"].shape[0]
    if width != state_size(model):
        return f"its world state has {width} values, the rebuilt scene takes {state_size(model)} (model changed)"
    if reader.count(SIM_STATE) == 0:
        return "its world state stream has no samples"
    return None


def object_poses(model, scratch, state: np.ndarray, names: List[str]) -> Dict[str, np.ndarray]:
    """{stream name: (7,) pose} of each named body in `state`, computed on a scratch MjData.

    Not read from the live data: after mj_step its body poses are those of the step's start, one
    physics step older than its qpos, and the recorded poses must be the state's own."""
    import mujoco

    mujoco.mj_setState(model, scratch, state, state_spec())
    mujoco.mj_kinematics(model, scratch)
    return {pose_stream_name(name): np.concatenate([scratch.body(name).xpos, scratch.body(name).xquat])
            for name in names}
