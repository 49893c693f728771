"""The training-health monitor: each failure provoked on purpose, and warn / stop / rollback."""

import json

import pytest
import torch

from dcgan.checkpoint import load_checkpoint
from dcgan.cli import main
from dcgan.errors import ConfigError
from dcgan.training import Callback, Trainer
from dcgan.training.health import HealthConfig, HealthMonitor, all_finite, sample_diversity
from dcgan.training.monitors import Health

from conftest import TINY

FAST = HealthConfig(warmup_steps=10, saturation_logs=3, blowup_logs=2)  # verdicts within a few dozen steps


def _record(loss_d=0.7, loss_g=1.5, d_real=0.6, d_fake=0.4):
    return {"loss_d": loss_d, "loss_g": loss_g, "d_real": d_real, "d_fake": d_fake}


def _trainer(tmp_path=None, **opts):
    # the paper's settings: the default R1 penalty would keep the provoked D from saturating
    base = dict(data="digits", progress=False, steps=60, seed=0, batch_size=64, log_every=5, recipe="paper", **TINY)
    base.update(opts)
    t = Trainer.from_options(run_dir=tmp_path, **base)
    t.callback(Health).monitor = HealthMonitor(FAST)
    return t


class LogHook(Callback):
    """Runs `fn(trainer, record)` at each log point, before the health check sees the window."""

    def __init__(self, fn):
        self.fn = fn

    def on_log(self, trainer, record):
        self.fn(trainer, record)


def add_log_hook(trainer, fn):
    trainer.callbacks.insert(trainer.callbacks.index(trainer.callback(Health)), LogHook(fn))


def test_monitor_conditions_from_figures():
    m = HealthMonitor(FAST)
    net = torch.nn.Linear(2, 2)
    assert m.check(_record(), [net], None, step=50) == []
    assert m.check(_record(loss_g=float("nan")), [net], None, 50)[0].condition == "nonfinite"
    for step in (10, 15):
        assert m.check(_record(d_real=0.999, d_fake=0.001), [net], None, step) == []
    issues = m.check(_record(d_real=0.999, d_fake=0.001), [net], None, 20)
    assert [i.condition for i in issues] == ["d_saturated"] and "D(x)" in issues[0].message and issues[0].hint
    assert m.check(_record(), [net], None, 25) == []  # one normal window resets the count
    m.check(_record(loss_g=50), [net], None, 30)
    assert [i.condition for i in m.check(_record(loss_g=50), [net], None, 35)] == ["g_blowup"]
    with torch.no_grad():
        net.weight[0, 0] = float("inf")
    assert m.check(_record(), [net], None, 40)[0].message.startswith("weights became NaN")
    assert not all_finite([net])


def test_monitor_sees_collapse_of_the_samples():
    m = HealthMonitor(FAST)
    g = torch.Generator().manual_seed(0)
    varied = torch.rand(16, 1, 8, 8, generator=g) * 2 - 1
    assert sample_diversity(varied) > 0.5 and sample_diversity(varied[:1].expand(16, -1, -1, -1)) == 0.0
    assert m.check(_record(), [], varied, step=20) == []
    issues = m.check(_record(), [], varied[:1].expand(16, -1, -1, -1) + 0.01 * varied, step=25)
    assert [i.condition for i in issues] == ["collapse"] and "%" in issues[0].message


def test_d_saturation_is_caught_and_stops(tmp_path):
    # A D that learns 50 000 times faster than G wins outright.
    t = _trainer(tmp_path / "run", lr_g=1e-6, lr_d=0.05, on_failure="stop")
    result = t.train()
    assert result.failure["condition"] == "d_saturated" and result.step < 60
    assert (tmp_path / "run" / "checkpoints" / "failed.safetensors").is_file()
    events = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines() if '"health"' in line]
    assert events and events[0]["health"] == "d_saturated" and events[0]["action"] == "stop"


def test_huge_learning_rate_is_caught(tmp_path):
    result = _trainer(tmp_path / "run", lr_g=50.0, lr_d=50.0, on_failure="stop").train()
    assert result.failure["condition"] in ("g_blowup", "nonfinite", "d_saturated")
    assert result.step < 60


def _inject_nan(at_step: int, times: int = 1):
    """An on_log callback that makes one of G's weights NaN at the first log at or after `at_step`."""
    done = []

    def callback(trainer, record):
        if "loss_d" in record and record["step"] >= at_step and len(done) < times:
            done.append(record["step"])
            with torch.no_grad():
                weight = next(trainer.G.parameters())
                weight[(0,) * weight.ndim] = float("nan")  # (indexing, not view: the weights are channels_last)

    return callback, done


def test_nan_with_warn_never_overwrites_the_good_checkpoint(tmp_path):
    t = _trainer(tmp_path / "run", checkpoint_every=10, on_failure="warn")
    callback, done = _inject_nan(23)
    add_log_hook(t, callback)
    result = t.train()
    assert result.step == 60 and not result.failure and done  # warn: training went on
    ckpt = load_checkpoint(tmp_path / "run")
    assert ckpt.step <= 25  # no later checkpoint was written over it
    G = ckpt.build_generator()
    assert all(torch.isfinite(p).all() for p in G.parameters())
    assert any(e["health"] == "nonfinite" for e in t.health_events)


def test_nan_with_stop_keeps_the_last_healthy_checkpoint(tmp_path):
    t = _trainer(tmp_path / "run", checkpoint_every=10, on_failure="stop")
    callback, _ = _inject_nan(23)
    add_log_hook(t, callback)
    result = t.train()
    assert result.failure["condition"] == "nonfinite" and result.step == 25
    assert load_checkpoint(tmp_path / "run").step == 20
    failed = load_checkpoint(tmp_path / "run" / "checkpoints" / "failed.safetensors")
    assert failed.step == 25 and not all(torch.isfinite(p).all() for p in failed.build_generator(raw=True).parameters())


def test_rollback_restores_and_continues_with_fresh_noise(tmp_path):
    t = _trainer(tmp_path / "run", checkpoint_every=10, on_failure="rollback", rollback_lr_factor=0.5)
    callback, done = _inject_nan(23, times=1)
    add_log_hook(t, callback)
    result = t.train()
    assert result.step == 60 and not result.failure and result.rollbacks == 1
    assert t.gan.opt_g.param_groups[0]["lr"] == pytest.approx(2e-4 * 0.5)
    assert all(torch.isfinite(p).all() for p in t.G.parameters())
    final = load_checkpoint(tmp_path / "run")
    assert final.step == 60 and final.record.callbacks["health"]["rollbacks"] == 1
    # The same run without the NaN would have drawn other noise after step 20: the weights differ.
    plain = _trainer(None, checkpoint_every=10)
    plain.train()
    assert not torch.equal(next(plain.G.parameters()), next(t.G.parameters()))


def test_rollbacks_are_limited(tmp_path):
    t = _trainer(tmp_path / "run", checkpoint_every=10, on_failure="rollback", max_rollbacks=2)
    callback, done = _inject_nan(13, times=100)  # fails again after every rollback
    add_log_hook(t, callback)
    result = t.train()
    assert result.rollbacks == 2 and result.failure["condition"] == "nonfinite" and result.failure["rollbacks"] == 2
    assert len(done) == 3


def test_constant_generator_is_seen_as_collapse(tmp_path):
    t = _trainer(tmp_path / "run", on_failure="stop", steps=80)
    hooks = []

    def force_constant(trainer, record):
        if record.get("step", 0) >= 30 and not hooks:
            # From now on G draws the same image for every z (a total mode collapse).
            hooks.append(trainer.G.register_forward_hook(lambda module, inputs, output: output * 0 + 0.3))

    add_log_hook(t, force_constant)
    result = t.train()
    assert result.failure["condition"] == "collapse" and 30 <= result.step <= 40


def test_rollback_needs_a_run_directory():
    with pytest.raises(ConfigError, match="run directory"):
        _trainer(None, on_failure="rollback").train()
    with pytest.raises(ConfigError, match="on-failure"):
        _trainer(None, on_failure="explode")


def test_cli_stop_on_failure_exits_3_with_a_summary(tmp_path, capsys):
    code = main(
        [
            "train",
            "--data",
            "digits",
            "--image-size",
            "16",
            "--z-dim",
            "8",
            "--width",
            "8",
            "--batch-size",
            "64",
            "--steps",
            "200",
            "--lr",
            "50",
            "--on-failure",
            "stop",
            "--log-every",
            "5",
            "--seed",
            "0",
            "--quiet",
            "--out",
            str(tmp_path / "run"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 3
    assert "stopped at step" in err and "Hint:" in err and "last healthy checkpoint" in err
    assert load_checkpoint(tmp_path / "run").step < 200  # the last healthy checkpoint exists and loads
    assert (tmp_path / "run" / "checkpoints" / "failed.safetensors").is_file()


def test_run_directory_must_be_writable(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code = main(["train", "--data", "digits", "--image-size", "16", "--steps", "1", "--quiet", "--out", str(blocker / "run")])
    assert code == 2 and "cannot write to the run directory" in capsys.readouterr().err
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9, 1000))
    code = main(["train", "--data", "digits", "--image-size", "16", "--steps", "1", "--quiet", "--out", str(tmp_path / "full")])
    assert code == 2 and "not enough free space" in capsys.readouterr().err


def test_disk_full_mid_run_keeps_the_previous_checkpoint(tmp_path, monkeypatch, capsys):
    import dcgan.checkpoint as checkpoint_module

    real_write = checkpoint_module.atomic_write_bytes
    calls = []

    def failing_write(path, data):
        calls.append(path)
        if len(calls) >= 2:
            raise OSError(28, "No space left on device", str(path))
        return real_write(path, data)

    monkeypatch.setattr(checkpoint_module, "atomic_write_bytes", failing_write)
    code = main(
        [
            "train",
            "--data",
            "digits",
            "--image-size",
            "16",
            "--z-dim",
            "8",
            "--width",
            "8",
            "--batch-size",
            "64",
            "--steps",
            "20",
            "--checkpoint-every",
            "5",
            "--seed",
            "0",
            "--quiet",
            "--out",
            str(tmp_path / "run"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 1 and "No space left on device" in err and "Traceback" not in err
    ckpt = load_checkpoint(tmp_path / "run")  # the first checkpoint is intact
    assert ckpt.step == 5
