"""Small image utilities written with NumPy and Pillow (torchvision is not used).

Tensors in [-1, 1] become uint8 pictures; grids, GIFs and resizing live here.
Only `save_*` functions touch the filesystem, and the CLI and trainer call them.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .fileio import atomic_write_bytes

__all__ = ["to_uint8", "to_unit_range", "make_grid", "grid_image", "tensor_to_pil", "resize_uint8", "save_image_atomic", "save_gif"]


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Map images in [-1, 1] (any float dtype) to uint8 in [0, 255], same shape."""
    return ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 images 0..255 as float in [-1, 1], the range of G's tanh (a new tensor): the inverse of `to_uint8`, and
    the one place that conversion is written."""
    return images.float().div_(127.5).sub_(1.0)


def make_grid(images: torch.Tensor, nrow: int | None = None, padding: int = 2, pad_value: int = 0) -> np.ndarray:
    """Tile uint8 images (N, C, H, W) into one (H', W', C) array, `nrow` images per row.

    `nrow` defaults to ceil(sqrt(N)), so 64 images make an 8x8 grid.
    """
    if images.dtype != torch.uint8:
        images = to_uint8(images)
    n, c, h, w = images.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    ncol = math.ceil(n / nrow)
    grid = np.full((padding + ncol * (h + padding), padding + nrow * (w + padding), c), pad_value, dtype=np.uint8)
    arr = images.permute(0, 2, 3, 1).cpu().numpy()  # (N, H, W, C)
    for i in range(n):
        row, col = divmod(i, nrow)
        y, x = padding + row * (h + padding), padding + col * (w + padding)
        grid[y : y + h, x : x + w] = arr[i]
    return grid


def _array_to_pil(arr: np.ndarray) -> Image.Image:
    if arr.shape[-1] == 1:
        return Image.fromarray(arr[..., 0], mode="L")
    return Image.fromarray(arr, mode="RGB")


def grid_image(images: torch.Tensor, nrow: int | None = None, padding: int = 2, scale: int = 1) -> Image.Image:
    """A Pillow image of the grid of `images` (in [-1, 1] or uint8), optionally enlarged `scale` times."""
    img = _array_to_pil(make_grid(images, nrow=nrow, padding=padding))
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    return img


def tensor_to_pil(image: torch.Tensor) -> Image.Image:
    """One image (C, H, W) in [-1, 1] or uint8 as a Pillow image."""
    if image.dtype != torch.uint8:
        image = to_uint8(image)
    return _array_to_pil(image.permute(1, 2, 0).cpu().numpy())


def resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize uint8 images (N, C, h, w) to (N, C, size, size) with antialiased bicubic filtering.

    Used for whole in-memory datasets (8x8 digits, 28x28 MNIST), where one batched
    call is much faster than resizing image by image.
    """
    if images.shape[-2:] == (size, size):
        return images
    out = []
    for chunk in images.split(4096):
        x = torch.nn.functional.interpolate(chunk.float(), size=(size, size), mode="bicubic", antialias=True, align_corners=False)
        out.append(x.round_().clamp_(0, 255).to(torch.uint8))
    return torch.cat(out)


def save_image_atomic(img: Image.Image, path: str | os.PathLike, **kwargs) -> Path:
    """Save a Pillow image so that `path` holds either the old file or the complete new one."""
    path = Path(path)
    fmt = kwargs.pop("format", None) or path.suffix.lstrip(".").upper().replace("JPG", "JPEG")
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return atomic_write_bytes(path, buf.getvalue())


def save_gif(frames: Sequence[Image.Image], path: str | os.PathLike, duration_ms: int = 200, last_frame_ms: int = 1500) -> Path:
    """Write an animated, looping GIF; the last frame is held longer so the final result can be seen."""
    if not frames:
        raise ValueError("a GIF needs at least one frame")
    frames = [f.convert("RGB") if f.mode not in ("L", "P") else f for f in frames]
    durations = [duration_ms] * (len(frames) - 1) + [last_frame_ms]
    return save_image_atomic(frames[0], path, format="GIF", save_all=True, append_images=list(frames[1:]), duration=durations, loop=0)
