"""Robot descriptions: a YAML beside an MJCF names joint groups, end effectors, grippers, cameras, home.

    from collector.robot import load_robot
    spec = load_robot("humanoid")        # a name under robots/, a robot directory, or a YAML path
"""
from collector.robot.loader import load_robot, resolve_robot_yaml
from collector.robot.spec import CameraSpec, RobotSpec

__all__ = ["load_robot", "resolve_robot_yaml", "RobotSpec", "CameraSpec"]
