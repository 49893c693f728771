"""The prior registry: draws, inversion's penalty and projection, and a prior added by one entry."""

import math

import pytest
import torch

from dcgan.errors import ConfigError
from dcgan.explore.latent import move_along
from dcgan.models import PRIORS, ModelConfig
from dcgan.models.priors import LATENT_PRIORS, Prior, get_prior, register_prior
from dcgan.sampling import sample_z


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_the_priors_are_the_registry_and_the_options_choices():
    assert PRIORS == tuple(LATENT_PRIORS) == ("normal", "uniform")
    assert ModelConfig.__dataclass_fields__["prior"].metadata["option"]["choices"] == PRIORS
    with pytest.raises(ConfigError, match=r"^unknown prior 'cauchy'$"):
        get_prior("cauchy")
    with pytest.raises(ConfigError, match="unknown prior 'cauchy'"):
        sample_z(2, 3, "cauchy")


def test_draws_are_the_torch_draws_they_always_were():
    assert torch.equal(get_prior("normal").sample((5, 7), _gen(3)), torch.randn(5, 7, generator=_gen(3)))
    assert torch.equal(get_prior("uniform").sample((5, 7), _gen(3)), torch.rand(5, 7, generator=_gen(3)) * 2 - 1)
    assert torch.equal(sample_z(5, 7, "uniform", _gen(3)), torch.rand(5, 7, generator=_gen(3)) * 2 - 1)
    assert get_prior("normal").std == 1.0 and get_prior("uniform").std == pytest.approx(1 / math.sqrt(3))


def test_penalty_and_projection():
    normal, uniform = get_prior("normal"), get_prior("uniform")
    z = torch.tensor([[1.0, 1.0, 1.0, 1.0], [2.0, 0.0, 0.0, 0.0], [3.0, -3.0, 0.5, 0.0]])
    assert torch.equal(normal.penalty(z), (z.square().sum(1) / 4 - 1) ** 2)
    assert normal.penalty(z)[0] == 0 and uniform.penalty(z) is None
    assert torch.equal(normal.project_(z.clone()), z)
    moved = z.clone()
    assert uniform.project_(moved) is moved and torch.equal(moved, z.clamp(-1, 1))


@pytest.fixture
def laplace():
    """A prior registered for one test."""

    class Laplace(Prior):
        name, std = "laplace", math.sqrt(2)

        def sample(self, shape, generator=None, device=None):
            u = torch.rand(shape, generator=generator, device=device) - 0.5
            return -u.sign() * torch.log1p(-2 * u.abs())

        def project_(self, z):
            return z.clamp_(-10, 10)

    yield register_prior(Laplace())
    del LATENT_PRIORS["laplace"]


def test_a_prior_is_one_registry_entry(laplace):
    z = sample_z(4, 3, "laplace", _gen(1))
    assert z.shape == (4, 3) and torch.equal(z, sample_z(4, 3, "laplace", _gen(1)))
    moved = move_along(torch.zeros(3), torch.eye(3)[:1], [100.0], prior="laplace")  # sqrt(2) * 100, projected
    assert moved.tolist() == [10.0, 0.0, 0.0]
