"""`collector ros teleop`: the teleop loop driving a robot over ROS 2, episode by episode.

For each episode: optionally reset the simulated scene (sim-hardware node's ~/reset), ask the
recorder node to start an episode, run the rig's loop (built by collector.teleop.rig.build_ros_rig:
RosBackend, the chosen operator device, the teleop loop), then close the recorder's episode with the outcome: success or
failure where the simulator judges it, "unknown" on a real robot (the operator's call, made later
in review). If the robot's joint states are lost mid-take the take ends, the recording is closed
with outcome "unknown" (nothing recorded is lost) and the error is reported.

Every tick the source in control (the operator, or a policy: `collector ros teleop --policy`) is
published on the control topic (control_topic.py), so the recorder node's episode has the same
`control` stream as one recorded in process. Each take's summary counts the ticks per source and,
for a policy, its inference cost per tick (PolicySource.timing(), cumulative over the takes).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import List, Optional

from collector.errors import DeviceError
from collector.ros.control_topic import ControlPublisher
from collector.ros.services import NoAnswer, ServiceNotAvailable, call_trigger

log = logging.getLogger(__name__)


@dataclass
class TeleopOptions:
    device: str = "scripted"
    episodes: int = 1
    max_duration_s: float = 60.0
    record: bool = False
    reset: bool = False
    seed: Optional[int] = None
    recorder_node: str = "/recorder"
    sim_node: str = "/sim_hardware"
    service_timeout_s: float = 30.0


class RecorderClient:
    """Calls the recorder node's Trigger services."""

    def __init__(self, node, recorder: str):
        from std_srvs.srv import Trigger

        self.recorder = recorder.rstrip("/")
        self._clients = {name: node.create_client(Trigger, f"{self.recorder}/{name}")
                         for name in ("start_episode", "stop_success", "stop_failure", "stop_episode",
                                      "discard_episode")}

    def call(self, service: str, timeout_s: float) -> str:
        try:
            response = call_trigger(self._clients[service], timeout_s)
        except ServiceNotAvailable:
            raise DeviceError(f"recorder service {self.recorder}/{service} is not available "
                              "(is `collector ros recorder` running in this ROS_DOMAIN_ID?)") from None
        except NoAnswer:
            raise DeviceError(f"recorder service {self.recorder}/{service} did not answer within {timeout_s:g} s") from None
        if not response.success:
            raise DeviceError(f"recorder {service}: {response.message}")
        return response.message


def run_teleop(rig, options: TeleopOptions, out=print) -> List[dict]:
    """Run the episodes on a rig (collector.teleop.rig.Rig over a RosBackend); returns one result dict
    per episode (also printed as JSON lines)."""
    backend = rig.backend
    recorder = RecorderClient(backend.runtime.node, options.recorder_node) if options.record else None
    control = ControlPublisher(backend.runtime.node, backend.config.control_topic, rig.loop.arbiter.codes)
    if recorder and not control.wait_for_subscriber(options.service_timeout_s):
        log.warning("the recorder has not subscribed to %s within %g s: the episode will declare its control "
                    "stream when the first tick's source arrives", control.topic, options.service_timeout_s)
    results = []
    for index in range(options.episodes):
        seed = None if options.seed is None else options.seed + index
        if options.reset:
            backend.reset(timeout_s=options.service_timeout_s)
        episode_id = recorder.call("start_episode", options.service_timeout_s) if recorder else None
        outcome = "unknown"
        try:
            control.reset_counts()
            result = rig.run_episode(options.max_duration_s, sink=control, seed=seed)
            judged = backend.task is not None
            outcome = ("success" if result.success else "failure") if judged else "unknown"
        except BaseException:
            if recorder:
                path = recorder.call("stop_episode", options.service_timeout_s)
                log.error("take ended early; recorded so far: %s", path)
            raise
        path = None
        if recorder:
            service = {"success": "stop_success", "failure": "stop_failure"}.get(outcome, "stop_episode")
            path = recorder.call(service, options.service_timeout_s)
        summary = {
            "episode": index,
            "episode_id": episode_id,
            "outcome": outcome,
            "success": bool(result.success),
            "duration_s": round(float(result.duration_s), 3),
            "ticks": result.ticks,
            "metrics": result.metrics,
            "recorded": path,
            "loop": {k: result.stats.get(k) for k in ("control_hz", "overruns", "inputs", "ik_failures")},
            "control": dict(control.ticks),
        }
        timed = {source.id: source.timing() for source in _extra_sources(rig) if hasattr(source, "timing")}
        if timed:
            summary["timing"] = timed
        out(json.dumps(summary, default=str))
        results.append(summary)
    return results


def _extra_sources(rig) -> list:
    """The loop's command sources besides the operator (a policy)."""
    return [s for s in rig.loop.arbiter.sources.values() if s is not rig.loop.operator]


def teleop_main(rig, options: TeleopOptions) -> int:
    """Run the episodes on the rig, then close it; the exit status for `collector ros teleop`."""
    try:
        results = run_teleop(rig, options)
        judged = rig.backend.task is not None
    finally:
        try:
            for source in _extra_sources(rig):
                if hasattr(source, "close"):
                    source.close()  # a policy's inference thread (re-raises its error, if any)
        finally:
            rig.close()
    # Exit status 1 when a simulated task was not accomplished (scripts and CI read it).
    return 0 if not judged or all(r["success"] for r in results) else 1
