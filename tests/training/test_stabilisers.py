"""The options beyond the paper (--loss, --r1-gamma, --augment, --d-norm) and the paper's own settings (--recipe paper)."""

import json
import math

import pytest
import torch
from torch import nn

from dcgan.models import ModelConfig, build_models
from dcgan.sampling import sample_z
from dcgan.training import TrainConfig, Trainer
from dcgan.training.losses import LOSSES
from dcgan.training.recipes import get_recipe

from conftest import TINY, run_cli

pytestmark = pytest.mark.kernels  # trains on the CPU's kernels: make test-avx2 reruns it


def make_trainer(data, run_dir=None, model=None, **train):
    train.setdefault("batch_size", 32)
    train.setdefault("seed", 0)
    train.setdefault("device", "cpu")
    return Trainer(ModelConfig(**{**TINY, **(model or {})}), TrainConfig(**train), data, run_dir=run_dir, progress=False)


def test_hinge_loss_values():
    loss = LOSSES["hinge"]
    logits = torch.tensor([2.0, 0.5, -3.0])
    assert loss.d_real(logits, 0.0).item() == pytest.approx((0 + 0.5 + 4) / 3)
    assert loss.d_fake(logits).item() == pytest.approx((3 + 1.5 + 0) / 3)
    assert loss.g(logits).item() == pytest.approx(-(2 + 0.5 - 3) / 3)
    # the paper's loss is BCE, with label smoothing on the real side
    ns = LOSSES["non-saturating"]
    assert ns.d_real(torch.zeros(4), 0.1).item() == pytest.approx(math.log(2))
    assert ns.g(torch.zeros(4)).item() == pytest.approx(math.log(2))


def test_r1_penalty_is_the_squared_input_gradient_scaled_by_its_interval(digits16):
    trainer = make_trainer(digits16, r1_gamma=2.0, r1_every=4)
    real, _ = trainer.feed.batch(trainer.feed.epoch_order(0), 0)
    penalty = trainer.gan.r1_penalty(real, None)
    x = real.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(trainer.D(x).sum(), x)
    expected = 2.0 / 2 * grad.pow(2).sum(dim=(1, 2, 3)).mean() * 4
    assert penalty.item() == pytest.approx(expected.item(), rel=1e-5)
    penalty.backward()  # it has a graph into D's weights (the double backward)
    convs = [m for m in trainer.D.modules() if isinstance(m, nn.Conv2d)]
    assert all(m.weight.grad is not None and m.weight.grad.abs().sum() > 0 for m in convs)  # (biases do not move an input gradient)


def test_r1_is_lazy_and_pulls_d_flat_around_the_reals(digits16):
    """With R1 every D update, D's input gradient at the reals ends far smaller than without it."""

    def input_gradient(**train):
        trainer = make_trainer(digits16, steps=30, lr_d=1e-3, **train)
        trainer.train()
        real, _ = trainer.feed.batch(trainer.feed.epoch_order(0), 0)
        x = real.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(trainer.D(x).sum(), x)
        return grad.pow(2).sum(dim=(1, 2, 3)).mean().item(), trainer.gan.d_updates

    plain, updates = input_gradient()
    penalised, _ = input_gradient(r1_gamma=10.0, r1_every=1)
    assert updates == 30
    assert penalised < 0.5 * plain


def test_spectral_norm_keeps_every_conv_of_d_at_unit_norm_and_drops_its_batch_norm():
    cfg = ModelConfig(**{**TINY, "d_norm": "spectral"})
    G, D = build_models(cfg, seed=0)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in D.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in G.modules())  # G keeps the paper's batch norm
    convs = [m for m in D.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(nn.utils.parametrize.is_parametrized(m, "weight") for m in convs)
    D.train()
    for _ in range(30):  # power iterations converge in training-mode forwards
        D(G(torch.randn(4, cfg.z_dim)))
    D.eval()
    for conv in convs:
        sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2).item()
        assert sigma == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize(
    "options",
    [
        dict(loss="hinge"),
        dict(r1_gamma=1.0, r1_every=2),
        dict(augment="translation,cutout,color"),
        dict(augment="translation,cutout", augment_target=0.6, augment_kimg=1),
        dict(model=dict(d_norm="spectral"), loss="hinge"),
    ],
)
def test_each_option_trains_with_finite_figures(digits16, options):
    trainer = make_trainer(digits16, steps=4, log_every=2, **options)
    result = trainer.train()
    assert result.step == 4 and all(math.isfinite(result.last[k]) for k in ("loss_d", "loss_g", "d_real", "d_fake"))


def test_adaptive_augmentation_reacts_to_a_winning_d(digits16, tmp_path):
    """G barely learns, D wins: the probability climbs from 0 and the log shows it."""
    trainer = make_trainer(
        digits16,
        run_dir=tmp_path / "run",
        steps=40,
        log_every=5,
        lr_g=1e-7,
        lr_d=1e-3,
        augment="translation,cutout",
        augment_target=0.6,
        augment_kimg=1,
    )
    trainer.train()
    ps = [json.loads(line).get("augment_p") for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    ps = [p for p in ps if p is not None]
    assert len(ps) >= 6 and ps[-1] > 0.3 and ps[-1] > ps[0]


def test_resume_with_every_option_equals_an_uninterrupted_run(tmp_path, digits16):
    options = dict(loss="hinge", r1_gamma=1.0, r1_every=3, augment="translation,cutout,color", augment_target=0.6, augment_kimg=1, batch_size=64)
    model = dict(d_norm="spectral")
    straight = make_trainer(digits16, tmp_path / "straight", model, steps=14, **options)
    straight.train()
    part = make_trainer(digits16, tmp_path / "resumed", model, steps=8, **options)
    part.train()
    resumed = Trainer.resume(tmp_path / "resumed", progress=False, steps=14)
    resumed.train()
    for name, tensor in straight.G.state_dict().items():
        assert torch.equal(tensor, resumed.G.state_dict()[name]), name
    for name, tensor in straight.D.state_dict().items():
        assert torch.equal(tensor, resumed.D.state_dict()[name]), name
    assert float(straight.gan.augment.p) == float(resumed.gan.augment.p) > 0
    assert straight.gan.d_updates == resumed.gan.d_updates == 14


def test_recipe_paper_trains_the_papers_dcgan_step_for_step(digits16):
    """--recipe paper against the paper's algorithm written out here: BCE losses, G's non-saturating loss,
    Adam(2e-4, (0.5, 0.999)), batch 128; the same initial weights, batches and noise give the same G, bit for bit."""
    options = {**get_recipe("paper").options, "data": "digits", "seed": 0, "steps": 3, "device": "cpu", "channels_last": False, "precision": "fp32"}
    trainer = Trainer.from_options(progress=False, **{**options, **TINY})  # the tiny model over the recipe's width
    assert trainer.config.batch_size == 128 and trainer.gan.ema is None
    cfg = trainer.model_config
    G, D = build_models(cfg, seed=0)
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999), fused=True)
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999), fused=True)
    bce = nn.BCEWithLogitsLoss()
    noise = torch.Generator().manual_seed(0)
    order = trainer.feed.epoch_order(0)
    for step in range(3):
        real, _ = trainer.feed.batch(order, step)
        fake = G(sample_z(128, cfg.z_dim, cfg.prior, noise))
        opt_d.zero_grad()
        bce(D(real), torch.ones(128)).backward()
        bce(D(fake.detach()), torch.zeros(128)).backward()
        opt_d.step()
        opt_g.zero_grad()
        for p in D.parameters():
            p.requires_grad_(False)
        bce(D(fake), torch.ones(128)).backward()
        for p in D.parameters():
            p.requires_grad_(True)
        opt_g.step()
    trainer.train()
    for name, tensor in G.state_dict().items():
        assert torch.equal(tensor, trainer.G.state_dict()[name]), name


def test_an_adaptive_target_without_transforms_is_refused(capsys):
    assert run_cli("train", "--data", "digits", "--augment-target", "0.6", "--steps", "1") == 2
    assert "give them too" in capsys.readouterr().err


def test_label_smoothing_with_the_hinge_loss_is_refused(capsys):
    assert run_cli("train", "--data", "digits", "--loss", "hinge", "--label-smoothing", "0.1", "--steps", "1") == 2
    assert "the hinge loss has none" in capsys.readouterr().err
