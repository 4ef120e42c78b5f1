"""The control loop end to end on real MuJoCo: a toy robot fed over ZMQ like a VR bridge, and the
humanoid driven by the scripted operator, recorded by the real episode writer."""
import h5py
import numpy as np
import pytest

from collector.errors import ConfigError, DeviceError
from collector.sim import SimEnv
from collector.backends.sim import SimBackend
from collector.teleop.config import load_teleop_config
from collector.teleop.devices.scripted import ScriptedOperator
from collector.teleop.loop import TeleopLoop, run_episode
from collector.teleop.safety import GateState
from collector.teleop.zmq_link import InputPublisher
from helpers.teleop import ListSink, vr_message


def handshake(publisher, loop):
    # Over inproc the bound SUB only processes the new connection when it is used, so poll it
    # while the publisher waits for its subscription (a VR bridge over TCP needs none of this).
    for _ in range(100):
        loop.subscriber.receive(0.0)
        try:
            publisher.wait_for_subscriber(0.02)
            return
        except DeviceError:
            pass
    raise AssertionError("no subscription reached the publisher")


def test_any_robot_from_its_yaml_follows_a_zmq_operator(toy_env):
    backend = SimBackend(toy_env, render=False)
    toy_env.reset(seed=1)
    sink = ListSink()
    endpoint = "inproc://toy-vr"
    loop = TeleopLoop(backend, device=None, sink=sink, endpoint=endpoint, bind=True)
    publisher = InputPublisher(endpoint, bind=False)
    try:
        handshake(publisher, loop)
        loop.start()
        robot = toy_env.robot
        home_right = toy_env.ee_pose("right")[0].copy()
        home_left = toy_env.ee_pose("left")[0].copy()
        pan_i, grip_i = robot.command_joints.index("pan"), robot.command_joints.index("r_grip")
        seq = 0
        # Ramp the operator's right hand 8 cm forward and 6 cm up over 1 s, squeeze the trigger, look left.
        for k in range(250):
            s = min(k / 100.0, 1.0)
            publisher.publish(vr_message(seq, backend.now(), forward=0.08 * s, up=0.06 * s, trigger=s,
                                         head_yaw=0.4 * s))
            seq += 1
            loop.tick()
        moved = toy_env.ee_pose("right")[0] - home_right
        np.testing.assert_allclose(moved, [0.08, 0.0, 0.06], atol=0.01)
        assert np.linalg.norm(toy_env.ee_pose("left")[0] - home_left) < 0.01
        q = toy_env.joint_positions()
        assert q[pan_i] == pytest.approx(0.4, abs=0.03)
        assert toy_env.command()[grip_i] == pytest.approx(robot.gripper_command("right", 1.0))

        # Deadman released: the command freezes on that tick even though the operator keeps moving.
        frozen = loop.gate.command
        publisher.publish(vr_message(seq, backend.now(), forward=0.2, enable=False))
        seq += 1
        loop.tick()
        assert loop.gate.state is GateState.HOLD
        np.testing.assert_array_equal(loop.gate.command, frozen)

        # Garbage on the wire is counted, never fatal; with no valid input the gate holds, then stops.
        for _ in range(60):
            publisher.publish_bytes(b"\x81\xa1v\x02")  # {"v": 2}: an unknown wire version
            loop.tick()
        assert loop.stats.inputs_rejected == 60
        assert loop.gate.state is GateState.STOPPED
        np.testing.assert_array_equal(loop.gate.command, frozen)

        lo, hi = loop.limits.lower, loop.limits.upper
        commands = np.array([f["position"] for _, f in sink.samples["command"]])
        assert np.all(commands >= lo - 1e-12) and np.all(commands <= hi + 1e-12)
        steps = np.abs(np.diff(commands, axis=0))
        assert np.all(steps <= loop.limits.velocity * loop.control_dt + 1e-9)
        assert len(sink.samples["input"]) == seq  # every decoded message is recorded (garbage cannot be)
        assert {"joints", "command", "ik_target", "safety", "illuminance"} <= set(sink.samples)
    finally:
        publisher.close()
        loop.close()


def test_stream_specs_cover_cameras_and_match_the_robot(toy_env):
    toy_env.reset(seed=1)
    backend = SimBackend(toy_env, render=True)
    loop = TeleopLoop(backend, endpoint="inproc://toy-specs", bind=True)
    try:
        first = backend.capture("eyes")  # due at t=0: snapshots the sim for the render thread
        frames = ([("eyes", *first)] if first is not None else []) + backend.finish_frames()
        assert [(name, t, img.shape) for name, t, img in frames] == [("eyes", 0.0, (48, 64, 3))]
        assert backend.capture("eyes") is None  # the next frame is due 0.1 s later
        specs = {s.name: s for s in loop.stream_specs()}
        n = len(toy_env.robot.command_joints)
        assert specs["joints"].fields["position"].shape == (n,)
        assert specs["camera_eyes"].fields["image"].shape == (48, 64, 3) and specs["camera_eyes"].rate_hz == 10
        assert specs["ik_target"].fields["left"].shape == (7,)
        assert specs["input"].kind == "input"
    finally:
        loop.close()
        backend.close(close_env=False)


def test_control_rate_must_match_the_sim(toy_env):
    cfg = load_teleop_config(overrides={"control": {"rate_hz": 50}})
    with pytest.raises(ConfigError, match="control_hz=50"):
        TeleopLoop(SimBackend(toy_env, render=False), config=cfg, endpoint="inproc://toy-rate", bind=True)


@pytest.mark.slow
@pytest.mark.parametrize("seed, lighting, weight", [(11, "dim", "heavy"), (12, "back_lit", "light")])
def test_scripted_pick_and_place_succeeds(pick_env, seed, lighting, weight):
    backend = SimBackend(pick_env, render=False)
    backend.reset(seed=seed, lighting=lighting, weight=weight)
    operator = ScriptedOperator(load_teleop_config().devices.scripted)
    result = run_episode(backend, operator, max_duration_s=30.0, seed=seed)
    assert result.success, result.metrics
    assert result.stats["inputs"] == result.ticks  # one message per tick, none lost on the ZMQ path
    assert result.stats["gate"].get("stopped", 0) == 0 and result.stats["ik_failures"] == 0


@pytest.mark.slow
def test_scripted_pour_succeeds():
    env = SimEnv(robot="humanoid", task="pour", seed=21, lighting="warm", weight="heavy")
    try:
        operator = ScriptedOperator(load_teleop_config().devices.scripted)
        result = run_episode(SimBackend(env, render=False), operator, max_duration_s=40.0, seed=21)
        assert result.success, result.metrics
    finally:
        env.close()


@pytest.mark.slow
def test_recorded_episode_holds_every_teleop_stream(pick_env, tmp_path):
    from collector.recorder import EpisodeWriter

    backend = SimBackend(pick_env, render=True)
    backend.reset(seed=5)
    operator = ScriptedOperator(load_teleop_config().devices.scripted)
    loop = TeleopLoop(backend, device=operator)
    writer = EpisodeWriter(tmp_path, "episode_000001", loop.stream_specs(),
                           metadata={"task": "pick_place", "sim": True})
    writer.start()
    loop.sink = writer
    try:
        result = run_episode(backend, operator, loop=loop, max_duration_s=1.2, stop_on_success=False, seed=5)
    finally:
        loop.close()
        backend.close(close_env=False)
    stats = writer.stats
    path = writer.stop(outcome="unknown")
    assert result.stats["sink_rejected"] == 0, stats
    with h5py.File(path, "r") as h5:
        raw = h5["raw"]
        ticks = result.ticks
        assert raw["joints/t"].shape[0] == ticks and raw["command/position"].shape == (ticks, 20)
        assert raw["input/left_wrist"].shape == (ticks, 7)
        assert raw["ik_target/left"].shape[0] == ticks
        assert np.all(np.diff(raw["command/t"][:]) > 0)
        # 30 fps cameras over 1.2 s of sim time: 36 frames (first at t=0), give or take one.
        assert abs(raw["camera_head/t"].shape[0] - 36) <= 1
        assert raw["illuminance/value"].shape[0] == pytest.approx(12, abs=1)


def test_random_operator_stream_never_breaks_limits(toy_env):
    """Seeded random input through the real ZMQ path: jumps, deadman flicker, reordering, garbage, gaps."""
    backend = SimBackend(toy_env, render=False)
    toy_env.reset(seed=2)
    endpoint = "inproc://toy-random"
    sink = ListSink()
    loop = TeleopLoop(backend, sink=sink, endpoint=endpoint, bind=True)
    publisher = InputPublisher(endpoint, bind=False)
    rng = np.random.default_rng(7)
    try:
        handshake(publisher, loop)
        loop.start()
        seq, quiet, enable, since_valid = 0, 0, True, 0
        previous = loop.gate.command
        for tick in range(400):
            sent_enable = None
            since_valid += 1
            if quiet > 0:
                quiet -= 1  # operator link silent
            else:
                roll = rng.random()
                if roll < 0.05:
                    quiet = int(rng.integers(5, 70))
                elif roll < 0.12:
                    publisher.publish_bytes(rng.bytes(int(rng.integers(1, 60))))
                elif roll < 0.18 and seq > 3:
                    publisher.publish(vr_message(seq - 3, backend.now(), enable=True))  # stale, reordered
                else:
                    if rng.random() < 0.1:
                        enable = not enable
                    jump = rng.random() < 0.1
                    publisher.publish(vr_message(seq, backend.now(), forward=rng.uniform(-1, 1) if jump else 0.05,
                                                 up=rng.uniform(-1, 1) if jump else 0.02, trigger=rng.random(),
                                                 head_yaw=rng.uniform(-2, 2), enable=enable))
                    sent_enable = enable
                    since_valid = 0
                    seq += 1
            loop.tick()
            q = loop.gate.command
            assert np.all(q >= loop.limits.lower - 1e-12) and np.all(q <= loop.limits.upper + 1e-12)
            assert np.all(np.abs(q - previous) <= loop.limits.velocity * loop.control_dt + 1e-9)
            if sent_enable is False or since_valid > 10:
                np.testing.assert_array_equal(q, previous)  # deadman released or no valid input > 0.1 s: hold
            previous = q
        assert loop.stats.inputs_out_of_order > 0 and loop.stats.inputs_rejected > 0
        states = {code for _, f in sink.samples["safety"] for code in [int(f["state"])]}
        assert {1, 2} <= states  # it both moved and held
    finally:
        publisher.close()
        loop.close()


# A VR bridge in its own process, sending at 100 Hz on an absolute schedule as a headset does (a
# publisher thread in the test's process shares the GIL with the loop: under load its sends slip by
# whole switch intervals, and no five consecutive arrivals match the period closely enough to lock).
_BRIDGE = """
import sys, time
sys.path.insert(0, sys.argv[2])
from collector.teleop.zmq_link import InputPublisher
from helpers.teleop import vr_message
publisher = InputPublisher(sys.argv[1], bind=True)
publisher.wait_for_subscriber(20.0)
print("ready", flush=True)
t0 = time.monotonic()
k = 0
while True:
    publisher.publish(vr_message(k, time.monotonic(), forward=0.0005 * k))
    k += 1
    time.sleep(max(0.0, t0 + 0.01 * k - time.monotonic()))
"""


def test_realtime_loop_is_paced_and_reads_input_between_ticks(toy_env):
    """Wall-clock pacing with a VR-bridge process publishing on TCP loopback (phase lock on)."""
    import os
    import socket
    import subprocess
    import sys
    from pathlib import Path

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        endpoint = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    bridge = subprocess.Popen([sys.executable, "-c", _BRIDGE, endpoint, str(Path(__file__).parent)],
                              stdout=subprocess.PIPE, text=True)
    backend = SimBackend(toy_env, render=False)
    toy_env.reset(seed=3)
    loop = TeleopLoop(backend, endpoint=endpoint, bind=False)
    try:
        assert bridge.stdout.readline().strip() == "ready"
        loop.start()
        loop.run(1.0, realtime=True)
        stats = loop.stats.summary()
        assert stats["ticks"] == 100  # 1 s of session time at 100 Hz
        # Paced on the wall clock: 99 periods between first and last tick; the phase lock may shorten
        # one by at most half a period when it acquires, and the others by 2 % to follow the input.
        assert stats["wall_s"] >= 99 * 0.01 * 0.98 - 0.005 - 1e-3
        assert stats["inputs"] > 20 and stats["jitter_ms"]["n"] == 99
        assert stats["gate"].get("active", 0) > 0
        # The default realtime_priority applies SCHED_FIFO where permitted, and only during the run.
        from collector.teleop.realtime import fifo_permitted
        assert loop.realtime_scheduling == fifo_permitted(loop.cfg.control.realtime_priority)
        assert os.sched_getscheduler(0) == os.SCHED_OTHER
        assert loop.phase_lock is not None and loop.phase_lock.acquisitions >= 1
    finally:
        bridge.kill()
        bridge.wait()
        loop.close()
