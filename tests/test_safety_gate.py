"""The safety gate: deadman, stale input, limits, NaN; property tests over random input sequences."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.errors import ConfigError
from collector.teleop.safety import GateState, JointLimits, SafetyGate

DT = 0.01
LIMITS = JointLimits(lower=[-1.0, -2.0, 0.0], upper=[1.0, 0.5, 0.045], velocity=[2.0, 1.0, 0.15])


def make_gate(**kw):
    gate = SafetyGate(LIMITS, DT, hold_after_s=0.1, stop_after_s=0.5, **kw)
    gate.reset(np.zeros(3), t=0.0)
    return gate


def test_follows_within_velocity_limits_when_enabled():
    gate = make_gate()
    target = np.array([0.9, -1.5, 0.04])
    out = gate.step(0.01, target, True, 0.01)
    assert out.state is GateState.ACTIVE and out.clamped
    np.testing.assert_allclose(out.q, [2.0 * DT, -1.0 * DT, 0.15 * DT])
    for i in range(2, 200):
        out = gate.step(i * DT, target, True, i * DT)
    np.testing.assert_allclose(out.q, target)


def test_deadman_release_holds_on_the_same_tick():
    gate = make_gate()
    for i in range(1, 20):
        moving = gate.step(i * DT, np.array([1.0, 0.5, 0.04]), True, i * DT)
    held = gate.step(20 * DT, np.array([-1.0, -2.0, 0.0]), False, 20 * DT)
    assert held.state is GateState.HOLD and "deadman" in held.reason
    np.testing.assert_array_equal(held.q, moving.q)


def test_stale_input_holds_then_stops_and_needs_re_enable():
    gate = make_gate()
    target = np.array([0.5, 0.0, 0.0])
    for i in range(1, 11):
        gate.step(i * DT, target, True, i * DT)
    last_input = 10 * DT
    q_before = gate.command
    out = gate.step(last_input + 0.05, target, True, last_input)
    assert out.state is GateState.ACTIVE  # 50 ms old is still fresh
    q_before = out.q
    out = gate.step(last_input + 0.11, target, True, last_input)
    assert out.state is GateState.HOLD and "stale" in out.reason
    np.testing.assert_array_equal(out.q, q_before)
    out = gate.step(last_input + 0.51, target, True, last_input)
    assert out.state is GateState.STOPPED
    # Fresh input with the deadman still held does not re-arm: the operator must release and press again.
    t = last_input + 0.6
    out = gate.step(t, target, True, t)
    assert out.state is GateState.STOPPED
    np.testing.assert_array_equal(out.q, q_before)
    out = gate.step(t + DT, target, False, t + DT)
    assert out.state is GateState.STOPPED
    out = gate.step(t + 2 * DT, target, True, t + 2 * DT)
    assert out.state is GateState.ACTIVE and not np.array_equal(out.q, q_before)


def test_nan_and_wrong_shape_hold():
    gate = make_gate()
    gate.step(DT, np.array([0.5, 0.0, 0.0]), True, DT)
    q = gate.command
    for bad in (np.array([np.nan, 0, 0]), np.array([0, np.inf, 0]), np.zeros(4), None):
        out = gate.step(2 * DT, bad, True, 2 * DT)
        assert out.state is GateState.HOLD
        np.testing.assert_array_equal(out.q, q)


def test_disarmed_until_first_enable():
    gate = make_gate()
    out = gate.step(DT, np.array([0.5, 0, 0]), False, DT)
    assert out.state is GateState.DISARMED and np.all(out.q == 0)
    out = gate.step(2 * DT, np.array([0.5, 0, 0]), True, None)
    assert out.state is GateState.DISARMED


def test_workspace_violation_that_grows_is_rejected():
    # "End effector" = first joint value; the box allows |q0| <= 0.3.
    gate = make_gate(workspace_violation=lambda q: max(0.0, abs(q[0]) - 0.3))
    for i in range(1, 100):
        out = gate.step(i * DT, np.array([1.0, 0, 0]), True, i * DT)
    assert out.state is GateState.HOLD and "workspace" in out.reason
    assert abs(gate.command[0]) <= 0.3 + 1e-9
    # Moving back inside is allowed.
    out = gate.step(100 * DT, np.array([0.0, 0, 0]), True, 100 * DT)
    assert out.state is GateState.ACTIVE and out.q[0] < 0.3


def test_start_outside_limits_is_clipped_and_bad_config_rejected():
    gate = SafetyGate(LIMITS, DT)
    np.testing.assert_allclose(gate.reset(np.array([5.0, -5.0, 1.0])), [1.0, -2.0, 0.045])
    with pytest.raises(ConfigError):
        JointLimits([0.0], [-1.0], [1.0])
    with pytest.raises(ConfigError):
        JointLimits([0.0], [1.0], [0.0])
    with pytest.raises(ConfigError):
        SafetyGate(LIMITS, DT, hold_after_s=0.6, stop_after_s=0.5)


# ---------------------------------------------------------------------------------------------
# Property tests
# ---------------------------------------------------------------------------------------------
garbage_floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(-1e6, 1e6))
tick = st.tuples(
    st.one_of(st.none(), st.lists(garbage_floats, min_size=3, max_size=3), st.lists(garbage_floats, max_size=5)),
    st.booleans(),  # enable
    st.one_of(st.none(), st.floats(-0.05, 0.8)),  # input age (None: never had input); negative = reordered stamps
    st.floats(0.0, 0.03),  # time step (jittery clock, may stall)
)


@settings(max_examples=200, deadline=None)
@given(st.lists(tick, min_size=1, max_size=120), st.lists(st.floats(-3, 3), min_size=3, max_size=3))
def test_commands_never_break_limits_and_hold_when_they_must(ticks, start):
    gate = SafetyGate(LIMITS, DT, hold_after_s=0.1, stop_after_s=0.5)
    q_prev = gate.reset(np.array(start))
    t = 0.0
    for q_des, enable, age, step in ticks:
        t += step
        desired = None if q_des is None else np.array(q_des, dtype=float)
        out = gate.step(t, desired, enable, None if age is None else t - age)
        q = out.q
        assert q.shape == (3,) and np.all(np.isfinite(q))
        assert np.all(q >= LIMITS.lower) and np.all(q <= LIMITS.upper)
        assert np.all(np.abs(q - q_prev) <= LIMITS.velocity * min(step, DT) + 1e-12)
        must_hold = (not enable or age is None or age > 0.1 or desired is None or desired.shape != (3,)
                     or not np.all(np.isfinite(desired)))
        if must_hold:
            assert out.state is not GateState.ACTIVE
            np.testing.assert_array_equal(q, q_prev)
        q_prev = q


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.floats(0, 0.2)), min_size=5, max_size=80))
def test_after_a_stop_only_release_then_press_rearms(pattern):
    gate = make_gate()
    t = 0.0
    for i in range(5):
        t += DT
        gate.step(t, np.array([0.2, 0, 0]), True, t)
    t += 0.6
    assert gate.step(t, np.array([0.2, 0, 0]), True, t - 0.6).state is GateState.STOPPED
    released = False
    for enable, gap in pattern:
        t += DT
        out = gate.step(t, np.array([-0.5, 0, 0]), enable, t - min(gap, 0.09))
        if not enable:
            released = True
        if not released:
            assert out.state is GateState.STOPPED
        if out.state is GateState.ACTIVE:
            assert released and enable
