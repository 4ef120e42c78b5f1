"""The dexterous humanoid (robots/humanoid_dex): the same body as robots/humanoid with a multi-finger hand on
each arm, its `hands:` YAML, the named grasp synergies, touch sensors and a power grasp of the heavy preset."""
import shutil

import mujoco
import numpy as np
import pytest
import yaml

from collector.cli import main
from collector.errors import ConfigError, DataError
from collector.paths import robots_dir
from collector.robot import load_robot
from collector.sim.conditions import weight_presets
from collector.teleop.hand_synergies import HandSynergies

SIDES = ("left", "right")
FINGERS = ("thumb", "index", "middle", "ring", "little")
DEX_YAML = robots_dir() / "humanoid_dex" / "robot.yaml"


@pytest.fixture(scope="module")
def dex():
    return load_robot("humanoid_dex")


@pytest.fixture(scope="module")
def dex_env():
    """The dexterous humanoid at the pick-and-place table with the heavy weight preset."""
    from collector.sim import SimEnv

    env = SimEnv(robot="humanoid_dex", task="pick_place", theme="kitchen", lighting="bright", weight="heavy", seed=0)
    yield env
    env.close()


def _subtree_mass(model, root: str) -> float:
    root_id = model.body(root).id
    total = 0.0
    for body in range(model.nbody):
        walk = body
        while walk not in (0, root_id):
            walk = int(model.body_parentid[walk])
        if walk == root_id:
            total += float(model.body_mass[body])
    return total


def _in_hand_frame(env, side: str, points: np.ndarray) -> np.ndarray:
    hand = env.model.body(f"{side}_hand").id
    rotation = env.data.xmat[hand].reshape(3, 3)
    return (np.asarray(points) - env.data.xpos[hand]) @ rotation


def _tips(env, side: str) -> dict:
    return {finger: env.data.site(f"{side}_{finger}_tip").xpos.copy() for finger in FINGERS}


def _settle_synergy(env, synergy: str, amount: float = 1.0, seconds: float = 0.8) -> np.ndarray:
    env.reset(seed=0)
    synergies = HandSynergies(env.robot)
    q = env.robot.home_vector()
    for side in SIDES:
        q = synergies.apply(q, side, synergy, amount)
    env.set_command(q)
    env.step(int(round(seconds / env.control_dt)))
    return q


# --- the description ---------------------------------------------------------------------------------

def test_dex_loads_with_two_six_actuator_hands(dex):
    model = dex.load_model()
    for side in SIDES:
        hand = dex.hands[side]
        assert hand.group == f"{side}_hand" and len(hand.joints) == 6 == len(dex.groups[hand.group])
        assert list(hand.fingertips) == list(FINGERS) and set(hand.touch) == set(FINGERS) | {"palm"}
        assert len(hand.coupling) == 9 and set(hand.synergies) >= {"open", "power", "pinch", "tripod"}
        for sensor in hand.touch.values():
            assert model.sensor_type[model.sensor(sensor).id] == mujoco.mjtSensor.mjSENS_TOUCH
        # An adult hand weighs about 0.5 kg (its length: test_hand_length_is_an_adults).
        assert 0.4 < _subtree_mass(model, f"{side}_hand") < 0.6
    assert not dex.grippers  # nothing that drives a one-command gripper touches these hands


def test_dex_has_the_gripper_humanoids_body(dex, humanoid):
    """Everything of the gripper humanoid but its hands is in the dex model, unchanged (one shared MJCF)."""
    gripper_model, dex_model = humanoid.load_model(), dex.load_model()
    hand_joints = set(humanoid.grasping_joints())
    for joint in humanoid.command_joints:
        if joint in hand_joints:
            continue
        a, b = gripper_model.joint(joint), dex_model.joint(joint)
        np.testing.assert_array_equal(a.range, b.range)
        np.testing.assert_array_equal(gripper_model.body(a.bodyid[0]).pos, dex_model.body(b.bodyid[0]).pos)
        assert dex.home.get(joint, 0.0) == humanoid.home.get(joint, 0.0)
    for name in ("torso_geom", "left_upper_arm_geom", "right_forearm_geom", "head_geom"):
        np.testing.assert_array_equal(gripper_model.geom(name).size, dex_model.geom(name).size)
    assert [c.mjcf_camera for c in dex.cameras.values()] == [c.mjcf_camera for c in humanoid.cameras.values()]


def test_hand_length_is_an_adults(dex_env):
    _settle_synergy(dex_env, "open")
    for side in SIDES:
        tip = _in_hand_frame(dex_env, side, dex_env.data.site(f"{side}_middle_tip").xpos)
        assert 0.18 < -tip[2] < 0.21  # wrist joint to the open middle fingertip (~19 cm from the wrist crease)


def _copy_dex_yaml(tmp_path, edit) -> str:
    raw = yaml.safe_load(DEX_YAML.read_text())
    raw["mjcf"] = str(robots_dir() / "humanoid_dex" / raw["mjcf"])
    edit(raw)
    path = tmp_path / "robot.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return str(path)


def _set(path, value):
    def edit(raw):
        node = raw
        for key in path[:-1]:
            node = node[key]
        if value is _DELETE:
            del node[path[-1]]
        else:
            node[path[-1]] = value
    return edit


_DELETE = object()


@pytest.mark.parametrize("path, value, message", [
    (("hands", "right", "fingertips", "index"), "right_index_tipp", "right_index_tipp"),
    (("hands", "left", "palm"), "left_palm_center", "left_palm_center"),
    (("hands", "right", "touch", "thumb"), "right_thumb_tuoch", "right_thumb_tuoch"),
    (("hands", "right", "group"), "right_paw", "right_paw"),
    (("hands", "left", "coupling", "left_index_dip"), {"follows": "left_index_flexion", "ratio": 0.9}, "left_index_dip"),
    (("hands", "left", "coupling", "left_ring_pip"), {"follows": "left_middle_flexion", "ratio": 1.0}, "left_ring_pip"),
    (("hands", "left", "coupling", "left_indx_pip"), {"follows": "left_index_flexion", "ratio": 1.0}, "left_indx_pip"),
    (("hands", "right", "coupling", "right_index_pip"), {"follows": "right_index_pip", "ratio": 1.0}, "right_index_pip"),
    (("hands", "right", "synergies", "power", "right_pinky_flexion"), 1.0, "right_pinky_flexion"),
    (("hands", "right", "synergies", "power", "right_index_flexion"), 2.5, "right_index_flexion"),
    (("hands", "right", "synergies", "tripod"), _DELETE, "tripod"),
    (("hands", "left", "mirror_of"), "middle", "mirror_of"),
    (("hands", "left", "actuated"), ["left_thumb_rotation", "right_thumb_flexion"], "right_thumb_flexion"),
    (("hands", "left", "fingertips", "pinky"), "left_little_tip", "pinky"),
    (("hands", "right", "grasp"), "power", "grasp"),
    (("hands", "right", "group"), ["right_hand"], "group"),
    (("hands", "right", "mirror_signs"), [1, 1, 1, 1, 1, 1], "mirror_signs"),
    (("hands", "left", "mirror_signs"), [-1, 1, 1, 1, 1, 1], r"mirror_of right\)\.power\.left_thumb_rotation"),
])
def test_wrong_hand_yaml_fails_at_load_naming_it(tmp_path, path, value, message):
    with pytest.raises(ConfigError, match=message) as error:
        load_robot(_copy_dex_yaml(tmp_path, _set(path, value)))
    assert "\n" not in str(error.value) and "robot.yaml" in str(error.value)


def test_touch_must_name_a_touch_sensor_and_a_hand_needs_one_synergy_source(tmp_path):
    with pytest.raises(ConfigError, match="left_index_touch.*not in the MJCF|unknown sensor 'left_index_touch'"):
        load_robot(_copy_dex_yaml(tmp_path, _set(("hands", "right", "touch", "index"), "left_index_touchh")))
    both = _set(("hands", "left", "synergies"), {"open": {}, "power": {}, "pinch": {}, "tripod": {}})
    with pytest.raises(ConfigError, match="exactly one of synergies or mirror_of"):
        load_robot(_copy_dex_yaml(tmp_path, both))


def test_model_hash_follows_the_files_the_model_really_includes(tmp_path):
    """humanoid_dex.xml includes ../humanoid/humanoid.xml, whose hand slots MuJoCo fills from the dex folder:
    the hash must change with the dex hand files and not with the gripper hand files it does not load."""
    robots = tmp_path / "robots"
    for name in ("humanoid", "humanoid_dex"):
        shutil.copytree(robots_dir() / name, robots / name)
    dex_yaml = robots / "humanoid_dex" / "robot.yaml"
    original = load_robot(dex_yaml).model_hash
    assert original == load_robot("humanoid_dex").model_hash
    gripper_hand = robots / "humanoid" / "hand_left.xml"
    gripper_hand.write_text(gripper_hand.read_text().replace('mass="0.45"', 'mass="0.5"'))
    assert load_robot(dex_yaml).model_hash == original
    dex_hand = robots / "humanoid_dex" / "hand_left.xml"
    dex_hand.write_text(dex_hand.read_text().replace('mass="0.33"', 'mass="0.35"'))
    assert load_robot(dex_yaml).model_hash != original
    body = robots / "humanoid" / "humanoid.xml"
    body.write_text(body.read_text().replace('mass="1.8"', 'mass="1.9"', 1))
    changed = load_robot(dex_yaml)
    assert changed.model_hash != original and changed.load_model().body("left_upper_arm").mass[0] == pytest.approx(1.9)


# --- synergies -----------------------------------------------------------------------------------------

def test_synergy_amount_interpolates_from_home(dex):
    synergies = HandSynergies(dex)
    hand = dex.hands["right"]
    home = np.array([dex.home.get(j, 0.0) for j in hand.joints])
    power = np.array(hand.synergies["power"])
    np.testing.assert_allclose(synergies.targets("right", "power", 0.0), home)
    np.testing.assert_allclose(synergies.targets("right", "power", 0.5), (home + power) / 2)
    np.testing.assert_allclose(synergies.targets("right", "power", 7.0), power)  # clipped to 1
    q = synergies.apply(dex.home_vector(), "left", "pinch", 1.0)
    np.testing.assert_allclose(q[dex.group_slice("left_hand")], dex.hands["left"].synergies["pinch"])
    np.testing.assert_allclose(q[dex.group_slice("right_hand")], dex.home_vector()[dex.group_slice("right_hand")])
    for amount in (0.0, 0.3, 1.0):
        assert synergies.amount("right", "power", synergies.targets("right", "power", amount)) == pytest.approx(amount)
    assert synergies.amount("left", "power", synergies.targets("left", "open", 1.0)) == 0.0  # opening is not closing
    with pytest.raises(ConfigError, match="hook"):
        synergies.targets("left", "hook", 1.0)
    with pytest.raises(ConfigError, match="middle"):
        synergies.targets("middle", "power", 1.0)
    with pytest.raises(DataError, match="finite"):
        synergies.targets("left", "power", float("nan"))


def test_robot_without_hands_has_no_synergies(humanoid):
    with pytest.raises(ConfigError, match="no hands"):
        HandSynergies(humanoid)


@pytest.mark.parametrize("synergy", ["open", "power", "pinch", "tripod"])
def test_each_synergy_reaches_its_targets_in_the_sim(dex_env, synergy):
    env, robot = dex_env, dex_env.robot
    q = _settle_synergy(env, synergy)
    measured = env.joint_positions()
    for side in SIDES:
        hand_slice = robot.group_slice(f"{side}_hand")
        np.testing.assert_allclose(measured[hand_slice], q[hand_slice], atol=0.02)
        # The distal joints follow through the MJCF equalities, as the YAML's couplings say.
        hand = robot.hands[side]
        expected = hand.joint_positions(q[hand_slice])
        assert len(expected) == 15 and set(hand.passive_joints()) < set(expected)
        for joint, value in expected.items():
            assert env.data.joint(joint).qpos[0] == pytest.approx(value, abs=0.03), joint
        tips = _tips(env, side)
        thumb_index = np.linalg.norm(tips["thumb"] - tips["index"])
        if synergy == "power":
            flexion = [env.data.joint(f"{side}_{f}_flexion").qpos[0] for f in FINGERS[1:]]
            assert min(flexion) > 1.4
            assert env.data.joint(f"{side}_thumb_rotation").qpos[0] > 1.0
        elif synergy == "pinch":
            assert thumb_index < 0.015
        elif synergy == "tripod":
            assert thumb_index < 0.02 and np.linalg.norm(tips["thumb"] - tips["middle"]) < 0.03
        else:
            assert thumb_index > 0.09
            assert min(np.linalg.norm(tips[a] - tips[b]) for a in FINGERS for b in FINGERS if a < b) > 0.015


@pytest.mark.parametrize("synergy", ["power", "pinch"])
def test_left_hand_is_the_mirror_image_of_the_right(dex_env, synergy):
    _settle_synergy(dex_env, synergy, amount=0.7)
    mirror = np.array([1.0, -1.0, 1.0])
    right = _in_hand_frame(dex_env, "right", np.array(list(_tips(dex_env, "right").values())))
    left = _in_hand_frame(dex_env, "left", np.array(list(_tips(dex_env, "left").values())))
    np.testing.assert_allclose(left, right * mirror, atol=1e-3)
    # And the thumb is on the same side of both hands as seen by the robot: towards +x of each hand frame.
    assert left[0, 0] > 0.02 and right[0, 0] > 0.02


# --- touch and grasp ----------------------------------------------------------------------------------

def _touch(env, side: str) -> dict:
    return {place: float(env.data.sensor(sensor).data[0]) for place, sensor in env.robot.hands[side].touch.items()}


def _hold_in_hand(env, side: str, obj: str, synergy: str, amount: float, ramp_s: float = 0.4):
    """Hold `obj` at the hand's grasp centre while the synergy closes (as a person hands it over), then let go."""
    synergies = HandSynergies(env.robot)
    env.reset(seed=0)
    env.step(20)
    pos, quat = env.ee_pose(side)
    ramp = int(round(ramp_s / env.control_dt))
    for k in range(ramp + 10):
        env.task.set_free_pose(obj, pos, quat)
        env.set_command(synergies.apply(env.robot.home_vector(), side, synergy, amount * min(1.0, k / ramp)))
        env.step(1)
    return env.data.body(obj).xpos.copy()


def _press(env, side: str, place: str, obj: str = "ball", radius: float = 0.027) -> dict:
    """Press the ball onto one fingertip pad (fingers: from the palm side; thumb: over its tip) or the palm,
    and read every touch sensor of the hand."""
    data = env.data
    hand = env.model.body(f"{side}_hand").id
    palm_normal = data.xmat[hand].reshape(3, 3) @ np.array([0.0, -1.0 if side == "left" else 1.0, 0.0])
    if place == "palm":
        towards, centre = palm_normal, data.site(f"{side}_palm_centre").xpos + palm_normal * radius
    else:
        tip = data.site(f"{side}_{place}_tip").xpos.copy()
        towards = tip - data.body(f"{side}_{place}_distal").xpos if place == "thumb" else palm_normal
        towards = towards / np.linalg.norm(towards)
        centre = tip + towards * (radius + 0.004)
    env.task.set_free_pose(obj, centre)
    ball = env.model.body(obj).id
    # Push it into the pad with 2 N, its weight carried, for 0.1 s (a placed ball would bounce off or roll).
    data.xfrc_applied[ball, :3] = -2.0 * towards - env.model.body_mass[ball] * env.model.opt.gravity
    try:
        env.step(10)
    finally:
        data.xfrc_applied[ball] = 0.0
    return _touch(env, side)


def test_touch_sensors_read_zero_in_free_air_and_force_on_contact(dex_env):
    env = dex_env
    for synergy in ("open", "power"):
        _settle_synergy(env, synergy, seconds=0.4)
        for side in SIDES:
            assert all(value == 0.0 for value in _touch(env, side).values()), synergy
    for side in SIDES:
        for place in FINGERS + ("palm",):
            _settle_synergy(env, "open", seconds=0.3)
            touch = _press(env, side, place)
            assert 1.0 < touch[place] < 4.0, (side, place, touch)
            assert all(value == 0.0 for other, value in touch.items() if other != place), (side, place, touch)


@pytest.mark.parametrize("side, obj", [("left", "cube"), ("right", "cylinder"), ("left", "ball")])
def test_power_grasp_holds_the_heavy_preset_for_two_seconds(dex_env, side, obj):
    env = dex_env
    heavy = weight_presets()["heavy"]["mass_kg"] * (1 - weight_presets()["heavy"]["variation"])
    assert env.model.body(obj).mass[0] >= heavy - 1e-9
    start = _hold_in_hand(env, side, obj, "power", 1.0)
    assert env.task.touching_gripper(obj)  # the hand's geoms count as the gripper for the task's release check
    env.step(int(round(2.0 / env.control_dt)))
    assert start[2] - env.data.body(obj).xpos[2] < 0.02
    touch = _touch(env, side)
    assert touch["palm"] + touch["index"] + touch["middle"] + touch["ring"] > 5.0  # ~5 N of weight is carried
    forces = env.data.actuator_force[env.robot.actuator_indices(env.model)][env.robot.group_slice(f"{side}_hand")]
    assert np.max(np.abs(forces)) > 0.5  # the finger servos squeeze


def test_an_open_hand_does_not_hold_it(dex_env):
    """The counterpart: the same placement with the hand left at home lets the object fall."""
    env = dex_env
    start = _hold_in_hand(env, "left", "cube", "power", 0.0)
    env.step(int(round(0.5 / env.control_dt)))
    assert start[2] - env.data.body("cube").xpos[2] > 0.05
    assert not env.task.touching_gripper("cube")


# --- looking at it -------------------------------------------------------------------------------------

def test_cameras_see_the_fingers(dex_env):
    env, model = dex_env, dex_env.model
    _settle_synergy(env, "power", amount=0.5, seconds=0.3)
    finger_bodies = {side: {model.body(f"{side}_{f}_{link}").id for f in FINGERS[1:]
                            for link in ("proximal", "middle", "distal")} for side in SIDES}
    renderer = mujoco.Renderer(model, height=120, width=160)
    renderer.enable_segmentation_rendering()
    try:
        seen = {}
        for camera in ("head_left", "left_wrist_cam", "right_wrist_cam"):
            renderer.update_scene(env.data, camera=camera)
            ids = renderer.render()[..., 0]
            geoms = ids[ids >= 0]
            bodies = model.geom_bodyid[geoms]
            seen[camera] = {side: int(np.isin(bodies, list(b)).sum()) for side, b in finger_bodies.items()}
    finally:
        renderer.close()
    assert seen["head_left"]["left"] > 20 and seen["head_left"]["right"] > 20
    assert seen["left_wrist_cam"]["left"] > 200 and seen["right_wrist_cam"]["right"] > 200


def test_sim_command_runs_the_dex_robot(tmp_path, capsys):
    out = tmp_path / "dex.png"
    assert main(["sim", "--robot", "humanoid_dex", "--duration", "0.5", "--tile-width", "160",
                 "--cameras", "head,left_wrist,right_wrist", "--out", str(out)]) == 0
    assert out.stat().st_size > 10_000
    assert "humanoid_dex" not in capsys.readouterr().err
