"""What every command module shares: the parser class, typed option converters, exit codes and a few helpers."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..data import ImageData, load_dataset
from ..errors import ConfigError
from ..rundir import RunDir
from ..sampling import MAX_SEED
from ..training import resolve_device
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


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (plus where to get help), not a usage dump."""

    def error(self, message: str):  # noqa: D401
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _checked(convert: Callable, ok: Callable, wanted: str) -> Callable[[str], object]:
    """An argparse type: `convert` the text, then insist on `ok`, with one message for both failures."""

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not ok(value):
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}")
        return value

    return parse


_positive_int = _checked(int, lambda v: v >= 1, "a positive whole number")
_nonnegative_int = _checked(int, lambda v: v >= 0, "a whole number >= 0")
_positive_float = _checked(float, lambda v: math.isfinite(v) and v > 0, "a positive number")
_unit_float = _checked(float, lambda v: 0.0 <= v < 1.0, "a number in [0, 1)")
_seed = _checked(int, lambda v: 0 <= v <= MAX_SEED, f"a whole number from 0 to {MAX_SEED}")


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
    p.add_argument("--device", default="auto", type=DEVICE.parse, metavar="DEVICE",
                   help="auto (cuda when present), cpu, cuda or cuda:N (default auto)")


def _add_raw_g(p: argparse.ArgumentParser) -> None:
    p.add_argument("--raw-g", action="store_true",
                   help="use the trained G instead of its average (the EMA with standing batch-norm statistics that "
                   "checkpoints hold by default)")
