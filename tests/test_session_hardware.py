"""A ROS 2 plan through `collector collect`: RosBackend (real rclpy) against the sim-hardware node.

On hardware the session cannot apply conditions: the terminal asks the operator to set each one up
and to judge each take. Here stdin answers those prompts, and then closes, which must stop the
session cleanly (resumable) rather than crash it.
"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from collector.ros.environment import domain_id_for_pid, ros_environment
from collector.session.catalog import Catalog

ROOT = Path(__file__).resolve().parent.parent
PLAN = """\
name: hw
robot: humanoid
backend: ros2
operator: zmq
tasks: [pick_place]
lighting: [dim]
weights: [heavy]
takes_per_cell: 1
episode_time_limit_s: 1.5
reset: manual
outcome: operator
"""


@pytest.mark.slow
def test_hardware_plan_prompts_the_operator_and_records(tmp_path):
    plan = tmp_path / "hw.yaml"
    plan.write_text(PLAN)
    out = tmp_path / "data"
    env = ros_environment({**os.environ, "PYTHONPATH": str(ROOT)}, domain_id=domain_id_for_pid())
    robot = subprocess.Popen([sys.executable, "-m", "collector", "ros", "sim-hw", "--no-cameras", "--duration", "300"],
                             cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(3.0)
        assert robot.poll() is None, robot.communicate()[1]
        # Enter = "conditions are set up", "n" = the take failed; then stdin closes.
        run = subprocess.run([sys.executable, "-m", "collector", "collect", "--plan", str(plan), "--out", str(out),
                              "--no-progress", "--station", "rig1"], input="\nn\n", cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=180)
    finally:
        robot.send_signal(signal.SIGINT)
        try:
            robot.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            robot.kill()
    assert "Set up lighting 'dim' and weight 'heavy' before starting, then reset the scene by hand" in run.stdout
    assert "episode_000001 (pick_place): success?" in run.stdout
    # the second take's prompt found stdin closed: a one-line error, not a traceback
    assert run.returncode == 2, run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith("collector collect: error: standard input closed")
    catalog = Catalog(out / "catalog.sqlite")
    (row,) = catalog.episodes()
    assert row.backend == "ros2" and row.status == "kept" and row.outcome == "failure"  # the operator's verdict
    assert row.conditions["lighting"] == {"preset": "dim", "applied_by": "operator"}
    assert row.conditions["weights"] == {"preset": "heavy", "applied_by": "operator"}
    assert (out / row.path).is_file() and row.duration_s == pytest.approx(1.5, abs=0.3)
    assert catalog.sessions()[0]["state"] == "interrupted"
