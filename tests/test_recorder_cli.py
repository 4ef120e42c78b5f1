"""`collector recover`, `collector inspect`, `collector validate` as an operator runs them."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import collector
from collector.cli import build_parser, main
from collector.recorder import EpisodeWriter
from helpers.recorder import METADATA, N_JOINTS, events, record, specs

REPO = Path(collector.__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """One good episode, one too short, and one partial (writer abandoned)."""
    root = tmp_path_factory.mktemp("episodes")
    record(root, "episode_000001", seconds=2.0, codecs=("jpeg", "jpeg"))
    record(root, "episode_000002", seconds=0.4, codecs=())
    writer = EpisodeWriter(root, "episode_000003", specs(("jpeg",)), metadata=METADATA, queue_seconds=1000)
    writer.start()
    for t, stream, fields in events(1.5):
        writer.push(stream, t, **fields)
    writer.abandon()
    return root


def test_help_of_each_command_explains_it():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert "partial" in sub.choices["recover"].format_help()
    assert "jitter" in sub.choices["inspect"].format_help()
    text = sub.choices["validate"].format_help()
    assert "frozen" in text and "--limits" in text and "exits 1" in text


def test_inspect_prints_metadata_conditions_streams_and_sync(folder, capsys):
    assert main(["inspect", str(folder / "episode_000001.hdf5")]) == 0
    out = capsys.readouterr().out
    assert "episode episode_000001  status=complete" in out
    assert '"name": "dim"' in out and '"cup": 0.25' in out  # conditions
    assert "camera_head" in out and "(jpeg)" in out and "joints" in out
    assert "aligned view: 60 rows" in out and "|err| mean" in out
    assert main(["inspect", "--json", str(folder / "episode_000001.hdf5")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["streams"]["joints"]["count"] == 200
    assert summary["streams"]["joints"]["effective_rate_hz"] == pytest.approx(100.0)
    assert summary["streams"]["camera_head"]["bytes_per_frame"] > 0
    assert summary["sync"]["joints"]["invalid_rows"] == 0
    assert summary["sync"]["joints"]["abs_error_max_ms"] <= 5.0 + 1e-6
    assert summary["conditions"]["weights"] == {"cup": 0.25, "box": 1.5}
    assert summary["recorder"]["drops"] == 0


def test_inspect_works_on_a_partial_file(folder, capsys):
    assert main(["inspect", str(folder / "episode_000003.partial.h5")]) == 0
    out = capsys.readouterr().out
    assert "status=recording" in out and "aligned view: none" in out


def test_validate_a_folder_lists_every_problem_and_fails(folder, capsys):
    assert main(["validate", str(folder)]) == 1
    out = capsys.readouterr().out
    assert f"ok    {folder / 'episode_000001.hdf5'}" in out
    assert f"FAIL  {folder / 'episode_000002.hdf5'}" in out and "too short: 0.39 s" in out
    assert "run `collector recover` on it" in out
    assert "1 of 3 episode(s) passed" in out
    assert main(["validate", str(folder / "episode_000001.hdf5")]) == 0
    capsys.readouterr()


def test_validate_with_a_limits_file(folder, tmp_path, capsys):
    limits = tmp_path / "limits.yaml"
    limits.write_text(f"lower: {[-0.01] * N_JOINTS}\nupper: {[0.01] * N_JOINTS}\n")
    assert main(["validate", "--json", "--limits", str(limits), str(folder / "episode_000001.hdf5")]) == 1
    result = json.loads(capsys.readouterr().out)
    problems = result["episodes"][str(folder / "episode_000001.hdf5")]
    assert any("outside the joint limits" in p for p in problems) and result["failed"] == 1
    limits.write_text("upper: [1]\n")
    assert main(["validate", "--limits", str(limits), str(folder)]) == 2
    assert "expected keys 'lower' and 'upper'" in capsys.readouterr().err


def test_errors_are_one_line(tmp_path, capsys):
    junk = tmp_path / "junk.h5"
    junk.write_text("not hdf5")
    assert main(["inspect", str(junk)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"collector inspect: error: {junk} is not an HDF5 file, so not a collector episode"
    assert main(["recover", str(junk)]) == 2
    assert "is not a partial episode" in capsys.readouterr().err


def test_recover_command_in_a_subprocess(tmp_path):
    path, _ = record(tmp_path, "episode_000009", seconds=1.2, codecs=("jpeg",))
    writer = EpisodeWriter(tmp_path, "episode_000010", specs(("jpeg",)), metadata=METADATA, queue_seconds=1000)
    writer.start()
    for t, stream, fields in events(1.2):
        writer.push(stream, t, **fields)
    writer.abandon()
    before = path.read_bytes()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-m", "collector", "recover", str(tmp_path)],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert f"recovered {tmp_path / 'episode_000010.partial.h5'} -> {tmp_path / 'episode_000010.hdf5'}" in out.stdout
    assert path.read_bytes() == before  # the finished episode beside it was not touched
    out = subprocess.run([sys.executable, "-m", "collector", "validate", str(tmp_path)],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stdout
