"""The adversarial losses, by name (`--loss`): what D minimises on real and fake logits, and what G minimises.

- `non-saturating` (the paper's): D minimises BCE with targets 1 (real, or 1 - S with one-sided label
  smoothing) and 0 (fake); G minimises -log D(G(z)), BCE with target 1.
- `hinge` (Lim & Ye 2017; SNGAN, BigGAN): D minimises relu(1 - D(x)) + relu(1 + D(G(z))); G minimises -D(G(z)).
  D stops pushing on samples it already scores beyond the margin, which keeps its logits bounded.

Every function takes logits (B,) in fp32 and returns a scalar loss.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["AdversarialLoss", "LOSSES", "DEFAULT_LOSS", "PAPER_LOSS"]


@dataclass(frozen=True)
class AdversarialLoss:
    """One loss: D's two halves and G's."""

    d_real: Callable[[torch.Tensor, float], torch.Tensor]  # (logits of real images, label smoothing) -> loss
    d_fake: Callable[[torch.Tensor], torch.Tensor]  # logits of fakes -> D's loss on them
    g: Callable[[torch.Tensor], torch.Tensor]  # logits of fakes -> G's loss
    description: str  # one line for the docs


def _bce_real(logits: torch.Tensor, smoothing: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, 1.0 - smoothing))


def _bce_fake(logits: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits))


def _bce_g(logits: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))


def _hinge_real(logits: torch.Tensor, smoothing: float) -> torch.Tensor:
    # label smoothing is a BCE notion (TrainConfig refuses it with this loss); the margin plays its part here
    return F.relu(1.0 - logits).mean()


def _hinge_fake(logits: torch.Tensor) -> torch.Tensor:
    return F.relu(1.0 + logits).mean()


def _hinge_g(logits: torch.Tensor) -> torch.Tensor:
    return -logits.mean()


LOSSES: dict[str, AdversarialLoss] = {
    "non-saturating": AdversarialLoss(_bce_real, _bce_fake, _bce_g, "the paper's: BCE for D, -log D(G(z)) for G"),
    "hinge": AdversarialLoss(_hinge_real, _hinge_fake, _hinge_g, "relu(1 - D(x)) + relu(1 + D(G(z))) for D, -D(G(z)) for G"),
}
PAPER_LOSS = "non-saturating"
DEFAULT_LOSS = "non-saturating"
