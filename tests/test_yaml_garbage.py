"""Every YAML a command reads (plan, robot YAML, teleop config, lighting/weights/themes, ROS config, launch
file, joint limits), given binary garbage, an empty file or a directory: a one-line error naming the file and
a non-zero exit, never a traceback. And a key written twice in any of them is refused, naming both lines."""
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from collector.cli import main
from collector.errors import ConfigError
from collector.robot import load_robot
from collector.ros.config import RosConfig
from collector.session.plan import KnownNames, load_plan, parse_plan
from collector.teleop.config import load_teleop_config
from collector.yaml_files import load_yaml_mapping

REPO = Path(__file__).resolve().parents[1]
# Not UTF-8 from the first byte (0xff never occurs in UTF-8), then bytes as `head -c /dev/urandom` gives.
GARBAGE = b"\xff\xfe\x00\x9c" + bytes(range(256)) * 7
KINDS = ("garbage", "empty", "directory")


def make(path: Path, kind: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
    if kind == "garbage":
        path.write_bytes(GARBAGE)
    elif kind == "empty":
        path.write_bytes(b"")
    else:
        path.mkdir()
    return path


def run_cli(capsys, argv):
    code = main(argv)  # an exception other than CollectorError would escape here and fail the test
    return code, capsys.readouterr().err


def assert_one_line_error(code, err, command, path):
    assert code != 0
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err
    assert len(lines) == 1, err
    assert lines[0].startswith(f"collector {command}: error: ") and str(path) in lines[0], lines[0]


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A private COLLECTOR_HOME (robots/, configs/, launch/) whose files a test may spoil."""
    root = tmp_path / "home"
    for part in ("robots", "configs", "launch"):
        shutil.copytree(REPO / part, root / part)
    monkeypatch.setenv("COLLECTOR_HOME", str(root))
    return root


def good_plan(tmp_path: Path, **replace) -> Path:
    text = (REPO / "configs" / "plans" / "demo.yaml").read_text()
    for old, new in replace.items():
        text = text.replace(old, new)
    path = tmp_path / "plan.yaml"
    path.write_text(text)
    return path


# -- files named on the command line ---------------------------------------------------------------------------
COMMANDS = {
    # name: (command, argv given the spoilt file and a scratch folder)
    "plan (demo)": ("demo", lambda f, d: ["demo", "--plan", str(f), "--out", str(d / "ds")]),
    "plan (collect)": ("collect", lambda f, d: ["collect", "--plan", str(f), "--out", str(d / "ds")]),
    "plan (session)": ("session", lambda f, d: ["session", "--plan", str(f), "--out", str(d / "ds"), "--port", "0"]),
    "teleop config": ("teleop", lambda f, d: ["teleop", "--config", str(f), "--duration", "0.1"]),
    "robot YAML (teleop)": ("teleop", lambda f, d: ["teleop", "--robot", str(f), "--duration", "0.1"]),
    "robot YAML (sim)": ("sim", lambda f, d: ["sim", "--robot", str(f), "--duration", "0.01"]),
    "launch file": ("launch", lambda f, d: ["launch", str(f), "--print"]),
    "limits (validate)": ("validate", lambda f, d: ["validate", "--limits", str(f), str(d)]),
    "limits (check)": ("check", lambda f, d: ["check", "--limits", str(f), str(d)]),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("what", list(COMMANDS))
def test_spoilt_yaml_named_on_the_command_line(tmp_path, capsys, what, kind):
    command, argv = COMMANDS[what]
    spoilt = make(tmp_path / "spoilt" / "file.yaml", kind)
    code, err = run_cli(capsys, argv(spoilt, tmp_path))
    assert_one_line_error(code, err, command, spoilt)
    assert not (tmp_path / "ds").exists()  # nothing is created for a plan that cannot be read


@pytest.mark.parametrize("kind", KINDS)
def test_spoilt_robot_yaml_named_by_a_plan(tmp_path, capsys, kind):
    robot = make(tmp_path / "robot" / "robot.yaml", kind)
    plan = good_plan(tmp_path, **{"robot: humanoid": f"robot: {robot}"})
    code, err = run_cli(capsys, ["demo", "--plan", str(plan), "--out", str(tmp_path / "ds"), "--episodes", "1"])
    assert_one_line_error(code, err, "demo", robot)


# -- the project's own files under COLLECTOR_HOME (a station's edited copy) -------------------------------------
HOME_FILES = {
    "configs/lighting.yaml": ("demo", ["demo", "--episodes", "1"]),
    "configs/weights.yaml": ("demo", ["demo", "--episodes", "1"]),
    "configs/themes.yaml": ("sim", ["sim", "--duration", "0.01"]),
    "configs/plans/demo.yaml": ("demo", ["demo", "--episodes", "1"]),
    "robots/humanoid/robot.yaml": ("sim", ["sim", "--duration", "0.01"]),
    "configs/teleop.yaml": ("teleop", ["teleop", "--duration", "0.1"]),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("relative", list(HOME_FILES))
def test_spoilt_project_yaml(home, tmp_path, capsys, relative, kind):
    command, argv = HOME_FILES[relative]
    if relative == "configs/teleop.yaml" and kind == "empty":
        make(home / relative, kind)  # documented (docs/teleop.md): an empty default means the built-in defaults
        assert run_cli(capsys, argv)[0] == 0
        return
    spoilt = make(home / relative, kind)
    if command == "demo":
        argv = argv + ["--out", str(tmp_path / "ds")]
    code, err = run_cli(capsys, argv)
    assert_one_line_error(code, err, command, spoilt)


@pytest.mark.parametrize("kind", ("garbage", "empty"))
def test_spoilt_ros_sidecar_names_the_file(home, kind):
    robot_yaml = home / "robots" / "humanoid" / "robot.yaml"
    sidecar = make(robot_yaml.with_name("ros.yaml"), kind)
    with pytest.raises(ConfigError) as info:
        RosConfig.from_robot_yaml(robot_yaml)
    assert str(sidecar) in str(info.value) and "\n" not in str(info.value)


def test_urandom_plan_in_a_real_process(tmp_path):
    """The issue's reproduction as a user runs it: `head -c 2000 /dev/urandom > g.yaml`."""
    plan = tmp_path / "g.yaml"
    plan.write_bytes(b"\x80" + os.urandom(1999))
    proc = subprocess.run([sys.executable, "-m", "collector", "demo", "--plan", str(plan), "--out",
                           str(tmp_path / "ds")], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(f"collector demo: error: {plan}: not a YAML text file")


# -- a key written twice ---------------------------------------------------------------------------------------
KNOWN = KnownNames(tasks={"pour": "", "pick_place": ""}, lighting={"bright": "", "dim": ""},
                   weights={"light": "", "heavy": ""}, robots={"humanoid": ""}, scenes=None)
PLAN = textwrap.dedent("""\
    robot: humanoid
    tasks:
      - name: pour
        instruction: Pour slowly
    lighting: [bright]
    weights: [light]
    takes_per_cell: 2
    """)


def test_plan_with_a_key_twice_is_refused_naming_both_lines(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(PLAN + "lighting: [dim]\n")
    with pytest.raises(ConfigError) as info:
        load_plan(path, KNOWN)
    assert str(info.value) == f"{path}:8: not valid YAML: duplicate key 'lighting' on line 8 (first on line 5)"


def test_nested_duplicate_in_a_plan_is_refused():
    text = PLAN.replace("    instruction: Pour slowly\n", "    instruction: Pour slowly\n    name: pick_place\n")
    with pytest.raises(ConfigError, match=r"p.yaml:5: .*duplicate key 'name' on line 5 \(first on line 3\)"):
        parse_plan(text, "p.yaml", KNOWN)


def test_merge_keys_may_still_override():
    text = "defaults: &d {mode: auto, settle_s: 0.1}\nreset:\n  <<: *d\n  settle_s: 0.5\n"
    assert parse_plan_free(text)["reset"] == {"mode": "auto", "settle_s": 0.5}


def parse_plan_free(text):
    import yaml

    from collector.yaml_files import UniqueKeyLoader

    return yaml.load(text, Loader=UniqueKeyLoader)


def test_robot_yaml_with_a_key_twice_is_refused(home):
    robot_yaml = home / "robots" / "humanoid" / "robot.yaml"
    text = robot_yaml.read_text()
    first = next(i for i, line in enumerate(text.splitlines(), 1) if line.startswith("name:"))
    robot_yaml.write_text(text + "name: other\n")
    with pytest.raises(ConfigError) as info:
        load_robot("humanoid")
    message = str(info.value)
    assert str(robot_yaml) in message and f"(first on line {first})" in message and "duplicate key 'name'" in message


def test_teleop_config_with_a_key_twice_is_refused(tmp_path):
    path = tmp_path / "teleop.yaml"
    path.write_text("control:\n  rate_hz: 100\n  rate_hz: 50\n")
    with pytest.raises(ConfigError, match=r"teleop config .*teleop.yaml:3: not valid YAML: duplicate key 'rate_hz' "
                                          r"on line 3 \(first on line 2\)"):
        load_teleop_config(path)


def test_yaml_reader_names_each_problem(tmp_path):
    for kind, words in (("garbage", "not a YAML text file (byte 0 is not UTF-8"),
                        ("empty", "expected a mapping at the top level, found an empty file"),
                        ("directory", "cannot read: Is a directory")):
        path = make(tmp_path / f"{kind}.yaml", kind)
        with pytest.raises(ConfigError) as info:
            load_yaml_mapping(path, "robot YAML")
        assert str(info.value).startswith(f"robot YAML {path}: ") and words in str(info.value)


@pytest.mark.parametrize("relative, argv", [("launch/mine.launch.yaml", None),
                                            ("configs/lighting.yaml", ["demo", "--episodes", "1"])])
def test_a_directory_is_called_a_directory_not_missing(home, tmp_path, capsys, relative, argv):
    spoilt = make(home / relative, "directory")
    argv = ["launch", str(spoilt), "--print"] if argv is None else argv + ["--out", str(tmp_path / "ds")]
    code, err = run_cli(capsys, argv)
    assert_one_line_error(code, err, argv[0], spoilt)
    assert "is a directory" in err and "missing" not in err and "not found" not in err
