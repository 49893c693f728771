"""Options declared once: a config field's help, choices, value check and resume rule live in its metadata.

A config dataclass declares each field with `option(...)`; from that single
declaration come
- the validation in the dataclass's `__post_init__` (`validate_options`),
- the `dcgan train` command-line flags (`add_options` builds the argparse arguments),
- the resume rules (`resumable_fields`: what `--resume` may change).

So a new training option is one line in TrainConfig, and its flag, its help
and whether it may change on resume follow from it.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any, Callable

from .errors import ConfigError

__all__ = ["Check", "option", "validate_options", "add_options", "resumable_fields", "flag_of",
           "POSITIVE_INT", "NONNEGATIVE_INT", "POSITIVE_FLOAT", "UNIT_FLOAT", "FRACTION"]


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
) -> Any:
    """A dataclass field with its command-line description.

    help: one line for `--help`; "(default ...)" is appended from `default` unless `default_text` says it.
    group: the `--help` section ("data", "model", "training", "speed", "outputs", "health").
    check / choices: the values accepted, both on the command line and in Python.
    resume: True when `--resume` may change it (budget, bookkeeping); False for what defines the run.
    flag: the command-line flag when it is not --field-name (a bool default True gives --no-field-name).
    cli: False for a field with no flag of its own (set through another option).
    exclusive: fields with the same name here exclude each other on the command line.
    """
    meta = dict(help=help, group=group, check=check, choices=choices, resume=resume, flag=flag,
                metavar=metavar, default_text=default_text, cli=cli, exclusive=exclusive)
    return field(default=default, metadata={"option": meta})


def _meta(f: Field) -> dict | None:
    return f.metadata.get("option")


def flag_of(f: Field) -> str:
    meta = _meta(f) or {}
    if meta.get("flag"):
        return meta["flag"]
    if f.default is True:
        return "--no-" + f.name.replace("_", "-")
    return "--" + f.name.replace("_", "-")


def validate_options(config) -> None:
    """Check every `option` field of a config dataclass; raise ConfigError naming the flag."""
    for f in fields(config):
        meta = _meta(f)
        if meta is None:
            continue
        value = getattr(config, f.name)
        if value is None and f.default is None:
            continue
        name = f.name.replace("_", "-")
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
        tail = ""
    else:
        tail = f"default {f.default}"
    text = meta["help"]
    return f"{text} ({tail})" if tail else text


def add_options(parser: argparse.ArgumentParser, config_classes, groups: dict[str, argparse._ArgumentGroup],
                skip: tuple[str, ...] = ()) -> None:
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
            if isinstance(f.default, bool):
                kwargs["action"] = "store_false" if f.default else "store_true"
            else:
                if meta["check"] is not None:
                    kwargs["type"] = meta["check"].parse
                if meta["choices"] is not None:
                    kwargs["choices"] = meta["choices"]
                if meta["metavar"] is not None:
                    kwargs["metavar"] = meta["metavar"]
                elif meta["check"] is not None and meta["choices"] is None:
                    kwargs["metavar"] = "N" if meta["check"].types == (int,) else "X"
            target.add_argument(flag_of(f), **kwargs)
