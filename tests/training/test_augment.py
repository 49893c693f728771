"""The differentiable augmentations: each does what it says, p controls how often, gradients pass, the
adaptive strength moves the right way, and the stream repeats from its seed."""

import pytest
import torch

from dcgan.training.augment import ADJUST_EVERY, AUGMENTATIONS, Augment, cutout, parse_policy, translation


def ramp(b=4, c=1, size=8):
    return torch.arange(float(size * size)).add(1).reshape(1, 1, size, size).repeat(b, c, 1, 1)  # no pixel is 0


def test_translation_shifts_whole_pixels_within_an_eighth_and_fills_with_zero():
    x = ramp(b=64, size=16)
    y = translation(x, torch.Generator().manual_seed(0))
    shifts = set()
    for i in range(64):
        inside = y[i, 0] != 0
        # every kept pixel is the original moved by one (dx, dy) for the whole image
        rows, cols = inside.nonzero(as_tuple=True)
        src = y[i, 0][inside].long() - 1
        dy, dx = rows - src // 16, cols - src % 16
        assert len(set(dy.tolist())) == 1 and len(set(dx.tolist())) == 1
        shifts.add((int(dx[0]), int(dy[0])))
        assert abs(int(dx[0])) <= 2 and abs(int(dy[0])) <= 2  # 16 / 8
        assert int((~inside).sum()) == 16 * 16 - (16 - abs(int(dx[0]))) * (16 - abs(int(dy[0])))
    assert len(shifts) > 5  # each image draws its own shift


def test_cutout_zeroes_one_square_of_half_the_side_at_most():
    y = cutout(torch.ones(32, 3, 16, 16), torch.Generator().manual_seed(0))
    zeroed = (y == 0).all(dim=1)  # (B, H, W): the same square in every channel
    assert ((y == 0) == zeroed[:, None]).all()
    for i in range(32):
        rows, cols = zeroed[i].nonzero(as_tuple=True)
        if rows.numel():
            h, w = int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)
            assert rows.numel() == h * w and h <= 8 and w <= 8  # one rectangle, clipped at the border
    assert zeroed.sum(dim=(1, 2)).float().mean() > 20  # most squares lie mostly inside


@pytest.mark.parametrize("name", list(AUGMENTATIONS))
def test_every_transform_lets_gradients_through_and_keeps_the_shape(name):
    x = torch.randn(4, 3, 16, 16, requires_grad=True)
    y = AUGMENTATIONS[name](x, torch.Generator().manual_seed(1))
    assert y.shape == x.shape
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_p_is_the_share_of_images_each_transform_touches():
    x = ramp(b=4000, size=8)
    never = Augment("cutout", 0.0, None, 100, 64, torch.device("cpu"), seed=0)
    assert torch.equal(never(x), x)
    half = Augment("cutout", 0.5, None, 100, 64, torch.device("cpu"), seed=0)
    changed = (half(x) != x).flatten(1).any(dim=1).float().mean().item()
    assert 0.45 < changed < 0.55


def test_the_same_seed_gives_the_same_augmentations():
    x = torch.randn(16, 3, 16, 16)
    a = Augment("translation,cutout,color", 1.0, None, 100, 16, torch.device("cpu"), seed=3)
    b = Augment("translation,cutout,color", 1.0, None, 100, 16, torch.device("cpu"), seed=3)
    assert torch.equal(a(x), b(x))
    assert not torch.equal(a(x), b(torch.flip(x, [0])).flip(0))  # the next draws differ from the first ones


def test_adaptive_p_rises_while_d_is_sure_of_the_reals_and_falls_when_it_is_not():
    aug = Augment("translation", 1.0, 0.6, kimg=1, batch_size=50, device=torch.device("cpu"), seed=0)
    assert float(aug.p) == 0.0  # ADA starts unaugmented
    for _ in range(5 * ADJUST_EVERY):
        aug.observe(torch.full((50,), 3.0))  # every real image confidently real: r = 1 > 0.6
    assert float(aug.p) == pytest.approx(5 * 50 * ADJUST_EVERY / 1000)
    high = float(aug.p)
    for _ in range(2 * ADJUST_EVERY):
        aug.observe(torch.full((50,), -1.0))  # r = -1 < 0.6
    assert float(aug.p) < high
    state = aug.state_tensors()
    other = Augment("translation", 1.0, 0.6, kimg=1, batch_size=50, device=torch.device("cpu"), seed=9)
    other.load_state_tensors(state)
    x = torch.randn(8, 1, 16, 16)
    assert float(other.p) == float(aug.p) and torch.equal(other(x), aug(x))


@pytest.mark.parametrize("policy,names", [("none", ()), ("", ()), ("translation, cutout", ("translation", "cutout"))])
def test_policies(policy, names):
    assert parse_policy(policy) == names


def test_an_unknown_transform_is_named():
    with pytest.raises(ValueError, match="unknown augmentation 'flip'"):
        parse_policy("translation,flip")
