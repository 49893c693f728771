"""An exponential moving average of G's weights, with a half-life in images and a ramp-up (as StyleGAN2-ADA).

A fixed decay from the first step (0.999, a half-life of about 700 steps) carries
early, poor weights long into training: on a 12-minute MNIST run it made the
samples worse, not better. Here the half-life is set in images seen and, early
on, capped at a fraction of the images seen so far (the ramp-up), so the average
never reaches further back than a small part of the run.

The averaging itself is `torch.optim.swa_utils.AveragedModel` with
`get_ema_multi_avg_fn`; only the decay changes from step to step.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ..sampling import standing_statistics

__all__ = ["GeneratorEMA", "ema_decay"]


def ema_decay(batch_images: int, images_seen: int, half_life_images: float, rampup: float | None) -> float:
    """The decay of one update of `batch_images`: 0.5 ** (batch / half-life), the half-life capped at
    `rampup` x images seen (no cap when rampup is None)."""
    half_life = half_life_images
    if rampup is not None and rampup > 0:
        half_life = min(half_life, images_seen * rampup)
    return 0.5 ** (batch_images / max(half_life, 1e-8))


class GeneratorEMA:
    """The averaged generator: weights averaged after every step; batch-norm statistics recomputed
    from fresh z ("standing statistics") whenever it is about to be sampled or saved.

    Its BN buffers are not averaged: between refreshes they follow the trained G's (AveragedModel
    copies them), and `refresh` replaces them by statistics of the averaged weights themselves.
    """

    def __init__(self, G: nn.Module, half_life_images: float, rampup: float | None, stats_batches: int, stats_batch_size: int, seed: int):
        self.averaged = AveragedModel(G, use_buffers=False)
        self.half_life_images, self.rampup = half_life_images, rampup
        self.stats_batches, self.stats_batch_size, self.seed = stats_batches, stats_batch_size, seed
        self.updates = 0  # steps averaged so far: images seen = updates x images per step
        self._fresh_at: int | None = None  # the step whose weights the BN statistics were computed for

    @property
    def module(self) -> nn.Module:
        """The averaged Generator itself (eval mode whenever it is sampled)."""
        return self.averaged.module

    @torch.no_grad()
    def update(self, G: nn.Module, batch_images: int) -> None:
        """Average in G's weights after a step of `batch_images` images (over all processes)."""
        self.updates += 1
        decay = ema_decay(batch_images, self.updates * batch_images, self.half_life_images, self.rampup)
        self.averaged.multi_avg_fn = get_ema_multi_avg_fn(decay)
        self.averaged.update_parameters(G)  # the first update copies G
        self._fresh_at = None

    def refresh(self, step: int) -> nn.Module:
        """Standing statistics for the current weights (once per step), then the module, in eval mode."""
        if self._fresh_at != step:
            standing_statistics(self.module, self.stats_batches, self.stats_batch_size, seed=self.seed)
            self._fresh_at = step
        return self.module.eval()

    def state_dict(self) -> dict:
        return {
            "updates": self.updates,
            "half_life_images": self.half_life_images,
            "rampup": self.rampup,
            "standing_batches": self.stats_batches,
            "standing_batch_size": self.stats_batch_size,
        }

    def load_state_dict(self, state: dict) -> None:
        self.updates = int(state.get("updates", 0))
        self.averaged.n_averaged.fill_(self.updates)
        self._fresh_at = None
