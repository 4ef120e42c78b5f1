"""MP4 video with PyAV: encode frames, join encoded files without re-encoding, decode frames by time.

Encoding defaults follow what training loaders need: every frame decodable after at most `gop`
frames (LeRobot encodes with g=2 for the same reason: a random sample must not decode a whole GOP),
no B-frames (decode order = display order, so a seek lands where expected), yuv420p (every player).
"""
from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np

from collector.errors import ConfigError, DataError

# codec name -> the encoder PyAV's bundled FFmpeg provides.
VIDEO_CODECS = {"h264": "libx264", "av1": "libsvtav1", "hevc": "libx265", "mpeg4": "mpeg4"}


def _av():
    try:
        import av
    except ImportError as exc:
        raise ConfigError("video needs PyAV: pip install av") from exc
    return av


class VideoWriter:
    """Frames in, one MP4 out. Frames are (H, W, 3) uint8 RGB of the size given at creation."""

    def __init__(self, path, fps: float, width: int, height: int, codec: str = "h264", crf: int = 23,
                 gop: int = 2, preset: str = "veryfast", threads: int = 1):
        av = _av()
        if codec not in VIDEO_CODECS:
            raise ConfigError(f"video codec {codec!r} not in {sorted(VIDEO_CODECS)}")
        if width % 2 or height % 2:
            raise ConfigError(f"yuv420p video needs even width and height, got {width}x{height}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.width, self.height = int(width), int(height)
        self.codec = codec
        self._container = av.open(str(self.path), "w")
        rate = Fraction(fps).limit_denominator(1001)
        self._stream = self._container.add_stream(VIDEO_CODECS[codec], rate=rate)
        self._stream.width, self._stream.height, self._stream.pix_fmt = self.width, self.height, "yuv420p"
        options = {"g": str(gop), "crf": str(crf)}
        if codec in ("h264", "hevc"):
            options.update({"bf": "0", "preset": preset})
        elif codec == "av1":
            options.update({"preset": "10"})
        self._stream.options = options
        # One encoder thread: dataset jobs parallelise over episodes, threads would only contend.
        self._stream.codec_context.thread_count = threads
        self._frames = 0
        self._av = av

    def write(self, rgb: np.ndarray) -> None:
        if rgb.shape != (self.height, self.width, 3) or rgb.dtype != np.uint8:
            raise DataError(f"{self.path}: frame {rgb.shape} {rgb.dtype} does not match "
                            f"({self.height}, {self.width}, 3) uint8")
        frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts = self._frames
        self._frames += 1
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    @property
    def frames(self) -> int:
        return self._frames

    def close(self) -> None:
        if self._container is None:
            return
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        self._container = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def encode_video(path, frames: Iterable[np.ndarray], fps: float, **kwargs) -> int:
    """Encode an iterable of equally sized RGB frames; returns the frame count."""
    writer = None
    try:
        for frame in frames:
            if writer is None:
                writer = VideoWriter(path, fps, frame.shape[1], frame.shape[0], **kwargs)
            writer.write(frame)
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        raise DataError(f"{path}: no frames to encode")
    return writer.frames


def probe(path) -> Dict[str, object]:
    """codec, width, height, fps, frames, duration_s of the first video stream."""
    av = _av()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = stream.frames or sum(1 for _ in container.demux(stream) if _.size)
        return {"codec": stream.codec_context.name, "width": stream.codec_context.width,
                "height": stream.codec_context.height, "fps": float(stream.average_rate or 0),
                "frames": int(frames), "pix_fmt": stream.codec_context.pix_fmt or "yuv420p"}


def concat_videos(parts: Sequence, out_path) -> List[float]:
    """Join MP4 files of identical encoding into one, copying packets (no re-encoding).

    Returns the start time in seconds of each part inside the joined file. Each part must start
    with a keyframe (every file VideoWriter makes does) and use the same codec, size and frame rate.
    """
    av = _av()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    starts: List[float] = []
    tmp = out_path.with_name(out_path.name + f".{os.getpid()}.tmp.mp4")
    output = av.open(str(tmp), "w")
    try:
        out_stream = None
        offset = 0  # in the output stream's time base
        reference = None
        for part in parts:
            with av.open(str(part)) as container:
                stream = container.streams.video[0]
                signature = (stream.codec_context.name, stream.codec_context.width, stream.codec_context.height,
                             stream.average_rate)
                if out_stream is None:
                    out_stream = output.add_stream_from_template(stream)
                    reference = signature
                elif signature != reference:
                    raise DataError(f"{part}: video {signature} differs from the first part's {reference}; "
                                    "cannot join without re-encoding")
                time_base = stream.time_base
                frame_ticks = int(round(1 / (stream.average_rate * time_base)))
                starts.append(float(offset * time_base))
                last_end = offset
                for packet in container.demux(stream):
                    if packet.dts is None:  # the demuxer's end-of-stream flush packet
                        continue
                    packet.pts += offset
                    packet.dts += offset
                    last_end = max(last_end, packet.pts + (packet.duration or frame_ticks))
                    packet.stream = out_stream
                    output.mux(packet)
                offset = last_end
    except BaseException:
        output.close()
        tmp.unlink(missing_ok=True)
        raise
    output.close()
    os.replace(tmp, out_path)
    return starts


class VideoFrameReader:
    """Random access to frames of one MP4 by timestamp (seconds). Reopens after fork, like AlignedEpisode."""

    def __init__(self, path):
        self.path = Path(path)
        self._container = None
        self._pid = None
        self._next_pts: Optional[int] = None  # where sequential decoding currently stands
        self._decoder = None

    def __getstate__(self):
        return {"path": self.path, "_container": None, "_pid": None, "_next_pts": None, "_decoder": None}

    def _open(self):
        if self._container is None or self._pid != os.getpid():
            av = _av()
            self._container = av.open(str(self.path))
            self._stream = self._container.streams.video[0]
            self._stream.thread_type = "NONE"
            self._stream.codec_context.thread_count = 1
            self._pid = os.getpid()
            self._next_pts = None
            self._decoder = None
            rate = self._stream.average_rate
            self._ticks = int(round(1 / (rate * self._stream.time_base)))
        return self._container

    def close(self) -> None:
        if self._container is not None and self._pid == os.getpid():
            self._container.close()
        self._container = None

    def frames_at(self, timestamps: Sequence[float]) -> np.ndarray:
        """(N, H, W, 3) uint8 RGB frames whose presentation time is nearest each timestamp."""
        self._open()
        wanted = [int(round(t / float(self._stream.time_base))) for t in timestamps]
        # Snap to the frame grid (a timestamp between two frames takes the nearest).
        wanted = [int(round(p / self._ticks)) * self._ticks for p in wanted]
        out = {}
        for pts in sorted(set(wanted)):
            out[pts] = self._frame(pts)
        return np.stack([out[p] for p in wanted])

    def _frame(self, pts: int) -> np.ndarray:
        # Continue decoding when the target is just ahead (sequential reads), else seek to the keyframe.
        near = self._next_pts is not None and self._next_pts <= pts <= self._next_pts + 4 * self._ticks
        if self._decoder is None or not near:
            self._container.seek(pts, stream=self._stream, backward=True, any_frame=False)
            self._decoder = self._container.decode(self._stream)
        for frame in self._decoder:
            if frame.pts is None:
                continue
            self._next_pts = frame.pts + self._ticks
            if frame.pts >= pts - self._ticks // 2:
                return frame.to_ndarray(format="rgb24")
        self._decoder = None
        raise DataError(f"{self.path}: no frame at {pts * float(self._stream.time_base):.4f} s (past the end?)")
