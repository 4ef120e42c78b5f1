"""The operator's session page with other stations on the plan (issue 18): when every open cell is held by
another station it says so ("2 cells held by other stations"), not "plan complete", and it sets the next
take up by itself once one of them is freed. Real runner, real SQLite catalogue, the sim driver."""
import threading
import time

import pytest

from collector.fleet.claims import CellClaims
from collector.session.drivers import SimDriver
from collector.session.interactive import InteractiveSession
from collector.session.plan import parse_plan
from collector.session.runner import SessionRunner

PLAN = """\
name: shared
robot: humanoid
backend: sim
operator: scripted
tasks: [pick_place]
lighting: [bright, dim]
weights: [light]
takes_per_cell: 1
"""


def wait(predicate, timeout_s=90.0, what="condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def test_the_page_says_how_many_cells_other_stations_hold_and_moves_on_when_one_is_freed(tmp_path):
    plan = parse_plan(PLAN, str(tmp_path / "shared.yaml"))
    runner = SessionRunner(plan, tmp_path / "hall", SimDriver(plan, render=False), station="st1").open()
    other = CellClaims(runner.catalog, "shared", lease_s=600.0)  # another station, holding both cells
    held = [other.claim("st2", [cell]) for cell in (("pick_place", "bright", "light"), ("pick_place", "dim", "light"))]
    assert all(held)
    session = InteractiveSession(runner)
    worker = threading.Thread(target=session.run, daemon=True)
    worker.start()
    live = session.live
    try:
        wait(lambda: live.snapshot()["phase"] == "waiting", what="waiting")
        message = live.snapshot()["message"]
        assert message.startswith("2 cells held by other stations (st2)") and "complete" not in message
        assert runner.cells_held_by_others() == {tuple(c.cell): ["st2"] for c in held}

        other.release("st2", held[1])  # st2 gives the dim cell up
        wait(lambda: live.snapshot()["phase"] == "ready", what="ready")
        assert live.snapshot()["cell"] == {"task": "pick_place", "lighting": "dim", "weight": "light"}
        assert runner.claim is not None and runner.claim.cell == ("pick_place", "dim", "light")
    finally:
        session.shutdown()
        worker.join(30)
        runner.close()
