"""`collector plot`: figures of one episode as PNG or a self-contained HTML page."""
import base64
import re

import cv2
import numpy as np
import pytest

from collector.cli import main
from collector.dataset.plot import contact_sheet, make_figures, plot_episode, sync_figure, timeline_figure
from collector.dataset.synthetic import write_synthetic_episode
from collector.errors import ConfigError, DataError
from collector.recorder.reader import EpisodeReader


@pytest.fixture(scope="module")
def episode(tmp_path_factory):
    # joints drop out for 0.3 s in the middle: the timeline must show it as a gap
    return write_synthetic_episode(tmp_path_factory.mktemp("plot"), "episode_plot", duration_s=2.0, n_joints=6,
                                   camera_size=(48, 64), joint_gap=(0.8, 1.1))


def test_png_has_every_figure_stacked(episode, tmp_path):
    out = plot_episode(episode, tmp_path / "episode.png", dpi=60)
    image = cv2.imread(str(out))
    assert image is not None and image.shape[0] > 1000 and image.shape[1] >= 600
    assert image.std() > 10  # not a blank page


def test_timeline_marks_the_gap_and_sync_shows_every_stream(episode):
    with EpisodeReader(episode) as reader:
        timeline = timeline_figure(reader)
        (axes,) = timeline.axes
        gaps = [p for p in axes.patches if p.get_facecolor()[0] > 0.7]  # red spans
        assert len(gaps) == 1
        left, right = gaps[0].get_x(), gaps[0].get_x() + gaps[0].get_width()
        assert 0.75 < left < 0.85 and 1.05 < right < 1.15
        labels = [t.get_text() for t in axes.get_yticklabels()]
        assert any(label.startswith("joints (170") for label in labels)
        sync = sync_figure(reader)
        assert len(sync.axes) == len(reader.synced_streams)
        sheet = contact_sheet(reader, columns=4)
        assert len(sheet.axes) == 2 * 4


def test_html_is_self_contained(episode, tmp_path, capsys):
    out = tmp_path / "page.html"
    assert main(["plot", str(episode), "--out", str(out), "--figures", "joints", "frames", "--dpi", "50"]) == 0
    assert "wrote" in capsys.readouterr().out
    page = out.read_text()
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    # joints are the interactive plot (inline data and script), frames an image
    assert len(images) == 1 and "id='collector-joints'" in page and "http" not in page.replace("https://", "")
    decoded = cv2.imdecode(np.frombuffer(base64.b64decode(images[0]), np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None and decoded.shape[1] > 200
    assert "episode_plot" in page and "&quot;preset&quot;: &quot;bright&quot;" in page


def test_plot_errors_are_clear(episode, tmp_path, capsys):
    with pytest.raises(ConfigError, match=".png or .html"):
        plot_episode(episode, tmp_path / "x.pdf")
    with pytest.raises(ConfigError, match="unknown figure"):
        make_figures(episode, ["spectrum"])
    assert main(["plot", str(tmp_path / "missing.h5")]) == 2
    assert "no such file" in capsys.readouterr().err
    with pytest.raises(DataError):
        with EpisodeReader(episode) as reader:
            from collector.dataset.plot import joints_figure
            joints_figure(reader, measured="lidar")


# -- joints by group, with units (issue 17) ------------------------------------------------------------

HUMANOID_GROUPS = ["waist (rad)", "left_arm (rad)", "right_arm (rad)", "left_hand (m)", "right_hand (m)",
                   "head (rad)"]


def _still_humanoid_episode(directory, robot="humanoid", duration_s=2.0, moving=True):
    """The humanoid's 20 joints, nearly still: fingers at 45 mm and the waist at 0 with micro-unit noise
    (what autoscaling and offset notation used to blow up); the right elbow moves unless `moving` is off."""
    from collector.recorder.vocabulary import COMMAND, JOINTS, command_spec, joints_spec
    from collector.recorder.writer import EpisodeWriter
    from collector.robot import load_robot

    names = load_robot("humanoid").command_joints
    rng = np.random.default_rng(3)
    home = np.zeros(len(names))
    home[names.index("left_finger_a")] = home[names.index("right_finger_a")] = 0.045
    writer = EpisodeWriter(directory, "episode_still", [joints_spec(names, 100.0), command_spec(names, 100.0)],
                           metadata={"robot": robot, "task": "pick_place"}, min_free_bytes=0)
    writer.start()
    for i in range(int(duration_s * 100)):
        t = 10.0 + i / 100
        q = home + rng.normal(0, 1e-6, home.size)
        if moving:
            q[names.index("right_elbow")] = 1.5 + 0.5 * np.sin(t)
        writer.push(JOINTS, t, position=q, velocity=np.zeros_like(q), effort=np.zeros_like(q))
        writer.push(COMMAND, t, position=q + 1e-7)
    return writer.stop(outcome="success")


@pytest.fixture(scope="module")
def still_episode(tmp_path_factory):
    return _still_humanoid_episode(tmp_path_factory.mktemp("still"))


def test_joints_are_grouped_by_limb_with_units_read_from_the_robot(still_episode):
    from collector.dataset.plot import joints_figure

    with EpisodeReader(still_episode) as reader:
        fig = joints_figure(reader)
    fig.canvas.draw()
    axes = fig.axes
    assert [ax.get_ylabel() for ax in axes] == HUMANOID_GROUPS  # the robot YAML's groups, MJCF joint types
    assert axes[-1].get_xlabel() == "time (s)"
    legend = [[t.get_text() for t in ax.get_legend().get_texts()] for ax in axes]
    assert legend[3] == ["left_finger_a"] and len(legend[1]) == 7 and legend[1][0] == "left_shoulder_pitch"
    # measured solid and commanded dashed on the same axes: two lines per joint
    assert len(axes[1].get_lines()) == 14 and {line.get_linestyle() for line in axes[1].get_lines()} == {"-", "--"}
    for ax in axes:  # no "1e-6+4.5e-2" anywhere
        assert ax.yaxis.get_offset_text().get_text() == "" and ax.xaxis.get_offset_text().get_text() == ""
    # ticks read as the actual value: the finger sits at 45 mm
    assert "0.045" in [t.get_text() for t in axes[3].get_yticklabels()]


def test_noise_on_a_still_joint_stays_flat_but_motion_keeps_its_own_scale(still_episode):
    from collector.dataset.plot import joints_figure

    with EpisodeReader(still_episode) as reader:
        axes = joints_figure(reader).axes
    spans = [ax.get_ylim()[1] - ax.get_ylim()[0] for ax in axes]
    assert spans[0] == pytest.approx(0.05)  # waist: 1e-6 rad noise in a 0.05 rad window
    assert spans[3] == pytest.approx(0.005) and spans[4] == pytest.approx(0.005)  # fingers: 5 mm
    assert spans[2] > 1.0  # the moving right elbow (1 rad swing) is not squeezed into the minimum
    low, high = axes[3].get_ylim()
    assert low < 0.045 < high


def test_unknown_robot_says_so_instead_of_guessing_units(tmp_path):
    from collector.dataset.plot import joints_figure

    episode = _still_humanoid_episode(tmp_path, robot="no_such_robot", duration_s=0.5)
    with EpisodeReader(episode) as reader:
        fig = joints_figure(reader)
    assert [ax.get_ylabel() for ax in fig.axes] == ["joints"]
    assert "units unknown" in fig._suptitle.get_text() and "no_such_robot" in fig._suptitle.get_text()


def test_joint_groups_take_units_from_joint_types_not_names():
    from collector.robot.joint_groups import joint_groups, robot_joint_groups

    # a slide joint called "elbow" and a hinge called "gripper": the unit follows the type
    groups = joint_groups(["elbow", "gripper", "extra"], {"arm": ["elbow", "gripper"]},
                          {"elbow": "m", "gripper": "rad"})
    assert [(g.name, g.unit, g.joints) for g in groups] == [
        ("arm m", "m", ("elbow",)), ("arm rad", "rad", ("gripper",)), ("other", "", ("extra",))]
    fingers = [g for g in robot_joint_groups("humanoid") if g.name.endswith("hand")]
    assert [(g.unit, g.min_span) for g in fingers] == [("m", 0.005), ("m", 0.005)]


def test_long_takes_are_reduced_without_losing_a_spike():
    from collector.dataset.plot_html import reduce_min_max

    t = np.arange(60_000) / 100.0  # 10 minutes at 100 Hz
    q = np.zeros((t.size, 2))
    q[31_337, 1] = 0.7  # one sample
    t_out, q_out = reduce_min_max(t, q, max_points=4000)
    assert t_out.size == 4000 and np.all(np.diff(t_out) >= 0)
    assert q_out[:, 1].max() == 0.7 and q_out[:, 0].max() == 0.0


def test_html_joint_plot_is_interactive_in_chromium(browser, still_episode, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains

    out = plot_episode(still_episode, tmp_path / "still.html", which=["joints"])
    page = out.read_text()
    assert "<script src" not in page and "<link" not in page and "http" not in page  # nothing fetched
    browser.get(out.as_uri())
    groups = browser.execute_script("""return Array.from(document.querySelectorAll('#joints-plot svg')).map(
        (s) => [s.dataset.group, s.querySelector('.ylabel').textContent, s.querySelector('.xlabel').textContent,
                s.querySelectorAll('polyline.measured').length, s.querySelectorAll('polyline.commanded').length])""")
    assert [g[1] for g in groups] == HUMANOID_GROUPS
    assert all(g[2] == "time (s)" for g in groups) and groups[1][3:] == [7, 7]
    ticks = browser.execute_script(
        "return Array.from(document.querySelectorAll('svg[data-group=left_hand] .ytick')).map((e) => e.textContent)")
    assert "0.045" in ticks and not any("e" in tick for tick in ticks)  # plain values, at least a 5 mm span

    finger = browser.find_element("css selector", "svg[data-group=left_hand]")
    width = finger.size["width"]
    ActionChains(browser).move_to_element_with_offset(finger, 0, 0).perform()  # centre: t about 1 s
    readout = browser.execute_script("return document.querySelector('.legend [data-joint=left_finger_a]').textContent")
    assert re.fullmatch(r"left_finger_a: 0\.0450 m \(cmd 0\.0450 m\)", readout), readout
    assert 0.8 < browser.execute_script("return window.collectorPlot.hover") < 1.2

    # drag from about 0.5 s to 1.0 s: every group zooms to that span; double-click shows the whole take
    ActionChains(browser).move_to_element_with_offset(finger, -width // 4, 0).click_and_hold() \
        .move_to_element_with_offset(finger, 0, 0).release().perform()
    view = browser.execute_script("return window.collectorPlot.view")
    assert 0.2 < view[0] < 0.7 and 0.8 < view[1] < 1.2
    assert "showing" in browser.find_element("id", "joints-view").text
    ActionChains(browser).double_click(finger).perform()
    assert browser.execute_script("return window.collectorPlot.view") == pytest.approx([0.0, 1.99], abs=0.01)
