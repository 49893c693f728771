"""Options declared once: a config field's help, choices, value check and resume rule live in its metadata.

A config dataclass declares each field with `option(...)`; from that single
declaration come
- the validation in the dataclass's `__post_init__` (`validate_options`),
- the `dcgan train` command-line flags (`add_options` builds the argparse arguments),
- the resume rules (`resumable_fields`: what `--resume` may change).

A bool option gets both `--NAME` and `--no-NAME`, so a value a config file or a recipe set can be turned
back from the command line. An option whose values were once spelled otherwise (`ema` was "on" / "off")
declares the old spellings in `legacy`: files, checkpoints and Python still give them, and they mean the
new values; on the command line `legacy_words` reads `--ema off` as `--no-ema` for one version.

The value checks every command shares are declared here once: `POSITIVE_INT` ("a positive whole
number"), `SEED` (0 to MAX_SEED), and the others below.

So a new training option is one line in TrainConfig, and its flag, its help
and whether it may change on resume follow from it.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any

from .errors import ConfigError

__all__ = [
    "Check",
    "option",
    "validate_options",
    "current_value",
    "add_options",
    "resumable_fields",
    "flag_of",
    "legacy_words",
    "POSITIVE_INT",
    "NONNEGATIVE_INT",
    "POSITIVE_FLOAT",
    "UNIT_FLOAT",
    "FRACTION",
    "SEED",
    "MAX_SEED",
]

MAX_SEED = 2**32 - 1  # the largest seed any command takes: seeds are mixed with epochs, ranks and steps into 64-bit seeds


@dataclass(frozen=True)
class Check:
    """What values a field takes: a text converter (for the command line) and a test, with words for both."""

    convert: Callable[[str], Any]  # text -> value (raises ValueError on bad text)
    ok: Callable[[Any], bool]  # is the value acceptable?
    wanted: str  # "a positive whole number": used in both the CLI's and the dataclass's errors
    types: tuple = (int,)  # the Python types a value may have (bool is never an int here)

    def valid(self, value) -> bool:
        if isinstance(value, bool) or not isinstance(value, self.types):
            return False
        try:
            return bool(self.ok(value))
        except (TypeError, ValueError):
            return False

    def parse(self, text: str):
        """An argparse `type`: the value, or ArgumentTypeError saying what was wanted."""
        try:
            value = self.convert(text)
        except ValueError:
            value = None
        if value is None or not self.valid(value):
            raise argparse.ArgumentTypeError(f"expected {self.wanted}, got {text!r}")
        return value


POSITIVE_INT = Check(int, lambda v: v >= 1, "a positive whole number")
NONNEGATIVE_INT = Check(int, lambda v: v >= 0, "a whole number >= 0")
POSITIVE_FLOAT = Check(float, lambda v: math.isfinite(v) and v > 0, "a positive number", (int, float))
UNIT_FLOAT = Check(float, lambda v: 0.0 <= v < 1.0, "a number in [0, 1)", (int, float))
FRACTION = Check(float, lambda v: 0 < v <= 1, "a number in (0, 1]", (int, float))
SEED = Check(int, lambda v: 0 <= v <= MAX_SEED, f"a whole number from 0 to {MAX_SEED}")  # every --seed, every seed= field


def option(
    default: Any,
    help: str,
    *,
    group: str,
    check: Check | None = None,
    choices: tuple | None = None,
    resume: bool = False,
    flag: str | None = None,
    metavar: str | None = None,
    default_text: str | None = None,
    cli: bool = True,
    exclusive: str | None = None,
    legacy: dict | None = None,
) -> Any:
    """A dataclass field with its command-line description.

    help: one line for `--help`; "(default ...)" is appended from `default` unless `default_text` says it.
    group: the `--help` section ("data", "model", "training", "speed", "outputs", "health").
    check / choices: the values accepted, both on the command line and in Python.
    resume: True when `--resume` may change it (budget, bookkeeping); False for what defines the run.
    flag: the command-line flag when it is not --field-name (a bool gets --field-name and --no-field-name).
    cli: False for a field with no flag of its own (set through another option).
    exclusive: fields with the same name here exclude each other on the command line.
    legacy: old spellings of values and what they mean now ({"on": True, "off": False}): still read from
        files, checkpoints and Python, and on the command line through `legacy_words`.
    """
    meta = dict(
        help=help,
        group=group,
        check=check,
        choices=choices,
        resume=resume,
        flag=flag,
        metavar=metavar,
        default_text=default_text,
        cli=cli,
        exclusive=exclusive,
        legacy=legacy or {},
    )
    return field(default=default, metadata={"option": meta})


def _meta(f: Field) -> dict | None:
    return f.metadata.get("option")


def flag_of(f: Field, value=None) -> str:
    """The flag that names the field in messages. For a bool, the one that gives `value` (True: --NAME,
    False: --no-NAME); with no value, the one that changes its default."""
    meta = _meta(f) or {}
    if meta.get("flag"):
        return meta["flag"]
    name = f.name.replace("_", "-")
    if isinstance(f.default, bool) and (value is False or (value is None and f.default is True)):
        return "--no-" + name
    return "--" + name


def current_value(f: Field, value):
    """`value` as the field spells it now: an old spelling declared in `legacy` becomes what it means."""
    legacy = (_meta(f) or {}).get("legacy") or {}
    if isinstance(value, str) and value in legacy:
        return legacy[value]
    return value


def validate_options(config) -> None:
    """Check every `option` field of a config dataclass; raise ConfigError naming the flag.

    An old spelling of a value (`legacy`) is first replaced, in place, by what it means now."""
    for f in fields(config):
        meta = _meta(f)
        if meta is None:
            continue
        given = getattr(config, f.name)
        value = current_value(f, given)
        if value is not given:
            object.__setattr__(config, f.name, value)  # (frozen dataclasses too: this runs in __post_init__)
        if value is None and f.default is None:
            continue
        name = f.name.replace("_", "-")
        if isinstance(f.default, bool) and not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, got {value!r}")
        if meta["choices"] is not None and value not in meta["choices"]:
            raise ConfigError(f"unknown {name} {value!r}: use {', '.join(map(str, meta['choices']))}")
        if meta["check"] is not None and not meta["check"].valid(value):
            raise ConfigError(f"{name} must be {meta['check'].wanted}, got {value!r}")


def resumable_fields(*config_classes) -> set[str]:
    """Names of the fields that `--resume` may change."""
    return {f.name for cls in config_classes for f in fields(cls) if (_meta(f) or {}).get("resume")}


def _help_text(f: Field, meta: dict) -> str:
    if meta["default_text"] is not None:
        tail = meta["default_text"]
    elif f.default is None or f.default is MISSING:
        tail = ""
    elif isinstance(f.default, bool):
        tail = "default on" if f.default else "default off"
    else:
        tail = f"default {f.default}"
    text = meta["help"]
    return f"{text} ({tail})" if tail else text


def add_options(parser: argparse.ArgumentParser, config_classes, groups: dict[str, argparse._ArgumentGroup], skip: tuple[str, ...] = ()) -> None:
    """Add one flag per `option` field of `config_classes` to `groups` (by the field's group name).

    Every flag defaults to None, meaning "not given": the config's own default applies, and
    `--resume` can tell what the user asked to change.
    """
    exclusive: dict[str, argparse._MutuallyExclusiveGroup] = {}
    for cls in config_classes:
        for f in fields(cls):
            meta = _meta(f)
            if meta is None or not meta["cli"] or f.name in skip:
                continue
            target = groups[meta["group"]]
            if meta["exclusive"]:
                if meta["exclusive"] not in exclusive:
                    exclusive[meta["exclusive"]] = target.add_mutually_exclusive_group()
                target = exclusive[meta["exclusive"]]
            kwargs: dict[str, Any] = dict(dest=f.name, default=None, help=_help_text(f, meta))
            flag = flag_of(f)
            if isinstance(f.default, bool):  # --NAME and --no-NAME: either may undo a config file's or a recipe's value
                kwargs["action"] = argparse.BooleanOptionalAction
                flag = meta["flag"] or "--" + f.name.replace("_", "-")
            else:
                if meta["check"] is not None:
                    kwargs["type"] = meta["check"].parse
                if meta["choices"] is not None:
                    kwargs["choices"] = meta["choices"]
                if meta["metavar"] is not None:
                    kwargs["metavar"] = meta["metavar"]
                elif meta["check"] is not None and meta["choices"] is None:
                    kwargs["metavar"] = "N" if meta["check"].types == (int,) else "X"
            target.add_argument(flag, **kwargs)


def legacy_words(words: list[str], config_classes) -> list[str]:
    """The command line with old spellings of bool options replaced: `--ema off` (or `--ema=off`) -> `--no-ema`.

    Kept for one version after a choice of words became a bool (option(legacy=...)); each
    replacement prints a note on stderr naming the new flag.
    """
    spelled = {
        "--" + f.name.replace("_", "-"): (f, (_meta(f) or {})["legacy"])
        for cls in config_classes
        for f in fields(cls)
        if (_meta(f) or {}).get("legacy") and isinstance(f.default, bool)
    }
    out, i = [], 0
    while i < len(words):
        word = words[i]
        flag, eq, value = word.partition("=")
        taken = 0
        if flag in spelled and not eq and i + 1 < len(words) and words[i + 1] in spelled[flag][1]:
            value, taken = words[i + 1], 1
        if flag in spelled and value in spelled[flag][1]:
            new = flag if spelled[flag][1][value] else "--no-" + flag[2:]
            print(f"note: {flag} {value} is the old spelling of {new}, read for one more version", file=sys.stderr)
            out.append(new)
        else:
            out.append(word)
        i += 1 + taken
    return out
