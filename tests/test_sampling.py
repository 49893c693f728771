import pytest
import torch

from dcgan.errors import ConfigError
from dcgan.models import Generator, ModelConfig
from dcgan.sampling import generate, sample_z

pytestmark = pytest.mark.kernels  # depends on the CPU's kernels: make test-avx2 reruns it (pyproject's markers)


def test_priors_and_repeatability():
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    a, b = sample_z(1000, 20, "normal", g()), sample_z(1000, 20, "normal", g())
    assert torch.equal(a, b) and a.shape == (1000, 20)
    assert abs(a.mean().item()) < 0.05 and a.std().item() == pytest.approx(1.0, abs=0.05)
    u = sample_z(1000, 20, "uniform", g())
    assert u.min() >= -1 and u.max() <= 1 and u.std().item() == pytest.approx(1 / 3**0.5, abs=0.02)
    with pytest.raises(ConfigError):
        sample_z(0, 20)


def test_generate_uses_eval_mode_and_restores_state():
    G = Generator(ModelConfig(image_size=16, channels=1, z_dim=4, width=4))
    G.train()
    z = torch.randn(5, 4)
    before = [b.clone() for b in G.buffers()]
    out = generate(G, z, batch_size=2)  # chunked
    assert out.shape == (5, 1, 16, 16)
    assert G.training  # restored
    for a, b in zip(before, G.buffers()):  # eval mode: running statistics untouched
        assert torch.equal(a, b)
    # Eval-mode outputs do not depend on batch composition.
    assert torch.allclose(generate(G, z[:1]), out[:1], atol=1e-6)
