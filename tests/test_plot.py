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
    assert len(images) == 2 and "http" not in page.replace("https://", "")
    decoded = cv2.imdecode(np.frombuffer(base64.b64decode(images[1]), np.uint8), cv2.IMREAD_COLOR)
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
