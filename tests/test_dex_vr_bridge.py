"""Dexterous hands through the VR bridge (issue 16): a headset client sends the scripted operator's hands as
tracked 25-joint skeletons (no controllers) over the real TLS WebSocket; the bridge publishes them on ZMQ; the
teleop loop retargets them onto robots/humanoid_dex's fingers and arms, and pick-and-place and pour succeed in
the simulator.

The operator is the scripted one in its hand-tracking mode: it plans from the simulated scene and shapes its
hands from rest towards the plan's grasp (hand_poses.GRASP_POSES), as a person wearing the headset would. Its
frames are stamped and paced on the wall clock, like a headset's.
"""
import asyncio
import threading
import time

import numpy as np
import pytest

from collector.backends.sim import SimBackend
from collector.teleop.devices.base import DeviceContext
from collector.teleop.devices.scripted import ScriptedOperator
from collector.teleop.loop import TeleopLoop
from collector.teleop.config import load_teleop_config
from collector.teleop.vr.client import PageClient
from collector.teleop.vr.protocol import hand_to_wire, pose_to_wire
from helpers.vr import run, running_server

pytestmark = pytest.mark.slow
FRAME_HZ = 90.0


def page_frame(seq: int, t: float, msg) -> dict:
    """The page's frame message for one OperatorInput of hand-tracking mode (WebXR frame = operator frame)."""
    hands = {}
    for side in ("left", "right"):
        hand = msg.hand(side)
        if hand is not None:
            hands[side] = hand_to_wire(hand.positions, hand.orientations, hand.radii)
    return {"type": "frame", "seq": seq, "t": t * 1000.0, "head": pose_to_wire(msg.head.position, msg.head.orientation),
            "controllers": {}, "hands": hands}


@pytest.mark.parametrize("task, seed, synergy", [("pick_place", 3004, "tripod"), ("pour", 3000, "power")])
def test_the_scripted_operators_tracked_hands_through_the_vr_bridge_do_the_task_with_the_fingers(tmp_path, task, seed,
                                                                                                 synergy):
    config = load_teleop_config()
    backend = SimBackend.create(robot="humanoid_dex", task=task, render=False, control_hz=config.control.rate_hz)
    backend.reset(seed=seed, lighting="bright", weight="light")
    with running_server(tmp_path / "cert") as (server, info, thread):
        loop = TeleopLoop(backend, config=config, endpoint=server.config.input_endpoint, bind=False)
        thread.call(server.wait_for_subscribers, 10.0)
        loop.start()
        operator = ScriptedOperator(config.devices.scripted, hand_tracking=True)
        operator.start(DeviceContext(backend, loop.retargeter, loop.kin, loop.control_dt, seed))
        home_fingers = loop.gate.command[loop.retargeter.hands.indices["right"]].copy()
        result = {}

        async def headset():
            client = PageClient(server.url(), cafile=info.cert_path)
            await client.connect()
            seq, started = 0, time.monotonic()
            while not operator.done and not result.get("success"):
                msg = operator.poll(backend.now())  # the plan runs on the simulator's clock
                await client.send_frame(page_frame(seq, time.monotonic() - started, msg))
                seq += 1
                await asyncio.sleep(1.0 / FRAME_HZ)
            await client.close()
            return seq, client.errors

        def client_thread():
            try:
                result["sent"], result["errors"] = run(headset(), timeout=240)
            except BaseException as exc:  # re-raised on the test thread
                result["error"] = exc

        sender = threading.Thread(target=client_thread, daemon=True)
        sender.start()
        closed_most = np.zeros(len(home_fingers))
        try:
            period, next_tick = loop.control_dt, time.perf_counter()
            while sender.is_alive():  # the lockstep sim ticked at its control rate on the wall clock
                loop.tick()
                fingers = loop.gate.command[loop.retargeter.hands.indices[operator_side(operator)]]
                closed_most = np.maximum(closed_most, fingers)
                if backend.task_success():
                    result["success"] = True
                next_tick += period
                delay = next_tick - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                else:
                    next_tick = time.perf_counter()
        finally:
            sender.join(30)
            loop.close()
            metrics = backend.task_metrics()
            backend.close()
        if "error" in result:
            raise result["error"]
    assert not result["errors"] and result["sent"] > 100
    assert loop.stats.inputs > 100 and loop.stats.inputs_rejected == 0
    assert result.get("success"), metrics  # in the tray, or the water in the cup, by the retargeted fingers
    # The fingers closed as the plan's synergy closes them (thumb, index and middle), from the hand tracking
    # alone: no controller in any frame.
    assert operator.grasp_synergy == synergy
    grasp = loop.retargeter.hands.synergies.targets(operator_side(operator), synergy, 1.0)
    assert np.all(closed_most[:4] > 0.8 * grasp[:4]), (closed_most, grasp)
    assert np.all(closed_most[:4] > home_fingers[:4] + 0.1)


def operator_side(operator) -> str:
    """The arm the scripted plan picks with (the one that moves in its grasp segment)."""
    grasp = next(seg for seg in operator.plan.segments if seg.name == "grasp")
    return next(side for side, closure in grasp.closure.items() if closure > 0)
