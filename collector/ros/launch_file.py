"""Read a ROS 2 YAML launch file into the list of processes it starts.

`ros2 launch` is not on PyPI, so `collector launch FILE` reads the same files itself. This
module understands the subset of the ROS 2 YAML launch format the shipped session files use,
with the same meaning as in `launch`/`launch_ros`, and refuses anything else by name (rather
than silently skipping an action):

- `arg` (name, default, description, choice) -- overridden on the command line as `name:=value`
- `let` (name, value), `set_env` (name, value)
- `executable` (cmd, name, cwd, shell, output, respawn, respawn_delay, launch-prefix, env: [{name, value}])
- `node` (pkg, exec, name, namespace, args, param: [{name, value}], remap: [{from, to}], env, respawn...):
  resolved like `ros2 run` through the ament index of a sourced ROS 2 install
- `group` (scoped, children) and the `if` / `unless` conditions on every action
- substitutions `$(var NAME)`, `$(env NAME [DEFAULT])`, `$(dirname)`

The launch configurations `sigterm_timeout` and `sigkill_timeout` (seconds, default 5 each)
set the shutdown escalation, as in `launch`.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional

from collector.errors import ConfigError
from collector.yaml_files import load_yaml_mapping

SUBSTITUTION = re.compile(r"\$\(([^()]*)\)")
TRUE_WORDS, FALSE_WORDS = ("true", "1"), ("false", "0")
EXECUTABLE_KEYS = {"cmd", "name", "cwd", "shell", "output", "respawn", "respawn_delay", "launch-prefix",
                   "env", "if", "unless"}
NODE_KEYS = {"pkg", "exec", "name", "namespace", "args", "param", "remap", "ros_args", "output", "respawn",
             "respawn_delay", "launch-prefix", "env", "if", "unless"}


@dataclass
class ProcessSpec:
    """One process a launch file starts."""

    name: str
    argv: List[str]
    env: Dict[str, str] = field(default_factory=dict)  # set_env and env entries, added to the launch's environment
    cwd: Optional[str] = None
    shell: bool = False
    respawn: bool = False
    respawn_delay: float = 0.0


@dataclass
class LaunchPlan:
    path: Path
    processes: List[ProcessSpec]
    arguments: Dict[str, str]  # final values of every declared argument
    undeclared: List[str] = field(default_factory=list)  # command-line arguments no `arg` declares
    sigterm_timeout: float = 5.0
    sigkill_timeout: float = 5.0


class _Scope:
    def __init__(self, configurations: Dict[str, str], environment: Dict[str, str]):
        self.configurations = configurations
        self.environment = environment

    def child(self) -> "_Scope":
        return _Scope(dict(self.configurations), dict(self.environment))


class LaunchFileReader:
    def __init__(self, path: Path, overrides: Mapping[str, str], base_env: Mapping[str, str]):
        self.path = Path(path)
        self.overrides = dict(overrides)
        self.base_env = base_env
        self.processes: List[ProcessSpec] = []
        self.declared: Dict[str, str] = {}

    # -- substitutions -------------------------------------------------------------------------
    def substitute(self, text, scope: _Scope, where: str) -> str:
        if isinstance(text, bool):
            return "true" if text else "false"
        if isinstance(text, (int, float)):
            return str(text)
        if not isinstance(text, str):
            raise ConfigError(f"{self.path}: {where}: expected a string, got {type(text).__name__}")

        def replace(match: re.Match) -> str:
            words = match.group(1).split()
            if not words:
                raise ConfigError(f"{self.path}: {where}: empty substitution $()")
            kind, rest = words[0], words[1:]
            if kind == "var" and len(rest) == 1:
                if rest[0] not in scope.configurations:
                    raise ConfigError(f"{self.path}: {where}: $(var {rest[0]}) is not a declared argument or let")
                return scope.configurations[rest[0]]
            if kind == "env" and len(rest) in (1, 2):
                value = scope.environment.get(rest[0], self.base_env.get(rest[0]))
                if value is None:
                    if len(rest) == 1:
                        raise ConfigError(f"{self.path}: {where}: environment variable {rest[0]} is not set")
                    value = rest[1]
                return value
            if kind == "dirname" and not rest:
                return str(self.path.resolve().parent)
            raise ConfigError(f"{self.path}: {where}: unsupported substitution $({match.group(1)}) "
                              "(supported: var, env, dirname)")

        if "$(" in text and SUBSTITUTION.search(text) is None:
            raise ConfigError(f"{self.path}: {where}: unbalanced or nested substitution in {text!r}")
        return SUBSTITUTION.sub(replace, text)

    def condition(self, entry: dict, scope: _Scope, where: str) -> bool:
        for key, wanted in (("if", True), ("unless", False)):
            if key in entry:
                value = self.substitute(entry[key], scope, f"{where} {key}").strip().lower()
                if value not in TRUE_WORDS + FALSE_WORDS:
                    raise ConfigError(f"{self.path}: {where}: {key}: {value!r} is not true/false/1/0")
                if (value in TRUE_WORDS) != wanted:
                    return False
        return True

    # -- actions -------------------------------------------------------------------------------
    def read(self) -> LaunchPlan:
        document = load_yaml_mapping(self.path, "launch file", empty_ok=True)
        if not isinstance(document.get("launch"), list):
            raise ConfigError(f"launch file {self.path}: expected a top-level 'launch:' list of actions")
        # As in `ros2 launch`, every name:=value given becomes a launch configuration, declared or not.
        scope = _Scope(dict(self.overrides), {})
        self.actions(document["launch"], scope, "launch")
        return LaunchPlan(
            path=self.path,
            processes=self.processes,
            arguments=dict(self.declared),
            undeclared=sorted(set(self.overrides) - set(self.declared)),
            sigterm_timeout=self._seconds(scope, "sigterm_timeout"),
            sigkill_timeout=self._seconds(scope, "sigkill_timeout"),
        )

    def _seconds(self, scope: _Scope, name: str) -> float:
        raw = scope.configurations.get(name, "5")
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"launch file {self.path}: {name} {raw!r} is not a number of seconds") from None
        if value < 0:
            raise ConfigError(f"launch file {self.path}: {name} must not be negative")
        return value

    def actions(self, entries, scope: _Scope, where: str) -> None:
        if not isinstance(entries, list):
            raise ConfigError(f"{self.path}: {where}: expected a list of actions")
        for i, entry in enumerate(entries):
            spot = f"{where}[{i}]"
            if not isinstance(entry, dict) or len(entry) != 1:
                raise ConfigError(f"{self.path}: {spot}: each action is a one-key map like 'executable: {{...}}'")
            (kind, body), = entry.items()
            if not isinstance(body, dict):
                raise ConfigError(f"{self.path}: {spot} {kind}: expected a map of attributes")
            handler = getattr(self, f"action_{kind}", None)
            if handler is None:
                raise ConfigError(f"{self.path}: {spot}: action {kind!r} is not supported by `collector launch` "
                                  "(supported: arg, let, set_env, executable, node, group)")
            if kind != "arg" and not self.condition(body, scope, f"{spot} {kind}"):
                continue
            handler(body, scope, f"{spot} {kind}")

    @staticmethod
    def _require(body: dict, key: str, where: str, path: Path):
        if key not in body:
            raise ConfigError(f"{path}: {where}: missing '{key}'")
        return body[key]

    def action_arg(self, body, scope, where):
        name = str(self._require(body, "name", where, self.path))
        if name in self.overrides:
            value = self.overrides[name]
        elif "default" in body:
            value = self.substitute(body["default"], scope, f"{where} default")
        else:
            raise ConfigError(f"{self.path}: required argument {name!r} was not given (pass {name}:=VALUE)")
        choices = body.get("choice")
        if choices is not None:
            allowed = [str(c.get("value")) if isinstance(c, dict) else str(c) for c in choices]
            if value not in allowed:
                raise ConfigError(f"{self.path}: argument {name}={value!r} is not one of {allowed}")
        scope.configurations[name] = value
        self.declared[name] = value

    def action_let(self, body, scope, where):
        name = str(self._require(body, "name", where, self.path))
        scope.configurations[name] = self.substitute(self._require(body, "value", where, self.path), scope, where)

    def action_set_env(self, body, scope, where):
        name = self.substitute(self._require(body, "name", where, self.path), scope, where)
        scope.environment[name] = self.substitute(self._require(body, "value", where, self.path), scope, where)

    def action_group(self, body, scope, where):
        scoped = self.substitute(body.get("scoped", True), scope, where).lower() in TRUE_WORDS
        inner = scope.child() if scoped else scope
        self.actions(body.get("children", []), inner, where)

    def _common(self, body, scope, where, name: str, argv: List[str]) -> ProcessSpec:
        env = dict(scope.environment)
        for j, item in enumerate(body.get("env", []) or []):
            if not isinstance(item, dict):
                raise ConfigError(f"{self.path}: {where} env[{j}]: expected {{name, value}}")
            key = self.substitute(self._require(item, "name", f"{where} env[{j}]", self.path), scope, where)
            env[key] = self.substitute(self._require(item, "value", f"{where} env[{j}]", self.path), scope, where)
        prefix = self.command_words(body.get("launch-prefix", ""), scope, where)
        respawn_delay = float(self.substitute(body.get("respawn_delay", 0.0), scope, where))
        if respawn_delay < 0:
            raise ConfigError(f"{self.path}: {where}: respawn_delay must not be negative")
        if any(p.name == name for p in self.processes):
            raise ConfigError(f"{self.path}: {where}: two processes are named {name!r}; give each a unique name")
        return ProcessSpec(
            name=name,
            argv=prefix + argv,
            env=env,
            cwd=self.substitute(body["cwd"], scope, where) if "cwd" in body else None,
            shell=self.substitute(body.get("shell", False), scope, where).lower() in TRUE_WORDS,
            respawn=self.substitute(body.get("respawn", False), scope, where).lower() in TRUE_WORDS,
            respawn_delay=respawn_delay,
        )

    def _check_keys(self, body, allowed, where):
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise ConfigError(f"{self.path}: {where}: unknown attribute(s) {', '.join(unknown)}")

    def command_words(self, text, scope: _Scope, where: str) -> List[str]:
        """Split a cmd into words, then substitute inside each word (as `launch` does: a
        substitution never splits into several arguments, whatever its value holds)."""
        if not isinstance(text, str):
            raise ConfigError(f"{self.path}: {where}: expected a command string")
        return [self.substitute(word, scope, where) for word in split_command(text, f"{self.path}: {where}")]

    def action_executable(self, body, scope, where):
        self._check_keys(body, EXECUTABLE_KEYS, where)
        argv = self.command_words(self._require(body, "cmd", where, self.path), scope, f"{where} cmd")
        if not argv:
            raise ConfigError(f"{self.path}: {where}: empty cmd")
        name = self.substitute(body.get("name", Path(argv[0]).name), scope, where)
        self.processes.append(self._common(body, scope, where, name, argv))

    def action_node(self, body, scope, where):
        self._check_keys(body, NODE_KEYS, where)
        pkg = self.substitute(self._require(body, "pkg", where, self.path), scope, where)
        executable = self.substitute(self._require(body, "exec", where, self.path), scope, where)
        argv = [resolve_ros_executable(pkg, executable, f"{self.path}: {where}")]
        argv += self.command_words(body.get("args", ""), scope, where)
        ros_args: List[str] = []
        node_name = self.substitute(body["name"], scope, where) if "name" in body else ""
        if node_name:
            ros_args += ["-r", f"__node:={node_name}"]
        if "namespace" in body:
            ros_args += ["-r", f"__ns:={self.substitute(body['namespace'], scope, where)}"]
        for item in body.get("remap", []) or []:
            ros_args += ["-r", f"{self.substitute(item['from'], scope, where)}:={self.substitute(item['to'], scope, where)}"]
        for item in body.get("param", []) or []:
            ros_args += ["-p", f"{item['name']}:={self.substitute(item['value'], scope, where)}"]
        ros_args += self.command_words(body.get("ros_args", ""), scope, where)
        if ros_args:
            argv += ["--ros-args", *ros_args]
        self.processes.append(self._common(body, scope, where, node_name or executable, argv))


def split_command(text: str, where: str) -> List[str]:
    """Words of a command line: split at whitespace outside quotes and outside $(...)."""
    words: List[str] = []
    word: List[str] = []
    quote = ""
    depth = 0
    started = False
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == quote:
                quote = ""
            else:
                word.append(ch)
        elif ch in "'\"" and depth == 0:
            quote, started = ch, True
        elif text.startswith("$(", i):
            depth += 1
            word.append("$(")
            started = True
            i += 2
            continue
        elif ch == ")" and depth:
            depth -= 1
            word.append(ch)
        elif ch.isspace() and depth == 0:
            if started:
                words.append("".join(word))
                word, started = [], False
        else:
            word.append(ch)
            started = True
        i += 1
    if quote or depth:
        raise ConfigError(f"{where}: unbalanced {'quote' if quote else '$('} in {text!r}")
    if started:
        words.append("".join(word))
    return words


def resolve_ros_executable(pkg: str, executable: str, where: str) -> str:
    """lib/<pkg>/<exec> under the package's ament prefix: what `ros2 run` executes."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_prefix
    except ImportError:
        raise ConfigError(f"{where}: node {pkg}/{executable} needs a sourced ROS 2 install "
                          "(ament_index_python is not importable); use an 'executable' action instead") from None
    try:
        prefix = get_package_prefix(pkg)
    except (PackageNotFoundError, LookupError, ValueError):
        raise ConfigError(f"{where}: ROS 2 package {pkg!r} not found (is its workspace sourced?)") from None
    path = Path(prefix) / "lib" / pkg / executable
    if not os.access(path, os.X_OK):
        raise ConfigError(f"{where}: package {pkg!r} has no executable {executable!r} (looked for {path})")
    return str(path)


def parse_launch_arguments(items: List[str]) -> Dict[str, str]:
    """`name:=value` words from the command line, as `ros2 launch` takes them."""
    out = {}
    for item in items:
        name, sep, value = item.partition(":=")
        if not sep or not name:
            raise ConfigError(f"launch argument {item!r}: expected NAME:=VALUE")
        out[name] = value
    return out


def read_launch_file(path, arguments: Optional[Mapping[str, str]] = None,
                     base_env: Optional[Mapping[str, str]] = None) -> LaunchPlan:
    return LaunchFileReader(Path(path), arguments or {}, os.environ if base_env is None else base_env).read()
