"""The distributions z is drawn from (`ModelConfig.prior`), looked up by name in `LATENT_PRIORS`.

Each prior says how to draw z (`sample`, and in words and code for model cards), the spread of one coordinate (`std`, the unit principal
directions are moved in), and how a z found by optimisation or moved by hand is kept where G was
trained: a penalty that inversion adds to its loss (`penalty`), and a projection back into the
prior's support (`project_`). A new prior is one `register_prior` call; `PRIORS` (the names) are the
choices of `--prior`.
"""

from __future__ import annotations

import math

import torch

from ..errors import ConfigError

__all__ = ["Prior", "NormalPrior", "UniformPrior", "LATENT_PRIORS", "PRIORS", "register_prior", "get_prior"]


class Prior:
    """A distribution of z: `sample` draws it; `penalty` and `project_` keep an optimised z near it."""

    name: str = ""
    std: float = 1.0  # the standard deviation of one coordinate of z
    description: str = ""  # the distribution in words, for model cards
    torch_code: str = ""  # a PyTorch expression for n vectors ({z_dim} filled in), for model cards
    numpy_code: str = ""  # the NumPy one, float32, from `rng = np.random.default_rng(seed)`

    def sample(self, shape: tuple[int, ...], generator: torch.Generator | None = None, device: torch.device | str | None = None) -> torch.Tensor:
        """A draw of `shape` (repeatable with `generator`)."""
        raise NotImplementedError

    def penalty(self, z: torch.Tensor) -> torch.Tensor | None:
        """Per row of z (B, D), how far it strays from the prior's typical set (B,); None when the prior needs none."""
        return None

    def project_(self, z: torch.Tensor) -> torch.Tensor:
        """z moved, in place, into the prior's support (where G was trained); returns z."""
        return z


class NormalPrior(Prior):
    """The standard normal N(0, I). Its typical set is the shell |z|^2 ~ D, which inversion's penalty keeps z near."""

    name, std = "normal", 1.0
    description = "standard normal N(0, I)"
    torch_code, numpy_code = "torch.randn(n, {z_dim})", "rng.standard_normal((n, {z_dim}), dtype=np.float32)"

    def sample(self, shape, generator=None, device=None):
        return torch.randn(shape, generator=generator, device=device)

    def penalty(self, z):
        return (z.square().sum(1) / z.shape[1] - 1) ** 2


class UniformPrior(Prior):
    """U(-1, 1) in every coordinate (the paper's prior). z is clamped to [-1, 1]."""

    name, std = "uniform", 1 / math.sqrt(3)
    description = "uniform U(-1, 1) in every coordinate"
    torch_code, numpy_code = "torch.rand(n, {z_dim}) * 2 - 1", "rng.uniform(-1, 1, (n, {z_dim})).astype(np.float32)"

    def sample(self, shape, generator=None, device=None):
        return torch.rand(shape, generator=generator, device=device) * 2 - 1

    def project_(self, z):
        return z.clamp_(-1, 1)


LATENT_PRIORS: dict[str, Prior] = {}


def register_prior(prior: Prior) -> Prior:
    """Add `prior` to LATENT_PRIORS under its name (the names in PRIORS, the choices of --prior, are those at import)."""
    LATENT_PRIORS[prior.name] = prior
    return prior


register_prior(NormalPrior())
register_prior(UniformPrior())
PRIORS = tuple(LATENT_PRIORS)  # ("normal", "uniform"): ModelConfig.prior's choices


def get_prior(name: str) -> Prior:
    """The prior called `name`; ConfigError for an unknown one."""
    prior = LATENT_PRIORS.get(name)
    if prior is None:
        raise ConfigError(f"unknown prior {name!r}")
    return prior
