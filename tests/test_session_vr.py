"""Headset episode controls drive a real session (sim backend, VR input), and the headset gets the status.

The test plays the VR server's part with the VR package's own publisher and feed decoder on loopback
ports: start / stop-with-verdict / discard from the headset must record, judge and discard a take
exactly as the dashboard's buttons do.
"""
import threading
import time

import pytest
import zmq

from collector.session.catalog import Catalog
from collector.session.drivers import SimDriver
from collector.session.interactive import InteractiveSession
from collector.session.plan import parse_plan
from collector.session.runner import SessionRunner
from collector.session.vr_link import VrSessionLink
from collector.teleop.vr.events import EpisodeEventPublisher
from collector.teleop.vr.feeds import decode_status
from helpers.vr import free_port

PLAN = """\
name: headset
robot: humanoid
backend: sim
operator: vr
tasks: [pick_place]
lighting: [warm]
weights: [medium]
takes_per_cell: 1
episode_time_limit_s: 30
"""


def wait(predicate, timeout_s=60.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    pytest.fail(f"timed out waiting for {what}")


@pytest.mark.slow
def test_headset_start_stop_verdict_and_discard(tmp_path):
    events_ep, status_ep, camera_ep = (f"tcp://127.0.0.1:{free_port()}" for _ in range(3))
    plan = parse_plan(PLAN, str(tmp_path / "headset.yaml"))
    runner = SessionRunner(plan, tmp_path / "data", SimDriver(plan, render=False), station="vr1",
                           operator="tester").open()
    session = InteractiveSession(runner)
    worker = threading.Thread(target=session.run, daemon=True)
    worker.start()
    context = zmq.Context.instance()
    status_sub = context.socket(zmq.SUB)  # the VR server's side of the status feed: it binds
    status_sub.setsockopt(zmq.SUBSCRIBE, b"")
    status_sub.bind(status_ep)
    headset = EpisodeEventPublisher(events_ep, bind=True)
    link = VrSessionLink(session, event_endpoint=events_ep, status_endpoint=status_ep,
                         camera_endpoint=camera_ep).start()
    live = session.live
    try:
        wait(lambda: live.snapshot()["phase"] == "ready", what="ready")

        def press_start():  # ZMQ drops what is sent before the subscription is up: repeat until seen
            headset.publish("start", trigger="right.a")
            time.sleep(0.3)
            return live.snapshot()["phase"] == "recording"

        wait(press_start, what="recording")
        wait(lambda: (live.snapshot()["robot"] or {}).get("t", 0) > 1.2, what="1.2 s of session time")
        headset.publish("stop", outcome="failure", trigger="left.b")
        catalog = Catalog(tmp_path / "data" / "catalog.sqlite")
        wait(lambda: catalog.episodes() and catalog.episode(1).outcome == "failure", what="verdict")
        row = catalog.episode(1)
        assert row.status == "kept" and "operator" in row.note  # stopped from the headset
        headset.publish("discard", trigger="left.ring-pinch")
        wait(lambda: catalog.episode(1).status == "discarded", what="discard")
        wait(lambda: link.handled and link.handled[-1][0] == "discard", what="discard answered")
        assert [h[0] for h in link.handled][-3:] == ["start", "stop", "discard"]
        assert link.handled[-2][1] == "failure" and "marked failure" in link.handled[-2][2]

        statuses = []
        while status_sub.poll(2000):
            statuses.append(decode_status(status_sub.recv_multipart()))
            if statuses[-1].get("last_qa") and statuses[-1].get("phase") == "ready":
                break
        assert statuses, "no status reached the VR server's side"
        latest = statuses[-1]
        assert latest["task"] == "pick_place" and latest["next_condition"] == {"lighting": "warm", "weight": "medium"}
        assert latest["recording"] is False and latest["episode"] == 1
    finally:
        link.close()
        session.shutdown()
        worker.join(timeout=30)
        runner.close()
        headset.close()
        status_sub.close(linger=0)
