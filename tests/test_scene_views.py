"""Scene views (collector.policy.scene_views): simulator-labelled frames of new layouts that train a
policy's object head. Rendered for real in MuJoCo, compared with a real recorded take (conftest.py's
`demo_take`), and trained on through `collector train`."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from collector.dataset.episode import AlignedEpisode
from collector.errors import ConfigError, DataError
from collector.policy.checkpoint import Checkpoint
from collector.policy.evaluate import check_held_out
from collector.policy.images import downscale
from collector.policy.object_targets import episode_object_targets
from collector.policy.scene_views import SceneViews, recorded_poses, render_scene_views
from collector.policy.train import TrainConfig, train

torch.set_num_threads(1)
pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
IMAGE = (30, 40)
TINY = dict(cameras=["head"], image_size=IMAGE, chunk=10, batch_size=8, lr=1e-3, progress=False,
            checkpoint_every=10_000, plot=False)
SMALL_BASELINE = {"cnn_channels": [8, 16, 32], "feature_channels": 8, "hidden": 128, "film": True, "object_loss": 1.0}


@pytest.fixture(scope="module")
def take_conditions(demo_take):
    with AlignedEpisode(demo_take) as take:
        return dict(take.conditions)


@pytest.fixture(scope="module")
def same_target_seeds(take_conditions):
    """Six new seeds whose layouts name the demo take's object (a policy trained on that take knows only it)."""
    from collector.sim import SimEnv

    target, seeds = take_conditions["object_layout"]["target"], []
    with SimEnv(task="pick_place") as env:
        seed = 7_000_000
        while len(seeds) < 6:
            if env.reset(seed=seed)["object_layout"]["target"] == target:
                seeds.append(seed)
            seed += 1
    return seeds


@pytest.fixture(scope="module")
def views_file(tmp_path_factory, demo_take, same_target_seeds):
    out = tmp_path_factory.mktemp("views") / "views.h5"
    return render_scene_views(out, task="pick_place", seeds=same_target_seeds, lighting=["bright", "dim"],
                              weights=["light"], image_size=IMAGE, views_per_layout=3,
                              poses=recorded_poses([demo_take]))


def test_a_home_view_is_the_first_frame_a_take_records_at_that_seed(tmp_path, demo_take, take_conditions):
    c = take_conditions
    out = render_scene_views(tmp_path / "same.h5", task="pick_place", seeds=[c["seed"]],
                             lighting=[c["lighting"]["preset"]], weights=[c["weights"]["preset"]],
                             image_size=(60, 80))
    views = SceneViews.load([out])
    assert len(views) == 1 and views.targets == [c["object_layout"]["target"]]
    with AlignedEpisode(demo_take) as take:
        for camera in ("head", "left_wrist", "right_wrist"):
            recorded = downscale(take.images(camera, [0])[0], (60, 80)).astype(float)
            difference = np.abs(views.images[camera][0].astype(float) - recorded).mean()
            assert difference < 2.0, (camera, difference)  # of 255: the same scene, the same JPEG, the same downscale
        # the labels are the positions the take's pose streams recorded at its first frame
        recorded = episode_object_targets(take, views.objects)["value"][0]
        for k, name in enumerate(views.objects, start=1):
            np.testing.assert_allclose(views.positions[0, k - 1], recorded[3 * k:3 * k + 3], atol=1e-4, err_msg=name)


def test_views_of_a_layout_share_its_labels_and_show_the_arm_in_recorded_poses(views_file, same_target_seeds):
    views = SceneViews.load([views_file])
    assert len(views) == 18 and sorted(views.images) == ["head", "left_wrist", "right_wrist"]
    np.testing.assert_array_equal(views.seeds, np.repeat(same_target_seeds, 3))
    with h5py.File(views_file) as h5:
        assert [p.decode() for p in h5["pose"][:3]] == ["home", "recorded", "recorded"]
        assert [w.decode() for w in h5["lighting"][::3]] == ["bright", "dim"] * 3
    head = views.images["head"].astype(float)
    for layout in range(6):
        rows = slice(3 * layout, 3 * layout + 3)
        # nothing moves while the arm is posed: one layout, one set of labels
        assert np.abs(views.positions[rows] - views.positions[3 * layout]).max() < 1e-9
        # the posed arm changes what the head camera sees
        assert np.abs(head[3 * layout + 1] - head[3 * layout]).mean() > 1.0
    # new layouts: the objects are elsewhere from one seed to the next
    assert np.abs(np.diff(views.positions[::3], axis=0)).max(axis=(1, 2)).min() > 0.02
    targets = views.object_targets(["ball", "cube", "cylinder", "tray"])
    target = views.objects.index(views.targets[0])
    np.testing.assert_array_equal(targets["value"][:, 0:3], views.positions[:, target])
    assert targets["mask"].all() and targets["value"].shape == (18, 15)


def test_training_with_scene_views_trains_the_object_head_on_them_and_keeps_their_seeds(tmp_path, demo_take,
                                                                                      views_file, same_target_seeds):
    views_file = Path(shutil.copy(views_file, tmp_path / "views.h5"))  # this test changes its copy at the end
    out = tmp_path / "viewed.pt"
    result = train(TrainConfig(sources=[str(demo_take)], out=str(out), policy="baseline", steps=80, seed=0,
                               hyperparameters=SMALL_BASELINE, scene_views=[str(views_file)], scene_batch=6, **TINY))
    scene = [p["scene_objects"] for p in result.parts]
    assert np.mean(scene[-10:]) < 0.7 * np.mean(scene[:10]), (scene[:10], scene[-10:])
    checkpoint = Checkpoint.load(out)
    provenance = checkpoint.provenance["scene_views"]
    assert provenance["views"] == 18 and provenance["seeds"] == sorted(same_target_seeds)
    assert provenance["files"][0]["sha256"] == __import__("hashlib").sha256(views_file.read_bytes()).hexdigest()
    with pytest.raises(ConfigError, match=f"seed\\(s\\) {same_target_seeds[2]} recorded"):
        check_held_out(checkpoint, [same_target_seeds[2]])
    # resume keeps the views and draws the same ones: the uninterrupted run, continued
    half = tmp_path / "half.pt"
    train(TrainConfig(sources=[str(demo_take)], out=str(half), policy="baseline", steps=40, seed=0,
                      hyperparameters=SMALL_BASELINE, scene_views=[str(views_file)], scene_batch=6, **TINY))
    resumed = train(TrainConfig(sources=[str(demo_take)], out=str(half), steps=80, resume=str(half), **{
        k: v for k, v in TINY.items() if k in ("progress", "plot", "checkpoint_every")}))
    assert resumed.start_step == 40 and [p["scene_objects"] for p in resumed.parts] == scene[40:]
    with h5py.File(views_file, "a") as h5:  # the views change under a run: resuming it is refused
        h5["positions"][0, 0, 0] += 0.5
    with pytest.raises(ConfigError, match="scene view files changed since this run began"):
        train(TrainConfig(sources=[str(demo_take)], out=str(half), steps=90, resume=str(half), progress=False))


@pytest.mark.parametrize("change, words", [
    ({"policy": "act", "hyperparameters": {}}, "need --policy baseline with --hp object_loss"),
    ({"hyperparameters": {"film": True}}, "need --policy baseline with --hp object_loss"),
    ({"image_size": (24, 32)}, "scene views are 40x30, the policy sees 32x24"),
    ({"cameras": ["head", "chest"]}, "no camera chest"),
    ({"scene_batch": 0}, "scene batch must be at least 1"),
])
def test_scene_views_that_do_not_fit_the_training_run_are_one_line(tmp_path, demo_take, views_file, change, words):
    config = {**TINY, "hyperparameters": SMALL_BASELINE, "policy": "baseline", **change}
    with pytest.raises((ConfigError, DataError), match=words):
        train(TrainConfig(sources=[str(demo_take)], out=str(tmp_path / "p.pt"), steps=2,
                          scene_views=[str(views_file)], **config))
    assert not (tmp_path / "p.pt").exists()


def test_views_naming_an_object_no_take_names_are_refused(tmp_path, demo_take, take_conditions):
    from collector.sim import SimEnv

    with SimEnv(task="pick_place") as env:
        seed = next(s for s in range(8_000_000, 8_000_100)
                    if env.reset(seed=s)["object_layout"]["target"] != take_conditions["object_layout"]["target"])
    other = render_scene_views(tmp_path / "other.h5", task="pick_place", seeds=[seed], lighting=["bright"],
                               weights=["light"], image_size=IMAGE)
    with pytest.raises(ConfigError, match="scene views name .*which no training episode does"):
        train(TrainConfig(sources=[str(demo_take)], out=str(tmp_path / "p.pt"), steps=2, policy="baseline",
                          hyperparameters=SMALL_BASELINE, scene_views=[str(other)], **TINY))
    # asked for the objects a policy knows, the renderer skips layouts naming others
    known = take_conditions["object_layout"]["target"]
    kept = render_scene_views(tmp_path / "kept.h5", task="pick_place", seeds=range(seed, seed + 30),
                              lighting=["bright"], weights=["light"], image_size=IMAGE, targets=[known])
    views = SceneViews.load([kept])
    assert 0 < len(views) < 30 and set(views.targets) == {known} and seed not in views.seeds
    with pytest.raises(ConfigError, match="no layout of seeds"):
        render_scene_views(tmp_path / "none.h5", task="pick_place", seeds=[seed], lighting=["bright"],
                           weights=["light"], image_size=IMAGE, targets=[known])


def test_unreadable_scene_view_files_are_one_line(tmp_path, demo_take):
    with pytest.raises(ConfigError, match="no such scene view file"):
        SceneViews.load([tmp_path / "missing.h5"])
    with pytest.raises(DataError, match="not a scene view file"):
        SceneViews.load([demo_take])  # an episode is HDF5 too
    (tmp_path / "garbage.h5").write_bytes(b"\x89HDF\r\n" + bytes(500))
    with pytest.raises(DataError, match="unreadable scene view file"):
        SceneViews.load([tmp_path / "garbage.h5"])


def test_an_interrupted_render_leaves_no_file(tmp_path):
    def stop(done):
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        render_scene_views(tmp_path / "v.h5", task="pick_place", seeds=range(9_000_000, 9_000_004),
                           lighting=["bright"], weights=["light"], image_size=IMAGE, progress=stop)
    assert list(tmp_path.iterdir()) == []


def test_posing_the_robot_moves_only_the_robot(pick_env):
    pick_env.reset(seed=11)
    objects = {n: pick_env.data.body(n).xpos.copy() for n in pick_env.task.object_poses()}
    home = pick_env.joint_positions()
    bent = home + 0.2
    pick_env.pose_robot(bent)
    np.testing.assert_allclose(pick_env.joint_positions(), bent)
    for name, position in objects.items():
        np.testing.assert_array_equal(pick_env.data.body(name).xpos, position)
    assert pick_env.time == 0.0
    with pytest.raises(DataError, match="robot pose must be"):
        pick_env.pose_robot(bent[:-1])
    with pytest.raises(DataError, match="robot pose must be"):
        pick_env.pose_robot(np.full_like(bent, np.nan))
    pick_env.pose_robot(home)


def test_the_scene_views_command_writes_its_file_and_refuses_bad_arguments(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "collector", "scene-views", *args], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)

    done = run("v.h5", "--layouts", "3", "--views", "2", "--lighting", "dim", "--image-size", "40x30")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["views"] == 3 and summary["layouts"] == 3  # no --poses-from: one (home) view a layout
    assert len(SceneViews.load([tmp_path / "v.h5"])) == 3
    for args, words in [(("w.h5", "--lighting", "noon"), "--lighting: unknown value(s) noon"),
                        (("w.h5", "--image-size", "big"), "--image-size 'big'"),
                        (("w.h5", "--layouts", "0"), "--layouts and --views must be at least 1"),
                        (("w.h5", "--poses-from", str(tmp_path / "nothing")), "nothing")]:
        done = run(*args)
        assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
        assert words in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert not (tmp_path / "w.h5").exists()
