"""SimEnv physics and tasks: holding and tracking, grasping, weights, task success from sim state."""
import json

import mujoco
import numpy as np
import pytest

from collector.errors import ConfigError, DataError
from collector.sim import SimEnv, lighting_presets, list_tasks, themes, weight_presets
from collector.sim.tasks.pick_place import OBJECTS


@pytest.fixture(scope="module")
def pour_env():
    env = SimEnv(task="pour", theme="workshop", lighting="dim", weight="medium", seed=1)
    yield env
    env.close()


def test_interface_basics(pick_env):
    env = pick_env
    env.reset(seed=0)
    n = len(env.robot.command_joints)
    assert env.physics_dt == pytest.approx(0.002)
    assert env.control_dt == pytest.approx(0.01)
    assert env.joint_positions().shape == env.joint_velocities().shape == env.joint_efforts().shape == (n,)
    np.testing.assert_allclose(env.joint_positions(), env.robot.home_vector(), atol=2e-3)
    assert env.time == 0.0
    env.step()
    assert env.time == pytest.approx(env.control_dt)
    assert set(list_tasks()) == {"pick_place", "pour"}
    assert {"bright", "dim", "warm", "cool", "side_lit", "back_lit", "low_light"} <= set(lighting_presets())
    assert {"light", "medium", "heavy"} <= set(weight_presets())
    assert len(themes()) >= 2


def test_arms_hold_home_under_gravity(pick_env):
    env = pick_env
    env.reset(seed=0)
    start = {side: env.ee_pose(side)[0] for side in ("left", "right")}
    env.set_command(env.robot.home_vector())
    env.step(200)  # 2 s
    for side in ("left", "right"):
        drift = np.linalg.norm(env.ee_pose(side)[0] - start[side])
        assert drift < 0.003, f"{side} hand drifted {drift * 1000:.1f} mm in 2 s"


def test_position_commands_are_tracked(pick_env):
    env = pick_env
    env.reset(seed=0)
    target = env.robot.home_vector()
    arm = env.robot.group_slice("right_arm")
    target[arm] += np.array([-0.3, -0.2, 0.3, -0.4, 0.5, -0.3, 0.2])
    target[env.robot.group_slice("head")] += [0.4, -0.3]
    applied = env.set_command(target)
    np.testing.assert_allclose(applied, target)
    env.step(150)
    error = np.abs(env.joint_positions() - target)
    assert error[arm].max() < 0.01, error[arm]
    assert error[env.robot.group_slice("head")].max() < 0.01


def test_command_validation_and_clipping(pick_env):
    env = pick_env
    n = len(env.robot.command_joints)
    with pytest.raises(DataError, match="shape"):
        env.set_command(np.zeros(n + 1))
    bad = env.robot.home_vector()
    bad[3] = np.nan
    with pytest.raises(DataError, match=env.robot.command_joints[3]):
        env.set_command(bad)
    too_far = env.robot.home_vector() + 100.0
    applied = env.set_command(too_far)
    np.testing.assert_allclose(applied, env.robot.upper_limits())
    env.set_command(env.robot.home_vector())


def test_gripper_closes_both_fingers(pick_env):
    env = pick_env
    env.reset(seed=0)
    q = env.robot.home_vector()
    q[env.robot.group_slice("left_hand")] = env.robot.gripper_command("left", 1.0)
    env.set_command(q)
    env.step(50)
    model, data = env.model, env.data
    finger_a, finger_b = env.robot.grippers["left"]["joints"]
    qa = data.qpos[model.jnt_qposadr[model.joint(finger_a).id]]
    qb = data.qpos[model.jnt_qposadr[model.joint(finger_b).id]]
    assert qa < 0.003 and abs(qa - qb) < 0.002


def _grasp_cube(env, weight):
    """Put the cube between the open left fingers, close them, then raise the arm. Returns the cube lift."""
    env.reset(seed=0, weight=weight)
    pos, quat = env.ee_pose("left")
    env.task.set_free_pose("cube", pos, quat)
    mujoco.mj_forward(env.model, env.data)
    q = env.robot.home_vector()
    q[env.robot.group_slice("left_hand")] = env.robot.gripper_command("left", 1.0)
    env.set_command(q)
    env.step(40)
    start = env.data.body("cube").xpos.copy()
    shoulder = env.robot.command_joints.index("left_shoulder_pitch")
    q[shoulder] -= 0.3  # raise the arm forward
    env.set_command(q)
    env.step(100)
    lift = env.data.body("cube").xpos[2] - start[2]
    hand_lift = env.ee_pose("left")[0][2] - pos[2]
    effort = abs(env.joint_efforts()[shoulder])
    return lift, hand_lift, effort


def test_grasped_object_is_carried_and_its_weight_is_felt(pick_env):
    light_lift, hand_lift, light_effort = _grasp_cube(pick_env, "light")
    heavy_lift, _, heavy_effort = _grasp_cube(pick_env, "heavy")
    assert hand_lift > 0.05
    assert light_lift == pytest.approx(hand_lift, abs=0.01)
    assert heavy_lift == pytest.approx(hand_lift, abs=0.015)  # the grip holds even the heavy preset
    # The shoulder carries the payload: ~0.45 kg more at ~0.4 m is ~1.8 N m more torque.
    assert heavy_effort - light_effort > 1.0


def test_weight_presets_change_object_masses_and_dynamics(pick_env):
    env = pick_env
    rises = {}
    for weight in ("light", "heavy"):
        conditions = env.reset(seed=2, weight=weight)
        masses = conditions["weights"]["masses_kg"]
        assert set(masses) == set(OBJECTS)
        for name, mass in masses.items():
            assert env.model.body_mass[env.model.body(name).id] == pytest.approx(mass)
        cube = env.model.body("cube").id
        z0 = env.data.xpos[cube][2]
        env.data.xfrc_applied[cube, 2] = 1.5  # the same upward push for both: 1.5 N for 0.1 s
        env.step(10)
        env.data.xfrc_applied[cube] = 0.0
        rises[weight] = env.data.xpos[cube][2] - z0
    assert rises["light"] > 0.05
    assert rises["heavy"] < 0.002
    light, heavy = weight_presets()["light"]["mass_kg"], weight_presets()["heavy"]["mass_kg"]
    assert light < heavy


def test_conditions_are_plain_complete_and_seeded(pick_env):
    env = pick_env
    a = env.reset(seed=5, lighting="warm", weight="heavy")
    assert json.loads(json.dumps(a)) == a
    assert a["task"] == "pick_place" and a["theme"] == "kitchen" and a["seed"] == 5
    assert a["lighting"]["preset"] == "warm" and a["weights"]["preset"] == "heavy"
    for light in a["lighting"]["lights"]:
        assert {"pos", "dir", "color", "intensity", "type", "castshadow"} <= set(light)
    assert "ambient" in a["lighting"] and a["object_layout"]["target"] in OBJECTS
    assert env.conditions == a
    b = env.reset(seed=5, lighting="warm", weight="heavy")
    assert b == a
    c = env.reset(seed=6)
    assert c["object_layout"] != a["object_layout"]
    assert c["lighting"]["lights"][0]["pos"] != a["lighting"]["lights"][0]["pos"]  # seeded variation
    assert env.reset()["seed"] == 7  # seed=None continues the sequence


def test_unknown_condition_names_fail_clearly(pick_env):
    before = pick_env.reset(seed=8)
    with pytest.raises(ConfigError, match="lighting preset 'disco'"):
        pick_env.reset(lighting="disco")
    assert pick_env.seed == 8 and pick_env.conditions == before  # a bad argument changes nothing
    with pytest.raises(ConfigError, match="weight preset 'feather'"):
        pick_env.reset(weight="feather")
    with pytest.raises(ConfigError, match="unknown task"):
        SimEnv(task="juggle")
    with pytest.raises(ConfigError, match="theme 'moon'"):
        SimEnv(theme="moon")
    with pytest.raises(ConfigError, match="particle_count"):
        SimEnv(task="pour", task_params={"particle_count": 10})


def test_pick_place_success_from_sim_state(pick_env):
    env = pick_env
    env.reset(seed=3)
    target = env.task.target
    assert env.task.success() is False
    grasp = env.task.grasp_targets()
    assert grasp["target_object"] == target
    assert set(grasp["objects"]) == set(OBJECTS)
    place = np.array(grasp["place"]["position"])
    env.task.set_free_pose(target, place)  # drop it into the tray from just above
    env.step(60)
    assert env.task.metrics()["in_tray"] is True
    assert env.task.success() is True
    # Another object in the tray does not count.
    env.reset(seed=3)
    other = next(name for name in OBJECTS if name != target)
    env.task.set_free_pose(other, np.array(env.task.grasp_targets()["place"]["position"]))
    env.step(60)
    assert env.task.success() is False


def test_pick_place_not_released_is_not_success(pick_env):
    env = pick_env
    env.reset(seed=4)
    target = env.task.target
    place = np.array(env.task.grasp_targets()["place"]["position"])
    env.task.set_free_pose(target, place)
    env.step(60)
    assert env.task.success()
    # Put the open left hand's fingers around the object: contact with a finger means not released.
    finger = env.model.geom(env.robot.grippers["left"]["joints"][0] + "_geom")
    pos = env.data.geom_xpos[finger.id]
    env.task.set_free_pose(target, pos)
    mujoco.mj_forward(env.model, env.data)
    assert env.task.touching_gripper(target)
    assert not env.task.success()


def test_pour_particles_counted_and_success(pour_env):
    env = pour_env
    env.reset(seed=1)
    metrics = env.task.metrics()
    assert metrics["particles_in_pitcher"] == 1.0 and metrics["particles_in_cup"] == 0.0
    assert env.task.success() is False
    assert set(env.task.object_poses()) == {"pitcher", "cup"}
    cup, _ = env.task.body_pose("cup")
    n = len(env.task.particle_names)
    moved = n // 2 - 2  # just under the 50 % threshold
    r = env.task.params["particle_radius"]
    for k, name in enumerate(env.task.particle_names[:moved]):
        layer, slot = divmod(k, 6)
        angle = slot * np.pi / 3
        env.task.set_particle_position(name, cup + [0.025 * np.cos(angle), 0.025 * np.sin(angle),
                                                   0.01 + r + layer * 2.2 * r])
    env.step(30)
    metrics = env.task.metrics()
    assert metrics["particles_in_cup"] == pytest.approx(moved / n)
    assert metrics["particles_in_pitcher"] == pytest.approx((n - moved) / n)
    assert env.task.success() is False
    for k, name in enumerate(env.task.particle_names[moved:moved + 4]):
        env.task.set_particle_position(name, cup + [0.0, 0.0, 0.04 + k * 2.2 * r])
    env.step(30)
    assert env.task.metrics()["particles_in_cup"] == pytest.approx((moved + 4) / n)
    assert env.task.success() is True


def test_pour_particles_stay_in_a_resting_pitcher_and_tipping_pours(pour_env):
    env = pour_env
    env.reset(seed=1)
    env.step(100)
    assert env.task.metrics()["particles_in_pitcher"] == 1.0
    # Turn the pitcher (and its contents) upside down 25 cm higher: the water falls out.
    pitcher = env.model.body("pitcher")
    pos, _ = env.task.body_pose("pitcher")
    flip = np.diag([1.0, -1.0, -1.0])  # 180 degrees about x
    centre = pos + [0.0, 0.0, 0.055]
    lifted = centre + [0.0, 0.0, 0.25]
    for name in env.task.particle_names:
        env.task.set_particle_position(name, lifted + flip @ (env.data.body(name).xpos - centre))
    env.task.set_free_pose("pitcher", lifted + flip @ (pos - centre), [0.0, 1.0, 0.0, 0.0])
    mujoco.mj_forward(env.model, env.data)
    assert env.task.metrics()["particles_in_pitcher"] == 1.0
    env.model.body_gravcomp[pitcher.id] = 1.0  # hold it up for the test
    env.step(40)
    env.model.body_gravcomp[pitcher.id] = 0.0
    assert env.task.metrics()["particles_in_pitcher"] == 0.0
    assert pour_env.conditions["weights"]["masses_kg"]["water_total"] > 0


def test_theme_change_rebuilds_scene(pick_env):
    env = SimEnv(task="pick_place", theme="kitchen", seed=0)
    try:
        kitchen_rgba = env.model.mat_rgba[env.model.material("scene_table_top").id].copy()
        conditions = env.reset(theme="office")
        assert conditions["theme"] == "office"
        office_rgba = env.model.mat_rgba[env.model.material("scene_table_top").id]
        assert not np.allclose(kitchen_rgba, office_rgba)
        env.step(5)
        assert env.task.success() is False
    finally:
        env.close()


def test_scene_builds_around_another_robot(tmp_path):
    """A user's own small arm (MJCF + YAML written here) gets a table, a task and cameras."""
    import yaml
    from helpers.toy_robots import TOY_ARM_XML, toy_yaml

    (tmp_path / "toy_arm.xml").write_text(TOY_ARM_XML)
    (tmp_path / "robot.yaml").write_text(yaml.safe_dump(toy_yaml()))
    env = SimEnv(robot=tmp_path / "robot.yaml", task="pick_place", theme="office", seed=0)
    try:
        assert env.robot.name == "toy_arm"
        assert env.model.body("scene_table").id > 0
        target = env.robot.home_vector() + [0.3, 0.0, 0.0]
        env.set_command(target)
        env.step(100)
        assert abs(env.joint_positions()[0] - target[0]) < 0.02
        image = env.render("tool")
        assert image.shape == (120, 160, 3) and image.std() > 1.0
        table_top = env.conditions["object_layout"]["objects"]["cube"]["pos"][2]
        assert table_top == pytest.approx(0.75 + 0.026, abs=1e-3)  # the toy's own table height
    finally:
        env.close()
