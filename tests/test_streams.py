import pytest

from collector.errors import ConfigError
from collector.recorder.streams import FieldSpec, StreamSpec, camera_stream


def test_camera_stream_shape_and_default_tolerance():
    spec = camera_stream("camera_head", 320, 240, 30)
    assert spec.fields["image"].shape == (240, 320, 3)
    assert spec.tolerance == pytest.approx(1.5 / 30)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(name="a/b", fields={"x": FieldSpec((1,))}, rate_hz=1), "contain no '/'"),
        (dict(name="a", fields={}, rate_hz=1), "declares no fields"),
        (dict(name="a", fields={"x": FieldSpec((1,))}, rate_hz=0), "rate_hz"),
        (dict(name="a", fields={"x": FieldSpec((1,))}, rate_hz=1, default_align="cubic"), "align 'cubic'"),
        (dict(name="c", fields={"x": FieldSpec((1,))}, rate_hz=1, kind="camera"), "exactly one field"),
    ],
)
def test_bad_stream_specs_name_the_problem(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        StreamSpec(**kwargs)


def test_spec_round_trips_through_its_json_description():
    spec = StreamSpec("input", {"pose": FieldSpec((7,), "float32"), "buttons": FieldSpec((4,), "uint8")},
                      rate_hz=90, tolerance_s=0.02, kind="input", default_align="linear",
                      align={"buttons": "backward"}, attrs={"frame": "world"})
    again = StreamSpec.from_json(spec.to_json())
    assert again == spec
    assert again.fields["buttons"].dtype == "uint8" and again.method_for("buttons") == "backward"
    cam = camera_stream("camera_head", 64, 48, 30, codec="lzf")
    assert StreamSpec.from_dict(cam.to_dict()) == cam
    assert cam.camera_name == "head" and cam.is_camera and cam.sample_nbytes == 8 + 64 * 48 * 3


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: FieldSpec((3,), "complex128"), "only bool, integer and float"),
        (lambda: FieldSpec((3,), "nonsense"), "unknown dtype"),
        (lambda: FieldSpec((-1,)), "negative"),
        (lambda: StreamSpec("a", {"x": FieldSpec((1,))}, 10, tolerance_s=0), "tolerance_s"),
        (lambda: StreamSpec("a", {"x": FieldSpec((1,))}, 10, align={"y": "linear"}), "unknown fields"),
        (lambda: StreamSpec("c", {"image": FieldSpec((4, 4), "uint8")}, 10, kind="camera"), r"\(H, W, 3\) uint8"),
        (lambda: camera_stream("c", 4, 4, 10, codec="png"), "codec 'png'"),
        (lambda: StreamSpec.from_dict({"name": "a"}), "incomplete"),
    ],
)
def test_more_bad_specs_name_the_problem(make, message):
    with pytest.raises(ConfigError, match=message):
        make()
