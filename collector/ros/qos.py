"""Quality-of-service per stream kind, in one place so publishers and subscribers always match.

| kind        | reliability  | durability      | history     | why |
|-------------|--------------|-----------------|-------------|-----|
| state       | reliable     | volatile        | keep last 5000 | joint states: every sample is training data; 5000 is 10 s at 500 Hz, room for a recorder that stalls |
| latest      | best effort  | volatile        | keep last 1    | what a controller reads (teleop's joint states and frames): only the newest matters, a backlog would only add delay |
| camera      | best effort* | volatile        | keep last 30   | the ROS sensor-data convention: a late frame is worth less than the next one |
| sensor      | reliable     | volatile        | keep last 100  | illuminance, poses: low rate, cheap to deliver reliably |
| command     | reliable     | volatile        | keep last 100  | a lost setpoint is a jerk on the robot, and a lost sample a hole in the recorded actions; 1 s at 100 Hz rides out a busy recorder |
| control     | reliable     | transient local | keep last 1    | status and conditions: a late joiner sees the current state |

The recorder's camera readers keep 3 s of frames instead of 30: Python may stall for a moment
(a disk flush, a busy machine) while DDS keeps receiving, and a reader history that overflows
loses frames even under reliable QoS. Memory is only used while such a backlog exists.

* A session can choose reliable camera delivery (`camera_reliability: reliable` in the robot
  YAML's ros section, or `--camera-qos reliable`): then, with the shipped Fast DDS profile, every
  frame arrives and the recorder's count equals the publisher's. Publishers and subscribers of a
  session must use the same choice (a reliable subscriber never matches a best-effort publisher).
"""
from __future__ import annotations

from collector.errors import ConfigError

RELIABILITIES = ("reliable", "best_effort")
KINDS = ("state", "latest", "camera", "sensor", "command", "control")

_DEPTH = {"state": 5000, "latest": 1, "camera": 30, "sensor": 100, "command": 100, "control": 1}


def qos_for(kind: str, reliability: str = "", depth: int = 0):
    """The QoSProfile of a stream kind; `reliability` and `depth` override the kind's defaults."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    if kind not in _DEPTH:
        raise ConfigError(f"QoS: unknown stream kind {kind!r} (expected one of {KINDS})")
    reliability = reliability or ("best_effort" if kind in ("camera", "latest") else "reliable")
    if reliability not in RELIABILITIES:
        raise ConfigError(f"QoS: reliability {reliability!r} not in {RELIABILITIES}")
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=int(depth) if depth > 0 else _DEPTH[kind],
        reliability=ReliabilityPolicy.RELIABLE if reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if kind == "control" else DurabilityPolicy.VOLATILE,
    )
