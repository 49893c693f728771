"""What every command module shares: the parser class, typed option converters, the flags several commands
take (--seed, --data, --data-dir, --device, --raw-g: each declared here once), exit codes and a few helpers."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

from ..data import DATASETS, ImageData, load_dataset
from ..errors import ConfigError
from ..options import NONNEGATIVE_INT, POSITIVE_FLOAT, POSITIVE_INT, SEED, UNIT_FLOAT, Check
from ..rundir import RunDir
from ..training import TrainConfig, resolve_device
from ..training.config import DEVICE

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_TRAINING_FAILED = 3  # the health monitor stopped the run (--on-failure stop, or rollbacks used up)
EXIT_EXPORT_MISMATCH = 4  # an exported file does not reproduce the generator within its tolerance (nothing written)

IMAGE_SUFFIXES = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP"}
MAX_GENERATE = 100_000


@dataclass(frozen=True)
class Command:
    """One `dcgan` command: its one-line help, the examples under its --help, and two functions."""

    help: str  # one line, for `dcgan --help` and as the command's description
    examples: str  # the epilog of its --help
    add_args: Callable[[argparse.ArgumentParser], None]  # adds its arguments to its sub-parser
    run: Callable[[argparse.Namespace], int]  # does the work; returns the exit code
    old_words: Callable[[list[str]], list[str]] | None = None  # rewrites old spellings of its flags before parsing


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (plus where to get help), not a usage dump."""

    def error(self, message: str):  # noqa: D401
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _checked(convert: Callable, ok: Callable, wanted: str) -> Callable[[str], object]:
    """An argparse type: `convert` the text, then insist on `ok`, with one message for both failures (an options.Check)."""
    return Check(convert, ok, wanted, (int, float, str)).parse


# The checks of options.py (the dataclasses' own), as argparse types.
_positive_int = POSITIVE_INT.parse
_nonnegative_int = NONNEGATIVE_INT.parse
_positive_float = POSITIVE_FLOAT.parse
_unit_float = UNIT_FLOAT.parse


def add_seed(p, seeds: str, flag: str = "--seed") -> None:
    """--seed (or `flag`): what it seeds, one range (options.SEED) for every command, default 0."""
    p.add_argument(flag, type=SEED.parse, default=0, metavar="N", help=f"seeds {seeds} (default 0)")


def add_data(p, what: str, default: str | None = "the checkpoint's training data", required: bool = False) -> None:
    """--data NAME_OR_PATH: a dataset of the registry or files, as every command reads data."""
    tail = "" if required or default is None else f" (default: {default})"
    p.add_argument(
        "--data",
        default=None,
        required=required,
        metavar="NAME_OR_PATH",
        help=f"{what}: {', '.join(sorted(DATASETS))}, or a folder / .zip / .tar(.gz) of images, an LSUN lmdb or WebDataset shards{tail}",
    )


_DATA_DIR_HELP = next(f.metadata["option"]["help"] for f in fields(TrainConfig) if f.name == "data_dir")


def add_data_dir(p) -> None:
    """--data-dir DIR, with dcgan train's help (TrainConfig.data_dir)."""
    p.add_argument("--data-dir", default=None, metavar="DIR", help=_DATA_DIR_HELP)


def _help_formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def _one_line(value) -> str:
    """An error message on one line: newlines in user-given paths are shown escaped."""
    return str(value).replace("\r", "\\r").replace("\n", "\\n")


def _device(name: str):
    """--device as a torch.device: "auto" means CUDA when a GPU is visible, else the CPU."""
    return resolve_device(name)


def _data_source(ckpt, args: argparse.Namespace) -> tuple[str, str | None]:
    """(data name or path, data dir): --data and --data-dir, else what the checkpoint was trained on."""
    saved = (ckpt.record.train_config or {}) if ckpt else {}
    name = args.data or saved.get("data")
    if not name:
        raise ConfigError("the checkpoint does not record its training data; say which with --data")
    return name, args.data_dir if args.data_dir is not None or args.data else saved.get("data_dir")


def _checkpoint_data(ckpt, args: argparse.Namespace, split: str) -> ImageData:
    """The checkpoint's training data (or --data) at its generator's size and channels."""
    name, data_dir = _data_source(ckpt, args)
    mc = ckpt.model_config
    return load_dataset(name, data_dir, image_size=mc.image_size, channels=mc.channels, split=split)


def _explore_dir(ckpt) -> Path:
    """RUN_DIR/explore of the checkpoint's run directory (or of the file's own folder, outside a run)."""
    return RunDir.of_checkpoint(ckpt.path).explore_dir


def _explore_path(ckpt, args: argparse.Namespace, default: str) -> Path:
    """--out, or RUN_DIR/explore/NAME for a checkpoint inside a run directory."""
    if args.out:
        out = Path(args.out)
        if out.suffix.lower() not in IMAGE_SUFFIXES:
            raise ConfigError(f"--out {args.out}: use an image file ({', '.join(IMAGE_SUFFIXES)})")
        return out
    return _explore_dir(ckpt) / default


def _add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device", default="auto", type=DEVICE.parse, metavar="DEVICE", help="auto (cuda when present), cpu, cuda or cuda:N (default auto)"
    )


def _add_raw_g(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--raw-g",
        action="store_true",
        help="use the trained G instead of its average (the EMA with standing batch-norm statistics that checkpoints hold by default)",
    )
