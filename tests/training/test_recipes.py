"""Named recipes: each builds valid configs, and `dcgan train --recipe NAME` runs end to end."""

from __future__ import annotations

import json
from dataclasses import fields

import numpy as np
import pytest
from PIL import Image

from dcgan.cli import main
from dcgan.models import ModelConfig
from dcgan.training import TrainConfig
from dcgan.training.recipes import RECIPES

MODEL_FIELDS = {f.name for f in fields(ModelConfig)}
TRAIN_FIELDS = {f.name for f in fields(TrainConfig)}


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_recipe_is_a_valid_configuration(name):
    options = RECIPES[name].options
    assert set(options) <= MODEL_FIELDS | TRAIN_FIELDS, set(options) - MODEL_FIELDS - TRAIN_FIELDS
    ModelConfig(**{k: v for k, v in options.items() if k in MODEL_FIELDS})
    TrainConfig(**{k: v for k, v in options.items() if k in TRAIN_FIELDS})


def test_mnist_recipe_runs_and_is_recorded(tmp_path, mnist_dir, capsys):
    run = tmp_path / "run"
    code = main(
        [
            "train",
            "--recipe",
            "mnist",
            "--data-dir",
            str(mnist_dir),
            "--steps",
            "2",
            "--eval-samples",
            "200",
            "--standing-batches",
            "1",
            "--seed",
            "0",
            "--quiet",
            "--out",
            str(run),
        ]
    )
    assert code == 0, capsys.readouterr().err
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["recipe"] == "mnist" and config["train"]["data"] == "mnist"
    assert config["train"]["steps"] == 2 and config["train"]["epochs"] is None  # the command line's budget wins
    assert config["train"]["eval_every"] == 500 and config["train"]["ema"] is True
    assert config["model"]["image_size"] == 32
    assert any("fid" in json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines())


def test_photo_recipe_needs_data_and_runs_on_a_folder(tmp_path, capsys):
    assert main(["train", "--recipe", "photos64", "--out", str(tmp_path / "none")]) == 2
    assert "give them with --data" in capsys.readouterr().err
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(70):
        Image.fromarray(rng.integers(0, 256, (72, 80, 3), dtype=np.uint8)).save(folder / f"{i:03d}.png")
    run = tmp_path / "run"
    code = main(
        [
            "train",
            "--recipe",
            "photos64",
            "--data",
            str(folder),
            "--steps",
            "1",
            "--eval-every",
            "5",
            "--eval-samples",
            "64",
            "--standing-batches",
            "1",
            "--width",
            "8",
            "--quiet",
            "--out",
            str(run),
        ]
    )
    assert code == 0, capsys.readouterr().err
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["image_size"] == 64 and config["model"]["channels"] == 3 and config["model"]["width"] == 8
    assert config["train"]["batch_size"] == 64


def test_resume_refuses_a_recipe(tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path), "--recipe", "mnist"]) == 2
    assert "drop --recipe" in capsys.readouterr().err


def test_a_dataset_default_width_applies_unless_given_or_the_paper_recipe(monkeypatch):
    """MNIST trains at width 48 and CIFAR-10 at 32 by default (measured best, docs/recipe.md); `--width` and `--recipe paper`
    (the PyTorch example's 64, as up to 0.3.0) override a dataset's default width."""
    import dataclasses

    from dcgan.data.registry import DATASETS
    from dcgan.training import Trainer

    assert DATASETS["mnist"].default_width == 48
    assert DATASETS["cifar10"].default_width == 32
    monkeypatch.setitem(DATASETS, "digits", dataclasses.replace(DATASETS["digits"], default_width=24))
    small = dict(data="digits", image_size=16, steps=1, progress=False, device="cpu")
    assert Trainer.from_options(**small).model_config.width == 24
    assert Trainer.from_options(**small, width=16).model_config.width == 16
    assert Trainer.from_options(**small, recipe="paper").model_config.width == 64
