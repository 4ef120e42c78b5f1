"""The page protocol: parsing and checking page messages, conversion to the teleop wire form, session files."""
import itertools
import json

import numpy as np
import pytest

from collector.errors import ConfigError, DataError
from collector.teleop.messages import HAND_JOINTS, decode, encode
from collector.teleop.vr.controls import ControlMapper
from collector.teleop.vr.converter import FrameConverter
from collector.teleop.vr.protocol import (
    MAX_TEXT_MESSAGE_BYTES,
    Control,
    Hello,
    PoseFrame,
    Pong,
    pack_camera_frame,
    parse_client_message,
    unpack_camera_frame,
)
from collector.teleop.vr.recording import load_session, write_session
from collector.teleop.vr.synthetic import hand_skeleton, page_frame, synthetic_session


def _frame(**overrides):
    base = {"type": "frame", "seq": 3, "t": 1500.0, "head": [0.1, 1.6, -0.2, 0.0, 0.0, 0.0, 1.0]}
    base.update(overrides)
    return json.dumps(base)


def test_frame_poses_convert_from_webxr_xyzw_to_wxyz():
    half = np.sqrt(0.5)
    msg = parse_client_message(_frame(head=[0.1, 1.6, -0.2, 0.0, half, 0.0, half]))
    assert isinstance(msg, PoseFrame)
    assert msg.seq == 3 and msg.device_t == pytest.approx(1.5)  # milliseconds -> seconds
    np.testing.assert_allclose(msg.head.position, [0.1, 1.6, -0.2])
    np.testing.assert_allclose(msg.head.orientation, [half, 0.0, half, 0.0])


def test_controller_buttons_are_named_by_handedness_and_thumbstick_read_from_axes_2_3():
    buttons = [[1, 0.8], [1, 1.0], [0, 0.0], [1, 1.0], [1, 1.0], [0, 0.0]]
    frame = _frame(controllers={
        "left": {"pose": [-0.2, 1.1, -0.3, 0, 0, 0, 1], "buttons": buttons, "axes": [0, 0, 0.5, -0.25]},
        "right": {"pose": None, "buttons": buttons, "axes": [0.1, 0.2]},
    })
    msg = parse_client_message(frame)
    left, right = msg.controllers["left"], msg.controllers["right"]
    assert left.state.trigger == pytest.approx(0.8) and left.state.grip == 1.0
    assert left.state.buttons == {"trigger": True, "grip": True, "thumbstick": True, "x": True, "y": False}
    assert right.state.buttons["a"] and not right.state.buttons["b"] and "x" not in right.state.buttons
    np.testing.assert_allclose(left.state.thumbstick, [0.5, -0.25])
    np.testing.assert_allclose(right.state.thumbstick, [0.1, 0.2])  # two-axis gamepads: the stick is 0,1
    assert right.pose is None  # tracking lost: no pose, buttons still count


def test_hands_carry_25_joints_in_webxr_order():
    frame = page_frame(0, 0.0)
    msg = parse_client_message(json.dumps(frame))
    hand = msg.hands["left"]
    assert hand.positions.shape == (25, 3) and hand.radii.shape == (25,)
    positions, _, _ = hand_skeleton("left", np.array([-0.2, 1.1, -0.35]), 0.0)
    np.testing.assert_allclose(hand.positions, positions)
    np.testing.assert_allclose(hand.joint("wrist"), [-0.2, 1.1, -0.35])
    assert len(HAND_JOINTS) == 25


def test_other_message_types():
    assert parse_client_message('{"type":"hello","v":1,"role":"watch","client":"x","xr":"none","t":5}') == \
        Hello(role="watch", client="x", xr="none", device_t=0.005)
    assert parse_client_message('{"type":"control","action":"stop","outcome":"success"}') == Control("stop", "success")
    assert parse_client_message('{"type":"pong","id":4,"t":1000}') == Pong(4, 1.0)


@pytest.mark.parametrize("text, needle", [
    ("[1, 2]", "expected an object"),
    ('{"type": 5}', "unknown message type"),
    ('{"type":"hello","v":2}', "protocol version 2"),
    ('{"type":"hello","v":1,"role":"admin"}', "hello.role"),
    ('{"type":"control","action":"explode"}', "control.action"),
    ('{"type":"control","action":"start","outcome":"meh"}', "control.outcome"),
    ('{"type":"pong","id":true,"t":1}', "pong.id"),
    (_frame(seq=-1), "frame.seq"),
    (_frame(seq=1.5), "frame.seq"),
    (_frame(t="now"), "frame.t"),
    (_frame(t=1e400), "non-finite"),
    (_frame(head=[0, 1.6, 0, 0, 0, 0, 1, 9]), "expected a list of 7"),
    (_frame(head=[0, 1.6, 0, 0, 0, 0, True]), "not a number"),
    (_frame(head={"p": [0, 0, 0]}), "expected a list of 7"),
    (_frame(controllers={"left": {"buttons": [[1, 2.0]]}}), "buttons[0]"),
    (_frame(controllers={"left": {"buttons": [[1, 1]] * 17}}), "at most 16"),
    (_frame(controllers={"left": {"axes": [0, 0, 1.5, 0]}}), "outside [-1, 1]"),
    (_frame(hands={"left": {"joints": [0.0] * 174}}), "expected a list of 175"),
    (_frame(hands={"left": {"joints": [0, 1, 0, 0, 0, 0, 2] * 25}}), "unit quaternion"),
    (_frame(hands="both"), "expected an object"),
])
def test_bad_messages_name_the_problem(text, needle):
    with pytest.raises(DataError, match=None) as err:
        parse_client_message(text)
    assert needle in str(err.value)


def test_oversized_message_is_rejected_before_parsing():
    with pytest.raises(DataError, match="exceeds"):
        parse_client_message(" " * (MAX_TEXT_MESSAGE_BYTES + 1))


def test_camera_frames_round_trip_and_truncation_is_detected():
    packed = pack_camera_frame("head_left", "left", 12.5, 7, 640, 480, b"\xff\xd8jpegbytes")
    header, jpeg = unpack_camera_frame(packed)
    assert header == {"name": "head_left", "eye": "left", "t": 12.5, "seq": 7, "w": 640, "h": 480}
    assert jpeg == b"\xff\xd8jpegbytes"
    with pytest.raises(DataError):
        unpack_camera_frame(packed[:10])


def test_converted_inputs_survive_the_teleop_wire_form():
    converter = FrameConverter(itertools.count(100), ControlMapper())
    frame = parse_client_message(json.dumps(page_frame(0, 0.0, hands=True, controllers=True)))
    converter.accept_seq(frame.seq)
    msg, requests = converter.convert(frame, stamp=49.99)
    assert requests == []
    back = decode(encode(msg))
    assert back.seq == 100 and back.source == "vr" and back.enable
    np.testing.assert_allclose(back.left_hand.positions, frame.hands["left"].positions)
    np.testing.assert_allclose(back.left_wrist.position, frame.controllers["left"].pose.position)
    assert back.stamp == 49.99
    with pytest.raises(DataError, match="duplicate or reordered"):
        converter.accept_seq(frame.seq)


def test_hand_wrist_is_the_wrist_target_without_controllers():
    converter = FrameConverter(itertools.count(), ControlMapper())
    frame = parse_client_message(json.dumps(page_frame(0, 0.0, hands=True)))
    msg, _ = converter.convert(frame, 10.0)
    np.testing.assert_allclose(msg.right_wrist.position, frame.hands["right"].joint("wrist"))
    assert msg.enable  # hands-only: tracked hands and head engage the deadman
    release = converter.release(10.1)
    assert not release.enable and release.seq == msg.seq + 1


def test_session_files_round_trip_and_bad_lines_are_named(tmp_path):
    session = synthetic_session(0.5, rate_hz=90)
    path = write_session(tmp_path / "s.jsonl", session)
    loaded = load_session(path)
    assert len(loaded) == 45
    assert [t for t, _ in loaded] == pytest.approx([t for t, _ in session], abs=1e-6)
    assert json.loads(loaded[3][1]) == session[3][1]
    lines = path.read_text().splitlines()
    lines[5] = json.dumps({"t": 0.045, "msg": '{"type":"frame","seq":1,"t":1,"head":[1,2]}'})
    path.write_text("\n".join(lines))
    with pytest.raises(DataError, match=r"s.jsonl:6: .*expected a list of 7"):
        load_session(path)
    with pytest.raises(ConfigError, match="already exists"):
        write_session(path, session)  # an earlier recording is never overwritten
    (tmp_path / "x.jsonl").write_text("hello\n")
    with pytest.raises(DataError, match="not a collector-vr-session"):
        load_session(tmp_path / "x.jsonl")
