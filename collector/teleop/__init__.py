"""Teleop: operator input -> retargeting -> mink IK -> safety gate -> robot backend (docs/teleop.md).

    from collector.teleop.messages import OperatorInput, encode, decode, ZMQ_TOPIC   # no MuJoCo needed
    from collector.teleop.loop import TeleopLoop, run_episode
    from collector.teleop.backend import SimBackend, RobotBackend, JointSample

Submodules are imported on use so a bridge process can load the wire form without MuJoCo.
"""
