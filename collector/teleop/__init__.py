"""Teleop: operator input -> command arbiter -> retargeting + mink IK -> safety gate -> robot backend (docs/teleop.md).

    from collector.teleop.messages import OperatorInput, encode, decode, ZMQ_TOPIC   # no MuJoCo needed
    from collector.teleop.loop import TeleopLoop, run_episode
    from collector.teleop.rig import build_sim_rig, build_rig                         # a whole rig
    from collector.teleop.arbiter import CommandArbiter, CommandSource, JointTargetSource

The robot contract and the MuJoCo backend live in collector.backends (RobotBackend, SimBackend).
Submodules are imported on use so a bridge process can load the wire form without MuJoCo.
"""
