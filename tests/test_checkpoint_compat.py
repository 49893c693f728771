"""A checkpoint written before the training-core redesign (dcgan 0.1.0) still loads, resumes and generates.

The file is rebuilt from a recorded recipe (tests/fixtures/checkpoint_v0.1.0.json: the
old file's header verbatim and each tensor's name, shape and dtype) with seeded
values, so no weight file is kept in the repository.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from dcgan.checkpoint import load_checkpoint
from dcgan.cli import main
from dcgan.training import Trainer
from dcgan.training.callbacks import MetricsLog
from dcgan.training.monitors import Health

pytestmark = pytest.mark.kernels  # depends on the CPU's kernels: make test-avx2 reruns it (pyproject's markers)

RECIPE = json.loads((Path(__file__).parent / "fixtures" / "checkpoint_v0.1.0.json").read_text())
DTYPES = {"F32": torch.float32, "I64": torch.int64, "U8": torch.uint8}


def build_old_checkpoint(run: Path, **train_config) -> dict[str, torch.Tensor]:
    """Write RUN/checkpoints/latest.safetensors in the 0.1.0 layout (its train_config updated by `train_config`);
    returns its tensors."""
    gen = torch.Generator().manual_seed(0)
    tensors = {}
    for i, (name, shape, dtype) in enumerate(RECIPE["tensors"]):
        if dtype == "U8":  # an RNG state: a real one, of a seeded generator
            value = torch.Generator().manual_seed(i).get_state()
        elif dtype == "I64":  # batch norm's num_batches_tracked
            value = torch.full(shape, 6, dtype=torch.int64)
        elif name.endswith(".step"):  # Adam's step count
            value = torch.full(shape, 6.0)
        else:
            value = torch.randn(shape, generator=gen) * 0.02
            if name.endswith(("running_var", "exp_avg_sq")):
                value = value.abs() + 1e-3
        assert list(value.shape) == shape and value.dtype == DTYPES[dtype], name
        tensors[name] = value
    (run / "checkpoints").mkdir(parents=True)
    metadata = dict(RECIPE["metadata"])
    if train_config:
        state = json.loads(metadata["state"])
        state["train_config"].update(train_config)
        metadata["state"] = json.dumps(state)
    save_file(tensors, str(run / "checkpoints" / "latest.safetensors"), metadata=metadata)
    return tensors


@pytest.fixture
def old_run(tmp_path):
    run = tmp_path / "old-run"
    return run, build_old_checkpoint(run)


def test_old_checkpoint_loads_with_its_state_typed(old_run):
    run, tensors = old_run
    ckpt = load_checkpoint(run)
    record = ckpt.record
    assert ckpt.step == record.step == 6 and record.steps_per_epoch == 44
    assert record.epoch_fraction == pytest.approx(6 / 44)
    assert record.train_config["batch_size"] == 32 and record.precision == "fp32"
    assert set(record.last) >= {"loss_d", "loss_g", "d_real", "d_fake"}  # the old top-level "last", read into its callback
    assert "monitor" in record.callbacks["health"]
    G = ckpt.build_generator()
    for name, value in G.state_dict().items():
        assert torch.equal(value, tensors[f"G.{name}"]), name


def test_old_checkpoint_resumes(old_run, digits16):
    run, tensors = old_run
    trainer = Trainer.resume(run, data=digits16, progress=False, steps=8)
    assert trainer.state.step == 6 and trainer.state.batch_in_epoch == 6
    assert trainer.callback(MetricsLog).last["step"] == 6  # the old layout's "last" came back
    assert torch.equal(trainer.fixed_noise, tensors["extra.fixed_noise"])
    # it trained as 0.1.0 did, and goes on so: the paper's loss, no R1 penalty (the default after 0.3.0), no augmentation
    assert trainer.config.r1_gamma == 0 and trainer.config.loss == "non-saturating" and trainer.gan.augment is None
    assert trainer.config.lr_g == 2e-4 and trainer.config.beta1 == 0.5
    result = trainer.train()
    assert result.step == 8 and not result.failure
    resaved = load_checkpoint(run)
    assert resaved.step == 8 and set(resaved.record.callbacks) >= {"metrics", "health", "eval"}
    assert resaved.record.callbacks["health"]["rollbacks"] == 0
    assert trainer.callback(Health).rollbacks == 0


@pytest.mark.parametrize("ema, averaged", [("on", True), ("off", False), (None, True)])
def test_old_checkpoint_with_ema_on_or_off_resumes(tmp_path, digits16, ema, averaged):
    """Up to 0.3.0 a run recorded ema as "on" / "off" (0.1.0 not at all: on); it is a bool now, and those still resume."""
    run = tmp_path / "old-run"
    build_old_checkpoint(run, **({} if ema is None else {"ema": ema}))
    trainer = Trainer.resume(run, data=digits16, progress=False, steps=7)
    assert trainer.config.ema is averaged and (trainer.gan.ema is not None) is averaged
    assert trainer.train().step == 7
    resaved = load_checkpoint(run)
    assert resaved.record.train_config["ema"] is averaged and resaved.has_ema is averaged


def test_old_checkpoint_generates_and_reports(old_run, tmp_path, capsys):
    run, _ = old_run
    out = tmp_path / "grid.png"
    assert main(["generate", str(run), "-n", "4", "--seed", "1", "--out", str(out)]) == 0
    assert out.stat().st_size > 0
    capsys.readouterr()
    assert main(["info", str(run), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["step"] == 6 and info["epoch"] == pytest.approx(6 / 44)
    assert info["last"]["step"] == 6
