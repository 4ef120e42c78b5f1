"""Policy in the loop with operator takeover (collector/teleop/takeover.py) and the scripted corrector
(collector/teleop/devices/corrector.py, collector/teleop/corrected_take.py), over the real loop.

The checkpoint is a tiny ACT trained for a few steps on the session's `demo_take` (as in
tests/test_policy_source.py): it drives, but does nothing useful, which is what a corrector is for.
"""
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from collector.backends.sim import SimBackend
from collector.policy.checkpoint import Checkpoint
from collector.recorder import EpisodeReader
from collector.recorder.qa import validate_episode
from collector.sim import SimEnv
from collector.teleop.config import CorrectorConfig, load_teleop_config
from collector.teleop.devices.corrector import ProgressWatch
from collector.teleop.devices.keyboard import KeyboardDevice
from collector.teleop.ik import RobotKinematics
from collector.teleop.messages import ControllerState, OperatorInput
from collector.teleop.rig import build_rig
from collector.teleop.robot_limits import joint_limits
from collector.teleop.takeover import takeover_pressed
from helpers.policy_seeds import plan_seed_naming, target_of
from helpers.teleop import ListSink

torch.set_num_threads(1)
pytestmark = pytest.mark.slow  # shares the session's demo take

@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint):
    return tiny_checkpoint


def known_seed(checkpoint, start=1_000_000):
    """A held-out seed whose pick-and-place target is the object the tiny policy was told about."""
    known = set(Checkpoint.load(checkpoint).vocabulary.targets)
    seed = start
    while target_of(seed) not in known:
        seed += 1
    return seed


def gate_step_limit(config=None):
    from collector.robot import load_robot

    config = config or load_teleop_config()
    robot = load_robot("humanoid")
    return joint_limits(robot, RobotKinematics(robot), config.safety).velocity * config.control_dt


# -- the button --------------------------------------------------------------------------------------

def message(source, side=None, button=None):
    controllers = {} if side is None else {f"{side}_controller": ControllerState(buttons={button: True})}
    return OperatorInput(stamp=0.0, seq=0, source=source, **controllers)


def test_each_input_has_its_takeover_button():
    assert takeover_pressed(message("vr", "left", "thumbstick"))
    assert not takeover_pressed(message("vr", "right", "thumbstick")), "the right stick stays the clutch"
    assert not takeover_pressed(message("vr", "left", "x")), "X starts/stops takes"
    assert takeover_pressed(message("gamepad", "right", "y"))
    assert not takeover_pressed(message("gamepad", "right", "x"))
    assert takeover_pressed(message("keyboard", "right", "menu"))
    assert takeover_pressed(message("corrector", "right", "menu"))
    assert not takeover_pressed(message("keyboard")) and not takeover_pressed(None)


def test_keyboard_p_holds_the_takeover_button_for_one_message():
    master, slave = os.openpty()
    try:
        keyboard = KeyboardDevice(load_teleop_config().devices.keyboard, fd=slave, echo_help=False)
        os.write(master, b"p")
        assert takeover_pressed(keyboard.poll(0.0))
        assert not takeover_pressed(keyboard.poll(0.01))
        keyboard.close()
    finally:
        os.close(master)
        os.close(slave)


# -- takeover and hand-back by button over the real loop ---------------------------------------------

def test_takeover_and_hand_back_by_button_are_bumpless_and_the_deadman_stays_in_force(checkpoint):
    """A keyboard operator (a real KeyboardDevice on a pty) holds the deadman while the policy drives,
    presses p to take over, moves the arm, presses p to hand back, then lets go of the deadman."""
    config = load_teleop_config()
    seed = known_seed(checkpoint)
    backend = SimBackend(SimEnv(robot="humanoid", task="pick_place", control_hz=config.control.rate_hz, seed=seed),
                         render=True, async_render=False)
    backend.reset(seed=seed)
    master, slave = os.openpty()
    keyboard = KeyboardDevice(config.devices.keyboard, fd=slave, echo_help=False)
    rig = build_rig(backend, keyboard, config, endpoint=f"inproc://takeover-{os.getpid()}", bind=True,
                    policy=checkpoint)
    keys = {0: b" ", 100: b"p", 130: b"wwwww", 170: b"p", 230: b" "}  # space: deadman; p: takeover; w: forward
    sink, commands = ListSink(), []
    try:
        rig.loop.sink = sink
        rig.loop.start(seed=seed)
        for tick in range(270):
            if tick in keys:
                os.write(master, keys[tick])
            rig.loop.tick()
            commands.append(rig.loop.gate.command.copy())
        handovers = list(rig.loop.arbiter.handovers)
        ee_x = [rig.loop.kin.ee_positions(c)["right"][0] for c in commands]
    finally:
        rig.close()
        keyboard.close()
        os.close(master)
        os.close(slave)
    commands = np.asarray(commands)
    codes = [int(f["source"]) for _, f in sink.samples["control"]]
    policy, operator = rig.loop.arbiter.codes["policy"], rig.loop.arbiter.codes["operator"]
    assert codes == [policy] * 100 + [operator] * 70 + [policy] * 100
    assert [(a, b) for _, a, b in handovers] == [("policy", "operator"), ("operator", "policy")]
    stamps = [t for t, _ in sink.samples["control"]]
    assert [t for t, _, _ in handovers] == [stamps[100], stamps[170]]

    limit = gate_step_limit(config)
    steps = np.abs(np.diff(commands, axis=0))
    assert np.all(steps <= limit + 1e-9), "no step, at a handover or elsewhere, exceeds the gate's per-tick limit"
    assert not np.allclose(commands[99], commands[5]), "the policy moved the robot before the takeover"
    # Takeover: the operator's hands re-anchor where the robot is held, and the gripper keeps its opening
    # until the trigger meets it, so the arm stays put until the operator moves (no jump to an old anchor,
    # nor to the home pose the operator calibrated to while the policy drove).
    held = commands[99]
    drift = np.abs(commands[100:130] - held).max()
    assert drift < 0.005, f"the arm moved {drift:.4f} rad in the 0.3 s after the takeover, the operator did not"
    assert ee_x[169] > ee_x[129] + 0.02, "the operator drove the arm forward while in control"
    # Hand-back: the policy commands again from where the operator left it, within the gate
    assert not np.allclose(commands[229], commands[170])
    # The deadman is the operator's while the policy drives: let go and the robot holds
    assert np.allclose(commands[232:], commands[231])
    enable = [int(f["enable"]) for _, f in sink.samples["safety"]]
    assert all(enable[5:230]) and not any(enable[231:])


# -- the corrector ------------------------------------------------------------------------------------

def test_the_progress_watch_names_why_the_policy_failed():
    cfg = CorrectorConfig(grasp_deadline_s=5.0, drift_m=0.1, stall_s=2.0, progress_m=0.01)
    watch = ProgressWatch(cfg)
    assert watch.update(0.0, False, 0.40, -1.40) is None
    assert watch.update(1.0, False, 0.20, -1.20) is None  # nearing the object: progress
    assert "drifted" in watch.update(1.5, False, 0.31, -1.31)
    watch = ProgressWatch(cfg)
    assert watch.update(0.0, False, 0.4, -1.4) is None
    assert "no progress for 2 s" in watch.update(2.0, False, 0.4, -1.4)
    watch = ProgressWatch(cfg)
    for t in np.arange(0.0, 5.0, 0.5):  # steady progress, never grasping
        assert watch.update(t, False, 0.4 - 0.03 * t, -1.4 + 0.03 * t) is None
    assert "not grasped by 5 s" in watch.update(5.0, False, 0.25, -1.25)
    watch = ProgressWatch(cfg)
    assert watch.update(0.0, True, 0.0, -0.3) is None and watch.update(1.0, True, 0.0, -0.2) is None
    assert watch.update(1.1, False, 0.05, -1.05) is None, "a contact flickering while a grasp settles"
    assert watch.update(1.2, True, 0.0, -0.2) is None
    assert watch.update(1.3, False, 0.05, -1.05) is None
    assert watch.update(1.6, False, 0.05, -1.05) == "dropped the object"


def test_the_corrector_takes_over_a_held_object_and_finishes_without_grasping_again(demo_take):
    """A "policy" that replays a scripted take's commands up to just after the grasp, then holds still:
    the corrector takes over with the object in hand, skips the grasp and finishes (no cameras needed)."""
    from collector.replay.sim_replay import env_for_episode
    from collector.teleop.arbiter import JointTargetSource
    from collector.teleop.devices.corrector import ScriptedCorrector
    from collector.teleop.loop import TeleopLoop, run_episode
    from collector.teleop.robot_limits import gripper_indices
    from collector.teleop.takeover import SupervisedSource, TakeoverSwitch

    config = load_teleop_config()
    with EpisodeReader(demo_take) as reader:
        env, _ = env_for_episode(reader, control_hz=config.control.rate_hz)
        commands = np.asarray(reader.raw("command", "position")[:reader.count("command")])
    backend = SimBackend(env, render=False)
    robot = backend.robot
    grippers = gripper_indices(robot, RobotKinematics(robot))
    closed = np.array([max(robot.gripper_closure(side, c[i]) for side, i in grippers.items()) for c in commands])
    grasped = int(np.argmax(closed > 0.9))
    switch = TakeoverSwitch("policy")
    replay = SupervisedSource(JointTargetSource(commands[:grasped + 150], "policy"), on_start=switch.reset)
    corrector = ScriptedCorrector(CorrectorConfig(stall_s=1.0))
    sink = ListSink()
    loop = TeleopLoop(backend, config=config, device=corrector, sink=sink, endpoint=f"inproc://held-{os.getpid()}",
                      bind=True, sources=[replay], choose=switch)
    try:
        result = run_episode(backend, corrector, max_duration_s=30.0, loop=loop)
    finally:
        loop.close()
        backend.close()
    assert result.success
    assert corrector.reason == "no progress for 1 s" and corrector.took_over_at > (grasped + 150) * loop.control_dt
    assert [s.name for s in corrector.plan.segments][:3] == ["wait", "lift", "carry"], "no second grasp"
    assert [(a, b) for _, a, b in loop.arbiter.handovers] == [("policy", "operator")]
    sent = np.asarray([f["position"] for _, f in sink.samples["command"]])
    codes = np.asarray([int(f["source"]) for _, f in sink.samples["control"]])
    first = int(np.argmax(codes == loop.arbiter.codes["operator"]))
    limit = gate_step_limit(config)
    assert np.all(np.abs(np.diff(sent, axis=0)) <= limit + 1e-9)
    assert np.all(np.abs(sent[first] - sent[first - 1]) <= 0.25 * limit)


def test_collect_with_a_policy_and_the_corrector_records_one_corrected_episode(checkpoint, tmp_path):
    """`collect --plan --policy --input scripted`: the policy drives, the corrector takes over when it makes
    no progress and finishes the task (success from the sim state); one episode, both sources in
    `control`, the handover in its metadata, bumpless, and it validates."""
    from collector.cli import main

    plan_seed = plan_seed_naming(checkpoint)
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"""name: takeover
robot: humanoid
backend: sim
operator: scripted
tasks: [pick_place]
lighting: [dim]
weights: [heavy]
takes_per_cell: 1
max_attempts_per_cell: 1
episode_time_limit_s: 30
seed: {plan_seed}
""")
    out = tmp_path / "out"
    assert main(["collect", "--plan", str(plan), "--policy", str(checkpoint), "--input", "scripted",
                 "--out", str(out), "--no-progress"]) == 0
    (path,) = sorted((out / "episodes").glob("*.hdf5"))
    assert validate_episode(path) == []
    with EpisodeReader(path) as reader:
        md = reader.metadata
        sources = reader.streams["control"].attrs["sources"]
        codes = np.asarray(reader.raw("control", "source")[:reader.count("control")])
        stamps = reader.stamps("control")
        commands = np.asarray(reader.raw("command", "position")[:reader.count("command")])
    assert md["outcome"] == "success", md.get("corrector")
    assert md["corrector"]["reason"]  # e.g. "no progress for 3 s"
    (handover,) = md["handovers"]
    assert (handover["from"], handover["to"]) == ("policy", "operator")
    first_operator = int(np.argmax(codes == sources["operator"]))
    assert np.all(codes[:first_operator] == sources["policy"]) and np.all(codes[first_operator:] == sources["operator"])
    assert handover["t"] == pytest.approx(stamps[first_operator]) == pytest.approx(md["corrector"]["took_over_at"])
    assert 0.0 < first_operator / len(codes) < 0.6  # the policy drove first, the corrector finished
    limit = gate_step_limit()
    assert np.all(np.abs(np.diff(commands, axis=0)) <= limit + 1e-9)
    step = np.abs(commands[first_operator] - commands[first_operator - 1])
    assert np.all(step <= 0.25 * limit), "the corrector's first command continues from the held one"


def test_corrected_take_returns_success_and_the_operator_share(checkpoint, tmp_path):
    """The Python entry the learning study uses: an earlier stall limit, the share read back from the file."""
    from collector.teleop.corrected_take import corrected_take

    seed = known_seed(checkpoint, start=1_000_500_000)
    take = corrected_take(checkpoint, tmp_path, task="pick_place", lighting="bright", weight="light", seed=seed,
                          corrector=CorrectorConfig(stall_s=1.0))
    assert take.success and take.reason == "no progress for 1 s"
    assert [(h["from"], h["to"]) for h in take.handovers] == [("policy", "operator")]
    assert validate_episode(take.path) == []
    with EpisodeReader(take.path) as reader:
        codes = np.asarray(reader.raw("control", "source")[:reader.count("control")])
        operator = reader.streams["control"].attrs["sources"]["operator"]
        assert reader.metadata["outcome"] == "success" and reader.metadata["operator"] == "corrector"
    assert take.operator_share == pytest.approx(np.mean(codes == operator))
    assert 0.5 < take.operator_share < 0.98  # the policy's second, then the corrector's whole plan


def test_collect_with_a_checkpoint_that_is_not_one_is_one_line_and_creates_nothing(tmp_path, capsys):
    from collector.cli import main

    plan = tmp_path / "plan.yaml"
    plan.write_text("name: p\nrobot: humanoid\nbackend: sim\noperator: scripted\ntasks: [pick_place]\n"
                    "lighting: [bright]\nweights: [light]\n")
    not_a_checkpoint = tmp_path / "notes.pt"
    not_a_checkpoint.write_text("hello")
    out = tmp_path / "out"
    for bad in (tmp_path / "missing.pt", not_a_checkpoint):
        assert main(["collect", "--plan", str(plan), "--policy", str(bad), "--out", str(out), "--no-progress"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("collector collect: error: ") and "\n" not in err and bad.name in err
    assert not out.exists()


def test_the_corrector_refuses_a_backend_that_is_not_the_in_process_sim():
    """Over ROS 2 (or any backend without the simulator's state) the corrector cannot watch the task:
    starting it is a one-line DeviceError, not an AttributeError deep in a take."""
    from collector.errors import DeviceError
    from collector.teleop.devices.base import DeviceContext
    from collector.teleop.devices.corrector import ScriptedCorrector

    class NotTheSim:  # a backend as the ROS 2 one looks to a device: no simulated task
        task = None

    corrector = ScriptedCorrector(CorrectorConfig())
    with pytest.raises(DeviceError) as error:
        corrector.start(DeviceContext(backend=NotTheSim(), retargeter=None, kinematics=None, control_dt=0.01))
    assert "sim" in str(error.value) and "\n" not in str(error.value)
