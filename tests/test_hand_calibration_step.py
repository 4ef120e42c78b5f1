"""The operator's hand calibration as a session step (collector/session/hand_calibration.py): a dexterous
humanoid session with VR input, the VR bridge on a real TLS WebSocket, its synthetic hand-tracking client.

The client first holds its hands in a fist (a bent finger: one line on the dashboard and on the headset, the
step goes on), then open and flat (the synthetic operator's hands at rest): the calibration is measured from
those skeletons, kept with the operator in the dataset folder, used by the take's retargeter and written into
the episode. A second session of the same operator reuses it without asking."""
from __future__ import annotations

import asyncio
import json
import threading
import time

import numpy as np
import pytest

from collector.errors import ConfigError, DataError
from collector.recorder import EpisodeReader
from collector.robot import load_robot
from collector.session.catalog import Catalog
from collector.session.drivers import SimDriver
from collector.session.hand_calibration import OperatorSettings, measure_open_hands
from collector.session.interactive import InteractiveSession
from collector.session.plan import parse_plan
from collector.session.runner import SessionRunner
from collector.session.vr_link import VrSessionLink
from collector.teleop.config import load_teleop_config
from collector.teleop.hand_poses import hand_skeleton as posed_hand
from collector.teleop.hand_retarget import HandRetargeter
from collector.teleop.messages import HandSkeleton
from collector.teleop.vr.client import PageClient
from collector.teleop.vr.protocol import hand_to_wire
from collector.teleop.vr.synthetic import HAND_REST, hand_skeleton as synthetic_hand, page_frame
from helpers.vr import free_endpoint, run, running_server

pytestmark = pytest.mark.slow

PLAN = """\
name: dexcal
robot: humanoid_dex
backend: sim
operator: vr
tasks: [pick_place]
lighting: [warm]
weights: [medium]
takes_per_cell: 4
episode_time_limit_s: 0.5
"""


def wait(predicate, timeout_s=150.0, what="condition"):  # generous: a loaded machine
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def fist_frame() -> dict:
    """The synthetic client's frame with both hands closed (hand_poses' fist): fingers bent."""
    frame = page_frame(0, 0.0, hands=True)
    for side in ("left", "right"):
        hand = posed_hand(side, "fist", wrist_position=HAND_REST[side])
        frame["hands"][side] = hand_to_wire(hand.positions, hand.orientations, hand.radii)
    return frame


BIG = 1.2  # the operator's hands: the synthetic operator's, 20 % larger (not the nominal hand's scales)


def big_open_hand(side):
    """The synthetic operator's hand at rest (open and flat), BIG times its size about the wrist."""
    positions, quats, radii = synthetic_hand(side, HAND_REST[side], 0.0)
    return HAND_REST[side] + BIG * (positions - HAND_REST[side]), quats, radii


def open_frame() -> dict:
    frame = page_frame(0, 0.0, hands=True)
    for side in ("left", "right"):
        frame["hands"][side] = hand_to_wire(*big_open_hand(side))
    return frame


class Headset:
    """The synthetic hand-tracking client on its own thread: sends `frame()` at 60 Hz until closed."""

    def __init__(self, server, info):
        self.frame = fist_frame
        self.statuses = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: run(self._run(server.url(), info.cert_path), timeout=900),
                                        daemon=True)
        self._thread.start()

    async def _run(self, url, cafile):
        client = PageClient(url, cafile=cafile)
        await client.connect()
        try:
            while not self._stop.is_set() and client.close_code is None:
                await client.send_frame(self.frame())
                self.statuses = list(client.statuses)
                await asyncio.sleep(1 / 60)
        except ConnectionError:  # the server went first (a failing test)
            pass
        finally:
            await client.close()

    def close(self):
        self._stop.set()
        self._thread.join(timeout=10)


def start_session(tmp_path, server, operator):
    config = load_teleop_config()
    config.control.input_endpoint = server.config.input_endpoint
    plan = parse_plan(PLAN, str(tmp_path / "dexcal.yaml"))
    runner = SessionRunner(plan, tmp_path / "data", SimDriver(plan, render=False, teleop_config=config),
                           station="vr1", operator=operator).open()
    session = InteractiveSession(runner)
    # The headset's status link first, so the step's first lines reach it (ZMQ drops what precedes a connection).
    link = VrSessionLink(session, event_endpoint=free_endpoint(), status_endpoint=server.config.status_endpoint,
                         camera_endpoint=free_endpoint()).start()
    worker = threading.Thread(target=session.run, daemon=True)
    worker.start()
    return runner, session, worker, link


def record_one_take(runner, session, index):
    session.handle("start")
    catalog = Catalog(runner.layout.catalog_path)
    wait(lambda: len(catalog.episodes()) >= index and catalog.episode(index).status == "kept", what=f"take {index}")
    with EpisodeReader(runner.layout.absolute(catalog.episode(index).path)) as episode:
        return episode.metadata["hand_calibration"]


def end_session(runner, session, worker, link):
    link.close()
    session.shutdown()
    worker.join(timeout=30)
    runner.close()


def test_calibration_is_measured_from_live_hands_kept_with_the_operator_and_reused(tmp_path):
    robot = load_robot("humanoid_dex")
    expected, nominal = {}, HandRetargeter(robot).calibrations  # the big open hands measured directly; defaults
    for side in ("left", "right"):
        expected[side] = HandRetargeter(robot).calibrate(side, HandSkeleton(*big_open_hand(side))).finger_scales

    with running_server(tmp_path / "cert") as (server, info, _):
        headset = Headset(server, info)
        try:
            calibrate_then_reuse(tmp_path, server, headset, expected, nominal)
        finally:
            headset.close()


def calibrate_then_reuse(tmp_path, server, headset, expected, nominal):
    """Session 1 (operator ana): fist, then open hands, one take. Session 2 (ana again): no step, one take."""
    runner, session, worker, link = start_session(tmp_path, server, "ana")
    live = session.live
    try:
        # A fist: the bent finger is named in one line, on the dashboard and the headset; the step goes on.
        wait(lambda: "bent" in (live.snapshot().get("message") or ""), what="the bent-finger message")
        message = live.snapshot()["message"]
        assert live.snapshot()["phase"] == "calibrating" and "\n" not in message and "open and flat" in message
        wait(lambda: any("bent" in w for s in headset.statuses for w in s.get("warnings", [])),
             what="the message on the headset")
        with pytest.raises(DataError, match="calibrating the operator's hands first"):
            session.handle("start")
        time.sleep(0.6)  # longer than the hold an open hand needs
        assert live.snapshot()["phase"] == "calibrating", "no calibration from a bent hand"
        assert not OperatorSettings(runner.layout.root, "ana").path.exists()

        headset.frame = open_frame
        wait(lambda: live.snapshot()["phase"] == "ready", what="the calibration to be measured")
        stored = json.loads(OperatorSettings(runner.layout.root, "ana").path.read_text())
        sides = stored["hand_calibration"]["humanoid_dex"]["sides"]
        for side in ("left", "right"):
            measured = sides[side]["finger_scales"]
            assert measured.keys() == expected[side].keys()
            np.testing.assert_allclose([measured[f] for f in measured], [expected[side][f] for f in measured],
                                       rtol=1e-3, err_msg=f"{side}: measured from the live skeletons")
            assert np.mean(list(measured.values())) < 0.85 * nominal[side].scale, "not the nominal hand's"

        first = record_one_take(runner, session, 1)
        assert first["operator"] == "ana" and first["robot"] == "humanoid_dex"
        assert first["sides"] == sides and first["measured_at"] == stored["hand_calibration"]["humanoid_dex"]["measured_at"]
        drive = runner.driver._current.loop.retargeter.hands
        assert {s: c.to_dict() for s, c in drive.fingertip_retargeter.calibrations.items()} == sides
    finally:
        end_session(runner, session, worker, link)

    # The same operator again: no step, the stored calibration is used and recorded.
    headset.frame = fist_frame  # would be refused, were it measured again
    runner, session, worker, link = start_session(tmp_path, server, "ana")
    try:
        wait(lambda: session.live.snapshot()["phase"] == "ready", what="ready without calibrating")
        assert "ana.json" in session.live.snapshot()["message"]
        assert record_one_take(runner, session, 2) == first

        # Another person logs in and presses Start: their hands are measured first, not ana's used.
        wait(lambda: session.live.snapshot()["phase"] == "ready", what="ready after take 2")
        runner.set_operator("ben")
        assert "calibrating the hands of ben" in session.handle("start")
        wait(lambda: "bent" in (session.live.snapshot().get("message") or ""), what="ben's bent finger")
        assert session.live.snapshot()["phase"] == "calibrating"
        headset.frame = open_frame
        wait(lambda: session.live.snapshot()["phase"] == "ready", what="ben's calibration")
        assert OperatorSettings(runner.layout.root, "ben").path.exists()
        bens = record_one_take(runner, session, 3)
        assert bens["operator"] == "ben" and bens["measured_at"] != first["measured_at"]
        assert Catalog(runner.layout.catalog_path).episode(3).operator == "ben"

        # ana again: hers is kept, so Start reads it and records at once.
        wait(lambda: session.live.snapshot()["phase"] == "ready", what="ready after take 3")
        headset.frame = fist_frame  # would be refused, were it measured again
        runner.set_operator("ana")
        assert record_one_take(runner, session, 4) == first
    finally:
        end_session(runner, session, worker, link)


def test_a_stopped_step_keeps_nothing_and_a_broken_settings_file_is_one_line(tmp_path):
    robot = load_robot("humanoid_dex")
    told = []
    assert measure_open_hands(robot, free_endpoint(), told.append, stopped=lambda: len(told) > 0) is None
    assert told == ["hand calibration: hold both hands open and flat, fingers together, in view of the headset"]

    settings = OperatorSettings(tmp_path, "ben")
    assert settings.hand_calibration("humanoid_dex") is None
    settings.path.parent.mkdir(parents=True)
    settings.path.write_text("{not json")
    with pytest.raises(ConfigError, match=r"ben\.json: not a readable operator settings file") as err:
        settings.hand_calibration("humanoid_dex")
    assert "\n" not in str(err.value)
    settings.path.write_text(json.dumps({"hand_calibration": {"humanoid_dex": {"sides": {"right": {
        "side": "right", "finger_scales": {"index": 40.0}}}}}}))
    with pytest.raises(ConfigError, match=r"hand_calibration\.humanoid_dex\.sides\.right\.finger_scales\.index"):
        settings.hand_calibration("humanoid_dex")


def test_collect_calibrates_on_the_terminal_before_the_first_take_and_then_reuses_it(tmp_path, capsys):
    """`collector collect`'s step (calibrate_before_first_take): the operator input on ZMQ as the VR bridge
    publishes it; measured once, printed, attached to the take's lifecycle; the next run only reads it."""
    from collector.session.hand_calibration import calibrate_before_first_take
    from collector.teleop.messages import OperatorInput
    from collector.teleop.zmq_link import InputPublisher

    config = load_teleop_config()
    config.control.input_endpoint = free_endpoint()
    plan = parse_plan(PLAN, str(tmp_path / "dexcal.yaml"))
    bridge = InputPublisher(config.control.input_endpoint)
    hands = {f"{side}_hand": HandSkeleton(*big_open_hand(side)) for side in ("left", "right")}
    sending = threading.Event()

    def headset():
        seq = 0
        while not sending.is_set():
            bridge.publish(OperatorInput(stamp=time.monotonic(), seq=seq, source="vr", **hands))
            seq += 1
            time.sleep(1 / 90)

    for run_index in range(2):
        runner = SessionRunner(plan, tmp_path / "data", SimDriver(plan, render=False, teleop_config=config),
                               station="desk", operator="cleo").open()
        sender = threading.Thread(target=headset, daemon=True)
        if run_index == 0:
            sender.start()
        try:
            calibrate_before_first_take(runner, "vr")
            step = runner.lifecycle.hand_calibration
            assert step is not None and step.calibration["operator"] == "cleo"
        finally:
            sending.set()
            if sender.is_alive():
                sender.join()
            runner.close()
        printed = capsys.readouterr().out
        if run_index == 0:
            assert printed.splitlines()[0].startswith("hand calibration: hold both hands open and flat")
            assert "hand calibration of cleo measured" in printed
            first = step.calibration
        else:
            assert printed.strip().startswith("hand calibration of cleo from cleo.json")
            assert step.calibration["sides"] == first["sides"] and step.calibration["measured_at"] == first["measured_at"]
    bridge.close()
