"""Retargeting maths: calibration, scaling, clutch re-anchoring, gripper closure, head, gesture deadman."""
import math

import numpy as np
import pytest

from collector.teleop.config import load_teleop_config
from collector.teleop.messages import HAND_JOINT_INDEX, N_HAND_JOINTS, ControllerState, HandSkeleton, OperatorInput, Pose
from collector.teleop.retarget import HeadMapping, Retargeter
from collector.teleop.transforms import axis_angle_quat, quat_angle, quat_mul

HOME = {"left": (np.array([0.35, 0.2, 1.1]), np.array([0.0, 1.0, 0.0, 0.0])),
        "right": (np.array([0.35, -0.2, 1.1]), np.array([0.0, 1.0, 0.0, 0.0]))}
NEUTRAL = {"left": np.array([-0.2, 1.1, -0.35]), "right": np.array([0.2, 1.1, -0.35])}


def make(**overrides):
    cfg = load_teleop_config(overrides=overrides)
    return Retargeter(cfg.retarget, cfg.input, HOME, HeadMapping(home_pan=0.0, home_tilt=0.5,
                                                                 pan_range=(-1, 1), tilt_range=(-0.5, 1.1)))


def msg(seq, left=None, right=None, enable=True, clutch=False, head=None, **kw):
    return OperatorInput(stamp=seq * 0.01, seq=seq, enable=enable, clutch=clutch, head=head,
                         left_wrist=Pose(NEUTRAL["left"] + (left if left is not None else 0)),
                         right_wrist=Pose(NEUTRAL["right"] + (right if right is not None else 0)), **kw)


def no_current():
    raise AssertionError("the first engagement must calibrate to home, not ask for the current pose")


def test_first_engagement_calibrates_neutral_to_home_and_axes_map_webxr_to_robot():
    rt = make()
    out = rt.update(msg(0), no_current)
    for side in ("left", "right"):
        np.testing.assert_allclose(out.targets[side][0], HOME[side][0])
        assert quat_angle(out.targets[side][1], HOME[side][1]) < 1e-9
    # WebXR: -z forward, -x... +y up. Robot: +x forward, +z up, +y left.
    out = rt.update(msg(1, right=np.array([0.0, 0.05, -0.10])), no_current)
    np.testing.assert_allclose(out.targets["right"][0], HOME["right"][0] + [0.10, 0.0, 0.05], atol=1e-12)
    out = rt.update(msg(2, left=np.array([-0.03, 0.0, 0.0])), no_current)  # operator's left = robot +y
    np.testing.assert_allclose(out.targets["left"][0], HOME["left"][0] + [0.0, 0.03, 0.0], atol=1e-12)


def test_workspace_scaling_per_axis():
    rt = make(retarget={"scale": [2.0, 1.0, 0.5]})
    rt.update(msg(0), no_current)
    out = rt.update(msg(1, right=np.array([0.01, 0.1, -0.1])), no_current)
    np.testing.assert_allclose(out.targets["right"][0] - HOME["right"][0], [0.2, -0.01, 0.05], atol=1e-12)


def test_wrist_rotation_is_applied_in_the_robot_frame():
    rt = make()
    rt.update(msg(0), no_current)
    # Operator turns the right wrist 30 degrees about WebXR +y (up) = robot +z.
    turned = OperatorInput(stamp=0.1, seq=1, enable=True, left_wrist=Pose(NEUTRAL["left"]),
                           right_wrist=Pose(NEUTRAL["right"], axis_angle_quat([0, 1, 0], math.radians(30))))
    out = rt.update(turned, no_current)
    expected = quat_mul(axis_angle_quat([0, 0, 1], math.radians(30)), HOME["right"][1])
    assert quat_angle(out.targets["right"][1], expected) < 1e-9


def test_clutch_reanchors_without_a_jump():
    rt = make()
    rt.update(msg(0), no_current)
    rt.update(msg(1, right=np.array([0, 0, -0.1])), no_current)  # robot right hand +10 cm forward
    robot_now = {"left": HOME["left"], "right": (HOME["right"][0] + [0.1, 0, 0], HOME["right"][1])}
    held = rt.update(msg(2, right=np.array([0, 0, 0.2]), clutch=True), lambda: robot_now)
    assert not held.engaged and held.targets["right"] is None
    # Released far from where the clutch was pressed: the robot stays put...
    out = rt.update(msg(3, right=np.array([0, 0, 0.2])), lambda: robot_now)
    np.testing.assert_allclose(out.targets["right"][0], robot_now["right"][0], atol=1e-12)
    # ...and further motion is relative to the new anchor.
    out = rt.update(msg(4, right=np.array([0, 0, 0.15])), lambda: robot_now)
    np.testing.assert_allclose(out.targets["right"][0], robot_now["right"][0] + [0.05, 0, 0], atol=1e-12)


def hand(pinch_gap, fist=False):
    positions = np.zeros((N_HAND_JOINTS, 3))
    positions[:, 2] = -0.08  # fingers out in front of the wrist
    positions[HAND_JOINT_INDEX["wrist"]] = 0.0
    positions[HAND_JOINT_INDEX["middle-finger-metacarpal"]] = [0, 0, -0.03]
    positions[HAND_JOINT_INDEX["thumb-tip"]] = [-pinch_gap / 2, 0, -0.1]
    positions[HAND_JOINT_INDEX["index-finger-tip"]] = [pinch_gap / 2, 0, -0.1]
    if fist:
        for tip in ("index-finger-tip", "middle-finger-tip", "ring-finger-tip", "pinky-finger-tip"):
            positions[HAND_JOINT_INDEX[tip]] = [0, -0.02, -0.03]
    return HandSkeleton(positions, np.tile([1.0, 0, 0, 0], (N_HAND_JOINTS, 1)))


def test_gripper_from_trigger_or_pinch():
    rt = make()
    m = msg(0, left_controller=ControllerState(trigger=0.7), right_hand=hand(0.08))
    out = rt.update(m, no_current)
    assert out.gripper["left"] == pytest.approx(0.7)
    assert out.gripper["right"] == pytest.approx(0.0)
    m = msg(1, right_hand=hand(0.015))
    assert rt.update(m, no_current).gripper["right"] == pytest.approx(1.0)
    mid = (0.08 + 0.015) / 2
    assert rt.update(msg(2, right_hand=hand(mid)), no_current).gripper["right"] == pytest.approx(0.5)
    assert rt.update(msg(3), no_current).gripper["left"] is None  # nothing to read: keep


def test_head_yaw_and_pitch_drive_pan_and_tilt():
    rt = make()
    rt.update(msg(0, head=Pose([0, 1.6, 0])), no_current)
    left_turn = Pose([0, 1.6, 0], axis_angle_quat([0, 1, 0], 0.3))  # WebXR +y rotation = look left
    out = rt.update(msg(1, head=left_turn), no_current)
    assert out.head[0] == pytest.approx(0.3) and out.head[1] == pytest.approx(0.5)
    look_down = Pose([0, 1.6, 0], axis_angle_quat([1, 0, 0], -0.2))  # WebXR -x rotation tips -z down
    out = rt.update(msg(2, head=look_down), no_current)
    assert out.head[0] == pytest.approx(0.0, abs=1e-9) and out.head[1] == pytest.approx(0.7)
    far = Pose([0, 1.6, 0], axis_angle_quat([0, 1, 0], 1.5))
    assert rt.update(msg(3, head=far), no_current).head[0] == pytest.approx(1.0)  # clipped to the joint range


def test_gesture_deadman_for_hands_only_tracking():
    rt = make(input={"deadman": "gesture", "gesture": "hands_tracked"})
    both = msg(0, enable=False, left_hand=hand(0.05), right_hand=hand(0.05))
    assert rt.update(both, no_current).engaged
    one = msg(1, enable=True, left_hand=hand(0.05))
    assert not rt.update(one, no_current).enable
    rt = make(input={"deadman": "gesture", "gesture": "left_fist"})
    assert rt.update(msg(0, enable=False, left_hand=hand(0.05, fist=True)), no_current).enable
    assert not rt.update(msg(1, enable=True, left_hand=hand(0.05)), no_current).enable


def test_deadman_released_gives_no_targets():
    rt = make()
    out = rt.update(msg(0, enable=False), no_current)
    assert not out.engaged and all(t is None for t in out.targets.values()) and out.head is None
