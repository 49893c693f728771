"""Drawing latent vectors and images. Pure functions: no file is read or written here."""

from __future__ import annotations

import torch
from torch import nn

from .errors import ConfigError
from .models import evaluating

__all__ = ["sample_z", "generate", "MAX_SEED"]

MAX_SEED = 2**32 - 1  # the largest seed any command takes: seeds are mixed with epochs, ranks and steps into 64-bit seeds


def sample_z(
    n: int,
    z_dim: int,
    prior: str = "normal",
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Draw `n` latent vectors of shape (n, z_dim) from the model's prior.

    `generator` makes the draw repeatable; its device decides where the draw
    happens unless `device` says otherwise.

    >>> z = sample_z(4, 100, "uniform", torch.Generator().manual_seed(0))
    """
    if n < 1:
        raise ConfigError(f"the number of samples must be at least 1, got {n}")
    if device is None:
        device = generator.device if generator is not None else "cpu"
    if prior == "normal":
        return torch.randn(n, z_dim, generator=generator, device=device)
    if prior == "uniform":
        return torch.rand(n, z_dim, generator=generator, device=device) * 2 - 1
    raise ConfigError(f"unknown prior {prior!r}")


def generate(G: nn.Module, z: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Images G(z) in [-1, 1], shape (n, C, H, W), computed in eval mode (BN running statistics).

    The model's train/eval state is restored afterwards.
    """
    with evaluating(G):
        device = next(G.parameters()).device
        return torch.cat([G(chunk.to(device)).float() for chunk in z.split(batch_size)])
