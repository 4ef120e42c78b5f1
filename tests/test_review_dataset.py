"""Review labels travel: EpisodeDataset samples (instruction, subtask), its repr/cameras/features, the verdict
filter, and each export (LeRobot v3, robomimic, MCAP) read back with that format's own readers."""
import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from collector.dataset import JobEngine, select_episodes
from collector.dataset.episode_dataset import EpisodeDataset
from collector.dataset.exports.lerobot import SUBTASK_INDEX, export_lerobot
from collector.dataset.exports.lerobot_reader import LeRobotV3Reader
from collector.dataset.exports.mcap import export_mcap
from collector.dataset.exports.robomimic import export_robomimic
from collector.dataset.selection import Filters
from collector.errors import ConfigError
from collector.review.annotations import Labels, Subtask, read_review, save_labels
from collector.session.catalog import Catalog

pytestmark = pytest.mark.dataset(episodes=3, duration_s=1.5)  # the shape of the `dataset` fixture (conftest.py)

T0 = 100.0  # the synthetic episodes' clock starts here (their aligned /timestamps too)
PHRASINGS = ["Put the red cube in the tray.", "Move the cube into the tray, please."]
SEGMENTS = [Subtask("grasp", T0 + 0.3, T0 + 0.6), Subtask("lift", T0 + 0.6, T0 + 1.0)]


@pytest.fixture(scope="module")
def reviewed(dataset, tmp_path_factory):
    """The synthetic dataset with episode 1 accepted by two reviewers (subtasks, two phrasings) and
    episode 2 rejected; episode 3 nobody reviewed. Mirrored into the catalogue as the review page does."""
    root = tmp_path_factory.mktemp("rv") / "data"
    shutil.copytree(dataset, root)
    catalog = Catalog(root / "catalog.sqlite")
    first, second = (root / catalog.episode(i).path for i in (1, 2))
    catalog.record_review(1, save_labels(first, Labels("ana", verdict="accept", subtasks=SEGMENTS,
                                                       instructions=[PHRASINGS[0]])))
    catalog.record_review(1, save_labels(first, Labels("ben", verdict="accept", instructions=[PHRASINGS[1]])))
    catalog.record_review(2, save_labels(second, Labels("ana", verdict="reject", reasons=["collision"])))
    return root


def _expected_subtask(t):
    for segment in reversed(SEGMENTS):  # a later segment wins where two touch
        if segment.start_t <= t <= segment.end_t:
            return segment.name
    return ""


def test_samples_carry_the_instruction_phrasings_and_the_subtask_at_their_time(reviewed):
    ds = EpisodeDataset(reviewed, cameras=["head"], normalize=False)
    first = [ds[i] for i in range(int(ds.starts[0]), int(ds.starts[1]))]
    assert {s["instruction"] for s in first} == {"pick place"}  # the recorded instruction comes first
    assert first[0]["instructions"].split("\n") == ["pick place", *PHRASINGS] == ds.episode_instructions(0)
    subtasks = [s["subtask"] for s in first]
    assert subtasks == [_expected_subtask(s["timestamp"]) for s in first]
    assert subtasks == list(read_review(ds.refs[0].path).subtask_at([s["timestamp"] for s in first]))  # one rule
    assert {"grasp", "lift", ""} <= set(subtasks) and subtasks[0] == "" and subtasks[-1] == ""
    unreviewed = ds[int(ds.starts[2])]
    assert (unreviewed["instructions"], unreviewed["subtask"]) == ("pick place", "")

    torch = pytest.importorskip("torch", reason="torch is the optional 'train' extra")
    from torch.utils.data import DataLoader

    batch = next(iter(DataLoader(ds, batch_size=len(first), shuffle=False)))  # strings of any count batch fine
    assert batch["subtask"] == subtasks and batch["instructions"][0].split("\n")[1:] == PHRASINGS
    assert isinstance(batch["observation.state"], torch.Tensor)


def test_repr_cameras_and_features_describe_the_samples(reviewed):
    ds = EpisodeDataset(reviewed, history=2, chunk=4, normalize=False)
    assert ds.cameras == ["head", "left_wrist"]
    text = repr(ds)
    assert str(reviewed) in text and "3 episodes" in text and f"{len(ds)} samples" in text
    assert "cameras [head, left_wrist]" in text and "observation.images.head (3, 48, 64)" in text
    assert "action (4, 20)" in text
    sample = ds[5]
    features = ds.features
    assert set(features) == set(sample)
    for name, value in sample.items():
        spec = features[name]
        if spec["dtype"] == "string":
            assert isinstance(value, str), name
        else:
            assert np.asarray(value).shape == tuple(spec["shape"]) and np.asarray(value).dtype == spec["dtype"], name
    assert features["observation.state"]["names"][:2] == ["joint_0", "joint_1"]
    assert features["observation.images.head"]["names"] == ["channels", "height", "width"]
    assert "EpisodeDataset(" in EpisodeDataset.__doc__ and "verdict" in EpisodeDataset.__doc__


def test_the_verdict_filter_with_and_without_a_catalogue(reviewed):
    assert [r.episode_id for r in EpisodeDataset(reviewed, verdict="accepted", normalize=False).refs] == \
        ["episode_000001"]
    no_catalogue = select_episodes(reviewed / "episodes", Filters(verdict=["rejected", "unreviewed"]))
    assert [r.episode_id for r in no_catalogue] == ["episode_000002", "episode_000003"]
    with pytest.raises(ConfigError, match="unknown review verdict 'acepted'"):
        EpisodeDataset(reviewed, verdict="acepted")


@pytest.fixture(scope="module")
def refs(reviewed):
    return select_episodes(reviewed)


def test_lerobot_export_carries_tasks_language_and_subtasks(refs, tmp_path):
    out = tmp_path / "lerobot"
    with JobEngine("inline") as engine:
        export_lerobot(refs, out, engine, cameras=["head"])
    tasks = pd.read_parquet(out / "meta" / "tasks.parquet")
    assert {"pick place", "pour", *PHRASINGS} == set(tasks.index)
    episodes = pd.read_parquet(out / "meta" / "episodes" / "chunk-000" / "file-000.parquet")
    first = episodes.iloc[0]
    assert list(first["tasks"]) == ["pick place", *PHRASINGS] and list(episodes.iloc[2]["tasks"]) == ["pick place"]
    assert list(first["subtask_names"]) == ["grasp", "lift"]
    np.testing.assert_allclose(first["subtask_start_times"], [0.3, 0.6], atol=1e-9)
    np.testing.assert_allclose(first["subtask_end_times"], [0.6, 1.0], atol=1e-9)
    assert list(first["subtask_start_frames"]) == [9, 18] and list(first["subtask_end_frames"]) == [18, 30]
    assert len(episodes.iloc[1]["subtask_names"]) == 0
    assert list(episodes["collector/review_verdict"]) == ["accepted", "rejected", "unreviewed"]
    assert json.loads(first["collector/review"])["reviewers"] == 2

    info = json.loads((out / "meta" / "info.json").read_text())
    names = info["collector"]["subtasks"]
    assert names == ["grasp", "lift"] and info["features"][SUBTASK_INDEX]["dtype"] == "int64"
    data = pd.read_parquet(out / "data" / "chunk-000" / "file-000.parquet")
    frames = data[data["episode_index"] == 0]
    assert set(frames["task_index"]) == {int(tasks.loc["pick place", "task_index"])}
    labelled = [names[i] if i >= 0 else "" for i in frames[SUBTASK_INDEX]]
    assert labelled == [_expected_subtask(T0 + t) for t in frames["frame_index"] / 30.0]
    assert set(data[data["episode_index"] == 1][SUBTASK_INDEX]) == {-1}
    reader = LeRobotV3Reader(out)
    read_back = [reader[i] for i in range(len(frames))]
    assert {s["task"] for s in read_back} == {"pick place"} and [s["subtask"] for s in read_back] == labelled


def test_robomimic_export_has_verdict_filter_keys(refs, tmp_path):
    out = tmp_path / "robomimic.hdf5"
    with JobEngine("inline") as engine:
        export_robomimic(refs, out, engine, cameras=["head"])
    with h5py.File(out, "r") as f:  # as robomimic's FileUtils reads a filter key: the demo names in mask/<key>
        assert [d.decode() for d in f["mask/accepted"][:]] == ["demo_0"]
        assert [d.decode() for d in f["mask/rejected"][:]] == ["demo_1"]
        assert json.loads(f["data/demo_0"].attrs["instructions"]) == ["pick place", *PHRASINGS]
        record = json.loads(f["data/demo_0"].attrs["collector"])
        assert record["review_verdict"] == "accepted"
        assert [s["name"] for s in record["review"]["subtasks"]] == ["grasp", "lift"]


def test_mcap_export_carries_the_annotations(refs, tmp_path):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    out = tmp_path / "first.mcap"
    with JobEngine("inline") as engine:
        export_mcap(refs[:1], out, engine)
    with open(out, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        metadata = {m.name: m.metadata for m in reader.iter_metadata()}
        episode_meta = metadata["collector.episode"]
        annotations = metadata["collector.annotations"]
        offset = int(episode_meta["session_clock_offset_ns"])
        subtasks, carried = [], []
        for _, channel, message, ros_msg in reader.iter_decoded_messages(
                topics=["/collector/subtask", "/collector/annotations"], log_time_order=True):
            if channel.topic == "/collector/subtask":
                subtasks.append((ros_msg.data, (message.log_time - offset) / 1e9))
            else:
                carried.append(json.loads(ros_msg.data))
    assert annotations["verdict"] == "accepted" and annotations["reviewers"] == "2"
    assert json.loads(annotations["instructions"]) == ["pick place", *PHRASINGS]
    assert [s["name"] for s in json.loads(annotations["subtasks"])] == ["grasp", "lift"]
    assert [name for name, _ in subtasks] == ["grasp", "lift", ""]
    np.testing.assert_allclose([t for _, t in subtasks], [T0 + 0.3, T0 + 0.6, T0 + 1.0], atol=1e-6)
    assert len(carried) == 1 and carried[0]["verdict"] == "accepted"


def test_export_command_takes_the_verdict_filter(reviewed, tmp_path, capsys):
    from collector.cli import main

    out = tmp_path / "mcaps"
    assert main(["export", str(reviewed), "--to", "mcap", "--out", str(out), "--verdict", "accepted",
                 "--engine", "inline", "--json"]) == 0
    assert [Path(p).stem for p in json.loads(capsys.readouterr().out)["files"]] == ["episode_000001"]
