"""Offscreen cameras and the lighting presets: images change the way each condition says they should."""
import numpy as np
import pytest

from collector.errors import ConfigError
from collector.sim import SimEnv, lighting_presets
from collector.sim.conditions import sample_lighting


@pytest.fixture(scope="module")
def env():
    env = SimEnv(task="pick_place", theme="kitchen", lighting="bright", seed=0)
    yield env
    env.close()


@pytest.fixture(scope="module")
def preset_images(env):
    """The same pose (seed 0, home) under every lighting preset, seen by the head camera."""
    images, lux = {}, {}
    for name in lighting_presets():
        env.reset(seed=0, lighting=name)
        images[name] = env.render("head").astype(float)
        lux[name] = env.illuminance()
    return images, lux


def test_brightness_follows_the_presets(preset_images):
    images, lux = preset_images
    mean = {name: image.mean() for name, image in images.items()}
    assert mean["bright"] > mean["dim"] > mean["low_light"]
    assert mean["bright"] > 1.5 * mean["dim"]
    assert lux["bright"] > lux["dim"] > lux["low_light"]
    assert 600 < lux["bright"] < 2000 and lux["low_light"] < 150


def test_colour_temperature_follows_the_presets(preset_images):
    images, _ = preset_images

    def red_over_blue(image):
        return image[..., 0].mean() / image[..., 2].mean()

    assert red_over_blue(images["warm"]) > 1.15 * red_over_blue(images["bright"])
    assert red_over_blue(images["cool"]) < 0.95 * red_over_blue(images["bright"])


def test_every_preset_looks_different(preset_images):
    images, _ = preset_images
    names = list(images)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert np.abs(images[a] - images[b]).mean() > 1.0, f"{a} and {b} render alike"


def test_seeded_variation_is_reproducible(env):
    env.reset(seed=11, lighting="side_lit")
    first = env.render("head")
    env.reset(seed=11, lighting="side_lit")
    np.testing.assert_array_equal(env.render("head"), first)
    a, b = sample_lighting("side_lit", 11), sample_lighting("side_lit", 12)
    assert a == sample_lighting("side_lit", 11)
    assert a["lights"][0]["intensity"] != b["lights"][0]["intensity"]
    nominal = lighting_presets()["side_lit"]["lights"][0]["intensity"]
    spread = lighting_presets()["side_lit"]["variation"]["intensity"]
    for seed in range(20):
        value = sample_lighting("side_lit", seed)["lights"][0]["intensity"]
        assert abs(value / nominal - 1.0) <= spread + 1e-9


def test_camera_sizes_and_names(env):
    env.reset(seed=0, lighting="bright")
    for name, camera in env.robot.cameras.items():
        image = env.render(name)
        assert image.shape == (camera.height, camera.width, 3) and image.dtype == np.uint8
        assert image.std() > 5  # a real picture, not a blank frame
    assert env.render("overview").shape == (480, 640, 3)
    assert env.render("top", width=160, height=120).shape == (120, 160, 3)
    with pytest.raises(ConfigError, match="unknown camera"):
        env.render("nope")


def test_cameras_due_at_their_rate(env):
    env.reset(seed=0)
    counts = {name: 0 for name in env.robot.cameras}
    for _ in range(100):  # one simulated second at 100 Hz
        for name in env.due_cameras():
            counts[name] += 1
        env.step()
    for name, camera in env.robot.cameras.items():
        assert abs(counts[name] - camera.fps) <= 1, (name, counts[name])


def test_the_head_camera_sees_the_task(env):
    """The target object is visible to the head camera at home (its colour appears in the image)."""
    env.reset(seed=0, lighting="bright")
    image = env.render("head").astype(int)
    red = (image[..., 0] > 150) & (image[..., 1] < 80) & (image[..., 2] < 80)
    blue_tray = (image[..., 2] > 150) & (image[..., 0] < 80)
    assert red.sum() > 50 and blue_tray.sum() > 200


def test_themes_and_quality_change_the_picture():
    office = SimEnv(task="pour", theme="office", seed=0)
    workshop_high = SimEnv(task="pour", theme="workshop", seed=0, render_quality="high")
    try:
        a = office.render("overview").astype(float)
        b = workshop_high.render("overview").astype(float)
        assert np.abs(a - b).mean() > 10
        workshop_high.close()
        workshop_fast = SimEnv(task="pour", theme="workshop", seed=0, render_quality="fast")
        c = workshop_fast.render("overview").astype(float)
        workshop_fast.close()
        # Shadows (high) darken parts of the same scene the fast mode leaves lit.
        assert np.abs(b - c).mean() > 0.5
        assert b.mean() < c.mean()
    finally:
        office.close()
        workshop_high.close()
    with pytest.raises(ConfigError, match="render_quality"):
        SimEnv(render_quality="ultra")
