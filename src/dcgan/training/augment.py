"""Differentiable augmentation of everything D sees (`--augment`): DiffAugment (Zhao et al. 2020), with ADA's
adaptive strength (Karras et al. 2020) as an option.

D sees real and fake images through the same random transforms, and G's gradient flows back through them,
so D cannot win by memorising the training images and G is not taught the transforms (DiffAugment's point).
Each transform is applied to each image with probability p:
- a fixed p (`--augment-p`, default 1: DiffAugment), or
- an adaptive p (`--augment-target T`, ADA's heuristic): every `ADJUST_EVERY` D updates, r = E[sign D(x)]
  over them; p rises when r > T (D is sure of the reals: it is winning) and falls when r < T, by
  batch x ADJUST_EVERY / (`--augment-kimg` x 1000) per adjustment, within [0, 1].

Everything stays on the device (p is a tensor; no host synchronisation per step), and every random draw comes
from the pipeline's own seeded generator, so runs repeat and resume exactly (`state_tensors`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

__all__ = ["AUGMENTATIONS", "Augment", "parse_policy", "ADJUST_EVERY"]

ADJUST_EVERY = 4  # D updates between adjustments of an adaptive p (ADA's 4 minibatches)
Transform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]  # (B, C, H, W) -> same shape, differentiable


def _uniform(x: torch.Tensor, gen: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.rand(x.shape[0], *shape, generator=gen, device=x.device, dtype=torch.float32)


def translation(x: torch.Tensor, gen: torch.Generator, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to `ratio` of its side in x and y, whole pixels, filling with 0 (mid-grey)."""
    b, _, h, w = x.shape
    max_shift = torch.tensor([w * ratio, h * ratio], device=x.device)
    shift = ((_uniform(x, gen, 2) * 2 - 1) * max_shift).round()  # (B, 2) pixels, (dx, dy)
    # nearest-neighbour sampling at whole-pixel offsets is an exact shift; outside the image grid_sample gives 0
    theta = torch.zeros(b, 2, 3, device=x.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, 0, 2] = -shift[:, 0] * 2 / w
    theta[:, 1, 2] = -shift[:, 1] * 2 / h
    grid = F.affine_grid(theta, [b, 1, h, w], align_corners=False)
    return F.grid_sample(x.float(), grid, mode="nearest", padding_mode="zeros", align_corners=False).to(x.dtype)


def cutout(x: torch.Tensor, gen: torch.Generator, ratio: float = 0.5) -> torch.Tensor:
    """Zero (mid-grey) one square of `ratio` of the side at a random place in each image."""
    _, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    corner = _uniform(x, gen, 2)  # (B, 2) in [0, 1): the square's top-left corner, the square may overhang
    top = (corner[:, 0] * (h + 1 - ch)).long()[:, None, None] - ch // 2
    left = (corner[:, 1] * (w + 1 - cw)).long()[:, None, None] - cw // 2
    rows = torch.arange(h, device=x.device)[None, :, None]  # (1, H, 1)
    cols = torch.arange(w, device=x.device)[None, None, :]  # (1, 1, W)
    inside = (rows >= top) & (rows < top + ch) & (cols >= left) & (cols < left + cw)  # (B, H, W)
    return x * (~inside)[:, None].to(x.dtype)


def color(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """DiffAugment's colour: brightness +U(-0.5, 0.5), saturation x U(0, 2) (RGB only), contrast x U(0.5, 1.5)."""
    r = _uniform(x, gen, 3).to(x.dtype)[:, :, None, None, None]  # (B, 3, 1, 1, 1)
    x = x + (r[:, 0] - 0.5)
    if x.shape[1] == 3:
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (r[:, 1] * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (r[:, 2] + 0.5) + mean


AUGMENTATIONS: dict[str, Transform] = {"translation": translation, "cutout": cutout, "color": color}


def parse_policy(policy: str) -> tuple[str, ...]:
    """`"translation,cutout"` -> ("translation", "cutout"); "none" or "" -> (); ValueError names an unknown one."""
    names = tuple(n.strip() for n in policy.split(",") if n.strip() and n.strip() != "none")
    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown:
        raise ValueError(f"unknown augmentation {unknown[0]!r}: use none or a comma-separated list of {', '.join(AUGMENTATIONS)}")
    return names


class Augment:
    """The transforms of one run, their probability p, and (adaptive) its controller; one seeded generator."""

    def __init__(self, policy: str, p: float, target: float | None, kimg: float, batch_size: int, device: torch.device, seed: int) -> None:
        self.names = parse_policy(policy)
        self.target, self.batch_size, self.kimg = target, batch_size, kimg
        self.gen = torch.Generator(device=device).manual_seed(seed)
        # an adaptive p starts at 0, as in ADA: no augmentation until D shows it is winning
        self.p = torch.tensor(0.0 if target is not None else p, device=device)
        self.sign_sum = torch.zeros((), device=device)  # sum of sign D(x) over this adjustment interval
        self.updates = 0  # D updates in this interval

    @property
    def enabled(self) -> bool:
        return bool(self.names)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W) with each transform applied to each image with probability p."""
        for name in self.names:
            keep = (_uniform(x, self.gen) >= self.p)[:, None, None, None]  # (B, 1, 1, 1): True = untouched
            x = torch.where(keep, x, AUGMENTATIONS[name](x, self.gen))
        return x

    def observe(self, real_logits: torch.Tensor) -> None:
        """After a D update: feed the adaptive controller D's logits on the (augmented) real batch."""
        if self.target is None:
            return
        self.sign_sum += torch.sign(real_logits.detach().float()).mean()
        self.updates += 1
        if self.updates >= ADJUST_EVERY:
            r = self.sign_sum / self.updates
            step = self.batch_size * self.updates / (self.kimg * 1000)
            self.p = (self.p + torch.sign(r - self.target) * step).clamp(0.0, 1.0)
            self.sign_sum.zero_()
            self.updates = 0

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """What an exact resume needs (CPU tensors, for the checkpoint's `extra.` entries)."""
        return {
            "augment.rng": self.gen.get_state(),
            "augment.p": self.p.detach().float().cpu().reshape(1),
            "augment.sign_sum": self.sign_sum.detach().float().cpu().reshape(1),
            "augment.updates": torch.tensor([self.updates], dtype=torch.int64),
        }

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore `state_tensors` (keys without the `extra.` prefix); missing keys leave the fresh state."""
        if "augment.rng" in tensors:
            self.gen.set_state(tensors["augment.rng"].cpu())
        if "augment.p" in tensors:
            self.p = tensors["augment.p"].to(self.p.device).reshape(())
            self.sign_sum = tensors["augment.sign_sum"].to(self.p.device).reshape(())
            self.updates = int(tensors["augment.updates"].reshape(-1)[0])
