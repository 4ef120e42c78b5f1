"""Who commands the robot, over DDS: the teleop loop's `control` stream as a topic the recorder records.

In the in-process loop the `control` stream goes straight into the episode (teleop/recording.py).
Over ROS 2 the loop and the recorder are separate processes, so the teleop node publishes the
source in control at every tick on the config's `control_topic` (std_msgs/String JSON: collector is
not an ament package, so it ships no message types), stamped with the tick's robot time rounded
as a message header rounds it, so it equals the stamp of the command it accompanies to the bit
(collector/dataset/control.py labels each row by the control sample of its command's stamp):

    {"t": 12.34, "source": "policy", "sources": {"operator": 0, "policy": 1}}

`sources` (the arbiter's codes) rides in every message, and a message with `sources` alone is sent
when the publisher starts, so a recorder can declare the stream at the next episode start.
Reliable and transient-local: a recorder started after the teleop still learns the codes.
"""
from __future__ import annotations

import json
import math
from typing import Dict, Mapping, Optional, Tuple

from collector.errors import DataError
from collector.recorder.vocabulary import CONTROL
from collector.ros.conversions import seconds_from_stamp, stamp_from_seconds
from collector.ros.runtime import wait_for_subscribers

# Reliable history: 5 s of ticks at 100 Hz, so a recorder that falls behind for a while loses none
# (it also takes every waiting message per wake-up: runtime.subscribe_batched).
CONTROL_QOS_DEPTH = 500


def control_qos():
    from collector.ros.qos import qos_for

    return qos_for("control", depth=CONTROL_QOS_DEPTH)


def control_message(sources: Mapping[str, int], t: Optional[float] = None, source: Optional[str] = None) -> str:
    body: dict = {"sources": {str(k): int(v) for k, v in sources.items()}}
    if t is not None:
        body.update(t=float(t), source=str(source))
    return json.dumps(body)


def parse_control_message(text: str) -> Tuple[Optional[float], Optional[str], Dict[str, int]]:
    """(t, source, sources) of a control message; t and source are None in an announcement."""
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise DataError(f"control message is not JSON ({exc})") from None
    sources = body.get("sources") if isinstance(body, dict) else None
    if not isinstance(sources, dict) or not sources or \
            not all(isinstance(k, str) and isinstance(v, int) and 0 <= v < 256 for k, v in sources.items()):
        raise DataError(f"control message needs sources {{name: code 0..255}}, got {text[:120]!r}")
    if "t" not in body:
        return None, None, dict(sources)
    t, source = body.get("t"), body.get("source")
    if not isinstance(t, (int, float)) or isinstance(t, bool) or not math.isfinite(t):
        raise DataError(f"control message: t must be a finite number of seconds, got {t!r}")
    if source not in sources:
        raise DataError(f"control message: source {source!r} is not one of {sorted(sources)}")
    return float(t), source, dict(sources)


class ControlPublisher:
    """A sink for the loop (`rig.run_episode(sink=...)`) that publishes only its `control` stream;
    counts the ticks each source commanded since `reset_counts`."""

    def __init__(self, node, topic: str, sources: Mapping[str, int]):
        from std_msgs.msg import String

        self._String = String
        self.sources = dict(sources)
        self._names = {code: name for name, code in self.sources.items()}
        self.topic = topic
        self.publisher = node.create_publisher(String, topic, control_qos())
        self.ticks: Dict[str, int] = {}
        self.publisher.publish(String(data=control_message(self.sources)))  # the codes, for the recorder

    def wait_for_subscriber(self, timeout_s: float) -> bool:
        """True once a subscriber (the recorder node) matched this publisher: from then on the recorder knows
        the sources (the announcement is transient local) when asked to start an episode."""
        return wait_for_subscribers([self.publisher], timeout_s, period_s=0.01)

    def reset_counts(self) -> None:
        self.ticks = {}

    def push(self, stream: str, t: float, **fields) -> bool:
        if stream != CONTROL:
            return True  # the recorder node takes everything else from the robot's own topics
        name = self._names[int(fields["source"])]
        self.ticks[name] = self.ticks.get(name, 0) + 1
        stamp = seconds_from_stamp(stamp_from_seconds(max(t, 0.0)))  # as RosBackend.send_command stamps
        self.publisher.publish(self._String(data=control_message(self.sources, stamp, name)))
        return True
