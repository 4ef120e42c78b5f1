"""Robot backends: the contract every robot implements (base.py) and the in-process MuJoCo one (sim.py).

    from collector.backends import RobotBackend, JointSample     # no MuJoCo needed
    from collector.backends.sim import SimBackend                # the simulator (imports mujoco on use)

collector.ros.RosBackend implements the same contract for a robot driven over ROS 2.
"""
from collector.backends.base import JointSample, RobotBackend

__all__ = ["JointSample", "RobotBackend"]
