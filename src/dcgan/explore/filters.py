"""Seeing inside the models: first-layer filters and what D's feature maps respond to.

The paper (section 6.2, figure 5) looks at what D's features fire on. Here:

* `first_layer_filters` shows the weights of the layer that touches pixels (D's
  first convolution, G's output convolution) as small pictures, one per filter;
* `top_activations` finds the images that most excite chosen channels of a D block;
* `activation_overlay` and `top_activation_figure` draw those channels' maps
  over the images as a red heat map.

Pure functions: Pillow images and plain data are returned; the CLI saves them.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch import nn

from ..data import unit_batches
from ..errors import ConfigError, DataError
from ..imaging import make_grid
from ..models import Discriminator, Generator, evaluating

__all__ = [
    "first_layer_filters",
    "filter_scale",
    "discriminator_filters",
    "generator_filters",
    "top_activations",
    "activation_maps",
    "activation_overlay",
    "top_activation_figure",
]

FILTER_PAD_VALUE = 128  # mid grey between filters, so that both black and white filter pixels stand out


# --------------------------------------------------------------------------- #
# Filters
# --------------------------------------------------------------------------- #
def filter_scale(kernel_size: int, min_size: int = 24) -> int:
    """The nearest-neighbour enlargement that makes a kernel_size filter at least min_size pixels wide."""
    return max(1, math.ceil(min_size / kernel_size))


def _filter_bank(conv: nn.Module | torch.Tensor) -> torch.Tensor:
    """Weights as (n_filters, colour_channels, k, k), the colour axis being the image side."""
    if isinstance(conv, nn.ConvTranspose2d):
        return conv.weight.detach()  # (in, out, k, k): one filter per input channel, coloured by output channel
    if isinstance(conv, nn.Conv2d):
        return conv.weight.detach()  # (out, in, k, k): one filter per output channel, coloured by input channel
    if isinstance(conv, torch.Tensor) and conv.dim() == 4:
        return conv.detach()
    raise ConfigError(f"expected a Conv2d, a ConvTranspose2d or a (n, c, k, k) tensor, got {type(conv).__name__}")


def first_layer_filters(conv: nn.Module | torch.Tensor, min_size: int = 24, padding: int = 2, nrow: int | None = None) -> Image.Image:
    """A grid of a convolution's filters, each min-max normalised on its own.

    Conv2d weights (out, in, k, k) give `out` filters coloured by the `in`
    channels; ConvTranspose2d weights (in, out, k, k) give `in` filters coloured
    by the `out` channels; a raw tensor is read as (n_filters, colours, k, k).
    Three colour channels make an RGB picture and one a grey ("L") picture; any
    other count shows each channel as its own grey tile, a filter's tiles side by
    side (nrow defaults to the channel count then). Each filter is enlarged with
    nearest-neighbour to at least `min_size` pixels. The picture measures
    padding + nrow * (k*s + padding) wide by padding + rows * (k*s + padding) high,
    s = filter_scale(k, min_size), nrow defaulting to ceil(sqrt(tiles)).
    """
    w = _filter_bank(conv).float().cpu()  # (n, c, kh, kw)
    n, c, kh, kw = w.shape
    # Per-filter min-max over all its channels, so that an RGB filter keeps its colours.
    lo = w.amin(dim=(1, 2, 3), keepdim=True)
    hi = w.amax(dim=(1, 2, 3), keepdim=True)
    span = hi - lo
    w = torch.where(span > 0, (w - lo) / span.clamp_min(1e-12), torch.full_like(w, 0.5))  # (n, c, kh, kw) in [0, 1]
    tiles = (w * 255).round().to(torch.uint8)
    if c not in (1, 3):
        tiles = tiles.reshape(n * c, 1, kh, kw)  # each channel its own grey tile, a filter's channels in a row
        nrow = nrow or c
    s = filter_scale(max(kh, kw), min_size)
    tiles = tiles.repeat_interleave(s, dim=2).repeat_interleave(s, dim=3)  # (tiles, c', kh*s, kw*s)
    arr = make_grid(tiles, nrow=nrow, padding=padding, pad_value=FILTER_PAD_VALUE)  # (H, W, c')
    return Image.fromarray(arr[..., 0], mode="L") if arr.shape[-1] == 1 else Image.fromarray(arr, mode="RGB")


def _first_conv(module: nn.Module) -> nn.Conv2d | nn.ConvTranspose2d:
    """The first Conv2d / ConvTranspose2d inside `module` (itself if it is one)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            return m
    raise ConfigError(f"no convolution found in {type(module).__name__}")


def discriminator_filters(D: Discriminator, min_size: int = 24, padding: int = 2) -> Image.Image:
    """D's first convolution, the one that reads pixels: one filter per first-layer channel.

    A concat-conditional D's first convolution also reads the label maps; only its image channels are shown."""
    weight = _first_conv(D.blocks[0]).weight.detach()  # (out, channels [+ num_classes], k, k)
    return first_layer_filters(weight[:, : D.config.channels], min_size=min_size, padding=padding)


def generator_filters(G: Generator, min_size: int = 24, padding: int = 2) -> Image.Image:
    """G's output convolution, the one that paints pixels: one filter per last hidden channel.

    For the "transposed" block the weights are (hidden, channels, k, k) already;
    for the "nearest" block (upsample + Conv2d, weights (channels, hidden, k, k))
    they are transposed so that filters are again coloured by image channel.
    """
    conv = _first_conv(G.blocks[-1])
    weight = conv.weight.detach()
    if isinstance(conv, nn.Conv2d) and not isinstance(conv, nn.ConvTranspose2d):
        weight = weight.transpose(0, 1)  # (channels, hidden, k, k) -> (hidden, channels, k, k)
    return first_layer_filters(weight, min_size=min_size, padding=padding)


# --------------------------------------------------------------------------- #
# Activations
# --------------------------------------------------------------------------- #
def _check_layer(D: Discriminator, layer: int, channels: list[int]) -> None:
    n_layers = len(D.blocks)
    if not isinstance(layer, int) or not 0 <= layer < n_layers:
        raise ConfigError(f"layer {layer} does not exist: this discriminator has blocks 0..{n_layers - 1}")
    width = D.config.hidden_widths()[layer]
    bad = [ch for ch in channels if not isinstance(ch, int) or not 0 <= ch < width]
    if bad:
        raise ConfigError(f"channel {bad[0]} does not exist: block {layer} has channels 0..{width - 1}")
    if not channels:
        raise ConfigError("no channels given")


def _check_images(D: Discriminator, images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.dtype != torch.uint8:
        raise DataError("images must be a uint8 (N, C, H, W) tensor")
    cfg = D.config
    if tuple(images.shape[1:]) != (cfg.channels, cfg.image_size, cfg.image_size):
        raise ConfigError(
            f"images of shape {tuple(images.shape[1:])} do not fit a discriminator for {cfg.image_size}x{cfg.image_size}x{cfg.channels} images"
        )


def activation_maps(D: Discriminator, images_uint8: torch.Tensor, layer: int, channels: list[int], batch_size: int = 256) -> torch.Tensor:
    """Block `layer`'s output maps for `channels`: (N, C, H, W) uint8 -> (N, len(channels), h, w) float32 on the CPU.

    D runs in eval mode without gradients; its mode is restored afterwards.
    """
    channels = list(channels)
    _check_layer(D, layer, channels)
    _check_images(D, images_uint8)
    device = next(D.parameters()).device
    idx = torch.tensor(channels, dtype=torch.long, device=device)
    out: list[torch.Tensor] = []
    with evaluating(D):
        for x in unit_batches(images_uint8, batch_size, device):  # (B, C, H, W) in [-1, 1]
            x = D.join(x, None)  # a concat-conditional D reads zero label maps beside the image: no class
            for block in list(D.blocks)[: layer + 1]:
                x = block(x)  # after block i: (B, c_i, H / 2^(i+1), W / 2^(i+1))
            out.append(x.index_select(1, idx).float().cpu())  # (B, len(channels), h, w)
    return torch.cat(out)


def top_activations(
    D: Discriminator, images_uint8: torch.Tensor, layer: int, channels: list[int], top_k: int = 8, batch_size: int = 256
) -> dict[int, list[tuple[int, float]]]:
    """For each channel of block `layer`, the `top_k` images with the highest mean activation.

    Returns {channel: [(image index, mean activation), ...]}, highest first
    (at most N entries per channel).
    """
    if not isinstance(top_k, int) or top_k < 1:
        raise ConfigError(f"top_k must be a positive integer, got {top_k!r}")
    channels = list(channels)
    maps = activation_maps(D, images_uint8, layer, channels, batch_size)  # (N, len(channels), h, w)
    scores = maps.mean(dim=(2, 3))  # (N, len(channels))
    k = min(top_k, scores.shape[0])
    values, indices = scores.topk(k, dim=0)  # (k, len(channels)), sorted descending
    return {ch: [(int(indices[r, j]), float(values[r, j])) for r in range(k)] for j, ch in enumerate(channels)}


def _rgb(images_uint8: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) uint8 -> (N, H, W, 3) float in [0, 1]; grey images are repeated into RGB."""
    x = images_uint8.permute(0, 2, 3, 1).float().numpy() / 255.0
    return np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x


def _overlay_pairs(
    D: Discriminator, images_uint8: torch.Tensor, indices: list[int], layer: int, channel: int, scale: int, alpha: float
) -> tuple[np.ndarray, np.ndarray]:
    """Originals and heat-map overlays of `indices`, both (n, S, S, 3) uint8 with S = image_size * scale."""
    n_images = images_uint8.shape[0]
    bad = [i for i in indices if not isinstance(i, int) or not 0 <= i < n_images]
    if bad:
        raise ConfigError(f"image index {bad[0]} is outside the {n_images} images given")
    if not indices:
        raise ConfigError("no image indices given")
    if not isinstance(scale, int) or scale < 1:
        raise ConfigError(f"scale must be a positive integer, got {scale!r}")
    if not 0 <= alpha <= 1:
        raise ConfigError(f"alpha must lie in [0, 1], got {alpha}")
    chosen = images_uint8[torch.tensor(indices, dtype=torch.long)]  # (n, C, H, W)
    maps = activation_maps(D, chosen, layer, [channel])  # (n, 1, h, w)
    size = images_uint8.shape[-1] * scale
    heat = F.interpolate(maps, size=(size, size), mode="bilinear", align_corners=False)[:, 0]  # (n, S, S)
    # Each image's map normalised to [0, 1] on its own: where the channel fires, not how much.
    lo = heat.amin(dim=(1, 2), keepdim=True)
    hi = heat.amax(dim=(1, 2), keepdim=True)
    unit_heat = torch.where(hi - lo > 0, (heat - lo) / (hi - lo).clamp_min(1e-12), torch.zeros_like(heat)).numpy()
    big = chosen.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3)  # (n, C, S, S)
    base = _rgb(big)  # (n, S, S, 3)
    a = (alpha * unit_heat)[..., None]  # (n, S, S, 1)
    red = np.array([1.0, 0.0, 0.0], dtype=np.float32)
    over = base * (1 - a) + red * a  # alpha blend towards red where the channel is active
    to8 = lambda x: (np.clip(x, 0, 1) * 255).round().astype(np.uint8)  # noqa: E731
    return to8(base), to8(over)


def _paste_rows(rows: list[list[np.ndarray]], padding: int, left: int = 0) -> np.ndarray:
    """Tiles (S, S, 3) laid out in rows with `padding` between and around, `left` extra pixels before each row."""
    size = rows[0][0].shape[0]
    ncol = max(len(r) for r in rows)
    height = padding + len(rows) * (size + padding)
    width = left + padding + ncol * (size + padding)
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    for r, tiles in enumerate(rows):
        y = padding + r * (size + padding)
        for c, tile in enumerate(tiles):
            x = left + padding + c * (size + padding)
            canvas[y : y + size, x : x + size] = tile
    return canvas


def _default_scale(image_size: int) -> int:
    return max(1, math.ceil(64 / image_size))  # pictures at least 64 pixels wide


def activation_overlay(
    D: Discriminator,
    images_uint8: torch.Tensor,
    indices: list[int],
    layer: int,
    channel: int,
    scale: int | None = None,
    alpha: float = 0.6,
    padding: int = 2,
) -> Image.Image:
    """One row per image: the image, then the image with block `layer`'s `channel` map as a red heat map.

    The map is upsampled bilinearly to the image size, min-max normalised per
    image and alpha-blended towards red. Images are enlarged `scale` times
    (default: to at least 64 pixels). RGB picture of
    (padding + 2 * (S + padding)) x (padding + len(indices) * (S + padding)), S = image_size * scale.
    """
    _check_images(D, images_uint8)
    scale = scale or _default_scale(images_uint8.shape[-1])
    base, over = _overlay_pairs(D, images_uint8, list(indices), layer, channel, scale, alpha)
    return Image.fromarray(_paste_rows([[b, o] for b, o in zip(base, over)], padding), mode="RGB")


LABEL_WIDTH = 40  # pixels before each row of `top_activation_figure` for the channel number


def top_activation_figure(
    D: Discriminator,
    images_uint8: torch.Tensor,
    layer: int,
    channels: list[int],
    top_k: int = 8,
    scale: int | None = None,
    alpha: float = 0.6,
    padding: int = 2,
    batch_size: int = 256,
) -> Image.Image:
    """One row per channel: its `top_k` most exciting images, each followed by its heat-map overlay.

    The row is labelled with the channel number. RGB picture of
    (LABEL_WIDTH + padding + 2 * k * (S + padding)) x (padding + len(channels) * (S + padding)),
    k = min(top_k, N), S = image_size * scale.
    """
    channels = list(channels)
    top = top_activations(D, images_uint8, layer, channels, top_k, batch_size)
    scale = scale or _default_scale(images_uint8.shape[-1])
    rows: list[list[np.ndarray]] = []
    for ch in channels:
        indices = [i for i, _ in top[ch]]
        base, over = _overlay_pairs(D, images_uint8, indices, layer, ch, scale, alpha)
        rows.append([tile for pair in zip(base, over) for tile in pair])
    img = Image.fromarray(_paste_rows(rows, padding, left=LABEL_WIDTH), mode="RGB")
    draw = ImageDraw.Draw(img)
    size = rows[0][0].shape[0]
    for r, ch in enumerate(channels):
        y = padding + r * (size + padding) + max(0, size // 2 - 6)
        draw.text((4, y), f"ch {ch}", fill=(0, 0, 0))
    return img
