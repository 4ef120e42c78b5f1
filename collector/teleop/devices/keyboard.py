"""Keyboard teleop in a terminal: a quick try without any hardware.

A terminal cannot report how long a key is held (only auto-repeat), so the deadman is a
toggle (space) here, not a hold-to-run button; everything else is a fixed step per key press.

    w/s forward/back   a/d left/right   r/f up/down   q/e yaw   t/g pitch   z/c roll
    tab switch arm     o toggle gripper  space toggle enable (deadman)   k hold clutch toggle
    h re-centre hands  x disable         p take over from / hand back to a policy (collect --policy)
    n next grasp synergy of the current hand (dexterous hands: open, power, pinch, tripod; o closes it)
"""
from __future__ import annotations

import os
import select
import sys
import termios
import tty
from typing import Optional

import numpy as np

from collector.errors import DeviceError
from collector.teleop.config import KeyboardConfig
from collector.teleop.devices.base import DeviceContext, InputDevice, VirtualHands
from collector.teleop.devices.registry import register_device
from collector.teleop.messages import OperatorInput

HELP = __doc__.split("\n\n", 2)[2]

# key -> (translation direction in forward/left/up, rotation axis in forward/left/up)
MOTION_KEYS = {
    "w": ((1, 0, 0), None), "s": ((-1, 0, 0), None),
    "a": ((0, 1, 0), None), "d": ((0, -1, 0), None),
    "r": ((0, 0, 1), None), "f": ((0, 0, -1), None),
    "q": (None, (0, 0, 1)), "e": (None, (0, 0, -1)),
    "t": (None, (0, 1, 0)), "g": (None, (0, -1, 0)),
    "z": (None, (1, 0, 0)), "c": (None, (-1, 0, 0)),
}


@register_device("keyboard", config=KeyboardConfig)
class KeyboardDevice(InputDevice):
    name = "keyboard"

    def __init__(self, cfg: KeyboardConfig, fd: Optional[int] = None, echo_help: bool = True):
        self.cfg = cfg
        if fd is None:
            try:
                fd = sys.stdin.fileno()
            except (AttributeError, ValueError, OSError):
                raise DeviceError("keyboard: there is no standard input; run in a terminal or use --device scripted") from None
        if not os.isatty(fd):
            raise DeviceError("keyboard: standard input is not a terminal; run `collector teleop --device keyboard` "
                              "in an interactive terminal, or use --device scripted")
        self.fd = fd
        try:
            self._saved = termios.tcgetattr(fd)
            tty.setcbreak(fd)  # keys arrive one by one, unechoed; Ctrl-C still interrupts
        except termios.error as exc:
            raise DeviceError(f"keyboard: cannot switch the terminal to key-by-key input: {exc}") from None
        self.hands = VirtualHands()
        self.side = "right"
        self._echo_help = echo_help
        self.keys_read = 0
        self.takeover_press = False  # `p` was pressed: the next message holds the takeover button
        self.synergy_press = False  # `n` was pressed: the next message flicks the current side's thumbstick

    def start(self, context: DeviceContext) -> None:
        if self._echo_help:
            print(HELP, file=sys.stderr)

    def _read_keys(self) -> str:
        chunks = []
        while select.select([self.fd], [], [], 0)[0]:
            data = os.read(self.fd, 64)
            if not data:
                break
            chunks.append(data)
        text = b"".join(chunks).decode("utf-8", errors="ignore")
        self.keys_read += len(text)
        return text

    def handle(self, key: str) -> None:
        hands = self.hands
        if key in MOTION_KEYS:
            translation, rotation = MOTION_KEYS[key]
            if not hands.clutch:
                hands.move(self.side,
                           np.zeros(3) if translation is None else self.cfg.step_m * np.array(translation, float),
                           None if rotation is None else self.cfg.step_rad * np.array(rotation, float))
        elif key == "\t":
            self.side = "left" if self.side == "right" else "right"
        elif key == "o":
            hands.closure[self.side] = 0.0 if hands.closure[self.side] > 0.5 else 1.0
        elif key == " ":
            hands.enable = not hands.enable
        elif key == "x":
            hands.enable = False
        elif key == "k":
            hands.clutch = not hands.clutch
        elif key == "h":
            hands.recentre()
        elif key == "p":
            self.takeover_press = True
        elif key == "n":
            self.synergy_press = True

    def poll(self, now: float) -> Optional[OperatorInput]:
        for key in self._read_keys():
            self.handle(key)
        # A message every tick keeps the input fresh while the operator is simply not typing.
        # A terminal reports presses, not holds: `p` holds the takeover button for one message.
        buttons = {"right": {"menu": True}} if self.takeover_press else None
        self.takeover_press = False
        msg = self.hands.message(now, self.name, buttons=buttons)
        if self.synergy_press:  # a thumbstick flick for one message selects the next synergy (hand_drive.py)
            msg.controller(self.side).thumbstick = np.array([1.0, 0.0])
            self.synergy_press = False
        return msg

    def close(self) -> None:
        try:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
        except termios.error:
            pass
