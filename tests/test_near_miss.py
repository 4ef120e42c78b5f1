"""Recovery demonstrations: the scripted operator's near misses (devices.scripted.near_miss_share)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from collector.backends.sim import SimBackend
from collector.errors import ConfigError
from collector.sim import SimEnv
from collector.teleop.config import load_teleop_config
from collector.teleop.devices.base import DeviceContext
from collector.teleop.devices.scripted import ScriptedOperator
from collector.teleop.loop import TeleopLoop
from collector.teleop.transforms import quat_to_mat

ROOT = Path(__file__).resolve().parents[1]
DT = 0.01


def miss_config(share=1.0, low=0.03, high=0.06):
    return load_teleop_config(overrides={"devices": {"scripted": {"near_miss_share": share,
                                                                  "near_miss_m": [low, high]}}})


@pytest.fixture(scope="module")
def pick_loop():
    env = SimEnv(robot="humanoid", task="pick_place", seed=4)
    backend = SimBackend(env, render=False)
    loop = TeleopLoop(backend, device=ScriptedOperator(load_teleop_config().devices.scripted))
    yield backend, loop
    loop.close()
    env.close()


def planned(pick_loop, cfg, seed):
    backend, loop = pick_loop
    op = ScriptedOperator(cfg.devices.scripted, seed=seed)
    backend.reset(seed=4)
    op.start(DeviceContext(backend, loop.retargeter, loop.kin, DT))
    return op.plan


def test_a_near_miss_lowers_the_open_gripper_beside_the_grasp_point_then_re_aims_from_above(pick_loop):
    for seed in range(4):
        segments = planned(pick_loop, miss_config(), seed).segments
        names = [s.name for s in segments]
        assert names.index("approach") < names.index("notice miss") < names.index("lift clear") \
            < names.index("re-aim") < names.index("grasp"), names
        descents = [s for s in segments if s.name == "descend"]
        assert len(descents) == 2, names
        side = next(side for side, c in segments[names.index("grasp")].closure.items() if c == 1.0)
        missed, grasped = descents[0].poses[side][0], descents[1].poses[side][0]
        off = np.linalg.norm(missed[:2] - grasped[:2])
        assert 0.03 - 0.004 <= off <= 0.06 + 0.004, off  # the aim's own error is at most 3 mm an axis
        assert -0.003 <= missed[2] - grasped[2] <= 0.033
        # short of the grasp point or past it, across the closing fingers (never lowering one onto the object)
        forward = quat_to_mat(grasp_quat := descents[1].poses[side][1])[:2, 0]
        along = abs(float(np.dot(missed[:2] - grasped[:2], forward / np.linalg.norm(forward)))) / off
        assert along > np.cos(np.radians(25 + 8)), (along, grasp_quat)
        # The gripper is open until the real grasp; the last descent comes straight down from the re-aim.
        before = segments[:names.index("grasp")]
        assert all(s.closure[side] == 0.0 for s in before)
        re_aim = segments[names.index("re-aim")].poses[side][0]
        assert np.linalg.norm(re_aim[:2] - grasped[:2]) < 0.006 and re_aim[2] > grasped[2] + 0.03


def test_the_share_decides_per_take_and_none_leaves_the_plan_as_it_was(pick_loop):
    default = [s.name for s in planned(pick_loop, load_teleop_config(), 7).segments]
    assert [s.name for s in planned(pick_loop, miss_config(share=0.0), 7).segments] == default
    assert "notice miss" not in default
    missed = ["notice miss" in [s.name for s in planned(pick_loop, miss_config(share=0.5), seed).segments]
              for seed in range(16)]
    assert 2 <= sum(missed) <= 14, missed


@pytest.mark.parametrize("override, named", [
    ({"near_miss_share": 1.5}, "devices.scripted.near_miss_share"),
    ({"near_miss_m": [0.05, 0.02]}, "devices.scripted.near_miss_m"),
    ({"near_miss_m": [0.05]}, "devices.scripted.near_miss_m"),
])
def test_bad_near_miss_settings_are_one_line(override, named):
    with pytest.raises(ConfigError) as err:
        load_teleop_config(overrides={"devices": {"scripted": override}})
    assert named in str(err.value) and "\n" not in str(err.value)


def collect(tmp_path, *extra):
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump({
        "name": "near_miss", "robot": "humanoid", "backend": "sim", "operator": "scripted", "scene": "kitchen",
        "tasks": ["pick_place"], "lighting": ["bright"], "weights": ["light"], "takes_per_cell": 1,
        "max_attempts_per_cell": 1, "episode_time_limit_s": 20, "seed": 12, "reset": "auto", "outcome": "auto"}))
    return subprocess.run([sys.executable, "-m", "collector", "collect", "--plan", str(plan), "--out",
                           str(tmp_path / "data"), "--no-render", "--no-progress", *extra], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=300)


def test_collect_with_a_near_miss_operator_records_the_miss_and_the_recovery(tmp_path):
    config = tmp_path / "near_miss.yaml"
    config.write_text("devices:\n  scripted:\n    near_miss_share: 1.0\n")
    done = collect(tmp_path, "--teleop-config", str(config))
    assert done.returncode == 0, done.stderr[-2000:]
    (episode,) = sorted((tmp_path / "data" / "episodes").glob("*.hdf5"))
    with h5py.File(episode) as f:
        phases = [p["name"] for p in json.loads(f.attrs["operator_phases"])]
        outcome = f.attrs["outcome"]
    assert "notice miss" in phases and phases.index("re-aim") < phases.index("grasp"), phases
    assert outcome == "success"


def test_a_missing_or_wrong_teleop_config_is_one_line_and_creates_no_dataset(tmp_path):
    for path, named in ((tmp_path / "absent.yaml", "does not exist"), (tmp_path / "bad.yaml", "near_miss_share")):
        if path.name == "bad.yaml":
            path.write_text("devices:\n  scripted:\n    near_miss_share: -0.1\n")
        done = collect(tmp_path, "--teleop-config", str(path))
        assert done.returncode != 0
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and named in lines[0] and "Traceback" not in done.stderr, done.stderr
        assert not (tmp_path / "data").exists()
