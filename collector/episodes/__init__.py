"""Reading recorded episodes out, for both the dataset tools and replay (which do not import each other).

topics (stream -> ROS 2 topic and message), ros2_msgdefs (message definitions without ROS 2),
schedule (every raw sample in time order), video (MP4 encode/decode), conditions (condition names
and preset labels)."""
