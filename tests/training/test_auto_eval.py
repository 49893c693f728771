"""--eval-every's default: every AUTO_EVAL_EVERY iterations in runs that long, so a long run keeps its best
checkpoint without being asked; short runs skip the scoring; 0 turns it off."""

import json

import pytest

from dcgan.models import ModelConfig
from dcgan.training import TrainConfig, Trainer, monitors

from conftest import TINY


def run(tmp_path, digits16, steps, **train):
    trainer = Trainer(
        ModelConfig(**TINY),
        TrainConfig(steps=steps, batch_size=32, seed=0, device="cpu", eval_samples=64, eval_features="pixels", **train),
        digits16,
        run_dir=tmp_path / "run",
        progress=False,
    )
    trainer.train()
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["step"] for line in lines if '"fid"' in line]


@pytest.fixture
def every_six(monkeypatch):
    monkeypatch.setattr(monitors, "AUTO_EVAL_EVERY", 6)


def test_a_long_enough_run_evaluates_by_default_and_keeps_its_best(tmp_path, digits16, every_six):
    assert run(tmp_path, digits16, 13) == [6, 12, 13]
    assert (tmp_path / "run" / "checkpoints" / "best.safetensors").is_file()


def test_a_short_run_skips_the_scoring(tmp_path, digits16, every_six):
    assert run(tmp_path, digits16, 5) == []
    assert not (tmp_path / "run" / "checkpoints" / "best.safetensors").exists()


def test_zero_turns_it_off(tmp_path, digits16, every_six):
    assert run(tmp_path, digits16, 13, eval_every=0) == []


def test_an_explicit_interval_evaluates_short_runs_too(tmp_path, digits16, every_six):
    assert run(tmp_path, digits16, 5, eval_every=2) == [2, 4, 5]
