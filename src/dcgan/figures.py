"""Pictures for the latent-space tools: numbered sheets, walks, arithmetic, inversion, neighbours.

Every function returns a Pillow image (or a list of frames); none writes a
file. Small images are enlarged with nearest-neighbour to a readable cell size
and labels are drawn under the cells.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from PIL import Image, ImageDraw, ImageFont

from .imaging import tensor_to_pil

__all__ = [
    "cell_image",
    "labelled_grid",
    "class_rows_image",
    "numbered_sheet",
    "walk_figure",
    "walk_frames",
    "arithmetic_figure",
    "inversion_figure",
    "neighbors_figure",
    "titled",
    "stack_vertical",
]

BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)
ACCENT = (200, 30, 30)


def _font(size: int = 12) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()


def cell_image(image: torch.Tensor, cell: int) -> Image.Image:
    """One image (C, H, W) in [-1, 1] or uint8 as an RGB cell of `cell` pixels (nearest when enlarging)."""
    img = tensor_to_pil(image).convert("RGB")
    if img.width != cell:
        img = img.resize((cell, cell), Image.NEAREST if img.width < cell else Image.LANCZOS)
    return img


def _default_cell(images: torch.Tensor) -> int:
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
    cell = cell or _default_cell(images)
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    lh = label_height if labels else 0
    canvas = Image.new("RGB", (padding + nrow * (cell + padding), padding + rows * (cell + lh + padding)), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    font = _font(max(10, min(14, label_height - 3)))
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
    cell = cell or _default_cell(images)
    font = _font(12)
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
    font = _font(size)
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


def walk_figure(walks: torch.Tensor, labels: Sequence[str] | None = None, cell: int | None = None) -> Image.Image:
    """Walks (P, S, C, H, W) as P rows of S steps; the endpoints are framed. `labels` names each row."""
    p, s = walks.shape[:2]
    grid = labelled_grid(walks.flatten(0, 1), nrow=s, cell=cell, highlight=[r * s for r in range(p)] + [r * s + s - 1 for r in range(p)])
    if labels:
        return titled(grid, "   ".join(labels), size=12)
    return grid


def walk_frames(walks: torch.Tensor, cell: int | None = None, ping_pong: bool = True) -> list[Image.Image]:
    """GIF frames: frame t shows every walk's image at step t side by side; forth and back so it loops."""
    p, s = walks.shape[:2]
    nrow = math.ceil(math.sqrt(p))
    frames = [labelled_grid(walks[:, t], nrow=nrow, cell=cell) for t in range(s)]
    if ping_pong and s > 2:
        frames = frames + frames[-2:0:-1]
    return frames


def _symbol_cell(symbol: str, cell: int) -> Image.Image:
    img = Image.new("RGB", (max(24, cell // 3), cell), BACKGROUND)
    draw = ImageDraw.Draw(img)
    font = _font(max(14, cell // 3))
    w = draw.textlength(symbol, font=font)
    draw.text(((img.width - w) / 2, cell / 2 - cell // 6), symbol, fill=INK, font=font)
    return img


def _row(parts: Sequence[Image.Image], gap: int = 4) -> Image.Image:
    height = max(p.height for p in parts)
    canvas = Image.new("RGB", (sum(p.width for p in parts) + gap * (len(parts) - 1), height), BACKGROUND)
    x = 0
    for p in parts:
        canvas.paste(p, (x, (height - p.height) // 2))
        x += p.width + gap
    return canvas


def arithmetic_figure(result, names: Sequence[str] = ("A", "B", "C"), indices: Sequence[Sequence[int]] | None = None, cell: int | None = None) -> Image.Image:
    """The paper's figure-7 layout for an ArithmeticResult: each group's exemplars and their mean,
    the equation mean(A) - mean(B) + mean(C) = result, and the result's noise grid."""
    cell = cell or _default_cell(result.grid)
    rows = []
    for g, (name, images) in enumerate(zip(names, result.exemplars)):
        labels = [f"#{i}" for i in indices[g]] if indices else None
        exemplars = labelled_grid(images, labels, nrow=images.shape[0], cell=cell)
        mean = labelled_grid(result.means[g : g + 1], [f"mean {name}"], cell=cell)
        rows.append(titled(_row([exemplars, _symbol_cell("->", cell), mean]), f"group {name}", size=12))
    eq = _row([
        labelled_grid(result.means[0:1], [f"mean {names[0]}"], cell=cell), _symbol_cell("-", cell),
        labelled_grid(result.means[1:2], [f"mean {names[1]}"], cell=cell), _symbol_cell("+", cell),
        labelled_grid(result.means[2:3], [f"mean {names[2]}"], cell=cell), _symbol_cell("=", cell),
        labelled_grid(result.result.unsqueeze(0), ["result"], cell=cell),
    ])
    left = stack_vertical(rows + [titled(eq, "arithmetic on the mean z of each group", size=12)])
    centre = (result.grid_size * result.grid_size) // 2
    grid = labelled_grid(result.grid, nrow=result.grid_size, cell=cell, highlight=[centre])
    right = titled(grid, f"result (centre) and result + N(0, {result.noise_scale:g}^2) noise", size=12)
    return _row([left, _symbol_cell(" ", cell), right], gap=8)


def inversion_figure(target: torch.Tensor, result, cell: int | None = None) -> Image.Image:
    """Target | G(z) | absolute difference, with the reconstruction error."""
    diff = (result.image - target.float()).abs().mean(0, keepdim=True) - 1  # mean |error| per pixel, shown as grey in [-1, 1]
    images = torch.stack([target.float(), result.image, diff.expand_as(target)])
    grid = labelled_grid(images, ["target", "G(z)", "|difference|"], nrow=3, cell=cell)
    return titled(grid, f"MSE {result.mse:.4f}, PSNR {result.psnr:.1f} dB (best of {len(result.restart_mse)} restarts)", size=12)


def neighbors_figure(samples: torch.Tensor, neighbors: torch.Tensor, distances: torch.Tensor, title: str, cell: int | None = None) -> Image.Image:
    """Each generated sample (first column, framed) followed by its nearest training images with their distances."""
    q, k = neighbors.shape[:2]
    images = torch.cat([samples.unsqueeze(1).to(neighbors.dtype) if samples.dtype == neighbors.dtype else _like(samples, neighbors).unsqueeze(1), neighbors], 1)
    labels = []
    for r in range(q):
        labels.append("sample")
        labels.extend(f"{float(d):.2f}" for d in distances[r])
    grid = labelled_grid(images.flatten(0, 1), labels, nrow=k + 1, cell=cell, highlight=[r * (k + 1) for r in range(q)])
    return titled(grid, title, size=12)


def _like(images: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Float images in [-1, 1] as uint8 when the reference is uint8 (for one grid)."""
    if reference.dtype == torch.uint8:
        from .imaging import to_uint8

        return to_uint8(images)
    return images.float()
