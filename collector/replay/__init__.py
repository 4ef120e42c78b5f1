"""Replaying recorded episodes: in the MuJoCo scene (sim_replay) and on ROS 2 topics (ros2_player)."""
