"""The dashboard's HTTP server on loopback: token, cookie, host check, state, camera frames, actions."""
import http.client
import json
import time

import cv2
import numpy as np
import pytest

from collector.errors import CollectorError, ConfigError
from collector.session.dashboard import DashboardServer
from collector.session.live import LiveState
from collector.web_auth import MAX_FAILURES


@pytest.fixture()
def server():
    live = LiveState()
    pressed = []

    def control(action):
        if action == "discard":
            raise CollectorError("nothing to discard yet")
        pressed.append(action)
        return f"did {action}"

    dash = DashboardServer(live, control, port=0, token="secret-token").start()
    dash.pressed = pressed
    yield dash
    dash.close()


def request(server, method, path, headers=None, body=None, host=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    headers = dict(headers or {})
    headers.setdefault("Host", host or f"localhost:{server.port}")
    conn.request(method, path, body=body, headers=headers)
    reply = conn.getresponse()
    data = reply.read()
    conn.close()
    return reply, data


def test_page_needs_the_token_and_trades_it_for_a_cookie(server):
    reply, body = request(server, "GET", "/")
    assert reply.status == 401 and b"access token" in body
    reply, _ = request(server, "GET", "/?token=wrong")
    assert reply.status == 401
    reply, _ = request(server, "GET", "/?token=secret-token")
    assert reply.status == 303 and reply.getheader("Location") == "/"
    cookie = reply.getheader("Set-Cookie")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    reply, page = request(server, "GET", "/", {"Cookie": cookie.split(";")[0]})
    assert reply.status == 200 and b"coverage" in page.lower()
    assert b'content="secret-token"' in page  # the page needs it for its POSTs
    reply, script = request(server, "GET", "/static/dashboard.js", {"Cookie": cookie.split(";")[0]})
    assert reply.status == 200 and b"EventSource" in script
    reply, _ = request(server, "GET", "/static/../dashboard.py", {"Cookie": cookie.split(";")[0]})
    assert reply.status == 404


def test_requests_for_a_foreign_host_are_refused(server):
    # A DNS-rebinding page would arrive with its own host name even though it connects to loopback.
    reply, _ = request(server, "GET", "/api/state?token=secret-token", host="evil.example:80")
    assert reply.status == 403
    reply, _ = request(server, "GET", "/api/state?token=secret-token", host=f"127.0.0.1:{server.port}")
    assert reply.status == 200


def test_dashboard_refuses_to_bind_beyond_localhost():
    with pytest.raises(ConfigError, match="only binds to localhost"):
        DashboardServer(LiveState(), lambda a: a, host="0.0.0.0", port=0)


def test_state_and_camera_frames(server):
    auth = {"Authorization": "Bearer secret-token"}
    server.live.update(phase="ready", instruction="Pour the cup", cell={"task": "pour", "lighting": "dim", "weight": "heavy"})
    reply, body = request(server, "GET", "/api/state", auth)
    state = json.loads(body)
    assert state["phase"] == "ready" and state["cell"]["lighting"] == "dim" and state["cameras"] == []
    reply, _ = request(server, "GET", "/camera/head.jpg", auth)
    assert reply.status == 404
    image = np.zeros((48, 64, 3), np.uint8)
    image[:, :32] = (255, 0, 0)  # red on the left half, in RGB
    server.live.set_frame("head", 1.25, image)
    reply, body = request(server, "GET", "/camera/head.jpg", auth)
    assert reply.status == 200 and reply.getheader("Content-Type") == "image/jpeg"
    seq = int(reply.getheader("X-Frame-Seq"))
    decoded = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)  # BGR
    assert decoded.shape == (48, 64, 3)
    assert decoded[24, 8, 2] > 200 and decoded[24, 8, 0] < 60  # still red
    # waiting for a newer frame than the newest returns "nothing yet" after the wait
    reply, _ = request(server, "GET", f"/camera/head.jpg?after={seq}", auth)
    assert reply.status == 204


def test_frames_on_one_keep_alive_connection_do_not_wait_for_delayed_acks(server):
    server.live.set_frame("head", 1.0, np.zeros((48, 64, 3), np.uint8))
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    took = []
    for _ in range(30):  # the page polls a camera over one keep-alive connection
        start = time.perf_counter()
        connection.request("GET", "/camera/head.jpg", headers={"Authorization": "Bearer secret-token",
                                                               "Host": f"localhost:{server.port}"})
        reply = connection.getresponse()
        assert reply.status == 200 and reply.read()[:2] == b"\xff\xd8"
        took.append(time.perf_counter() - start)
    connection.close()
    # With Nagle's algorithm on, each body waited for the delayed ACK: ~40 ms median.
    assert np.median(took) < 0.025, f"median {np.median(took) * 1e3:.1f} ms per frame"


def test_actions_need_the_header_token_and_a_known_action(server):
    body = json.dumps({"action": "start"})
    cookie_only = {"Cookie": "collector_dashboard=secret-token", "Content-Type": "application/json"}
    reply, _ = request(server, "POST", "/api/control", cookie_only, body)
    assert reply.status == 401 and server.pressed == []
    header = {"X-Collector-Token": "secret-token", "Content-Type": "application/json"}
    reply, data = request(server, "POST", "/api/control", header, body)
    assert reply.status == 200 and json.loads(data) == {"ok": True, "message": "did start"}
    assert server.pressed == ["start"]
    reply, data = request(server, "POST", "/api/control", header, json.dumps({"action": "explode"}))
    assert reply.status == 400 and "unknown action" in json.loads(data)["error"]
    reply, data = request(server, "POST", "/api/control", header, "not json")
    assert reply.status == 400
    reply, data = request(server, "POST", "/api/control", header, json.dumps({"action": "discard"}))
    assert reply.status == 409 and json.loads(data)["error"] == "nothing to discard yet"


def test_event_stream_sends_snapshots(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", "/api/events", headers={"Host": "localhost", "X-Collector-Token": "secret-token"})
    reply = conn.getresponse()
    assert reply.getheader("Content-Type") == "text/event-stream"
    first = json.loads(reply.fp.readline().decode().removeprefix("data: "))
    reply.fp.readline()
    server.live.update(phase="recording")
    for _ in range(10):
        line = reply.fp.readline().decode()
        if line.startswith("data: "):
            snapshot = json.loads(line.removeprefix("data: "))
            if snapshot["phase"] == "recording":
                break
    assert snapshot["version"] > first["version"] and snapshot["phase"] == "recording"
    conn.close()


# -- hostile requests: bad query values, guessing, foreign pages -----------------------------------------------
TOKEN = {"X-Collector-Token": "secret-token"}


@pytest.mark.parametrize("path, needle", [
    ("/api/episodes?limit=abc", "limit"),
    ("/api/episodes?limit=-1", "limit"),
    ("/api/episodes?limit=0", "limit"),
    ("/api/episodes?limit=1e3", "limit"),
    ("/api/episodes?limit=" + "9" * 40, "limit"),
    ("/api/episodes?limit=1&limit=2", "limit"),
    ("/api/episodes?limit=--5", "limit"),
    ("/api/episodes?limit=1_0", "limit"),
    ("/api/episodes?limit=%D9%A3", "limit"),  # an Arabic-Indic digit, which int() would take
    ("/camera/head.jpg?after=xyz", "after"),
    ("/camera/head.jpg?after=-2", "after"),
    ("/camera/head.jpg?after=1.5", "after"),
    ("/camera/head.jpg?after=" + "9" * 40, "after"),
])
def test_bad_query_values_get_400_with_a_message(server, path, needle):
    reply, body = request(server, "GET", path, TOKEN)
    assert reply.status == 400
    text = body.decode()
    assert needle in text and "dashboard:" in text
    # The server keeps answering (before, the handler thread died and the connection was dropped).
    reply, _ = request(server, "GET", "/api/episodes?limit=5", TOKEN)
    assert reply.status == 200


def test_good_query_values_still_work(tmp_path):
    asked = []
    live = LiveState()
    with DashboardServer(live, lambda a: a, port=0, token="secret-token",
                         recent_episodes=lambda n: asked.append(n) or [{"index": 1}]) as dash:
        reply, body = request(dash, "GET", "/api/episodes?limit=7", TOKEN)
        assert reply.status == 200 and json.loads(body) == [{"index": 1}] and asked == [7]
        reply, _ = request(dash, "GET", "/api/episodes", TOKEN)
        assert reply.status == 200 and asked == [7, 20]
        reply, _ = request(dash, "GET", "/camera/head.jpg?after=0", TOKEN)
        assert reply.status == 404  # no frames yet: a camera answer, not a parameter error


def test_bad_post_bodies_are_refused_without_hanging(server):
    for length, status in (("-5", 400), ("abc", 400), (str(10**9), 413)):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        conn.putrequest("POST", "/api/control", skip_host=True)
        conn.putheader("Host", f"localhost:{server.port}")
        conn.putheader("X-Collector-Token", "secret-token")
        conn.putheader("Content-Length", length)
        conn.endheaders()
        reply = conn.getresponse()  # a timeout here is the server waiting for a body that never comes
        assert reply.status == status, length
        reply.read()
        conn.close()
    assert server.pressed == []


def test_wrong_tokens_on_post_are_counted_like_get(server):
    body = json.dumps({"action": "start"})
    for i in range(MAX_FAILURES):
        reply, _ = request(server, "POST", "/api/control", {"X-Collector-Token": f"guess-{i:08d}"}, body)
        assert reply.status == 401
    reply, _ = request(server, "POST", "/api/control", {"X-Collector-Token": "one-more-guess"}, body)
    assert reply.status == 429
    assert server.refused_requests == MAX_FAILURES + 1 and server.pressed == []


def test_guesses_from_another_local_process_never_lock_the_operator_out(server):
    for i in range(3 * MAX_FAILURES):  # another program on the station, same 127.0.0.1
        request(server, "GET", f"/api/state?token=guess-{i:08d}")
    reply, _ = request(server, "GET", "/api/state?token=wrong-again-123")
    assert reply.status == 429  # the guesser is throttled
    reply, body = request(server, "GET", "/api/state", TOKEN)  # the operator is not
    assert reply.status == 200 and "phase" in json.loads(body)
    reply, _ = request(server, "POST", "/api/control", TOKEN, json.dumps({"action": "start"}))
    assert reply.status == 200 and server.pressed == ["start"]
    reply, _ = request(server, "GET", "/?token=secret-token")
    assert reply.status == 303


def test_a_foreign_origin_is_refused_even_with_the_token(server):
    own = f"http://localhost:{server.port}"
    body = json.dumps({"action": "start"})
    for method, path, payload in (("GET", "/api/state", None), ("POST", "/api/control", body),
                                  ("GET", "/api/events", None)):
        reply, text = request(server, method, path, {**TOKEN, "Origin": "http://evil.example"}, payload)
        assert reply.status == 403 and b"origin" in text.lower(), path
    reply, _ = request(server, "POST", "/api/control", {**TOKEN, "Origin": "null"}, body)
    assert reply.status == 403 and server.pressed == []
    assert server.refused_requests == 4
    reply, _ = request(server, "POST", "/api/control", {**TOKEN, "Origin": own}, body)
    assert reply.status == 200 and server.pressed == ["start"]
    reply, _ = request(server, "GET", "/api/state", TOKEN)  # no Origin: a tool, judged by its token
    assert reply.status == 200


def test_extra_origins_can_be_allowed():
    with DashboardServer(LiveState(), lambda a: f"did {a}", port=0, token="secret-token",
                         allowed_origins=["https://Station.Example:9443/"]) as dash:
        reply, _ = request(dash, "GET", "/api/state", {**TOKEN, "Origin": "https://station.example:9443"})
        assert reply.status == 200
        reply, _ = request(dash, "GET", "/api/state", {**TOKEN, "Origin": "https://station.example:9444"})
        assert reply.status == 403
    with pytest.raises(ConfigError, match="--allow-origin"):
        DashboardServer(LiveState(), lambda a: a, port=0, allowed_origins=["station.example"])


# -- found moving the dashboard onto the shared gate (collector/web_pages.py) ----------------------------------
def _strict_json(data: bytes):
    def refuse(constant):
        raise AssertionError(f"{constant} is not JSON: the page's JSON.parse refuses it")
    return json.loads(data, parse_constant=refuse)


def test_joint_state_with_nan_stays_valid_json(server):
    # A driver reporting NaN for a joint made every snapshot invalid JSON, and the page stopped updating.
    server.live.set_robot(1.5, np.array([0.25, np.nan, np.inf]), ["a", "b", "c"])
    reply, body = request(server, "GET", "/api/state", TOKEN)
    assert reply.status == 200 and _strict_json(body)["robot"]["position"] == [0.25, None, None]
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", "/api/events", headers={"Host": "localhost", **TOKEN})
    stream = conn.getresponse()
    line = stream.fp.readline().decode()
    assert _strict_json(line.removeprefix("data: ").encode())["robot"]["position"] == [0.25, None, None]
    conn.close()


def test_a_cookie_from_another_localhost_app_does_not_break_the_page(server):
    # Browsers send every localhost cookie to every port; one name SimpleCookie finds illegal made the
    # dashboard drop the request unanswered, even one carrying the token in a header.
    cookies = "cart[items]=3; collector_dashboard=secret-token"
    reply, page = request(server, "GET", "/", {"Cookie": cookies})
    assert reply.status == 200 and b'content="secret-token"' in page
    reply, body = request(server, "GET", "/api/state", {**TOKEN, "Cookie": "cart[items]=3"})
    assert reply.status == 200 and "phase" in json.loads(body)


def test_closing_a_dashboard_that_never_started_returns():
    import threading

    dash = DashboardServer(LiveState(), lambda a: a, port=0)
    closer = threading.Thread(target=dash.close, daemon=True)  # before: shutdown() waited for a loop never run
    closer.start()
    closer.join(timeout=10)
    assert not closer.is_alive()


def test_refusals_are_json_the_page_can_show(server):
    # The page shows a refused button press as body.error; a text answer made it report
    # "could not reach the session: SyntaxError" instead (e.g. a page left open across a restart).
    stale = {"X-Collector-Token": "old-server-token", "Content-Type": "application/json"}
    reply, data = request(server, "POST", "/api/control", stale, json.dumps({"action": "start"}))
    answer = json.loads(data)
    assert reply.status == 401 and answer["ok"] is False
    assert answer["error"].startswith("dashboard: ") and "collector session" in answer["error"]
    reply, data = request(server, "POST", "/api/control", {**TOKEN, "Origin": "http://evil.example"}, "{}")
    assert reply.status == 403 and "Origin" in json.loads(data)["error"]
    reply, data = request(server, "GET", "/api/state", TOKEN, host="evil.example")
    assert reply.status == 403 and "localhost" in json.loads(data)["error"]
    assert server.pressed == []
