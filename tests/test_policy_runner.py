"""PolicyRunner, temporal ensembling and the chunk queue, on hand-made checkpoints (no simulator)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")  # the train extra (scripts/install_test_deps.sh installs the CPU build)

from collector.dataset.statistics import FeatureStats
from collector.errors import ConfigError, DataError
from collector.policy.base import PolicySpec
from collector.policy.checkpoint import Checkpoint, check_compatible
from collector.policy.conditioning import ConditioningVocabulary
from collector.policy.ensembling import ChunkQueue, TemporalEnsembler
from collector.policy.normalization import Normalizer
from collector.policy.registry import build_policy
from collector.policy.runner import PolicyRunner

torch.set_num_threads(1)
JOINTS = ["j0", "j1", "j2"]
CHUNK = 8


def _checkpoint(tmp_path, policy="baseline", cameras=("head",)) -> Checkpoint:
    spec = PolicySpec(cameras=list(cameras), image_size=(24, 32), state_dim=3, action_dim=3, chunk=CHUNK,
                      vocabulary_size=4)
    torch.manual_seed(0)
    hp = {"cnn_channels": [8, 8], "hidden": 32} if policy == "baseline" else \
        {"cnn_channels": [8, 8], "d_model": 32, "feedforward": 64, "encoder_layers": 1, "vae_encoder_layers": 1}
    module = build_policy(policy, spec, hp)
    stats = {name: FeatureStats.of(np.random.default_rng(1).normal(size=(50, 3)) + 2.0)
             for name in ("observation.state", "action")}
    vocabulary = ConditioningVocabulary.build([("pick_place", "cube", "Put the red cube in the blue tray."),
                                               ("pick_place", "ball", "Put the yellow ball in the blue tray.")])
    ckpt = Checkpoint(policy=policy, spec=spec, hyperparameters=module.hyperparameters,
                      weights=module.state_dict(), normalizer=Normalizer(stats), joint_names=JOINTS, action_names=JOINTS,
                      rate_hz=30.0, vocabulary=vocabulary)
    ckpt.save(tmp_path / f"{policy}.pt")
    return Checkpoint.load(tmp_path / f"{policy}.pt")


def _observation(seed=0):
    rng = np.random.default_rng(seed)
    return {"qpos": rng.normal(size=3), "images": {"head": rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)}}


def test_temporal_ensembling_first_step_is_the_chunk_and_later_steps_weigh_older_predictions_more():
    ens = TemporalEnsembler(chunk=4, m=0.5)
    first = np.arange(8.0).reshape(4, 2)
    assert np.array_equal(ens.update(first), first[0])  # one prediction for tick 0: itself
    second = first + 10.0
    # tick 1 has the first chunk's row 1 (oldest, weight 1) and the second chunk's row 0 (weight e^-0.5)
    w = np.exp(-0.5)
    assert np.allclose(ens.update(second), (first[1] + w * second[0]) / (1 + w))
    ens.reset()
    assert np.array_equal(ens.update(second), second[0])


def test_temporal_ensembling_is_continuous_where_consecutive_chunks_disagree():
    """Chunks that each jump by a step of 1.0 from the last one's plan (a policy re-planning) give an
    ensembled trajectory whose tick-to-tick change stays far below the jump."""
    ens = TemporalEnsembler(chunk=10, m=0.01)
    out = []
    for t in range(40):
        plan = np.linspace(t, t + 9, 10)[:, None] * 0.01 + (t % 2) * 1.0  # alternate between two offsets
        out.append(ens.update(plan)[0])
    steps = np.abs(np.diff(out[10:]))
    assert steps.max() < 0.15, steps.max()  # a chunk-by-chunk switch would jump by ~1.0 every tick


def test_chunk_queue_plays_a_chunk_out_then_asks_for_another():
    queue = ChunkQueue(chunk=3)
    assert queue.needs_chunk
    chunk = np.arange(3.0)[:, None]
    got = [queue.update(chunk if i == 0 else None)[0] for i in range(3)]
    assert got == [0.0, 1.0, 2.0] and queue.needs_chunk
    with pytest.raises(ValueError):
        ChunkQueue(chunk=3, replan=4)


@pytest.mark.parametrize("policy", ["baseline", "act"])
def test_runner_first_step_is_the_predicted_chunk_and_steps_are_timed(tmp_path, policy):
    runner = PolicyRunner(_checkpoint(tmp_path, policy), joint_names=JOINTS, cameras=["head", "left_wrist"])
    runner.reset("Put the red cube in the blue tray.")
    assert (runner.task, runner.target) == ("pick_place", "cube")
    obs = _observation()
    chunk = runner.predict_chunk(obs)
    assert chunk.shape == (CHUNK, 3)
    assert np.allclose(runner.step(obs), chunk[0], atol=1e-5)
    for k in range(5):
        assert np.all(np.isfinite(runner.step(_observation(k + 1))))
    timing = runner.timing()
    assert timing["inference_calls"] == 6 and timing["step_p99_ms"] >= timing["inference_p50_ms"] > 0


@pytest.mark.parametrize("policy", ["baseline", "act"])
def test_the_frozen_network_commands_exactly_what_the_eager_one_does(tmp_path, policy):
    ckpt = _checkpoint(tmp_path, policy)
    frozen, eager = PolicyRunner(ckpt), PolicyRunner(ckpt, frozen=False)
    assert frozen.network.frozen and not eager.network.frozen and eager.network.reason == "eager by request"
    for runner in (frozen, eager):
        runner.reset("Put the yellow ball in the blue tray.")
    for k in range(6):
        obs = _observation(k)
        assert np.array_equal(frozen.step(obs), eager.step(obs))
    # the trace follows the conditioning, not the one it was recorded with
    for runner in (frozen, eager):
        runner.reset("Put the red cube in the blue tray.")
    assert np.array_equal(frozen.predict_chunk(_observation(9)), eager.predict_chunk(_observation(9)))


def test_a_network_that_cannot_be_frozen_faithfully_runs_eagerly(tmp_path, monkeypatch):
    ckpt = _checkpoint(tmp_path)
    noisy = PolicyRunner(ckpt, frozen=False).policy
    predict = noisy.predict_chunk
    noisy.predict_chunk = lambda batch: predict(batch) + torch.randn(1, CHUNK, 3)  # not a function of its input
    from collector.policy.compiled import freeze_for_inference
    example = PolicyRunner(ckpt, frozen=False)._example_batch()
    network = freeze_for_inference(noisy, example)
    assert not network.frozen and network.reason.startswith("the trace differs from the eager network by")

    def refuse(*args, **kwargs):
        raise RuntimeError("cannot freeze this\nsecond line")
    monkeypatch.setattr(torch.jit, "freeze", refuse)
    runner = PolicyRunner(ckpt)
    assert not runner.network.frozen and runner.network.reason == "tracing failed: RuntimeError: cannot freeze this"
    runner.reset(task="pick_place", target="cube")
    assert np.all(np.isfinite(runner.step(_observation())))


def test_runner_with_a_chunk_queue_infers_once_per_chunk(tmp_path):
    runner = PolicyRunner(_checkpoint(tmp_path), schedule="queue")
    runner.reset(task="pick_place", target="ball")
    obs = _observation()
    chunk = runner.predict_chunk(obs)
    got = np.array([runner.step(obs) for _ in range(CHUNK)])
    assert np.allclose(got, chunk, atol=1e-5) and runner.timing()["inference_calls"] == 1


def test_runner_conditioning_changes_the_prediction_and_unknown_objects_are_named(tmp_path):
    runner = PolicyRunner(_checkpoint(tmp_path))
    obs = _observation()
    runner.reset("Put the red cube in the blue tray.")
    cube = runner.predict_chunk(obs)
    runner.reset("Put the yellow ball in the blue tray.")
    assert not np.allclose(runner.predict_chunk(obs), cube)
    # a sentence not seen in training still resolves through the object it names
    runner.reset("please move the BALL to the tray")
    assert runner.target == "ball"
    with pytest.raises(ConfigError, match="target object 'cylinder'.*knows: ball, cube"):
        runner.reset(task="pick_place", target="cylinder")
    with pytest.raises(ConfigError, match="names none of the objects the policy was trained with \\(ball, cube\\)"):
        runner.reset("Put the green cylinder in the blue tray.")
    with pytest.raises(ConfigError, match="task 'pour'"):
        runner.reset(task="pour")


def test_mismatched_robot_is_one_line_naming_what_differs(tmp_path):
    ckpt = _checkpoint(tmp_path)
    with pytest.raises(ConfigError) as err:
        check_compatible(ckpt, ["j0", "j1", "j9"], ["head"])
    message = str(err.value)
    assert "\n" not in message and "baseline.pt" in message and "lacks j2" in message and "also has j9" in message
    with pytest.raises(ConfigError, match=r"joint order differs \(position 0: checkpoint 'j0', robot 'j1'\)"):
        check_compatible(ckpt, ["j1", "j0", "j2"], ["head"])
    with pytest.raises(ConfigError) as err:
        PolicyRunner(ckpt, joint_names=JOINTS, cameras=["left_wrist"])
    assert "\n" not in str(err.value) and "camera(s) head missing" in str(err.value)
    check_compatible(ckpt, JOINTS, ["camera_head"])  # raw stream names are accepted too


def test_runner_refuses_wrong_observations_and_files(tmp_path):
    runner = PolicyRunner(_checkpoint(tmp_path))
    with pytest.raises(ConfigError, match="before reset"):
        runner.step(_observation())
    runner.reset(task="pick_place", target="cube")
    with pytest.raises(DataError, match="qpos has 2 values"):
        runner.step({"qpos": [0.0, 0.0], "images": _observation()["images"]})
    with pytest.raises(DataError, match="no frame from camera 'head'"):
        runner.step({"qpos": [0.0] * 3, "images": {}})
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="junk.pt: not a policy checkpoint"):
        Checkpoint.load(junk)
    torch.save({"format": "something else"}, tmp_path / "other.pt")
    with pytest.raises(ConfigError, match="not a collector policy checkpoint"):
        Checkpoint.load(tmp_path / "other.pt")


def test_warm_up_runs_the_network_once_without_counting_it_or_touching_the_schedule(tmp_path):
    runner = PolicyRunner(_checkpoint(tmp_path, "act"))
    runner.warm_up()
    assert runner.inference_ms == [] and runner.schedule.needs_chunk
    runner.reset("Put the red cube in the blue tray.")
    assert runner.step(_observation()).shape == (3,) and len(runner.inference_ms) == 1
