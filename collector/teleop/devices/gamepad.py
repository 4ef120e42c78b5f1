"""A gamepad through Linux evdev (/dev/input/eventN), read directly: no extra library needed.

Control scheme (Linux gamepad API codes, Xbox/PlayStation layouts alike):
    LB held   = deadman, moves the LEFT arm     RB held = deadman, moves the RIGHT arm (both: both arms)
    left stick  = forward/back, left/right       right stick = up/down (vertical), yaw (horizontal)
    d-pad       = wrist pitch / roll             LT / RT     = left / right gripper closure (analogue)
    B held      = clutch (robot holds, the virtual hands stop; re-anchors on release)
    X           = latch the active grippers closed / open      START = re-centre the hands
    SELECT      = dexterous hands: next grasp synergy of the active hands (the right one if none is active)
The device integrates stick velocities into virtual wrist poses and publishes them as an
OperatorInput, exactly as a VR headset's tracked wrists would arrive.
"""
from __future__ import annotations

import errno
import fcntl
import os
import re
import struct
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

from collector.errors import DeviceError
from collector.teleop.config import GamepadConfig
from collector.teleop.devices.base import DeviceContext, InputDevice, VirtualHands
from collector.teleop.devices.registry import register_device
from collector.teleop.messages import OperatorInput

# struct input_event on 64-bit Linux: struct timeval {long sec; long usec}; __u16 type; __u16 code; __s32 value.
INPUT_EVENT = struct.Struct("llHHi")
EV_SYN, EV_KEY, EV_ABS = 0x00, 0x01, 0x03
ABS_X, ABS_Y, ABS_Z, ABS_RX, ABS_RY, ABS_RZ, ABS_HAT0X, ABS_HAT0Y = 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x10, 0x11
BTN_SOUTH, BTN_EAST, BTN_NORTH, BTN_WEST = 0x130, 0x131, 0x133, 0x134
BTN_TL, BTN_TR, BTN_SELECT, BTN_START = 0x136, 0x137, 0x13A, 0x13B
BUTTON_NAMES = {BTN_SOUTH: "a", BTN_EAST: "b", BTN_NORTH: "x", BTN_WEST: "y", BTN_TL: "lb", BTN_TR: "rb",
                BTN_SELECT: "select", BTN_START: "start"}
# Fallback axis ranges (xpad) when the device cannot be asked (EVIOCGABS fails on non-evdev files).
DEFAULT_RANGES = {ABS_X: (-32768, 32767), ABS_Y: (-32768, 32767), ABS_RX: (-32768, 32767),
                  ABS_RY: (-32768, 32767), ABS_Z: (0, 1023), ABS_RZ: (0, 1023),
                  ABS_HAT0X: (-1, 1), ABS_HAT0Y: (-1, 1)}
PROC_DEVICES = Path("/proc/bus/input/devices")


def _eviocgabs(axis: int) -> int:
    # _IOR('E', 0x40 + axis, struct input_absinfo) with input_absinfo = 6 x __s32 (24 bytes).
    return (2 << 30) | (24 << 16) | (ord("E") << 8) | (0x40 + axis)


def find_gamepad(proc_devices: Path = PROC_DEVICES) -> str:
    """The event device of the first joystick-class input device, or DeviceError."""
    try:
        text = proc_devices.read_text()
    except OSError:
        raise DeviceError(f"gamepad: cannot read {proc_devices} (no Linux input subsystem here); "
                          "use --device keyboard or --device scripted") from None
    for block in text.strip().split("\n\n"):
        handlers = re.search(r"^H: Handlers=(.*)$", block, re.M)
        if handlers and re.search(r"\bjs\d+\b", handlers.group(1)):
            event = re.search(r"\b(event\d+)\b", handlers.group(1))
            if event:
                return f"/dev/input/{event.group(1)}"
    raise DeviceError("gamepad: no gamepad/joystick is connected (none listed in /proc/bus/input/devices); "
                      "plug one in, or use --device keyboard or --device scripted")


@register_device("gamepad", config=GamepadConfig)
class GamepadDevice(InputDevice):
    name = "gamepad"

    def __init__(self, cfg: GamepadConfig, path: Optional[str] = None):
        self.cfg = cfg
        self.path = path or (find_gamepad() if cfg.path == "auto" else cfg.path)
        try:
            self.fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            raise DeviceError(f"gamepad: {self.path} does not exist; is the gamepad connected?") from None
        except PermissionError:
            raise DeviceError(f"gamepad: no permission to read {self.path}; add your user to the 'input' group") from None
        except OSError as exc:
            raise DeviceError(f"gamepad: cannot open {self.path}: {exc.strerror}") from None
        self.ranges = {axis: self._query_range(axis, default) for axis, default in DEFAULT_RANGES.items()}
        self.axes: Dict[int, float] = {axis: 0.0 for axis in DEFAULT_RANGES}
        self.buttons: Dict[int, bool] = {code: False for code in BUTTON_NAMES}
        self.hands = VirtualHands()
        self.latched = {"left": False, "right": False}
        self._last_t: Optional[float] = None
        self._partial = b""
        self.events_read = 0

    def _query_range(self, axis: int, default: Tuple[int, int]) -> Tuple[int, int]:
        try:
            info = fcntl.ioctl(self.fd, _eviocgabs(axis), bytearray(24))
            _value, lo, hi, _fuzz, _flat, _res = struct.unpack("6i", bytes(info))
            return (lo, hi) if hi > lo else default
        except OSError:
            return default

    def start(self, context: DeviceContext) -> None:
        self._last_t = None

    def _normalise(self, axis: int, raw: int) -> float:
        lo, hi = self.ranges[axis]
        if axis in (ABS_Z, ABS_RZ):  # triggers: 0..1
            return float(np.clip((raw - lo) / (hi - lo), 0.0, 1.0))
        value = float(np.clip(2.0 * (raw - lo) / (hi - lo) - 1.0, -1.0, 1.0))
        if axis in (ABS_HAT0X, ABS_HAT0Y):
            return value
        return 0.0 if abs(value) < self.cfg.deadzone else value

    def read_events(self) -> None:
        while True:
            try:
                data = os.read(self.fd, INPUT_EVENT.size * 64)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno in (errno.ENODEV, errno.EIO):
                    raise DeviceError(f"gamepad: {self.path} was disconnected") from None
                raise DeviceError(f"gamepad: read failed on {self.path}: {exc.strerror}") from None
            if not data:
                break
            data = self._partial + data
            usable = len(data) - len(data) % INPUT_EVENT.size
            self._partial = data[usable:]
            for offset in range(0, usable, INPUT_EVENT.size):
                _sec, _usec, ev_type, code, value = INPUT_EVENT.unpack_from(data, offset)
                self.events_read += 1
                if ev_type == EV_ABS and code in self.axes:
                    self.axes[code] = self._normalise(code, value)
                elif ev_type == EV_KEY and code in self.buttons:
                    pressed = value != 0
                    if code == BTN_NORTH and pressed and not self.buttons[code]:
                        for side in self._active_sides():
                            self.latched[side] = not self.latched[side]
                    if code == BTN_START and pressed and not self.buttons[code]:
                        self.hands.recentre()
                    self.buttons[code] = pressed

    def _active_sides(self):
        return [s for s, code in (("left", BTN_TL), ("right", BTN_TR)) if self.buttons[code]]

    def poll(self, now: float) -> Optional[OperatorInput]:
        self.read_events()
        dt = 0.0 if self._last_t is None else min(max(now - self._last_t, 0.0), 0.1)
        self._last_t = now
        hands = self.hands
        active = self._active_sides()
        hands.enable = bool(active)
        hands.clutch = self.buttons[BTN_EAST]
        if active and not hands.clutch and dt > 0:
            ax = self.axes
            # Stick up is negative Y on Linux gamepads.
            velocity = self.cfg.linear_speed * np.array([-ax[ABS_Y], -ax[ABS_X], -ax[ABS_RY]])
            angular = self.cfg.angular_speed * np.array([ax[ABS_HAT0X], -ax[ABS_HAT0Y], -ax[ABS_RX]])
            for side in active:
                hands.move(side, velocity * dt, angular * dt)
        hands.closure["left"] = 1.0 if self.latched["left"] else self.axes[ABS_Z]
        hands.closure["right"] = 1.0 if self.latched["right"] else self.axes[ABS_RZ]
        names = {BUTTON_NAMES[c]: p for c, p in self.buttons.items()}
        msg = hands.message(now, self.name, buttons={"left": names, "right": names})
        if self.buttons[BTN_SELECT]:  # held SELECT is a thumbstick flick: one synergy step per press
            for side in active or ["right"]:
                msg.controller(side).thumbstick = np.array([1.0, 0.0])
        return msg

    def close(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass
