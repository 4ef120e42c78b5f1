"""Reading the project's YAML files (robots, conditions) with errors that name the file."""
from pathlib import Path

import yaml

from collector.errors import ConfigError


def load_yaml_mapping(path: Path) -> dict:
    """The top-level mapping of a YAML file; ConfigError naming the file if it is unreadable or not a mapping."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return raw
