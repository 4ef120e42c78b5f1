"""Publish an episode's recorded streams on their ROS 2 topics with the original timing, like a bag player.

Every raw sample is published when its turn comes: at (stamp - first stamp) / rate after the start,
so relative timing between streams is kept; rate 2 plays twice as fast. `start_offset_s` skips the
beginning, `duration_s` stops early, `loops` repeats (0: until stopped),
`wait_for_subscribers_s` holds the start until every topic has a subscriber. Header stamps are the
publish time by default (what live consumers such as rviz expect) or the recorded stamps.

Topics and message types: collector.episodes.topics (from the robot's `ros:` section); QoS per stream
kind from collector.ros.qos, so replayed topics match what the robot's nodes use. Recorded commands
go to /collector/command unless `drive_robot` is set: replaying a take never moves a robot by accident.
The episode's metadata is published once on /collector/episode (std_msgs/String, JSON, latched).
"""
from __future__ import annotations

import json
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Sequence

from collector.episodes.schedule import SampleSource, Schedule
from collector.episodes.topics import METADATA_TOPIC, message_builder, message_class, routes_for
from collector.errors import ConfigError, DataError
from collector.recorder.reader import EpisodeReader

log = logging.getLogger(__name__)

STAMP_MODES = ("now", "recorded")
# Sleep granularity while waiting for the next sample: short enough to stay on time, long enough
# not to spin a core.
_MAX_SLEEP_S = 0.05


@dataclass
class PlayReport:
    published: Dict[str, int] = field(default_factory=dict)  # topic -> messages
    loops: int = 0
    wall_s: float = 0.0
    episode_s: float = 0.0
    max_late_s: float = 0.0
    p99_late_s: float = 0.0
    stopped_early: bool = False

    def as_dict(self) -> Dict:
        return dict(self.__dict__)


def _ros_config(reader: EpisodeReader, robot: Optional[str]):
    from collector.ros.config import RosConfig

    name = robot or reader.metadata.get("robot")
    if not name:
        return RosConfig()
    try:
        from collector.robot import load_robot

        return RosConfig.for_robot(load_robot(name))
    except ConfigError as exc:
        if robot:  # the user named it: a wrong name is an error
            raise
        log.info("robot %r of the recording is not available here (%s); using default topic names", name, exc)
        return RosConfig()


_END_OF_LOOP = object()
_PREFETCH_DEPTH = 64


class _Prefetcher(threading.Thread):
    """Builds the messages of the schedule in order, loop after loop, into a bounded queue."""

    def __init__(self, player: "Ros2Player", by_stream, stamp_from_seconds):
        super().__init__(name="replay-prefetch", daemon=True)
        self.player = player
        self.by_stream = by_stream
        self.stamp_from_seconds = stamp_from_seconds
        self.items: "queue.Queue" = queue.Queue(maxsize=_PREFETCH_DEPTH)
        self.halt = threading.Event()
        self.error: Optional[BaseException] = None

    def run(self) -> None:
        player = self.player
        try:
            loop = 0
            while not self.halt.is_set() and (player.loops == 0 or loop < player.loops):
                for t, name, row in player.schedule:
                    sample = player.source.sample(name, row)
                    stamp = self.stamp_from_seconds(max(t, 0.0))
                    messages = [(route.topic, build(stamp, sample)) for route, build in self.by_stream[name]]
                    if not self._put((t, messages)):
                        return
                if not self._put(_END_OF_LOOP):
                    return
                loop += 1
        except BaseException as exc:  # surfaced by next() in the publishing thread
            self.error = exc
            self._put(_END_OF_LOOP)

    def _put(self, item) -> bool:
        while not self.halt.is_set():
            try:
                self.items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def next(self):
        while True:
            try:
                item = self.items.get(timeout=0.5)
            except queue.Empty:
                if not self.is_alive():
                    raise DataError("replay: the message builder stopped") from self.error
                continue
            if self.error is not None:
                raise DataError(f"replay: building a message failed: {self.error}") from self.error
            return item

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=2.0)


class Ros2Player:
    def __init__(self, path, *, rate: float = 1.0, loops: int = 1, start_offset_s: float = 0.0,
                 duration_s: Optional[float] = None, streams: Optional[Sequence[str]] = None,
                 drive_robot: bool = False, stamps: str = "now", robot: Optional[str] = None,
                 domain_id: Optional[int] = None, node_name: str = "collector_replay", jpeg_quality: int = 90,
                 camera_reliability: str = "", wait_for_subscribers_s: float = 0.0):
        if not rate > 0:
            raise ConfigError(f"--rate must be positive, got {rate}")
        if loops < 0:
            raise ConfigError(f"loops must be >= 0 (0 = until stopped), got {loops}")
        if stamps not in STAMP_MODES:
            raise ConfigError(f"stamps must be one of {STAMP_MODES}, got {stamps!r}")
        self.path = Path(path)
        self.rate, self.loops, self.stamps = float(rate), int(loops), stamps
        self.reader = EpisodeReader(self.path)
        if self.reader.is_partial:
            self.reader.close()
            raise DataError(f"{self.path} is a partial episode; run `collector recover` on it first")
        try:
            self.config = _ros_config(self.reader, robot)
            self.routes = routes_for(self.reader.streams, self.config, drive_robot=drive_robot, streams=streams)
            self.source = SampleSource(self.reader)
            names = self.source.streams_with_data(sorted({r.stream for r in self.routes}))
            if not names:
                raise DataError(f"{self.path}: the selected streams hold no samples")
            self.schedule = Schedule(self.reader, names, start_offset_s, duration_s)
        except BaseException:
            self.reader.close()
            raise
        self.domain_id = domain_id
        self.node_name = node_name
        self.jpeg_quality = jpeg_quality
        self.camera_reliability = camera_reliability or self.config.camera_reliability
        self.wait_for_subscribers_s = float(wait_for_subscribers_s)
        self.stop_requested = threading.Event()

    def topics(self) -> Dict[str, str]:
        """topic -> message type of everything this player publishes."""
        out = {r.topic: r.ros_type for r in self.routes if r.stream in self.schedule.streams}
        out[METADATA_TOPIC] = "std_msgs/msg/String"
        return out

    def stop(self) -> None:
        self.stop_requested.set()

    def run(self, runtime=None) -> PlayReport:
        """Publish until done (or stop()/Ctrl-C). `runtime`: an existing collector.ros.runtime.RosRuntime."""
        from collector.ros.qos import qos_for
        from collector.ros.conversions import stamp_from_seconds

        owned = runtime is None
        if owned:
            from collector.ros.runtime import RosRuntime

            runtime = RosRuntime(self.node_name, domain_id=self.domain_id).start()
        node = runtime.node
        report = PlayReport(episode_s=self.schedule.t_end - self.schedule.t_begin)
        try:
            by_stream: Dict[str, list] = {}
            publishers = {}
            for route in self.routes:
                if route.stream not in self.schedule.streams:
                    continue
                reliability = self.camera_reliability if route.qos_kind == "camera" else ""
                publishers[route.topic] = node.create_publisher(message_class(route.ros_type), route.topic,
                                                                qos_for(route.qos_kind, reliability))
                by_stream.setdefault(route.stream, []).append((route, message_builder(route, self.jpeg_quality)))
                report.published[route.topic] = 0
            self._publish_metadata(node, qos_for("control"))
            self._wait_for_subscribers(publishers)
            lateness = []
            t_begin = self.schedule.t_begin
            started = time.monotonic()
            stamp_now = self.stamps == "now"
            # Messages are built (HDF5 read, JPEG decode and re-encode) ahead of time by a thread, so
            # the publishing loop only waits and sends; OpenCV and HDF5 release the GIL meanwhile.
            prefetch = _Prefetcher(self, by_stream, stamp_from_seconds)
            prefetch.start()
            try:
                loop = 0
                while self.loops == 0 or loop < self.loops:
                    wall0 = time.monotonic()
                    while True:
                        item = prefetch.next()
                        if item is _END_OF_LOOP:
                            break
                        t, messages = item
                        target = wall0 + (t - t_begin) / self.rate
                        if not self._wait_until(target, runtime):
                            report.stopped_early = True
                            break
                        lateness.append(time.monotonic() - target)
                        if stamp_now:
                            now = node.get_clock().now().to_msg()
                        for topic, message in messages:
                            if stamp_now and hasattr(message, "header"):
                                message.header.stamp = now
                            publishers[topic].publish(message)
                            report.published[topic] += 1
                    if report.stopped_early:
                        break
                    loop += 1
                    report.loops = loop
            finally:
                prefetch.stop()
            report.wall_s = time.monotonic() - started
            if lateness:
                late = sorted(lateness)
                report.max_late_s = float(late[-1])
                report.p99_late_s = float(late[min(len(late) - 1, int(0.99 * len(late)))])
            return report
        finally:
            if owned:
                runtime.close()

    def _wait_for_subscribers(self, publishers) -> None:
        """Give late joiners (a recorder, a viewer starting up) until every topic has a subscriber;
        DDS discovery takes a moment and volatile topics do not keep what was sent before."""
        from collector.ros.runtime import wait_for_subscribers

        wait_for_subscribers(publishers.values(), self.wait_for_subscribers_s,
                             lambda: not self.stop_requested.is_set())

    def _publish_metadata(self, node, qos) -> None:
        from std_msgs.msg import String

        publisher = node.create_publisher(String, METADATA_TOPIC, qos)
        message = String()
        message.data = json.dumps({"episode": str(self.path), "metadata": self.reader.metadata,
                                   "topics": self.topics()}, sort_keys=True, default=str)
        publisher.publish(message)

    def _wait_until(self, target: float, runtime) -> bool:
        while True:
            if self.stop_requested.is_set() or not runtime.ok():
                return False
            remaining = target - time.monotonic()
            if remaining <= 0:
                return True
            time.sleep(min(remaining, _MAX_SLEEP_S))

    def close(self) -> None:
        self.reader.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
