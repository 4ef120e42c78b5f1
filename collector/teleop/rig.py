"""One place that builds a whole rig: robot backend, input device, control loop (and a recorder per episode).

    rig = build_sim_rig(robot="humanoid", task="pick_place", device="scripted")
    rig.backend.reset(seed=0)
    writer = rig.recorder("/tmp/episodes", "episode_000000", {"task": "pick_place"})
    result = rig.run_episode(max_duration_s=30.0, sink=writer, seed=0)
    writer.stop(outcome="success" if result.success else "failure")
    rig.close()

`commands/teleop.py`, `commands/ros.py`, `session/drivers.py` and the benchmarks build theirs here.

With `policy=CHECKPOINT` the rig's policy drives from the start of each take under the operator's
deadman, and the operator's takeover button toggles who commands (collector/teleop/takeover.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Union

from collector.teleop.arbiter import Chooser, CommandSource
from collector.teleop.config import TeleopConfig, load_teleop_config
from collector.teleop.loop import EpisodeResult, TeleopLoop, run_episode

DeviceSpec = Union[str, None, object]  # a device name (teleop/devices), a device, or None: ZMQ input


@dataclass
class Rig:
    backend: object  # collector.backends.RobotBackend
    device: Optional[object]  # the local input device, None when input arrives over ZMQ
    loop: TeleopLoop
    takeover: Optional[object] = None  # collector.teleop.takeover.PolicyTakeover when a policy drives

    @property
    def robot(self):
        return self.backend.robot

    def recorder(self, out_dir, name: str, metadata: Optional[dict] = None, **writer_kwargs):
        """A started EpisodeWriter for one episode of this rig: its streams, plus the robot side's metadata."""
        from collector.recorder import EpisodeWriter
        from collector.recorder.vocabulary import aligned_hand_streams

        specs = self.loop.stream_specs()
        writer_kwargs.setdefault("aligned_streams", aligned_hand_streams(specs))
        writer = EpisodeWriter(out_dir, name, specs,
                               metadata={**(metadata or {}), **self.loop.recording_metadata()}, **writer_kwargs)
        writer.start()
        return writer

    def run_episode(self, max_duration_s: float, sink=None, seed: Optional[int] = None, stop_on_success: bool = True,
                    realtime: Optional[bool] = None) -> EpisodeResult:
        try:
            return run_episode(self.backend, self.device, sink=sink, max_duration_s=max_duration_s,
                               stop_on_success=stop_on_success, seed=seed, loop=self.loop, realtime=realtime)
        finally:
            self.loop.sink = None

    def handovers(self) -> list:
        """This take's handovers between the policy and the operator, as episode metadata."""
        from collector.teleop.takeover import handover_events

        return handover_events(self.loop.arbiter)

    def close(self) -> None:
        try:
            if self.takeover is not None:
                self.takeover.close()
            self.loop.close()
        finally:
            self.backend.close()


def open_input_device(device: DeviceSpec, config: TeleopConfig, wrap: Optional[Callable] = None):
    """A device from its name (None for `zmq`: the loop subscribes), or the device given; `wrap` decorates it."""
    if isinstance(device, str):
        from collector.teleop.devices import open_device

        device = open_device(device, config)
    return wrap(device) if wrap is not None and device is not None else device


def build_rig(backend, device: DeviceSpec = None, config: Optional[TeleopConfig] = None,
              endpoint: Optional[str] = None, bind: Optional[bool] = None, wrap_device: Optional[Callable] = None,
              sources: Sequence[CommandSource] = (), choose: Optional[Chooser] = None,
              policy=None) -> Rig:
    """A rig around a backend you have (a RosBackend, a wrapped SimBackend); closes it if the loop fails.
    policy: a checkpoint path (or Checkpoint) that drives under the operator's takeover button."""
    config = config or load_teleop_config()
    takeover = None
    try:
        if policy is not None:
            from collector.teleop.takeover import policy_takeover

            takeover = policy_takeover(policy, backend, assists=config.policy_assists)
            sources, choose = [*sources, *takeover.sources], takeover.choose
        device = open_input_device(device, config, wrap_device)
        loop = TeleopLoop(backend, config=config, device=device, endpoint=endpoint, bind=bind,
                          sources=sources, choose=choose)
    except BaseException:
        if takeover is not None:
            takeover.close()
        backend.close()
        raise
    return Rig(backend, device, loop, takeover)


def build_sim_rig(robot="humanoid", task: str = "pick_place", device: DeviceSpec = "scripted",
                  config: Optional[TeleopConfig] = None, render: bool = True, endpoint: Optional[str] = None,
                  bind: Optional[bool] = None, wrap_device: Optional[Callable] = None,
                  sources: Sequence[CommandSource] = (), choose: Optional[Chooser] = None, policy=None,
                  async_render: bool = True, **env_kwargs) -> Rig:
    """The simulated robot (SimEnv at the config's control rate; env_kwargs: theme, lighting, weight, seed...).
    async_render=False renders each frame inside the tick that takes it: a policy in lockstep then sees
    the same frames whatever the CPU load (collector/policy/evaluate.py)."""
    from collector.backends.sim import SimBackend
    from collector.sim import SimEnv

    config = config or load_teleop_config()
    env_kwargs.setdefault("control_hz", config.control.rate_hz)
    backend = SimBackend(SimEnv(robot=robot, task=task, **env_kwargs), render=render, async_render=async_render)
    return build_rig(backend, device, config, endpoint, bind, wrap_device, sources, choose, policy)


def build_ros_rig(robot="humanoid", device: DeviceSpec = "zmq", config: Optional[TeleopConfig] = None,
                  ros_config=None, domain_id: Optional[int] = None, sim_node: str = "/sim_hardware",
                  connect_timeout_s: float = 10.0, wrap_device: Optional[Callable] = None, policy=None) -> Rig:
    """A robot driven over ROS 2 (collector.ros.RosBackend; needs rclpy)."""
    from collector.ros.backend import RosBackend

    backend = RosBackend(robot, config=ros_config, domain_id=domain_id, sim_node=sim_node,
                         connect_timeout_s=connect_timeout_s)
    return build_rig(backend, device, config, wrap_device=wrap_device, policy=policy)
