"""configs/teleop.yaml: the shipped file loads, and every kind of mistake names the file and key."""
import pytest

from collector.errors import ConfigError
from collector.policy.assists import Assists
from collector.teleop.config import default_config_path, load_teleop_config


def test_shipped_config_loads_with_the_documented_defaults():
    cfg = load_teleop_config()
    assert cfg.source == str(default_config_path())
    assert cfg.control.rate_hz >= 100 and cfg.control_dt == pytest.approx(1 / cfg.control.rate_hz)
    assert cfg.input.hold_after_s == 0.1 and cfg.input.stop_after_s == 0.5
    assert cfg.ik.posture_cost == pytest.approx(1e-3) and cfg.ik.solver == "daqp"
    assert cfg.policy.grasp_gate_mm == 0.0 and cfg.grasp_gate_m is None  # the grasp gate is off unless asked for
    assert load_teleop_config(overrides={"policy": {"grasp_gate_mm": 30}}).grasp_gate_m == pytest.approx(0.03)
    assert cfg.policy_assists == Assists()  # hand steering and the held estimate: off too
    steered = load_teleop_config(overrides={"policy": {"steer_hands": True, "hold_estimate_mm": 120}}).policy_assists
    assert steered == Assists(steer_hands=True, hold_estimate_m=0.12)


@pytest.mark.parametrize("text, needle", [
    ("control: {rate_hz: 0}", "control.rate_hz must be positive"),
    ("control: {rate_hz: fast}", "control.rate_hz must be a finite number"),
    ("ik: {posture: 1}", "unknown key(s) ['posture'] in ik"),
    ("input: {deadman: pedal}", "input.deadman = 'pedal'"),
    ("input: {hold_after_s: 0.6}", "hold_after_s must not exceed"),
    ("retarget: {scale: [1, 1]}", "retarget.scale"),
    ("safety: {workspace: {min: [0, 0, 1], max: [1, 1, 0]}}", "min must be below max"),
    ("safety: {workspace: big}", "safety.workspace must be 'auto'"),
    ("retarget: {orientation: 1}", "retarget.orientation must be true or false"),
    ("control: [1, 2]", "control must be a mapping"),
    ("control: {rate_hz: [oops", "not valid YAML"),
    ("policy: {grasp_gate_mm: -30}", "policy.grasp_gate_mm must be 0 (off) or a positive height"),
    ("policy: {grasp_gate_mm: .nan}", "policy.grasp_gate_mm must be a finite number"),
    ("policy: {steer_hands: often}", "policy.steer_hands must be true or false"),
    ("policy: {steer_hands: true, hold_estimate_mm: -1}", "policy.hold_estimate_mm must be 0 (off) or a positive"),
    ("policy: {hold_estimate_mm: 120}", "policy.hold_estimate_mm needs policy.grasp_gate_mm or policy.steer_hands"),
])
def test_mistakes_are_config_errors_naming_file_and_key(tmp_path, text, needle):
    path = tmp_path / "teleop.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_teleop_config(path)
    assert needle in str(info.value) and str(path) in str(info.value)


def test_missing_file_and_overrides(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_teleop_config(tmp_path / "absent.yaml")
    cfg = load_teleop_config(overrides={"ik": {"iterations": 2}, "control": {"phase_lock": False}})
    assert cfg.ik.iterations == 2 and cfg.control.phase_lock is False and cfg.ik.solver == "daqp"
