"""`collector demo` (the main job) and plan errors at the command line."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from collector.cli import main
from collector.session.catalog import Catalog

ROOT = Path(__file__).resolve().parent.parent


def run(*args, timeout=300):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "collector", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=timeout)


@pytest.mark.slow
def test_demo_smoke_run_records_reports_and_prints_json_last(tmp_path):
    out = tmp_path / "demo"
    result = run("demo", "--episodes", "1", "--out", str(out), "--no-progress")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    summary = json.loads(lines[-1])
    for key in ("episodes", "succeeded", "failed_validation", "wall_s", "out"):
        assert key in summary, key
    assert summary["episodes"] == 1 and summary["recorded_now"] == 1
    assert summary["out"] == str(out.resolve()) and summary["coverage_needed"] == 8
    assert 0 < summary["wall_s"] < 300
    # the report: coverage table, success rates, QA summary, where the data is and how to look at it
    assert "task / weight" in result.stdout and "pour / heavy" in result.stdout
    assert "success:" in result.stdout and "QA:" in result.stdout
    assert f"collector catalog list {out.resolve()}" in result.stdout
    assert "collector replay" in result.stdout
    (row,) = Catalog(out / "catalog.sqlite").episodes()
    assert row.plan == "demo" and row.status == "kept" and (out / row.path).is_file()
    assert summary["succeeded"] == (row.outcome == "success")
    assert summary["failed_validation"] == (row.qa == "fail")
    # the file has camera frames: the demo records the rendered cameras
    import h5py
    with h5py.File(out / row.path) as handle:
        assert any(name.startswith("camera_") for name in handle["raw"])
    check = run("validate", str(out / row.path))
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize("edit, words", [
    ("lighting: [bright, dim]", "lighting[1]: unknown lighting preset 'candle'"),
    ("weights: [light, heavy]", "weights: must be a non-empty list"),
    ("robot: humanoid", "robot: unknown robot 'r2d2'"),
    ("takes_per_cell: 1", "takes_per_cell: must be an integer"),
    ("tasks:", "tasks[0].colour: unknown key"),
])
def test_a_bad_plan_fails_before_anything_starts(tmp_path, capsys, edit, words):
    demo = (ROOT / "configs" / "plans" / "demo.yaml").read_text()
    replacement = {
        "lighting: [bright, dim]": "lighting: [bright, candle]",
        "weights: [light, heavy]": "weights: []",
        "robot: humanoid": "robot: r2d2",
        "takes_per_cell: 1": "takes_per_cell: one",
        "tasks:": "tasks:\n  - {name: pour, colour: red}",
    }[edit]
    assert edit in demo
    plan = tmp_path / "bad.yaml"
    plan.write_text(demo.replace(edit, replacement, 1))
    out = tmp_path / "never"
    for command in (["demo", "--plan", str(plan), "--out", str(out)],
                    ["collect", "--plan", str(plan), "--out", str(out)]):
        assert main(command) == 2  # the CLI's own entry point, in-process (no interpreter start-up each time)
        message = capsys.readouterr().err.strip().splitlines()[-1]
        assert message.startswith(f"collector {command[0]}: error: {plan}:"), message
        assert words in message, message
        assert not out.exists()  # nothing was created or started
