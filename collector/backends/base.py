"""The robot contract: what every robot backend offers the control loop and the recorder.

A backend reads the measured joint state, takes a joint-position command and tells the time on the
session clock; those, and `close`, are what every backend must implement. Everything else is
declared, not probed: the sensor streams the backend produces (`sensor_streams()`, its
observation features: cameras, illuminance, the simulated world's state and object poses) and its
optional capabilities, each a method whose default says "this backend does not have it".

Every joint array is in `robot.command_joints` order.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

import numpy as np

from collector.errors import DeviceError

if TYPE_CHECKING:  # the robot/sim packages import mujoco; keep this module light for bridge processes
    from collector.recorder.streams import StreamSpec
    from collector.robot import CameraSpec, RobotSpec

Frame = Tuple[float, np.ndarray]  # (session time, HxWx3 uint8 image)
WorldSample = Tuple[float, np.ndarray, Dict[str, np.ndarray]]  # (t, simulator state, {pose stream: pose})


@dataclass
class JointSample:
    """Measured joint state at time t (session clock), in robot.command_joints order."""

    t: float
    position: np.ndarray
    velocity: np.ndarray
    effort: np.ndarray


class RobotBackend(ABC):
    """One robot the loop can drive: the in-process simulator, a ROS 2 robot, ...

    lockstep: True for an in-process simulator: the loop calls `advance()` once per tick and the
    session clock is simulation time; False for a robot that runs in real time.
    """

    robot: "RobotSpec"
    lockstep: bool = False

    # -- what every backend must do ----------------------------------------------------------------
    @abstractmethod
    def now(self) -> float:
        """Current time on the session clock (sim time for lockstep backends)."""

    @abstractmethod
    def read_state(self) -> JointSample:
        """The newest measured joint state."""

    @abstractmethod
    def send_command(self, t: float, q: np.ndarray) -> None:
        """Command joint positions q (the safety gate's output) at session time t."""

    @abstractmethod
    def close(self) -> None:
        """Release what the backend holds (threads, connections); idempotent."""

    # -- timing ------------------------------------------------------------------------------------
    @property
    def control_dt(self) -> Optional[float]:
        """The control period the backend is built for (a lockstep sim's), or None if it has none."""
        return None

    def advance(self) -> None:
        """Lockstep backends: step the world by one control period."""
        raise DeviceError(f"{type(self).__name__} runs in real time; it cannot be stepped (lockstep is False)")

    def set_realtime(self, realtime: bool) -> None:
        """Told by the loop before a run whether ticks are paced on the wall clock."""

    # -- sensors (the observation features) --------------------------------------------------------
    def cameras(self) -> Dict[str, "CameraSpec"]:
        """The cameras this backend delivers frames for (none by default)."""
        return {}

    def capture(self, name: str) -> Optional[Frame]:
        """(t, HxWx3 uint8 image) if camera `name` has a frame ready now, else None."""
        return None

    def finish_frames(self) -> List[Tuple[str, float, np.ndarray]]:
        """At the end of a run: frames still in flight, as (camera, t, image) in time order."""
        return []

    def reset_camera_clocks(self) -> None:
        """Start the cameras' frame schedules afresh (before an episode)."""

    def illuminance(self) -> Optional[float]:
        """The scene's light level in lux, or None when there is no reading (yet)."""
        return None

    @property
    def has_illuminance(self) -> bool:
        """Whether this backend measures illuminance (it then declares the illuminance stream)."""
        return False

    def world_sample(self) -> Optional[WorldSample]:
        """Simulation: (t, full simulator state, {pose stream: pose}) when its record rate is due, else None."""
        return None

    def sensor_streams(self) -> List["StreamSpec"]:
        """Every stream this backend's sensors produce, declared before an episode starts:
        one per camera, illuminance when it has a light sensor, and in simulation the world's state
        and object poses (see world_sample)."""
        from collector.recorder import vocabulary

        specs = [vocabulary.camera_spec(name, cam.width, cam.height, cam.fps) for name, cam in self.cameras().items()]
        specs.extend(self.world_streams())
        if self.has_illuminance:
            specs.append(vocabulary.illuminance_spec())
        return specs

    def world_streams(self) -> List["StreamSpec"]:
        """Simulation: the sim_state stream and one pose stream per task object (none by default)."""
        return []

    # -- the episode: scene, task and what to record about it ----------------------------------------
    def reset(self, **conditions) -> dict:
        """Set up the next episode's scene; returns the conditions applied."""
        raise DeviceError(f"{type(self).__name__} cannot reset the scene (on a real robot the operator does)")

    @property
    def task(self):
        """The task being performed, when the backend knows it (a simulation), else None."""
        return None

    def task_success(self) -> bool:
        """Whether the task is accomplished right now (False when the backend cannot judge it)."""
        return False

    def task_metrics(self) -> dict:
        return {}

    @property
    def conditions(self) -> dict:
        """The scene conditions applied (lighting, weights, seed), when the backend applies them."""
        return {}

    def recording_metadata(self) -> dict:
        """Episode metadata the backend knows: the joint limits and QA's tolerance past them
        (a fixed small tolerance by default: hardware)."""
        from collector.sim.limits import joint_limit_metadata

        return {"joint_limits": joint_limit_metadata(self.robot, None)}
