"""Crash-safe HDF5 episode recording, reading, recovery and QA (docs/recorder.md).

    from collector.recorder import EpisodeWriter, EpisodeReader, StreamSpec, FieldSpec, camera_stream
    from collector.recorder import recover_episode, validate_episode
"""
from collector.recorder.streams import CAMERA_CODECS, FieldSpec, Sink, StreamSpec, camera_stream
from collector.recorder.schema import SCHEMA_NAME, SCHEMA_VERSION
from collector.recorder.writer import EpisodeWriter
from collector.recorder.reader import EpisodeReader, FrameSequence
from collector.recorder.recover import recover_episode
from collector.recorder.qa import validate_episode

__all__ = [
    "CAMERA_CODECS", "EpisodeReader", "EpisodeWriter", "FieldSpec", "FrameSequence",
    "SCHEMA_NAME", "SCHEMA_VERSION", "Sink", "StreamSpec", "camera_stream", "recover_episode",
    "validate_episode",
]
