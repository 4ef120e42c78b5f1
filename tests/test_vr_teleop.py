"""End to end: a recorded operator session replayed at 90 Hz over the page protocol drives the simulated
humanoid through the VR server, ZMQ and the teleop loop; the robot's head camera comes back to the client."""
import asyncio
import json
import threading
import time

import cv2
import numpy as np
import pytest

from collector.backends.sim import SimBackend
from collector.teleop.loop import TeleopLoop
from collector.teleop.safety import GateState
from collector.teleop.vr.client import PageClient
from collector.teleop.vr.feeds import CameraFeedPublisher, CameraFeedSink
from collector.teleop.vr.recording import load_session, write_session
from collector.teleop.vr.synthetic import synthetic_session
from helpers.vr import PacedLoop, run, running_server

REPLAY_S = 3.0
RATE_HZ = 90.0


@pytest.fixture
def session_file(tmp_path):
    # The "recording": head sway, both hands reaching with 25-joint skeletons, controllers with the grip held.
    return write_session(tmp_path / "operator.jsonl",
                         synthetic_session(REPLAY_S, RATE_HZ, hands=True, controllers=True))


def test_replayed_session_drives_the_simulated_robot(tmp_path, session_file):
    recorded = load_session(session_file)
    backend = SimBackend.create(robot="humanoid", task="pick_place", render=False)
    with running_server(tmp_path / "cert") as (server, info, thread):
        loop = TeleopLoop(backend, endpoint=server.config.input_endpoint, bind=False)
        thread.call(server.wait_for_subscribers, 10.0)
        loop.start()
        home = loop.kin.ee_positions(loop.gate.command)
        camera = CameraFeedPublisher(server.config.camera_endpoint)
        paced = PacedLoop(loop, CameraFeedSink(camera))

        async def operator():
            client = PageClient(server.url(), cafile=info.cert_path)
            await client.connect()
            result = await client.replay(recorded, rate_hz=RATE_HZ)
            # Let the loop settle on the last target and see the input go stale. The lockstep sim's clock
            # (which the safety gate uses) only advances as fast as this busy machine ticks it.
            await client.wait_for(lambda: loop.stats.inputs >= result.sent, timeout_s=60)  # all delivered
            sim_t_end = backend.now()
            await client.wait_for(lambda: backend.now() > sim_t_end + 0.3, timeout_s=60)
            ee_connected = loop.kin.ee_positions(loop.gate.command)
            gate_connected = loop.gate.state
            # The robot's head camera, rendered by the sim, goes back to the headset through the loop's sink.
            paced.render_head.set()
            await client.wait_for(lambda: client.camera_count >= 2, timeout_s=30)
            paced.render_head.clear()
            frames = list(client.camera)
            await client.close()
            await asyncio.sleep(0.3)  # the release message arrives and the loop holds
            return result, ee_connected, gate_connected, frames, client.errors

        outcome = {}

        def operator_thread():
            try:
                outcome["value"] = run(operator(), timeout=120)
            except BaseException as exc:  # re-raised on the test thread below
                outcome["error"] = exc

        client_thread = threading.Thread(target=operator_thread, daemon=True)
        client_thread.start()
        try:
            paced.run_until(lambda: not client_thread.is_alive())
            gate_after = loop.gate.state
        finally:
            client_thread.join()
            camera.close()
            loop.close()
            backend.close()
        if "error" in outcome:
            raise outcome["error"]
        result, ee_connected, gate_connected, frames, errors = outcome["value"]

    assert not errors
    assert result.sent == len(recorded)
    # Every frame reached the loop (the stale-frame limit is relaxed here; see helpers/vr.py).
    assert loop.stats.inputs_rejected == 0 and loop.stats.inputs >= result.sent
    # While the recording streams in, the gate follows the operator ...
    during = [state for t, state in paced.states if result.send_times[0] + 0.2 < t < result.send_times[-1]]
    assert during.count(GateState.ACTIVE) > 0.9 * len(during)
    # ... once it ends the input goes stale and the loop holds (the teleop safety gate) ...
    assert gate_connected in (GateState.HOLD, GateState.STOPPED)
    # ... and after the operator disconnects (explicit release) it never follows again.
    assert gate_after is not GateState.ACTIVE

    # The retargeting anchors the operator's first wrist pose to the robot's home; the robot's right hand
    # must have moved by the operator's wrist displacement, in robot axes.
    first, last = json.loads(recorded[0][1]), json.loads(recorded[-1][1])
    for side in ("left", "right"):
        operator_delta = (np.array(last["controllers"][side]["pose"][:3])
                          - np.array(first["controllers"][side]["pose"][:3]))
        expected = loop.retargeter.operator_to_robot_delta(operator_delta)
        moved = ee_connected[side] - home[side]
        assert np.linalg.norm(expected) > 0.03, "the recording must move the hands for this test to mean anything"
        # IK trades position against orientation and posture costs, so allow a centimetre or two.
        cosine = moved @ expected / (np.linalg.norm(moved) * np.linalg.norm(expected))
        assert cosine > 0.95 and 0.75 < np.linalg.norm(moved) / np.linalg.norm(expected) < 1.25, (side, moved, expected)
        assert np.linalg.norm(moved - expected) < 0.025, (side, moved, expected)

    assert frames and frames[-1].header["name"] == "head" and frames[-1].header["eye"] == "mono"
    image = cv2.imdecode(np.frombuffer(frames[-1].jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (240, 320, 3) and image.std() > 10  # a rendered scene, not a blank frame
