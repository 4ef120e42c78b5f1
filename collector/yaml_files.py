"""Reading the project's YAML files (plans, robots, conditions, teleop and ROS configs, launch files)
with errors that name the file.

Every YAML file the project reads goes through here, so each gets the same rules: the file must be
UTF-8 text (binary garbage is named as such, not a UnicodeDecodeError), a directory or an unreadable
file is a one-line error, and a mapping that repeats a key is refused with both lines named (plain
PyYAML keeps the last value silently, so a plan listing `lighting:` twice would lose the first).
"""
from pathlib import Path

import yaml
from yaml.constructor import ConstructorError

from collector.errors import ConfigError

_MERGE_TAG = "tag:yaml.org,2002:merge"


class UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a mapping holding the same key twice (merge keys `<<` may still be overridden)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            first_seen = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    earlier = first_seen.setdefault(key, key_node.start_mark)
                except TypeError:
                    continue  # an unhashable key: SafeLoader's own error names it
                if earlier is not key_node.start_mark:
                    raise ConstructorError(
                        None, None, f"duplicate key {key!r} on line {key_node.start_mark.line + 1} "
                                    f"(first on line {earlier.line + 1})", key_node.start_mark)
        return super().construct_mapping(node, deep)


def read_yaml_text(path: Path, what: str = "") -> str:
    """The text of a YAML file; ConfigError naming it if it is unreadable, a directory or not UTF-8."""
    path = Path(path)
    name = _name(path, what)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read: {exc.strerror or exc}") from None
    return yaml_text(data, name)


def yaml_text(data: bytes, name: str) -> str:
    """`data` decoded as UTF-8; ConfigError naming `name` for binary garbage or another encoding."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{name}: not a YAML text file (byte {exc.start} is not UTF-8: "
                          f"{data[exc.start:exc.start + 1]!r})") from None


def parse_yaml(text: str, name: str):
    """The document in `text` (None when empty); ConfigError "<name>:<line>: not valid YAML: <problem>"."""
    try:
        return yaml.load(text, Loader=UniqueKeyLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(yaml_error_message(exc, name)) from None
    except RecursionError:
        raise ConfigError(f"{name}: not valid YAML: nested too deeply") from None


def yaml_error_message(exc: yaml.YAMLError, name: str) -> str:
    mark = getattr(exc, "problem_mark", None)
    where = f"{name}:{mark.line + 1}" if mark is not None else name
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"{where}: not valid YAML: {problem}"


def load_yaml_mapping(path: Path, what: str = "", empty_ok: bool = False) -> dict:
    """The top-level mapping of a YAML file; ConfigError naming the file (after `what`, e.g.
    "launch file") if it is unreadable or not a mapping. `empty_ok`: an empty file reads as {}."""
    path = Path(path)
    name = _name(path, what)
    raw = parse_yaml(read_yaml_text(path, what), name)
    if raw is None and empty_ok:
        return {}
    if not isinstance(raw, dict):
        kind = "an empty file" if raw is None else f"a {type(raw).__name__}"
        raise ConfigError(f"{name}: expected a mapping at the top level, found {kind}")
    return raw


def _name(path: Path, what: str) -> str:
    return f"{what} {path}" if what else str(path)
