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
        "steps",
        "epochs",
        "log_every",
        "sample_every",
        "checkpoint_every",
        "device",
        "tensorboard",
        "data_dir",
        "workers",
        "eval_every",
        "on_failure",
        "max_rollbacks",
        "rollback_lr_factor",
    }


@pytest.mark.parametrize(
    "argv, field, value",
    [
        (["--device", "cuda:1"], "device", "cuda:1"),  # the flag once refused what TrainConfig accepted
        (["--rollback-lr-factor", "0.5"], "rollback_lr_factor", 0.5),
        (["--no-channels-last"], "channels_last", False),
        (["--g-block", "nearest"], "g_block", "nearest"),
    ],
)
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


def test_every_bool_option_has_both_forms():
    """A bool a config file or a recipe sets can be turned either way on the command line: --NAME and --no-NAME."""
    actions = {a.dest: a for a in _train_parser()._actions}
    bools = [f for cls in (ModelConfig, TrainConfig) for f in fields(cls) if isinstance(f.default, bool) and f.metadata["option"]["cli"]]
    assert {"compile", "channels_last", "ema", "conditional"} <= {f.name for f in bools}
    for f in bools:
        name = f.name.replace("_", "-")
        assert set(actions[f.name].option_strings) == {f"--{name}", f"--no-{name}"}, f.name
        assert _train_parser().parse_args([f"--{name}"]).__dict__[f.name] is True
        assert _train_parser().parse_args([f"--no-{name}"]).__dict__[f.name] is False
        assert _train_parser().parse_args([]).__dict__[f.name] is None  # not given: the config's default
    assert "--compile, --no-compile" in _train_parser().format_help()


@pytest.mark.parametrize(
    "words, ema", [(["--ema", "off"], False), (["--ema=off"], False), (["--ema", "on"], True), (["--no-ema"], False), (["--ema"], True)]
)
def test_ema_is_a_bool_and_the_old_words_still_parse(words, ema, capsys):
    from dcgan.cli.train import COMMANDS

    rewritten = COMMANDS["train"].old_words(["--steps", "2", *words])
    assert _train_parser().parse_args(rewritten).ema is ema
    err = capsys.readouterr().err
    if "on" in words or "off" in words or "--ema=off" in words:
        assert (
            err.strip()
            == f"note: --ema {'off' if not ema else 'on'} is the old spelling of {'--ema' if ema else '--no-ema'}, read for one more version"
        )
    else:
        assert err == ""
    assert TrainConfig(ema="off").ema is False and TrainConfig(ema="on").ema is True  # Python, checkpoints, files
    with pytest.raises(ConfigError, match="ema must be true or false, got 'sometimes'"):
        TrainConfig(ema="sometimes")


def test_the_one_positive_int_and_seed_checks():
    """'A positive whole number' and the seed range are declared once, in options.py, and used everywhere."""
    from dcgan import options, sampling
    from dcgan.cli import common

    for f in fields(ModelConfig):
        if f.name in ("z_dim", "width", "max_channels"):
            assert f.metadata["option"]["check"] is options.POSITIVE_INT
    assert next(f for f in fields(TrainConfig) if f.name == "seed").metadata["option"]["check"] is options.SEED
    assert common._positive_int == options.POSITIVE_INT.parse and sampling.MAX_SEED == options.MAX_SEED


def _commands(parser, prefix=()):
    """(command words, parser) of every command and sub-command of `dcgan`."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name), sub
                yield from _commands(sub, (*prefix, name))


SEEDED = {
    ("train",),
    ("generate",),
    ("sheet",),
    ("interpolate",),
    ("arithmetic",),
    ("invert",),
    ("neighbors",),
    ("probe",),
    ("filters",),
    ("evaluate",),
    ("evaluator", "train"),
    ("data", "shard"),
    ("report",),
}


def test_every_seed_flag_is_the_one_declaration():
    from dcgan.options import SEED

    found = set()
    for words, parser in _commands(build_parser()):
        for action in parser._actions:
            if action.dest in ("seed", "noise_seed"):
                assert action.type == SEED.parse, (words, action.option_strings)
                found.add(words)
    assert found == SEEDED


@pytest.mark.parametrize("words", sorted(SEEDED) + [("arithmetic", "--noise-seed")], ids=" ".join)
@pytest.mark.parametrize("value", ["-1", str(2**32)])
def test_every_seed_refuses_values_out_of_range(words, value, capsys):
    """`dcgan data shard --seed -1` once shuffled with it; every --seed now says the one range, in one line, exit 2."""
    flag = words[1] if words[-1] == "--noise-seed" else "--seed"
    words = words[:1] if flag == "--noise-seed" else words
    with pytest.raises(SystemExit) as exc:
        main([*words, flag, value])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"argument {flag}: expected a whole number from 0 to 4294967295, got '{value}'" in err, err
