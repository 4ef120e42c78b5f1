"""Camera/status feeds and episode events over real ZMQ sockets on loopback."""
import time

import cv2
import msgpack
import numpy as np
import pytest
import zmq

from collector.errors import DataError
from collector.recorder.streams import Sink
from collector.teleop.vr.events import (
    EVENT_TOPIC,
    EpisodeEvent,
    EpisodeEventPublisher,
    EpisodeEventSubscriber,
    decode_event,
    encode_event,
)
from collector.teleop.vr.feeds import (
    CAMERA_TOPIC,
    STATUS_TOPIC,
    CameraFeedPublisher,
    CameraFeedSink,
    StatusPublisher,
    decode_camera,
    decode_status,
    eye_for,
)
from helpers.vr import free_endpoint, wait_until


def _bound_sub(endpoint, topic):
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.SUBSCRIBE, topic)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind(endpoint)
    return sock


def _connect(publish, sub, timeout_s=10.0):
    """Publish warm-up messages until the subscriber gets one (ZMQ drops what is sent before that), then drain."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        publish()
        if sub.poll(50):
            time.sleep(0.1)
            while sub.poll(0):
                sub.recv_multipart()
            return
    raise AssertionError("subscriber never connected")


def _receive_all(sock, timeout_s=2.0, want=1):
    got = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and len(got) < want:
        if sock.poll(20):
            got.append(sock.recv_multipart())
    return got


def test_camera_frames_are_jpeg_encoded_off_the_callers_thread():
    endpoint = free_endpoint()
    sub = _bound_sub(endpoint, CAMERA_TOPIC)
    pub = CameraFeedPublisher(endpoint, quality=90)
    _connect(lambda: pub.publish("warmup", 0.0, np.zeros((8, 8, 3), np.uint8)), sub)
    image = np.zeros((240, 320, 3), np.uint8)
    image[:, :160] = (255, 0, 0)
    image[:, 160:] = (0, 0, 255)
    try:
        started = time.perf_counter()
        pub.publish("head", 1.25, image)
        publish_s = time.perf_counter() - started
        image[:] = 0  # the caller may reuse its buffer at once: the publisher copied it
        frames = _receive_all(sub)
    finally:
        pub.close()
        sub.close()
    header, jpeg = decode_camera(frames[0])
    assert header["name"] == "head" and header["eye"] == "mono" and header["t"] == 1.25
    assert (header["w"], header["h"], header["seq"]) == (320, 240, 0)
    assert header["published_at"] <= header["encoded_at"]
    rgb = cv2.cvtColor(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    assert rgb[120, 40].tolist() == pytest.approx([255, 0, 0], abs=8)  # colours survive RGB -> BGR -> RGB
    assert rgb[120, 280].tolist() == pytest.approx([0, 0, 255], abs=8)
    assert publish_s < 0.05  # sanity: publish copies and returns; encoding happens on the worker


def test_a_camera_faster_than_the_encoder_keeps_only_its_newest_frame():
    endpoint = free_endpoint()
    sub = _bound_sub(endpoint, CAMERA_TOPIC)
    pub = CameraFeedPublisher(endpoint)
    _connect(lambda: pub.publish("warmup", 0.0, np.zeros((8, 8, 3), np.uint8)), sub)
    pub.published = pub.sent = pub.dropped = 0
    big = np.random.default_rng(0).integers(0, 255, (1080, 1920, 3), dtype=np.uint8)  # slow to encode
    try:
        for i in range(30):
            pub.publish("head", i, big)
        wait_until(lambda: pub.sent + pub.dropped >= 30, timeout_s=20)
        frames = _receive_all(sub, want=pub.sent)
    finally:
        pub.close()
        sub.close()
    assert pub.dropped > 0 and pub.sent + pub.dropped == 30
    stamps = [decode_camera(f)[0]["t"] for f in frames]
    assert stamps[-1] == 29 and stamps == sorted(stamps)


@pytest.mark.parametrize("image, needle", [
    (np.zeros((10, 10), np.uint8), "HxWx3"),
    (np.zeros((10, 10, 3), np.float32), "uint8"),
    ([[1, 2, 3]], "HxWx3"),
    (np.zeros((0, 10, 3), np.uint8), "out of range"),
])
def test_bad_camera_images_are_refused(image, needle):
    pub = CameraFeedPublisher(free_endpoint())
    try:
        with pytest.raises(DataError, match=needle):
            pub.publish("head", 0.0, image)
    finally:
        pub.close()


def test_eye_assignment_by_camera_name():
    assert [eye_for(n) for n in ("head_left", "head_right", "head", "left_eye", "stereo_r")] == \
        ["left", "right", "mono", "left", "right"]


def test_status_is_repeated_for_late_subscribers():
    endpoint = free_endpoint()
    pub = StatusPublisher(endpoint, repeat_s=0.05)
    try:
        pub.publish({"recording": True, "episode": 2, "warnings": ["low light"]})
        time.sleep(0.3)  # published before anyone listens ...
        sub = _bound_sub(endpoint, STATUS_TOPIC)
        frames = _receive_all(sub, want=2)  # ... and still arrives, repeatedly
        sub.close()
    finally:
        pub.close()
    assert len(frames) >= 2
    assert decode_status(frames[0]) == {"recording": True, "episode": 2, "warnings": ["low light"]}
    with pytest.raises(DataError, match="not serialisable"):
        StatusPublisher(free_endpoint()).publish({"bad": object()})


def test_malformed_feed_messages_are_named():
    with pytest.raises(DataError, match="frame layout"):
        decode_camera([CAMERA_TOPIC, b"x"])
    header = msgpack.packb({"v": 1, "name": "head", "eye": "left", "seq": 0, "w": 1, "h": 1, "t": 0.0,
                            "published_at": 0.0})
    with pytest.raises(DataError, match="not a JPEG"):
        decode_camera([CAMERA_TOPIC, header, b"PNG..."])
    with pytest.raises(DataError, match="eye"):
        decode_camera([CAMERA_TOPIC, msgpack.packb({**msgpack.unpackb(header), "eye": "third"}), b"\xff\xd8"])
    with pytest.raises(DataError, match="version-1"):
        decode_status([STATUS_TOPIC, msgpack.packb({"v": 9})])


def test_camera_sink_streams_head_cameras_and_passes_everything_on():
    endpoint = free_endpoint()
    sub = _bound_sub(endpoint, CAMERA_TOPIC)
    pub = CameraFeedPublisher(endpoint)
    pushed = []

    class Recorder(Sink):
        def push(self, stream, t, **fields):
            pushed.append(stream)
            return True

    sink = CameraFeedSink(pub, inner=Recorder())
    _connect(lambda: pub.publish("warmup", 0.0, np.zeros((8, 8, 3), np.uint8)), sub)
    image = np.full((48, 64, 3), 128, np.uint8)
    try:
        assert sink.push("camera_head", 0.1, image=image)
        time.sleep(0.1)  # let the worker send head before wrist could replace anything
        sink.push("camera_left_wrist", 0.1, image=image)
        sink.push("joints", 0.1, position=np.zeros(3))
        frames = _receive_all(sub, timeout_s=1.0, want=2)
    finally:
        pub.close()
        sub.close()
    assert pushed == ["camera_head", "camera_left_wrist", "joints"]
    assert [decode_camera(f)[0]["name"] for f in frames] == ["head"]


def test_episode_events_round_trip_and_bad_ones_are_counted():
    endpoint = free_endpoint()
    pub = EpisodeEventPublisher(endpoint)
    sub = EpisodeEventSubscriber(endpoint)
    pub.wait_for_subscriber(10.0)
    try:
        pub.publish("start", trigger="right.a", operator="127.0.0.1#1")
        pub.publish("stop", "success", trigger="right.a")
        got = []
        wait_until(lambda: got.extend(sub.receive(0.05)) or len(got) >= 2, timeout_s=2)
    finally:
        pub.close()
        sub.close()
    assert [(e.event, e.outcome, e.seq, e.trigger) for e in got] == [("start", None, 0, "right.a"),
                                                                      ("stop", "success", 1, "right.a")]
    assert decode_event(encode_event(got[0])) == got[0]
    with pytest.raises(DataError, match="only allowed on stop"):
        EpisodeEvent("start", "success", 0, 0.0)
    with pytest.raises(DataError, match="not valid msgpack"):
        decode_event(b"\xc1")
    with pytest.raises(DataError, match="not in"):
        decode_event(msgpack.packb({"v": 1, "event": "pause", "outcome": None, "seq": 0, "t": 0.0}))


def test_event_subscriber_survives_garbage_on_the_wire():
    endpoint = free_endpoint()
    sub = EpisodeEventSubscriber(endpoint, bind=True)
    raw = zmq.Context.instance().socket(zmq.PUB)
    raw.setsockopt(zmq.LINGER, 0)
    raw.connect(endpoint)
    warm_up = encode_event(EpisodeEvent("start", None, 0, 0.0))
    try:
        assert wait_until(lambda: raw.send_multipart([EVENT_TOPIC, warm_up]) or sub.receive(0.05), timeout_s=10)
        time.sleep(0.1)
        sub.receive(0.0)
        raw.send_multipart([EVENT_TOPIC, b"\xc1garbage"])
        raw.send_multipart([EVENT_TOPIC, encode_event(EpisodeEvent("discard", None, 3, 1.0))])
        got = []
        wait_until(lambda: got.extend(sub.receive(0.05)) or len(got) >= 1, timeout_s=2)
    finally:
        raw.close()
        sub.close()
    assert [e.event for e in got] == ["discard"] and sub.rejected == 1
