"""An episode's conditions (the `conditions` JSON attribute) by name, as the dataset tools and replay read them."""
from __future__ import annotations

from typing import Dict


def condition_value(conditions: Dict, name: str):
    """A condition by name; "weight" is also found under DESIGN.md's plural "weights"."""
    value = conditions.get(name)
    if value is None and name == "weight":
        value = conditions.get("weights")
    return value


def condition_label(conditions: Dict, name: str) -> str:
    """The preset name of a condition, whether it is stored as a name or as {"preset": ..., params}."""
    value = condition_value(conditions, name)
    if isinstance(value, dict):
        return str(value.get("name") or value.get("preset") or "")
    return "" if value is None else str(value)
