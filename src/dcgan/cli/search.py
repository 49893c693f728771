"""Searches in a generator's latent space and its training data: `dcgan invert` (the z whose image best
reconstructs a real image) and `dcgan neighbors` (the nearest training images of generated samples,
a memorisation check). They share the latent tools' options and output in `explore`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from ..checkpoint import load_checkpoint
from ..data.imagefiles import DecodeError, decode_image
from ..errors import ConfigError
from ..explore.figures import inversion_figure, neighbors_figure
from ..explore.latent import invert, latent_sheet, nearest_neighbors, sheet_labels
from ..figures import stack_vertical, titled
from ..fileio import atomic_write_bytes
from ..imaging import to_unit_range
from ..metrics.classifier import default_evaluator_path
from ..metrics.extractors import build_extractor
from ..sampling import generate
from .common import (
    Command,
    _add_device,
    _add_raw_g,
    _checked,
    _checkpoint_data,
    _data_source,
    _device,
    _positive_float,
    _positive_int,
    add_data,
    add_data_dir,
    add_seed,
)
from .explore import _add_out, _default_name, _write_figure
from .generate import add_class_option, balanced_note, class_option

# --------------------------------------------------------------------------- #
# Searches: dcgan invert | neighbors
# --------------------------------------------------------------------------- #
INVERT_EXAMPLES = """examples:
  dcgan invert runs/mnist my_digit.png                  # writes the figure and the z as JSON
  dcgan interpolate runs/mnist --pairs 0:runs/mnist/explore/invert-my_digit.json
  dcgan invert runs/mnist-cond my_digit.png             # a conditional model: infers the class, prints it
  dcgan invert runs/mnist-cond my_digit.png --class 4   # z for class 4 only
"""

NEIGHBORS_EXAMPLES = """examples:
  dcgan neighbors runs/mnist -n 8 -k 5                  # nearest training images of 8 samples
  dcgan neighbors runs/mnist-cond --class 7             # samples of class 7 and their nearest training images
"""


def _add_invert_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", metavar="CKPT", help="a run directory (its latest checkpoint) or a checkpoint file")
    p.add_argument("image", metavar="IMAGE", help="an image file (resized and centre-cropped to the generator's size)")
    p.add_argument(
        "--restarts",
        type=_checked(int, lambda v: 1 <= v <= 64, "a whole number from 1 to 64"),
        default=8,
        help="random starting points, optimised together (default 8)",
    )
    p.add_argument(
        "--steps", type=_checked(int, lambda v: 1 <= v <= 20000, "a whole number from 1 to 20000"), default=500, help="Adam steps (default 500)"
    )
    p.add_argument("--lr", type=_positive_float, default=0.05)
    add_seed(p, "the random starting points")
    add_class_option(
        p,
        "for a class-conditional model: find z for this class, a name (any case) or index (default: infer "
        "the class, by inverting under every class and keeping the best reconstruction)",
    )
    p.add_argument(
        "--candidates",
        type=_positive_int,
        default=None,
        metavar="K",
        help="inferring the class: every class gets a quarter of the steps, then the K best get them all "
        f"(default: every class in full up to {FULL_INFERENCE_CLASSES} classes, else the best 5)",
    )
    _add_device(p)
    _add_raw_g(p)
    _add_out(p, "invert-IMAGE.png (and .json with z)")


FULL_INFERENCE_CLASSES = 10  # up to this many classes, class inference inverts under every class in full


def _run_invert(args: argparse.Namespace) -> int:

    source = Path(args.image)
    if not source.is_file():
        raise ConfigError(f"image {source} does not exist")
    ckpt = load_checkpoint(args.checkpoint)
    mc = ckpt.model_config
    try:
        pixels = decode_image(source.read_bytes(), mc.image_size, mc.channels)
    except DecodeError as exc:
        raise ConfigError(f"{source} could not be read as an image ({exc})") from None
    target = to_unit_range(torch.from_numpy(pixels.copy()))  # (C, H, W) in [-1, 1]
    label = class_option(mc, args.class_)
    if args.candidates is not None and (not mc.conditional or label is not None):
        raise ConfigError("--candidates is for inferring the class of a conditional model's image (no --class)")
    candidates = args.candidates
    if candidates is None and mc.conditional and mc.num_classes > FULL_INFERENCE_CLASSES:
        candidates = 5
    G = ckpt.build_generator(_device(args.device), raw=args.raw_g)
    result = invert(G, target, restarts=args.restarts, steps=args.steps, lr=args.lr, seed=args.seed, label=label, candidates=candidates)
    figure = inversion_figure(target, result)
    if result.label is not None:
        how = "inferred: the best reconstruction of all classes tried" if result.inferred else "given with --class"
        figure = titled(figure, f"class {mc.class_name(result.label)} ({how})", size=12)
    _say_inversion(result, mc, args, candidates)
    record = _z_record(result, mc, source, ckpt)

    def z_file(out: Path) -> Path:
        return atomic_write_bytes(out.with_suffix(".json"), (json.dumps(record) + "\n").encode())

    return _write_figure(figure, ckpt, args, f"invert-{source.stem}.png", "use the z file in interpolate/arithmetic in place of an index", z_file)


def _z_record(result, mc, source: Path, ckpt) -> dict:
    """What the z file of `dcgan invert` holds: z, where it came from, the reconstruction error, the class."""
    record = {
        "z": [round(float(v), 7) for v in result.z],
        "image": str(source),
        "checkpoint": str(ckpt.path),
        "mse": result.mse,
        "psnr_db": result.psnr,
    }
    if result.label is not None:
        record.update({"class": result.label, "class_name": mc.class_name(result.label), "class_inferred": result.inferred})
        if result.inferred:
            record["class_mse"] = {mc.class_name(k): round(v, 6) for k, v in sorted(result.class_mse.items(), key=lambda kv: kv[1])}
    return record


def _say_inversion(result, mc, args: argparse.Namespace, candidates: int | None) -> None:
    """The reconstruction error, and the class: inferred (with the runner-up) or as given."""
    print(f"reconstruction MSE {result.mse:.4f} (PSNR {result.psnr:.1f} dB, best of {args.restarts} restarts, {args.steps} steps)")
    if result.inferred:
        ranked = sorted(result.class_mse.items(), key=lambda kv: kv[1])
        runner_up = f"; next best {mc.class_name(ranked[1][0])} (MSE {ranked[1][1]:.4f})" if len(ranked) > 1 else ""
        screened = f", the best {candidates} of them in full" if candidates is not None and candidates < len(ranked) else ""
        print(
            f"inferred class {mc.class_name(result.label)} (index {result.label}): the best reconstruction under "
            f"{len(ranked)} classes{screened}{runner_up}"
        )
    elif result.label is not None:
        print(f"class {mc.class_name(result.label)} (index {result.label}), as given with --class")


def _add_neighbors_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", metavar="CKPT", help="a run directory (its latest checkpoint) or a checkpoint file")
    add_data(p, "training data to search")
    add_data_dir(p)
    p.add_argument(
        "-n", "--num", type=_checked(int, lambda v: 1 <= v <= 256, "a whole number from 1 to 256"), default=8, help="generated samples (default 8)"
    )
    p.add_argument(
        "-k", type=_checked(int, lambda v: 1 <= v <= 32, "a whole number from 1 to 32"), default=5, help="neighbours per sample (default 5)"
    )
    p.add_argument(
        "--features",
        default="auto",
        choices=("auto", "classifier", "pixels", "discriminator"),
        help="second search space besides pixels (default auto: the dataset's classifier when trained, else D)",
    )
    p.add_argument("--evaluator", default=None, metavar="FILE")
    add_seed(p, "the samples (sheet entries 0..n-1 of that seed)")
    add_class_option(
        p,
        "for a class-conditional model: draw the samples in this class, a name (any case) or index "
        "(default: balanced, sample i in class i mod the number of classes); every training image is searched",
    )
    _add_device(p)
    _add_raw_g(p)
    _add_out(p, "neighbors-seed{SEED}.png")


def _run_neighbors(args: argparse.Namespace) -> int:

    device = str(_device(args.device))
    ckpt = load_checkpoint(args.checkpoint)
    mc = ckpt.model_config
    label = class_option(mc, args.class_)
    data_name, _ = _data_source(ckpt, args)
    data = _checkpoint_data(ckpt, args, "train")
    if not data.in_memory:
        raise ConfigError("neighbors needs the training data in memory; this dataset streams from disk")
    assert data.images is not None  # in memory: just checked
    if mc.conditional and label is None:
        print(balanced_note(mc))
    samples = generate(ckpt.build_generator(device, raw=args.raw_g), latent_sheet(mc, args.seed, args.num), sheet_labels(mc, args.num, label))
    real = to_unit_range(data.images)
    panels = []
    d, i = nearest_neighbors(samples.flatten(1), real.flatten(1), args.k)
    panels.append(neighbors_figure(samples, data.images[i], d, f"nearest in pixels (L2, [-1, 1] units) among {len(data)} training images"))
    name = args.features
    if name == "auto":
        name = "classifier" if (args.evaluator or default_evaluator_path(data_name).is_file()) else "discriminator"
    if name != "pixels":
        ex = build_extractor(name, dataset=data_name, evaluator=args.evaluator, checkpoint=ckpt, device=device)
        real_f = torch.cat([ex.features(chunk) for chunk in real.split(1000)])
        d, i = nearest_neighbors(ex.features(samples), real_f, args.k)
        panels.append(neighbors_figure(samples, data.images[i], d, f"nearest in {name} features ({ex.description})"))
    figure = stack_vertical(panels, gap=16)
    if label is not None:
        figure = titled(figure, f"samples of class {mc.class_name(label)}; every training image searched", size=12)
    of_class = "" if label is None else f" of class {mc.class_name(label)}"
    return _write_figure(
        figure,
        ckpt,
        args,
        _default_name("neighbors", args.seed, label),
        f"{args.num} samples{of_class} (sheet --seed {args.seed}) with their {args.k} nearest training images",
    )


COMMANDS = {
    "invert": Command("find the z whose image best reconstructs a real image", INVERT_EXAMPLES, _add_invert_args, _run_invert),
    "neighbors": Command(
        "nearest training images of generated samples: a memorisation check", NEIGHBORS_EXAMPLES, _add_neighbors_args, _run_neighbors
    ),
}
