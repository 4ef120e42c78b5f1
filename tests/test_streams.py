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
