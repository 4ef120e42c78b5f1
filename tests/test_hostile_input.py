"""Hostile operator input over a real ZMQ socket: a malformed message is rejected and counted, and the
control loop (in process, and `collector teleop --device zmq` as a real process) keeps running."""
import socket
import subprocess
import sys
import time
from pathlib import Path

import msgpack
import pytest

from collector.teleop import messages as m
from collector.backends.sim import SimBackend
from collector.teleop.loop import TeleopLoop
from collector.teleop.zmq_link import InputPublisher
from helpers.teleop import ListSink, vr_message

REPO = Path(__file__).resolve().parents[1]


def free_tcp_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def packed_with(msg, **changes) -> bytes:
    """A message's wire map with some fields replaced by values a well-behaved sender never produces."""
    raw = m.to_wire_dict(msg)
    raw.update(changes)
    return msgpack.packb(raw, use_bin_type=True)


HOSTILE = {
    "seq past int64": {"seq": 2**63},
    "seq at uint64 max": {"seq": 2**64 - 1},
    "stamp far away": {"stamp": 1e300},
    "wrist a light-year away": {"right_wrist": [9.46e15, 0, 0, 1, 0, 0, 0]},
}


def test_out_of_range_messages_over_tcp_are_counted_and_the_loop_keeps_recording(toy_env):
    backend = SimBackend(toy_env, render=False)
    toy_env.reset(seed=1)
    sink = ListSink()
    endpoint = free_tcp_endpoint()
    publisher = InputPublisher(endpoint, bind=True)
    loop = TeleopLoop(backend, device=None, sink=sink, endpoint=endpoint, bind=False)
    try:
        publisher.wait_for_subscriber(5.0)
        loop.start()
        seq = 0
        for name, changes in HOSTILE.items():
            publisher.publish(vr_message(seq, backend.now()))
            publisher.publish_bytes(packed_with(vr_message(seq + 1, backend.now()), **changes))
            seq += 1
            deadline = time.monotonic() + 2.0
            while len(sink.samples.get("input", [])) < seq and time.monotonic() < deadline:
                loop.tick()
        for _ in range(20):  # let the last rejection arrive over TCP
            loop.tick()
        assert loop.stats.inputs_rejected == len(HOSTILE)
        assert loop.subscriber.last_error is not None and "position beyond" in loop.subscriber.last_error
        recorded = [int(f["seq"]) for _, f in sink.samples["input"]]
        assert recorded == list(range(len(HOSTILE)))  # every good message, none of the hostile ones
    finally:
        loop.close()
        publisher.close()


def test_collector_teleop_survives_a_seq_of_2_to_the_63_over_a_real_socket():
    endpoint = free_tcp_endpoint()
    publisher = InputPublisher(endpoint, bind=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "collector", "teleop", "--device", "zmq", "--endpoint", endpoint, "--duration", "3",
         "--task", "pick_place"],
        cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        publisher.wait_for_subscriber(90.0)
        seq = 0
        start = time.monotonic()
        while proc.poll() is None and time.monotonic() - start < 60:
            publisher.publish(vr_message(seq, time.monotonic()))
            publisher.publish_bytes(packed_with(vr_message(seq + 1, time.monotonic()), seq=2**63))
            seq += 1
            time.sleep(0.02)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        publisher.close()
    assert "Traceback" not in err, err[-2000:]
    assert proc.returncode == 0, err[-2000:]
    assert "rejected operator input" in err and "seq" in err  # the reason is logged once, not per message
    assert err.count("rejected operator input") == 1
    assert "/1 episodes succeeded" in out


# -- the access rules both servers share (collector/web_auth.py) -----------------------------------------------
from collector.errors import ConfigError  # noqa: E402
from collector.web_auth import MAX_FAILURES, AccessGate, FailureLimiter, check_allowed_origin  # noqa: E402


def test_the_right_token_is_accepted_whatever_was_guessed_before():
    gate = AccessGate("the-real-token-1", unauthorized=401)
    for i in range(5 * MAX_FAILURES):
        refusal = gate.check("127.0.0.1", [f"guess-{i}"], None, "http", "localhost:1", now=100.0)
        assert refusal is not None and refusal.status == (401 if i < MAX_FAILURES else 429)
    assert gate.check("127.0.0.1", ["the-real-token-1"], None, "http", "localhost:1", now=100.0) is None
    # Another client is not throttled by the first one's guesses, and the window passes.
    assert gate.check("10.0.0.9", ["nope"], None, "http", "localhost:1", now=100.0).status == 401
    assert gate.check("127.0.0.1", ["nope"], None, "http", "localhost:1", now=161.0).status == 401
    assert gate.refused == 5 * MAX_FAILURES + 2


def test_origin_must_be_the_page_that_served_or_an_allowed_one():
    gate = AccessGate("the-real-token-1", allowed_origins=["https://Extra.example:8443/"])
    ok = ["the-real-token-1"]
    assert gate.check("p", ok, "https://localhost:8443", "https", "localhost:8443") is None
    assert gate.check("p", ok, "https://extra.example:8443", "https", "localhost:8443") is None
    assert gate.check("p", ok, None, "https", "localhost:8443") is None
    for foreign in ("https://evil.example", "http://localhost:8443", "https://localhost:8444", "null", ""):
        assert gate.check("p", ok, foreign, "https", "localhost:8443").status == 403, foreign
    assert gate.refused_origins == 5 and gate.refused == 5


def test_failure_memory_is_bounded_per_client():
    limiter = FailureLimiter(max_failures=3, window_s=10.0)
    for k in range(100_000):
        limiter.record_failure("flooder", now=float(k) * 1e-4)
    assert len(limiter._failures["flooder"]) == 3 and limiter.blocked("flooder", now=10.0)
    assert not limiter.blocked("flooder", now=30.0) and "flooder" not in limiter._failures


@pytest.mark.parametrize("bad", ["evil.example", "https://evil.example/path", "ftp://x", "https://", "*"])
def test_malformed_allowed_origins_are_config_errors(bad):
    with pytest.raises(ConfigError, match="--allow-origin"):
        check_allowed_origin(bad)


def test_a_malformed_allow_origin_is_a_one_line_error(tmp_path, capsys):
    from collector.cli import main

    assert main(["session", "--plan", "demo", "--out", str(tmp_path / "ds"), "--port", "0",
                 "--allow-origin", "station.example"]) == 2
    assert capsys.readouterr().err.strip().startswith("collector session: error: --allow-origin 'station.example'")
    assert not (tmp_path / "ds").exists()
    assert main(["vr", "serve", "--port", "0", "--cert-dir", str(tmp_path / "cert"),
                 "--allow-origin", "https://x.example/app"]) == 2
    assert capsys.readouterr().err.strip().startswith("collector vr: error: --allow-origin")


def test_a_page_on_another_site_in_a_real_browser_cannot_hijack_the_vr_websocket(tmp_path):
    """Cross-site WebSocket hijacking in headless Chromium: a page from another origin that knows the token
    opens the VR server's WebSocket. The browser sends that page's Origin, and the server refuses it."""
    import http.server
    import threading

    from helpers.browser import chromium
    from helpers.vr import running_server, wait_until

    with running_server(tmp_path / "cert") as (server, info, _), chromium() as browser:
        target = server.url().replace("https://", "wss://").replace("/?token=", "/ws?token=")
        page = (f"<html><body><script>window.result = 'pending';"
                f"const ws = new WebSocket({target!r});"
                f"ws.onopen = () => {{ window.result = 'open'; }};"
                f"ws.onclose = () => {{ if (window.result === 'pending') window.result = 'refused'; }};"
                f"</script></body></html>").encode()

        class Evil(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args):
                pass

        # Threading: Chromium opens a spare (preconnect) socket that would hold a one-at-a-time server.
        evil = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Evil)
        threading.Thread(target=evil.serve_forever, daemon=True).start()
        try:
            # "localhost" vs the server's 127.0.0.1: another site as far as the browser is concerned.
            browser.get(f"http://localhost:{evil.server_address[1]}/")
            assert wait_until(lambda: browser.execute_script("return window.result") != "pending", timeout_s=15)
            assert browser.execute_script("return window.result") == "refused"
            assert server.stats()["refused_origins"] == 1
            # The server's own page in the same browser still connects.
            browser.get(server.url())
            assert wait_until(lambda: (browser.execute_script("return window.collectorVR || {}")
                                       .get("connection")) == "connected", timeout_s=30)
        finally:
            evil.shutdown()
            evil.server_close()


@pytest.mark.parametrize("kind, words", [("directory", "cannot read: Is a directory"),
                                         ("garbage", "is not UTF-8 text"),
                                         ("infinite", ":2: entry out of order")])
def test_a_spoilt_vr_session_file_is_a_one_line_error(tmp_path, kind, words):
    from collector.teleop.vr.recording import FORMAT, VERSION

    path = tmp_path / "session.jsonl"
    if kind == "directory":
        path.mkdir()
    elif kind == "garbage":
        path.write_bytes(b"\xff" + bytes(range(256)))
    else:  # a stamp of Infinity would make `collector vr replay` wait forever
        path.write_text(f'{{"format": "{FORMAT}", "version": {VERSION}}}\n{{"t": Infinity, "msg": "{{}}"}}\n')
    proc = subprocess.run([sys.executable, "-m", "collector", "vr", "replay", str(path), "--url",
                           "https://127.0.0.1:9/?token=abcdefghijklmnop"], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"collector vr: error: ") and str(path) in last and words in last, last
