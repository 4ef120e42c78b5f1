"""The floor manager's dashboard (`collector fleet`): the floor's figures on a catalogue of known rows (SQLite
and a real PostgreSQL server), its server's gate and event stream over real sockets, and the page in
headless Chromium against a real `collector fleet` process: three stations listed, a heartbeat shown
without a reload, a silent station offline, the page back after the server restarts.
"""
import dataclasses
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from collector.fleet.claims import CellClaims
from collector.fleet.floor import TakeReader, floor_snapshot, plan_progress, rates, station_state
from collector.fleet.floor_server import FleetServer
from collector.fleet.stations import StationRegistry
from collector.session.catalog import Catalog, episode_id_for
from collector.session.plan import load_plan

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)

# (station, operator, plan, task, lighting, weight, status, outcome, qa, minutes before NOW it finished)
TAKES = [
    ("st1", "ana", "demo", "pick_place", "bright", "light", "kept", "success", "pass", 10),
    ("st1", "ana", "demo", "pick_place", "bright", "light", "kept", "success", "pass", 20),  # cell's 2nd: capped
    ("st1", "ana", "demo", "pour", "dim", "heavy", "kept", "failure", "fail", 30),
    ("st2", "bo", "other", "pour", "dim", "light", "kept", "success", "pass", 40),
    ("st2", "bo", "demo", "pour", "dim", "heavy", "kept", "success", "pass", 90),
    ("st2", "bo", "demo", "pour", "bright", "light", "interrupted", "unknown", "pending", 100),
    ("st2", "bo", "demo", "pick_place", "dim", "light", "discarded", "success", "pass", 5),  # thrown away: no take
    ("st3", "ana", "demo", "pour", "bright", "heavy", "kept", "success", "fail", 11.5 * 60),
    ("st3", "ana", "demo", "pick_place", "dim", "heavy", "kept", "success", "pass", 13 * 60),  # before the window
    ("st1", "ana", "demo", "pour", "bright", "light", "recording", "unknown", "pending", None),  # in progress
]
RECORDING = {"activity": "recording", "plan": "demo", "take": "episode_000010",
             "cell": {"task": "pour", "lighting": "bright", "weight": "light"}, "operator": "ana",
             "disk_free_bytes": 512_000_000_000, "upload_backlog": 3, "upload_backlog_bytes": 48_000_000}


def fill(catalog: Catalog, now: datetime) -> None:
    rows = []
    for index, (station, operator, plan, task, lighting, weight, status, outcome, qa, minutes) in enumerate(TAKES, 1):
        finished = None if minutes is None else now - timedelta(minutes=minutes)
        started = (finished or now) - timedelta(seconds=30)
        rows.append({"episode_index": index, "episode_id": episode_id_for(index), "session_id": f"s-{station}",
                     "plan": plan, "task": task, "lighting": lighting, "weight": weight, "operator": operator,
                     "station": station, "status": status, "outcome": outcome, "qa": qa,
                     "started_at": started.isoformat(timespec="milliseconds"),
                     "finished_at": finished and finished.isoformat(timespec="milliseconds")})
    catalog.insert_episodes(rows)


def register(registry: StationRegistry, *names: str) -> None:
    for name in names:
        registry.register(name, robot="humanoid", cameras=["head", "wrist"], version="test", host=f"host-{name}")


def by_value(groups):
    return {g["value"]: (g["takes"], g["successes"], g["qa_checked"], g["qa_failures"], g["success_rate"],
                         g["qa_failure_rate"]) for g in groups}


def test_floor_figures_on_known_rows(catalog_location):
    catalog = Catalog(catalog_location)
    fill(catalog, NOW)
    registry = StationRegistry(catalog)
    register(registry, "st1", "st2", "st3")
    registry.heartbeat("st1", json.dumps(RECORDING))
    registry.heartbeat("st2", "recording since 10:02")  # a station from before the JSON state
    with catalog.transaction() as conn:  # st3 went silent two minutes ago
        conn.execute("UPDATE stations SET heartbeat_at = heartbeat_at - 120 WHERE station = 'st3'")
    claims = CellClaims(catalog, "other")
    claims.need([(("pour", "dim", "light"), 2), (("pour", "dim", "heavy"), 1)])
    claims.finish(claims.claim("st2"), good=True, episode_id="episode_000004")
    claims.claim("st1")  # held under a live lease

    floor = floor_snapshot(catalog, registry, plans=[load_plan("demo")], offline_after_s=30, now=NOW)

    # the window's takes: every attempted take finished in the last 12 h, counted in its hour
    assert floor["takes_per_hour"] == [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 4]
    assert floor["takes_last_hour"] == 4 and floor["hours"] == 12
    assert by_value(floor["rates"]["station"]) == {"st1": (3, 2, 3, 1, 0.6667, 0.3333),
                                                   "st2": (3, 2, 2, 0, 0.6667, 0.0),
                                                   "st3": (1, 1, 1, 1, 1.0, 1.0)}
    assert [g["value"] for g in floor["rates"]["station"]] == ["st1", "st2", "st3"]  # most takes first
    assert by_value(floor["rates"]["operator"]) == {"ana": (4, 3, 4, 2, 0.75, 0.5), "bo": (3, 2, 2, 0, 0.6667, 0.0)}
    assert by_value(floor["rates"]["lighting"]) == {"bright": (4, 3, 3, 1, 0.75, 0.3333),
                                                    "dim": (3, 2, 3, 1, 0.6667, 0.3333)}
    assert by_value(floor["rates"]["task"])["pour"] == (5, 3, 4, 2, 0.6, 0.5)
    assert by_value(floor["rates"]["weight"])["heavy"] == (3, 2, 3, 2, 0.6667, 0.6667)

    # plan progress: the plan file's need (8 cells x 1) against good takes of all time, capped per cell;
    # a plan without its file: the slots its stations claim
    plans = {p["plan"]: p for p in floor["plans"]}
    assert plans["demo"] == {"plan": "demo", "good": 3, "wanted": 8, "claimed": 0, "source": "plan",
                             "cells_done": 3, "cells": 8, "fraction": 0.375}
    assert plans["other"] == {"plan": "other", "good": 1, "wanted": 3, "claimed": 1, "source": "claims",
                              "fraction": 0.3333}

    stations = {s["station"]: s for s in floor["stations"]}
    assert floor["online"] == 2
    assert stations["st1"]["online"] and stations["st1"]["activity"] == "recording"
    assert {k: stations["st1"][k] for k in RECORDING if k != "activity"} == {k: v for k, v in RECORDING.items()
                                                                           if k != "activity"}
    assert stations["st2"]["online"] and stations["st2"]["activity"] == "unknown" and stations["st2"]["take"] == ""
    assert not stations["st3"]["online"] and stations["st3"]["activity"] == "offline"
    assert 110 <= stations["st3"]["silent_s"] <= 200 and stations["st3"]["host"] == "host-st3"
    json.dumps(floor, allow_nan=False)  # plain JSON all through


def test_a_kept_reader_follows_new_and_finished_takes_and_settles_older_changes(catalog_location):
    catalog = Catalog(catalog_location)
    fill(catalog, NOW)
    reader = TakeReader(catalog, settle_s=3600)
    takes, good = reader.read(NOW)
    assert len(takes) == 7 and good[("demo", "pick_place", "bright", "light", "good")] == 2
    assert reader._boundary == 1  # row 1 finished 10 min ago; nothing older can enter the window

    catalog.update_episode(10, status="kept", outcome="success", qa="pass", finished_at=NOW.isoformat())
    row = catalog.allocate_episode(session_id="s", plan="demo", task="pour", lighting="dim", weight="light",
                                   station="st4", operator="cy")
    catalog.update_episode(row.episode_index, status="kept", outcome="failure", qa="fail",
                           finished_at=NOW.isoformat())
    takes, good = reader.read(NOW)
    assert len(takes) == 9 and good[("demo", "pour", "bright", "light", "good")] == 1
    assert by_value(rates(takes, "station"))["st4"] == (1, 0, 1, 1, 0.0, 1.0)

    # a take before the window: the reader starts after it, so its review shows at the next full pass
    later = NOW + timedelta(hours=11, minutes=55)  # the window starts 5 min before NOW: at row 7
    reader = TakeReader(catalog, settle_s=3600)
    assert [t["episode_index"] for t in reader.read(later)[0]] == [10, 11]
    assert reader._boundary == 7
    with catalog.transaction() as conn:
        conn.execute("UPDATE episodes SET review_verdict = 'accepted' WHERE episode_index = 1")
    assert reader.read(later)[1].get(("demo", "pick_place", "bright", "light", "accepted")) is None
    reader.settle_s = 0
    good = reader.read(later)[1]
    assert good[("demo", "pick_place", "bright", "light", "accepted")] == 1
    assert good[("demo", "pick_place", "bright", "light", "good")] == 1


def test_recent_good_takes_count_the_same_by_hand_and_by_the_database(tmp_path, monkeypatch):
    import collector.fleet.floor as floor

    catalog = Catalog(tmp_path / "catalog.sqlite")
    fill(catalog, NOW)
    by_hand = TakeReader(catalog).read(NOW)
    monkeypatch.setattr(floor, "ROWS_BY_HAND", -1)  # as for a catalogue whose numbers do not follow time
    assert TakeReader(catalog).read(NOW) == by_hand


def test_a_station_state_is_read_whatever_an_old_or_broken_station_sent():
    assert station_state("")["activity"] == "unknown"
    assert station_state("[1, 2]") == station_state("{not json") == station_state(None)
    odd = station_state('{"activity": "dancing", "take": 7, "cell": {"task": "pour", "x": NaN}, "operator": null,'
                        ' "disk_free_bytes": NaN, "upload_backlog": -3, "upload_backlog_bytes": "many", "extra": 1}')
    assert odd == {"activity": "unknown", "plan": "", "take": "", "cell": {"task": "pour", "x": None}, "operator": "",
                   "disk_free_bytes": None, "upload_backlog": None, "upload_backlog_bytes": None}
    assert station_state('{"activity": "idle", "disk_free_bytes": 1.5e9, "upload_backlog": true}')[
        "disk_free_bytes"] == 1_500_000_000


def test_rates_over_no_checked_take_are_none_not_nan():
    rows = [{"station": "a", "status": "interrupted", "outcome": "unknown", "qa": "pending"},
            {"station": "b", "status": "discarded", "outcome": "success", "qa": "pass"}]
    assert rates(rows, "station") == [{"value": "a", "takes": 1, "successes": 0, "qa_checked": 0, "qa_failures": 0,
                                       "success_rate": 0.0, "qa_failure_rate": None}]


def test_a_plan_counting_accepted_takes_counts_only_what_the_reviewers_accepted():
    plan = dataclasses.replace(load_plan("demo"), count="accepted")
    good = {("demo", "pour", "dim", "heavy", "good"): 2, ("demo", "pour", "dim", "light", "accepted"): 1}
    assert plan_progress(good, [], [plan])[0]["good"] == 1
    assert plan_progress(good, [], [load_plan("demo")])[0]["good"] == 2


# -- the server: gate, JSON errors, the event stream ---------------------------------------------
@pytest.fixture()
def floor_server(tmp_path):
    catalog = Catalog(tmp_path / "data" / "catalog.sqlite")
    fill(catalog, datetime.now(timezone.utc))
    registry = StationRegistry(catalog)
    register(registry, "st1", "st2", "st3")
    with FleetServer(catalog, port=0, token="fleet-test-token-1", interval_s=0.2) as server:
        yield server, registry


def get(server, path, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", path, headers={"Host": f"localhost:{server.port}", **(headers or {})})
    reply = conn.getresponse()
    body = reply.read()
    conn.close()
    return reply.status, reply.getheader("Content-Type"), body


def test_the_server_refuses_without_token_from_another_origin_or_host(floor_server):
    server, _ = floor_server
    token = {"X-Collector-Token": server.token}
    status, kind, body = get(server, "/api/floor")
    assert status == 401 and kind == "application/json"
    assert json.loads(body) == {"ok": False, "error": json.loads(body)["error"]} and "collector fleet" in body.decode()
    status, _, body = get(server, "/api/events", {**token, "Origin": "http://evil.example"})
    assert status == 403 and "Origin" in json.loads(body)["error"]
    status, _, body = get(server, "/api/floor", {**token, "Host": "evil.example"})
    assert status == 403 and "localhost" in json.loads(body)["error"]
    status, _, body = get(server, "/api/nothing", token)
    assert status == 404 and json.loads(body)["ok"] is False
    status, _, body = get(server, "/static/../floor.py", token)
    assert status == 404
    status, kind, body = get(server, "/api/floor", token)
    assert status == 200 and sorted(s["station"] for s in json.loads(body)["stations"]) == ["st1", "st2", "st3"]
    status, kind, body = get(server, f"/?token={server.token}")
    assert status == 303  # the token becomes the cookie
    assert server.refused_requests == 2


def test_a_single_stations_catalogue_is_shown_as_it_is_and_left_unchanged(tmp_path):
    from collector.fleet.floor import has_table

    catalog = Catalog(tmp_path / "catalog.sqlite")
    fill(catalog, datetime.now(timezone.utc))
    with FleetServer(catalog, port=0, interval_s=0.2) as server:
        snapshot = server.board.snapshot()
        assert snapshot["stations"] == [] and snapshot["takes_last_hour"] == 4 and snapshot["error"] is None
        assert not has_table(catalog, "stations") and not has_table(catalog, "cell_slots")  # the page made none
        register(StationRegistry(catalog), "st9")  # the first station of a fleet registers
        deadline = time.monotonic() + 10
        while [s["station"] for s in server.board.snapshot()["stations"]] != ["st9"]:
            assert time.monotonic() < deadline
            time.sleep(0.1)


def read_event(sock_file) -> dict:
    """The next `data:` event of a stream, parsed as strict JSON (NaN refused, as the browser refuses it)."""
    def refuse(name):
        raise ValueError(f"{name} in an event")
    while True:
        line = sock_file.readline()
        assert line, "the stream ended"
        if line.startswith(b"data: "):
            return json.loads(line[6:], parse_constant=refuse)


def test_the_event_stream_sends_valid_json_snapshots_and_each_change_promptly(floor_server):
    server, registry = floor_server
    registry.heartbeat("st1", '{"activity": "idle", "disk_free_bytes": NaN, "cell": {"lighting": Infinity}}')
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(f"GET /api/events HTTP/1.1\r\nHost: localhost:{server.port}\r\n"
                     f"X-Collector-Token: {server.token}\r\n\r\n".encode())
        stream = sock.makefile("rb")
        head = []
        while (line := stream.readline()) not in (b"\r\n", b""):
            head.append(line.decode().strip())
        assert head[0] == "HTTP/1.1 200 OK" and "Content-Type: text/event-stream" in head
        first = read_event(stream)
        assert first["takes_last_hour"] == 4 and len(first["takes_per_hour"]) == 12
        first = read_event(stream)  # after the heartbeat above for sure (the reader runs every 0.2 s)
        st1 = next(s for s in first["stations"] if s["station"] == "st1")
        assert st1["activity"] == "idle" and st1["disk_free_bytes"] is None and st1["cell"] == {"lighting": None}

        registry.heartbeat("st2", json.dumps(RECORDING))
        changed_at = time.monotonic()
        while True:
            event = read_event(stream)
            st2 = next(s for s in event["stations"] if s["station"] == "st2")
            if st2["activity"] == "recording":
                break
            assert time.monotonic() - changed_at < 10
        assert time.monotonic() - changed_at < 5 and event["version"] > first["version"]
        assert st2["take"] == "episode_000010" and st2["upload_backlog"] == 3


def test_a_catalogue_server_that_goes_away_is_reported_and_the_stream_goes_on(postgres_url, postgres_server):
    import psycopg

    catalog = Catalog(postgres_url)
    fill(catalog, datetime.now(timezone.utc))
    register(StationRegistry(catalog), "st1")
    with FleetServer(catalog, port=0, token="fleet-test-token-2", interval_s=0.2) as server:
        assert server.board.snapshot()["error"] is None
        with psycopg.connect(postgres_server.url(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{postgres_url.rsplit("/", 1)[1]}" WITH (FORCE)')
        deadline = time.monotonic() + 15
        while server.board.snapshot()["error"] is None:
            assert time.monotonic() < deadline, "the failed read was never reported"
            time.sleep(0.1)
        status, _, body = get(server, "/api/floor", {"X-Collector-Token": server.token})
        snapshot = json.loads(body)
        assert status == 200 and "catalog" in snapshot["error"].lower()
        assert [s["station"] for s in snapshot["stations"]] == ["st1"]  # the last figures read are kept
        assert snapshot["takes_last_hour"] == 4


def test_the_command_refuses_what_is_not_a_catalogue(tmp_path, capsys):
    from collector.cli import main

    assert main(["fleet", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("collector fleet: error: ") and "not a dataset" in err and err.count("\n") == 1
    assert main(["fleet", "mysql://host/db"]) == 2
    assert "not a catalogue URL" in capsys.readouterr().err


# -- the page in headless Chromium, against `collector fleet` processes ----------------------------
class Heartbeats:
    """Stations that keep beating (what each one's state is can change) until stopped."""

    def __init__(self, registry: StationRegistry, states: dict):
        self.registry, self.states = registry, states
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self):
        while not self.stop.wait(0.3):
            for station, state in list(self.states.items()):
                self.registry.heartbeat(station, json.dumps(state))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=5)


def start_fleet(dataset: Path, port: int, token: str, browser_log: Path) -> tuple:
    opener = browser_log.with_suffix(".sh")
    opener.write_text(f'#!/bin/sh\necho "$1" > {browser_log}\n')
    opener.chmod(0o755)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BROWSER": f"{opener} %s"}
    proc = subprocess.Popen([sys.executable, "-m", "collector", "fleet", str(dataset), "--port", str(port),
                             "--token", token, "--offline-after", "3", "--interval", "0.5", "--plan", "demo",
                             "--open"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("fleet: "):
        proc.kill()
        pytest.fail(f"collector fleet did not start: {line}{proc.communicate()[1]}")
    return proc, line.split(" ", 1)[1].strip()


def stop_fleet(proc) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
    assert proc.returncode == 0


@pytest.mark.slow
def test_the_page_shows_the_floor_live(browser, tmp_path):
    from selenium.webdriver.support.ui import WebDriverWait

    dataset = tmp_path / "hall"
    catalog = Catalog(dataset / "catalog.sqlite")
    fill(catalog, datetime.now(timezone.utc))
    registry = StationRegistry(catalog)
    register(registry, "st1", "st2", "st3")
    idle = {**RECORDING, "activity": "idle", "take": ""}
    registry.heartbeat("st3", json.dumps({**idle, "operator": "cy"}))  # st3's last word: it goes silent now
    states = {"st1": dict(RECORDING), "st2": {**idle, "operator": "bo", "plan": "other"}}
    wait = WebDriverWait(browser, 20, poll_frequency=0.1)
    card = lambda name: browser.execute_script(  # noqa: E731  (one call: the page re-renders as events come)
        "const e = document.querySelector(`[data-station='${arguments[0]}']`);"
        " return e ? [e.className, e.innerText] : null;", name)
    text = lambda element_id: browser.execute_script(  # noqa: E731
        "const e = document.getElementById(arguments[0]); return e ? e.innerText : null;", element_id)

    with Heartbeats(registry, states):
        proc, url = start_fleet(dataset, 0, "fleet-browser-token", tmp_path / "opened.txt")
        try:
            port = int(url.split(":")[2].split("/")[0])
            deadline = time.monotonic() + 10
            while not (tmp_path / "opened.txt").exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert (tmp_path / "opened.txt").read_text().strip() == url  # --open handed the URL to $BROWSER

            browser.get(url)
            assert "token" not in browser.current_url
            wait.until(lambda d: all(card(name) for name in ("st1", "st2", "st3")))
            assert browser.execute_script("return document.querySelectorAll('.station').length") == 3
            assert card("st1")[0] == "station recording" and "episode_000010" in card("st1")[1]
            assert "512 GB" in card("st1")[1] and "3 waiting (48 MB)" in card("st1")[1]
            assert text("takes-last-hour") == "4"
            assert "demo" in text("plans-table") and "3 / 8" in text("plans-table")
            assert "st1\t3\t67%\t33%" in text("rates-table")
            browser.find_element("css selector", "#rate-tabs [data-group=operator]").click()
            wait.until(lambda d: "ana\t4\t75%\t50%" in text("rates-table"))

            # a heartbeat changes what st2 does: the open page shows it without a reload
            version = browser.execute_script("return document.body.dataset.version")
            states["st2"] = {**RECORDING, "operator": "bo", "take": "episode_000042"}
            changed = time.monotonic()
            wait.until(lambda d: card("st2")[0] == "station recording" and "episode_000042" in card("st2")[1])
            assert time.monotonic() - changed < 8  # each read is pushed (every 0.5 s here); generous when loaded
            assert browser.execute_script("return document.body.dataset.version") != version
            # st3 has been silent for longer than --offline-after
            wait.until(lambda d: card("st3")[0] == "station offline")
            assert "last seen" in card("st3")[1] and text("online") == "2 of 3 online"
            assert text("connection") == "live"
            shot = tmp_path / "fleet.png"
            browser.save_screenshot(str(shot))
            if os.environ.get("COLLECTOR_DOC_IMAGES"):  # the docs' picture: COLLECTOR_DOC_IMAGES=1 pytest ...
                shot.replace(ROOT / "docs" / "images" / "fleet.png")
        finally:
            stop_fleet(proc)

        # the server restarts (same port and token): the open page reconnects by itself
        wait.until(lambda d: text("connection") != "live")
        states["st1"] = {**RECORDING, "activity": "resetting", "take": ""}
        proc, _ = start_fleet(dataset, port, "fleet-browser-token", tmp_path / "opened-again.txt")
        try:
            wait.until(lambda d: card("st1")[0] == "station resetting")
            assert text("connection") == "live"
        finally:
            stop_fleet(proc)


def test_on_the_floors_network_the_page_needs_tls_and_an_admin(tmp_path):
    """`--listen 0.0.0.0`: HTTPS only, a login first, and only an admin sees the floor (requests on loopback)."""
    import ssl
    import urllib.parse

    from collector.accounts.store import AccountStore

    dataset = tmp_path / "hall"
    catalog = Catalog(dataset / "catalog.sqlite")
    fill(catalog, datetime.now(timezone.utc))
    register(StationRegistry(catalog), "st1")
    accounts = AccountStore(catalog)
    accounts.add("boss", "admin", "floor-admin-pw-1")
    accounts.add("olga", "operator", "operator-pw-22")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    proc = subprocess.Popen([sys.executable, "-m", "collector", "fleet", str(dataset), "--listen", "0.0.0.0",
                             "--port", "0", "--tls-self-signed"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("fleet: https://"), line + proc.stderr.read() if proc.poll() is not None else line
        port = int(line.rsplit(":", 1)[1].strip("/ \n"))
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE

        def request(method, path, headers=None, body=None):
            conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=20, context=context)
            conn.request(method, path, body=body, headers=headers or {})
            reply = conn.getresponse()
            answer = (reply.status, dict(reply.getheaders()), reply.read())
            conn.close()
            return answer

        def log_in(name, password):
            status, headers, _ = request("POST", "/login", {"Content-Type": "application/x-www-form-urlencoded"},
                                         urllib.parse.urlencode({"name": name, "password": password}))
            assert status == 303, status
            return {"Cookie": headers["Set-Cookie"].split(";")[0]}

        status, _, body = request("GET", "/api/floor")
        assert status == 401 and json.loads(body)["ok"] is False
        with pytest.raises(ConnectionResetError):  # plain HTTP gets nothing (RemoteDisconnected or a reset)
            plain = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
            plain.request("GET", "/api/floor")
            plain.getresponse()
        status, _, body = request("GET", "/api/floor", log_in("olga", "operator-pw-22"))
        assert status == 403 and "olga" in json.loads(body)["error"]
        boss = log_in("boss", "floor-admin-pw-1")
        status, _, body = request("GET", "/api/floor", boss)
        assert status == 200 and [s["station"] for s in json.loads(body)["stations"]] == ["st1"]
        status, _, page = request("GET", "/", boss)
        assert status == 200 and b"collector fleet" in page and b"boss (admin)" in page
    finally:
        stop_fleet(proc)
