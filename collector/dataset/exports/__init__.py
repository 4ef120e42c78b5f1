"""Exports that keep conditions and provenance: MCAP (Foxglove), robomimic, LeRobot v3."""
