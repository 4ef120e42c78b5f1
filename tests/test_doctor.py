"""`collector doctor`: every check reported; an optional one failing does not fail the doctor."""
import os
from unittest import mock

from collector.cli import main


def test_doctor_reports_every_check_and_passes_on_this_machine(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    for label in ("mujoco", "offscreen rendering", "mink", "h5py", "opencv", "pyzmq", "realtime scheduling"):
        assert f"{label}" in out
    assert "all required checks passed" in out


def test_realtime_scheduling_not_permitted_is_explained_but_optional(capsys):
    with mock.patch.object(os, "sched_setscheduler", side_effect=PermissionError(1, "Operation not permitted")):
        assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if "realtime scheduling" in line)
    assert line.strip().startswith("FAIL") and "rtprio 50" in line and "limits.conf" in line
    assert "all required checks passed" in out
