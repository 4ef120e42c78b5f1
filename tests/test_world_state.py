"""What a simulated episode records besides the robot: joint limits with their soft-limit tolerance,
the full simulator state and object poses; and replay/export that use them (issue 13 items 10, 22, 23)."""
import json
import shutil

import h5py
import mujoco
import numpy as np
import pytest

from collector.cli import main
from collector.dataset import JobEngine, select_episodes
from collector.dataset.exports.robomimic import export_robomimic
from collector.recorder import validate_episode
from collector.recorder.reader import EpisodeReader
from collector.replay.sim_replay import env_for_episode, kinematic_replay
from collector.robot import load_robot
from collector.sim import world_state
from collector.sim.limits import MIN_TOLERANCE, soft_limit_deflection


@pytest.fixture(scope="module")
def pour_episode(tmp_path_factory):
    """A real scripted pour recorded by `collector teleop --record` (the full loop, ~8 s of sim)."""
    out = tmp_path_factory.mktemp("pour")
    assert main(["teleop", "--device", "scripted", "--task", "pour", "--record", str(out), "--episodes", "1"]) == 0
    (path,) = [p for p in out.iterdir() if p.is_file()]
    return path


# -- item 10: joint limits ---------------------------------------------------------------------------

def test_soft_limit_tolerance_matches_what_mujoco_does():
    """A hinge pressed into its limit by a constant torque rests where the derivation says."""
    xml = """<mujoco><compiler angle="radian"/><option timestep="0.002" gravity="0 0 0"/><worldbody><body>
      <joint name="j" type="hinge" range="-1 1" limited="true" armature="0.05" damping="2"/>
      <geom type="box" size="0.2 0.05 0.05" mass="1"/></body></worldbody>
      <actuator><motor joint="j" gear="1" ctrlrange="-20 20"/></actuator></mujoco>"""
    model = mujoco.MjModel.from_xml_string(xml)
    data = mujoco.MjData(model)
    for torque in (5.0, 20.0):
        mujoco.mj_resetData(model, data)
        data.ctrl[0] = torque
        for _ in range(3000):
            mujoco.mj_step(model, data)
        measured = data.qpos[0] - 1.0
        predicted = soft_limit_deflection(model.jnt_solref[0], model.jnt_solimp[0], model.jnt_margin[0],
                                          torque * model.dof_invweight0[0], model.opt.timestep)
        assert measured > 1e-3 and predicted == pytest.approx(measured, rel=0.1)


def test_sim_episode_records_limits_and_clean_data_passes(pour_episode):
    with EpisodeReader(pour_episode) as reader:
        limits = reader.metadata["joint_limits"]
        q = reader.raw("joints", "position")[: reader.count("joints")]
    names = limits["joint_names"]
    lower, upper, tol = (np.asarray(limits[k]) for k in ("lower", "upper", "tolerance"))
    assert len(names) == len(lower) == len(tol) == q.shape[1] and "soft-limit" in limits["tolerance_source"]
    assert np.all(tol >= MIN_TOLERANCE) and np.all(tol < 0.1)
    excess = np.maximum(q - upper, lower - q).max(axis=0)
    assert np.all(excess <= tol)  # MuJoCo's soft limits let joints past the range, never past the tolerance
    assert validate_episode(pour_episode) == []


def test_a_joint_pushed_past_its_limit_fails_validate_naming_it(pour_episode, tmp_path, capsys):
    robot = load_robot("humanoid")  # the robot's own limits (older episodes recorded none)
    j = robot.command_joints.index("left_elbow")
    upper = robot.upper_limits()[j]
    bad = tmp_path / pour_episode.name
    shutil.copy(pour_episode, bad)
    with h5py.File(bad, "r+") as f:
        for path in ("raw/joints/position", "observations/qpos"):
            values = f[path][...]
            values[40:60, j] = upper + 0.3
            f[path][...] = values
    assert main(["validate", str(bad)]) != 0
    out = capsys.readouterr()
    text = out.out + out.err
    assert "outside the joint limits" in text and "'left_elbow'" in text


# -- item 23: the world's state ---------------------------------------------------------------------

def test_episode_records_world_state_and_object_poses_with_the_frames(pour_episode):
    with EpisodeReader(pour_episode) as reader:
        streams = reader.streams
        assert {"sim_state", "pose_objects_pitcher", "pose_objects_cup"} <= set(streams)
        spec = streams["sim_state"]
        assert spec.attrs["state_spec"] == world_state.state_spec() and spec.attrs["state_size"] > 100
        t_state = reader.stamps("sim_state")
        # taken on the ticks the cameras' frames were: each frame has the world state of its instant
        np.testing.assert_array_equal(t_state, reader.stamps("camera_left_wrist"))
        np.testing.assert_array_equal(t_state, reader.stamps("pose_objects_pitcher"))
        states = reader.raw("sim_state", "state")[: t_state.size]
        poses = reader.raw("pose_objects_pitcher", "pose")[: t_state.size]
        env, _ = env_for_episode(reader)
    try:
        lifted = int(np.argmax(poses[:, 2] > poses[0, 2] + 0.05))  # the pitcher just lifted, not yet poured
        assert lifted > 0
        world_state.set_state(env.model, env.data, states[lifted])
        pos, quat = env.task.object_poses()["pitcher"]
        np.testing.assert_allclose(np.concatenate([pos, quat]), poses[lifted], atol=1e-9)
        assert env.task.particles_in_cup() == 0 and env.task.particles_in_pitcher() > 20
        world_state.set_state(env.model, env.data, states[-1])
        assert env.task.success()  # the last state has the water in the cup
    finally:
        env.close()


def test_replay_restores_the_world_and_flags_a_robot_only_replay(pour_episode, tmp_path, capsys):
    full = kinematic_replay(pour_episode, video=None, cameras=["left_wrist"])
    assert full.world_state == "restored" and full.flagged_cameras == []
    robot_only = kinematic_replay(pour_episode, video=None, cameras=["left_wrist"], use_world_state=False)
    assert robot_only.world_state.startswith("ignored") and robot_only.flagged_cameras == ["left_wrist"]
    worst = robot_only.cameras["left_wrist"]
    assert worst["max_share_differing"] > 10 * full.cameras["left_wrist"]["max_share_differing"]
    assert len(worst["worst_frames"]) == 5 and worst["frames_flagged"] > 10
    # the CLI says which camera differs and where, instead of one reassuring mean
    assert main(["replay", str(pour_episode), "--no-video", "--cameras", "left_wrist", "--robot-only"]) == 0
    text = capsys.readouterr().out
    assert "left_wrist: DIFFERS" in text and "worst frames [" in text


def test_robomimic_states_are_the_recorded_world_and_actions_use_the_joint_limits(pour_episode, tmp_path):
    out = tmp_path / "pour.hdf5"
    with JobEngine("inline") as engine:
        export_robomimic(select_episodes(pour_episode.parent), out, engine, source="test")
    with h5py.File(out, "r") as f, EpisodeReader(pour_episode) as reader:
        data = f["data"]
        demo = data["demo_0"]
        state_info = json.loads(data.attrs["env_args"])["env_kwargs"]["state"]
        assert state_info["state_spec"] == world_state.state_spec()
        assert demo["states"].shape == (demo.attrs["num_samples"], state_info["state_size"])
        assert json.loads(demo.attrs["state"])["state_size"] == state_info["state_size"]
        assert data.attrs["action_normalization"] == "joint_limits"
        limits = reader.metadata["joint_limits"]
        np.testing.assert_allclose(data.attrs["action_offset"] - data.attrs["action_scale"], limits["lower"], atol=1e-6)
        assert -1.0 <= demo["actions"][()].min() and demo["actions"][()].max() <= 1.0
        # states[row] is the world the row's camera frame shows: restoring it renders that frame
        env, _ = env_for_episode(reader)
        try:
            row = demo.attrs["num_samples"] // 2
            world_state.set_state(env.model, env.data, demo["states"][row])
            recorded = demo["obs/left_wrist_image"][row]
            rendered = env.render("left_wrist", recorded.shape[1], recorded.shape[0])
            assert np.abs(recorded.astype(int) - rendered.astype(int)).mean() < 2.0
        finally:
            env.close()
