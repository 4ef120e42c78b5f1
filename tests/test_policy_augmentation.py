"""Training-time image augmentation (collector/policy/augmentation.py): shifts move the content by at
most the pad, photometric changes stay in [0, 1] and keep colour order, draws follow the torch seed,
and bad settings are one-line errors. No simulator: ~1 s."""
import pytest

torch = pytest.importorskip("torch")

from collector.errors import ConfigError
from collector.policy.augmentation import Augmentation, random_shift

torch.set_num_threads(1)


def frames_with_a_dot(count=8, h=12, w=16, y=6, x=8):
    frames = torch.zeros(count, 1, 3, h, w)
    frames[:, :, 0, y, x] = 1.0  # one red pixel
    return frames


def test_a_shift_moves_the_content_by_at_most_the_pad_and_keeps_the_shape():
    torch.manual_seed(0)
    frames = frames_with_a_dot(count=64)
    shifted = Augmentation(shift=2)(frames)
    assert shifted.shape == frames.shape
    moves = set()
    for frame in shifted[:, 0, 0]:
        ys, xs = torch.nonzero(frame == 1.0, as_tuple=True)
        assert len(ys) == 1, "the dot is neither lost nor duplicated away from the border"
        dy, dx = int(ys[0]) - 6, int(xs[0]) - 8
        assert abs(dy) <= 2 and abs(dx) <= 2
        moves.add((dy, dx))
    assert len(moves) > 5, "frames get different offsets"


def test_replicate_padding_repeats_the_edge_rather_than_inventing_black():
    torch.manual_seed(1)
    frames = torch.full((16, 3, 6, 6), 0.7)
    assert torch.allclose(random_shift(frames, 3), frames)


def test_photometric_changes_stay_in_range_keep_colour_order_and_vary():
    torch.manual_seed(2)
    frames = torch.rand(32, 3, 3, 10, 10) * 0.5
    frames[:, :, 0] += 0.5  # red brighter than green and blue everywhere
    out = Augmentation(brightness=0.4, contrast=0.4)(frames)
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert torch.all(out[:, :, 0].mean(dim=(-1, -2)) > out[:, :, 1].mean(dim=(-1, -2)))
    means = out.mean(dim=(2, 3, 4)) / frames.mean(dim=(2, 3, 4))
    assert float(means.max() - means.min()) > 0.2, "brightness differs from frame to frame"


def test_draws_follow_the_torch_seed_and_nothing_changes_without_augmentation():
    frames = torch.rand(4, 2, 3, 12, 16)
    augment = Augmentation(shift=3, brightness=0.2, contrast=0.2)
    torch.manual_seed(5)
    first = augment(frames)
    torch.manual_seed(5)
    assert torch.equal(first, augment(frames))
    assert not torch.equal(first, frames)
    assert Augmentation.from_state({}).active is False
    assert torch.equal(Augmentation.from_state(None)(frames), frames)


@pytest.mark.parametrize("state, words", [({"hue": 0.1}, "unknown key(s) hue"), ({"shift": -1}, "shift must be"),
                                          ({"brightness": 1.5}, "brightness, contrast in [0, 1)")])
def test_bad_settings_are_one_line_errors(state, words):
    with pytest.raises(ConfigError) as error:
        Augmentation.from_state(state)
    assert words in str(error.value) and "\n" not in str(error.value)
