"""Robot YAML loading: the shipped humanoid, any other MJCF through the same YAML, and load-time errors."""
import shutil
import textwrap

import mujoco
import numpy as np
import pytest
import yaml

from collector.errors import ConfigError
from collector.paths import robots_dir
from collector.robot import CameraSpec, RobotSpec, load_robot
from helpers.toy_robots import TOY_ARM_XML, toy_yaml

GROUPS = ("waist", "left_arm", "right_arm", "left_hand", "right_hand", "head")


@pytest.fixture
def toy_robot(tmp_path):
    """A small arm written here: MJCF + YAML in a temp directory."""
    (tmp_path / "toy_arm.xml").write_text(TOY_ARM_XML)

    def write(**overrides):
        path = tmp_path / "robot.yaml"
        path.write_text(yaml.safe_dump(toy_yaml(**overrides)))
        return path

    return write


def test_humanoid_groups_and_command_order(humanoid):
    assert isinstance(humanoid, RobotSpec)
    assert humanoid.fixed_base is True
    assert tuple(humanoid.groups) == GROUPS
    assert len(humanoid.groups["left_arm"]) == 7 and len(humanoid.groups["right_arm"]) == 7
    assert humanoid.command_joints == [j for g in humanoid.groups.values() for j in g]
    assert len(set(humanoid.command_joints)) == len(humanoid.command_joints)
    assert set(humanoid.actuators) == set(humanoid.command_joints)
    assert humanoid.head == {"pan": "head_pan", "tilt": "head_tilt"}
    assert humanoid.end_effectors == {"left": "left_ee", "right": "right_ee"}


def test_humanoid_model_matches_yaml(humanoid):
    model = humanoid.load_model()
    assert model.nu == len(humanoid.command_joints)
    for side, site in humanoid.end_effectors.items():
        assert mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, site) >= 0
    for camera in humanoid.cameras.values():
        assert isinstance(camera, CameraSpec)
        assert mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera.mjcf_camera) >= 0
    assert set(humanoid.cameras) >= {"head", "left_wrist", "right_wrist"}
    # Arm segments as designed: upper arm 0.28 m, forearm 0.25 m.
    assert np.isclose(model.body("left_forearm").pos[2], -0.28)
    assert np.isclose(model.body("left_wrist_yaw_link").pos[2], -0.25)
    # Every moving body of the robot is gravity compensated.
    moving = [b for b in range(1, model.nbody) if model.body_dofnum[b] > 0]
    assert all(model.body_gravcomp[b] == 1 for b in moving)


def test_home_vector_and_limits(humanoid):
    home = humanoid.home_vector()
    assert home.shape == (len(humanoid.command_joints),)
    assert np.all(home >= humanoid.lower_limits()) and np.all(home <= humanoid.upper_limits())
    index = humanoid.command_joints.index("left_elbow")
    assert home[index] == humanoid.home["left_elbow"]
    assert home[humanoid.command_joints.index("waist_yaw")] == 0.0  # unlisted -> 0


def test_gripper_command_maps_closure(humanoid):
    assert humanoid.gripper_command("left", 0.0) == pytest.approx(0.045)
    assert humanoid.gripper_command("left", 1.0) == pytest.approx(0.0)
    assert humanoid.gripper_closure("left", humanoid.gripper_command("left", 0.3)) == pytest.approx(0.3)


def test_model_hash_is_stable_and_tracks_files(tmp_path, humanoid):
    assert len(humanoid.model_hash) == 64 and int(humanoid.model_hash, 16) >= 0
    assert load_robot("humanoid").model_hash == humanoid.model_hash
    copy = tmp_path / "humanoid"
    shutil.copytree(robots_dir() / "humanoid", copy)
    assert load_robot(copy).model_hash == humanoid.model_hash
    xml = copy / "humanoid.xml"
    xml.write_text(xml.read_text().replace('mass="1.8"', 'mass="1.9"', 1))
    assert load_robot(copy / "robot.yaml").model_hash != humanoid.model_hash


def test_loads_by_directory_and_yaml_path(humanoid):
    directory = robots_dir() / "humanoid"
    assert load_robot(directory).command_joints == humanoid.command_joints
    assert load_robot(directory / "robot.yaml").mjcf_path == humanoid.mjcf_path


def test_toy_arm_loads_through_the_same_loader(toy_robot):
    spec = load_robot(toy_robot())
    assert spec.name == "toy_arm"
    assert spec.command_joints == ["j1", "j2", "finger_slide"]
    assert spec.actuators == {"j1": "j1_servo", "j2": "j2_servo", "finger_slide": "grip"}
    assert spec.cameras["tool"] == CameraSpec("tool", "tool_cam", 160, 120, 15.0)
    assert list(spec.home_vector()) == [0.0, 0.2, 0.04]
    model = spec.load_model()
    assert list(spec.qpos_indices(model)) == [0, 1, 2]


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"groups": {"right_arm": ["j1", "elbow_missing"]}}, "elbow_missing"),
        ({"end_effectors": {"right": "no_such_site"}}, "no_such_site"),
        ({"mjcf": "missing.xml"}, "missing.xml"),
        ({"cameras": {"tool": {"mjcf_camera": "ghost_cam", "width": 10, "height": 10, "fps": 5}}}, "ghost_cam"),
        ({"home": {"j1": 5.0}}, "j1"),
        ({"grippers": {"right": {"actuator": "nope", "open": 0.04, "closed": 0, "joints": ["finger_slide"]}}}, "nope"),
        ({"ik_collision_pairs": [[["link2_geom"], ["ghost_geom"]]]}, "ghost_geom"),
        ({"actuators": {"j1": "not_an_actuator"}}, "not_an_actuator"),
        ({"tpyo": 1}, "tpyo"),
        ({"groups": {"a": ["j1"], "b": ["j1"]}}, "j1"),
        ({"velocity_limits": {"j1": -1.0}}, "velocity_limits.j1"),
        ({"velocity_limits": {"ghost_joint": 1.0}}, "ghost_joint"),
    ],
)
def test_wrong_yaml_fails_at_load_naming_the_problem(toy_robot, overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_robot(toy_robot(**overrides))


def test_velocity_limits_load_and_default_to_empty(toy_robot, humanoid):
    assert load_robot(toy_robot()).velocity_limits == {}
    assert load_robot(toy_robot(velocity_limits={"j1": 1.5})).velocity_limits == {"j1": 1.5}
    assert humanoid.velocity_limits["left_elbow"] > 0


def test_joint_without_actuator_is_rejected(tmp_path):
    (tmp_path / "toy_arm.xml").write_text(TOY_ARM_XML.replace('<position name="j2_servo" joint="j2" kp="100" kv="5" inheritrange="1"/>', ""))
    (tmp_path / "robot.yaml").write_text(yaml.safe_dump(toy_yaml()))
    with pytest.raises(ConfigError, match="'j2' has no actuator"):
        load_robot(tmp_path)


def test_bad_robot_name_and_paths():
    with pytest.raises(ConfigError, match="no_such_robot"):
        load_robot("no_such_robot")
    with pytest.raises(ConfigError, match="does not exist"):
        load_robot("/nonexistent/robot.yaml")


def test_broken_mjcf_and_yaml_are_config_errors(tmp_path):
    (tmp_path / "toy_arm.xml").write_text("<mujoco><worldbody><body><joint name='x'/></worldbody></mujoco>")
    (tmp_path / "robot.yaml").write_text(yaml.safe_dump(toy_yaml()))
    with pytest.raises(ConfigError, match="MuJoCo cannot load"):
        load_robot(tmp_path)
    (tmp_path / "robot.yaml").write_text(textwrap.dedent("name: [unclosed\n"))
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_robot(tmp_path)


def test_yaml_can_add_sites_and_cameras_to_a_model_it_does_not_own(toy_robot):
    """A Menagerie-style model without a grasp site or camera gets them from the YAML, file untouched."""
    path = toy_robot(
        extra_sites={"grasp": {"body": "link2", "pos": [0.22, 0, 0]}},
        extra_cameras={"side_cam": {"body": "base", "pos": [0.5, 0.5, 0.3], "xyaxes": [-1, 1, 0, 0, 0, 1]}},
        end_effectors={"right": "grasp"},
        cameras={"side": {"mjcf_camera": "side_cam", "width": 64, "height": 48, "fps": 10}},
    )
    spec = load_robot(path)
    model = spec.load_model()
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    np.testing.assert_allclose(data.site("grasp").xpos, [0.47, 0.0, 0.9], atol=1e-9)
    assert mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, "side_cam") >= 0
    assert "grasp" not in (path.parent / "toy_arm.xml").read_text()
    with pytest.raises(ConfigError, match="ghost_body"):
        load_robot(toy_robot(extra_sites={"grasp": {"body": "ghost_body"}}))
