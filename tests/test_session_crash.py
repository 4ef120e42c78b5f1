"""Sessions under crashes, signals and a full disk, driven for real (issue 13 items 1-4, 7, 8, 16).

Real `collector collect` processes are killed with SIGKILL or stopped with SIGTERM/SIGHUP at the
start (~0.3 s in), the middle and the end of a take, then resumed; a real tmpfs is filled by `dd`
while a take records or while its aligned view is written. Afterwards the catalogue, the files in
the dataset folder and the coverage must agree, and every cell of the plan must be covered.
"""
import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from collector.cli import main
from collector.recorder import FieldSpec, StreamSpec, schema
from collector.session.catalog import Catalog
from collector.session.cells import Cell
from collector.session.coverage import Coverage
from collector.session.layout import DatasetLayout
from collector.session.lifecycle import EpisodeLifecycle
from collector.session.plan import Plan, TaskSpec, load_plan
from helpers.session import recorded_seconds

ROOT = Path(__file__).resolve().parent.parent
PLAN = """\
name: crashy
robot: humanoid
backend: sim
operator: scripted
tasks: [pick_place]
lighting: [bright, dim]
weights: [light]
takes_per_cell: 1
max_attempts_per_cell: 2
episode_time_limit_s: 12
order: sequential
seed: 3
"""


# ------------------------------------------------------------------ helpers -------------------
def start_collect(plan, out, *extra, command="collect"):
    # faulthandler: a child that hangs is sent SIGABRT (finish()) and prints every thread's stack
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"),
           "PYTHONFAULTHANDLER": "1"}
    # SIGHUP at its default in the child: a suite started under `nohup` would hand down an ignored SIGHUP,
    # which collect rightly keeps ignoring (collector/interrupts.py), and the SIGHUP test would see a whole session.
    return subprocess.Popen([sys.executable, "-m", "collector", command, "--plan", str(plan), "--out", str(out),
                             "--no-render", "--station", "bench1", "--operator-name", "tester", *extra],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL))


def partial_of(out: Path, index: int) -> Path:
    return schema.partial_path(out / "episodes", f"episode_{index:06d}")


def final_of(out: Path, index: int) -> Path:
    return schema.final_path(out / "episodes", f"episode_{index:06d}")


def wait_until(condition, proc, what, timeout_s=120.0, poll_s=0.01):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the session ended before {what}: rc {proc.returncode}\n{out[-1500:]}\n{err[-2500:]}")
        time.sleep(poll_s)
    proc.kill()
    pytest.fail(f"timed out waiting for {what}")


def interrupt_take(plan, out, index, moment, sig, command="collect"):
    """Run the session and send `sig` at `moment` (start / middle / end) of take number `index`."""
    extra = ("--auto", "--exit-when-done", "--port", "0") if command == "session" else ("--no-progress",)
    proc = start_collect(plan, out, *extra, command=command)
    partial, final = partial_of(out, index), final_of(out, index)
    if moment == "start":
        wait_until(partial.exists, proc, f"{partial.name} appeared")
        time.sleep(0.3)
    elif moment == "middle":
        wait_until(lambda: recorded_seconds(partial) >= 1.0, proc, f"1 s flushed into {partial.name}", poll_s=0.1)
    else:  # the end: the recorder has just published the finished file (QA and the catalogue follow)
        wait_until(final.exists, proc, f"{final.name} was published", poll_s=0.005)
    proc.send_signal(sig)
    return finish(proc, f"{signal.Signals(sig).name} at the {moment} of take {index}")


def finish(proc, after, timeout_s=120.0):
    """The child's return code and output once it exits; a child still running after `timeout_s` fails the
    test with the stack of each of its threads (SIGABRT under PYTHONFAULTHANDLER)."""
    try:
        out_text, err_text = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        try:
            out_text, err_text = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out_text, err_text = proc.communicate()
        pytest.fail(f"still running {timeout_s:.0f} s after {after}; its threads:\n{err_text[-6000:]}\n{out_text[-1000:]}")
    return proc.returncode, out_text, err_text


def leftovers(out: Path):
    """Files in episodes/ that no finished episode should leave behind (partials, disk reserves)."""
    return sorted(p.name for p in (out / "episodes").iterdir() if not schema.is_final_name(p.name))


def check_consistent(out: Path, plan_path: Path):
    """Catalogue <-> files <-> coverage, and every cell covered."""
    catalog = Catalog(out / "catalog.sqlite")
    rows = catalog.episodes()
    layout = DatasetLayout(out)
    assert [r.episode_index for r in rows] == list(range(1, len(rows) + 1))
    assert not [r for r in rows if r.status == "recording"], rows
    in_episodes = {p.name for p in layout.episodes_dir.iterdir()}
    kept = [r for r in rows if r.status in ("kept", "recovered")]
    assert in_episodes == {Path(r.path).name for r in kept}, (in_episodes, rows)
    for row in rows:
        if row.path:
            assert layout.absolute(row.path).is_file(), row
        if row.status == "interrupted" and row.path:
            assert layout.absolute(row.path).parent == layout.discard_dir, row
    for row in kept:
        with h5py.File(layout.absolute(row.path), "r") as handle:
            assert handle.attrs["status"] == ("recovered" if row.status == "recovered" else "complete"), row
            assert handle.attrs["outcome"] == row.outcome, row
    coverage = Coverage.from_rows(load_plan(plan_path), rows)
    assert coverage.complete and not coverage.abandoned_cells(), coverage.table()
    return rows


# ------------------------------------------------------------------ kill -9 and signals -------
@pytest.mark.slow
def test_kill_9_early_in_a_take_is_interrupted_not_a_failed_attempt(tmp_path):
    """Two kill -9 about 0.3 s into a take of the same cell (max 2 attempts) must not give the cell up."""
    plan = tmp_path / "crashy.yaml"
    plan.write_text(PLAN)
    out = tmp_path / "data"
    for index in (1, 2):
        code, _, _ = interrupt_take(plan, out, index, "start", signal.SIGKILL)
        assert code == -signal.SIGKILL
    # item 8: the partial file is gone by the time the session resumes; its disk reserve must go too
    partial_of(out, 2).unlink()
    assert (out / "episodes" / f".{partial_of(out, 2).name}.reserve").exists()

    resumed = start_collect(plan, out, "--no-progress")
    stdout, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["recovered"] == 0 and summary["interrupted"] == 2, summary
    assert "gave up" not in stdout
    # take 1 was settled by the run that recorded take 2; this run settles take 2
    assert "resumed: 1 interrupted take(s) settled: episode_000002 interrupted" in stdout
    rows = check_consistent(out, plan)
    assert [r.status for r in rows[:2]] == ["interrupted", "interrupted"], rows
    assert (rows[0].lighting, rows[1].lighting) == ("bright", "bright")  # the same cell, twice
    assert leftovers(out) == []
    assert not list((out / "discarded").iterdir())  # nothing was recorded, so nothing is kept aside
    assert summary["coverage_done"] == summary["coverage_needed"] == 2


@pytest.mark.slow
@pytest.mark.parametrize("command, sig, code", [("collect", signal.SIGTERM, 143), ("collect", signal.SIGHUP, 129),
                                                ("session", signal.SIGTERM, 143)])
def test_sigterm_and_sighup_finalize_the_take_and_exit_with_one_line(tmp_path, command, sig, code):
    plan = tmp_path / "crashy.yaml"
    plan.write_text(PLAN)
    out = tmp_path / "data"
    returncode, stdout, stderr = interrupt_take(plan, out, 1, "middle", sig, command=command)
    name = signal.Signals(sig).name
    assert returncode == code, stderr
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"collector {command}: stopped by {name}"), last
    catalog = Catalog(out / "catalog.sqlite")
    row = catalog.episode(1)
    assert row.status == "kept" and row.outcome == "unknown" and name in row.note, row
    assert row.interrupted_by == name
    assert catalog.sessions()[0]["state"] == "interrupted"
    assert leftovers(out) == [] and final_of(out, 1).is_file()


@pytest.mark.slow
def test_any_mix_of_kill_9_and_sigterm_at_start_middle_and_end_resumes_to_a_covered_plan(tmp_path):
    plan = tmp_path / "crashy.yaml"
    plan.write_text(PLAN)
    out = tmp_path / "data"
    index = 1
    for moment in ("start", "middle", "end"):
        for sig in (signal.SIGKILL, signal.SIGTERM):
            code, _, stderr = interrupt_take(plan, out, index, moment, sig, command="demo")
            if sig == signal.SIGKILL:
                assert code == -signal.SIGKILL
            else:
                assert code == 143, stderr
                assert stderr.strip().splitlines()[-1].startswith("collector demo: stopped by SIGTERM"), stderr
                assert "Traceback" not in stderr
                row = Catalog(out / "catalog.sqlite").episode(index)
                assert row.status == "kept", row  # finalized, never left 'recording'
                assert leftovers(out) == [], leftovers(out)
            index += 1

    last = start_collect(plan, out, "--no-progress", command="demo")
    stdout, stderr = last.communicate(timeout=300)
    assert last.returncode == 0, stderr
    summary = json.loads(stdout.strip().splitlines()[-1])
    rows = check_consistent(out, plan)
    print("\n".join(f"{r.episode_id} {r.lighting} {r.status} {r.outcome} qa={r.qa} by={r.interrupted_by!r} {r.note}"
                    for r in rows))
    assert leftovers(out) == []
    assert "gave up" not in stdout
    assert summary["coverage_done"] == summary["coverage_needed"] == 2
    assert summary["episodes"] == sum(r.status in ("kept", "recovered") for r in rows)
    assert summary["interrupted"] == sum(r.status == "interrupted" for r in rows)
    # kill -9 at the end: the finished file was published before the catalogue heard of it; resume
    # keeps it as the finished episode it is, with the outcome the file records, and not as an attempt.
    killed_at_end = rows[4]
    assert killed_at_end.status == "kept" and killed_at_end.interrupted_by in ("crash", ""), killed_at_end
    with h5py.File(out / killed_at_end.path, "r") as handle:
        assert killed_at_end.outcome == handle.attrs["outcome"] != "unknown"
    sessions = Catalog(out / "catalog.sqlite").sessions()
    assert len(sessions) == 1 and sessions[0]["state"] == "finished"


# ------------------------------------------------------------------ full disk -----------------
def _tmpfs(path: Path, size_mib: int):
    path.mkdir(parents=True, exist_ok=True)
    probe = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mib}m", "tmpfs", str(path)],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {probe.stderr.strip()}")


@pytest.fixture()
def small_disk(tmp_path):
    disk = tmp_path / "disk"
    _tmpfs(disk, 150)
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def fill_disk(disk: Path, leave_mib: int = 0) -> Path:
    """Another program fills the disk: dd until ENOSPC, then give back `leave_mib`."""
    filler = disk / "filler.bin"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=1M"], capture_output=True)
    if leave_mib:
        size = filler.stat().st_size - leave_mib * 1024 * 1024
        os.truncate(filler, max(0, size))
    return filler


N_JOINTS = 3
STREAMS = [
    StreamSpec("joints", {"position": FieldSpec((N_JOINTS,)), "velocity": FieldSpec((N_JOINTS,)),
                          "effort": FieldSpec((N_JOINTS,))}, 50.0, kind="joints"),
    StreamSpec("command", {"position": FieldSpec((N_JOINTS,))}, 50.0, kind="command"),
]
UNIT_PLAN = Plan(name="unit", robot="humanoid", backend="sim", tasks=(TaskSpec("pour", "Pour it"),),
                 lighting=("dim",), weights=("heavy",), takes_per_cell=1, episode_time_limit_s=5.0)
CELL = Cell("pour", "dim", "heavy")
CONDITIONS = {"lighting": {"preset": "dim"}, "weights": {"preset": "heavy"}, "seed": 1}


def _lifecycle(root: Path):
    layout = DatasetLayout(root).ensure()
    catalog = Catalog(layout.catalog_path)
    return layout, catalog, EpisodeLifecycle(layout, catalog, UNIT_PLAN, session_id="s1", station="st1",
                                             operator="ana")


def _push(writer, start_s, seconds, rate=50.0):
    for i in range(int(seconds * rate)):
        t = start_s + i / rate
        q = np.sin(t + np.arange(N_JOINTS)) * 0.1
        writer.push("joints", t, position=q, velocity=np.zeros(N_JOINTS), effort=np.zeros(N_JOINTS))
        writer.push("command", t, position=q)


def _wait_flushed(writer, rows: int, timeout_s=10.0):
    """Until `rows` joint samples are in the file and a flush has followed (this process has the file open,
    so it is watched through the writer's own counters)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if writer.stats["streams"]["joints"]["written"] >= rows:
            flushes = writer.stats["flushes"]
            while writer.stats["flushes"] == flushes and time.monotonic() < deadline:
                time.sleep(0.05)
            return
        time.sleep(0.05)
    raise AssertionError(f"{writer.partial_path} never held {rows} rows")


def test_disk_full_while_the_aligned_view_is_written_keeps_the_outcome(small_disk):
    """Item 3: all data is on disk, the outcome is known, only the aligned view finds no room."""
    layout, catalog, lifecycle = _lifecycle(small_disk / "data")
    take = lifecycle.begin(CELL, STREAMS, CONDITIONS)
    _push(take.writer, 0.0, 2.0)
    _wait_flushed(take.writer, 100)
    fill_disk(small_disk, leave_mib=40)  # below the writer's 64 MiB margin, enough for recovery
    row = lifecycle.finish(take, "success", duration_s=2.0)
    assert row.status == "recovered" and row.outcome == "success" and row.qa == "pass", row
    with h5py.File(layout.absolute(row.path), "r") as handle:
        assert handle.attrs["outcome"] == "success" and handle.attrs["status"] == "recovered"
        assert handle["raw/joints/t"].shape[0] == 100


def test_disk_filled_during_a_take_stays_restorable_and_catalog_restore_recovers_it(small_disk, capsys):
    """Item 2: the disk fills mid-take and even recovery has no room: the take must stay restorable."""
    layout, catalog, lifecycle = _lifecycle(small_disk / "data")
    take = lifecycle.begin(CELL, STREAMS, CONDITIONS)
    _push(take.writer, 0.0, 2.0)
    _wait_flushed(take.writer, 100)
    filler = fill_disk(small_disk)
    _push(take.writer, 2.0, 1.0)  # the recorder notices the full disk and stops itself
    deadline = time.monotonic() + 10
    while take.writer.error is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert take.writer.error is not None
    row = lifecycle.finish(take, "success", duration_s=3.0)
    assert row.status == "interrupted", row
    assert row.interrupted_by == "disk_full"
    assert "collector catalog restore" in row.note and str(row.episode_index) in row.note, row.note
    kept = layout.absolute(row.path)
    assert kept.is_file() and kept.name.endswith(schema.PARTIAL_SUFFIX)
    assert leftovers(layout.root) == []

    code = main(["catalog", "restore", str(layout.root), "1"])
    err = capsys.readouterr().err
    assert code == 2 and "space" in err, err  # still full: says so, changes nothing
    assert catalog.episode(1).status == "interrupted" and kept.is_file()

    filler.unlink()
    code = main(["catalog", "restore", str(layout.root), "1"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    restored = catalog.episode(1)
    assert restored.status == "recovered" and restored.qa == "pass", restored
    # the take was cut short: the recording does not show the whole task, so its outcome is not claimed
    assert restored.outcome == "unknown"
    path = layout.absolute(restored.path)
    assert path.parent == layout.episodes_dir and schema.is_final_name(path.name)
    with h5py.File(path, "r") as handle:
        assert handle.attrs["status"] == "recovered" and handle["raw/joints/t"].shape[0] >= 100
    assert not kept.exists()


@pytest.mark.slow
def test_collect_on_a_disk_another_program_fills_stops_with_how_to_restore(small_disk):
    """Item 2 end to end: a real session on a 150 MiB tmpfs, `dd` fills it during a take."""
    plan = small_disk.parent / "crashy.yaml"
    plan.write_text(PLAN)
    out = small_disk / "data"
    proc = start_collect(plan, out, "--no-progress")
    wait_until(lambda: recorded_seconds(partial_of(out, 1)) >= 1.5, proc, "1.5 s recorded", poll_s=0.1)
    filler = fill_disk(small_disk)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("collector collect: error: ") and "collector catalog restore" in last, last
    assert "Traceback" not in stderr
    catalog = Catalog(out / "catalog.sqlite")
    row = catalog.episode(1)
    assert row.status in ("interrupted", "recovered"), row
    if row.status == "interrupted":
        filler.unlink()
        assert main(["catalog", "restore", str(out), "1"]) == 0
        row = catalog.episode(1)
    assert row.status == "recovered", row
    assert (out / row.path).is_file() and leftovers(out) == []


def test_a_take_stopped_by_a_signal_before_any_sample_is_interrupted_not_kept(tmp_path):
    """Item 1 for signals: SIGTERM right as a take starts leaves no empty 'kept' episode."""
    layout, catalog, lifecycle = _lifecycle(tmp_path / "data")
    take = lifecycle.begin(CELL, STREAMS, CONDITIONS)
    row = lifecycle.finish(take, "unknown", note="interrupted by SIGTERM", interrupted_by="SIGTERM")
    assert row.status == "interrupted" and row.path is None and row.interrupted_by == "SIGTERM", row
    assert list(layout.episodes_dir.iterdir()) == []
    assert Coverage.from_rows(dataclasses.replace(UNIT_PLAN, max_attempts_per_cell=1), [row]).is_open(CELL)


# ------------------------------------------------------------------ catalogue -----------------
def _record(lifecycle, outcome="success"):
    take = lifecycle.begin(CELL, STREAMS, CONDITIONS)
    _push(take.writer, 0.0, 1.5)
    return lifecycle.finish(take, outcome, duration_s=1.5)


def test_catalog_rebuild_keeps_recovered_takes_recovered(tmp_path, capsys):
    """Item 7: the file records status/recovered; rebuild must not turn a recovered take into kept."""
    layout, catalog, lifecycle = _lifecycle(tmp_path / "data")
    first = _record(lifecycle)
    take = lifecycle.begin(CELL, STREAMS, CONDITIONS)
    _push(take.writer, 0.0, 1.5)
    take.writer.abandon()  # what a killed process leaves
    (settled,) = lifecycle.recover_interrupted()
    assert settled.status == "recovered"
    take = lifecycle.begin(CELL, STREAMS, CONDITIONS)
    _push(take.writer, 0.0, 1.5)
    stopped = lifecycle.finish(take, "unknown", note="interrupted by SIGTERM", interrupted_by="SIGTERM")
    assert main(["catalog", "rebuild", str(layout.root), "--force"]) == 0, capsys.readouterr().err
    rows = {r.episode_id: r for r in Catalog(layout.catalog_path).episodes()}
    assert rows[first.episode_id].status == "kept" and rows[first.episode_id].interrupted_by == ""
    assert rows[settled.episode_id].status == "recovered", rows[settled.episode_id]
    assert rows[settled.episode_id].interrupted_by == "crash"
    assert rows[stopped.episode_id].status == "kept" and rows[stopped.episode_id].interrupted_by == "SIGTERM"


def test_takes_interrupted_in_a_catalogue_of_the_previous_version_do_not_use_up_attempts(tmp_path):
    """A cell given up only because of crashes (catalogue written before this fix) is retried."""
    path = tmp_path / "catalog.sqlite"
    Catalog(path)  # then taken back to schema 1, which had no interrupted_by column
    conn = sqlite3.connect(path)
    conn.executescript("DROP INDEX episodes_plan_cell;"  # schema 5's index (over interrupted_by)
                       " ALTER TABLE episodes DROP COLUMN interrupted_by; PRAGMA user_version=1;")
    for index, status, note in ((1, "recovered", "interrupted; recovered up to the last flush"),
                                (2, "kept", "interrupted by Ctrl-C")):
        conn.execute("INSERT INTO episodes (episode_index, episode_id, session_id, plan, task, lighting, weight,"
                     " status, outcome, qa, note, started_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                     (index, f"episode_{index:06d}", "s", "unit", "pour", "dim", "heavy", status, "unknown", "fail",
                      note, "t", "t"))
    conn.commit()
    conn.close()
    rows = Catalog(path).episodes()
    assert [r.interrupted_by for r in rows] == ["crash", "SIGINT"]
    capped = dataclasses.replace(UNIT_PLAN, max_attempts_per_cell=2)
    coverage = Coverage.from_rows(capped, rows)
    assert coverage.attempts(CELL) == 2 and not coverage.gave_up(CELL) and coverage.is_open(CELL)


# ------------------------------------------------------------------ validation first ----------
def test_a_wrong_robot_yaml_fails_before_anything_is_created(tmp_path, capsys):
    """Item 16: the robot description is checked before the dataset folder or catalogue exist."""
    robot_text = (ROOT / "robots" / "humanoid" / "robot.yaml").read_text()
    robot_text = robot_text.replace("mjcf: humanoid.xml", f"mjcf: {ROOT / 'robots' / 'humanoid' / 'humanoid.xml'}")
    (tmp_path / "robot.yaml").write_text(robot_text + "\nbogus_key: 1\n")
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN.replace("robot: humanoid", "robot: ./robot.yaml"))
    out = tmp_path / "never"
    for command in ("demo", "collect"):
        assert main([command, "--plan", str(plan), "--out", str(out), "--no-render"]) == 2
        message = capsys.readouterr().err.strip().splitlines()[-1]
        assert message.startswith(f"collector {command}: error: ") and "bogus_key" in message, message
        assert not out.exists()


# ------------------------------------------------------------------ the CLI's last resort -----
def test_an_unexpected_exception_is_one_line_and_exit_1(monkeypatch, capsys):
    import collector.commands.stats as stats

    def broken(args):
        raise ZeroDivisionError("division by zero\nsecond line")

    monkeypatch.setattr(stats, "run", broken)
    assert main(["stats", "nowhere.hdf5"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == ("collector stats: error: unexpected ZeroDivisionError: division by zero second line "
                           "(run with -v for the traceback)"), err
    assert main(["-v", "stats", "nowhere.hdf5"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("collector stats: error: unexpected")


@pytest.mark.slow
def test_sigterm_ends_any_other_command_with_one_line(tmp_path):
    """Item 4 beyond sessions: a long-running command stopped by SIGTERM exits 143 with one line."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    proc = subprocess.Popen([sys.executable, "-m", "collector", "teleop", "--realtime", "--no-cameras",
                             "--duration", "60", "--no-stop-on-success"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(4.0)  # start-up and a few seconds of the loop
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == "collector teleop: stopped by SIGTERM", stderr
