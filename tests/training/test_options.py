"""Options declared once: flags, help, value checks and resume rules all come from the config fields."""

from __future__ import annotations

import argparse
from dataclasses import fields

import pytest

from dcgan.cli import build_parser, main
from dcgan.errors import ConfigError
from dcgan.models import ModelConfig
from dcgan.options import option, resumable_fields, validate_options
from dcgan.training import TrainConfig


def _train_parser() -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["train"]


def test_every_config_field_is_an_option_with_help():
    for cls in (ModelConfig, TrainConfig):
        for f in fields(cls):
            meta = f.metadata.get("option")
            assert meta is not None and meta["help"], f"{cls.__name__}.{f.name} has no option(...) declaration"


def test_the_train_command_has_a_flag_for_every_field():
    flags = {s for a in _train_parser()._actions for s in a.option_strings}
    for cls in (ModelConfig, TrainConfig):
        for f in fields(cls):
            if f.metadata["option"]["cli"]:
                expected = "--no-" + f.name.replace("_", "-") if f.default is True else "--" + f.name.replace("_", "-")
                assert expected in flags, expected


def test_resume_may_change_the_budget_and_bookkeeping_only():
    # The allow-list the trainer had before options were declared once, unchanged.
    assert resumable_fields(ModelConfig, TrainConfig) == {
        "steps", "epochs", "log_every", "sample_every", "checkpoint_every", "device", "tensorboard", "data_dir",
        "workers", "eval_every", "on_failure", "max_rollbacks", "rollback_lr_factor"}


@pytest.mark.parametrize("argv, field, value", [
    (["--device", "cuda:1"], "device", "cuda:1"),  # the flag once refused what TrainConfig accepted
    (["--rollback-lr-factor", "0.5"], "rollback_lr_factor", 0.5),
    (["--no-channels-last"], "channels_last", False),
    (["--g-block", "nearest"], "g_block", "nearest"),
])
def test_flags_parse_into_config_values(argv, field, value):
    args = _train_parser().parse_args(argv)
    assert getattr(args, field) == value


def test_flags_and_dataclass_refuse_the_same_values():
    parser = _train_parser()
    for argv in (["--device", "tpu"], ["--beta1", "1.0"], ["--seed", "-1"], ["--precision", "fp16"]):
        with pytest.raises(SystemExit):
            parser.parse_args(argv)
    for kwargs in (dict(device="tpu"), dict(beta1=1.0), dict(seed=-1), dict(precision="fp16"), dict(batch_size=True)):
        with pytest.raises(ConfigError):
            TrainConfig(**kwargs)


def test_help_says_what_auto_precision_does():
    text = _train_parser().format_help()
    assert "bf16 on CUDA and on CPUs with bf16 instructions" in " ".join(text.split())


def test_validate_options_names_the_flag():
    from dataclasses import dataclass

    from dcgan.options import POSITIVE_INT

    @dataclass
    class Small:
        batch_size: int = option(4, "images per batch", group="training", check=POSITIVE_INT)

    with pytest.raises(ConfigError, match="batch-size must be a positive whole number, got 0"):
        validate_options(Small(batch_size=0))


def test_resume_refuses_fixed_options_naming_each(tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path), "--batch-size", "8", "--z-dim", "4", "--lr", "0.1"]) == 2
    err = capsys.readouterr().err
    assert "--resume keeps the run's own settings; drop --z-dim, --batch-size, --lr" in err
