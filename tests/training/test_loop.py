import json
import math

import pytest
import torch

from dcgan.errors import ConfigError
from dcgan.models import ModelConfig
from dcgan.training import Callback, TrainConfig, Trainer, cpu_has_bf16
from dcgan.training.step import cpu_matrix_units

from conftest import TINY

pytestmark = pytest.mark.kernels  # depends on the CPU's kernels: make test-avx2 reruns it (pyproject's markers)


class StopAt(Callback):
    """Asks the loop to stop at the first log point at or after `step`, as Ctrl-C would."""

    def __init__(self, step):
        self.step = step

    def on_log(self, trainer, record):
        if trainer.state.step >= self.step:
            trainer.request_stop()


def make_trainer(data, run_dir=None, **train):
    train.setdefault("batch_size", 32)
    train.setdefault("seed", 0)
    train.setdefault("device", "cpu")
    return Trainer(ModelConfig(**TINY), TrainConfig(**train), data, run_dir=run_dir, progress=False)


def test_one_step_changes_every_parameter_and_gives_finite_losses(digits16):
    trainer = make_trainer(digits16)
    before_g = {k: v.clone() for k, v in trainer.G.named_parameters()}
    before_d = {k: v.clone() for k, v in trainer.D.named_parameters()}
    order = trainer.feed.epoch_order(0)
    figures = trainer.gan.step(trainer.feed.batch(order, 0))
    for key in ("loss_d", "loss_g", "d_real", "d_fake"):
        assert math.isfinite(figures[key].item())
    assert 0 < figures["d_real"].item() < 1 and 0 < figures["d_fake"].item() < 1
    for name, p in trainer.G.named_parameters():
        assert not torch.equal(p, before_g[name]), f"G.{name} did not change"
    for name, p in trainer.D.named_parameters():
        assert not torch.equal(p, before_d[name]), f"D.{name} did not change"


def test_batches_are_scaled_to_minus_one_one(digits16):
    trainer = make_trainer(digits16)
    batch, labels = trainer.feed.batch(trainer.feed.epoch_order(0), 0)
    assert batch.shape == (32, 1, 16, 16)
    assert labels.shape == (32,) and labels.dtype == torch.int64  # the labels travel with the images
    assert batch.min().item() == -1.0 and batch.max().item() == 1.0


def test_d_loss_falls_when_only_d_trains(digits16):
    """A sanity check that the D step optimises its objective."""
    trainer = make_trainer(digits16, lr_d=1e-3)
    real, _ = trainer.feed.batch(trainer.feed.epoch_order(0), 0)
    with torch.no_grad():
        fake = trainer.G(torch.randn(32, 8))
    first = trainer.gan.d_step(real, fake)["loss_d"].item()
    for _ in range(20):
        last = trainer.gan.d_step(real, fake)["loss_d"].item()
    assert last < 0.5 * first


@pytest.mark.parametrize("options", [dict(label_smoothing=0.1), dict(d_steps=2), dict(g_steps=2)])
def test_stabiliser_options_run(digits16, options):
    trainer = make_trainer(digits16, steps=3, **options)
    result = trainer.train()
    assert result.step == 3 and math.isfinite(result.last["loss_d"])


def test_same_seed_same_run_different_seed_different_run(digits16):
    a = make_trainer(digits16, steps=4, seed=5)
    b = make_trainer(digits16, steps=4, seed=5)
    c = make_trainer(digits16, steps=4, seed=6)
    for t in (a, b, c):
        t.train()
    for (_, pa), (_, pb) in zip(a.G.state_dict().items(), b.G.state_dict().items()):
        assert torch.equal(pa, pb)
    assert any(not torch.equal(pa, pc) for pa, pc in zip(a.G.parameters(), c.G.parameters()))


def _state(trainer):
    out = {f"G.{k}": v for k, v in trainer.G.state_dict().items()}
    out.update({f"D.{k}": v for k, v in trainer.D.state_dict().items()})
    out.update({f"G_ema.{k}": v for k, v in trainer.gan.ema.module.state_dict().items()})  # the averaged G too
    for name, opt in (("opt_g", trainer.gan.opt_g), ("opt_d", trainer.gan.opt_d)):
        for pid, st in opt.state_dict()["state"].items():
            for k, v in st.items():
                out[f"{name}.{pid}.{k}"] = v
    return out


@pytest.mark.parametrize("first,total", [(7, 19), (11, 15)])  # mid-epoch and on an epoch boundary (1437 // 128 = 11)
def test_resume_equals_uninterrupted_run_bit_for_bit(tmp_path, digits16, first, total):
    straight = make_trainer(digits16, run_dir=tmp_path / "straight", steps=total, batch_size=128)
    straight.train()

    part = make_trainer(digits16, run_dir=tmp_path / "resumed", steps=first, batch_size=128)
    part.train()
    del part
    resumed = Trainer.resume(tmp_path / "resumed", progress=False, steps=total)
    assert resumed.step == first
    resumed.train()

    a, b = _state(straight), _state(resumed)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert torch.equal(straight.gan.noise_gen.get_state(), resumed.gan.noise_gen.get_state())
    # The metrics log of the resumed run has every step once and ends where the straight one does.
    steps = [json.loads(line)["step"] for line in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == total


def test_request_stop_saves_a_resumable_checkpoint(tmp_path, digits16):
    trainer = make_trainer(digits16, run_dir=tmp_path / "run", steps=50, log_every=1)
    trainer.callbacks.append(StopAt(3))
    result = trainer.train()
    assert result.interrupted and result.step == 3
    assert result.checkpoint.exists()
    resumed = Trainer.resume(tmp_path / "run", progress=False)
    assert resumed.step == 3 and resumed.total_steps() == 50


def test_run_directory_contents(tmp_path, digits16):
    trainer = make_trainer(digits16, run_dir=tmp_path / "run", epochs=2, batch_size=256)
    trainer.train()
    run = tmp_path / "run"
    for name in ("config.json", "model_summary.txt", "metrics.jsonl", "samples.png", "progress.gif", "losses.png", "checkpoints/latest.safetensors"):
        assert (run / name).exists(), name
    assert len(list((run / "samples").glob("step_*.png"))) == 2  # one grid per epoch
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["image_size"] == 16 and config["train"]["batch_size"] == 256
    assert len(config["data"]["fingerprint"]) == 64


def test_resume_refuses_changed_data(tmp_path, digits16):
    trainer = make_trainer(digits16, run_dir=tmp_path / "run", steps=2)
    trainer.train()
    other = type(digits16)(images=digits16.images.flip(0).contiguous(), name="digits")
    from dcgan.errors import DataError

    with pytest.raises(DataError, match="differs"):
        Trainer.resume(tmp_path / "run", data=other, progress=False, steps=4)


def test_train_config_validation():
    with pytest.raises(ConfigError):
        TrainConfig(steps=5, epochs=1)
    with pytest.raises(ConfigError):
        TrainConfig(batch_size=0)
    with pytest.raises(ConfigError):
        TrainConfig(lr_g=float("nan"))
    with pytest.raises(ConfigError):
        TrainConfig(device="tpu")


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_default_run_repeats_bit_for_bit(precision):
    """Two runs of the default model (32x32, batch 128) with one seed end with identical G, D, averaged G and
    Adam states, on whatever kernels this CPU runs: the check that replaced a hash recorded on one machine."""
    if precision == "bf16" and not cpu_has_bf16():
        pytest.skip("this CPU (or ONEDNN_MAX_CPU_ISA) has no native bf16: bf16 would be emulated")
    runs = [Trainer.from_options(data="digits", steps=12, seed=0, precision=precision, device="cpu", progress=False) for _ in range(2)]
    for trainer in runs:
        trainer.train()
        assert trainer.gan.bf16 == (precision == "bf16")
    a, b = (_state(t) for t in runs)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert torch.equal(runs[0].gan.noise_gen.get_state(), runs[1].gan.noise_gen.get_state())


@pytest.mark.parametrize("cap", ["AVX2", "avx512_core"])
def test_a_onednn_cap_below_bf16_means_fp32(monkeypatch, cap):
    """With ONEDNN_MAX_CPU_ISA below AVX512_CORE_BF16 oneDNN would emulate bf16, so auto precision is fp32,
    as on a CPU without the instructions; that is what makes `make test-avx2` run an AVX2 machine's paths."""
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    assert not cpu_has_bf16()
    trainer = Trainer.from_options(data="digits", steps=1, precision="auto", device="cpu", progress=False, **TINY)
    assert not trainer.gan.bf16


@pytest.mark.parametrize("cap", [None, "AVX2"])
def test_compute_path_says_which_precision_and_why(monkeypatch, cap):
    """`dcgan train` prints GANStep.compute_path(): auto precision names the CPU's matrix units and the choice
    it made from them; a cap on oneDNN is named as the reason for fp32 on a CPU that has bf16."""
    if cap:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    trainer = Trainer.from_options(data="digits", steps=1, precision="auto", device="cpu", progress=False, **TINY)
    path = trainer.gan.compute_path()
    assert path.startswith("bf16 autocast (this CPU has " if trainer.gan.bf16 else "fp32 (")
    assert "channels_last" in path and "fused Adam" in path and "thread(s)" in path
    if cap and cpu_matrix_units() in ("AMX", "AVX512-BF16"):
        assert "capped" in path
    forced = Trainer.from_options(data="digits", steps=1, precision="fp32", channels_last=False, device="cpu", progress=False, **TINY)
    assert forced.gan.compute_path().startswith("fp32, NCHW, fused Adam")
