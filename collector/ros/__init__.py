"""ROS 2 side of collector: real rclpy nodes, and RosBackend (the robot contract of collector.backends over ROS 2).

    collector ros sim-hw      the MuJoCo humanoid as a ros2_control-style robot (sim_hardware.py)
    collector ros recorder    ROS topics -> crash-safe HDF5 episodes (recorder_node.py)
    collector ros teleop      the teleop loop over RosBackend (backend.py, teleop_node.py)
    collector launch FILE     ROS 2 YAML launch files without `ros2 launch` (launch_file.py, process_group.py)

Importing this package does not import rclpy: that happens when a node or backend is created, so
the rest of collector works on machines without ROS 2 (docs/ros2.md).
"""
from collector.ros.backend import RosBackend
from collector.ros.config import RosConfig
from collector.ros.environment import domain_id_for_pid, ros_environment

__all__ = ["RosBackend", "RosConfig", "domain_id_for_pid", "ros_environment"]
