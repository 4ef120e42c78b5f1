"""`collector vr serve|replay|cert` as real subprocesses."""
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from collector.cli import main
from collector.teleop.vr.client import PageClient
from collector.teleop.vr.recording import write_session
from collector.teleop.vr.synthetic import synthetic_session
from helpers.vr import free_endpoint, free_port, run

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def collector(*args, **kw):
    return subprocess.run([sys.executable, "-m", "collector", *args], capture_output=True, text=True,
                          env=ENV, timeout=60, **kw)


def _serve_args(cert_dir, port=0):
    return ["vr", "serve", "--port", str(port), "--cert-dir", str(cert_dir), "--input-endpoint", free_endpoint(),
            "--camera-endpoint", free_endpoint(), "--status-endpoint", free_endpoint(),
            "--event-endpoint", free_endpoint()]


def test_serve_prints_a_token_url_accepts_the_page_protocol_and_stops_on_ctrl_c(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "collector", *_serve_args(tmp_path), "--record",
                             str(tmp_path / "rec.jsonl")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=ENV)
    lines = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Ctrl-C to stop" in line:
                break
        banner = "".join(lines)
        match = re.search(r"open on the headset:\s+(https://127\.0\.0\.1:\d+/\?token=[\w-]+)", banner)
        assert match, banner
        url = match.group(1)
        assert "SHA-256 fingerprint" in banner and "(new: trust it once)" in banner
        assert "adb reverse" in banner  # bound to localhost: the banner says how to reach it

        async def page():
            client = PageClient(url, cafile=tmp_path / "vr-server-cert.pem")
            welcome = await client.connect()
            await client.close()
            return welcome

        assert run(page())["role"] == "operator"
        session = write_session(tmp_path / "session.jsonl", synthetic_session(0.3, 90.0))
        replay = collector("vr", "replay", str(session), "--url", url, "--cafile",
                           str(tmp_path / "vr-server-cert.pem"), "--speed", "2")
        assert replay.returncode == 0, replay.stdout + replay.stderr
        assert re.search(r"sent 27 messages", replay.stdout), replay.stdout
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "stopping VR bridge" in out
    recorded = (tmp_path / "rec.jsonl").read_text().splitlines()
    assert len(recorded) == 1 + 27  # header + the replayed frames (the hello is not part of a session)


# The remaining cases run the CLI in-process (same parser and error handling, no interpreter start-up).

def cli(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_bad_tls_files_token_and_busy_port_are_one_line_errors(tmp_path, capsys):
    code, _, err = cli(capsys, *_serve_args(tmp_path), "--cert", str(tmp_path / "nope.pem"), "--key", "k")
    assert code == 2
    assert re.fullmatch(r"collector vr: error: certificate file \S+nope.pem does not exist\n", err)
    code, _, err = cli(capsys, *_serve_args(tmp_path), "--token", "abc")
    assert code == 2 and "--token must be at least 12 characters" in err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, _, err = cli(capsys, *_serve_args(tmp_path, port))
    assert code == 2 and f"cannot listen on 127.0.0.1:{port}" in err


def test_help(capsys):
    with pytest.raises(SystemExit) as done:
        main(["vr", "serve", "--help"])
    out = capsys.readouterr().out
    assert done.value.code == 0 and "--test-pattern" in out and "session token" in out
    assert cli(capsys, "vr")[0] == 2  # no action: prints the vr help


def test_cert_command_creates_and_describes_the_certificate(tmp_path, capsys):
    code, out, _ = cli(capsys, "vr", "cert", "--cert-dir", str(tmp_path), "--host", "10.1.2.3")
    assert code == 0
    assert "10.1.2.3" in out and (tmp_path / "vr-server-cert.pem").is_file()


def test_replay_of_a_corrupt_session_file_is_a_one_line_error(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not a session\n")
    code, _, err = cli(capsys, "vr", "replay", str(bad), "--url", f"https://127.0.0.1:{free_port()}/?token=x")
    assert code == 2 and "not a collector-vr-session" in err
