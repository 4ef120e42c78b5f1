"""Where the project's shipped resources (robots/, configs/, launch/) live.

In a source checkout (the README's editable install) they sit beside the package;
a regular install puts them under <prefix>/share/collector. COLLECTOR_HOME overrides both.
"""
import os
import sys
from pathlib import Path


def resource_root() -> Path:
    override = os.environ.get("COLLECTOR_HOME")
    if override:
        return Path(override)
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "robots").is_dir():
        return checkout
    return Path(sys.prefix) / "share" / "collector"


def robots_dir() -> Path:
    return resource_root() / "robots"


def configs_dir() -> Path:
    return resource_root() / "configs"


def launch_dir() -> Path:
    return resource_root() / "launch"
