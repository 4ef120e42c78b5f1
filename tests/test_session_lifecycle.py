"""Episode lifecycle on real episode files: finish + QA, discard / restore, mark, recovery, clean, rebuild.

The episodes are recorded with the real EpisodeWriter from synthetic joint samples (no simulator),
so every lifecycle path is exercised on real HDF5 files in a few seconds.
"""
import h5py
import numpy as np
import pytest

from collector.cli import main
from collector.errors import ConfigError, DataError
from collector.recorder import FieldSpec, StreamSpec
from collector.session.catalog import Catalog
from collector.session.cells import Cell
from collector.session.layout import DatasetLayout, StationLock
from collector.session.lifecycle import EpisodeLifecycle
from collector.session.plan import Plan, TaskSpec

N_JOINTS = 3
STREAMS = [
    StreamSpec("joints", {"position": FieldSpec((N_JOINTS,)), "velocity": FieldSpec((N_JOINTS,)),
                          "effort": FieldSpec((N_JOINTS,))}, 50.0, kind="joints"),
    StreamSpec("command", {"position": FieldSpec((N_JOINTS,))}, 50.0, kind="command"),
]
CONDITIONS = {"lighting": {"preset": "dim"}, "weights": {"preset": "heavy"}, "seed": 1}
PLAN = Plan(name="unit", robot="humanoid", backend="sim", tasks=(TaskSpec("pour", "Pour it"),),
            lighting=("dim",), weights=("heavy",), takes_per_cell=1, episode_time_limit_s=5.0)
CELL = Cell("pour", "dim", "heavy")


@pytest.fixture()
def empty_dataset(tmp_path):
    layout = DatasetLayout(tmp_path / "data").ensure()
    catalog = Catalog(layout.catalog_path)
    lifecycle = EpisodeLifecycle(layout, catalog, PLAN, session_id="s1", station="st1", operator="ana")
    return layout, catalog, lifecycle


def push_samples(writer, seconds=1.5, rate=50.0):
    for i in range(int(seconds * rate)):
        t = i / rate
        q = np.sin(t + np.arange(N_JOINTS)) * 0.1
        assert writer.push("joints", t, position=q, velocity=np.zeros(N_JOINTS), effort=np.zeros(N_JOINTS))
        assert writer.push("command", t, position=q)


def record(lifecycle, outcome="success", seconds=1.5):
    take = lifecycle.begin(CELL, STREAMS, CONDITIONS)
    push_samples(take.writer, seconds)
    return lifecycle.finish(take, outcome, duration_s=seconds)


def test_finished_take_is_kept_with_qa_and_metadata(empty_dataset):
    layout, catalog, lifecycle = empty_dataset
    row = record(lifecycle)
    assert (row.episode_id, row.status, row.outcome, row.qa) == ("episode_000001", "kept", "success", "pass"), row
    path = layout.absolute(row.path)
    assert path == layout.episodes_dir / "episode_000001.hdf5" and path.exists()
    with h5py.File(path) as handle:
        assert handle.attrs["task"] == "pour" and handle.attrs["station"] == "st1"
        assert handle.attrs["outcome"] == "success" and handle.attrs["lighting_preset"] == "dim"
    assert catalog.episode(1).conditions == CONDITIONS


def test_too_short_take_fails_qa_and_says_why(empty_dataset):
    _, _, lifecycle = empty_dataset
    row = record(lifecycle, seconds=0.2)
    assert row.status == "kept" and row.qa == "fail" and row.qa_problems
    assert any("short" in p for p in row.qa_problems), row.qa_problems


def test_discard_keeps_the_file_and_restore_brings_it_back(empty_dataset):
    layout, catalog, lifecycle = empty_dataset
    row = record(lifecycle)
    discarded = lifecycle.discard(row.episode_index)
    assert discarded.status == "discarded"
    assert layout.absolute(discarded.path).parent == layout.discard_dir
    assert layout.absolute(discarded.path).exists() and not (layout.episodes_dir / "episode_000001.hdf5").exists()
    with pytest.raises(DataError, match="already discarded"):
        lifecycle.discard(row.episode_index)
    restored = lifecycle.restore(row.episode_index)
    assert restored.status == "kept" and (layout.episodes_dir / "episode_000001.hdf5").exists()


def test_mark_writes_the_outcome_into_file_and_catalogue(empty_dataset):
    layout, catalog, lifecycle = empty_dataset
    row = record(lifecycle, outcome="unknown")
    marked = lifecycle.mark(row.episode_index, "failure")
    assert marked.outcome == "failure" and catalog.episode(1).outcome == "failure"
    with h5py.File(layout.absolute(row.path)) as handle:
        assert handle.attrs["outcome"] == "failure"


def test_interrupted_take_is_recovered_from_its_partial_file(empty_dataset):
    layout, catalog, lifecycle = empty_dataset
    take = lifecycle.begin(CELL, STREAMS, CONDITIONS)
    push_samples(take.writer, seconds=1.5)
    take.writer.abandon()  # what a killed process leaves behind: a partial file, flushed
    assert catalog.episode(1).status == "recording"
    assert (layout.episodes_dir / "episode_000001.partial.h5").exists()
    (settled,) = lifecycle.recover_interrupted()
    assert settled.status == "recovered" and settled.outcome == "unknown" and settled.qa == "pass", settled
    assert (layout.episodes_dir / "episode_000001.hdf5").exists()
    assert not (layout.episodes_dir / "episode_000001.partial.h5").exists()
    # the next take continues the numbering
    assert record(lifecycle).episode_id == "episode_000002"


def test_take_interrupted_before_any_data_is_marked(empty_dataset):
    layout, catalog, lifecycle = empty_dataset
    catalog.allocate_episode(session_id="s1", plan="unit", task="pour", lighting="dim", weight="heavy",
                             station="st1")
    # another station's take in progress must not be touched
    catalog.allocate_episode(session_id="s2", plan="unit", task="pour", lighting="dim", weight="heavy",
                             station="st2")
    (settled,) = lifecycle.recover_interrupted()
    assert settled.episode_index == 1 and settled.status == "interrupted"
    assert "before any data" in settled.note
    assert catalog.episode(2).status == "recording"


def test_a_corrupt_partial_file_is_moved_aside_not_deleted(empty_dataset):
    layout, catalog, lifecycle = empty_dataset
    catalog.allocate_episode(session_id="s1", plan="unit", task="pour", lighting="dim", weight="heavy",
                             station="st1")
    (layout.episodes_dir / "episode_000001.partial.h5").write_bytes(b"\x89HDF garbage" * 50)
    (settled,) = lifecycle.recover_interrupted()
    assert settled.status == "interrupted" and "recovery failed" in settled.note
    assert (layout.discard_dir / "episode_000001.partial.h5").exists()


def test_station_lock_is_exclusive_per_station(empty_dataset):
    layout, _, _ = empty_dataset
    with StationLock(layout, "st1"):
        with pytest.raises(ConfigError, match="already has a session running"):
            StationLock(layout, "st1").acquire()
        with StationLock(layout, "st2"):
            pass
    StationLock(layout, "st1").acquire().release()


def run_cli(capsys, *args):
    """The CLI's own entry point, in-process: (exit code, stdout, stderr)."""
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_catalog_cli_query_clean_and_rebuild(empty_dataset, capsys):
    layout, catalog, lifecycle = empty_dataset
    first, second = record(lifecycle), record(lifecycle, outcome="failure")
    lifecycle.discard(second.episode_index)
    code, stdout, stderr = run_cli(capsys, "catalog", "list", str(layout.root), "--task", "pour", "--lighting", "dim", "--outcome", "success")
    assert code == 0, stderr
    assert "episode_000001" in stdout and "episode_000002" not in stdout
    code, stdout, stderr = run_cli(capsys, "catalog", "summary", str(layout.root))
    assert code == 0, stderr
    assert "2 episode numbers: 1 discarded, 1 kept" in stdout and "outcomes: 1 success" in stdout
    code, stdout, stderr = run_cli(capsys, "catalog", "clean", str(layout.root))
    assert code == 1 and "--yes" in stdout
    code, stdout, stderr = run_cli(capsys, "catalog", "clean", str(layout.root), "--yes")
    assert code == 0, stderr
    assert catalog.episode(2).status == "purged" and not list(layout.discard_dir.iterdir())
    # the catalogue is an index: rebuild it from the files
    third = record(lifecycle)
    code, stdout, stderr = run_cli(capsys, "catalog", "rebuild", str(layout.root))
    assert code == 2 and "--force" in stderr
    code, stdout, stderr = run_cli(capsys, "catalog", "rebuild", str(layout.root), "--force")
    assert code == 0, stderr
    rebuilt = Catalog(layout.catalog_path)
    rows = {r.episode_id: r for r in rebuilt.episodes()}
    assert set(rows) == {first.episode_id, third.episode_id}
    assert rows[first.episode_id].task == "pour" and rows[first.episode_id].lighting == "dim"
    assert rows[first.episode_id].weight == "heavy" and rows[first.episode_id].outcome == "success"
    code, stdout, stderr = run_cli(capsys, "catalog", "list", str(layout.root / "nowhere"))
    assert code == 2 and "not a dataset" in stderr
