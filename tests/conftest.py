"""Fixtures shared by several test modules. Code they share that holds no tests lives in tests/helpers/.

pytest's default ("prepend") import mode puts this folder on sys.path before any test module is
imported, so test modules import those helpers as `from helpers.recorder import ...`. Collector
modules are imported inside the fixtures, after MUJOCO_GL is set below.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Rendering must pick its backend before mujoco is imported anywhere in the test session.
os.environ.setdefault("MUJOCO_GL", "egl")
ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config):
    config.addinivalue_line("markers", "dataset(episodes, duration_s): the shape of the module's `dataset` fixture")


@pytest.fixture(scope="module")
def dataset(request, tmp_path_factory):
    """A synthetic dataset (catalogue and episodes, 48x64 cameras) written once per module, shaped by
    the module's `pytestmark = pytest.mark.dataset(episodes=..., duration_s=...)`."""
    from collector.dataset.synthetic import write_synthetic_dataset

    marker = request.node.get_closest_marker("dataset")
    if marker is None:
        pytest.fail(f"{request.node.name} uses the `dataset` fixture without a pytest.mark.dataset(...) shape")
    shape = dict(marker.kwargs)
    root = tmp_path_factory.mktemp("ds") / "data"
    return write_synthetic_dataset(root, shape.pop("episodes"), camera_size=(48, 64), **shape)


@pytest.fixture(scope="module")
def humanoid():
    """The bundled humanoid's RobotSpec (one per module: tests only read it)."""
    from collector.robot import load_robot

    return load_robot("humanoid")


@pytest.fixture(scope="module")
def pick_env():
    """The humanoid at the kitchen pick-and-place table, bright light, medium weight, seed 0."""
    from collector.sim import SimEnv

    env = SimEnv(robot="humanoid", task="pick_place", theme="kitchen", lighting="bright", weight="medium", seed=0)
    yield env
    env.close()


@pytest.fixture(scope="module")
def toy_env(tmp_path_factory):
    """The small two-arm robot of helpers/toy_robots.py at the pick-and-place table."""
    from collector.sim import SimEnv
    from helpers.toy_robots import write_toy_robot

    yaml_path = write_toy_robot(tmp_path_factory.mktemp("toy"))
    env = SimEnv(robot=str(yaml_path), task="pick_place", seed=1)
    yield env
    env.close()


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """A clean 2-second recorder episode (one JPEG and one raw camera) that passes QA."""
    from helpers.recorder import record

    path, _ = record(tmp_path_factory.mktemp("good"), seconds=2.0, codecs=("jpeg", "raw"))
    return path


@pytest.fixture(scope="session")
def demo_take(tmp_path_factory):
    """One real take of `collector demo --episodes 1` (scripted pick-and-place through the full
    teleop loop and recorder), recorded once for the session; tests only read it."""
    from collector.recorder import schema

    root = tmp_path_factory.mktemp("demo")
    done = subprocess.run([sys.executable, "-m", "collector", "demo", "--episodes", "1", "--no-progress",
                           "--out", str(root / "demo")], cwd=root, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    (take,) = schema.episode_files_under(root / "demo" / "episodes", final_only=True)
    return take


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, demo_take):
    """A tiny ACT (head camera at 30x40, chunk 10) trained for 3 steps on `demo_take`: it need not
    succeed at anything, only run through the real loop, recorder and backends."""
    import torch

    from collector.policy.train import TrainConfig, train

    root = tmp_path_factory.mktemp("tiny_policy")
    tiny_act = {"d_model": 32, "feedforward": 64, "encoder_layers": 1, "vae_encoder_layers": 1,
                "cnn_channels": [8, 16], "dropout": 0.0}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COLLECTOR_CACHE", str(root / "cache"))
        torch.manual_seed(0)
        result = train(TrainConfig(sources=[str(demo_take)], out=str(root / "act.pt"), policy="act", steps=3,
                                   hyperparameters=tiny_act, seed=0, cameras=["head"], image_size=(30, 40),
                                   chunk=10, batch_size=4, lr=1e-3, progress=False, checkpoint_every=10_000))
    return Path(result.checkpoint)


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium under Selenium (one per module: it takes seconds to start)."""
    from helpers.browser import chromium

    with chromium() as driver:
        yield driver


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server (Debian's), started once for the session in a temporary folder."""
    from helpers.postgres import PostgresServer

    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server):
    """The URL of a fresh, empty database on the session's PostgreSQL server."""
    return postgres_server.new_database()


@pytest.fixture(params=["sqlite", "postgres"])
def catalog_location(request, tmp_path):
    """Where a catalogue lives, once per engine: a dataset folder's catalog.sqlite, then a PostgreSQL URL."""
    if request.param == "sqlite":
        return tmp_path / "catalog.sqlite"
    return request.getfixturevalue("postgres_server").new_database()
