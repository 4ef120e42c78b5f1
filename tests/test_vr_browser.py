"""The shipped page in headless Chromium against a real server: token, camera frames drawn, status panel.

Headless Chromium has no XR device, so this is the page's 2D fallback: it must still connect with
the token, draw the stereo camera and show the status panel. Needs Debian's chromium and
chromium-driver (scripts/install_test_browser.sh); Selenium is pointed at /usr/bin/chromedriver.
"""
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from collector.teleop.vr.events import EpisodeEventSubscriber
from collector.teleop.vr.feeds import CameraFeedPublisher, StatusPublisher
from helpers.vr import running_server, wait_until

STATUS = {"recording": True, "episode": 12, "task": "pick_place", "instruction": "Put the cube in the bowl",
          "next_condition": {"lighting": "dim", "weight": "heavy"}, "warnings": ["illuminance sensor missing"]}


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """A server with a stereo camera (left red, right blue) at 30 fps and a status feed."""
    with running_server(tmp_path_factory.mktemp("vr-cert")) as (server, info, thread):
        camera = CameraFeedPublisher(server.config.camera_endpoint)
        status = StatusPublisher(server.config.status_endpoint)
        status.publish(STATUS)
        stop = threading.Event()
        left = np.zeros((480, 640, 3), np.uint8)
        left[..., 0] = 220
        right = np.zeros((480, 640, 3), np.uint8)
        right[..., 2] = 220

        def stream():
            i = 0
            while not stop.wait(1 / 30):
                camera.publish("head_left", i / 30, left)
                camera.publish("head_right", i / 30, right)
                i += 1

        feeder = threading.Thread(target=stream, daemon=True)
        feeder.start()
        yield server, thread
        stop.set()
        feeder.join()
        camera.close()
        status.close()


def _state(driver):
    return driver.execute_script("return window.collectorVR || null")


def _text(driver, element_id):
    return driver.execute_script(f"return document.getElementById('{element_id}').textContent")


def test_page_connects_draws_stereo_camera_and_shows_status(browser, live, tmp_path):
    server, _ = live
    browser.get(server.url())
    assert wait_until(lambda: (_state(browser) or {}).get("framesDrawn", 0) >= 5, timeout_s=30), _state(browser)
    assert wait_until(lambda: _text(browser, "st-episode") == "12", timeout_s=10)
    state = _state(browser)
    assert state["connection"] == "connected" and state["role"] == "operator"
    assert state["eyes"] == {"left": "head_left", "right": "head_right"}
    assert state["xrSupported"] is False  # no headset here: the 2D view
    assert "VR not available" in _text(browser, "enter-vr")

    # The canvas shows both eyes side by side: left half red, right half blue (JPEG allows a little error).
    size, left_px, right_px = browser.execute_script("""
        const c = document.getElementById('camera'); const g = c.getContext('2d');
        return [[c.width, c.height], Array.from(g.getImageData(c.width / 4, c.height / 2, 1, 1).data),
                Array.from(g.getImageData(3 * c.width / 4, c.height / 2, 1, 1).data)];""")
    assert size == [1280, 480]
    assert left_px[:3] == pytest.approx([220, 0, 0], abs=12)
    assert right_px[:3] == pytest.approx([0, 0, 220], abs=12)

    assert _text(browser, "st-recording") == "● REC"
    assert _text(browser, "st-task") == "Put the cube in the bowl"
    assert _text(browser, "st-condition") == "lighting: dim, weight: heavy"
    assert "illuminance sensor missing" in _text(browser, "st-warnings")
    assert _text(browser, "role") == "operator: in control"

    shot = tmp_path / "vr_page.png"
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    artifacts = os.environ.get("COLLECTOR_TEST_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(artifacts) / shot.name)


def test_page_buttons_send_episode_events(browser, live):
    server, thread = live
    events = EpisodeEventSubscriber(server.config.event_endpoint)
    try:
        thread.call(server.wait_for_subscribers, 10.0, False, True)
        browser.get(server.url())
        assert wait_until(lambda: (_state(browser) or {}).get("role") == "operator", timeout_s=30)
        # the take buttons come alive once the session's status has reached the page
        assert wait_until(lambda: browser.find_element("id", "btn-stop-fail").is_enabled(), timeout_s=10)
        browser.find_element("id", "btn-stop-fail").click()
        got = []
        assert wait_until(lambda: got.extend(events.receive(0.05)) or got, timeout_s=10)
    finally:
        events.close()
    assert (got[0].event, got[0].outcome, got[0].trigger) == ("stop", "failure", "page")


def test_a_second_page_only_watches(browser, live):
    server, _ = live
    browser.get(server.url())
    assert wait_until(lambda: (_state(browser) or {}).get("role") == "operator", timeout_s=30)
    first = browser.current_window_handle
    browser.switch_to.new_window("tab")
    try:
        browser.get(server.url())
        assert wait_until(lambda: (_state(browser) or {}).get("role") == "watcher", timeout_s=30)
        assert _text(browser, "role") == "watching"
        assert browser.execute_script("return document.getElementById('btn-start').disabled") is True
        assert wait_until(lambda: (_state(browser) or {}).get("framesDrawn", 0) >= 2, timeout_s=20)
    finally:
        browser.close()
        browser.switch_to.window(first)


def test_page_without_the_token_gets_nothing(browser, live):
    server, _ = live
    browser.delete_all_cookies()
    browser.get(server.url(with_token=False))
    # Chromium shows its own "HTTP ERROR 403" page: none of ours (no page, no script, no socket).
    assert _state(browser) is None
    assert "403" in browser.page_source and "collector VR bridge" not in browser.page_source
    browser.get(server.url(with_token=False) + "?token=wrong-token-123")
    assert _state(browser) is None and "collector VR bridge" not in browser.page_source


def _take_buttons_enabled(driver):
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('button.op')).map((b) => [b.id, !b.disabled])")


def test_take_buttons_stay_disabled_while_no_teleop_session_is_connected(browser, tmp_path):
    """Issue 17: the operator's take buttons reach nobody without a session publishing status."""
    with running_server(tmp_path / "cert") as (server, _, _):
        browser.get(server.url())
        assert wait_until(lambda: (_state(browser) or {}).get("role") == "operator", timeout_s=30)
        assert wait_until(lambda: (_state(browser) or {}).get("status") is not None, timeout_s=10)
        buttons = _take_buttons_enabled(browser)
        assert [b[0] for b in buttons] == ["btn-start", "btn-stop-ok", "btn-stop-fail", "btn-discard"]
        assert not any(enabled for _, enabled in buttons)
        assert "no teleop session connected" in _text(browser, "take-hint")

        status = StatusPublisher(server.config.status_endpoint)  # a session starts publishing
        try:
            status.publish({"recording": False, "episode": 3, "task": "pour"})
            assert wait_until(lambda: all(enabled for _, enabled in _take_buttons_enabled(browser)), timeout_s=15)
            assert _text(browser, "take-hint") == ""
        finally:
            status.close()
        # the session went away: once its status is stale the buttons are disabled again
        assert wait_until(lambda: not any(enabled for _, enabled in _take_buttons_enabled(browser)), timeout_s=15)
        assert "no teleop session connected" in _text(browser, "take-hint")
