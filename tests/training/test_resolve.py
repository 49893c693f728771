"""The options of a new run are resolved once (training/resolve.py), so Python and `dcgan train` agree:
the same budget (digits: 25 epochs, others: 1), the same seed rule (random unless given, recorded in the run)."""

from __future__ import annotations

import json

import pytest

from dcgan.options import MAX_SEED
from dcgan.training import Trainer
from dcgan.training.resolve import DEFAULT_EPOCHS, default_epochs, resolve_options

from conftest import TINY, run_cli

SMALL = dict(batch_size=64, device="cpu")
SMALL_ARGS = ["--image-size", "16", "--channels", "1", "--z-dim", "8", "--width", "8", "--batch-size", "64", "--device", "cpu", "--quiet"]


def test_the_defaults_of_a_new_run():
    assert DEFAULT_EPOCHS == {"digits": 25} and default_epochs("mnist") == 1
    assert resolve_options({}) == {"data": "digits", "epochs": 25}
    assert resolve_options({"data": "mnist", "seed": None}) == {"data": "mnist", "epochs": 1}  # None: not given
    assert resolve_options({"steps": 3}) == {"data": "digits", "steps": 3}  # a budget given: no default epochs
    assert "seed" not in resolve_options({})  # drawn by the Trainer, once for every process


@pytest.fixture
def cli_trainer(monkeypatch):
    """The Trainer `dcgan train ARGS` builds, caught before it trains (train() is replaced by a Ctrl-C)."""
    built = []

    def caught(self):
        built.append(self)
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "train", caught)

    def build(*args):
        assert run_cli("train", *args) == 130  # the interrupt's exit code: nothing trained
        return built.pop()

    return build


def test_python_and_the_command_line_resolve_the_same_run(cli_trainer, tmp_path):
    python = Trainer.from_options(data="digits", progress=False, **TINY, **SMALL)
    cli = cli_trainer("--data", "digits", "--out", tmp_path / "cli", *SMALL_ARGS)
    for trainer in (python, cli):
        assert trainer.config.epochs == 25 and trainer.config.steps is None  # the digits demo's budget
        assert trainer.total_steps() == 25 * trainer.steps_per_epoch
        assert isinstance(trainer.config.seed, int) and 0 <= trainer.config.seed <= MAX_SEED  # a random seed, drawn
    # The rest of the options are resolved alike too: with one seed, one configuration.
    python = Trainer.from_options(data="digits", seed=5, progress=False, **TINY, **SMALL)
    cli = cli_trainer("--data", "digits", "--seed", "5", "--out", tmp_path / "cli5", *SMALL_ARGS)
    assert python.config == cli.config and python.model_config == cli.model_config


def test_a_random_seed_differs_between_runs_and_a_given_one_does_not():
    seeds = {Trainer.from_options(data="digits", steps=1, progress=False, **TINY, **SMALL).config.seed for _ in range(3)}
    assert len(seeds) > 1  # 2**31 seeds: three equal ones would be a fixed default
    assert Trainer.from_options(data="digits", steps=1, seed=0, progress=False, **TINY, **SMALL).config.seed == 0


def test_the_random_seed_is_recorded_and_repeats_the_run(tmp_path):
    run = tmp_path / "run"
    first = Trainer.from_options(data="digits", steps=2, run_dir=run, progress=False, **TINY, **SMALL)
    first.train()
    record = json.loads((run / "config.json").read_text())
    assert record["train"]["seed"] == first.config.seed
    again = Trainer.from_options(config_file=run / "config.json", progress=False)  # as dcgan train --config does
    assert again.config == first.config and again.model_config == first.model_config


def test_from_options_applies_a_recipe_under_the_options_given():
    trainer = Trainer.from_options(
        recipe="photos64", data="digits", image_size=16, channels=1, z_dim=8, width=8, steps=1, progress=False, device="cpu"
    )
    assert trainer.config.recipe == "photos64" and trainer.config.eval_every == 500  # from the recipe
    assert trainer.config.steps == 1 and trainer.config.epochs is None  # the budget given replaces the recipe's
    assert trainer.model_config.image_size == 16  # what is given wins


def test_the_drawn_seed_is_rank_0s_for_every_process(monkeypatch):
    """With several processes each draws, then all take rank 0's (distributed.broadcast_from_main): one data order."""
    from dcgan.training import loop

    sent = []
    monkeypatch.setattr(loop.distributed, "broadcast_from_main", lambda value, info: sent.append(value) or 1234)
    trainer = Trainer.from_options(data="digits", steps=1, progress=False, **TINY, **SMALL)
    assert len(sent) == 1 and trainer.config.seed == 1234 and trainer.feed.seed == 1234
    Trainer.from_options(data="digits", steps=1, seed=7, progress=False, **TINY, **SMALL)
    assert len(sent) == 1  # a seed given is every process's already
