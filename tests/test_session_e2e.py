"""End-to-end: a tiny plan through the real sim, scripted operator, teleop loop and recorder.

One run is stopped with Ctrl-C mid-take, the next is killed outright mid-take (a crash or power
loss), and the third resumes and finishes the plan. Afterwards the catalogue, the files and the
coverage must agree, episode numbers must have no gaps or duplicates, the interrupted takes must be
finalized or recovered, and every episode must pass `collector validate`.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from collector.session.catalog import Catalog
from collector.session.coverage import Coverage
from collector.session.layout import DatasetLayout
from collector.session.plan import load_plan
from helpers.session import recorded_seconds

ROOT = Path(__file__).resolve().parent.parent
TINY_PLAN = """\
name: tiny
robot: humanoid
backend: sim
operator: scripted
tasks: [pick_place]
lighting: [bright, dim]
weights: [light]
takes_per_cell: 1
episode_time_limit_s: 60
order: sequential
seed: 3
"""


# The sim runs a scripted take in lockstep, about ten times faster than real time: a take at the operator's
# usual speed lasts under a second of wall time, too short to be caught mid-take reliably (a clean-clone CI
# run found the whole plan done before the first poll). The runs that are interrupted use a slow operator, so
# their takes last seconds of wall time; the run that finishes the plan uses the usual one.
SLOW_OPERATOR = "devices: {scripted: {speed: 0.07, reaction_s: [1.0, 1.5]}}\n"


def collect(plan, out, *args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "collector", "collect", "--plan", str(plan), "--out", str(out),
                             "--no-render", "--no-progress", "--station", "bench1", "--operator-name", "tester",
                             *map(str, args)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_partial(out: Path, episode_id: str, proc, seconds=2.0, timeout_s=120.0):
    """Wait until the take has `seconds` of session time flushed (the recorder flushes every 0.5 s)."""
    partial = out / "episodes" / f"{episode_id}.partial.h5"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if partial.exists() and recorded_seconds(partial) >= seconds:
            return
        time.sleep(0.2)
    pytest.fail(f"{partial} never had {seconds} s of data")


@pytest.mark.slow
def test_interrupted_runs_resume_and_everything_agrees(tmp_path):
    plan_path = tmp_path / "tiny.yaml"
    plan_path.write_text(TINY_PLAN)
    out = tmp_path / "data"
    slow = tmp_path / "slow_operator.yaml"
    slow.write_text(SLOW_OPERATOR)

    # 1. Ctrl-C during the first take: the take is finalized, the session marked interrupted.
    first = collect(plan_path, out, "--teleop-config", slow)
    wait_for_partial(out, "episode_000001", first)
    first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=60)
    assert first.returncode == 130, err
    catalog = Catalog(out / "catalog.sqlite")
    row = catalog.episode(1)
    assert row.status == "kept" and row.outcome == "unknown" and "Ctrl-C" in row.note, row
    assert catalog.sessions()[0]["state"] == "interrupted"

    # 2. Killed outright during the next take: nothing gets the chance to clean up.
    second = collect(plan_path, out, "--teleop-config", slow)
    wait_for_partial(out, "episode_000002", second)
    second.kill()
    second.communicate(timeout=30)
    assert catalog.episode(2).status == "recording"

    # 3. The same command resumes: recovers take 2, then records until the plan is covered.
    third = collect(plan_path, out)
    stdout, err = third.communicate(timeout=240)
    assert third.returncode == 0, err
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["resumed"] is True and summary["recovered"] == 1
    assert "resumed: 1 interrupted take(s) settled: episode_000002 recovered" in stdout

    rows = catalog.episodes()
    assert [r.episode_index for r in rows] == list(range(1, len(rows) + 1))  # no gaps, no duplicates
    assert rows[1].status == "recovered" and rows[1].outcome == "unknown"
    assert all(r.status in ("kept", "recovered") for r in rows)
    assert len({r.session_id for r in rows}) == 1  # one session, resumed twice
    assert catalog.sessions()[0]["resumed"] == 2 and catalog.sessions()[0]["state"] == "finished"

    # catalogue <-> files: every row's file exists, every file has a row, nothing partial is left
    layout = DatasetLayout(out)
    files = sorted(p.name for p in layout.episodes_dir.iterdir())
    assert files == [f"{r.episode_id}.hdf5" for r in rows]
    assert all(layout.absolute(r.path).is_file() for r in rows)

    # catalogue <-> coverage: the plan is complete and the table counts what the catalogue holds
    plan = load_plan(plan_path)
    coverage = Coverage.from_rows(plan, rows)
    assert coverage.complete and coverage.done == 2
    good = [r for r in rows if r.outcome == "success" and r.qa == "pass"]
    assert len(good) == 2 and {r.lighting for r in good} == {"bright", "dim"}
    assert summary["episodes"] == len(rows) and summary["coverage_done"] == 2
    assert "pick_place / light     1/1     1/1" in stdout

    # every episode passes `collector validate`
    check = subprocess.run([sys.executable, "-m", "collector", "validate", str(layout.episodes_dir)],
                           capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    assert all(r.qa == "pass" for r in rows), [(r.episode_id, r.qa_problems) for r in rows]
