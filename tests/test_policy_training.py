"""Training on episodes recorded with the real simulator: a policy learns one take, checkpoints carry
everything, a seed fixes the run, resume continues it, conditioning tells objects apart, and the
command line reports errors in one line.

Data (once for the module): one `collector demo --episodes 1` take (conftest.py's `demo_take`, recorded
once per session and shared with test_corruption_fuzz.py: pick-and-place by the scripted operator through
the full teleop loop and recorder, ~190 aligned rows at 30 Hz, 3 cameras) and three 1-second simulated
pick-and-place episodes whose seeds name different objects.
"""
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")  # the train extra (scripts/install_test_deps.sh installs the CPU build)

from collector.cli import main
from collector.dataset.episode import AlignedEpisode
from collector.dataset.synthetic import write_sim_episode
from collector.errors import ConfigError, DataError
from collector.policy.checkpoint import Checkpoint, check_compatible
from collector.policy.conditioning import ConditioningVocabulary, episode_conditioning
from collector.policy.provenance import file_sha256
from collector.policy.registry import build_policy
from collector.policy.runner import PolicyRunner
from collector.policy.train import TrainConfig, train

torch.set_num_threads(1)
pytestmark = pytest.mark.slow  # records a demo take (~12 s) and trains for ~10 s
# Small enough to train in seconds on a shared 2-core CPU, big enough to learn one take.
TINY_ACT = {"d_model": 64, "feedforward": 128, "encoder_layers": 1, "vae_encoder_layers": 1,
            "cnn_channels": [8, 16, 32], "dropout": 0.0}
TINY = dict(cameras=["head"], image_size=(30, 40), chunk=10, batch_size=16, lr=1e-3, progress=False,
            checkpoint_every=10_000)
OVERFIT_STEPS = 300
# Stated bounds for learning one take (measured: L1 ~0.09, mean error ~0.007 rad, p95 ~0.03 rad).
OVERFIT_L1 = 0.15          # mean of the last 20 steps' L1, in normalized action units
OVERFIT_MEAN_RAD = 0.02    # mean |predicted first action - recorded action| over the take
OVERFIT_P95_RAD = 0.08


@pytest.fixture(scope="module")
def data(tmp_path_factory, demo_take):
    root = tmp_path_factory.mktemp("policy")
    with pytest.MonkeyPatch.context() as patch:  # statistics cache of this module only
        patch.setenv("COLLECTOR_CACHE", str(root / "cache"))
        yield _record(root, demo_take)


def _record(root, take):
    sim = root / "sim"
    for seed in (1, 2, 3):  # targets: cylinder, ball, cube
        write_sim_episode(sim, f"episode_00000{seed}", duration_s=1.0, seed=seed, camera_fps=15.0)
    return {"root": root, "take": take, "sim": sim}


def _episode_files(folder):
    return sorted(p for p in folder.iterdir() if p.suffix in (".hdf5", ".h5") and ".partial" not in p.name)


@pytest.fixture(scope="module")
def overfit(data):
    torch.manual_seed(0)
    return train(TrainConfig(sources=[str(data["take"])], out=str(data["root"] / "act.pt"), policy="act",
                             steps=OVERFIT_STEPS, hyperparameters=TINY_ACT, seed=0, **TINY))


def test_act_trained_on_one_take_reproduces_its_actions(data, overfit):
    l1 = np.mean([p["l1"] for p in overfit.parts[-20:]])
    assert l1 < OVERFIT_L1, l1
    assert np.mean([p["l1"] for p in overfit.parts[:20]]) > 2 * l1  # it learned, it did not start there
    runner = PolicyRunner(overfit.checkpoint)
    with AlignedEpisode(data["take"]) as take:
        runner.reset(take.metadata["instruction"])
        qpos, action = take.read("observations/qpos"), take.read("action")
        rows = range(0, take.length, 2)
        predicted = np.array([runner.predict_chunk({"qpos": qpos[t], "images": {"head": take.images("head", [t])[0]}})[0]
                              for t in rows])
    error = np.abs(predicted - action[list(rows)])
    # the take's own mean action is what a policy that learned nothing per frame would output
    floor = np.abs(action.mean(axis=0) - action[list(rows)]).mean()
    assert error.mean() < OVERFIT_MEAN_RAD and error.mean() < 0.2 * floor, (error.mean(), floor)
    assert np.percentile(error, 95) < OVERFIT_P95_RAD, np.percentile(error, 95)


def test_checkpoint_carries_everything_and_round_trips_to_identical_predictions(data, overfit, tmp_path):
    ckpt = Checkpoint.load(overfit.checkpoint)
    assert ckpt.policy == "act" and ckpt.step == OVERFIT_STEPS and len(ckpt.history) == OVERFIT_STEPS
    assert ckpt.spec.cameras == ["head"] and ckpt.spec.image_size == (30, 40) and ckpt.spec.chunk == 10
    assert len(ckpt.joint_names) == 20 and ckpt.joint_names[0] == "waist_yaw" and ckpt.action_names == ckpt.joint_names
    assert ckpt.rate_hz == pytest.approx(30.0)
    assert ckpt.training["lr"] == TINY["lr"] and ckpt.training["hyperparameters"] == TINY_ACT
    assert ckpt.normalizer.std_floor == 0.01 and ckpt.normalizer.std("action").shape == (20,)
    (episode,) = ckpt.provenance["episodes"]
    assert episode["sha256"] == file_sha256(data["take"]) and episode["episode_id"] == data["take"].stem
    assert ckpt.provenance["collector_version"] and ckpt.vocabulary.tasks == ["pick_place"]
    # saved again and loaded: the same predictions, bit for bit
    again = Checkpoint.load(ckpt.save(tmp_path / "copy.pt"))
    with AlignedEpisode(data["take"]) as take:
        obs = {"qpos": take.read("observations/qpos", [40])[0], "images": {"head": take.images("head", [40])[0]}}
        instruction = take.metadata["instruction"]
    outputs = []
    for c in (ckpt, again):
        runner = PolicyRunner(c)
        runner.reset(instruction)
        outputs.append(runner.predict_chunk(obs))
    assert np.array_equal(outputs[0], outputs[1])
    # a robot whose joints or cameras differ: one line naming what differs
    with pytest.raises(ConfigError) as err:
        check_compatible(Checkpoint.load(overfit.checkpoint), ckpt.joint_names[:-1] + ["neck_roll"],
                         ["left_wrist", "right_wrist"])
    message = str(err.value)
    assert "\n" not in message and "act.pt" in message and "lacks head_tilt" in message \
        and "also has neck_roll" in message and "camera(s) head missing" in message


def test_different_named_objects_give_different_conditioning(data):
    episodes = [AlignedEpisode(p) for p in _episode_files(data["sim"])]
    examples = [(*episode_conditioning(e.metadata), e.metadata["instruction"]) for e in episodes]
    assert [t for _, t, _ in examples] == ["cylinder", "ball", "cube"]
    vocabulary = ConditioningVocabulary.build(examples)
    ids = [vocabulary.encode(task, target) for task, target, _ in examples]
    assert len({tuple(i) for i in ids}) == 3 and len({i[0] for i in ids}) == 1  # same task, other object
    assert vocabulary.resolve("Put the red cube in the blue tray.") == ("pick_place", "cube")
    for e in episodes:
        e.close()


def _tiny_run(data, out, steps, **extra):
    config = dict(TINY, **extra)
    return train(TrainConfig(sources=[str(data["sim"])], out=str(out), policy="act", steps=steps,
                             hyperparameters={**TINY_ACT, "dropout": 0.1}, **config))


def test_one_seed_gives_the_same_run_and_resume_continues_it(data, tmp_path):
    first = _tiny_run(data, tmp_path / "a.pt", 12, seed=5)
    second = _tiny_run(data, tmp_path / "b.pt", 12, seed=5)
    assert first.losses == second.losses
    other = _tiny_run(data, tmp_path / "c.pt", 12, seed=6)
    assert other.losses != first.losses
    # 6 steps, then resume to 12: the same 12 losses as the uninterrupted run (data order, dropout and
    # the CVAE noise all continue where they were)
    half = _tiny_run(data, tmp_path / "d.pt", 6, seed=5)
    resumed = _tiny_run(data, tmp_path / "d.pt", 12, seed=5, resume=str(tmp_path / "d.pt"))
    assert resumed.start_step == 6 and len(resumed.losses) == 6
    assert half.losses + resumed.losses == first.losses
    assert Checkpoint.load(tmp_path / "d.pt").step == 12 and len(Checkpoint.load(tmp_path / "d.pt").history) == 12


def test_augmented_training_is_seeded_resumable_and_differs_from_plain(data, tmp_path):
    augment = {"shift": 2, "brightness": 0.3, "contrast": 0.3}
    plain = _tiny_run(data, tmp_path / "p.pt", 8, seed=5)
    first = _tiny_run(data, tmp_path / "a.pt", 8, seed=5, augment=augment)
    assert _tiny_run(data, tmp_path / "b.pt", 8, seed=5, augment=augment).losses == first.losses
    assert first.losses != plain.losses, "the frames the policy learned from were changed"
    _tiny_run(data, tmp_path / "c.pt", 4, seed=5, augment=augment)
    resumed = _tiny_run(data, tmp_path / "c.pt", 8, seed=5, resume=str(tmp_path / "c.pt"))  # keeps the augmentation
    assert resumed.losses == first.losses[4:]
    assert Checkpoint.load(tmp_path / "c.pt").training["augment"] == augment


def test_a_moving_average_of_the_weights_is_shipped_and_resumes_exactly(data, tmp_path):
    plain = _tiny_run(data, tmp_path / "plain.pt", 6, seed=5)
    averaged = _tiny_run(data, tmp_path / "ema.pt", 6, seed=5, ema_decay=0.9)
    assert averaged.losses == plain.losses, "the average must not change what the optimizer does"
    shipped, live = Checkpoint.load(tmp_path / "ema.pt"), Checkpoint.load(tmp_path / "plain.pt")
    assert shipped.training["ema_decay"] == 0.9 and live.training_weights is None
    assert all(torch.equal(shipped.training_weights[k], live.weights[k]) for k in live.weights)
    floats = [k for k, v in live.weights.items() if v.is_floating_point()]
    assert any(not torch.equal(shipped.weights[k], live.weights[k]) for k in floats)
    # after one step the average is 0.1 x the initial weights + 0.9 x the trained ones (warm-up decay 1/10)
    _tiny_run(data, tmp_path / "one.pt", 1, seed=5, ema_decay=0.9)
    one = Checkpoint.load(tmp_path / "one.pt")
    torch.manual_seed(5)  # train() seeds right before it builds the policy
    initial = build_policy("act", one.spec, one.hyperparameters).state_dict()
    for k in floats:
        assert torch.allclose(one.weights[k], 0.1 * initial[k] + 0.9 * one.training_weights[k], atol=1e-6), k
    # 3 steps, then resume to 6: the optimizer continues from its own weights, the average from the saved one
    _tiny_run(data, tmp_path / "half.pt", 3, seed=5, ema_decay=0.9)
    resumed = _tiny_run(data, tmp_path / "half.pt", 6, seed=5, resume=str(tmp_path / "half.pt"))
    assert resumed.losses == plain.losses[3:]
    again = Checkpoint.load(tmp_path / "half.pt")
    for k in live.weights:
        assert torch.allclose(again.weights[k].float(), shipped.weights[k].float(), atol=1e-6), k
        assert torch.equal(again.training_weights[k], shipped.training_weights[k]), k


def test_a_time_boxed_run_stops_early_and_keeps_what_it_learned(data, tmp_path):
    result = _tiny_run(data, tmp_path / "t.pt", 10_000, seed=5, time_limit_s=0.0)
    assert result.steps == 1 and len(result.losses) == 1
    saved = Checkpoint.load(tmp_path / "t.pt")
    assert saved.step == 1 and saved.training["time_limit_s"] == 0.0


def test_training_on_one_control_source_keeps_its_rows_and_refuses_a_source_without_rows(data, tmp_path):
    # episodes without a control stream were wholly the operator's: selecting the operator keeps every row
    plain = _tiny_run(data, tmp_path / "all.pt", 3, seed=5)
    operator = _tiny_run(data, tmp_path / "op.pt", 3, seed=5, control=["operator"])
    assert operator.losses == plain.losses
    assert Checkpoint.load(tmp_path / "op.pt").training["control"] == ["operator"]
    with pytest.raises((ConfigError, DataError)) as error:
        _tiny_run(data, tmp_path / "policy.pt", 3, seed=5, control=["policy"])
    assert "policy" in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "policy.pt").exists()


def test_weighted_sample_order_follows_the_weights_and_resumes_where_it_stopped():
    from collector.policy.train import sample_order

    weights = np.r_[np.ones(50), np.full(50, 9.0)]  # rows 50..99: corrections weighted 9
    batches = sample_order(100, seed=3, start_step=0, batch_size=10, weights=weights)
    drawn = np.concatenate([next(batches) for _ in range(200)])
    assert 0.87 < np.mean(drawn >= 50) < 0.93
    resumed = sample_order(100, seed=3, start_step=120, batch_size=10, weights=weights)
    assert np.array_equal(next(resumed), drawn[1200:1210])
    plain = np.concatenate([b for b, _ in zip(sample_order(100, 3, 0, 10), range(10))])
    assert sorted(plain) == list(range(100))  # without weights: every row once per epoch


def test_train_command_records_the_operator_weight(data, tmp_path, capsys):
    out = tmp_path / "weighted.pt"
    assert main(["train", str(data["sim"]), "--policy", "baseline", "--steps", "3", "--out", str(out),
                 "--cameras", "head", "--image-size", "40x30", "--chunk", "5", "--batch-size", "4", "--no-progress",
                 "--no-plot", "--operator-weight", "4"]) == 0
    assert Checkpoint.load(out).training["operator_weight"] == 4.0


def test_train_command_writes_checkpoint_curve_and_json(data, tmp_path, capsys):
    out = tmp_path / "base.pt"
    code = main(["train", str(data["sim"]), "--policy", "baseline", "--steps", "4", "--out", str(out),
                 "--cameras", "head", "--image-size", "40x30", "--chunk", "5", "--batch-size", "4", "--no-progress",
                 "--task", "pick_place", "--seed", "1"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["steps"] == 4 and summary["checkpoint"] == str(out) and out.is_file()
    assert Path(summary["loss_curve"]).is_file() and summary["samples_per_s"] > 0
    assert Checkpoint.load(out).vocabulary.targets == ["ball", "cube", "cylinder"]
    # resume past the saved step is refused with the step named
    assert main(["train", str(data["sim"]), "--steps", "4", "--out", str(out), "--resume", str(out)]) == 2
    assert "already at step 4" in capsys.readouterr().err


def test_train_command_passes_augmentation_control_and_time_limit(data, tmp_path, capsys):
    out = tmp_path / "aug.pt"
    code = main(["train", str(data["sim"]), "--policy", "baseline", "--steps", "100000", "--out", str(out),
                 "--cameras", "head", "--image-size", "40x30", "--chunk", "5", "--batch-size", "4", "--no-progress",
                 "--augment", "--control", "operator", "--time-limit", "0.05", "--no-plot"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0 < summary["steps"] < 100000  # the 3 s limit stopped it
    training = Checkpoint.load(out).training
    assert training["augment"] == {"shift": 3, "brightness": 0.2, "contrast": 0.2}
    assert training["control"] == ["operator"]


@pytest.mark.parametrize("args, words", [
    (["--lighting", "dim"], "no episodes in"),  # a filter that matches nothing
    (["--cameras", "chest"], "no camera chest"),
    (["--image-size", "big"], "expected WIDTHxHEIGHT"),
    (["--hp", "d_modl=64"], "unknown ACT hyperparameter(s) ['d_modl']"),
    (["--augment", "shift"], "expected KEY=NUMBER"),
    (["--augment", "hue=0.1"], "unknown key(s) hue"),
    (["--control", "polcy"], "polcy"),
    (["--operator-weight", "0"], "operator"),
    (["--ema-decay", "1"], "EMA decay must be in [0, 1)"),
] + ([] if torch.cuda.is_available() else [(["--device", "cuda"], "torch sees no CUDA device")]))
def test_train_command_errors_are_one_line(data, tmp_path, capsys, args, words):
    assert main(["train", str(data["sim"]), "--steps", "1", "--out", str(tmp_path / "x.pt"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1, err


def test_a_folder_without_usable_episodes_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["train", str(tmp_path / "empty"), "--steps", "1", "--out", str(tmp_path / "x.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert "no episodes in" in err and len(err.splitlines()) == 1
