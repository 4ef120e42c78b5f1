"""`collector teleop` as a user runs it: missing devices give one clear line, not a traceback."""
import subprocess
import sys

import pytest


@pytest.mark.parametrize("device, needle", [("keyboard", "not a terminal"), ("gamepad", "gamepad")])
def test_missing_device_is_one_line_error(device, needle):
    proc = subprocess.run([sys.executable, "-m", "collector", "teleop", "--device", device, "--duration", "1"],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("collector teleop: error:")]
    assert len(errors) == 1 and needle in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_help_explains_the_devices():
    proc = subprocess.run([sys.executable, "-m", "collector", "teleop", "--help"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0
    for word in ("scripted", "keyboard", "gamepad", "zmq", "--record", "--lighting", "--weight"):
        assert word in proc.stdout
