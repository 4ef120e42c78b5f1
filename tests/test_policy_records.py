"""Policies and evaluations catalogued beside the episodes (collector/session/policy_records.py); plans
aimed at the policy's weak cells; coverage with demonstrations and policy success side by side.

Real SQLite catalogues and real plan files throughout; `collector train` registers a checkpoint it
trained (2 steps) on a synthetic dataset; one `collector collect` take shows a session going to the
weakest cell first.
"""
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from collector.cli import main
from collector.errors import ConfigError, DataError
from collector.file_digest import file_sha256
from collector.session import policy_records as records
from collector.session.catalog import SCHEMA_VERSION, Catalog
from collector.session.cells import Cell, focus_note, next_cell
from collector.session.coverage import Coverage
from collector.session.layout import DatasetLayout
from collector.session.plan import load_plan
from collector.session.report import full_report

ROOT = Path(__file__).resolve().parent.parent
PLAN = """\
name: focus
robot: humanoid
backend: sim
operator: scripted
tasks: [pick_place, pour]
lighting: [bright, dim, warm]
weights: [light, heavy]
takes_per_cell: 1
episode_time_limit_s: 12
order: sequential
seed: 3
"""


def dataset(tmp_path) -> Path:
    layout = DatasetLayout(tmp_path / "data").ensure()
    Catalog(layout.catalog_path)
    return layout.root


def cell(task, lighting, weight, successes, rollouts, theme="kitchen"):
    return {"task": task, "lighting": lighting, "weight": weight, "theme": theme, "rollouts": rollouts,
            "successes": successes, "success_rate": successes / rollouts, "episodes": [f"{lighting}_{weight}.hdf5"]}


def results(cells, created="2026-12-01T10:00:00Z", sha="ab" * 32, checkpoint="/ckpt/act.pt"):
    rollouts = sum(c["rollouts"] for c in cells)
    successes = sum(c["successes"] for c in cells)
    return {"checkpoint": checkpoint, "checkpoint_sha256": sha, "policy": "act",
            "trained_on": {"dataset": "/data", "episodes": 4}, "seeds": [900001, 900002], "cells": cells,
            "by_condition": {}, "success_rate": successes / rollouts, "rollouts": rollouts,
            "inference_ms": {"p50": 2.0, "p99": 4.0}, "tick_ms": {"p50": 0.1}, "created": created}


def plan_file(tmp_path, extra="") -> Path:
    path = tmp_path / "focus.yaml"
    path.write_text(PLAN + extra)
    return path


# -- records ------------------------------------------------------------------------------------------
def test_checkpoint_and_evaluations_round_trip(tmp_path):
    root = dataset(tmp_path)
    checkpoint = tmp_path / "act.pt"
    checkpoint.write_bytes(b"weights")
    policy_id = records.record_checkpoint(root, checkpoint, policy="act", episodes=["episode_000002", "episode_000001"],
                                          details={"steps": 40})
    # the same file again is the same row (episodes updated), not a second policy
    assert records.record_checkpoint(root, checkpoint, policy="act", episodes=["episode_000001"]) == policy_id
    sha = file_sha256(checkpoint)
    older = results([cell("pick_place", "dim", "light", 1, 4)], created="2026-12-01T09:00:00+00:00", sha=sha,
                     checkpoint=str(checkpoint))
    newer = results([cell("pick_place", "bright", "light", 3, 4), cell("pour", "bright", "light", 0, 2)],
                    created="2026-12-01T11:00:00Z", sha=sha, checkpoint=str(checkpoint))
    newer_id = records.record_evaluation(root, newer)
    records.record_evaluation(root, older)  # recorded later, but made earlier: not the latest

    latest = records.latest_evaluation(root)
    assert latest["evaluation_id"] == newer_id and latest["policy_id"] == policy_id
    assert latest["cells"] == newer["cells"] and latest["inference_ms"] == {"p50": 2.0, "p99": 4.0}
    assert records.latest_evaluation(root, task="pour")["evaluation_id"] == newer_id
    assert records.latest_evaluation(root, task="wipe") is None

    (listed,) = records.policies(root)
    assert listed["episodes"] == ["episode_000001"] and listed["checkpoint_sha256"] == sha
    assert listed["evaluations"] == 2 and listed["latest_success"] == pytest.approx(0.5)
    assert [e["created"] for e in records.evaluations(root)] == [older["created"], newer["created"]]


def test_a_folder_without_catalogue_has_no_records_and_gets_none(tmp_path):
    assert records.latest_evaluation(tmp_path) is None and records.policies(tmp_path) == []
    with pytest.raises(DataError, match="no catalogue"):
        records.record_evaluation(tmp_path, results([cell("pick_place", "dim", "light", 1, 2)]))
    assert not (tmp_path / "catalog.sqlite").exists()


@pytest.mark.parametrize("change, words", [
    (lambda r: r.pop("checkpoint_sha256"), "field 'checkpoint_sha256' must be a string"),
    (lambda r: r.update(rollouts="4"), "field 'rollouts' must be an integer"),
    (lambda r: r["cells"][0].pop("weight"), "cells[0]: field 'weight' must be a string"),
    (lambda r: r["cells"][0].update(successes=5), "cells[0]: successes 5 not within 0..rollouts (4)"),
    (lambda r: r.update(created="yesterday"), "'yesterday' is not an ISO-8601 time"),
])
def test_broken_results_are_one_line_errors_and_store_nothing(tmp_path, change, words):
    root = dataset(tmp_path)
    broken = results([cell("pick_place", "dim", "light", 1, 4)])
    change(broken)
    with pytest.raises(DataError) as error:
        records.record_evaluation(root, broken)
    assert words in str(error.value) and "\n" not in str(error.value)
    assert records.evaluations(root) == []


def test_old_catalogues_gain_the_policy_tables_on_open(tmp_path):
    root = dataset(tmp_path)
    catalog = Catalog(root / "catalog.sqlite")
    catalog.allocate_episode(session_id="s", plan="p", task="pick_place", lighting="dim", weight="light")
    # Make it a schema-1 catalogue: no policy tables, no interrupted_by column.
    with sqlite3.connect(root / "catalog.sqlite") as conn:
        conn.executescript("DROP TABLE policies; DROP TABLE evaluations; DROP TABLE evaluation_cells;"
                           " DROP INDEX episodes_condition; DROP INDEX episodes_plan_cell;"  # schema 5's
                           " ALTER TABLE episodes DROP COLUMN interrupted_by; PRAGMA user_version=1;")
    upgraded = Catalog(root / "catalog.sqlite")
    assert upgraded.episode(1).task == "pick_place"
    with sqlite3.connect(root / "catalog.sqlite") as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 6
    assert {"policies", "evaluations", "evaluation_cells"} <= tables
    assert records.record_evaluation(root, results([cell("pick_place", "dim", "light", 1, 2)])) == 1


# -- plans aimed at weak cells --------------------------------------------------------------------------
def test_weak_cells_go_first_and_get_extra_takes(tmp_path):
    root = dataset(tmp_path)
    plain = load_plan(plan_file(tmp_path))
    focused = load_plan(plan_file(tmp_path, "focus: {by: weak_cells, extra_takes: 2}\n"))
    # pick_place evaluated in every cell; dim/heavy the weakest (0 of 4), warm/light next (1 of 4, summed
    # over two themes); pour was never evaluated, so its cells count as 0 %
    evaluated = [cell("pick_place", light, weight, 4, 4) for light in ("bright", "dim", "warm")
                 for weight in ("light", "heavy")]
    evaluated[3] = cell("pick_place", "dim", "heavy", 0, 4)
    evaluated[4] = cell("pick_place", "warm", "light", 1, 2, theme="kitchen")
    evaluated.append(cell("pick_place", "warm", "light", 0, 2, theme="lab"))
    records.record_evaluation(root, results(evaluated))
    policy = records.policy_success(root, ["pick_place", "pour"])
    assert policy.of(("pick_place", "warm", "light"))["rollouts"] == 4 and policy.rate(("pour", "dim", "light")) == 0

    plain_coverage = Coverage.from_rows(plain, [], policy)
    assert next_cell(plain, plain_coverage) == Cell("pick_place", "bright", "light")  # focus off: plan order
    coverage = Coverage.from_rows(focused, [], policy)
    order = []
    rows = []
    while (chosen := next_cell(focused, coverage)) is not None:
        order.append(chosen)
        rows.append({"task": chosen.task, "lighting": chosen.lighting, "weight": chosen.weight, "status": "kept",
                     "outcome": "success", "qa": "pass", "interrupted_by": ""})
        coverage = Coverage.from_rows(focused, rows, policy)
    # 0 % cells first (pick dim/heavy among the never-tried pours, in the plan's order), then 25 %, then 100 %
    first_zero = [c for c in order[:order.index(Cell("pick_place", "warm", "light"))]]
    assert set(first_zero) == {Cell("pick_place", "dim", "heavy")} | {Cell("pour", l, w) for l in ("bright", "dim", "warm")
                                                                       for w in ("light", "heavy")}
    assert order[-1].task == "pick_place" and coverage.policy.rate(order[-1]) == 1.0
    # extra takes: 0 % -> 1 + 2, 25 % -> 1 + round(1.5) = 3, 100 % -> 1
    assert coverage.needed_for(Cell("pick_place", "dim", "heavy")) == 3
    assert coverage.needed_for(Cell("pick_place", "bright", "light")) == 1
    assert coverage.needed == 7 * 3 + 3 + 4 * 1 == len(order)
    assert "lowest policy success first, up to 2 extra take(s)" in focus_note(focused, coverage)


def test_without_an_evaluation_a_focused_plan_keeps_its_order_and_says_so(tmp_path):
    root = dataset(tmp_path)
    focused = load_plan(plan_file(tmp_path, "focus: weak_cells\n"))
    coverage = Coverage.from_rows(focused, [], records.policy_success(root, ["pick_place", "pour"]))
    assert next_cell(focused, coverage) == Cell("pick_place", "bright", "light")
    assert coverage.needed == focused.total_needed
    note = focus_note(focused, coverage)
    assert "no policy evaluation" in note and "sequential order" in note
    assert note in full_report(coverage, [])


@pytest.mark.parametrize("option, words", [
    ("focus: weakest\n", "focus: 'weakest' is not one of: none, weak_cells"),
    ("focus: {by: weakest}\n", "focus.by: 'weakest' is not one of: none, weak_cells"),
    ("focus: {by: weak_cells, extra: 2}\n", "focus.extra: unknown key (expected one of: by, extra_takes)"),
    ("focus: {by: weak_cells, extra_takes: -1}\n", "focus.extra_takes: must be at least 0, got -1"),
    ("focus: {by: none, extra_takes: 2}\n", "focus.extra_takes: needs `by: weak_cells`"),
])
def test_a_broken_focus_option_is_one_line_naming_file_and_line(tmp_path, capsys, option, words):
    path = plan_file(tmp_path, option)
    with pytest.raises(ConfigError) as error:
        load_plan(path)
    assert str(error.value).startswith(f"{path}:12: ") and words in str(error.value)
    assert main(["collect", "--plan", str(path), "--out", str(tmp_path / "out"), "--no-render"]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


# -- coverage side by side ------------------------------------------------------------------------------
def test_coverage_shows_demos_and_policy_success_side_by_side(tmp_path):
    root = dataset(tmp_path)
    plan = load_plan(plan_file(tmp_path))
    records.record_evaluation(root, results([cell("pick_place", "dim", "light", 1, 4),
                                             cell("pick_place", "bright", "light", 4, 4)]))
    rows = [{"task": "pick_place", "lighting": "dim", "weight": "light", "status": "kept", "outcome": "success",
             "qa": "pass", "interrupted_by": ""}]
    coverage = Coverage.from_rows(plan, rows, records.policy_success(root, ["pick_place", "pour"]))
    table = coverage.table()
    line = next(l for l in table.splitlines() if l.startswith("pick_place / light"))
    assert line.split()[3:] == ["0/1", "p", "100%", "1/1", "p", "25%", "0/1", "p", "-"], line
    assert "p: policy success in evaluation 1 of act act.pt" in table
    data = coverage.as_dict()
    by_cell = {(c["task"], c["lighting"], c["weight"]): c for c in data["cells"]}
    assert by_cell[("pick_place", "dim", "light")]["good"] == 1
    assert by_cell[("pick_place", "dim", "light")]["policy_success"] == {"successes": 1, "rollouts": 4,
                                                                         "success_rate": 0.25}
    assert by_cell[("pour", "dim", "light")]["policy_success"] is None
    assert data["policy_evaluations"]["pick_place"]["evaluation_id"] == 1 and "pour" not in data["policy_evaluations"]
    # no evaluation: the table is as before
    assert " p " not in Coverage.from_rows(plan, rows).table()


# -- the commands ---------------------------------------------------------------------------------------
def test_train_registers_its_checkpoint_and_catalog_lists_it(tmp_path, capsys, monkeypatch):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    from collector.dataset.synthetic import write_synthetic_dataset

    monkeypatch.setenv("COLLECTOR_CACHE", str(tmp_path / "cache"))
    root = write_synthetic_dataset(tmp_path / "data", 3, tasks=("pick_place",), duration_s=1.0)
    out = tmp_path / "base.pt"
    assert main(["train", str(root), "--policy", "baseline", "--steps", "2", "--out", str(out), "--image-size",
                 "40x30", "--chunk", "5", "--batch-size", "4", "--no-progress", "--no-plot", "--outcome",
                 "success"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    (policy,) = records.policies(root)
    assert summary["registered"] == [{"dataset": str(root), "policy_id": policy["policy_id"]}]
    trained_on = [r.episode_id for r in Catalog(root / "catalog.sqlite").episodes(outcome="success")]
    assert policy["episodes"] == trained_on and len(trained_on) == 2  # the filter's episodes, not all three
    assert policy["checkpoint"] == str(out) and policy["checkpoint_sha256"] == file_sha256(out)
    assert policy["policy"] == "baseline" and policy["details"]["steps"] == 2

    records.record_evaluation(root, results([cell("pick_place", "dim", "light", 1, 2)], sha=policy["checkpoint_sha256"],
                                            checkpoint=str(out)))
    assert main(["catalog", "policies", str(root)]) == 0
    text = capsys.readouterr().out
    assert "1 policy checkpoint(s)" in text and "base.pt" in text and "1 evaluation(s)" in text and "50%" in text
    assert main(["catalog", "policies", str(root), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["evaluations"][0]["policy_id"] == policy["policy_id"]


def test_train_on_a_folder_without_catalogue_registers_nothing(tmp_path, capsys, monkeypatch):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    from collector.dataset.synthetic import write_sim_episode

    monkeypatch.setenv("COLLECTOR_CACHE", str(tmp_path / "cache"))
    write_sim_episode(tmp_path / "loose", "episode_000001", duration_s=1.0)
    assert main(["train", str(tmp_path / "loose"), "--policy", "baseline", "--steps", "1", "--out",
                 str(tmp_path / "x.pt"), "--image-size", "40x30", "--chunk", "5", "--batch-size", "2", "--no-progress",
                 "--no-plot"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["registered"] == []
    assert not (tmp_path / "loose" / "catalog.sqlite").exists()


def test_catalog_add_evaluation_records_a_results_file(tmp_path, capsys):
    root = dataset(tmp_path)
    good = tmp_path / "results.json"
    good.write_text(json.dumps(results([cell("pour", "warm", "heavy", 2, 5)])))
    assert main(["catalog", "add-evaluation", str(root), str(good)]) == 0
    assert "as evaluation 1 (5 rollouts, 40% success)" in capsys.readouterr().out
    assert records.latest_evaluation(root, "pour")["cells"][0]["successes"] == 2
    for text, words in (("{not json", "not JSON"), (json.dumps({"policy": "act"}), "field 'checkpoint' must be")):
        good.write_text(text)
        assert main(["catalog", "add-evaluation", str(root), str(good)]) == 2
        err = capsys.readouterr().err.strip()
        assert str(good) in err and words in err and len(err.splitlines()) == 1, err
    assert len(records.evaluations(root)) == 1


@pytest.mark.slow
def test_a_focused_session_records_the_weakest_cell_first(tmp_path):
    """One real take through `collector collect`: with pick_place at 0/3 in dim light and 3/3 in bright,
    the sequential plan (bright first) starts in dim light, says why, and reports both columns."""
    root = dataset(tmp_path)
    records.record_evaluation(root, results([cell("pick_place", "bright", "light", 3, 3),
                                             cell("pick_place", "dim", "light", 0, 3)]))
    path = tmp_path / "weak.yaml"
    path.write_text(PLAN.replace("[pick_place, pour]", "[pick_place]").replace("[bright, dim, warm]", "[bright, dim]")
                    .replace("[light, heavy]", "[light]") + "focus: weak_cells\n")
    done = subprocess.run([sys.executable, "-m", "collector", "collect", "--plan", str(path), "--out", str(root),
                           "--no-render", "--no-progress", "--max-takes", "1", "--station", "focus"],
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    (row,) = Catalog(root / "catalog.sqlite").episodes()
    assert (row.task, row.lighting, row.weight) == ("pick_place", "dim", "light")
    output = done.stdout + done.stderr
    assert "focus weak_cells: lowest policy success first, from evaluation 1" in output
    assert "p 0%" in done.stdout and "p 100%" in done.stdout
