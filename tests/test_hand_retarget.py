"""Hand-tracking retargeting (collector/teleop/hand_retarget.py) onto robots/humanoid_dex, from synthetic WebXR
hand poses (collector/teleop/hand_poses.py) for both hands, checked in real MuJoCo kinematics."""
import math
import time

import mujoco
import numpy as np
import pytest
import yaml

from collector.errors import ConfigError, DataError
from collector.robot import load_robot
from collector.teleop.hand_poses import POSES, hand_local, hand_skeleton, mirror_skeleton
from collector.teleop.hand_retarget import HandCalibration, HandRetargeter, RetargetSettings
from collector.teleop.messages import HAND_JOINT_INDEX, HandSkeleton
from collector.teleop.transforms import axis_angle_quat, quat_to_mat

SIDES = ("left", "right")
SETTLE_TICKS = 30


@pytest.fixture(scope="module")
def dex():
    return load_robot("humanoid_dex")


@pytest.fixture(scope="module")
def model(dex):
    return dex.load_model()


@pytest.fixture()
def retargeter(dex):
    return HandRetargeter(dex)


def _settle(retargeter, side, skeleton, ticks=SETTLE_TICKS):
    for _ in range(ticks):
        q = retargeter.solve(side, skeleton)
    return q


def _named(dex, side, q):
    return {joint.replace(f"{side}_", ""): value for joint, value in zip(dex.hands[side].joints, q)}


def _mujoco_tips(dex, model, side, q):
    """Fingertip sites in the world after setting the hand's joints (couplings included) and mj_kinematics."""
    data = mujoco.MjData(model)
    for joint, value in dex.hands[side].joint_positions(q).items():
        data.qpos[model.jnt_qposadr[model.joint(joint).id]] = value
    mujoco.mj_kinematics(model, data)
    return {finger: data.site(site).xpos.copy() for finger, site in dex.hands[side].fingertips.items()}


# --- the synthetic poses -------------------------------------------------------------------------------

def test_synthetic_hands_follow_webxr_frames_and_mirror_each_other():
    for pose in POSES:
        right = hand_skeleton("right", pose)
        left = hand_skeleton("left", pose)
        mirrored = mirror_skeleton(right)
        assert np.allclose(mirrored.positions, left.positions, atol=1e-12)
        # Quaternions double-cover rotations: compare the matrices.
        for a, b in zip(mirrored.orientations, left.orientations):
            assert np.allclose(quat_to_mat(a), quat_to_mat(b), atol=1e-9)
    for side, thumb_sign in (("right", -1.0), ("left", 1.0)):
        points, frames = hand_local(side, "open")
        thumb = points[HAND_JOINT_INDEX["thumb-tip"]]
        middle = points[HAND_JOINT_INDEX["middle-finger-tip"]]
        assert middle[2] < -0.15 and abs(middle[0]) < 0.02          # fingers along -Z of the wrist frame
        assert np.sign(thumb[0]) == thumb_sign                      # right thumb on -X, left on +X
        # A curled finger moves towards the palm (-Y, +Y being the back of the hand).
        fist, _ = hand_local(side, "fist")
        assert fist[HAND_JOINT_INDEX["index-finger-phalanx-intermediate"]][1] < -0.03
        # Every bone's joint frame has -Z along the bone, towards the tip.
        for base, tip in (("index-finger-phalanx-proximal", "index-finger-phalanx-intermediate"),
                          ("thumb-phalanx-proximal", "thumb-phalanx-distal")):
            bone = points[HAND_JOINT_INDEX[tip]] - points[HAND_JOINT_INDEX[base]]
            assert np.allclose(-frames[HAND_JOINT_INDEX[base]][:, 2], bone / np.linalg.norm(bone), atol=1e-9)
    pinch = hand_skeleton("right", "pinch")
    assert pinch.pinch_distance() < 0.015


# --- the model and the frames --------------------------------------------------------------------------

def test_finger_kinematics_match_mujoco(dex, model, retargeter):
    rng = np.random.default_rng(1)
    for side in SIDES:
        hand = dex.hands[side]
        low = np.array([dex.joint_ranges[j][0] for j in hand.joints])
        high = np.array([dex.joint_ranges[j][1] for j in hand.joints])
        for _ in range(5):
            q = rng.uniform(low, high)
            data = mujoco.MjData(model)
            for joint, value in hand.joint_positions(q).items():
                data.qpos[model.jnt_qposadr[model.joint(joint).id]] = value
            mujoco.mj_kinematics(model, data)
            palm = data.site(hand.palm)
            rotation = palm.xmat.reshape(3, 3)
            expected = np.array([(data.site(hand.fingertips[f]).xpos - palm.xpos) @ rotation
                                 for f in retargeter.fingers(side)])
            assert np.allclose(retargeter.fingertips(side, q), expected, atol=1e-9)


def test_frame_mapping_is_the_known_rotation_per_side(retargeter):
    # humanoid_dex: palm frame fingers -z, thumb +x on both hands, the right palm faces +y, the left -y.
    # WebXR wrist frame: fingers -Z, back of the hand +Y, right thumb -X, left thumb +X.
    expected = {"right": np.diag([-1.0, -1.0, 1.0]), "left": np.eye(3)}
    for side in SIDES:
        mapping = retargeter.frame_mapping(side)
        assert np.allclose(mapping @ mapping.T, np.eye(3), atol=1e-9) and np.isclose(np.linalg.det(mapping), 1.0)
        # The robot's tip sites sit 3 mm towards the pad, which tilts the fingers' line by ~2 degrees.
        angle = math.degrees(math.acos(np.clip((np.trace(mapping @ expected[side].T) - 1) / 2, -1, 1)))
        assert angle < 3.0, (side, angle)


def test_rotated_wrist_gives_the_same_targets(dex):
    """The whole hand turned 90 degrees in the tracking frame (about several axes): the same joint targets.
    A retargeter that ignored the wrist orientation (the field's thumb-off bug) fails this."""
    for side in SIDES:
        reference = _settle(HandRetargeter(dex), side, hand_skeleton(side, "pinch"))
        for axis in ((1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0)):
            rotation = quat_to_mat(axis_angle_quat(np.array(axis, dtype=float), math.pi / 2))
            turned = hand_skeleton(side, "pinch", wrist_rotation=rotation, wrist_position=(0.1, 1.3, -0.2))
            q = _settle(HandRetargeter(dex), side, turned)
            assert np.allclose(q, reference, atol=1e-6), (side, axis, q, reference)
        # The same positions with the wrist orientation left at identity: a different (wrong) answer,
        # so the assertion above can fail.
        rotation = quat_to_mat(axis_angle_quat(np.array([1.0, 0.0, 0.0]), math.pi / 2))
        turned = hand_skeleton(side, "pinch", wrist_rotation=rotation)
        stale = HandSkeleton(positions=turned.positions, orientations=np.tile([1.0, 0, 0, 0], (25, 1)))
        assert np.max(np.abs(_settle(HandRetargeter(dex), side, stale) - reference)) > 0.2


# --- the poses on the robot ----------------------------------------------------------------------------

FINGER_FLEXIONS = ("index_flexion", "middle_flexion", "ring_flexion", "little_flexion")


@pytest.mark.parametrize("side", SIDES)
def test_open_hand_opens_every_finger(dex, retargeter, side):
    q = _named(dex, side, _settle(retargeter, side, hand_skeleton(side, "open")))
    assert all(q[j] < 0.25 for j in FINGER_FLEXIONS), q
    assert q["thumb_flexion"] < 0.3 and q["thumb_rotation"] < 0.5, q


@pytest.mark.parametrize("side", SIDES)
def test_fist_flexes_every_finger_and_wraps_the_thumb(dex, retargeter, side):
    q = _named(dex, side, _settle(retargeter, side, hand_skeleton(side, "fist")))
    assert all(q[j] > 1.3 for j in FINGER_FLEXIONS), q
    assert q["thumb_flexion"] > 0.4 and q["thumb_rotation"] > 0.8, q


@pytest.mark.parametrize("side", SIDES)
def test_point_extends_only_the_index(dex, retargeter, side):
    q = _named(dex, side, _settle(retargeter, side, hand_skeleton(side, "point")))
    assert q["index_flexion"] < 0.25, q
    assert all(q[j] > 1.3 for j in FINGER_FLEXIONS[1:]), q


@pytest.mark.parametrize("side", SIDES)
def test_thumbs_up_extends_only_the_thumb(dex, retargeter, side):
    q = _named(dex, side, _settle(retargeter, side, hand_skeleton(side, "thumbs_up")))
    assert q["thumb_flexion"] < 0.3 and q["thumb_rotation"] < 0.4, q
    assert all(q[j] > 1.3 for j in FINGER_FLEXIONS), q


@pytest.mark.parametrize("side", SIDES)
def test_pinch_brings_thumb_and_index_tips_together_in_mujoco(dex, model, retargeter, side):
    q = _settle(retargeter, side, hand_skeleton(side, "pinch"))
    tips = _mujoco_tips(dex, model, side, q)
    gap = float(np.linalg.norm(tips["thumb"] - tips["index"]))
    assert gap < 0.015, gap
    # ... and the same targets on the open hand leave them apart (the check can fail).
    open_tips = _mujoco_tips(dex, model, side, _settle(retargeter, side, hand_skeleton(side, "open")))
    assert np.linalg.norm(open_tips["thumb"] - open_tips["index"]) > 0.06


def test_left_hand_gets_the_right_hands_targets_for_mirrored_poses(dex):
    """The left hand's joint axes are mirrored (+ flexes on both), so mirror-image poses give equal targets,
    and the hands' fingertips in MuJoCo are mirror images across each palm."""
    for pose in POSES:
        right = _settle(HandRetargeter(dex), "right", hand_skeleton("right", pose))
        left = _settle(HandRetargeter(dex), "left", mirror_skeleton(hand_skeleton("right", pose)))
        assert np.allclose(left, right, atol=1e-6), pose


def test_fingertip_error_after_scaling_on_the_test_poses(dex, retargeter):
    errors = []
    for side in SIDES:
        for pose in POSES:
            retargeter.reset()
            _settle(retargeter, side, hand_skeleton(side, pose))
            residual = retargeter.residual[side]
            assert residual.shape == (5,) and np.all(residual >= 0)
            errors.append(residual)
    mean_mm = 1000 * float(np.mean(errors))
    assert mean_mm <= 10.0, mean_mm


def test_residual_matches_the_targets_it_reports(dex, retargeter):
    skeleton = hand_skeleton("right", "point")
    q = _settle(retargeter, "right", skeleton, ticks=60)          # settled: the smoothed output = the solution
    targets = retargeter.fingertip_targets("right", skeleton)
    actual = np.linalg.norm(retargeter.fingertips("right", q) - targets, axis=1)
    assert np.allclose(retargeter.residual["right"], actual, atol=5e-4)


# --- limits, smoothing, calibration --------------------------------------------------------------------

def test_targets_stay_in_the_joint_limits_and_move_at_most_the_step_cap(dex):
    settings = RetargetSettings()
    retargeter = HandRetargeter(dex, settings)
    rng = np.random.default_rng(3)
    hand = dex.hands["right"]
    low = np.array([dex.joint_ranges[j][0] for j in hand.joints])
    high = np.array([dex.joint_ranges[j][1] for j in hand.joints])
    previous = retargeter.solve("right", hand_skeleton("right", "open"))
    for tick in range(60):
        pose = POSES[tick // 6 % len(POSES)]
        skeleton = hand_skeleton("right", pose, noise_m=0.02, rng=rng)   # 2 cm noise: wild input
        q = retargeter.solve("right", skeleton)
        assert np.all(np.isfinite(q)) and np.all(q >= low - 1e-12) and np.all(q <= high + 1e-12)
        assert np.max(np.abs(q - previous)) <= settings.max_step_rad + 1e-12
        previous = q


def test_smoothing_reaches_a_step_change_within_a_few_ticks(dex):
    retargeter = HandRetargeter(dex)
    open_q = _settle(retargeter, "right", hand_skeleton("right", "open"))
    fist = hand_skeleton("right", "fist")
    first = retargeter.solve("right", fist)
    assert np.max(np.abs(first - open_q)) <= 0.15 + 1e-12           # not a jump
    settled = _settle(HandRetargeter(dex), "right", fist)
    q = _settle(retargeter, "right", fist, ticks=25)
    assert np.allclose(q, settled, atol=0.02)


def test_calibration_scales_with_the_operators_hand(dex):
    retargeter = HandRetargeter(dex)
    nominal = dict(retargeter.calibrations["right"].finger_scales)
    big = retargeter.calibrate("right", hand_skeleton("right", "open", size=1.25))
    for finger, scale in big.finger_scales.items():
        assert scale == pytest.approx(nominal[finger] / 1.25, rel=1e-6)
    assert big.scale == pytest.approx(np.mean(list(nominal.values())) / 1.25, rel=1e-6)
    # Calibrated, a big operator's fist and pinch give the nominal operator's targets.
    for pose in ("fist", "pinch", "point"):
        reference = _settle(HandRetargeter(dex), "right", hand_skeleton("right", pose))
        retargeter.reset()
        assert np.allclose(_settle(retargeter, "right", hand_skeleton("right", pose, size=1.25)), reference,
                           atol=0.03), pose
    # Uncalibrated, the big open hand asks for fingertips beyond the robot's reach: calibration matters.
    retargeter.reset()
    _settle(retargeter, "right", hand_skeleton("right", "open", size=1.25))
    uncalibrated = HandRetargeter(dex)
    _settle(uncalibrated, "right", hand_skeleton("right", "open", size=1.25))
    calibrated_mm, uncalibrated_mm = (1000 * float(np.mean(r.residual["right"])) for r in (retargeter, uncalibrated))
    assert calibrated_mm < 5.0 and uncalibrated_mm > 15.0, (calibrated_mm, uncalibrated_mm)


def test_calibration_refuses_a_bent_hand_and_round_trips_through_a_config(dex, tmp_path):
    retargeter = HandRetargeter(dex)
    with pytest.raises(DataError, match="bent"):
        retargeter.calibrate("left", hand_skeleton("left", "fist"))
    calibration = retargeter.calibrate("left", hand_skeleton("left", "open", size=0.9))
    path = tmp_path / "operator.yaml"
    path.write_text(yaml.safe_dump({"hand_calibration": {"left": calibration.to_dict()}}))
    loaded = HandCalibration.from_dict(yaml.safe_load(path.read_text())["hand_calibration"]["left"])
    assert loaded == calibration
    restored = HandRetargeter(dex, calibrations={"left": loaded})
    assert restored.calibrations["left"].finger_scales == calibration.finger_scales
    for bad in ({"side": "left"}, {"side": "left", "finger_scales": {"index": "big"}},
                {"side": "left", "finger_scales": {"index": 50.0}}, {"side": "left", "finger_scales": {"toe": 1.0}}):
        with pytest.raises(ConfigError):
            HandCalibration.from_dict(bad)


def test_a_robot_without_hands_is_a_config_error():
    with pytest.raises(ConfigError, match="no hands"):
        HandRetargeter(load_robot("humanoid"))


def test_both_hands_retarget_fast(dex):
    """The budget is 1 ms p99 for both hands (benchmarks/bench_hands.py measures it); on a shared, loaded
    test machine only a generous bound on the median is asserted."""
    retargeter = HandRetargeter(dex)
    rng = np.random.default_rng(0)
    frames = [(hand_skeleton("right", pose, noise_m=0.002, rng=rng), hand_skeleton("left", pose, noise_m=0.002, rng=rng))
              for pose in POSES for _ in range(20)]
    times = []
    for right, left in frames:
        start = time.perf_counter()
        retargeter.solve("right", right)
        retargeter.solve("left", left)
        times.append(time.perf_counter() - start)
    assert float(np.median(times)) < 0.01


def test_the_vr_synthetic_client_sends_webxr_handed_hands(dex):
    """collector/teleop/vr/synthetic.py (the VR bridge's synthetic hand-tracking client) builds palm-down hands
    with identity joint orientations, so WebXR puts a right thumb on -X and a left thumb on +X; a hand of the
    wrong chirality makes the retargeter swing the robot thumb across the palm (the field's thumb bug)."""
    from collector.teleop.vr.synthetic import HAND_REST
    from collector.teleop.vr.synthetic import hand_skeleton as synthetic_hand

    for side, thumb_sign in (("right", -1.0), ("left", 1.0)):
        positions, orientations, radii = synthetic_hand(side, HAND_REST[side], 0.0)
        local = positions - positions[HAND_JOINT_INDEX["wrist"]]
        assert np.sign(local[HAND_JOINT_INDEX["thumb-tip"]][0]) == thumb_sign
        assert np.sign(local[HAND_JOINT_INDEX["pinky-finger-tip"]][0]) == -thumb_sign
        q = _named(dex, side, _settle(HandRetargeter(dex), side, HandSkeleton(positions, orientations, radii)))
        assert q["thumb_rotation"] < 0.6, q


@pytest.mark.parametrize("after", ["point", "pinch", "open"])
def test_a_fist_does_not_trap_the_fingers(dex, model, after):
    """From a fist, warm-started Gauss-Newton alone leaves a curled index curled (its target lies straight
    out, where the gradient at full flexion vanishes); the cold-start retry gets it out."""
    retargeter = HandRetargeter(dex)
    _settle(retargeter, "right", hand_skeleton("right", "fist"))
    q = _named(dex, "right", _settle(retargeter, "right", hand_skeleton("right", after)))
    expected = _named(dex, "right", _settle(HandRetargeter(dex), "right", hand_skeleton("right", after)))
    assert all(abs(q[j] - expected[j]) < 0.05 for j in q), (q, expected)
    assert q["index_flexion"] < 1.0, q
