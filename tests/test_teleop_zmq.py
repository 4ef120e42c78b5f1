"""Operator input over real ZMQ sockets: handshake, no loss, garbage tolerance, exact topic."""
import socket

import pytest
import zmq

from collector.errors import DeviceError
from collector.teleop.messages import ZMQ_TOPIC, OperatorInput, Pose
from collector.teleop.zmq_link import InputPublisher, InputSubscriber


def free_tcp_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def msg(i):
    return OperatorInput(stamp=float(i), seq=i, source="test", left_wrist=Pose([0.0, 1.0, -0.3]), enable=True)


def test_tcp_loopback_delivers_every_message_after_the_handshake():
    endpoint = f"tcp://127.0.0.1:{free_tcp_port()}"
    pub = InputPublisher(endpoint, bind=True)
    sub = InputSubscriber(endpoint)
    try:
        pub.wait_for_subscriber(timeout_s=5)
        for i in range(500):
            pub.publish(msg(i))
        got = []
        while len(got) < 500:
            batch = sub.receive(timeout_s=2.0)
            assert batch, f"only {len(got)} of 500 messages arrived"
            got.extend(batch)
        assert [m.seq for _, m in got] == list(range(500))
        assert sub.rejected == 0
    finally:
        pub.close()
        sub.close()


def test_garbage_is_counted_not_raised_and_later_messages_still_arrive():
    endpoint = "inproc://test-garbage"
    pub = InputPublisher(endpoint)
    sub = InputSubscriber(endpoint)
    try:
        pub.wait_for_subscriber(1.0)
        pub.publish_bytes(b"\xc1\xc1")
        pub.publish_bytes(b"\x93\x01\x02\x03")  # a valid msgpack array, not a map
        pub.publish(msg(1))
        got = sub.receive(0.5)
        assert [m.seq for _, m in got] == [1]
        assert sub.rejected == 2 and "expected a map" in sub.last_error
    finally:
        pub.close()
        sub.close()


def test_longer_topic_with_our_prefix_is_rejected():
    endpoint = f"tcp://127.0.0.1:{free_tcp_port()}"
    ctx = zmq.Context.instance()
    raw_pub = ctx.socket(zmq.XPUB)
    raw_pub.bind(endpoint)
    sub = InputSubscriber(endpoint)
    try:
        assert raw_pub.poll(3000)  # subscription arrived
        raw_pub.recv()
        from collector.teleop.messages import encode
        raw_pub.send_multipart([ZMQ_TOPIC + b"-other", encode(msg(3))])
        raw_pub.send_multipart([ZMQ_TOPIC, encode(msg(4)), b"extra frame"])
        raw_pub.send_multipart([ZMQ_TOPIC, encode(msg(5))])
        got = []
        for _ in range(20):
            got += sub.receive(0.1)
            if got:
                break
        assert [m.seq for _, m in got] == [5]
        assert sub.rejected == 2
    finally:
        raw_pub.close(linger=0)
        sub.close()


def test_handshake_times_out_with_a_clear_error():
    pub = InputPublisher("inproc://nobody-listens")
    try:
        with pytest.raises(DeviceError, match="no operator-input subscriber"):
            pub.wait_for_subscriber(timeout_s=0.1)
    finally:
        pub.close()


def test_bad_endpoint_is_a_device_error():
    with pytest.raises(DeviceError, match="cannot connect"):
        InputSubscriber("nonsense://where")
