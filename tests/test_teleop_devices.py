"""Keyboard (on a real pseudo-terminal), gamepad (real evdev byte stream through a FIFO), missing devices."""
import os
import threading

import numpy as np
import pytest

from collector.errors import DeviceError
from collector.teleop.config import load_teleop_config
from collector.teleop.devices import open_device
from collector.teleop.devices.base import NEUTRAL_WRIST
from collector.teleop.devices.gamepad import (ABS_RZ, ABS_X, ABS_Y, BTN_EAST, BTN_TR, EV_ABS, EV_KEY, EV_SYN,
                                              INPUT_EVENT, GamepadDevice, find_gamepad)
from collector.teleop.devices.keyboard import KeyboardDevice
from collector.teleop.messages import decode, encode

CFG = load_teleop_config()


def test_keyboard_on_a_pty_moves_the_virtual_wrist_and_toggles_enable():
    master, slave = os.openpty()
    kb = KeyboardDevice(CFG.devices.keyboard, fd=slave, echo_help=False)
    try:
        first = kb.poll(0.0)
        assert not first.enable
        os.write(master, b" www\tok")  # enable, 3 x forward on the right arm, switch to left, gripper, clutch
        msg = kb.poll(0.01)
        assert msg.enable and msg.clutch and msg.seq == 1
        # WebXR forward is -z: three 1 cm steps on the right wrist.
        np.testing.assert_allclose(msg.right_wrist.position, NEUTRAL_WRIST["right"] + [0, 0, -0.03], atol=1e-12)
        np.testing.assert_allclose(msg.left_wrist.position, NEUTRAL_WRIST["left"])
        assert msg.left_controller.trigger == 1.0 and msg.right_controller.trigger == 0.0
        os.write(master, b"w")  # clutch held: motion keys are ignored
        assert np.allclose(kb.poll(0.02).left_wrist.position, NEUTRAL_WRIST["left"])
        assert decode(encode(msg)).enable  # a keyboard message survives the wire form
    finally:
        kb.close()
        os.close(master)
        os.close(slave)


def test_keyboard_without_a_terminal_is_a_device_error():
    r, w = os.pipe()
    try:
        with pytest.raises(DeviceError, match="not a terminal"):
            KeyboardDevice(CFG.devices.keyboard, fd=r)
    finally:
        os.close(r)
        os.close(w)


def _events(*items):
    return b"".join(INPUT_EVENT.pack(0, 0, t, c, v) for t, c, v in items)


def test_gamepad_reads_linux_input_events(tmp_path):
    fifo = tmp_path / "event-joystick"
    os.mkfifo(fifo)
    # Open the writer first in a thread: opening a FIFO for writing blocks until a reader appears.
    holder = {}
    opener = threading.Thread(target=lambda: holder.setdefault("w", open(fifo, "wb", buffering=0)))
    opener.start()
    pad = GamepadDevice(CFG.devices.gamepad, path=str(fifo))
    opener.join(5)
    writer = holder["w"]
    try:
        pad.start(None)
        assert not pad.poll(0.0).enable
        # RB held (right arm, deadman), left stick pushed fully forward, RT half way; split mid-event.
        data = _events((EV_KEY, BTN_TR, 1), (EV_ABS, ABS_Y, -32768), (EV_ABS, ABS_X, 0), (EV_ABS, ABS_RZ, 512),
                       (EV_SYN, 0, 0))
        writer.write(data[:30])
        writer.write(data[30:])
        msg = pad.poll(0.1)
        assert msg.enable and not msg.clutch
        assert msg.right_controller.trigger == pytest.approx(512 / 1023)
        assert msg.right_controller.buttons["rb"] is True
        moved = pad.poll(0.2)  # 2 x 0.1 s at full speed forward (WebXR -z) since the events arrived
        delta = moved.right_wrist.position - NEUTRAL_WRIST["right"]
        np.testing.assert_allclose(delta, [0, 0, -CFG.devices.gamepad.linear_speed * 0.2], atol=1e-9)
        np.testing.assert_allclose(moved.left_wrist.position, NEUTRAL_WRIST["left"])
        writer.write(_events((EV_KEY, BTN_EAST, 1)))  # clutch: robot holds, hands stop
        held = pad.poll(0.3)
        assert held.clutch
        np.testing.assert_allclose(held.right_wrist.position, moved.right_wrist.position)
        writer.write(_events((EV_KEY, BTN_TR, 0)))
        assert not pad.poll(0.4).enable
        assert pad.events_read == 7
    finally:
        writer.close()
        pad.close()


def test_gamepad_discovery_and_missing_device(tmp_path):
    devices = tmp_path / "devices"
    devices.write_text(
        "I: Bus=0011 Vendor=0001 Product=0001 Version=ab41\nN: Name=\"AT Keyboard\"\n"
        "H: Handlers=sysrq kbd event0 leds\n\n"
        "I: Bus=0003 Vendor=045e Product=028e Version=0110\nN: Name=\"Microsoft X-Box 360 pad\"\n"
        "H: Handlers=event7 js0\n")
    assert find_gamepad(devices) == "/dev/input/event7"
    devices.write_text("I: Bus=0011\nN: Name=\"AT Keyboard\"\nH: Handlers=sysrq kbd event0 leds\n")
    with pytest.raises(DeviceError, match="no gamepad"):
        find_gamepad(devices)
    with pytest.raises(DeviceError, match="cannot read"):
        find_gamepad(tmp_path / "absent")
    with pytest.raises(DeviceError, match="does not exist"):
        GamepadDevice(CFG.devices.gamepad, path=str(tmp_path / "event99"))


def test_open_device_by_name():
    assert open_device("zmq", CFG) is None
    with pytest.raises(Exception, match="unknown input device"):
        open_device("joystick9000", CFG)
