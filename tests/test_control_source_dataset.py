"""Who commanded each row, from the recorded `control` stream to training reads and every export.

One episode is recorded through the real teleop loop with a second command source named `policy`
(a JointTargetSource) that drives, hands over to the operator mid-take and takes back; a second one is
written with EpisodeWriter with the codes the other way round (policy 0, operator 1), so a dataset of
both must map names, not codes. Episodes from before the arbiter (no `control` stream) read as all
operator.
"""
import json

import h5py
import numpy as np
import pytest

from collector.backends.sim import SimBackend
from collector.dataset import EpisodeDataset, JobEngine, select_episodes
from collector.dataset.cli_options import add_control_arguments, control_from_args
from collector.dataset.episode import AlignedEpisode
from collector.dataset.synthetic import write_synthetic_episode
from collector.errors import ConfigError, DataError
from collector.recorder import EpisodeReader, EpisodeWriter
from collector.recorder.vocabulary import COMMAND, CONTROL, JOINTS, command_spec, control_spec, joints_spec
from collector.teleop.arbiter import JointTargetSource
from collector.teleop.loop import TeleopLoop

TICKS = 150
# (first tick, source) of the loop take: the policy drives, the operator takes over, the policy takes back
SCHEDULE = ((0, "policy"), (50, "operator"), (95, "policy"))
WRITTEN_CODES = {"policy": 0, "operator": 1}  # the other episode: operator is not code 0 there
WRITTEN_OPERATOR_TICKS = 60  # then the policy, to the end


def _chooser():
    ticks = [0]

    def choose(tick):
        k = ticks[0]
        ticks[0] += 1
        return {first: source for first, source in SCHEDULE}.get(k)
    return choose


@pytest.fixture(scope="module")
def takes(toy_env, tmp_path_factory):
    """(folder, loop episode path, handovers [(t, from, to)], written episode path)."""
    folder = tmp_path_factory.mktemp("control") / "episodes"
    toy_env.reset(seed=3)
    backend = SimBackend(toy_env, render=False)
    # the "policy" nudges one joint each tick, so its rows differ from the operator's held ones
    policy = JointTargetSource(lambda tick: tick.command + np.eye(len(tick.command))[0] * 0.002, source_id="policy")
    loop = TeleopLoop(backend, endpoint="inproc://control-dataset", bind=True, sources=[policy], choose=_chooser())
    specs = loop.stream_specs()
    assert {s.name: s for s in specs}[CONTROL].attrs["sources"] == {"operator": 0, "policy": 1}
    writer = EpisodeWriter(folder, "take_loop", specs, metadata={"sim": True, "task": "pick_place"}, min_free_bytes=0)
    writer.start()
    loop.sink = writer
    try:
        loop.start()
        for _ in range(TICKS):
            loop.tick()
        handovers = list(loop.arbiter.handovers)
    finally:
        loop.close()
    loop_path = writer.stop(outcome="success")
    joint_names = list(loop.kin.command_joints)
    written = _write_reversed_codes(folder, joint_names)
    return folder, loop_path, handovers, written


def _write_reversed_codes(folder, joint_names):
    n, rate = len(joint_names), 100.0
    writer = EpisodeWriter(folder, "take_written", [joints_spec(joint_names, rate), command_spec(joint_names, rate),
                                                    control_spec(WRITTEN_CODES, rate)],
                           metadata={"sim": True, "task": "pick_place"}, min_free_bytes=0)
    writer.start()
    for k in range(100):
        t = 10.0 + k / rate
        q = np.full(n, 0.001 * k)
        writer.push(JOINTS, t, position=q, velocity=np.zeros(n), effort=np.zeros(n))
        writer.push(COMMAND, t, position=q)
        source = "operator" if k < WRITTEN_OPERATOR_TICKS else "policy"
        writer.push(CONTROL, t, source=np.uint8(WRITTEN_CODES[source]))
    return writer.stop(outcome="unknown")


def _expected_loop_names(path, handovers):
    """Per row, the source the arbiter's handover log says was in control at the stamp of the row's command."""
    assert [(a, b) for _, a, b in handovers] == [("policy", "operator"), ("operator", "policy")]
    (t_takeover, _, _), (t_back, _, _) = handovers
    with EpisodeReader(path) as reader:
        command_t = reader.stamps(COMMAND)[reader.sync(COMMAND)["index"]]
    return np.where((command_t >= t_takeover) & (command_t < t_back), "operator", "policy")


def _expected_written_names(path):
    with EpisodeReader(path) as reader:
        command_t = reader.stamps(COMMAND)[reader.sync(COMMAND)["index"]]
    return np.where(command_t < 10.0 + WRITTEN_OPERATOR_TICKS / 100.0 - 1e-9, "operator", "policy")


def test_each_aligned_row_carries_who_commanded_its_action(takes):
    _, loop_path, handovers, written = takes
    with AlignedEpisode(loop_path) as episode:
        control = episode.control()
        rows = episode.length
        action = episode.read("action")
    assert control.recorded and control.names == ["operator", "policy"]
    names = control.row_names()
    expected = _expected_loop_names(loop_path, handovers)
    assert names.shape == (rows,) and names.tolist() == expected.tolist()
    assert set(names[:5]) == {"policy"} and "operator" in set(names) and names[-1] == "policy"
    assert control.counts() == {name: int((expected == name).sum()) for name in ("operator", "policy")}
    # the policy moves joint 0 on its rows; the operator (no input) holds it on its own
    operator_rows = np.flatnonzero(names == "operator")
    assert np.ptp(action[operator_rows[1:-1], 0]) < 1e-9 < np.ptp(action[names == "policy", 0])
    with AlignedEpisode(written) as episode:
        written_control = episode.control()
    assert written_control.names == ["policy", "operator"]  # names by the file's own codes
    assert written_control.row_names().tolist() == _expected_written_names(written).tolist()


def test_an_episode_without_a_control_stream_reads_as_all_operator(tmp_path):
    path = write_synthetic_episode(tmp_path, "old_take", duration_s=0.5, cameras=())
    with AlignedEpisode(path) as episode:
        control = episode.control()
        assert not control.recorded and control.names == ["operator"]
        assert control.codes.tolist() == [0] * episode.length
    data = EpisodeDataset(path, normalize=False, chunk=4)
    assert data.control_sources == ["operator", "policy"]
    assert {data[i]["control_source_name"] for i in range(len(data))} == {"operator"}
    assert len(EpisodeDataset(path, normalize=False, control="operator")) == len(data)
    with pytest.raises(DataError, match="commanded by policy"):
        EpisodeDataset(path, normalize=False, control="policy")


def test_dataset_samples_name_the_source_in_one_vocabulary_across_episodes(takes):
    folder, loop_path, handovers, written = takes
    data = EpisodeDataset(folder, normalize=False, chunk=8)
    assert data.control_sources == ["operator", "policy"]
    by_path = {loop_path: _expected_loop_names(loop_path, handovers), written: _expected_written_names(written)}
    for i in range(len(data)):
        sample = data[i]
        e, t = data.locate(i)
        truth = by_path[data.refs[e].path][t]
        assert sample["control_source_name"] == truth
        assert int(sample["control_source"]) == data.control_sources.index(truth)
    assert data.control_counts() == {name: sum(int((v == name).sum()) for v in by_path.values())
                                     for name in ("operator", "policy")}


def test_selecting_operator_rows_keeps_only_corrections_and_cuts_chunks_at_hand_back(takes):
    folder, loop_path, handovers, written = takes
    everything = EpisodeDataset(folder, normalize=False, chunk=8)
    operator = EpisodeDataset(folder, normalize=False, chunk=8, control="operator")
    assert len(operator) == everything.control_counts()["operator"] < len(everything)
    assert "rows commanded by operator" in operator.describe()
    cut = 0
    for i in range(len(operator)):
        sample = operator[i]
        assert sample["control_source_name"] == "operator"
        e, t = operator.locate(i)
        # the same row, read unfiltered: same action; steps the policy commanded are padding
        full = everything[int(everything.starts[e]) + t]
        np.testing.assert_array_equal(sample["action"], full["action"])
        pad = sample["action_is_pad"]
        assert pad.tolist() == sorted(pad.tolist())  # padding only at the end of a chunk
        cut += int(pad.any() and not full["action_is_pad"].all())
        for k in np.flatnonzero(~pad):
            row = min(t + k, int(operator.lengths[e]) - 1)
            assert everything[int(everything.starts[e]) + row]["control_source_name"] == "operator"
    assert cut > 0  # the loop take's last operator rows: their chunks run into the policy's rows
    with pytest.raises(ConfigError, match=r"unknown control source 'operatr' \(known: operator, policy\)"):
        EpisodeDataset(folder, normalize=False, control="operatr")


def test_operator_weight_gives_sample_weights_for_oversampling_corrections(takes):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    folder = takes[0]
    data = EpisodeDataset(folder, normalize=False, operator_weight=4.0)
    weights = data.sample_weights()
    names = np.array([data[i]["control_source_name"] for i in range(len(data))])
    assert weights.shape == (len(data),)
    assert set(weights[names == "operator"]) == {4.0} and set(weights[names == "policy"]) == {1.0}
    assert set(data.sample_weights(operator_weight=1.0)) == {1.0}
    operator_share = (names == "operator").mean()
    expected = 4 * operator_share / (4 * operator_share + (1 - operator_share))
    sampler = torch.utils.data.WeightedRandomSampler(weights, num_samples=20_000,
                                                     generator=torch.Generator().manual_seed(0))
    drawn = np.fromiter(sampler, dtype=np.int64)
    assert abs((names[drawn] == "operator").mean() - expected) < 0.02
    with pytest.raises(ConfigError, match="operator_weight must be a positive number"):
        EpisodeDataset(folder, normalize=False, operator_weight=0)
    selected = EpisodeDataset(folder, normalize=False, control="operator", operator_weight=2.5)
    assert set(selected.sample_weights()) == {2.5} and len(selected.sample_weights()) == len(selected)


def test_cli_options_give_the_dataset_keywords():
    import argparse

    parser = argparse.ArgumentParser()
    add_control_arguments(parser)
    args = parser.parse_args(["--control", "operator", "--operator-weight", "3"])
    assert control_from_args(args) == {"control": ["operator"], "operator_weight": 3.0}
    assert control_from_args(parser.parse_args([])) == {"control": None, "operator_weight": 1.0}


def _dataset_truth(folder):
    """Per episode in selection order: the control source names of its rows."""
    data = EpisodeDataset(folder, normalize=False)
    return data.refs, [np.array(data.control_sources)[codes] for codes in data._control]


def test_lerobot_export_has_a_per_frame_control_source_and_intervention_flag(takes, tmp_path):
    import pandas as pd

    from collector.dataset.exports.lerobot import export_lerobot
    from collector.dataset.exports.lerobot_reader import LeRobotV3Reader

    folder = takes[0]
    refs, truth = _dataset_truth(folder)
    with JobEngine("inline") as engine:
        export_lerobot(refs, tmp_path / "lr", engine, cameras=[])
    info = json.loads((tmp_path / "lr" / "meta" / "info.json").read_text())
    vocabulary = info["collector"]["control_sources"]
    assert vocabulary == ["operator", "policy"]
    assert info["features"]["complementary_info.control_source"] == {"dtype": "int64", "shape": [1],
                                                                     "names": ["control_source"]}
    assert info["features"]["complementary_info.is_intervention"]["dtype"] == "float32"
    frames = pd.read_parquet(tmp_path / "lr" / "data" / "chunk-000" / "file-000.parquet")
    for e, names in enumerate(truth):
        rows = frames[frames["episode_index"] == e]
        assert np.array(vocabulary)[rows["complementary_info.control_source"].to_numpy()].tolist() == names.tolist()
        assert rows["complementary_info.is_intervention"].tolist() == (names == "operator").astype(float).tolist()
    stats = json.loads((tmp_path / "lr" / "meta" / "stats.json").read_text())
    share = np.concatenate(truth) == "operator"
    assert stats["complementary_info.is_intervention"]["mean"] == pytest.approx([share.mean()])
    episodes = pd.read_parquet(tmp_path / "lr" / "meta" / "episodes" / "chunk-000" / "file-000.parquet")
    assert json.loads(episodes["collector/control_rows"][0]) == {n: int((truth[0] == n).sum()) for n in set(truth[0])}
    reader = LeRobotV3Reader(tmp_path / "lr", cameras=[])
    assert reader.control_sources == vocabulary
    assert [vocabulary[int(reader[i]["complementary_info.control_source"])] for i in range(len(reader))] \
        == np.concatenate(truth).tolist()


def test_robomimic_export_has_a_per_demo_control_source_and_masks(takes, tmp_path):
    from collector.dataset.exports.robomimic import export_robomimic

    folder = takes[0]
    refs, truth = _dataset_truth(folder)
    with JobEngine("inline") as engine:
        export_robomimic(refs, tmp_path / "rm.hdf5", engine, cameras=[])
    with h5py.File(tmp_path / "rm.hdf5", "r") as f:
        vocabulary = json.loads(f["data"].attrs["control_sources"])
        for i, names in enumerate(truth):
            codes = f[f"data/demo_{i}/control_source"][()]
            assert codes.shape == (f[f"data/demo_{i}"].attrs["num_samples"],)
            assert np.array(vocabulary)[codes].tolist() == names.tolist()
        masks = {k: sorted(v.decode() for v in f["mask"][k][()]) for k in f["mask"]}
    assert masks["control_operator"] == masks["control_policy"] == ["demo_0", "demo_1"]


def test_mcap_export_publishes_the_source_in_control_at_each_handover(takes, tmp_path):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    from collector.dataset.exports.mcap import CONTROL_SOURCE_TOPIC, export_mcap
    from collector.episodes.topics import NANOS

    _, loop_path, handovers, _ = takes
    refs = select_episodes(loop_path)
    with JobEngine("inline") as engine:
        result = export_mcap(refs, tmp_path / "take.mcap", engine)
    with EpisodeReader(loop_path) as reader:
        first_tick = float(reader.stamps(CONTROL)[0])
    states, codes = [], []
    with open(result["files"][0], "rb") as f:
        mcap = make_reader(f, decoder_factories=[DecoderFactory()])
        for _, channel, message, ros_msg in mcap.iter_decoded_messages():
            if channel.topic == CONTROL_SOURCE_TOPIC:
                states.append((message.log_time, ros_msg.data))
            elif channel.topic == "/collector/control/source":
                codes.append(int(ros_msg.data[0]))
    assert [name for _, name in states] == ["policy", "operator", "policy"]
    # log times are wall clock: the gaps between the state messages are the session's handover gaps
    gaps = np.diff([t for t, _ in states]) / NANOS
    expected = np.diff([first_tick] + [t for t, _, _ in handovers])
    np.testing.assert_allclose(gaps, expected, atol=1e-6)
    operator_ticks = SCHEDULE[2][0] - SCHEDULE[1][0]
    assert len(codes) == TICKS and codes.count(0) == operator_ticks and codes.count(1) == TICKS - operator_ticks
    with open(result["files"][0], "rb") as f:
        (metadata,) = list(make_reader(f).iter_metadata())
    assert json.loads(metadata.metadata["control_sources"]) == {"operator": 0, "policy": 1}
    provenance = json.loads(metadata.metadata["provenance"])
    assert set(provenance["control_rows"]) == {"operator", "policy"}


def test_odd_or_damaged_control_data_reads_by_name_or_fails_in_one_line(takes, tmp_path):
    import shutil

    odd = tmp_path / "odd.hdf5"  # a code the sources attr does not name: kept, under a made-up name
    shutil.copy(takes[3], odd)
    with h5py.File(odd, "r+") as h5:
        h5["raw/control/source"][:10] = 7
    data = EpisodeDataset(odd, normalize=False)
    assert data.control_sources == ["operator", "policy", "source_7"]
    assert data[0]["control_source_name"] == "source_7" and data.control_counts()["source_7"] > 0
    damaged = tmp_path / "damaged.hdf5"  # codes as floats: refused, naming the file and the dataset
    shutil.copy(takes[3], damaged)
    with h5py.File(damaged, "r+") as h5:
        codes = h5["raw/control/source"][()]
        del h5["raw/control/source"]
        h5["raw/control/source"] = codes.astype(np.float64) + 0.5
    before = damaged.read_bytes()
    with pytest.raises(DataError, match=rf"{damaged.name}.*control/source") as raised:
        EpisodeDataset(damaged, normalize=False)
    assert "\n" not in str(raised.value) and damaged.read_bytes() == before
