"""What the operator's buttons and hands mean (deadman, clutch, episode requests) and the headset clock map."""
import json

import numpy as np
import pytest

from collector.teleop.vr.clock import HeadsetClock
from collector.teleop.vr.controls import DISCARD_HOLD_S, GESTURE_TOGGLE_HOLD_S, ControlMapper
from collector.teleop.vr.protocol import parse_client_message
from collector.teleop.vr.synthetic import hand_skeleton, page_frame
from collector.teleop.vr.protocol import hand_to_wire

# xr-standard indices
TRIGGER, GRIP, STICK, PRIMARY, SECONDARY = 0, 1, 3, 4, 5


def controller_frame(t, right=(), left=(), grip=True):
    buttons = {"right": list(right), "left": list(left)}
    frame = page_frame(int(t * 1000), t, hands=False, controllers=True, buttons=buttons)
    if not grip:
        for ctl in frame["controllers"].values():
            ctl["buttons"][GRIP] = [0, 0.0]
    return parse_client_message(json.dumps(frame))


def run_presses(mapper, presses):
    """presses: list of (t, right buttons held); returns the requests as (action, outcome, trigger)."""
    out = []
    for t, held in presses:
        _, _, requests = mapper.update(controller_frame(t, right=held))
        out += [(r.action, r.outcome, r.trigger) for r in requests]
    return out


def test_grip_is_the_deadman_and_thumbstick_the_clutch():
    mapper = ControlMapper()
    assert mapper.update(controller_frame(0.0))[:2] == (True, False)
    assert mapper.update(controller_frame(0.1, grip=False))[:2] == (False, False)
    assert mapper.update(controller_frame(0.2, right=[STICK]))[:2] == (True, True)


def test_a_toggles_start_and_stop_on_the_press_edge():
    mapper = ControlMapper()
    presses = [(0.0, [PRIMARY]), (0.05, [PRIMARY]), (0.1, []), (0.5, [PRIMARY]), (0.6, [])]
    assert run_presses(mapper, presses) == [("start", None, "right.a"), ("stop", "success", "right.a")]


def test_b_tap_stops_as_failure_and_a_long_hold_discards_once():
    mapper = ControlMapper(recording=True)
    assert run_presses(mapper, [(0.0, [SECONDARY]), (0.2, [])]) == [("stop", "failure", "right.b")]
    hold = [(1.0 + i * 0.1, [SECONDARY]) for i in range(int(DISCARD_HOLD_S / 0.1) + 5)] + [(3.0, [])]
    assert run_presses(mapper, hold) == [("discard", None, "right.b")]
    assert not mapper.recording
    assert run_presses(mapper, [(4.0, [SECONDARY]), (4.1, [])]) == []  # a tap while idle does nothing


def test_recording_state_from_the_session_decides_what_a_means():
    mapper = ControlMapper()
    mapper.recording = True  # the session says a take is running (e.g. started from the page)
    assert run_presses(mapper, [(0.0, [PRIMARY]), (0.1, [])]) == [("stop", "success", "right.a")]


def _hands_frame(t, left_closure=0.0, pinch=None):
    frame = page_frame(int(t * 1000), t, hands=True)
    if pinch is not None:  # thumb tip onto another fingertip of the left hand
        positions, quats, radii = hand_skeleton("left", np.array([-0.2, 1.1, -0.35]), left_closure)
        tip = {"ring": 19, "pinky": 24, "middle": 14}[pinch]
        positions[4] = positions[tip] + [0.005, 0, 0]
        frame["hands"]["left"] = hand_to_wire(positions, quats, radii)
    return parse_client_message(json.dumps(frame))


def test_hand_gestures_hold_to_start_and_discard():
    mapper = ControlMapper()
    enable, clutch, requests = mapper.update(_hands_frame(0.0))
    assert enable and not clutch and requests == []
    got = []
    for i in range(int(GESTURE_TOGGLE_HOLD_S / 0.05) + 3):
        got += mapper.update(_hands_frame(0.1 + 0.05 * i, pinch="ring"))[2]
    assert [(r.action, r.trigger) for r in got] == [("start", "left.ring-pinch")]
    enable, clutch, _ = mapper.update(_hands_frame(2.0, pinch="middle"))
    assert clutch
    got = []
    for i in range(40):
        got += mapper.update(_hands_frame(3.0 + 0.05 * i, pinch="pinky"))[2]
    assert [(r.action, r.trigger) for r in got] == [("discard", "left.pinky-pinch")]


def test_hands_lost_releases_the_deadman():
    frame = page_frame(0, 0.0, hands=True)
    frame["hands"] = {}
    enable, _, _ = ControlMapper().update(parse_client_message(json.dumps(frame)))
    assert not enable


# -- clock ---------------------------------------------------------------------------------------

def simulate(clock, duration_s, rate_hz=90.0, offset=1234.5, drift_ppm=40.0, seed=0, t_start=0.0,
             extra_delay=lambda t: 0.0):
    """Frames and pings over a link with 0.4 ms minimum delay plus exponential jitter; returns the errors
    of the mapped stamps. extra_delay(t) is added to everything inbound (a stall, or a server that lags)."""
    rng = np.random.default_rng(seed)
    errors = []

    def headset(host_t):
        return (host_t - offset) * (1 + drift_ppm * 1e-6)

    for i in range(int(duration_s * rate_hz)):
        host_true = t_start + i / rate_hz
        received = host_true + 0.0004 + rng.exponential(0.002) + extra_delay(host_true)
        errors.append(clock.to_host(headset(host_true), received) - host_true)
        if i % 45 == 0:  # a ping twice a second, answered at once by the page
            sent = host_true
            up, down = 0.0004 + rng.exponential(0.001), 0.0004 + rng.exponential(0.001)
            clock.observe_pong(headset(sent + up), sent, sent + up + down + extra_delay(sent))
    return np.array(errors)


def test_clock_map_recovers_the_time_each_pose_was_tracked():
    clock = HeadsetClock()
    errors = simulate(clock, 20.0)
    settled = np.abs(errors[len(errors) // 2:])
    assert clock.fitted and clock.jumps == 0
    # Arrival times are 2.4 ms late on average; the mapped stamps are within a millisecond.
    assert np.percentile(settled, 99) < 1e-3
    assert clock.summary()["drift_ppm"] == pytest.approx(-40.0, abs=15)  # host runs slower than this headset


def test_clock_going_backwards_is_a_jump_and_the_map_recovers():
    clock = HeadsetClock()
    simulate(clock, 3.0)
    errors = simulate(clock, 3.0, offset=1234.5 + 60.0, t_start=3.0)  # headset clock set back a minute
    assert clock.jumps == 1 and "backwards" in clock.last_jump_reason
    assert np.percentile(np.abs(errors[len(errors) // 2:]), 99) < 2e-3


def test_clock_jumping_forward_is_detected():
    clock = HeadsetClock()
    simulate(clock, 2.0)
    simulate(clock, 2.0, offset=1234.5 - 5.0, t_start=2.0)  # frames now claim to be 5 s in the future
    assert clock.jumps == 1 and "future" in clock.last_jump_reason


def test_a_network_stall_keeps_the_true_stamps_of_late_frames():
    clock = HeadsetClock()
    simulate(clock, 3.0)
    stall = simulate(clock, 1.0, t_start=3.0, extra_delay=lambda t: 0.4 if t < 3.3 else 0.0)
    assert clock.jumps == 0
    # Frames delayed by the stall keep their true (old) stamps, so they are seen as stale.
    assert np.abs(stall[:10]).max() < 2e-3


def test_a_server_that_lags_from_the_start_still_sees_how_old_its_frames_are():
    # Every inbound message is processed 300 ms late (a starved server); the fit of arrivals alone would
    # absorb the lag into the offset and make old frames look fresh. The ping bound keeps it out.
    clock = HeadsetClock()
    errors = simulate(clock, 10.0, extra_delay=lambda t: 0.3)
    settled = errors[len(errors) // 2:]
    assert clock.jumps == 0
    assert np.abs(settled).max() < 0.012  # within the capped outbound-delay allowance
    assert clock.summary()["correction_ms"] > 280


def test_mapped_stamps_never_come_after_arrival():
    clock = HeadsetClock()
    for i in range(50):
        assert clock.to_host(i / 90, 100.0 + i / 90 + 0.001) <= 100.0 + i / 90 + 0.001
