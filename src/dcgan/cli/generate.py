"""`dcgan generate` (samples as a grid or one PNG each) and `dcgan info` (what a checkpoint holds)."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import torch

from ..checkpoint import load_checkpoint
from ..errors import ConfigError
from ..explore.latent import sheet_labels
from ..figures import class_rows_image
from ..imaging import grid_image, save_image_atomic, tensor_to_pil
from ..models import ModelConfig, format_summary, model_summary
from ..models.conditioning import CONDITIONING, class_grid, resolve_class
from ..sampling import generate, sample_z
from ..training.monitors import describe_best
from .common import IMAGE_SUFFIXES, MAX_GENERATE, Command, _add_device, _add_raw_g, _device, _positive_int, add_seed

GENERATE_EXAMPLES = """examples:
  dcgan generate runs/demo -n 64 --seed 1 --out grid.png     # one grid
  dcgan generate runs/demo -n 100 --out samples/             # one PNG per sample
  dcgan generate runs/mnist-cond --class 7 --out sevens.png  # a conditional model: 64 samples of class 7
  dcgan generate runs/clothes --class sneaker --out s.png    # a class by name (any case)
  dcgan generate runs/mnist-cond --class all -n 10 --out grid.png   # a row per class, the same z down each column
"""


# --------------------------------------------------------------------------- #
# --class, shared by every command that samples (generate, sheet, interpolate, arithmetic, invert, neighbors)
# --------------------------------------------------------------------------- #
CLASS_HELP = "for a class-conditional model: a class name (any case) or index"


def add_class_option(p: argparse.ArgumentParser, help: str = CLASS_HELP) -> None:
    """--class, stored as args.class_ (`class` is a keyword); the checkpoint resolves it (`class_option`)."""
    p.add_argument("--class", dest="class_", default=None, metavar="CLASS", help=help)


def class_option(mc: ModelConfig, text: str | None, flag: str = "--class") -> int | None:
    """One class index from --class (None when not given); one-line errors for an unconditional model or a bad class."""
    if text is None:
        return None
    if not mc.conditional:
        raise ConfigError(f"{flag} {text}: this model is unconditional, it has no classes (train with --conditional)")
    return resolve_class(text.strip(), mc.class_names, mc.num_classes)


def class_list_option(mc: ModelConfig, text: str | None, flag: str = "--class") -> list[int] | None:
    """Class indices from --class: one, a comma list, or `all` (every class in order); None when not given."""
    if text is None:
        return None
    if not mc.conditional:
        raise ConfigError(f"{flag} {text}: this model is unconditional, it has no classes (train with --conditional)")
    if text.strip().lower() == "all" and "all" not in [n.lower() for n in mc.class_names]:
        return list(range(mc.num_classes))
    tokens = [t.strip() for t in text.split(",")] if text not in mc.class_names else [text]
    if not all(tokens):
        raise ConfigError(f"{flag} {text!r}: give class names or indices separated by commas, or all")
    return [resolve_class(t, mc.class_names, mc.num_classes) for t in tokens]


def describe_classes(mc: ModelConfig, limit: int = 12) -> str:
    """'10 classes: 0, 1, 2, ...' for messages."""
    names = [mc.class_name(k) for k in range(mc.num_classes)]
    return f"{mc.num_classes} classes: " + ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")


def balanced_note(mc: ModelConfig) -> str:
    """The line a command prints when it draws a conditional model's samples in balanced classes."""
    return (
        f"this model is class-conditional ({describe_classes(mc)}); without --class, sample i is drawn in class i mod "
        f"{mc.num_classes}: choose one with --class NAME|INDEX"
    )


def _file_part(name: str) -> str:
    """A class name made safe for a file name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "class"


def _add_generate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", metavar="CKPT", help="a run directory (its latest checkpoint) or a checkpoint file")
    p.add_argument(
        "-n",
        "--num",
        type=_positive_int,
        default=None,
        help="number of samples (default 64); with several classes, samples per class row (default 10)",
    )
    add_seed(p, "the noise: the same seed gives the same images")
    p.add_argument("--out", required=True, metavar="FILE.png|DIR/", help="a grid image file, or a folder (ending in /) for one PNG per sample")
    p.add_argument("--nrow", type=_positive_int, default=None, help="images per grid row (default: square)")
    add_class_option(
        p,
        "for a class-conditional model: a class name (any case) or index for samples of that class; "
        "a comma list of classes or `all` for one row per class, -n samples each, the same z down each column "
        "(default: balanced classes, sample i in class i mod the number of classes)",
    )
    _add_device(p)
    _add_raw_g(p)


def _run_generate(args: argparse.Namespace) -> int:
    out = Path(args.out)
    as_folder = args.out.endswith(("/", "\\")) or out.is_dir()
    if not as_folder and out.suffix.lower() not in IMAGE_SUFFIXES:
        raise ConfigError(f"--out {args.out}: use an image file ({', '.join(IMAGE_SUFFIXES)}) or a folder ending in /")
    ckpt = load_checkpoint(args.checkpoint)
    mc = ckpt.model_config
    classes = class_list_option(mc, args.class_)
    row_classes = classes if classes is not None and len(classes) > 1 else []  # one row per class
    rows = bool(row_classes)
    num = args.num or (10 if rows else 64)
    total = num * (len(row_classes) if rows else 1)
    if total > MAX_GENERATE:
        raise ConfigError(f"-n {num}{f' x {len(row_classes)} classes' if rows else ''} is more than {MAX_GENERATE:,} samples in one call")
    if rows and args.nrow:
        raise ConfigError("--nrow does not apply to a grid of class rows: -n sets the samples per row")
    G = ckpt.build_generator(_device(args.device), raw=args.raw_g)
    z = sample_z(num, mc.z_dim, mc.prior, torch.Generator().manual_seed(args.seed))  # (n, z_dim): the same for any --class
    labels: torch.Tensor | None
    if rows:
        z, labels = class_grid(z, row_classes)  # (rows * n, z_dim), (rows * n,): row r is class classes[r]
    else:
        labels = sheet_labels(mc, num, None if classes is None else classes[0])  # one class, balanced, or None
        if mc.conditional and classes is None:
            print(balanced_note(mc))
    images = generate(G, z, labels)
    if as_folder:
        out.mkdir(parents=True, exist_ok=True)
        for i, image in enumerate(images):
            suffix = "" if labels is None else f"_{_file_part(mc.class_name(int(labels[i])))}"
            save_image_atomic(tensor_to_pil(image), out / f"sample_{args.seed}_{i:05d}{suffix}.png")
        print(
            f"wrote {len(images)} images ({mc.image_size}x{mc.image_size}) to {out}/"
            + ("" if labels is None else " (the class at the end of each file name)")
        )
    elif rows:
        names = [mc.class_name(k) for k in row_classes]
        save_image_atomic(class_rows_image(images, names), out, format=IMAGE_SUFFIXES[out.suffix.lower()])
        print(f"wrote a grid of {len(row_classes)} classes x {num} samples to {out} (a row per class, the same z down each column)")
    else:
        nrow = min(args.nrow, len(images)) if args.nrow else None  # wider than the samples would be empty canvas
        save_image_atomic(grid_image(images, nrow=nrow), out, format=IMAGE_SUFFIXES[out.suffix.lower()])
        of_class = f" of class {mc.class_name(classes[0])} (index {classes[0]})" if classes else ""
        print(f"wrote a grid of {len(images)} samples{of_class} to {out}")
    return 0


# --------------------------------------------------------------------------- #
# dcgan info
# --------------------------------------------------------------------------- #
INFO_EXAMPLES = """examples:
  dcgan info runs/demo
  dcgan info runs/demo/checkpoints/latest.safetensors --json
"""


def _add_info_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", metavar="CKPT", help="a run directory (its latest checkpoint) or a checkpoint file")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--layers", action="store_true", help="also print every layer's shape, parameters and MACs")


def _info(ckpt, record, g_rows: list[dict], d_rows: list[dict] | None) -> dict:
    """What `dcgan info --json` prints: the file, the model, the training `record` (its fields None where
    the file records none), the sizes of G and D (from their layer summaries) and the classes."""
    mc = ckpt.model_config
    return {
        "checkpoint": str(ckpt.path),
        "format": ckpt.format,
        "file_bytes": ckpt.path.stat().st_size,
        "dcgan_version": ckpt.dcgan_version,
        "model": mc.to_dict(),
        "step": record.step if record else None,
        "epoch": record.epoch_fraction if record else None,
        "train": record.train_config if record else None,
        "data": record.data if record else None,
        "last": record.last if record else None,
        "best": record.best if record else None,
        "elapsed_s": record.elapsed_s if record else None,
        "saved_at": record.saved_at if record else None,
        "generator": {
            "params": sum(r["params"] for r in g_rows),
            "macs_per_image": sum(r["macs"] for r in g_rows),
            "sampled": ckpt.generator_kind(),
            "ema": record.ema if record and ckpt.has_ema else None,
        },
        "discriminator": None if d_rows is None else {"params": sum(r["params"] for r in d_rows), "macs_per_image": sum(r["macs"] for r in d_rows)},
        "classes": None
        if not mc.conditional
        else {
            "num_classes": mc.num_classes,
            "names": [mc.class_name(k) for k in range(mc.num_classes)],
            "conditioning": mc.conditioning,
            "conditioning_description": CONDITIONING[mc.conditioning].description,
        },
    }


def _print_model(ckpt, record, info: dict) -> None:
    """The text lines on the file, the model, the generator commands sample, the classes and D."""
    mc = ckpt.model_config
    kind = "" if ckpt.resumable else "exported generator, "
    print(f"checkpoint   {info['checkpoint']} ({kind}{info['file_bytes'] / 1e6:.1f} MB, dcgan {info['dcgan_version']})")
    print(
        f"model        {mc.image_size}x{mc.image_size}x{mc.channels}, z_dim {mc.z_dim} ({mc.prior}), width {mc.width}, "
        f"G block {mc.g_block}, D block {mc.d_block}"
    )
    print(
        f"generator    {info['generator']['params']:,} params, {info['generator']['macs_per_image'] / 1e6:.1f}M MACs/image; "
        + (
            f"commands sample its average (EMA, half-life {record.ema.get('half_life_images', 0) / 1000:g}k images, "
            f"{record.ema.get('updates', 0):,} updates, standing BN statistics); --raw-g the trained G"
            if ckpt.has_ema and record
            else "commands sample the trained G"
        )
    )
    if mc.conditional:
        print(f"classes      {describe_classes(mc, limit=20)}")
        print(f"conditioning {mc.conditioning}: {CONDITIONING[mc.conditioning].description}; choose a class with --class")
    if info["discriminator"]:
        print(f"discriminator {info['discriminator']['params']:,} params, {info['discriminator']['macs_per_image'] / 1e6:.1f}M MACs/image")


def _print_training(record, info: dict) -> None:
    """The text lines on the training the file records: progress, data, settings, the best and the last losses."""
    data = info["data"] or {}
    train = info["train"] or {}
    print(f"progress     step {info['step']}, epoch {info['epoch']:.2f}, {info['elapsed_s'] or 0:.0f} s of training, saved {info['saved_at']}")
    print(
        f"data         {data.get('name')} ({data.get('num_images')} images from {data.get('source')}), sha256 {str(data.get('fingerprint'))[:16]}..."
    )
    print(
        f"training     batch {train.get('batch_size')}, lr G {train.get('lr_g')} D {train.get('lr_d')}, betas ({train.get('beta1')}, {train.get('beta2')}), seed {train.get('seed')}"
    )
    best = record.best
    if best:
        print(f"best         {describe_best(best)} (--eval-every; checkpoints/best.safetensors)")
    last = info["last"] or {}
    if isinstance(last, dict) and all(isinstance(last.get(k), (int, float)) for k in ("loss_d", "loss_g", "d_real", "d_fake")):
        print(f"last losses  loss_D {last['loss_d']:.3f} loss_G {last['loss_g']:.3f} D(x) {last['d_real']:.2f} D(G(z)) {last['d_fake']:.2f}")


def _run_info(args: argparse.Namespace) -> int:
    ckpt = load_checkpoint(args.checkpoint)
    mc = ckpt.model_config
    G = ckpt.build_generator()
    g_rows = model_summary(G, torch.zeros(1, mc.z_dim))
    d_rows = None
    if ckpt.has("D"):
        d_rows = model_summary(ckpt.build_discriminator(), torch.zeros(1, mc.channels, mc.image_size, mc.image_size))
    record = ckpt.record if ckpt.state else None  # None: the file records no training (step, data, ...)
    info = _info(ckpt, record, g_rows, d_rows)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    _print_model(ckpt, record, info)
    if record:
        _print_training(record, info)
    if args.layers:
        print()
        print(format_summary("Generator", g_rows))
        if d_rows:
            print()
            print(format_summary("Discriminator", d_rows))
    return 0


COMMANDS = {
    "generate": Command("write samples from a checkpoint as a grid or one PNG each", GENERATE_EXAMPLES, _add_generate_args, _run_generate),
    "info": Command("print a checkpoint's config, progress, data and size", INFO_EXAMPLES, _add_info_args, _run_info),
}
