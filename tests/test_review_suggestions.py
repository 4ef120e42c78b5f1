"""Subtask suggestions against the scripted operator's own phases, recorded in real scripted takes.

Takes are recorded once for the module with the scripted operator through the full loop and recorder
(`collector teleop --record` and the rig; the whole plan, not stopping at success; no cameras, which
the suggestions do not use), plus one take whose operator pauses two seconds between phases (idle).
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from collector.review.annotations import Subtask
from collector.review.config import review_config
from collector.review.phases import SKILL_OF_PHASE, phases_to_subtasks, skill_of
from collector.review.suggestions import IDLE_MIN_S, boundary_errors, suggest, truth

ROOT = Path(__file__).resolve().parent.parent
MEDIAN_GOAL_S = 0.2  # issue 17: suggestion median error <= 200 ms


def _teleop_take(out: Path, task: str, seed: int) -> Path:
    """One whole take through `collector teleop --record` (cameras off: the phases do not need them)."""
    done = subprocess.run([sys.executable, "-m", "collector", "teleop", "--task", task, "--seed", str(seed),
                           "--record", str(out), "--no-stop-on-success", "--no-cameras"],
                          cwd=out.parent, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("{")]
    return Path(json.loads(line)["recorded"])


def _rig_take(out: Path, task: str, seed: int, operator=None) -> Path:
    """One whole take of the scripted operator through the rig and recorder, in this process."""
    from collector.teleop.config import load_teleop_config
    from collector.teleop.devices.scripted import ScriptedOperator, operator_phases_metadata
    from collector.teleop.rig import build_sim_rig

    config = load_teleop_config()
    operator = operator or ScriptedOperator(config.devices.scripted)
    rig = build_sim_rig(task=task, device=operator, config=config, render=False, seed=seed)
    try:
        rig.backend.reset(seed=seed)
        writer = rig.recorder(out, f"{task}_{seed}", {"task": task, "sim": True}, queue_seconds=60.0)
        result = rig.run_episode(60.0, sink=writer, seed=seed, stop_on_success=False)
        return writer.stop(outcome="success" if result.success else "failure",
                           metadata_updates=operator_phases_metadata(rig.device))
    finally:
        rig.close()


@pytest.fixture(scope="module")
def takes(tmp_path_factory):
    """A whole scripted pick-and-place take (through `collector teleop`) and a whole pour (through the rig)."""
    out = tmp_path_factory.mktemp("scripted") / "takes"
    return {"pick_place": [_teleop_take(out, "pick_place", seed=31)], "pour": [_rig_take(out, "pour", seed=41)]}


@pytest.fixture(scope="module")
def idle_take(tmp_path_factory):
    """A pick-and-place take whose operator waits 1.8-2.0 s between phases."""
    from collector.teleop.config import ScriptedConfig, load_teleop_config
    from collector.teleop.devices.scripted import ScriptedOperator

    usual = load_teleop_config().devices.scripted
    slow = ScriptedOperator(ScriptedConfig(speed=usual.speed, noise_m=usual.noise_m, reaction_s=[1.8, 2.0]))
    return _rig_take(tmp_path_factory.mktemp("idle"), "pick_place", seed=5, operator=slow)


def _phases(path):
    with h5py.File(path, "r") as f:
        return json.loads(f.attrs["operator_phases"])


def test_the_session_records_the_scripted_operators_phases(demo_take):
    phases = _phases(demo_take)
    names = [p["name"] for p in phases]
    assert names[:4] == ["wait", "approach", "align", "descend"]
    with h5py.File(demo_take, "r") as f:
        stamps = f["timestamps"][...]
        t_end = float(f.attrs["t_end"])
    # On the episode's own clock: contiguous, inside the recording, the last one cut where the take ended.
    assert phases[0]["start_t"] == pytest.approx(stamps[0], abs=0.02)
    assert all(abs(a["end_t"] - b["start_t"]) < 1e-5 for a, b in zip(phases, phases[1:]))
    assert phases[-1]["end_t"] <= t_end + 1e-6
    cut = [p for p in phases if p.get("cut")]
    assert len(cut) <= 1 and (not cut or cut[0] is phases[-1])


def test_every_operator_phase_maps_to_a_skill_of_its_task_or_to_none(takes):
    for task, paths in takes.items():
        skills = review_config(task).skills
        for phase in _phases(paths[0]):
            assert phase["name"] in SKILL_OF_PHASE[task] or skill_of(task, phase["name"]) is not None, phase
            assert skill_of(task, phase["name"]) in skills + [None]
        true = truth(paths[0])
        # The whole plan was performed: every skill of the task, once, in the configured order.
        assert [s.name for s in true] == skills
        assert all(a.end_t <= b.start_t + 1e-9 for a, b in zip(true, true[1:]))


def test_phases_merge_into_subtasks_and_numbered_phases_map_like_their_name():
    phases = [{"name": "wait", "start_t": 0.0, "end_t": 0.5}, {"name": "pour 45%", "start_t": 0.5, "end_t": 1.0},
              {"name": "pour 75%", "start_t": 1.0, "end_t": 2.0}, {"name": "shake 1", "start_t": 2.0, "end_t": 2.2},
              {"name": "shake 1", "start_t": 2.2, "end_t": 2.4}, {"name": "drain", "start_t": 2.4, "end_t": 3.0},
              {"name": "tip back", "start_t": 3.0, "end_t": 4.0}, {"name": "retreat", "start_t": 4.0, "end_t": 5.0}]
    assert phases_to_subtasks("pour", phases) == [Subtask("tilt", 0.5, 1.0), Subtask("pour", 1.0, 3.0),
                                                   Subtask("return", 3.0, 4.0)]
    assert skill_of("pour", "shake 7") == "pour" and skill_of("pour", "juggle") is None


@pytest.mark.parametrize("task", ["pick_place", "pour"])
def test_suggested_boundaries_are_within_200_ms_of_the_operators_phases(takes, task):
    errors = []
    for path in takes[task]:
        suggestions = suggest(path)
        assert [s.name for s in suggestions.subtasks] == review_config(task).skills
        errors.extend(boundary_errors(suggestions.subtasks, truth(path), until=suggestions.end_t))
    errors = np.asarray(errors)
    assert len(errors) >= len(review_config(task).skills) and not np.isnan(errors).any()
    assert float(np.median(errors)) < MEDIAN_GOAL_S, np.round(errors, 3)


def test_boundary_errors_name_each_true_boundary_and_skip_the_episodes_end():
    true = [Subtask("reach", 1.0, 2.0), Subtask("grasp", 2.0, 3.0), Subtask("lift", 4.0, 5.0)]
    suggested = [Subtask("reach", 1.1, 1.9), Subtask("grasp", 1.9, 3.3), Subtask("lift", 3.5, 6.0)]
    # reach start, grasp start, grasp end (a gap follows), lift start; lift's end is the episode's end.
    assert np.allclose(boundary_errors(suggested, true, until=5.0), [0.1, 0.1, 0.3, 0.5])
    assert np.allclose(boundary_errors(suggested, true), [0.1, 0.1, 0.3, 0.5, 1.0])
    missing = boundary_errors([Subtask("reach", 1.0, 2.0)], true, until=5.0)
    assert missing[0] == 0.0 and np.isnan(missing[1:]).all()


def test_idle_stretches_are_the_operators_long_pauses(idle_take):
    suggestions = suggest(idle_take)
    pauses = [p for p in _phases(idle_take) if p["name"] in ("wait", "align", "settle", "let go")
              and p["end_t"] - p["start_t"] > IDLE_MIN_S + 0.3]
    assert len(pauses) >= 3 and suggestions.idle
    for start, end in suggestions.idle:
        assert end - start > IDLE_MIN_S
        # Each stretch lies in a pause of the operator (strokes ease in and out of it by a few tenths).
        assert any(p["start_t"] - 0.3 <= start and end <= p["end_t"] + 0.3 for p in pauses), (start, end, pauses)
    for pause in pauses:  # and each long pause is found
        assert any(min(end, pause["end_t"]) - max(start, pause["start_t"]) > 1.0 for start, end in suggestions.idle)
    # The moves between the pauses are still suggested as subtasks.
    assert [s.name for s in suggestions.subtasks][:3] == ["reach", "grasp", "lift"]


def test_a_take_without_phases_or_grasp_has_no_truth_and_no_subtasks(dataset_episode):
    assert truth(dataset_episode) is None
    suggestions = suggest(dataset_episode)
    # Synthetic joints sway for ever and no gripper closes: nothing idle, no skill to tell apart.
    assert suggestions.end_t > 2.9 and suggestions.idle == [] and suggestions.subtasks == []


@pytest.fixture(scope="module")
def dataset_episode(tmp_path_factory):
    from collector.dataset.synthetic import write_synthetic_episode

    return write_synthetic_episode(tmp_path_factory.mktemp("synthetic"), "synthetic_000", duration_s=3.0)


def test_suggestions_take_under_100_ms_for_ten_minutes(tmp_path):
    """A 10-minute take's streams at the loop's rates (synthetic joints and command at 100 Hz)."""
    import time

    from collector.dataset.synthetic import write_synthetic_episode
    from collector.recorder import EpisodeReader

    path = write_synthetic_episode(tmp_path, "long", duration_s=600.0, cameras=(), control_hz=100.0)
    with EpisodeReader(path) as reader:
        suggest(reader)  # warm: YAML, imports
        cpu = []
        for _ in range(3):
            t0 = time.process_time()
            suggest(reader)
            cpu.append(time.process_time() - t0)
    # CPU time (a loaded machine stretches wall time): ~45 ms here; the benchmark times a scripted take's streams.
    assert min(cpu) < 0.1, cpu
