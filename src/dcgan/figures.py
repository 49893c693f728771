"""Labelled pictures of samples, shared by training, the tools and the explorer: grids with labels, class rows,
numbered sheets, titles, rows and columns of pictures. The latent tools' own figures are `explore/figures.py`.

Every function returns a Pillow image (or a list of frames); none writes a
file. Small images are enlarged with nearest-neighbour to a readable cell size
and labels are drawn under the cells.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from PIL import Image, ImageDraw, ImageFont

from ._moved import forwarder
from .imaging import tensor_to_pil

__all__ = [
    "cell_image",
    "labelled_grid",
    "class_rows_image",
    "numbered_sheet",
    "titled",
    "stack_vertical",
    "side_by_side",
    "default_cell",
    "label_font",
    "BACKGROUND",
    "INK",
    "ACCENT",
]

BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)
ACCENT = (200, 30, 30)


def label_font(size: int = 12) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()


def cell_image(image: torch.Tensor, cell: int) -> Image.Image:
    """One image (C, H, W) in [-1, 1] or uint8 as an RGB cell of `cell` pixels (nearest when enlarging)."""
    img = tensor_to_pil(image).convert("RGB")
    if img.width != cell:
        img = img.resize((cell, cell), Image.Resampling.NEAREST if img.width < cell else Image.Resampling.LANCZOS)
    return img


def default_cell(images: torch.Tensor) -> int:
    size = images.shape[-1]
    return size * max(1, math.ceil(64 / size))  # at least 64 px, an integer zoom


def labelled_grid(
    images: torch.Tensor,
    labels: Sequence[str] | None = None,
    nrow: int | None = None,
    cell: int | None = None,
    padding: int = 4,
    label_height: int = 16,
    highlight: Sequence[int] = (),
) -> Image.Image:
    """A grid of images (N, C, H, W), `nrow` per row, each with its label underneath; cells listed in
    `highlight` get a red frame."""
    n = images.shape[0]
    cell = cell or default_cell(images)
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    lh = label_height if labels else 0
    canvas = Image.new("RGB", (padding + nrow * (cell + padding), padding + rows * (cell + lh + padding)), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    font = label_font(max(10, min(14, label_height - 3)))
    for i in range(n):
        r, c = divmod(i, nrow)
        x, y = padding + c * (cell + padding), padding + r * (cell + lh + padding)
        canvas.paste(cell_image(images[i], cell), (x, y))
        if i in highlight:
            draw.rectangle([x - 2, y - 2, x + cell + 1, y + cell + 1], outline=ACCENT, width=2)
        if labels:
            text = str(labels[i])
            width = draw.textlength(text, font=font)
            draw.text((x + (cell - width) / 2, y + cell + 1), text, fill=INK, font=font)
    return canvas


def class_rows_image(images: torch.Tensor, class_names: Sequence[str], cell: int | None = None, padding: int = 2) -> Image.Image:
    """A grid with one row per class, its name at the left: images (rows x cols, C, H, W) in row order,
    `class_names` one per row. With the same z down each column, a column is one style across the classes."""
    rows = len(class_names)
    cols = images.shape[0] // rows
    cell = cell or default_cell(images)
    font = label_font(12)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    margin = int(max(probe.textlength(str(n), font=font) for n in class_names)) + 10
    canvas = Image.new("RGB", (margin + padding + cols * (cell + padding), padding + rows * (cell + padding)), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for r, name in enumerate(class_names):
        y = padding + r * (cell + padding)
        draw.text((4, y + cell / 2 - 7), str(name), fill=INK, font=font)
        for c in range(cols):
            canvas.paste(cell_image(images[r * cols + c], cell), (margin + padding + c * (cell + padding), y))
    return canvas


def numbered_sheet(images: torch.Tensor, start: int = 0, nrow: int | None = None, cell: int | None = None) -> Image.Image:
    """Samples with their index under each, to pick exemplars by number (`--a 3,17,21`)."""
    return labelled_grid(images, [str(start + i) for i in range(images.shape[0])], nrow=nrow, cell=cell)


def titled(image: Image.Image, title: str, size: int = 14) -> Image.Image:
    """`image` with a line of text above it."""
    font = label_font(size)
    h = size + 10
    probe = ImageDraw.Draw(image)
    width = max(image.width, int(probe.textlength(title, font=font)) + 12)
    canvas = Image.new("RGB", (width, image.height + h), BACKGROUND)
    canvas.paste(image.convert("RGB"), (0, h))
    ImageDraw.Draw(canvas).text((6, 4), title, fill=INK, font=font)
    return canvas


def stack_vertical(images: Sequence[Image.Image], gap: int = 8) -> Image.Image:
    """Images one under the other, left-aligned, on white."""
    width = max(im.width for im in images)
    canvas = Image.new("RGB", (width, sum(im.height for im in images) + gap * (len(images) - 1)), BACKGROUND)
    y = 0
    for im in images:
        canvas.paste(im.convert("RGB"), (0, y))
        y += im.height + gap
    return canvas


def side_by_side(parts: Sequence[Image.Image], gap: int = 4) -> Image.Image:
    """Pictures in one row, centred vertically, `gap` pixels apart."""
    height = max(p.height for p in parts)
    canvas = Image.new("RGB", (sum(p.width for p in parts) + gap * (len(parts) - 1), height), BACKGROUND)
    x = 0
    for p in parts:
        canvas.paste(p, (x, (height - p.height) // 2))
        x += p.width + gap
    return canvas


# The latent tools' figures were here in 0.3.0: they resolve for one version, with a DeprecationWarning.
__getattr__ = forwarder("dcgan.figures", "dcgan.explore.figures")
