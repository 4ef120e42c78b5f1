"""Reading the project's YAML files (robots, conditions, ROS configs, launch files) with errors that
name the file."""
from pathlib import Path

import yaml

from collector.errors import ConfigError


def load_yaml_mapping(path: Path, what: str = "", empty_ok: bool = False) -> dict:
    """The top-level mapping of a YAML file; ConfigError naming the file (after `what`, e.g.
    "launch file") if it is unreadable or not a mapping. `empty_ok`: an empty file reads as {}."""
    path = Path(path)
    name = f"{what} {path}" if what else str(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name}: not valid YAML: {exc}") from None
    if raw is None and empty_ok:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{name}: expected a mapping at the top level")
    return raw
