"""What a reviewer chooses from: reject reasons and each task's skills (configs/review.yaml)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from collector.errors import ConfigError
from collector.paths import configs_dir
from collector.yaml_files import load_yaml_mapping


@dataclass(frozen=True)
class ReviewConfig:
    reasons: List[str]
    skills: List[str]


def review_config(task: str = "", path: Optional[Path] = None) -> ReviewConfig:
    """The reasons and the skills of `task` (the file's `default` skills for a task it does not list)."""
    path = Path(path) if path else configs_dir() / "review.yaml"
    data = load_yaml_mapping(path, "review config")
    reasons = _names(data.get("reasons"), path, "reasons")
    skills_by_task = data.get("skills") or {}
    if not isinstance(skills_by_task, dict):
        raise ConfigError(f"{path}: skills must map each task to a list of skill names")
    skills = skills_by_task.get(task, skills_by_task.get("default"))
    return ReviewConfig(reasons=reasons, skills=_names(skills, path, f"skills.{task or 'default'}"))


def _names(value, path: Path, field: str) -> List[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f"{path}: {field} must be a list of names")
    return [v.strip() for v in value]
