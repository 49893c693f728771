"""Drawing latent vectors and images. Pure functions: no file is read or written here."""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.optim.swa_utils import update_bn

from .errors import ConfigError
from .imaging import to_unit_range
from .models import ModelConfig, evaluating
from .models.conditioning import balanced_labels, check_labels
from .models.priors import get_prior
from .options import MAX_SEED  # declared with the seed check every command shares

__all__ = ["sample_z", "sample_labels", "balanced_labels", "generate", "standing_statistics", "with_real_statistics", "MAX_SEED"]


def sample_z(
    n: int, z_dim: int, prior: str = "normal", generator: torch.Generator | None = None, device: torch.device | str | None = None
) -> torch.Tensor:
    """Draw `n` latent vectors of shape (n, z_dim) from the model's prior (a name in `models.priors.LATENT_PRIORS`).

    `generator` makes the draw repeatable; its device decides where the draw
    happens unless `device` says otherwise.

    >>> z = sample_z(4, 100, "uniform", torch.Generator().manual_seed(0))
    """
    if n < 1:
        raise ConfigError(f"the number of samples must be at least 1, got {n}")
    if device is None:
        device = generator.device if generator is not None else "cpu"
    return get_prior(prior).sample((n, z_dim), generator, device)


def sample_labels(
    n: int, num_classes: int, generator: torch.Generator | None = None, device: torch.device | str | None = None
) -> torch.Tensor | None:
    """`n` class labels drawn uniformly, shape (n,) int64 (repeatable with `generator`); None when num_classes is 0."""
    if num_classes <= 0:
        return None
    if device is None:
        device = generator.device if generator is not None else "cpu"
    return torch.randint(num_classes, (n,), generator=generator, device=device)


def _config_of(G: nn.Module) -> ModelConfig:
    """The `ModelConfig` a generator carries as `G.config`; a ConfigError for a module without one."""
    config = getattr(G, "config", None)
    if not isinstance(config, ModelConfig):
        raise ConfigError(f"{type(G).__name__} is not a generator of this package: it has no ModelConfig as .config")
    return config


def generate(G: nn.Module, z: torch.Tensor, labels: torch.Tensor | int | None = None, batch_size: int = 256) -> torch.Tensor:
    """Images G(z) in [-1, 1], shape (n, C, H, W), computed in eval mode (BN running statistics).

    `labels`: for a class-conditional G, the class of each z, shape (n,) int64 (or one int for all);
    an unconditional G takes none. The model's train/eval state is restored afterwards.

    >>> images = generate(G, sample_z(10, 100), labels=torch.arange(10))  # one of each class
    """
    checked = check_labels(labels, z.shape[0], _config_of(G).num_classes)
    with evaluating(G):
        device = next(G.parameters()).device
        if checked is None:
            return torch.cat([G(chunk.to(device)).float() for chunk in z.split(batch_size)])
        return torch.cat([G(chunk.to(device), y.to(device)).float() for chunk, y in zip(z.split(batch_size), checked.split(batch_size))])


STANDING_BATCHES = 8  # batches of fresh z for standing statistics (1,024 samples at batch 128); `dcgan train --standing-batches`
STANDING_BATCH_SIZE = 128


def standing_statistics(G: nn.Module, num_batches: int = STANDING_BATCHES, batch_size: int = STANDING_BATCH_SIZE, seed: int = 0) -> nn.Module:
    """Recompute G's batch-norm running statistics from `num_batches` fresh, seeded batches of z.

    In train mode each BN layer sees batch statistics, which is how G made its images while it was
    trained; `torch.optim.swa_utils.update_bn` averages them over the batches (momentum None) into the
    running statistics, which eval mode then uses. Sampling stays deterministic and every image
    depends on its own z alone, but the statistics no longer lag the weights (BN's momentum 0.1 does).
    Modifies G's buffers in place (nothing else) and returns G, in the mode it was in.
    """
    c = _config_of(G)
    gen = torch.Generator().manual_seed(seed)
    device = next(G.parameters()).device
    batches = [sample_z(batch_size, c.z_dim, c.prior, gen) for _ in range(num_batches)]
    if not c.conditional:
        update_bn(batches, G, device=device)
        return G
    # A conditional G: each batch with uniformly drawn classes, through update_bn's own recipe
    # (running statistics reset, momentum None = a cumulative average, train mode for the passes).
    labels = [sample_labels(batch_size, c.num_classes, gen) for _ in range(num_batches)]
    norms = [m for m in G.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = {m: m.momentum for m in norms}
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    was_training = G.training
    G.train()
    with torch.no_grad():
        for z, y in zip(batches, labels):
            assert y is not None  # a conditional G has num_classes > 0
            G(z.to(device), y.to(device))
    for m in norms:
        m.momentum = momenta[m]
    G.train(was_training)
    return G


def with_real_statistics(
    D: nn.Module, images_uint8: torch.Tensor, max_images: int = 4096, batch_size: int = STANDING_BATCH_SIZE, seed: int = 0
) -> nn.Module:
    """A copy of D (eval mode) whose batch-norm statistics are those of real images alone.

    D's running statistics from training mix real and fake batches (about 70% fake at the
    paper's settings); the probe and the filter views read D on real images, so they use
    statistics of real batches: up to `max_images` of `images_uint8` (N, C, H, W), a seeded
    subset, in whole batches. `D` itself is left as it was.
    """
    D = copy.deepcopy(D)
    device = next(D.parameters()).device
    n = images_uint8.shape[0]
    pick = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[: min(n, max_images)]
    usable = len(pick) - len(pick) % batch_size or len(pick)  # whole batches: BN sees its usual batch size
    batches = [to_unit_range(chunk) for chunk in images_uint8[pick[:usable]].split(batch_size)]
    update_bn(batches, D, device=device)
    return D.eval()
