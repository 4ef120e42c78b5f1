"""The operator's dashboard in headless Chromium, against a real `collector session` process.

The page loads with the token, shows live camera frames and the coverage matrix; clicking Start and
Stop really records an episode (catalogue row + file), the keyboard shortcut D discards it into
discarded/. Screenshots are saved next to the test's dataset (and into $COLLECTOR_TEST_ARTIFACTS
when set). Needs Debian's chromium and chromium-driver (scripts/install_test_browser.sh).
"""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from collector.recorder import validate_episode
from collector.session.catalog import Catalog

ROOT = Path(__file__).resolve().parent.parent
PLAN = """\
name: web
robot: humanoid
backend: sim
operator: scripted
tasks: [pick_place]
lighting: [dim]
weights: [light]
takes_per_cell: 2
episode_time_limit_s: 20
"""


@pytest.fixture()
def session(tmp_path):
    plan = tmp_path / "web.yaml"
    plan.write_text(PLAN)
    out = tmp_path / "data"
    record_policy_evaluation(out)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "collector", "session", "--plan", str(plan), "--out", str(out),
                             "--port", "0", "--station", "web1", "--operator-name", "tester"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = None
    deadline = time.monotonic() + 120
    while url is None and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            pytest.fail(f"collector session exited: {proc.communicate()[1]}")
        if line.startswith("dashboard: "):
            url = line.split(" ", 1)[1].strip()
    yield proc, url, out
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def record_policy_evaluation(out: Path) -> None:
    """A catalogued evaluation of a policy in the plan's only cell (1 of 4 rollouts succeeded), as
    `collector eval` leaves it: the coverage matrix must show it beside the demonstrations."""
    from collector.session.layout import DatasetLayout
    from collector.session.policy_records import record_evaluation

    layout = DatasetLayout(out).ensure()
    Catalog(layout.catalog_path)
    cell = {"task": "pick_place", "lighting": "dim", "weight": "light", "theme": "kitchen", "rollouts": 4,
            "successes": 1, "success_rate": 0.25, "episodes": []}
    record_evaluation(out, {"checkpoint": "/policies/act_pick.pt", "checkpoint_sha256": "ab" * 32, "policy": "act",
                            "trained_on": {"dataset": str(out), "episodes": 4}, "seeds": [1_000_000],
                            "cells": [cell], "by_condition": {}, "success_rate": 0.25, "rollouts": 4,
                            "inference_ms": {"p50": 2.0, "p99": 4.0}, "tick_ms": {"p50": 0.1},
                            "created": "2026-12-02T06:00:00Z"})


def screenshot(driver, out: Path, name: str) -> Path:
    path = out.parent / f"dashboard-{name}.png"
    driver.save_screenshot(str(path))
    artifacts = os.environ.get("COLLECTOR_TEST_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(artifacts) / path.name)
    return path


@pytest.mark.slow
def test_dashboard_records_an_episode_from_the_browser(browser, session):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    proc, url, out = session
    wait = WebDriverWait(browser, 90, poll_frequency=0.2)
    # Read in one script call: the page re-renders from its event stream several times a second.
    text = lambda element_id: browser.execute_script(  # noqa: E731
        "const e = document.getElementById(arguments[0]); return e ? e.innerText : null;", element_id)

    browser.get(url)
    assert "token" not in browser.current_url  # traded for the cookie
    wait.until(lambda d: text("phase") == "ready")
    assert text("task") == "pick_place" and "lighting: dim" in text("condition")
    assert "in the blue tray" in text("instruction")  # the sim's instruction for the object it placed
    table = text("coverage-table")
    assert "0/2" in table and "pick_place / light" in table
    assert "p 25%" in table  # the latest policy evaluation's success in the cell, beside the demos
    assert "act_pick.pt" in text("coverage-policy") and "25% of 4 rollouts" in text("coverage-policy")
    # the preview frame of the prepared scene is shown before anything is recorded
    head = wait.until(lambda d: d.find_element(By.ID, "camera-camera_head"))
    wait.until(lambda d: int(head.get_attribute("data-seq") or 0) > 0)
    assert browser.execute_script("return arguments[0].naturalWidth", head) > 0
    screenshot(browser, out, "ready")

    browser.find_element(By.ID, "btn-start").click()
    wait.until(lambda d: text("phase") == "recording")
    seq_at_start = int(head.get_attribute("data-seq"))
    # live frames keep arriving while the take records
    wait.until(lambda d: int(head.get_attribute("data-seq")) >= seq_at_start + 5)
    wait.until(lambda d: float(text("timer")) > 0.5)
    # let more than a second of session time pass, so the take is long enough to pass QA
    wait.until(lambda d: float(text("robot-time").split()[2]) > 1.3)
    assert text("episode-id") == "episode_000001"
    screenshot(browser, out, "recording")

    browser.find_element(By.ID, "btn-stop").click()
    wait.until(lambda d: "episode_000001" in text("last-episode") and text("phase") == "ready")
    screenshot(browser, out, "stopped")

    catalog = Catalog(out / "catalog.sqlite")
    row = catalog.episode(1)
    assert row.status == "kept" and row.station == "web1" and row.operator == "tester"
    assert row.lighting == "dim" and row.task == "pick_place"
    assert "operator" in row.note  # stopped by the Stop button, not by success or the time limit
    assert (out / row.path).is_file()
    assert validate_episode(out / row.path) == [] and row.qa == "pass"
    assert text("last-qa") == "QA pass"

    # keyboard shortcut D discards the last take: the file moves to discarded/, the row stays
    browser.find_element(By.TAG_NAME, "body").send_keys("d")
    wait.until(lambda d: "discarded" in text("last-episode"))
    row = catalog.episode(1)
    assert row.status == "discarded" and (out / row.path).parent == out / "discarded" and (out / row.path).exists()
    screenshot(browser, out, "discarded")

    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode in (0, 130), err
    assert catalog.sessions()[0]["state"] == "interrupted"


HUMANOID_GROUPS = ["waist (rad)", "left_arm (rad)", "right_arm (rad)", "left_hand (m)", "right_hand (m)",
                   "head (rad)"]


@pytest.mark.slow
def test_after_a_take_ends_by_itself_the_buttons_name_the_episode_they_judge(browser, session):
    """Issue 17: the Success/Failure buttons under the next take's heading name the take they judge;
    three cameras fill one row; the joint state is one labelled plot per joint group, with units."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    proc, url, out = session
    wait = WebDriverWait(browser, 90, poll_frequency=0.2)
    text = lambda element_id: browser.execute_script(  # noqa: E731
        "const e = document.getElementById(arguments[0]); return e ? e.innerText : null;", element_id)
    browser.get(url)
    wait.until(lambda d: text("phase") == "ready")

    # one tile per camera, laid out with no empty cell: three cameras side by side
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#cameras figure.camera")) == 3)
    tiles = browser.execute_script("""
        const grid = document.getElementById('cameras');
        const figures = Array.from(grid.querySelectorAll('figure.camera'));
        return [figures.map((f) => f.getBoundingClientRect().top),
                getComputedStyle(grid).gridTemplateColumns.split(' ').length]""")
    assert len(set(tiles[0])) == 1 and tiles[1] == 3

    # joint state: one plot per group of the robot YAML, titled with its unit, one line per joint
    wait.until(lambda d: d.execute_script(
        "return document.querySelectorAll('#joints .joint-group svg polyline').length") == 20)
    groups = browser.execute_script("""return Array.from(document.querySelectorAll('#joints .joint-group')).map(
        (g) => [g.querySelector('.group-title').textContent, g.querySelectorAll('polyline').length,
                g.querySelector('.legend').innerText])""")
    assert [g[0] for g in groups] == HUMANOID_GROUPS
    assert [g[1] for g in groups] == [2, 7, 7, 1, 1, 2]
    assert "left_finger_a 0.0450 m" in groups[3][2] and " rad" in groups[1][2]
    assert text("btn-success").startswith("Success") and text("btn-start").startswith("Start")

    browser.find_element(By.ID, "btn-start").click()
    wait.until(lambda d: text("phase") == "recording")
    assert text("btn-stop").startswith("episode_000001: Stop")
    # the scripted operator finishes the task: the take ends by itself, the next one is set up
    wait.until(lambda d: "episode_000001" in text("last-episode") and text("phase") == "ready")
    screenshot(browser, out, "ended-by-itself")
    assert text("episode-id") == ""  # the heading is the next take's, which has no episode yet
    for button, verdict in (("btn-success", "Success"), ("btn-failure", "Failure")):
        assert text(button).startswith(f"episode_000001: {verdict}")
        assert browser.find_element(By.ID, button).get_attribute("data-episode") == "episode_000001"
        assert browser.find_element(By.ID, button).is_enabled()
    assert text("btn-discard").startswith("episode_000001: Discard")

    # the verdict goes to the take the button named
    browser.find_element(By.TAG_NAME, "body").send_keys("n")
    wait.until(lambda d: "episode_000001 marked failure" in text("message"))
    row = Catalog(out / "catalog.sqlite").episode(1)
    # not by the Stop button: by success, the scripted operator finishing, or the time limit
    assert row.outcome == "failure" and row.note.startswith("stopped by") and row.note != "stopped by operator"


def test_a_joint_reading_of_nan_shows_a_dash_and_the_plots_keep_updating(browser):
    """The server sends null for NaN/inf joint readings; the page used to throw on them and stop drawing
    the joint plots."""
    import numpy as np
    from selenium.webdriver.support.ui import WebDriverWait

    from collector.session.dashboard import DashboardServer
    from collector.session.live import LiveState

    live = LiveState()
    live.update(phase="ready", joint_groups=[{"name": "arm", "unit": "rad", "joints": ["elbow", "wrist"],
                                              "indices": [0, 1], "min_span": 0.05}])
    live.set_robot(1.0, np.array([0.25, np.nan]), ["elbow", "wrist"])
    with DashboardServer(live, lambda action: action, port=0, token="nan-test-token-0123").start() as dash:
        browser.get(dash.url)
        body = lambda: browser.find_element("tag name", "body").text
        WebDriverWait(browser, 20).until(lambda _: "wrist —" in body())
        live.set_robot(1.5, np.array([0.5, 0.1]), ["elbow", "wrist"])  # later readings still show
        WebDriverWait(browser, 20).until(lambda _: "elbow 0.500 rad" in body() and "wrist 0.100 rad" in body())
