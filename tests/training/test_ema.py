"""The averaged generator (EMA with a half-life in images) and standing batch-norm statistics."""

from __future__ import annotations

import pytest
import torch

from dcgan.checkpoint import load_checkpoint
from dcgan.models import ModelConfig, build_models
from dcgan.sampling import generate, sample_z, standing_statistics
from dcgan.training import TrainConfig, Trainer
from dcgan.training.ema import GeneratorEMA, ema_decay

from conftest import TINY

pytestmark = pytest.mark.kernels  # depends on the CPU's kernels: make test-avx2 reruns it (pyproject's markers)


def test_decay_follows_the_half_life_and_ramps_up():
    # Half-life 10k images, batch 100: 0.5 ** (100 / 10000) once the ramp-up no longer caps it.
    assert ema_decay(100, 1_000_000, 10_000, 0.05) == pytest.approx(0.5**0.01)
    # Early on the half-life is 5% of the images seen: 2,000 images in, it is 100 images, one batch.
    assert ema_decay(100, 2_000, 10_000, 0.05) == pytest.approx(0.5)
    assert ema_decay(100, 2_000, 10_000, None) == pytest.approx(0.5**0.01)
    # A longer run never forgets faster: the decay grows with the images seen.
    decays = [ema_decay(128, n * 128, 10_000, 0.05) for n in (1, 10, 100, 1000)]
    assert decays == sorted(decays)


def test_the_average_starts_as_g_then_lags_it():
    G, _ = build_models(ModelConfig(**TINY), seed=0)
    ema = GeneratorEMA(G, half_life_images=1000, rampup=None, stats_batches=2, stats_batch_size=16, seed=0)
    ema.update(G, 100)
    for a, b in zip(ema.module.parameters(), G.parameters()):
        assert torch.equal(a, b)
    before = [p.detach().clone() for p in G.parameters()]
    with torch.no_grad():
        for p in G.parameters():
            p.add_(1.0)
    ema.update(G, 100)
    decay = 0.5 ** (100 / 1000)
    for a, old in zip(ema.module.parameters(), before):
        assert torch.allclose(a, old + (1 - decay), atol=1e-6)  # lerp towards the new weights by 1 - decay


def test_standing_statistics_are_the_batch_statistics_and_deterministic():
    G, _ = build_models(ModelConfig(**TINY), seed=0)
    bn = G.blocks[0][1]
    standing_statistics(G, num_batches=4, batch_size=64, seed=5)
    first = bn.running_mean.clone(), bn.running_var.clone()
    standing_statistics(G, num_batches=4, batch_size=64, seed=5)
    assert torch.equal(first[0], bn.running_mean) and torch.equal(first[1], bn.running_var)
    # The statistics of the projection layer's output over the same 256 z, computed by hand.
    gen = torch.Generator().manual_seed(5)
    z = torch.cat([sample_z(64, 8, "normal", gen) for _ in range(4)])
    with torch.no_grad():
        h = G.blocks[0][0](z.reshape(-1, 8, 1, 1))  # (256, C, 4, 4) before batch norm
    assert torch.allclose(bn.running_mean, h.mean(dim=(0, 2, 3)), atol=1e-5)
    # Images depend on their own z alone: a sample is the same alone and inside a batch.
    z = sample_z(8, 8, "normal", torch.Generator().manual_seed(1))
    assert torch.allclose(generate(G, z)[:1], generate(G, z[:1]), atol=1e-6)


def _run(tmp_path, digits16, **train):
    config = TrainConfig(**{"batch_size": 64, "seed": 0, "device": "cpu", "steps": 12, "standing_batches": 2, **train})
    trainer = Trainer(ModelConfig(**TINY), config, digits16, run_dir=tmp_path, progress=False)
    trainer.train()
    return trainer


def test_checkpoints_carry_the_average_and_sampling_uses_it(tmp_path, digits16):
    trainer = _run(tmp_path / "run", digits16)
    ckpt = load_checkpoint(tmp_path / "run")
    assert ckpt.has_ema and ckpt.generator_kind() == "ema" and ckpt.generator_kind(raw=True) == "raw"
    assert ckpt.record.ema["updates"] == 12
    averaged, raw = ckpt.build_generator(), ckpt.build_generator(raw=True)
    for a, b in zip(averaged.state_dict().values(), trainer.gan.ema.module.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(raw.state_dict().values(), trainer.G.state_dict().values()):
        assert torch.equal(a, b)
    z = sample_z(4, 8, "normal", torch.Generator().manual_seed(0))
    assert not torch.equal(generate(averaged, z), generate(raw, z))
    # The saved average carries standing statistics for its own weights, not the trained G's running ones.
    recomputed = standing_statistics(ckpt.build_generator(), num_batches=2, batch_size=64, seed=3)
    for name, value in averaged.state_dict().items():
        if "running" in name:  # (the trainer's copy is channels_last: the same sums in another order)
            assert torch.allclose(value, recomputed.state_dict()[name], rtol=1e-4, atol=1e-6), name
            assert not torch.allclose(value, raw.state_dict()[name], rtol=1e-3), name


def test_ema_off_saves_the_trained_g_alone(tmp_path, digits16):
    _run(tmp_path / "run", digits16, ema=False)
    ckpt = load_checkpoint(tmp_path / "run")
    assert not ckpt.has_ema and ckpt.generator_kind() == "raw" and ckpt.record.ema == {}


def test_d_reads_real_images_with_real_batch_statistics(digits16):
    from dcgan.sampling import with_real_statistics

    _, D = build_models(ModelConfig(**TINY), seed=0)
    before = {k: v.clone() for k, v in D.state_dict().items()}
    real = with_real_statistics(D, digits16.images, max_images=256, batch_size=64)
    for k, v in D.state_dict().items():  # the given D is untouched
        assert torch.equal(v, before[k]), k
    assert not real.training
    bn = real.blocks[1][1]  # D's first batch norm (the input block has none)
    pick = torch.randperm(len(digits16), generator=torch.Generator().manual_seed(0))[:256]
    x = digits16.images[pick].float().div(127.5).sub(1)
    with torch.no_grad():
        h = real.blocks[1][0](real.blocks[0](x))  # the features that batch norm normalises
    assert torch.allclose(bn.running_mean, h.mean(dim=(0, 2, 3)), atol=1e-5)
