"""The command arbiter: who commands the robot on each tick, recorded per row, always through the safety gate."""
import numpy as np
import pytest

from collector.backends.sim import SimBackend
from collector.errors import ConfigError
from collector.recorder import EpisodeReader, EpisodeWriter
from collector.teleop.arbiter import CommandArbiter, CommandSource, JointTargetSource, Proposal, TickContext
from collector.teleop.loop import TeleopLoop
from collector.teleop.safety import GateState
from helpers.teleop import ListSink


class CountingSource(CommandSource):
    """Proposes nothing; notes which ticks it saw and which it commanded."""

    def __init__(self, source_id):
        self.id = source_id
        self.observed, self.proposed = [], []

    def observe(self, tick):
        self.observed.append(tick.now)

    def propose(self, tick):
        self.proposed.append(tick.now)
        return Proposal(None, False, None)


def tick_at(now):
    return TickContext(now=now, state=None, command=np.zeros(2), new_input=False)


def test_arbiter_switches_source_per_tick_and_shows_every_source_the_tick():
    a, b = CountingSource("a"), CountingSource("b")
    arbiter = CommandArbiter([a, b], choose=lambda tick: {1: "b", 3: "a"}.get(int(tick.now)))
    chosen = []
    for k in range(5):
        source = arbiter.decide(tick_at(float(k)))
        source.propose(tick_at(float(k)))
        chosen.append((source.id, arbiter.active_code))
    # None from the chooser keeps the current source; the first one is in control at the start.
    assert chosen == [("a", 0), ("b", 1), ("b", 1), ("a", 0), ("a", 0)]
    assert a.observed == b.observed == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert a.proposed == [0.0, 3.0, 4.0] and b.proposed == [1.0, 2.0]
    arbiter.select("b")
    assert arbiter.decide(tick_at(9.0)) is b


def test_arbiter_refuses_unknown_or_duplicate_sources():
    with pytest.raises(ConfigError, match="unique"):
        CommandArbiter([CountingSource("a"), CountingSource("a")])
    with pytest.raises(ConfigError, match="at least one"):
        CommandArbiter([])
    with pytest.raises(ConfigError, match="no source 'policy'"):
        CommandArbiter([CountingSource("a")]).select("policy")
    with pytest.raises(ConfigError, match="2-D array"):
        JointTargetSource(np.zeros(3))


def test_joint_target_rows_one_per_tick_then_nothing():
    source = JointTargetSource(np.array([[1.0, 2.0], [3.0, 4.0]]))
    source.start()
    first, second, after = (source.propose(tick_at(t)) for t in (0.0, 0.01, 0.02))
    assert first.enable and first.fresh_at == 0.0 and first.q.tolist() == [1.0, 2.0]
    assert second.q.tolist() == [3.0, 4.0]
    assert after.q is None and not after.enable  # past the end: the gate holds
    source.start()
    assert source.propose(tick_at(1.0)).q.tolist() == [1.0, 2.0]


def _schedule(ticks_operator_first, ticks_targets):
    """A chooser: the operator for the first ticks, then the joint targets, then the operator again."""
    count = [0]

    def choose(tick):
        count[0] += 1
        k = count[0] - 1
        if k < ticks_operator_first:
            return "operator"
        return "joint_targets" if k < ticks_operator_first + ticks_targets else "operator"
    return choose


def test_controlling_source_is_recorded_per_row_in_the_episode_file(toy_env, tmp_path):
    toy_env.reset(seed=1)
    backend = SimBackend(toy_env, render=False)
    n = len(toy_env.robot.command_joints)
    home = np.asarray(toy_env.joint_positions(), float)
    targets = JointTargetSource(np.repeat(home[None, :], 100, axis=0))
    loop = TeleopLoop(backend, endpoint="inproc://arbiter-record", bind=True, sources=[targets],
                      choose=_schedule(10, 25))
    specs = {s.name: s for s in loop.stream_specs()}
    assert specs["control"].attrs["sources"] == {"operator": 0, "joint_targets": 1}
    writer = EpisodeWriter(tmp_path, "episode_000000", loop.stream_specs(), metadata={"sim": True})
    writer.start()
    loop.sink = writer
    try:
        loop.start()
        for _ in range(50):
            loop.tick()
    finally:
        loop.close()
    path = writer.stop(outcome="unknown")
    with EpisodeReader(path) as reader:
        sources = reader.raw("control", "source")[:]
        np.testing.assert_array_equal(reader.stamps("control"), reader.stamps("command"))
        assert reader.streams["control"].attrs["sources"] == {"operator": 0, "joint_targets": 1}
        states = reader.raw("safety", "state")[:]
        commands = reader.raw("command", "position")[:]
    assert sources.tolist() == [0] * 10 + [1] * 25 + [0] * 15
    # No operator input at all: the gate holds while the operator commands; the targets make it follow.
    assert set(states[:10].tolist()) == {0} and set(states[10:35].tolist()) == {1}
    assert commands.shape == (50, n)


def test_joint_targets_drive_the_simulated_robot_within_the_gate_limits(toy_env):
    toy_env.reset(seed=1)
    backend = SimBackend(toy_env, render=False)
    robot = toy_env.robot
    sink = ListSink()
    loop = TeleopLoop(backend, endpoint="inproc://arbiter-drive", bind=True, sink=sink,
                      sources=[JointTargetSource(lambda tick: goal)], choose=lambda tick: "joint_targets")
    lo, hi, vel = loop.limits.lower, loop.limits.upper, loop.limits.velocity
    pan = robot.command_joints.index("pan")
    goal = np.asarray(toy_env.joint_positions(), float).copy()
    goal[pan] = hi[pan] + 1.0  # far past the joint's upper limit: clipped to it
    try:
        loop.start()
        previous = loop.gate.command
        for _ in range(300):
            loop.tick()
            q = loop.gate.command
            assert np.all(q >= lo - 1e-12) and np.all(q <= hi + 1e-12)
            assert np.all(np.abs(q - previous) <= vel * loop.control_dt + 1e-9)
            previous = q
        assert loop.gate.command[pan] == pytest.approx(hi[pan])
        assert toy_env.joint_positions()[pan] == pytest.approx(hi[pan], abs=0.03)  # the robot followed
        # A target the gate must refuse (NaN): it holds the last safe command on that very tick.
        held = loop.gate.command
        goal = np.full(len(goal), np.nan)
        loop.tick()
        assert loop.gate.state is GateState.HOLD
        np.testing.assert_array_equal(loop.gate.command, held)
    finally:
        loop.close()
    codes = {int(f["source"]) for _, f in sink.samples["control"]}
    assert codes == {1}
    assert len(sink.samples["control"]) == len(sink.samples["command"]) == 301


def test_operator_keeps_retargeting_while_another_source_commands(toy_env):
    """A takeover: the operator's input is still read and retargeted, but IK targets are recorded only
    while the operator commands; the other source's command goes through the same gate."""
    from collector.teleop.zmq_link import InputPublisher
    from collector.errors import DeviceError
    from helpers.teleop import vr_message

    toy_env.reset(seed=1)
    backend = SimBackend(toy_env, render=False)
    endpoint = "inproc://arbiter-takeover"
    sink = ListSink()
    hold_here = JointTargetSource(lambda tick: tick.command)  # holds wherever it takes over
    loop = TeleopLoop(backend, endpoint=endpoint, bind=True, sink=sink, sources=[hold_here],
                      choose=_schedule(60, 40))
    publisher = InputPublisher(endpoint, bind=False)
    try:
        for _ in range(100):  # inproc: the bound SUB sees the connection only when used
            loop.subscriber.receive(0.0)
            try:
                publisher.wait_for_subscriber(0.02)
                break
            except DeviceError:
                pass
        loop.start()
        for k in range(100):
            publisher.publish(vr_message(k, backend.now(), forward=0.0005 * k))
            loop.tick()
            if k == 60:
                taken_over_at = loop.gate.command
        assert loop.stats.inputs == 100 and loop.retargeter.calibrated
        np.testing.assert_allclose(loop.gate.command, taken_over_at)
    finally:
        publisher.close()
        loop.close()
    active = np.array([f["active"] for _, f in sink.samples["ik_target"]])
    codes = [int(f["source"]) for _, f in sink.samples["control"]]
    assert codes == [0] * 60 + [1] * 40
    assert active[5:60].any(axis=1).all() and not active[60:].any()
    states = [int(f["state"]) for _, f in sink.samples["safety"]]
    assert set(states[61:]) == {1}  # the holding source commands: ACTIVE, at the same position
