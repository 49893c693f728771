"""The `dcgan` command line: a thin layer that parses, calls the library and saves files.

Commands are looked up by name in COMMANDS; each has a `--help` with an example.
User mistakes end in one line on stderr and a non-zero exit, never a traceback.

One module per command group (train, generate, export, data, evaluate, evaluator, explore,
search, discriminator, serve, report), each with a COMMANDS dict of `Command`s; `common` holds the
parser class, the typed option converters, the exit codes and shared helpers.
"""

from __future__ import annotations

import argparse
import sys

from .._version import __version__
from ..errors import DCGANError
from ..training.distributed import cleanup
from . import data, discriminator, evaluate, evaluator, explore, export, generate, report, search, serve, train
from .common import EXIT_EXPORT_MISMATCH, EXIT_INTERRUPTED, EXIT_TRAINING_FAILED, EXIT_USER_ERROR, Command, _help_formatter, _one_line, _Parser

__all__ = ["COMMANDS", "Command", "build_parser", "main", "EXIT_USER_ERROR", "EXIT_INTERRUPTED", "EXIT_TRAINING_FAILED", "EXIT_EXPORT_MISMATCH"]

# In the order `dcgan --help` lists them.
COMMANDS: dict[str, Command] = {
    **train.COMMANDS,  # train
    **generate.COMMANDS,  # generate, info
    **export.COMMANDS,  # export, push
    **data.COMMANDS,  # data
    **evaluate.COMMANDS,  # evaluate
    **evaluator.COMMANDS,  # evaluator
    **explore.COMMANDS,  # sheet, interpolate, arithmetic
    **search.COMMANDS,  # invert, neighbors
    **discriminator.COMMANDS,  # probe, filters
    **serve.COMMANDS,  # serve
    **report.COMMANDS,  # report
}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="dcgan",
        description="Deep Convolutional GANs (Radford et al. 2015): train, generate, inspect.",
        epilog="examples:\n  dcgan train\n  dcgan generate runs/demo -n 64 --out grid.png\n  dcgan info runs/demo\n\n"
        "Every command has --help with examples.",
        formatter_class=_help_formatter,
    )
    parser.add_argument("--version", action="version", version=f"dcgan {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, command in COMMANDS.items():
        p = sub.add_parser(name, help=command.help, description=command.help, epilog=command.examples, formatter_class=_help_formatter)
        command.add_args(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    words = sys.argv[1:] if argv is None else list(argv)
    for word in words:  # argparse turns `--opt=--` into an empty list that no type check sees
        if word.startswith("--") and word.endswith("=--"):
            parser.error(f"{word}: '--' is not a value")
    old_words = COMMANDS[words[0]].old_words if words and words[0] in COMMANDS else None
    if old_words is not None:
        words = [words[0], *old_words(words[1:])]  # e.g. dcgan train --ema off -> --no-ema
    args = parser.parse_args(words)
    args.argv = words  # the words of this command, for re-launching it under torchrun
    if args.command is None:
        parser.print_help()
        return EXIT_USER_ERROR
    run = COMMANDS[args.command].run
    try:
        return run(args)
    except DCGANError as exc:
        print(f"dcgan {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"dcgan {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as exc:  # permissions, full disk, a folder where a file should be: the user's to fix
        print(
            f"dcgan {args.command}: error: {_one_line(exc.strerror or exc)}{': ' + _one_line(exc.filename) if exc.filename else ''}", file=sys.stderr
        )
        return 1
    finally:
        cleanup()
