"""A headset session of the scripted operator's tracked hands: page frames for the VR bridge, no headset needed.

The scripted operator (collector/teleop/devices/scripted.py) plans a task from the simulated scene of one seed
and then plays that plan open loop, so its hand-tracking mode can be written out as a session file ahead of
time and replayed into a running bridge (`collector vr replay`) while `collector teleop --device zmq` runs the
same seed: the robot does the task from hand tracking alone, through the bridge's real path (TLS WebSocket,
page protocol, ZMQ, retargeting). Poses are in the operator frame the bridge passes through (WebXR
local-floor); each frame carries the head and both hands' 25 joints, no controllers.
"""
from __future__ import annotations

import os
from typing import List, Optional, Tuple

from collector.teleop.messages import OperatorInput
from collector.teleop.vr.protocol import hand_to_wire, pose_to_wire

DEFAULT_RATE_HZ = 90.0  # WebXR hand tracking


def page_frame(seq: int, t: float, msg: OperatorInput) -> dict:
    """The page's frame message (device time t, s) carrying an OperatorInput's head and tracked hands."""
    hands = {}
    for side in ("left", "right"):
        hand = msg.hand(side)
        if hand is not None:
            hands[side] = hand_to_wire(hand.positions, hand.orientations, hand.radii)
    return {"type": "frame", "seq": seq, "t": t * 1000.0,
            "head": pose_to_wire(msg.head.position, msg.head.orientation), "controllers": {}, "hands": hands}


def scripted_hand_session(robot: str, task: str, seed: int, lighting: Optional[str] = None,
                          weight: Optional[str] = None, theme: Optional[str] = None, rate_hz: float = DEFAULT_RATE_HZ,
                          max_duration_s: float = 60.0) -> List[Tuple[float, dict]]:
    """(t, page frame) pairs at rate_hz of the scripted operator doing `task` in the scene of `seed`."""
    from collector.backends.sim import SimBackend
    from collector.teleop.config import load_teleop_config
    from collector.teleop.devices.base import DeviceContext
    from collector.teleop.devices.scripted import ScriptedOperator
    from collector.teleop.loop import TeleopLoop

    config = load_teleop_config()
    backend = SimBackend.create(robot=robot, task=task, render=False, control_hz=config.control.rate_hz)
    try:
        backend.reset(seed=seed, lighting=lighting, weight=weight, theme=theme)
        # The loop only lends the operator its retargeter and kinematics (what a live operator is mapped with).
        loop = TeleopLoop(backend, config=config, endpoint=f"inproc://scripted-session-{os.getpid()}-{id(backend)}",
                          bind=True)
        try:
            operator = ScriptedOperator(config.devices.scripted, hand_tracking=True)
            operator.start(DeviceContext(backend, loop.retargeter, loop.kin, loop.control_dt, seed))
            start, frames = backend.now(), []
            for seq in range(int(max_duration_s * rate_hz)):
                t = seq / rate_hz
                frames.append((t, page_frame(seq, t, operator.poll(start + t))))
                if operator.done:
                    break
            return frames
        finally:
            loop.close()
    finally:
        backend.close()
