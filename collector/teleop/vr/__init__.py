"""WebXR bridge: an HTTPS + WebSocket server for the operator's VR headset (see docs/vr.md).

The teleop loop / session side only needs the feeds and events:
    CameraFeedPublisher().publish(name, t, rgb_image)   # robot camera -> headset
    StatusPublisher().publish({"recording": True, ...})  # status panel
    EpisodeEventSubscriber().receive()                   # start / stop / discard from the headset
Names are imported lazily so `collector --help` does not pay for OpenCV, ZMQ or aiohttp.
"""
import importlib

_EXPORTS = {
    "CameraFeedPublisher": "feeds",
    "CameraFeedSink": "feeds",
    "StatusPublisher": "feeds",
    "EpisodeEvent": "events",
    "EpisodeEventPublisher": "events",
    "EpisodeEventSubscriber": "events",
    "CAMERA_ENDPOINT": "endpoints",
    "STATUS_ENDPOINT": "endpoints",
    "EVENT_ENDPOINT": "endpoints",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
