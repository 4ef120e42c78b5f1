"""The process environment ROS 2 nodes of a collector session run in.

DDS reads its configuration from environment variables when the first participant is created,
so these helpers run before `rclpy.init()` (and are passed to every child process a launch starts):

- `ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`: a session's traffic stays on this machine.
- `ROS_DOMAIN_ID`: left as the user set it; tests and benchmarks pick one per run from their pid
  so runs in parallel never see each other.
- `FASTDDS_DEFAULT_PROFILES_FILE`: the shipped profile with a 16 MB shared-memory segment, which
  camera images need (see fastdds_profile.xml). A user's own profile file wins.

Nothing here hard-codes where rclpy lives: the PyPI wheels and a sourced system ROS 2 both work.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Mapping, Optional

from collector.errors import DeviceError

FASTDDS_PROFILE = Path(__file__).with_name("fastdds_profile.xml")
# Domain IDs 1..101 are valid on every platform and leave 0 (the ROS default) to the user's robot.
MIN_TEST_DOMAIN, MAX_TEST_DOMAIN = 1, 101


def domain_id_for_pid(pid: Optional[int] = None) -> int:
    """A domain for one test or benchmark run, derived from its pid so concurrent runs differ."""
    pid = os.getpid() if pid is None else pid
    return MIN_TEST_DOMAIN + pid % (MAX_TEST_DOMAIN - MIN_TEST_DOMAIN + 1)


def ros_environment(base: Optional[Mapping[str, str]] = None, domain_id: Optional[int] = None,
                    use_profile: bool = True) -> Dict[str, str]:
    """A copy of `base` (default: os.environ) with the session's DDS settings filled in.

    Values the user set explicitly are kept, except ROS_DOMAIN_ID when `domain_id` is given.
    """
    env = dict(os.environ if base is None else base)
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    if domain_id is not None:
        if not 0 <= int(domain_id) <= 232:
            raise DeviceError(f"ROS_DOMAIN_ID {domain_id} is outside 0..232")
        env["ROS_DOMAIN_ID"] = str(int(domain_id))
    if use_profile and not env.get("FASTDDS_DEFAULT_PROFILES_FILE"):
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(FASTDDS_PROFILE)
    # The Python logging of rclpy goes to stderr line by line; buffered output would hide a
    # dying node's last words from the launch runner.
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def apply_ros_environment(domain_id: Optional[int] = None, use_profile: bool = True) -> None:
    """Apply `ros_environment` to this process; call before rclpy.init()."""
    wanted = ros_environment(domain_id=domain_id, use_profile=use_profile)
    for key, value in wanted.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


def import_rclpy():
    """Import rclpy or explain how to get it (the `ros` extra, or a sourced ROS 2 install)."""
    try:
        import rclpy  # noqa: F401  (imported for the caller)
    except ImportError as exc:
        raise DeviceError(
            "rclpy is not importable: install the ROS 2 extra (pip install -e '.[ros]') "
            f"or source a ROS 2 setup.bash first ({exc})"
        ) from exc
    return rclpy
