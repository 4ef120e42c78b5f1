"""`collector eval` and collector.policy.evaluate: a trained policy rolled out over a grid of conditions
with held-out seeds, each rollout an ordinary episode that validate, inspect, replay and plot read,
success per cell in results.json and a heat map, the evaluation recorded in the training dataset's
catalogue.

The checkpoint is a tiny ACT trained for a few steps on a copy of the session's demo dataset
(`demo_take`, conftest.py): it need not succeed at anything, only run through the real loop,
recorder and validator.
"""
import json
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from collector.cli import main
from collector.errors import ConfigError
from collector.policy.checkpoint import Checkpoint
from collector.policy.evaluate import Cell, PolicyRollouts, rollout
from collector.policy.train import TrainConfig, train
from collector.recorder import EpisodeReader
from collector.recorder.qa import validate_episode
from collector.recorder.schema import open_episode, read_metadata
from helpers.policy_seeds import known_seeds, target_of

torch.set_num_threads(1)
pytestmark = pytest.mark.slow  # shares the session's demo take

TINY_ACT = {"d_model": 32, "feedforward": 64, "encoder_layers": 1, "vae_encoder_layers": 1,
            "cnn_channels": [8, 16], "dropout": 0.0}
RESULT_KEYS = {"checkpoint", "checkpoint_sha256", "policy", "trained_on", "seeds", "cells", "by_condition",
               "success_rate", "rollouts", "inference_ms", "tick_ms", "created", "network"}
CELL_KEYS = {"task", "lighting", "weight", "theme", "rollouts", "successes", "success_rate", "episodes"}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, demo_take):
    """A copy of the demo dataset folder (episodes + catalogue): eval records into its catalogue."""
    root = tmp_path_factory.mktemp("policy_eval") / "demo"
    shutil.copytree(demo_take.parent.parent, root)
    return root


@pytest.fixture(scope="module")
def checkpoint(dataset):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COLLECTOR_CACHE", str(dataset.parent / "cache"))
        torch.manual_seed(0)
        result = train(TrainConfig(sources=[str(dataset)], out=str(dataset.parent / "act.pt"), policy="act", steps=3,
                                   hyperparameters=TINY_ACT, seed=0, cameras=["head"], image_size=(30, 40),
                                   chunk=10, batch_size=4, lr=1e-3, progress=False, checkpoint_every=10_000))
    return result.checkpoint


def commands(path):
    with EpisodeReader(path) as reader:
        return reader.raw("command", "position")[: reader.count("command")]


def test_provenance_keeps_the_recording_seeds(checkpoint, demo_take):
    with open_episode(demo_take) as h5:
        seed = read_metadata(h5)["conditions"]["seed"]
    assert [e["seed"] for e in Checkpoint.load(checkpoint).provenance["episodes"]] == [seed]


def test_eval_end_to_end_writes_episodes_that_validate_results_heatmap_and_catalogue(checkpoint, dataset, tmp_path,
                                                                                    capsys):
    from collector.session.policy_records import latest_evaluation

    out = tmp_path / "eval"
    base = known_seeds(checkpoint, 2)
    code = main(["eval", str(checkpoint), "--seeds", "2", "--seed-base", str(base), "--max-seconds", "1.5",
                 "--lighting", "bright", "--weight", "heavy", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    lines = printed.strip().splitlines()
    summary = json.loads(lines[-1])
    assert summary["rollouts"] == 2 and summary["untold"] == 0 and summary["catalogued"] == [str(dataset.resolve())]
    assert summary["network"] == "frozen trace"
    assert any(line.split()[:4] == ["pick_place", "bright", "heavy", "kitchen"] for line in lines), printed

    results = json.loads((out / "results.json").read_text())
    assert RESULT_KEYS <= results.keys()
    (cell,) = results["cells"]
    assert CELL_KEYS <= cell.keys()
    assert (cell["task"], cell["lighting"], cell["weight"], cell["theme"], cell["rollouts"]) == \
        ("pick_place", "bright", "heavy", "kitchen", 2)
    assert cell["successes"] == summary["successes"] == sum(cell["outcomes"])
    assert results["seeds"] == [base, base + 1]
    assert set(results["by_condition"]) == {"task", "lighting", "weight", "theme"}
    assert results["by_condition"]["lighting"] == {"bright": {"rollouts": 2, "successes": cell["successes"],
                                                              "success_rate": cell["success_rate"]}}
    assert results["trained_on"] == {"dataset": str(dataset.resolve()), "episodes": 1}
    assert results["inference_ms"]["count"] > 0 and results["tick_ms"]["count"] > 0
    assert (out / "heatmap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    stored = latest_evaluation(dataset)
    assert stored["checkpoint_sha256"] == results["checkpoint_sha256"] and stored["rollouts"] == 2

    episodes = sorted((out / "episodes").glob("*.hdf5"))
    assert [p.name for p in episodes] == sorted(cell["episodes"]) and len(episodes) == 2
    for seed, path in zip((base, base + 1), episodes):
        with EpisodeReader(path) as reader:
            sources = reader.streams["control"].attrs["sources"]
            codes = set(reader.raw("control", "source")[: reader.count("control")].tolist())
            assert reader.count("input") == 0  # nobody but the policy
            metadata = reader.metadata
        assert codes == {sources["policy"]}
        assert metadata["operator"] == "policy" and metadata["conditions"]["seed"] == seed
        assert metadata["conditions"]["lighting"]["preset"] == "bright"
        assert metadata["conditions"]["weights"]["preset"] == "heavy"
        assert not np.allclose(commands(path)[-1], commands(path)[0]), "the policy moved the robot"
    # ordinary episodes: validate (an empty input stream is fine when the operator never commanded),
    # inspect, plot, and physics replay of the recorded commands
    assert main(["validate", str(out / "episodes")]) == 0, capsys.readouterr().out
    assert main(["inspect", str(episodes[0])]) == 0
    assert main(["plot", str(episodes[0]), "--figures", "joints", "--out", str(tmp_path / "plot.png")]) == 0
    capsys.readouterr()
    assert main(["replay", str(episodes[0]), "--sim", "--actions", "--no-video", "--json"]) == 0
    replayed = json.loads(capsys.readouterr().out)
    assert replayed["max_drift"] < 1e-4 and replayed["replayed_success"] == (cell["outcomes"][0])

    # deterministic: the same seed rolled out again commands exactly the same, whatever the load, and the
    # eager network commands what its frozen trace did
    again = rollout(checkpoint, Cell("pick_place", "bright", "heavy"), base, out_dir=tmp_path / "again",
                    max_seconds=1.5, frozen=False)
    assert again.episode.name == episodes[0].name and again.success == cell["outcomes"][0]
    assert np.array_equal(commands(again.episode), commands(episodes[0]))


def test_eval_refuses_seeds_that_recorded_the_training_data(checkpoint, demo_take, tmp_path, capsys):
    with open_episode(demo_take) as h5:
        seed = read_metadata(h5)["conditions"]["seed"]
    out = tmp_path / "eval"
    assert main(["eval", str(checkpoint), "--seeds", "3", "--seed-base", str(seed - 1), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(seed) in err and "held-out" in err, err
    assert not out.exists()


def test_a_checkpoint_for_another_robot_or_cameras_is_a_one_line_error(checkpoint, tmp_path, capsys):
    ckpt = Checkpoint.load(checkpoint)
    ckpt.joint_names = ckpt.joint_names[:-1] + ["neck_roll"]
    ckpt.spec.cameras = ["belly"]
    bad = ckpt.save(tmp_path / "other_robot.pt")
    out = tmp_path / "eval"
    assert main(["eval", str(bad), "--seeds", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "does not match the robot" in err, err
    assert "neck_roll" in err and "belly" in err and not out.exists()


def test_bad_grid_values_an_untrained_task_and_a_used_out_folder_are_one_line_errors(checkpoint, tmp_path, capsys):
    assert main(["eval", str(checkpoint), "--lighting", "bright,moonlight", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--lighting" in err and "moonlight" in err, err
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "results.json").write_text("{}")
    assert main(["eval", str(checkpoint), "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "already holds an evaluation" in err, err
    assert (tmp_path / "b" / "results.json").read_text() == "{}"
    assert main(["eval", str(checkpoint), "--task", "pour", "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not trained on task 'pour'" in err and not (tmp_path / "c").exists(), err


def test_a_rollout_naming_an_object_the_policy_never_learned_does_not_run(checkpoint, tmp_path):
    known = set(Checkpoint.load(checkpoint).vocabulary.targets)
    seed = 1_000_500_000
    while target_of(seed) in known:
        seed += 1
    with PolicyRollouts(checkpoint, "pick_place") as rollouts:
        result = rollouts.run(Cell("pick_place", "dim", "light"), seed, out_dir=tmp_path)
        with pytest.raises(ConfigError):
            rollouts.run(Cell("pour", "dim", "light"), seed)
    assert not result.success and result.ticks == 0 and result.episode is None
    assert target_of(seed) in result.untold and not list(tmp_path.iterdir())


def test_qa_still_flags_an_empty_input_stream_on_an_operator_take(tmp_path):
    """The operator in control, no message ever arrived: 'input' has no samples is still a problem."""
    from collector.teleop.rig import build_sim_rig

    rig = build_sim_rig(task="pick_place", device=None, endpoint="inproc://policy-eval-operator", bind=True,
                        seed=3)
    try:
        rig.backend.reset(seed=3)
        writer = rig.recorder(tmp_path, "operator_take", {"task": "pick_place", "instruction": "",
                                                          "robot": "humanoid", "operator": "nobody", "sim": True,
                                                          "conditions": rig.backend.conditions})
        rig.run_episode(1.2, sink=writer, seed=3, realtime=False)
        path = writer.stop(outcome="failure")
    finally:
        rig.close()
    assert "stream 'input' has no samples" in validate_episode(path)
