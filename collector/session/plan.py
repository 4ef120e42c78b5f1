"""Collection plans: the YAML file that says what a session must record.

A plan names the robot and backend, the tasks (with the instruction shown to the operator), the
lighting and weight presets to vary, how many good takes each (task, lighting, weight) cell needs,
the per-episode time limit and how the scene is reset between takes.

Loading validates everything before anything starts: every problem is reported as a ConfigError
that names the file, the line, the key and what is wrong, e.g.
    configs/plans/x.yaml:7: lighting[1]: unknown lighting preset 'dimm' (known: bright, dim, warm)
Names (tasks, presets, robots) are checked against a `KnownNames` provider, by default the
simulation package's registries, so a plan can never refer to something the session cannot apply.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import yaml

from collector.errors import ConfigError
from collector.yaml_files import UniqueKeyLoader, parse_yaml, yaml_text

BACKENDS = ("sim", "ros2")
OPERATORS = ("scripted", "keyboard", "gamepad", "vr", "zmq")
ORDERS = ("sequential", "shuffled", "balanced")
RESET_MODES = ("auto", "manual")
OUTCOME_SOURCES = ("auto", "operator")
FOCUS_MODES = ("none", "weak_cells")
# What counts toward a cell's takes: good (kept, successful, QA passed), or accepted (good and accepted by
# the reviewers, collector/review: a cell stays open until its takes are reviewed and accepted).
COUNT_MODES = ("good", "accepted")

TOP_LEVEL_KEYS = (
    "name", "description", "robot", "backend", "operator", "tasks", "lighting", "weights",
    "takes_per_cell", "episode_time_limit_s", "order", "seed", "reset", "outcome",
    "max_attempts_per_cell", "scene", "focus", "count", "publish", "catalog",
)
TASK_KEYS = ("name", "instruction", "episode_time_limit_s")
RESET_KEYS = ("mode", "settle_s")
FOCUS_KEYS = ("by", "extra_takes")
PUBLISH_KEYS = ("to", "keep_local")


@dataclass(frozen=True)
class TaskSpec:
    name: str
    instruction: str
    episode_time_limit_s: Optional[float] = None  # overrides the plan-wide limit for this task
    # True when the plan gave no instruction: the simulator's per-episode one (naming the object and
    # target it placed) is shown instead, falling back to this generic text.
    instruction_is_default: bool = False

    def instruction_for(self, conditions: Dict) -> str:
        if self.instruction_is_default and isinstance(conditions.get("instruction"), str) and conditions["instruction"]:
            return conditions["instruction"]
        return self.instruction


@dataclass(frozen=True)
class PublishSpec:
    """`publish: {to: URL, keep_local: true}`: each kept take is copied to shared storage (collector/fleet)."""
    to: str
    keep_local: bool = True


@dataclass(frozen=True)
class ResetSpec:
    # auto: the backend puts the scene back (simulation); manual: the operator resets it and confirms.
    mode: str = "auto"
    settle_s: float = 0.0


@dataclass(frozen=True)
class FocusSpec:
    """Where to aim collection. weak_cells: the cells where the latest policy evaluation in the
    dataset's catalogue succeeded least go first, and get up to `extra_takes` more takes the more the
    policy failed there (collector.session.cells, collector.session.coverage)."""

    by: str = "none"
    extra_takes: int = 0

    @property
    def weak_cells(self) -> bool:
        return self.by == "weak_cells"


@dataclass(frozen=True)
class Plan:
    name: str
    robot: str
    backend: str
    tasks: Tuple[TaskSpec, ...]
    lighting: Tuple[str, ...]
    weights: Tuple[str, ...]
    takes_per_cell: int
    episode_time_limit_s: float
    operator: str = "scripted"
    order: str = "balanced"
    seed: int = 0
    reset: ResetSpec = ResetSpec()
    outcome: str = "auto"  # auto: the sim's success check decides; operator: asked after each take
    max_attempts_per_cell: int = 0  # 0 means 3 x takes_per_cell (see attempts_cap)
    scene: Optional[str] = None
    focus: FocusSpec = FocusSpec()
    count: str = "good"  # good: kept successful takes that passed QA; accepted: and the reviewers accepted them
    description: str = ""
    publish: Optional[PublishSpec] = None
    catalog: Optional[str] = None  # a PostgreSQL catalogue URL (docs/fleet.md); None: the folder's catalog.sqlite
    source: Optional[Path] = None
    text: str = ""  # the YAML as loaded, snapshotted into the dataset so a session can be audited

    @property
    def attempts_cap(self) -> int:
        """Most takes a cell gets before the session gives up on it (a task the operator cannot do)."""
        return self.max_attempts_per_cell or 3 * self.takes_per_cell

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()[:16]

    def task(self, name: str) -> TaskSpec:
        for spec in self.tasks:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def time_limit_for(self, task: str) -> float:
        return self.task(task).episode_time_limit_s or self.episode_time_limit_s

    @property
    def total_needed(self) -> int:
        return len(self.tasks) * len(self.lighting) * len(self.weights) * self.takes_per_cell


@dataclass
class KnownNames:
    """What a plan may name. Each entry maps a name to a short description (may be empty)."""

    tasks: Dict[str, str] = field(default_factory=dict)
    lighting: Dict[str, str] = field(default_factory=dict)
    weights: Dict[str, str] = field(default_factory=dict)
    robots: Dict[str, str] = field(default_factory=dict)
    scenes: Optional[Dict[str, str]] = None  # None: scenes are not checked


def known_names_from_project() -> KnownNames:
    """The names the simulation package and the shipped configs define (tasks, presets, themes, robots)."""
    from collector.paths import robots_dir
    from collector.sim import conditions, tasks

    def described(presets) -> Dict[str, str]:
        return {str(name): _describe(value) for name, value in presets.items()}

    return KnownNames(
        tasks={name: getattr(tasks.TASKS.get(name), "instruction", "") or "" for name in tasks.list_tasks()},
        lighting=described(conditions.lighting_presets()),
        weights=described(conditions.weight_presets()),
        robots={p.parent.name: "" for p in sorted(robots_dir().glob("*/robot.yaml"))},
        scenes=described(conditions.themes()),
    )


def _describe(value) -> str:
    for attr in ("description", "instruction", "summary"):
        text = getattr(value, attr, None) or (value.get(attr) if isinstance(value, dict) else None)
        if isinstance(text, str):
            return text
    return ""


PathPart = Union[str, int]


class _Reader:
    """Reads typed values out of the parsed YAML and reports errors with file, line and key."""

    def __init__(self, source: str, root_node: Optional[yaml.Node]):
        self.source = source
        self.root_node = root_node

    def fail(self, path: Sequence[PathPart], problem: str) -> ConfigError:
        line = self._line_of(path)
        where = f"{self.source}:{line}" if line else self.source
        key = _format_path(path) or "<top level>"
        return ConfigError(f"{where}: {key}: {problem}")

    def _line_of(self, path: Sequence[PathPart]) -> Optional[int]:
        node = self.root_node
        found = None
        for part in path:
            if isinstance(node, yaml.MappingNode) and isinstance(part, str):
                match = next(((k, v) for k, v in node.value if k.value == part), None)
                if match is None:
                    break
                found, node = match[0].start_mark.line + 1, match[1]
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
                node = node.value[part]
                found = node.start_mark.line + 1
            else:
                break
        if found is None and self.root_node is not None:
            return None
        return found

    def mapping(self, value, path, allowed: Sequence[str]) -> dict:
        if not isinstance(value, dict):
            raise self.fail(path, f"must be a mapping, got {_kind(value)}")
        for key in value:
            if key not in allowed:
                raise self.fail([*path, str(key)], f"unknown key (expected one of: {', '.join(allowed)})")
        return value

    def string(self, value, path) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(path, f"must be a non-empty string, got {_kind(value)}")
        return value.strip()

    def choice(self, value, path, choices: Sequence[str]) -> str:
        text = self.string(value, path)
        if text not in choices:
            raise self.fail(path, f"{text!r} is not one of: {', '.join(choices)}")
        return text

    def integer(self, value, path, minimum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(path, f"must be an integer, got {_kind(value)}")
        if value < minimum:
            raise self.fail(path, f"must be at least {minimum}, got {value}")
        return value

    def number(self, value, path, minimum: float, exclusive: bool) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(path, f"must be a number, got {_kind(value)}")
        number = float(value)
        too_small = number <= minimum if exclusive else number < minimum
        if not math.isfinite(number) or too_small:
            bound = f"greater than {minimum:g}" if exclusive else f"at least {minimum:g}"
            raise self.fail(path, f"must be a finite number {bound}, got {value!r}")
        return number

    def names(self, value, path, known: Dict[str, str], what: str) -> Tuple[str, ...]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value:
            raise self.fail(path, f"must be a non-empty list of {what} names, got {_kind(value)}")
        out: List[str] = []
        for index, item in enumerate(value):
            name = self.string(item, [*path, index])
            self.known(name, [*path, index], known, what)
            if name in out:
                raise self.fail([*path, index], f"{what} {name!r} is listed twice")
            out.append(name)
        return tuple(out)

    def known(self, name: str, path, known: Dict[str, str], what: str) -> None:
        if name not in known:
            listing = ", ".join(sorted(known)) or "none are defined"
            raise self.fail(path, f"unknown {what} {name!r} (known: {listing})")


def _format_path(path: Sequence[PathPart]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _kind(value) -> str:
    if value is None:
        return "nothing"
    return f"{type(value).__name__} {value!r}" if not isinstance(value, (dict, list)) else type(value).__name__


def parse_plan(text: str, source: str = "<plan>", known: Optional[KnownNames] = None) -> Plan:
    """Parse and validate plan YAML text. `known` defaults to the project's registries."""
    # The shared loader refuses duplicate keys ("duplicate key 'lighting' on line 9 (first on line 4)").
    data = parse_yaml(text, source)
    root_node = yaml.compose(text, Loader=UniqueKeyLoader)  # for line numbers; parses, as parse_yaml did
    reader = _Reader(source, root_node)
    if known is None:
        known = known_names_from_project()
    data = reader.mapping(data if data is not None else None, [], TOP_LEVEL_KEYS)

    def required(key):
        if key not in data:
            raise reader.fail([key], "is required but missing")
        return data[key]

    robot = reader.string(required("robot"), ["robot"])
    if robot.endswith((".yaml", ".yml")) or "/" in robot:
        # The user's own robot description, relative to the plan file.
        robot_path = Path(robot).expanduser()
        if not robot_path.is_absolute() and not source.startswith("<"):
            robot_path = Path(source).parent / robot_path
        if not robot_path.exists():
            raise reader.fail(["robot"], f"robot description {str(robot_path)!r} does not exist")
        robot = str(robot_path.resolve())
    else:
        reader.known(robot, ["robot"], known.robots, "robot")
    backend = reader.choice(data.get("backend", "sim"), ["backend"], BACKENDS)
    operator = reader.choice(data.get("operator", "scripted"), ["operator"], OPERATORS)
    if operator == "scripted" and backend != "sim":
        raise reader.fail(["operator"], "the scripted operator needs the sim backend (it reads the simulated scene)")

    tasks_value = required("tasks")
    if not isinstance(tasks_value, list) or not tasks_value:
        raise reader.fail(["tasks"], f"must be a non-empty list of tasks, got {_kind(tasks_value)}")
    tasks: List[TaskSpec] = []
    for index, item in enumerate(tasks_value):
        path = ["tasks", index]
        if isinstance(item, str):
            item = {"name": item}
        entry = reader.mapping(item, path, TASK_KEYS)
        if "name" not in entry:
            raise reader.fail(path, "a task needs a 'name'")
        name = reader.string(entry["name"], [*path, "name"])
        reader.known(name, [*path, "name"], known.tasks, "task")
        if any(t.name == name for t in tasks):
            raise reader.fail([*path, "name"], f"task {name!r} is listed twice")
        instruction = entry.get("instruction") or known.tasks.get(name) or name.replace("_", " ")
        instruction = reader.string(instruction, [*path, "instruction"])
        limit = entry.get("episode_time_limit_s")
        if limit is not None:
            limit = reader.number(limit, [*path, "episode_time_limit_s"], 0.0, exclusive=True)
        tasks.append(TaskSpec(name, instruction, limit, instruction_is_default=not entry.get("instruction")))

    lighting = reader.names(required("lighting"), ["lighting"], known.lighting, "lighting preset")
    weights = reader.names(required("weights"), ["weights"], known.weights, "weight preset")
    takes = reader.integer(data.get("takes_per_cell", 1), ["takes_per_cell"], 1)
    time_limit = reader.number(data.get("episode_time_limit_s", 30.0), ["episode_time_limit_s"], 0.0, True)
    order = reader.choice(data.get("order", "balanced"), ["order"], ORDERS)
    seed = reader.integer(data.get("seed", 0), ["seed"], 0)
    max_attempts = reader.integer(data.get("max_attempts_per_cell", 0), ["max_attempts_per_cell"], 0)
    if max_attempts and max_attempts < takes:
        raise reader.fail(["max_attempts_per_cell"], f"must be at least takes_per_cell ({takes}), got {max_attempts}")

    reset_value = data.get("reset", "auto" if backend == "sim" else "manual")
    if isinstance(reset_value, str):
        reset_value = {"mode": reset_value}
    reset_map = reader.mapping(reset_value, ["reset"], RESET_KEYS)
    reset_mode = reader.choice(reset_map.get("mode", "auto"), ["reset", "mode"], RESET_MODES)
    if reset_mode == "auto" and backend != "sim":
        raise reader.fail(["reset", "mode"], "'auto' reset needs the sim backend; on hardware use 'manual'")
    settle = reader.number(reset_map.get("settle_s", 0.0), ["reset", "settle_s"], 0.0, exclusive=False)

    outcome = reader.choice(data.get("outcome", "auto" if backend == "sim" else "operator"), ["outcome"],
                            OUTCOME_SOURCES)
    if outcome == "auto" and backend != "sim":
        raise reader.fail(["outcome"], "'auto' outcome needs the sim's success check; on hardware use 'operator'")

    focus = _focus(reader, data.get("focus", "none"))
    publish = _publish(reader, data["publish"]) if data.get("publish") is not None else None
    count = reader.choice(data.get("count", "good"), ["count"], COUNT_MODES)
    catalog = _catalog_url(reader, data["catalog"]) if data.get("catalog") is not None else None

    scene = data.get("scene")
    if scene is not None:
        scene = reader.string(scene, ["scene"])
        if known.scenes is not None:
            reader.known(scene, ["scene"], known.scenes, "scene theme")

    default_name = Path(source).stem if source and not source.startswith("<") else "plan"
    name = reader.string(data.get("name", default_name), ["name"])
    if not all(c.isalnum() or c in "-_." for c in name):
        raise reader.fail(["name"], f"{name!r} may only contain letters, digits, '-', '_' and '.'")
    description = data.get("description") or ""
    if not isinstance(description, str):
        raise reader.fail(["description"], f"must be text, got {_kind(description)}")

    return Plan(
        name=name, robot=robot, backend=backend, tasks=tuple(tasks), lighting=lighting, weights=weights,
        takes_per_cell=takes, episode_time_limit_s=time_limit, operator=operator, order=order, seed=seed,
        reset=ResetSpec(reset_mode, settle), outcome=outcome, max_attempts_per_cell=max_attempts,
        scene=scene, focus=focus, count=count, description=description.strip(), publish=publish,
        catalog=catalog,
        source=Path(source) if not source.startswith("<") else None, text=text,
    )


def _catalog_url(reader: _Reader, value) -> str:
    from collector.session.catalog_engine import is_catalog_url

    url = reader.string(value, ["catalog"])
    if not is_catalog_url(url):
        raise reader.fail(["catalog"], f"{url!r} is not a catalogue URL (expected postgresql://USER@HOST/DATABASE)")
    return url


def _publish(reader: _Reader, value) -> PublishSpec:
    mapping = reader.mapping({"to": value} if isinstance(value, str) else value, ["publish"], PUBLISH_KEYS)
    if "to" not in mapping:
        raise reader.fail(["publish"], "needs 'to': a folder or a storage URL (file://, s3://, gs://)")
    keep_local = mapping.get("keep_local", True)
    if not isinstance(keep_local, bool):
        raise reader.fail(["publish", "keep_local"], f"must be true or false, got {_kind(keep_local)}")
    return PublishSpec(reader.string(mapping["to"], ["publish", "to"]), keep_local)


def _focus(reader: _Reader, value) -> FocusSpec:
    """`focus: weak_cells` or `focus: {by: weak_cells, extra_takes: 2}` (not `on:`, which YAML reads as true)."""
    if isinstance(value, str):
        return FocusSpec(reader.choice(value, ["focus"], FOCUS_MODES))
    mapping = reader.mapping(value, ["focus"], FOCUS_KEYS)
    by = reader.choice(mapping.get("by", "weak_cells"), ["focus", "by"], FOCUS_MODES)
    extra = reader.integer(mapping.get("extra_takes", 0), ["focus", "extra_takes"], 0)
    if extra and by != "weak_cells":
        raise reader.fail(["focus", "extra_takes"], "needs `by: weak_cells` (extra takes go to the weak cells)")
    return FocusSpec(by, extra)


def load_plan(path: Union[str, Path], known: Optional[KnownNames] = None) -> Plan:
    """Read and validate a plan file; a bare name is looked up in the shipped configs/plans/."""
    path = resolve_plan_path(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read plan: {exc.strerror or exc}") from None
    return parse_plan(yaml_text(data, str(path)), str(path), known)


def resolve_plan_path(path: Union[str, Path]) -> Path:
    candidate = Path(path)
    if candidate.exists() or candidate.suffix or "/" in str(path):
        return candidate
    from collector.paths import configs_dir

    shipped = configs_dir() / "plans" / f"{path}.yaml"
    if shipped.exists():
        return shipped
    raise ConfigError(f"{path}: no such plan file (and no configs/plans/{path}.yaml)")
