"""Dataset-wide jobs on the Dask engine (loopback only): same result on one and on two workers,
per-episode failures reported instead of aborting, and the `stats` / `check` commands."""
import json
import shutil

import h5py
import numpy as np
import psutil
import pytest

from collector.cli import main
from collector.dataset import EpisodeRef, JobEngine, select_episodes
from collector.dataset.jobs.tasks import reduce_statistics, statistics_task
from collector.dataset.normalization import dataset_feature_stats
from collector.errors import ConfigError, DataError
from collector.session.catalog import Catalog

KEYS = ["observations/qpos", "action"]
pytestmark = pytest.mark.dataset(episodes=5, duration_s=1.5)  # the shape of the `dataset` fixture (conftest.py)


def _is_loopback(address: str) -> bool:
    return address.startswith("tcp://127.0.0.1:")


def test_same_statistics_on_one_and_two_workers_and_inline(dataset):
    paths = [r.path for r in select_episodes(dataset)]
    results = {}
    for workers in (1, 2):
        with JobEngine("dask", workers=workers, progress=False) as engine:
            engine.start()
            # Every socket of the local cluster is on loopback: nothing leaves the machine.
            assert _is_loopback(engine.scheduler_address)
            addresses = engine.worker_addresses()
            assert len(addresses) == workers and all(_is_loopback(a) for a in addresses)
            # ...and so is every TCP socket the nanny and worker processes hold.
            sockets = [c for child in psutil.Process().children(recursive=True)
                       for c in child.net_connections(kind="tcp")]
            assert sockets and all(c.laddr.ip == "127.0.0.1" and (not c.raddr or c.raddr.ip == "127.0.0.1")
                                   for c in sockets)
            results[workers] = dataset_feature_stats(paths, KEYS, cameras=["head"], engine=engine)
    results["inline"] = dataset_feature_stats(paths, KEYS, cameras=["head"])
    for name in ("observation.state", "action", "observation.images.head"):
        for other in (2, "inline"):
            for field in ("count", "mean", "m2", "min", "max"):
                np.testing.assert_array_equal(getattr(results[1][name], field), getattr(results[other][name], field))
    stacked = np.concatenate([np.asarray(h5py.File(p)["action"], np.float64) for p in paths])
    np.testing.assert_allclose(results[2]["action"].mean, stacked.mean(axis=0), rtol=1e-12, atol=1e-12)


def test_a_broken_episode_is_reported_and_the_others_still_run(dataset, tmp_path):
    refs = select_episodes(dataset)
    broken = tmp_path / "episode_broken.h5"
    shutil.copy(refs[0].path, broken)
    with open(broken, "r+b") as f:  # overwrite the middle of the file: the HDF5 structures are lost
        f.seek(2048)
        f.write(b"\0" * 65536)
    items = [refs[1], EpisodeRef(path=broken, episode_id="broken"), refs[2]]
    with JobEngine("inline") as engine:
        outcomes = engine.map(statistics_task, items, images=False)
    assert [o.ok for o in outcomes] == [True, False, True]
    assert "broken" in str(outcomes[1].item.path) and outcomes[1].error
    totals = reduce_statistics([o.value for o in outcomes if o.ok])
    assert totals["episodes"] == 2


def test_engine_configuration_errors():
    with pytest.raises(ConfigError, match="not in"):
        JobEngine("ray")
    with pytest.raises(ConfigError, match="workers must be at least 1"):
        JobEngine("dask", workers=0)
    with pytest.raises(ConfigError, match="dask engine"):
        JobEngine("inline", address="tcp://127.0.0.1:1")


def test_unreachable_scheduler_is_a_clear_error():
    # Port 9 on loopback (discard service) has no Dask scheduler: the connection is refused locally.
    with pytest.raises(ConfigError, match="cannot start the Dask job engine"):
        JobEngine("dask", address="tcp://127.0.0.1:9", connect_timeout_s=1.0).start()


def test_stats_command_reports_coverage_streams_and_features(dataset, tmp_path, capsys):
    out = tmp_path / "stats.json"
    code = main(["stats", str(dataset), "--engine", "inline", "--json", "--out", str(out), "--lighting", "bright"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    bright = [r for r in select_episodes(dataset) if r.lighting == "bright"]
    assert report["episodes"] == len(bright)
    assert sum(c["episodes"] for c in report["coverage"]) == len(bright)
    assert {c["lighting"] for c in report["coverage"]} == {"bright"}
    assert report["streams"]["joints"]["samples"] == 150 * len(bright)
    assert report["streams"]["joints"]["dropped"] == 0
    written = json.loads(out.read_text())
    assert len(written["observation.images.head"]["mean"]) == 3 and len(written["action"]["mean"]) == 20


def test_check_command_validates_in_parallel_and_updates_the_catalogue(dataset, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(dataset, copy)
    catalog = Catalog(copy / "catalog.sqlite")
    victim = catalog.episode(3)
    with open(copy / victim.path, "r+b") as f:
        f.seek(4096)
        f.write(b"\xff" * 100000)
    code = main(["check", str(copy), "--workers", "2", "--update-catalog", "--json", "--no-progress"])
    results = json.loads(capsys.readouterr().out)
    assert code == 1 and results["failed"] == 1 and results["checked"] == 5
    assert results["episodes"][victim.episode_id]
    assert all(not problems for eid, problems in results["episodes"].items() if eid != victim.episode_id)
    assert catalog.episode(3).qa == "fail" and catalog.episode(3).qa_problems
    assert {r.qa for r in catalog.episodes() if r.episode_index != 3} == {"pass"}


def test_check_of_unknown_dataset_is_one_line_error(tmp_path, capsys):
    assert main(["check", str(tmp_path / "nothing"), "--engine", "inline"]) == 2
    assert "no such dataset folder" in capsys.readouterr().err


def test_statistics_of_a_partial_selection_raise_naming_the_episode(tmp_path):
    with pytest.raises(DataError, match="statistics failed"):
        dataset_feature_stats([tmp_path / "missing.h5"], KEYS)
