"""Seeing inside a discriminator: `dcgan probe` (the paper's section 5.1) and `dcgan filters`.

Reports and pictures go to RUN_DIR/explore/ unless --json or --out says otherwise.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from ..checkpoint import load_checkpoint
from ..errors import ConfigError
from ..explore.filters import discriminator_filters, generator_filters, top_activation_figure
from ..explore.probe import run_probe
from ..figures import stack_vertical, titled
from ..fileio import atomic_write_bytes
from ..imaging import save_image_atomic
from ..models import Discriminator
from ..sampling import with_real_statistics
from .common import (
    Command,
    _add_device,
    _add_raw_g,
    _checked,
    _checkpoint_data,
    _device,
    _explore_dir,
    _explore_path,
    _nonnegative_int,
    _positive_int,
    add_data,
    add_data_dir,
    add_seed,
)

PROBE_EXAMPLES = """examples:
  dcgan probe runs/mnist --labels-per-class 100               # D features + linear SVM vs pixels and a random D
  dcgan probe runs/cifar --data cifar10 --data-dir ../shared/data/cifar10-partial --labels-per-class 100
"""

FILTERS_EXAMPLES = """examples:
  dcgan filters runs/mnist                                    # first-layer filters of D and G
  dcgan filters runs/mnist --layer 1 --channels 0,5,9 --top-k 6   # images that excite D's channels most
"""


def _add_probe_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", metavar="CKPT", help="a run directory (its latest checkpoint) or a checkpoint file")
    add_data(p, "labelled data with a test split")
    add_data_dir(p)
    p.add_argument(
        "--labels-per-class",
        type=_checked(int, lambda v: 1 <= v <= 100_000, "a whole number from 1 to 100000"),
        default=100,
        metavar="N",
        help="labelled training images per class (default 100)",
    )
    p.add_argument("--max-test", type=_positive_int, default=None, metavar="N", help="score a seeded subset of N test images (default: all)")
    add_seed(p, "the choice of labelled images, the validation split and the random D")
    p.add_argument("--no-baselines", action="store_true", help="skip the pixel and random-D baselines")
    p.add_argument("--json", default=None, metavar="FILE", help="where to write the report (default RUN_DIR/explore/probe-N.json)")
    _add_device(p)


def _run_probe(args: argparse.Namespace) -> int:
    ckpt = load_checkpoint(args.checkpoint)
    if not ckpt.has("D"):
        raise ConfigError(f"{ckpt.path} holds no discriminator to probe")
    train, test = _checkpoint_data(ckpt, args, "train"), _checkpoint_data(ckpt, args, "test")
    D = ckpt.build_discriminator(_device(args.device))
    print(f"probing D of {ckpt.path} (step {ckpt.step}) on {train.name}: {args.labels_per_class} labels per class ...", flush=True)
    start = time.perf_counter()
    report = run_probe(
        D, train, test, args.labels_per_class, seed=args.seed, baselines=() if args.no_baselines else ("pixels", "random_d"), max_test=args.max_test
    )
    print(report.table())
    print(f"({time.perf_counter() - start:.1f} s in all)")
    out = Path(args.json) if args.json else _explore_dir(ckpt) / f"probe-{args.labels_per_class}.json"
    atomic_write_bytes(
        out, (json.dumps({"checkpoint": str(ckpt.path), "step": ckpt.step, "data": train.name, **report.to_dict()}, indent=2) + "\n").encode()
    )
    print(f"report: {out}")
    return 0


def _add_filters_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", metavar="CKPT", help="a run directory (its latest checkpoint) or a checkpoint file")
    p.add_argument("--layer", type=_nonnegative_int, default=0, help="D block whose channels to show (0 = the first, image side)")
    p.add_argument("--channels", default="0,1,2,3,4,5,6,7", metavar="I,J,...", help="channels of that block (default 0..7)")
    p.add_argument(
        "--top-k", type=_checked(int, lambda v: 1 <= v <= 32, "a whole number from 1 to 32"), default=6, help="images per channel (default 6)"
    )
    add_data(p, "real images to search")
    add_data_dir(p)
    p.add_argument("--num-images", type=_positive_int, default=5000, metavar="N", help="search a seeded subset of N images (default 5000)")
    add_seed(p, "the subset searched and the real batches of D's batch-norm statistics")
    p.add_argument("--out", default=None, metavar="FILE.png", help="the figure (default RUN_DIR/explore/filters.png)")
    _add_device(p)
    _add_raw_g(p)


def _run_filters(args: argparse.Namespace) -> int:

    try:
        channels = [int(c) for c in args.channels.split(",") if c.strip()]
    except ValueError:
        raise ConfigError(f"--channels {args.channels!r}: give channel numbers like 0,3,7") from None
    if not channels:
        raise ConfigError("--channels needs at least one channel number")
    ckpt = load_checkpoint(args.checkpoint)
    out = _explore_path(ckpt, args, "filters.png")
    device = _device(args.device)
    D, G = ckpt.build_discriminator(device), ckpt.build_generator(device, raw=args.raw_g)
    data = _checkpoint_data(ckpt, args, "train")
    if not data.in_memory:
        raise ConfigError("filters needs the data in memory; this dataset streams from disk")
    pick = torch.randperm(len(data), generator=torch.Generator().manual_seed(args.seed))[: args.num_images].sort().values
    assert data.images is not None  # in memory: just checked
    images = data.images[pick]
    real_d = with_real_statistics(D, data.images, seed=args.seed)  # D reads real images: BN statistics of real batches
    assert isinstance(real_d, Discriminator)  # a copy of D
    D = real_d
    panels = [
        titled(discriminator_filters(D), f"D, first layer: {D.config.hidden_widths()[0]} filters", size=12),
        titled(generator_filters(G), "G, output layer", size=12),
        titled(
            top_activation_figure(D, images, args.layer, channels, args.top_k),
            f"D block {args.layer}: the {args.top_k} of {len(images)} training images that excite each channel most, with its activation map",
            size=12,
        ),
    ]
    save_image_atomic(stack_vertical(panels, gap=16), out)
    print(f"wrote {out}")
    return 0


COMMANDS = {
    "probe": Command(
        "the paper's section 5.1: D's features + a linear SVM, against pixels and a random D", PROBE_EXAMPLES, _add_probe_args, _run_probe
    ),
    "filters": Command(
        "D's and G's first-layer filters, and the images that excite chosen D channels", FILTERS_EXAMPLES, _add_filters_args, _run_filters
    ),
}
