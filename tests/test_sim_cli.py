"""`collector sim`: a real headless run writes a contact sheet PNG of every camera, one row per lighting."""
import subprocess
import sys

import cv2
import pytest

from collector.cli import main
from collector.sim.contact_sheet import LABEL_HEIGHT, ROW_LABEL_WIDTH


def test_sim_writes_contact_sheet_with_a_row_per_lighting(tmp_path, capsys):
    out = tmp_path / "sheet.png"
    code = main(["sim", "--task", "pour", "--theme", "office", "--lighting", "bright,dim,low_light",
                 "--duration", "0.3", "--tile-width", "160", "--stream", "--out", str(out)])
    assert code == 0
    image = cv2.imread(str(out))
    cameras = 5  # head, left_wrist, right_wrist, overview, top
    assert image.shape == (2 * LABEL_HEIGHT + 3 * 120, ROW_LABEL_WIDTH + cameras * 160, 3)
    rows = [image[2 * LABEL_HEIGHT + 120 * r: 2 * LABEL_HEIGHT + 120 * (r + 1), ROW_LABEL_WIDTH:] for r in range(3)]
    brightness = [row.mean() for row in rows]
    assert brightness[0] > brightness[1] > brightness[2]  # bright, dim, low_light
    printed = capsys.readouterr().out
    assert "3 lighting row(s) x 5 camera(s)" in printed and "low_light" in printed


def test_sim_rejects_bad_arguments(tmp_path, capsys):
    assert main(["sim", "--lighting", "disco", "--out", str(tmp_path / "x.png")]) == 2
    assert "disco" in capsys.readouterr().err
    assert main(["sim", "--cameras", "head,ghost", "--duration", "0", "--out", str(tmp_path / "x.png")]) == 2
    assert "ghost" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


@pytest.mark.slow
def test_sim_runs_as_a_subprocess(tmp_path):
    out = tmp_path / "default.png"
    result = subprocess.run([sys.executable, "-m", "collector", "sim", "--duration", "0.2", "--out", str(out)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    image = cv2.imread(str(out))
    assert image.shape == (2 * LABEL_HEIGHT + 240, ROW_LABEL_WIDTH + 5 * 320, 3)
