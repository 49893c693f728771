"""Filter pictures, top-activating images and heat-map overlays."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from dcgan.errors import ConfigError
from dcgan.explore.filters import (
    LABEL_WIDTH,
    activation_overlay,
    discriminator_filters,
    filter_scale,
    first_layer_filters,
    generator_filters,
    top_activation_figure,
    top_activations,
)
from dcgan.models import Discriminator, Generator, ModelConfig

from conftest import TINY


def _grid_side(n_tiles: int, nrow: int, tile: int, padding: int) -> tuple[int, int]:
    rows = math.ceil(n_tiles / nrow)
    return padding + nrow * (tile + padding), padding + rows * (tile + padding)  # (width, height)


@pytest.mark.parametrize("channels, mode", [(1, "L"), (3, "RGB")])
def test_discriminator_filters_size_and_mode(channels, mode):
    config = ModelConfig(image_size=16, channels=channels, z_dim=8, width=10)
    img = discriminator_filters(Discriminator(config), min_size=24, padding=2)
    assert img.mode == mode
    tile = 4 * filter_scale(4, 24)  # kernel 4 -> 24 px
    assert tile >= 24
    assert img.size == _grid_side(10, math.ceil(math.sqrt(10)), tile, 2)


@pytest.mark.parametrize("g_block", ["transposed", "nearest"])
def test_generator_filters_one_per_hidden_channel(g_block):
    config = ModelConfig(image_size=16, channels=3, z_dim=8, width=9, g_block=g_block)
    img = generator_filters(Generator(config), min_size=20, padding=1)
    k = 4 if g_block == "transposed" else 3
    assert img.mode == "RGB"
    assert img.size == _grid_side(9, 3, k * filter_scale(k, 20), 1)


def test_maxpool_discriminator_filters():
    config = ModelConfig(image_size=16, channels=1, z_dim=8, width=4, d_block="maxpool")
    img = discriminator_filters(Discriminator(config))
    assert img.size == _grid_side(4, 2, 3 * filter_scale(3, 24), 2)


def test_filters_are_normalised_per_filter():
    conv = nn.Conv2d(1, 2, kernel_size=2, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]], [[[100.0, 100.0], [100.0, 300.0]]]]))
    img = np.asarray(first_layer_filters(conv, min_size=2, padding=0, nrow=2))  # (2, 4): two 2x2 filters side by side
    assert img.shape == (2, 4)
    assert img[:, :2].tolist() == [[0, 85], [170, 255]]
    assert img[:, 2:].tolist() == [[0, 0], [0, 255]]


def test_other_channel_counts_shown_per_channel():
    conv = nn.Conv2d(2, 5, kernel_size=3)
    img = first_layer_filters(conv, min_size=3, padding=1)
    assert img.mode == "L"
    assert img.size == _grid_side(10, 2, 3, 1)  # one row per filter, one tile per channel


def _data(config: ModelConfig, n: int = 30) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, config.channels, config.image_size, config.image_size), generator=gen, dtype=torch.uint8)


def test_top_activations_sorted_and_correct():
    config = ModelConfig(**TINY)
    torch.manual_seed(0)
    D = Discriminator(config).train()
    images = _data(config)
    top = top_activations(D, images, layer=1, channels=[0, 5], top_k=4, batch_size=7)
    assert D.training
    assert set(top) == {0, 5}
    D.eval()
    with torch.no_grad():
        maps = D.features(images.float() / 127.5 - 1)[1]  # (30, 16, 4, 4)
    for ch, entries in top.items():
        assert len(entries) == 4
        scores = [s for _, s in entries]
        assert scores == sorted(scores, reverse=True)
        assert all(0 <= i < 30 for i, _ in entries)
        means = maps[:, ch].mean(dim=(1, 2))
        assert entries[0][0] == int(means.argmax())
        assert entries[0][1] == pytest.approx(float(means.max()), rel=1e-5, abs=1e-6)
    assert len(top_activations(D, images[:3], 0, [1], top_k=10)[1]) == 3


def test_invalid_layer_channel_topk():
    config = ModelConfig(**TINY)  # blocks 0 (8 channels) and 1 (16 channels)
    D = Discriminator(config)
    images = _data(config, 4)
    with pytest.raises(ConfigError, match="layer 2"):
        top_activations(D, images, layer=2, channels=[0])
    with pytest.raises(ConfigError, match="channel 8"):
        top_activations(D, images, layer=0, channels=[8])
    with pytest.raises(ConfigError):
        top_activations(D, images, layer=0, channels=[0], top_k=0)
    with pytest.raises(ConfigError):
        activation_overlay(D, images, [0], layer=-1, channel=0)
    with pytest.raises(ConfigError):
        activation_overlay(D, images, [4], layer=0, channel=0)
    with pytest.raises(ConfigError):
        top_activation_figure(D, images, layer=1, channels=[16])


@pytest.mark.parametrize("channels", [1, 3])
def test_overlay_and_figure_sizes(channels):
    config = ModelConfig(image_size=16, channels=channels, z_dim=8, width=8)
    D = Discriminator(config)
    images = _data(config, 12)
    overlay = activation_overlay(D, images, [0, 3, 5], layer=1, channel=2, scale=4, padding=2)
    side = 16 * 4
    assert overlay.mode == "RGB"
    assert overlay.size == (2 + 2 * (side + 2), 2 + 3 * (side + 2))
    # Left of each row is the original image, unchanged.
    left = np.asarray(overlay)[2 : 2 + side : 4, 2 : 2 + side : 4]  # (16, 16, 3)
    original = images[0].permute(1, 2, 0).numpy()
    assert np.array_equal(left, np.broadcast_to(original, (16, 16, 3)))
    # Right of it, the overlay: never less red, and somewhere strictly redder relative to green.
    arr = np.asarray(overlay).astype(int)
    orig_px, over_px = arr[2 : 2 + side, 2 : 2 + side], arr[2 : 2 + side, 4 + side : 4 + 2 * side]
    assert (over_px[..., 0] >= orig_px[..., 0] - 1).all()
    assert ((over_px[..., 0] - over_px[..., 1]) > (orig_px[..., 0] - orig_px[..., 1]) + 50).any()
    fig = top_activation_figure(D, images, layer=0, channels=[1, 4], top_k=5, scale=2, padding=3)
    side = 16 * 2
    assert fig.size == (LABEL_WIDTH + 3 + 10 * (side + 3), 3 + 2 * (side + 3))
    assert fig.mode == "RGB"
