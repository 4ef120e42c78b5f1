"""EpisodeDataset, episode selection, splits and normalization statistics on real episode files
written by the recorder's EpisodeWriter."""
import json
import multiprocessing
import os

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.dataset import EpisodeDataset, Filters, select_episodes, split_episodes
from collector.dataset.episode import AlignedEpisode
from collector.dataset.normalization import content_key
from collector.dataset.statistics import FeatureStats, merge_all
from collector.dataset.synthetic import frame_code, read_frame_code, write_synthetic_dataset, write_synthetic_episode
from collector.errors import ConfigError, DataError

EPISODES = 6
# the `dataset` fixture (conftest.py): tasks alternate pick_place/pour, lighting bright,bright,dim,dim,...,
# outcomes success,success,failure
pytestmark = pytest.mark.dataset(episodes=EPISODES, duration_s=2.0)


@pytest.fixture()
def cache(tmp_path):
    return tmp_path / "stats-cache"


def test_selection_queries_the_catalogue(dataset):
    everything = select_episodes(dataset)
    assert [r.episode_id for r in everything] == [f"episode_{i:06d}" for i in range(1, EPISODES + 1)]
    dim_pours = select_episodes(dataset, Filters.from_kwargs(task="pour", lighting="dim"))
    assert dim_pours and all(r.task == "pour" and r.lighting == "dim" for r in dim_pours)
    with AlignedEpisode(dim_pours[0].path) as episode:  # the catalogue and the file agree
        assert episode.metadata["task"] == "pour"
        assert episode.conditions["lighting"]["preset"] == "dim"
    failures = select_episodes(dataset, Filters.from_kwargs(outcome="failure"))
    assert [r.outcome for r in failures] == ["failure"] * len(failures) and len(failures) == EPISODES // 3


def test_selection_without_catalogue_reads_file_metadata(dataset, tmp_path):
    folder = tmp_path / "loose"
    folder.mkdir()
    for ref in select_episodes(dataset)[:3]:
        os.link(ref.path, folder / ref.path.name)
    refs = select_episodes(folder, Filters.from_kwargs(task="pick_place"))
    assert {r.task for r in refs} == {"pick_place"} and len(refs) == 2
    assert select_episodes(folder / "episode_000002.hdf5")[0].episode_id == "episode_000002"


def test_selection_errors_name_the_problem(dataset, tmp_path):
    with pytest.raises(DataError, match="lighting=low_light"):  # a preset no episode here was recorded in
        select_episodes(dataset, Filters.from_kwargs(lighting="low_light"))
    with pytest.raises(DataError, match="no such dataset"):
        select_episodes(tmp_path / "missing")
    bogus = tmp_path / "bogus.h5"
    bogus.write_bytes(b"not an hdf5 file at all")
    with pytest.raises(DataError, match="not an HDF5 file"):
        select_episodes(bogus)
    # a list of many files that match nothing: the message names a few of them, not every one
    files = [r.path for r in select_episodes(dataset)]
    with pytest.raises(DataError) as raised:
        select_episodes(files, Filters.from_kwargs(task="no_such_task"))
    message = str(raised.value)
    assert f"and {len(files) - 3} more" in message and str(files[-1]) not in message and len(files) > 3


def test_samples_have_history_chunks_padding_and_the_right_frames(dataset, cache):
    ds = EpisodeDataset(dataset, history=3, chunk=50, normalize=False, cache_dir=cache)
    assert len(ds) == int(ds.lengths.sum()) and ds.cameras == ["head", "left_wrist"]
    first = ds[0]
    assert first["observation.state"].shape == (3, ds.state_dim)
    assert first["observation.state_is_pad"].tolist() == [True, True, False]
    assert first["action"].shape == (50, ds.action_dim) and not first["action_is_pad"].any()
    assert first["observation.images.head"].shape == (3, 48, 64)
    assert first["observation.images.head"].dtype == np.float32 and first["observation.images.head"].max() <= 1.0

    length = int(ds.lengths[0])
    last = ds[length - 1]  # last frame of episode 0: one real action, the rest padded with it
    assert last["episode_index"] == 0 and last["frame_index"] == length - 1
    assert last["action_is_pad"].tolist() == [False] + [True] * 49
    with AlignedEpisode(ds.refs[0].path) as episode:
        actions = episode.read("action")
        qpos = episode.read("observations/qpos")
    np.testing.assert_array_equal(last["action"], np.repeat(actions[-1:], 50, axis=0))
    np.testing.assert_array_equal(ds[10]["action"], actions[10:60])
    np.testing.assert_array_equal(ds[10]["observation.state"], qpos[8:11])

    second = ds[length + 5]  # crosses into episode 1
    assert second["episode_index"] == 1 and second["frame_index"] == 5 and second["task"] == ds.refs[1].task
    # The camera frame of a sample is the one recorded at its row's time (synthetic frames carry a code).
    uint8 = EpisodeDataset(dataset, image_format="hwc_uint8", normalize=False, cache_dir=cache)
    for index in (0, 17, length + 33):
        sample = uint8[index]
        assert abs(read_frame_code(sample["observation.images.head"]) - frame_code(sample["timestamp"])) <= 2
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_normalization_uses_training_episodes_and_is_cached(dataset, cache, monkeypatch):
    ds = EpisodeDataset(dataset, split="train", val_fraction=0.34, chunk=4, cache_dir=cache)
    train_paths = [r.path for r in ds.train_refs]
    qpos = np.concatenate([h5py.File(p)["observations/qpos"][()] for p in train_paths]).astype(np.float64)
    stats = ds.stats["observation.state"]
    np.testing.assert_allclose(stats.mean, qpos.mean(axis=0), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(stats.std, qpos.std(axis=0), rtol=1e-9, atol=1e-12)
    assert stats.count == len(qpos)

    sample = ds[3]
    raw = EpisodeDataset(dataset, split="train", val_fraction=0.34, chunk=4, normalize=False, cache_dir=cache)[3]
    np.testing.assert_allclose(sample["observation.state"] * np.maximum(stats.std, 1e-6) + stats.mean,
                               raw["observation.state"], atol=1e-5)
    np.testing.assert_allclose(ds.unnormalize_action(sample["action"]), raw["action"], atol=1e-5)

    # A second dataset over the same files must not recompute: the cache answers.
    import collector.dataset.normalization as normalization

    def refuse(*args, **kwargs):
        raise AssertionError("statistics recomputed although cached")

    monkeypatch.setattr(normalization, "dataset_feature_stats", refuse)
    again = EpisodeDataset(dataset, split="train", val_fraction=0.34, chunk=4, cache_dir=cache)
    np.testing.assert_array_equal(again.stats["action"].mean, ds.stats["action"].mean)
    # ...but a changed episode file is a new dataset.
    key_before = content_key(train_paths, ["x"], [], 16)
    os.utime(train_paths[0], ns=(1, 1))
    assert content_key(train_paths, ["x"], [], 16) != key_before
    with pytest.raises(AssertionError, match="recomputed"):
        EpisodeDataset(dataset, split="train", val_fraction=0.34, chunk=4, cache_dir=cache)


def test_split_is_by_episode_and_stable_when_episodes_are_added(dataset, cache):
    train = EpisodeDataset(dataset, split="train", val_fraction=0.34, normalize=False, cache_dir=cache)
    val = EpisodeDataset(dataset, split="val", val_fraction=0.34, normalize=False, cache_dir=cache)
    train_ids = {r.episode_id for r in train.refs}
    val_ids = {r.episode_id for r in val.refs}
    assert train_ids and val_ids and not train_ids & val_ids
    assert train_ids | val_ids == {r.episode_id for r in select_episodes(dataset)}
    ids = [f"ep{i}" for i in range(40)]
    before_train, before_val = split_episodes(ids, ids, 0.25, seed=7)
    after_train, after_val = split_episodes(ids + ["new1", "new2"], ids + ["new1", "new2"], 0.25, seed=7)
    assert set(before_val) <= set(after_val) and set(before_train) <= set(after_train)
    assert split_episodes(["a", "b"], ["a", "b"], 0.01)[1]  # never an empty validation set


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 30), min_size=1, max_size=6), st.integers(0, 2 ** 31 - 1))
def test_feature_stats_merge_equals_stats_of_everything(sizes, seed):
    rng = np.random.default_rng(seed)
    parts = [rng.normal(rng.uniform(-5, 5), rng.uniform(0.1, 3), size=(n, 3)) for n in sizes]
    merged = merge_all({"x": FeatureStats.of(p)} for p in parts)["x"]
    whole = np.concatenate(parts)
    np.testing.assert_allclose(merged.mean, whole.mean(axis=0), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(merged.std, whole.std(axis=0), rtol=1e-7, atol=1e-9)
    np.testing.assert_array_equal(merged.min, whole.min(axis=0))
    assert merged.count == len(whole)


def test_feature_stats_refuse_nan():
    with pytest.raises(DataError, match="NaN"):
        FeatureStats.of(np.array([[1.0], [np.nan]]))


def test_dataset_rejects_episodes_that_cannot_be_batched(dataset, tmp_path, cache):
    other = write_synthetic_episode(tmp_path, "wide", duration_s=1.5, n_joints=7, camera_size=(48, 64))
    with pytest.raises(DataError, match="feature shapes"):
        EpisodeDataset([select_episodes(dataset)[0].path, other], normalize=False, cache_dir=cache)
    with pytest.raises(DataError, match="missing /observations/images/top"):
        EpisodeDataset(dataset, cameras=["top"], normalize=False, cache_dir=cache)


def _read_in_worker(args):
    ds, indices = args
    return [(int(ds[i]["episode_index"]), ds[i]["action"].sum()) for i in indices]


def test_dataset_pickles_into_worker_processes(dataset, cache):
    ds = EpisodeDataset(dataset, chunk=8, cache_dir=cache)
    ds[0]  # opens handles in the parent: the workers must not reuse them
    indices = [[0, 5, 70], [100, 150, len(ds) - 1]]
    with multiprocessing.get_context("fork").Pool(2) as pool:
        results = pool.map(_read_in_worker, [(ds, idx) for idx in indices])
    expected = [[(int(ds[i]["episode_index"]), ds[i]["action"].sum()) for i in idx] for idx in indices]
    assert results == expected


def test_torch_dataloader_with_two_workers(dataset, cache):
    torch = pytest.importorskip("torch", reason="torch is the optional 'train' extra")
    from torch.utils.data import DataLoader

    ds = EpisodeDataset(dataset, history=2, chunk=10, cameras=["head"], cache_dir=cache)
    order = list(range(0, len(ds), 7))
    loader = DataLoader(ds, batch_size=8, sampler=order, num_workers=2)
    seen = 0
    for batch_number, batch in enumerate(loader):
        assert batch["observation.images.head"].shape[1:] == (3, 48, 64)
        assert batch["action"].dtype == torch.float32 and batch["action"].shape[1:] == (10, ds.action_dim)
        for k in range(batch["action"].shape[0]):
            expected = ds[order[seen + k]]
            np.testing.assert_array_equal(batch["action"][k].numpy(), expected["action"])
            assert batch["task"][k] == expected["task"]
        seen += batch["action"].shape[0]
    assert seen == len(order)


def test_cache_file_is_json_with_every_feature(dataset, cache):
    EpisodeDataset(dataset, extra_keys=["observations/qvel"], cache_dir=cache)
    (entry,) = list(cache.glob("*.json"))
    content = json.loads(entry.read_text())
    assert set(content["features"]) == {"observation.state", "action", "observation.velocity"}


def test_legacy_h5_episodes_are_still_read_beside_new_hdf5_ones(dataset, tmp_path, cache):
    from collector.recorder.qa import episode_files

    folder = tmp_path / "mixed"
    folder.mkdir()
    first, second = select_episodes(dataset)[:2]
    os.link(first.path, folder / "episode_000001.h5")  # written before finished episodes became .hdf5
    os.link(second.path, folder / second.path.name)
    (folder / "episode_000009.partial.h5").write_bytes(b"a take in progress")  # never selected for training
    refs = select_episodes(folder)
    assert [r.path.name for r in refs] == ["episode_000001.h5", "episode_000002.hdf5"]
    assert [r.episode_id for r in refs] == ["episode_000001", "episode_000002"]
    ds = EpisodeDataset(folder, normalize=False, cache_dir=cache)
    assert len(ds) == int(ds.lengths.sum()) and len(ds.lengths) == 2
    # validate's folder mode checks all three (the partial one is reported, not skipped)
    assert [p.name for p in episode_files(folder)] == ["episode_000001.h5", "episode_000002.hdf5",
                                                       "episode_000009.partial.h5"]


def test_catalog_rebuild_finds_legacy_h5_episodes(tmp_path):
    from collector.session.catalog import Catalog
    from collector.session.layout import DatasetLayout
    from collector.session.rebuild import rebuild_catalog

    root = write_synthetic_dataset(tmp_path / "data", 2, duration_s=0.6, camera_size=(24, 32))
    layout = DatasetLayout(root)
    legacy = layout.episodes_dir / "episode_000001.hdf5"
    legacy.rename(legacy.with_suffix(".h5"))
    layout.catalog_path.unlink()
    assert "2 episode(s)" in rebuild_catalog(layout)
    rows = Catalog(layout.catalog_path).episodes()
    assert [(r.episode_id, r.status, r.path) for r in rows] == [
        ("episode_000001", "kept", "episodes/episode_000001.h5"), ("episode_000002", "kept", "episodes/episode_000002.hdf5")]


@pytest.mark.parametrize("flag, value, words", [
    ("lighting", "dimm", "unknown lighting preset 'dimm' (known: back_lit, bright, cool, dim,"),
    ("weight", "hevy", "unknown weight preset 'hevy' (known: heavy, light, medium)"),
    ("task", "poor", "unknown task 'poor' (known: pick_place, pour)"),
    ("outcome", "sucess", "unknown outcome 'sucess' (known: failure, success, unknown)"),
    ("qa", "passed", "unknown QA state 'passed' (known: fail, pass, pending)"),
])
def test_an_unknown_filter_value_is_named_not_an_empty_match(dataset, tmp_path, flag, value, words):
    with pytest.raises(ConfigError) as caught:  # through the catalogue
        select_episodes(dataset, Filters.from_kwargs(**{flag: value}))
    assert f"--{flag}: {words}" in str(caught.value)
    folder = tmp_path / "loose"  # and in a folder of files without a catalogue
    folder.mkdir()
    os.link(select_episodes(dataset)[0].path, folder / "episode_000001.hdf5")
    with pytest.raises(ConfigError, match=f"unknown .*'{value}'"):
        select_episodes(folder, Filters.from_kwargs(**{flag: value}))


def test_a_name_only_this_dataset_uses_is_a_valid_filter(tmp_path):
    root = write_synthetic_dataset(tmp_path / "data", 2, duration_s=0.6, camera_size=(24, 32), tasks=("wipe_table",))
    assert len(select_episodes(root, Filters.from_kwargs(task="wipe_table"))) == 2


def test_catalog_list_names_an_unknown_preset(dataset, capsys):
    from collector.cli import main

    assert main(["catalog", "list", str(dataset), "--lighting", "dimm"]) == 2
    captured = capsys.readouterr()
    assert "unknown lighting preset 'dimm' (known:" in captured.err and "no episodes match" not in captured.out
    assert main(["catalog", "list", str(dataset), "--weight", "hevy", "--task", "pour"]) == 2
    assert "unknown weight preset 'hevy'" in capsys.readouterr().err
    assert main(["catalog", "list", str(dataset), "--lighting", "low_light"]) == 0  # known, just not recorded here
    assert "no episodes match" in capsys.readouterr().out
    assert main(["catalog", "list", str(dataset), "--lighting", "dim", "--task", "pour"]) == 0
    assert "episode(s)" in capsys.readouterr().out


def test_cameras_by_either_name_and_errors_list_what_exists(dataset, cache):
    by_stream = EpisodeDataset(dataset, cameras=["camera_head"], normalize=False, cache_dir=cache)
    by_view = EpisodeDataset(dataset, cameras=["head"], normalize=False, cache_dir=cache)
    assert by_stream.cameras == by_view.cameras == ["head"]  # one name in the sample keys, whichever was asked
    np.testing.assert_array_equal(by_stream[5]["observation.images.head"], by_view[5]["observation.images.head"])
    with pytest.raises(DataError) as caught:
        EpisodeDataset(dataset, cameras=["camera_top"], normalize=False, cache_dir=cache)
    assert "missing /observations/images/camera_top" in str(caught.value)
    assert "cameras: head, left_wrist (or camera_head, camera_left_wrist)" in str(caught.value)
    with pytest.raises(DataError) as caught:
        EpisodeDataset(dataset, extra_keys=["observations/qvell"], normalize=False, cache_dir=cache)
    assert "missing /observations/qvell" in str(caught.value)
    assert "keys: /action, /observations/effort, /observations/qpos, /observations/qvel" in str(caught.value)
