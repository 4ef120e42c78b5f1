"""Exports to LeRobot v3, robomimic and MCAP, read back with each format's own readers."""
import json
import re
from pathlib import Path

import cv2
import h5py
import numpy as np
import pandas as pd
import pytest

from collector.cli import main
from collector.dataset import JobEngine, select_episodes
from collector.dataset.episode import AlignedEpisode
from collector.dataset.exports.lerobot import export_lerobot
from collector.dataset.exports.lerobot_reader import LeRobotV3Reader
from collector.dataset.exports.mcap import export_mcap
from collector.dataset.exports.robomimic import export_robomimic
from collector.dataset.synthetic import frame_code, read_frame_code, write_synthetic_dataset
from collector.episodes.ros2_msgdefs import DEFINITIONS
from collector.errors import DataError
from collector.recorder.reader import EpisodeReader


pytestmark = pytest.mark.dataset(episodes=4, duration_s=1.5)  # the shape of the `dataset` fixture (conftest.py)


@pytest.fixture(scope="module")
def refs(dataset):
    return select_episodes(dataset)


@pytest.fixture(scope="module")
def lerobot(refs, tmp_path_factory):
    out = tmp_path_factory.mktemp("lr") / "lerobot"
    # a tiny video file limit makes the exporter start a new MP4 after every episode or two
    with JobEngine("inline") as engine:
        summary = export_lerobot(refs, out, engine, source="test", video_file_mb=0.02)
    return out, summary


def test_lerobot_layout_and_metadata(lerobot, refs):
    root, summary = lerobot
    info = json.loads((root / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == 30
    assert info["total_episodes"] == len(refs) == summary["episodes"]
    assert info["features"]["observation.images.head"]["dtype"] == "video"
    assert info["features"]["observation.images.head"]["shape"] == [48, 64, 3]
    assert info["features"]["observation.state"]["names"][:2] == ["joint_0", "joint_1"]
    assert info["collector"]["episode_ids"] == [r.episode_id for r in refs]
    tasks = pd.read_parquet(root / "meta" / "tasks.parquet")
    assert set(tasks.index) == {"pick place", "pour"} and sorted(tasks["task_index"]) == [0, 1]
    episodes = pd.read_parquet(root / "meta" / "episodes" / "chunk-000" / "file-000.parquet").to_dict("records")
    for row, ref in zip(episodes, refs):
        assert row["collector/episode_id"] == ref.episode_id
        assert row["collector/lighting"] == ref.lighting and row["collector/outcome"] == ref.outcome
        assert json.loads(row["collector/conditions"])["lighting"]["preset"] == ref.lighting
        assert Path(row["collector/source_path"]) == ref.path.resolve()
    assert episodes[1]["dataset_from_index"] == episodes[0]["dataset_to_index"]
    files = {row["videos/observation.images.head/file_index"] for row in episodes}
    assert len(files) > 1  # the size limit split the video into several files
    for path in root.rglob("*.mp4"):
        assert re.fullmatch(r"file-\d{3}\.mp4", path.name)


def test_lerobot_data_and_stats_match_the_episodes(lerobot, refs):
    root, _ = lerobot
    data = pd.read_parquet(root / "data" / "chunk-000" / "file-000.parquet")
    assert data["index"].tolist() == list(range(len(data)))
    first = data[data["episode_index"] == 0]
    with AlignedEpisode(refs[0].path) as episode:
        qpos = episode.read("observations/qpos")
        action = episode.read("action")
    np.testing.assert_array_equal(np.stack(first["observation.state"].to_numpy()), qpos)
    np.testing.assert_array_equal(np.stack(first["action"].to_numpy()), action)
    np.testing.assert_allclose(first["timestamp"].to_numpy(), np.arange(len(first)) / 30.0, atol=1e-6)
    stats = json.loads((root / "meta" / "stats.json").read_text())
    everything = np.stack(data["action"].to_numpy()).astype(np.float64)
    np.testing.assert_allclose(stats["action"]["mean"], everything.mean(axis=0), rtol=1e-6, atol=1e-9)
    assert np.asarray(stats["observation.images.head"]["mean"]).shape == (3, 1, 1)


def test_lerobot_frames_decode_to_the_recorded_frames(lerobot, refs):
    root, _ = lerobot
    reader = LeRobotV3Reader(root, chunk=5)
    assert len(reader) == sum(AlignedEpisode(r.path).length for r in refs)
    for episode in range(len(refs)):
        with AlignedEpisode(refs[episode].path) as source:
            stamps = source.read("timestamps")
            for row in (0, 22, source.length - 1):
                decoded = reader.frames(episode, "head", [row])[0]
                original = source.images("head", [row])[0]
                assert abs(read_frame_code(decoded) - frame_code(stamps[row])) <= 3
                assert np.abs(decoded.astype(int) - original.astype(int)).mean() < 6


def _robomimic(refs, out):
    with JobEngine("inline") as engine:
        return export_robomimic(refs, out, engine, source="test", val_fraction=0.3)


def test_robomimic_file_structure_masks_and_provenance(refs, tmp_path):
    out = tmp_path / "demo.hdf5"
    summary = _robomimic(refs, out)
    assert summary["demos"] == len(refs)
    assert not list(tmp_path.glob(".*"))  # no work files left behind
    with h5py.File(out, "r") as f:
        data = f["data"]
        assert data.attrs["total"] == sum(data[f"demo_{i}"].attrs["num_samples"] for i in range(len(refs)))
        env_args = json.loads(data.attrs["env_args"])
        assert env_args["env_name"] == "collector/humanoid" and "obs_keys" in env_args["env_kwargs"]
        demo = data["demo_1"]
        with AlignedEpisode(refs[1].path) as episode:
            undone = demo["actions"][()] * data.attrs["action_scale"] + data.attrs["action_offset"]
            np.testing.assert_allclose(undone, episode.read("action"), rtol=0, atol=1e-6)
            np.testing.assert_array_equal(demo["obs/head_image"][5], episode.images("head", [5])[0])
        np.testing.assert_array_equal(demo["next_obs/qpos"][:-1], demo["obs/qpos"][1:])
        np.testing.assert_array_equal(demo["next_obs/qpos"][-1], demo["obs/qpos"][-1])
        assert demo["dones"][-1] == 1 and demo["dones"][:-1].sum() == 0
        record = json.loads(demo.attrs["collector"])
        assert record["episode_id"] == refs[1].episode_id and record["conditions"]["lighting"]["preset"]
        masks = {k: sorted(v.decode() for v in f["mask"][k][()]) for k in f["mask"]}
    names = {f"demo_{i}" for i in range(len(refs))}
    assert set(masks["train"]) | set(masks["valid"]) == names and not set(masks["train"]) & set(masks["valid"])
    for i, ref in enumerate(refs):
        assert f"demo_{i}" in masks[f"lighting_{ref.lighting}"] and f"demo_{i}" in masks[f"outcome_{ref.outcome}"]
    assert int(demo_reward_sum(out)) == sum(r.outcome == "success" for r in refs)


def _robomimic_action_bounds(path):
    """What robomimic's scripts/get_dataset_info.py checks: the min and max over every demo's actions."""
    with h5py.File(path, "r") as f:
        actions = [f["data"][name]["actions"][()] for name in f["data"]]
    return min(a.min() for a in actions), max(a.max() for a in actions)


def test_robomimic_actions_are_scaled_into_minus_one_one_and_can_be_undone(refs, tmp_path):
    out = tmp_path / "scaled.hdf5"
    _robomimic(refs, out)
    lo, hi = _robomimic_action_bounds(out)
    assert -1.0 <= lo and hi <= 1.0 and hi - lo > 1.5  # the whole range is used, not squeezed
    with h5py.File(out, "r") as f:
        data = f["data"]
        scale, offset = data.attrs["action_scale"], data.attrs["action_offset"]
        # synthetic episodes carry no joint_limits: the range is the dataset's own per-dimension min/max
        assert data.attrs["action_normalization"] == "dataset_min_max"
        assert json.loads(data.attrs["env_args"])["env_kwargs"]["action_scale"] == pytest.approx(list(scale))
        assert data.attrs["action_formula"] == "raw = actions * action_scale + action_offset"
        for i, ref in enumerate(refs):
            with AlignedEpisode(ref.path) as episode:
                original = episode.read("action")
            undone = data[f"demo_{i}"]["actions"][()].astype(np.float64) * scale + offset
            np.testing.assert_allclose(undone, original, rtol=0, atol=4 * np.finfo(np.float32).eps * np.abs(scale).max())
    raw = tmp_path / "raw.hdf5"
    assert main(["export", str(refs[0].path), "--to", "robomimic", "-o", str(raw), "--raw-actions",
                 "--engine", "inline"]) == 0
    with h5py.File(raw, "r") as f:
        assert f["data"].attrs["action_normalization"].startswith("none")
        np.testing.assert_array_equal(f["data"].attrs["action_scale"], 1.0)
        with AlignedEpisode(refs[0].path) as episode:
            np.testing.assert_array_equal(f["data/demo_0/actions"][()], episode.read("action"))


def demo_reward_sum(path):
    with h5py.File(path, "r") as f:
        return sum(f["data"][name]["rewards"][()].sum() for name in f["data"])


def test_export_refuses_to_overwrite_and_leaves_nothing_on_failure(refs, tmp_path):
    out = tmp_path / "demo.hdf5"
    _robomimic(refs[:1], out)
    with pytest.raises(DataError, match="exists"):
        _robomimic(refs[:1], out)
    broken = tmp_path / "episode_x.h5"
    broken.write_bytes(Path(refs[0].path).read_bytes()[:5000])
    bad = [refs[0], type(refs[0])(path=broken, episode_id="x")]
    with pytest.raises(DataError, match="failed for 1 episode"):
        with JobEngine("inline") as engine:
            export_robomimic(bad, tmp_path / "other.hdf5", engine)
    assert not (tmp_path / "other.hdf5").exists() and not list(tmp_path.glob(".other*"))


def test_mcap_export_reads_back_with_ros2_decoding(refs, tmp_path):
    from datetime import datetime

    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    with JobEngine("inline") as engine:
        result = export_mcap(refs[:1], tmp_path / "one.mcap", engine, source="test")
    path = Path(result["files"][0])
    with EpisodeReader(refs[0].path) as reader:
        counts = {"/joint_states": reader.count("joints"), "/collector/command": reader.count("command"),
                  "/head/image_raw/compressed": reader.count("camera_head"),
                  "/left_wrist/image_raw/compressed": reader.count("camera_left_wrist"),
                  "/illuminance": reader.count("illuminance"), "/collector/episode": 1}
        positions = reader.raw("joints", "position")[()]
        first_frame = reader.images("head")[0]
        started = reader.metadata["started_at"]
    seen = {topic: 0 for topic in counts}
    joint_positions = []
    with open(path, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        for _, channel, message, ros_msg in reader.iter_decoded_messages():
            seen[channel.topic] += 1
            if channel.topic == "/joint_states":
                joint_positions.append(list(ros_msg.position))
                if len(joint_positions) == 1:
                    assert list(ros_msg.name)[:2] == ["joint_0", "joint_1"]
                    first_log = message.log_time
            if channel.topic == "/head/image_raw/compressed" and seen[channel.topic] == 1:
                assert ros_msg.format == "jpeg"
                decoded = cv2.imdecode(np.frombuffer(ros_msg.data, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
                # a standard JPEG: decoded the standard way it shows the recorded colours (not R/B swapped)
                assert np.abs(decoded.astype(int) - first_frame.astype(int)).mean() < 4
    assert seen == counts
    np.testing.assert_array_equal(np.asarray(joint_positions), positions)
    # log times are wall-clock: the first sample (all streams start together here) at started_at
    assert abs(first_log / 1e9 - datetime.fromisoformat(started).timestamp()) < 1e-3
    with open(path, "rb") as f:
        (metadata,) = list(make_reader(f).iter_metadata())
    assert metadata.name == "collector.episode"
    assert json.loads(metadata.metadata["conditions"])["lighting"]["preset"] == refs[0].lighting
    assert json.loads(metadata.metadata["provenance"])["episode_id"] == refs[0].episode_id


def test_mcap_schemas_match_the_installed_ros_interfaces():
    """The definitions shipped for machines without ROS 2 equal the interface files of ROS 2 Kilted."""
    import sensor_msgs

    share = Path(sensor_msgs.__file__).resolve().parents[3] / "share"
    if not share.is_dir():
        share = Path(__import__("sys").prefix) / "share"
    for name, text in DEFINITIONS.items():
        package, msg = name.split("/")
        source = share / package / "msg" / f"{msg}.msg"
        lines = [re.sub(r"\s+", " ", line.split("#")[0]).strip() for line in source.read_text().splitlines()]
        expected = [line for line in lines if line and "=" not in line]
        assert text.splitlines() == expected, name


def test_export_command_with_filters_exports_only_matching_episodes(dataset, refs, tmp_path, capsys):
    out = tmp_path / "mcaps"
    code = main(["export", str(dataset), "--to", "mcap", "--out", str(out), "--lighting", "dim",
                 "--engine", "inline", "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    dim = [r.episode_id for r in refs if r.lighting == "dim"]
    assert sorted(Path(p).stem for p in result["files"]) == sorted(dim) and result["s_per_episode"] > 0
    assert main(["export", str(dataset), "--to", "lerobot", "--out", str(tmp_path / "lr"), "--task", "nope",
                 "--engine", "inline"]) == 2
    assert "unknown task 'nope'" in capsys.readouterr().err


@pytest.fixture(scope="module")
def flawed(tmp_path_factory):
    """Three episodes: 1 good, 2 empty (recovered after a crash at the start, QA failed), 3 complete
    but failed QA in the catalogue."""
    from collector.recorder import EpisodeWriter
    from collector.recorder.streams import FieldSpec, StreamSpec
    from collector.session.catalog import Catalog
    from collector.session.layout import DatasetLayout
    from collector.session.lifecycle import EpisodeLifecycle

    root = write_synthetic_dataset(tmp_path_factory.mktemp("flawed") / "data", 3, duration_s=1.0, camera_size=(24, 32))
    layout = DatasetLayout(root)
    catalog = Catalog(layout.catalog_path)
    empty_row, frozen_row = catalog.episodes()[1:]
    layout.absolute(empty_row.path).unlink()
    n = 20
    specs = [StreamSpec("joints", {f: FieldSpec((n,)) for f in ("position", "velocity", "effort")}, 100.0,
                        kind="joints"), StreamSpec("command", {"position": FieldSpec((n,))}, 100.0, kind="command")]
    writer = EpisodeWriter(layout.episodes_dir, empty_row.episode_id, specs, metadata={"sim": True}, min_free_bytes=0)
    writer.start()
    empty = writer.stop(outcome="unknown")
    problems = EpisodeLifecycle.qa(empty)
    assert problems
    catalog.update_episode(empty_row.episode_index, status="recovered", qa="fail", qa_problems=problems,
                           path=layout.relative(empty))
    catalog.update_episode(frozen_row.episode_index, qa="fail", qa_problems=["camera 'head' frozen for 0.8 s"])
    return root


@pytest.mark.parametrize("kind", ["lerobot", "robomimic", "mcap"])
def test_export_skips_episodes_that_fail_qa_with_one_warning_each(flawed, tmp_path, capsys, kind):
    out = tmp_path / ("out.hdf5" if kind == "robomimic" else "out")
    code = main(["export", str(flawed), "--to", kind, "--out", str(out), "--engine", "inline", "--no-progress", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    warnings = [line for line in captured.err.splitlines() if "warning" in line]
    assert len(warnings) == 2, captured.err
    assert warnings[0].startswith("collector export: warning: skipped episode_000002 (")
    assert "QA failed:" in warnings[0] and "stream 'joints' has no samples" in warnings[0]
    assert "skipped episode_000003" in warnings[1] and "camera 'head' frozen for 0.8 s" in warnings[1]
    result = json.loads(captured.out)
    assert result["episodes_in"] == 1 and [s["episode_id"] for s in result["skipped"]] == ["episode_000002",
                                                                                           "episode_000003"]
    assert out.exists()
    if kind == "robomimic":
        with h5py.File(out, "r") as f:
            assert list(f["data"]) == ["demo_0"]
            assert json.loads(f["data/demo_0"].attrs["collector"])["episode_id"] == "episode_000001"


def test_export_strict_refuses_and_qa_fail_filter_keeps_the_failed_ones(flawed, tmp_path, capsys):
    out = tmp_path / "strict"
    code = main(["export", str(flawed), "--to", "lerobot", "--out", str(out), "--engine", "inline", "--strict"])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert "--strict: 2 of 3 episode(s) cannot be exported: episode_000002: QA failed:" in err
    assert "episode_000003: QA failed: camera 'head' frozen" in err and len(err.strip().splitlines()) == 1
    # asked for explicitly, a QA-failed episode the format can take is exported; the empty one never is
    code = main(["export", str(flawed), "--to", "robomimic", "--out", str(tmp_path / "f.hdf5"), "--qa", "fail",
                 "--engine", "inline", "--no-progress"])
    captured = capsys.readouterr()
    err = captured.err
    assert code == 0 and "exported 1 episode(s)" in captured.out, err
    assert "skipped episode_000002" in err and "no /observations/qpos or /action" in err
    assert "episode_000003" not in err


def test_export_of_a_folder_without_catalogue_skips_an_unusable_file(flawed, tmp_path, capsys):
    folder = tmp_path / "files"
    folder.mkdir()
    for path in sorted((flawed / "episodes").iterdir()):
        (folder / path.name).write_bytes(path.read_bytes())
    code = main(["export", str(folder), "--to", "lerobot", "--out", str(tmp_path / "lr"), "--engine", "inline",
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert err.count("warning") == 1 and "skipped episode_000002" in err and "no /observations/qpos or /action" in err
    assert LeRobotV3Reader(tmp_path / "lr").info["total_episodes"] == 2


def test_export_takes_either_camera_name_and_names_the_cameras_there_are(dataset, tmp_path, capsys):
    out = tmp_path / "cams.hdf5"
    code = main(["export", str(dataset), "--to", "robomimic", "--out", str(out), "--cameras", "camera_head",
                 "--engine", "inline", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    with h5py.File(out, "r") as f:
        assert sorted(k for k in f["data/demo_0/obs"] if k.endswith("_image")) == ["head_image"]
    code = main(["export", str(dataset), "--to", "robomimic", "--out", str(tmp_path / "x.hdf5"), "--cameras", "top",
                 "--engine", "inline", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "no camera top (cameras: head, left_wrist)" in err
