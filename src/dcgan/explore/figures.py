"""Pictures for the latent-space tools: walks, vector arithmetic, inversion, neighbours.

Every function returns a Pillow image (or a list of frames); none writes a file. They are laid out with the
general pictures of `dcgan.figures`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from PIL import Image, ImageDraw

from ..figures import BACKGROUND, INK, default_cell, label_font, labelled_grid, side_by_side, stack_vertical, titled
from ..imaging import to_uint8

__all__ = ["walk_figure", "walk_frames", "arithmetic_figure", "inversion_figure", "neighbors_figure"]


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
    font = label_font(max(14, cell // 3))
    w = draw.textlength(symbol, font=font)
    draw.text(((img.width - w) / 2, cell / 2 - cell // 6), symbol, fill=INK, font=font)
    return img


def arithmetic_figure(
    result, names: Sequence[str] = ("A", "B", "C"), indices: Sequence[Sequence[int]] | None = None, cell: int | None = None
) -> Image.Image:
    """The paper's figure-7 layout for an ArithmeticResult: each group's exemplars and their mean,
    the equation mean(A) - mean(B) + mean(C) = result, and the result's noise grid."""
    cell = cell or default_cell(result.grid)
    rows = []
    for g, (name, images) in enumerate(zip(names, result.exemplars)):
        labels = [f"#{i}" for i in indices[g]] if indices else None
        exemplars = labelled_grid(images, labels, nrow=images.shape[0], cell=cell)
        mean = labelled_grid(result.means[g : g + 1], [f"mean {name}"], cell=cell)
        rows.append(titled(side_by_side([exemplars, _symbol_cell("->", cell), mean]), f"group {name}", size=12))
    eq = side_by_side(
        [
            labelled_grid(result.means[0:1], [f"mean {names[0]}"], cell=cell),
            _symbol_cell("-", cell),
            labelled_grid(result.means[1:2], [f"mean {names[1]}"], cell=cell),
            _symbol_cell("+", cell),
            labelled_grid(result.means[2:3], [f"mean {names[2]}"], cell=cell),
            _symbol_cell("=", cell),
            labelled_grid(result.result.unsqueeze(0), ["result"], cell=cell),
        ]
    )
    left = stack_vertical(rows + [titled(eq, "arithmetic on the mean z of each group", size=12)])
    centre = (result.grid_size * result.grid_size) // 2
    grid = labelled_grid(result.grid, nrow=result.grid_size, cell=cell, highlight=[centre])
    right = titled(grid, f"result (centre) and result + N(0, {result.noise_scale:g}^2) noise", size=12)
    return side_by_side([left, _symbol_cell(" ", cell), right], gap=8)


def inversion_figure(target: torch.Tensor, result, cell: int | None = None) -> Image.Image:
    """Target | G(z) | absolute difference, with the reconstruction error."""
    diff = (result.image - target.float()).abs().mean(0, keepdim=True) - 1  # mean |error| per pixel, shown as grey in [-1, 1]
    images = torch.stack([target.float(), result.image, diff.expand_as(target)])
    grid = labelled_grid(images, ["target", "G(z)", "|difference|"], nrow=3, cell=cell)
    return titled(grid, f"MSE {result.mse:.4f}, PSNR {result.psnr:.1f} dB (best of {len(result.restart_mse)} restarts)", size=12)


def neighbors_figure(samples: torch.Tensor, neighbors: torch.Tensor, distances: torch.Tensor, title: str, cell: int | None = None) -> Image.Image:
    """Each generated sample (first column, framed) followed by its nearest training images with their distances."""
    q, k = neighbors.shape[:2]
    images = torch.cat(
        [samples.unsqueeze(1).to(neighbors.dtype) if samples.dtype == neighbors.dtype else _like(samples, neighbors).unsqueeze(1), neighbors], 1
    )
    labels = []
    for r in range(q):
        labels.append("sample")
        labels.extend(f"{float(d):.2f}" for d in distances[r])
    grid = labelled_grid(images.flatten(0, 1), labels, nrow=k + 1, cell=cell, highlight=[r * (k + 1) for r in range(q)])
    return titled(grid, title, size=12)


def _like(images: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Float images in [-1, 1] as uint8 when the reference is uint8 (for one grid)."""
    if reference.dtype == torch.uint8:
        return to_uint8(images)
    return images.float()
