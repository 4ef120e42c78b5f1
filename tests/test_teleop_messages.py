"""Operator-input message and its msgpack wire form: round trips and every kind of bad input."""
import math

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.errors import DataError
from collector.teleop import messages as m


def full_message(seq=7):
    rng = np.random.default_rng(seq)
    quats = rng.normal(size=(m.N_HAND_JOINTS, 4))
    quats /= np.linalg.norm(quats, axis=1, keepdims=True)
    hand = m.HandSkeleton(rng.normal(size=(m.N_HAND_JOINTS, 3)), quats, radii=np.full(m.N_HAND_JOINTS, 0.01))
    return m.OperatorInput(
        stamp=12.5, seq=seq, source="vr-bridge",
        head=m.Pose([0, 1.6, 0], [0.9238795, 0, 0.3826834, 0]),
        left_wrist=m.Pose([-0.2, 1.1, -0.3]), right_wrist=m.Pose([0.2, 1.1, -0.3], [0, 1, 0, 0]),
        left_hand=hand, right_hand=None,
        left_controller=m.ControllerState(0.25, 1.0, {"x": True, "menu": False}, [0.5, -1.0]),
        right_controller=None, enable=True, clutch=False,
    )


def test_round_trip_keeps_every_field():
    msg = full_message()
    back = m.decode(m.encode(msg))
    assert back.stamp == msg.stamp and back.seq == msg.seq and back.source == "vr-bridge"
    assert back.enable is True and back.clutch is False
    np.testing.assert_allclose(back.head.as_vector(), msg.head.as_vector())
    np.testing.assert_allclose(back.left_hand.positions, msg.left_hand.positions)
    np.testing.assert_allclose(back.left_hand.orientations, msg.left_hand.orientations)
    np.testing.assert_allclose(back.left_hand.radii, 0.01)
    assert back.left_controller.buttons == {"x": True, "menu": False}
    np.testing.assert_allclose(back.left_controller.thumbstick, [0.5, -1.0])
    assert back.valid() == {"head": True, "left_wrist": True, "right_wrist": True, "left_hand": True,
                            "right_hand": False, "left_controller": True, "right_controller": False}


def test_wire_form_is_a_plain_versioned_map():
    raw = msgpack.unpackb(m.encode(full_message()), raw=False)
    assert raw["v"] == m.WIRE_VERSION
    assert len(raw["left_wrist"]) == 7 and raw["right_hand"] is None
    assert len(raw["left_hand"]["positions"]) == 75 and len(raw["left_hand"]["orientations"]) == 100


def _mutated(**changes):
    raw = m.to_wire_dict(full_message())
    for key, value in changes.items():
        raw[key] = value
    return msgpack.packb(raw, use_bin_type=True)


@pytest.mark.parametrize("data, needle", [
    (b"\xc1garbage", "not valid msgpack"),
    (msgpack.packb([1, 2, 3]), "expected a map"),
    (_mutated(v=2), "unknown wire version 2"),
    (_mutated(stamp=float("nan")), "stamp"),
    (_mutated(seq=-1), "seq"),
    (_mutated(seq=True), "seq"),
    (_mutated(enable=1), "enable"),
    (_mutated(head=[0, 1, 0, 1, 0, 0]), "head: expected 7 numbers, got 6"),
    (_mutated(left_wrist=[0, float("inf"), 0, 1, 0, 0, 0]), "left_wrist: contains NaN or inf"),
    (_mutated(right_wrist=[0, 0, 0, 2, 0, 0, 0]), "right_wrist orientation: not a unit quaternion"),
    (_mutated(right_wrist=[0, 0, 0, "a", 0, 0, 0]), "right_wrist: element 'a' is not a number"),
    (_mutated(left_hand={"positions": [0.0] * 74, "orientations": [1.0, 0, 0, 0] * 25}), "left_hand positions"),
    (_mutated(left_controller={"trigger": 1.5}), "left_controller: controller trigger"),
    (_mutated(left_controller={"buttons": {"a": "yes"}}), "left_controller"),
    (_mutated(source="x" * 500), "source"),
    (b"\x00" * (m.MAX_MESSAGE_BYTES + 1), "exceeds"),
])
def test_bad_input_is_a_data_error_naming_the_problem(data, needle):
    with pytest.raises(DataError, match=None) as info:
        m.decode(data)
    assert needle in str(info.value)


def test_missing_required_field_is_named():
    raw = m.to_wire_dict(full_message())
    del raw["stamp"]
    with pytest.raises(DataError, match="missing field 'stamp'"):
        m.decode(msgpack.packb(raw))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=512))
def test_random_bytes_never_crash_the_decoder(data):
    try:
        msg = m.decode(data)
    except DataError:
        return
    assert math.isfinite(msg.stamp)


values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=8) | st.dictionaries(st.text(max_size=12), children, max_size=6),
    max_leaves=15,
)


@settings(max_examples=120, deadline=None)
@given(st.dictionaries(st.sampled_from(["v", "stamp", "seq", "source", "enable", "clutch", "head", "left_wrist",
                                        "left_hand", "right_controller", "extra"]), values))
def test_random_structures_decode_or_raise_data_error(obj):
    obj.setdefault("v", 1)
    try:
        msg = m.decode(msgpack.packb(obj, use_bin_type=True))
    except DataError:
        return
    # Anything accepted is fully finite and well-formed.
    for pose in (msg.head, msg.left_wrist, msg.right_wrist):
        if pose is not None:
            assert np.all(np.isfinite(pose.as_vector()))


def test_flattened_recording_fields_match_declared_shapes():
    shapes = m.recording_field_shapes()
    for msg in (full_message(), m.OperatorInput(stamp=0.0, seq=0)):
        flat = m.flatten_for_recording(msg)
        assert set(flat) == set(shapes)
        for name, value in flat.items():
            assert np.shape(value) == shapes[name][0], name
    empty = m.flatten_for_recording(m.OperatorInput(stamp=0.0, seq=0))
    assert np.all(empty["head"] == 0) and not empty["valid"].any()
    assert all(np.all(np.isfinite(v)) for v in empty.values())


# -- range checks at decode: a message that decodes is one the loop and the recorder can hold ----------------
def _hand(**changes):
    hand = {"positions": [0.1] * 75, "orientations": [1.0, 0, 0, 0] * 25, "radii": [0.01] * 25}
    hand.update(changes)
    return hand


@pytest.mark.parametrize("field, bad, good, needle", [
    ("seq", 2**63, 2**63 - 1, "seq"),
    ("seq", 2**64 - 1, 0, "seq"),
    ("stamp", 1e300, 1e9, "stamp"),
    ("stamp", -1e11, -5.0, "stamp"),
    ("head", [0, 21.0, 0, 1, 0, 0, 0], [0, 19.0, 0, 1, 0, 0, 0], "head: position beyond 20"),
    ("left_wrist", [-1e308, 0, 0, 1, 0, 0, 0], [-2.0, 0, 0, 1, 0, 0, 0], "left_wrist: position beyond"),
    ("right_wrist", [0, 0, 1e6, 1, 0, 0, 0], [0, 0, 1, 1, 0, 0, 0], "right_wrist: position beyond"),
    ("left_hand", _hand(positions=[0.1] * 74 + [1e9]), _hand(), "left_hand positions: position beyond"),
    ("right_hand", _hand(radii=[0.01] * 24 + [7.0]), _hand(), "right_hand radii"),
    ("left_controller", {"buttons": {"b" * 500: True}}, {"buttons": {"b" * 32: True}}, "name longer"),
    ("right_controller", {"grip": 1e300}, {"grip": 1.0}, "controller grip"),
    ("right_controller", {"thumbstick": [0, 1e300]}, {"thumbstick": [0, -1]}, "thumbstick"),
    ("source", "s" * 65, "s" * 64, "source"),
])
def test_every_field_is_range_checked_at_decode(field, bad, good, needle):
    with pytest.raises(DataError) as info:
        m.decode(_mutated(**{field: bad}))
    assert needle in str(info.value)
    accepted = m.decode(_mutated(**{field: good}))  # the bound itself still decodes and records
    flat = m.flatten_for_recording(accepted)
    assert all(np.all(np.isfinite(np.asarray(v, dtype=np.float64))) for v in flat.values())


@settings(max_examples=150, deadline=None)
@given(seq=st.integers(0, 2**64 - 1), stamp=st.floats(allow_nan=False, allow_infinity=False))
def test_whatever_decodes_can_be_recorded(seq, stamp):
    """Every accepted message flattens into the recorder's fixed dtypes (int64 seq): nothing overflows later."""
    try:
        msg = m.decode(_mutated(seq=seq, stamp=stamp))
    except DataError:
        assert seq > m.MAX_SEQ or abs(stamp) > m.MAX_STAMP_S
        return
    flat = m.flatten_for_recording(msg)
    assert int(flat["seq"]) == seq and float(flat["stamp"]) == stamp
