"""Policies by name, for the command line and for checkpoints (which store the name, not the class)."""
from __future__ import annotations

from typing import Dict, Type

from collector.errors import ConfigError
from collector.policy.act import ACTPolicy
from collector.policy.base import Policy, PolicySpec
from collector.policy.baseline import BaselinePolicy

POLICIES: Dict[str, Type[Policy]] = {cls.name: cls for cls in (ACTPolicy, BaselinePolicy)}


def build_policy(name: str, spec: PolicySpec, hyperparameters: dict) -> Policy:
    if name not in POLICIES:
        raise ConfigError(f"unknown policy {name!r} (known: {', '.join(POLICIES)})")
    try:
        return POLICIES[name](spec, **hyperparameters)
    except TypeError as exc:
        raise ConfigError(f"policy {name!r}: {exc}") from None
