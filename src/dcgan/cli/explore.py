"""Exploring a generator and looking inside it.

The latent space: `dcgan sheet`, `interpolate`, `arithmetic`, `invert`, `neighbors`.
Seeing inside: `dcgan probe` (the paper's section 5.1) and `dcgan filters`.
Pictures and reports go to RUN_DIR/explore/ unless --out or --json says otherwise.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from ..checkpoint import load_checkpoint
from ..errors import ConfigError
from ..fileio import atomic_write_bytes
from ..figures import arithmetic_figure, inversion_figure, neighbors_figure, numbered_sheet, stack_vertical, titled, walk_figure, walk_frames
from ..filters import discriminator_filters, generator_filters, top_activation_figure
from ..imagefiles import DecodeError, decode_image
from ..imaging import save_gif, save_image_atomic
from ..latent import INTERPOLATIONS, interpolate, invert, latent_sheet, nearest_neighbors, pick, vector_arithmetic
from ..metrics.classifier import default_evaluator_path
from ..metrics.extractors import build_extractor
from ..probe import run_probe
from ..rundir import RunDir
from ..sampling import generate, with_real_statistics
from .common import (
    IMAGE_SUFFIXES,
    MAX_GENERATE,
    Command,
    _add_device,
    _add_raw_g,
    _checked,
    _checkpoint_data,
    _data_source,
    _device,
    _nonnegative_int,
    _positive_float,
    _positive_int,
    _seed,
)

# --------------------------------------------------------------------------- #
# The latent space: dcgan sheet | interpolate | arithmetic | invert | neighbors
# --------------------------------------------------------------------------- #
SHEET_EXAMPLES = """examples:
  dcgan sheet runs/mnist --seed 0 -n 64          # pick exemplars by the number under each sample
  dcgan arithmetic runs/mnist --a 3,17,21 --b 5,9,11 --c 2,4,8   # indices refer to that sheet
"""

INTERPOLATE_EXAMPLES = """examples:
  dcgan interpolate runs/mnist                          # 4 random pairs of the seed-0 sheet, spherical
  dcgan interpolate runs/mnist --pairs 3:17,5:9 --steps 12 --method linear
  dcgan interpolate runs/mnist --pairs 3:runs/mnist/explore/invert-seven.json   # to an inverted real image
"""

ARITHMETIC_EXAMPLES = """examples:
  dcgan sheet runs/celeba --seed 0 -n 64                # find smiling women (a), neutral women (b), neutral men (c)
  dcgan arithmetic runs/celeba --a 3,17,21 --b 5,9,11 --c 2,4,8 --noise 0.25
"""

INVERT_EXAMPLES = """examples:
  dcgan invert runs/mnist my_digit.png                  # writes the figure and the z as JSON
  dcgan interpolate runs/mnist --pairs 0:runs/mnist/explore/invert-my_digit.json
"""

NEIGHBORS_EXAMPLES = """examples:
  dcgan neighbors runs/mnist -n 8 -k 5                  # nearest training images of 8 samples
"""


def _add_sheet_source(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", metavar="CKPT", help="a run directory (its latest checkpoint) or a checkpoint file")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the numbered sheet the indices refer to (default 0)")
    p.add_argument("-n", "--num", type=_positive_int, default=64, help="size of that sheet (default 64)")
    _add_device(p)
    _add_raw_g(p)


def _add_out(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument("--out", default=None, metavar="FILE.png", help=f"picture to write (default RUN_DIR/explore/{default})")


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


def _load_for_latent(args: argparse.Namespace):
    if args.num > MAX_GENERATE:
        raise ConfigError(f"-n {args.num} is more than {MAX_GENERATE:,} samples")
    device = _device(args.device)
    ckpt = load_checkpoint(args.checkpoint)
    G = ckpt.build_generator(device, raw=args.raw_g)
    return ckpt, G, latent_sheet(ckpt.model_config, args.seed, args.num)


def _latent_refs(text: str, sheet, option: str):
    """'3,17,21' or '3,path/to/z.json' -> (z (k, D), labels): sheet indices or z files written by `dcgan invert`."""

    zs, labels = [], []
    for token in (t.strip() for t in text.split(",")):
        if not token:
            continue
        if token.isdigit():
            zs.append(pick(sheet, [int(token)], f"{option} index")[0])
            labels.append(token)
        else:
            zs.append(_read_z(token, sheet.shape[1]))
            labels.append(Path(token).stem)
    if not zs:
        raise ConfigError(f"{option} needs at least one sheet index or z file")
    return torch.stack(zs), labels


def _read_z(path: str, z_dim: int):
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{path} is neither a sheet index nor an existing z file (from dcgan invert)")
    try:
        values = json.loads(p.read_text())["z"]
        z = torch.tensor(values, dtype=torch.float32)
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path} is not a z file written by dcgan invert ({exc})") from None
    if z.shape != (z_dim,):
        raise ConfigError(f"{path} holds a z of length {z.numel()}, but this generator takes {z_dim}")
    return z


def _add_sheet_args(p: argparse.ArgumentParser) -> None:
    _add_sheet_source(p)
    p.add_argument("--nrow", type=_positive_int, default=None, help="samples per row (default: square)")
    _add_out(p, "sheet-seed{SEED}.png")


def _run_sheet(args: argparse.Namespace) -> int:
    ckpt, G, sheet = _load_for_latent(args)
    nrow = min(args.nrow, args.num) if args.nrow else None
    img = titled(numbered_sheet(generate(G, sheet), nrow=nrow), f"{ckpt.path} (step {ckpt.step}), --seed {args.seed} -n {args.num}", size=12)
    out = save_image_atomic(img, _explore_path(ckpt, args, f"sheet-seed{args.seed}.png"))
    print(f"wrote {out}: {args.num} samples numbered 0..{args.num - 1} (use the numbers with --seed {args.seed} -n {args.num})")
    return 0


def _add_interpolate_args(p: argparse.ArgumentParser) -> None:
    _add_sheet_source(p)
    p.add_argument("--pairs", default=None, metavar="A:B,...", help="walks between sheet indices (or z files from dcgan invert), e.g. 3:17,5:9")
    p.add_argument("--random", type=_positive_int, default=4, metavar="N", help="without --pairs: N random pairs of the sheet (default 4)")
    p.add_argument("--steps", type=_checked(int, lambda v: 2 <= v <= 200, "a whole number from 2 to 200"), default=10, help="images per walk, endpoints included (default 10)")
    p.add_argument("--method", choices=tuple(INTERPOLATIONS), default="spherical", help="spherical (slerp, keeps the norm) or linear (default spherical)")
    _add_out(p, "interpolate-seed{SEED}.png (and .gif)")


def _run_interpolate(args: argparse.Namespace) -> int:

    ckpt, G, sheet = _load_for_latent(args)
    if args.pairs:
        starts, ends, labels = [], [], []
        for pair in args.pairs.split(","):
            if pair.count(":") != 1:
                raise ConfigError(f"--pairs {args.pairs!r}: write each pair as A:B, e.g. 3:17")
            a, b = pair.split(":")
            za, la = _latent_refs(a, sheet, "--pairs")
            zb, lb = _latent_refs(b, sheet, "--pairs")
            starts.append(za[0])
            ends.append(zb[0])
            labels.append(f"{la[0]}->{lb[0]}")
        starts, ends = torch.stack(starts), torch.stack(ends)
    else:
        if sheet.shape[0] < 2:
            raise ConfigError("random pairs need a sheet of at least 2 samples")
        g = torch.Generator().manual_seed(args.seed + 1)
        idx = torch.stack([torch.randperm(sheet.shape[0], generator=g)[:2] for _ in range(args.random)])
        starts, ends = sheet[idx[:, 0]], sheet[idx[:, 1]]
        labels = [f"{int(a)}->{int(b)}" for a, b in idx]
    walks = interpolate(G, starts, ends, args.steps, args.method)
    out = _explore_path(ckpt, args, f"interpolate-seed{args.seed}.png")
    save_image_atomic(walk_figure(walks, [f"{args.method}: " + ", ".join(labels)]), out)
    gif = save_gif(walk_frames(walks), out.with_suffix(".gif"), duration_ms=120, last_frame_ms=120)
    print(f"wrote {out} ({len(labels)} walks of {args.steps} steps, {args.method}) and {gif}")
    return 0


def _add_arithmetic_args(p: argparse.ArgumentParser) -> None:
    _add_sheet_source(p)
    for name in ("a", "b", "c"):
        p.add_argument(f"--{name}", required=True, metavar="I,J,K", help=f"group {name.upper()}: sheet indices (or z files) whose mean z is used")
    p.add_argument("--noise", type=_checked(float, lambda v: math.isfinite(v) and v >= 0, "a number >= 0"), default=0.25,
                   help="standard deviation of the noise added around the result in the 3x3 grid (default 0.25, as in the paper)")
    p.add_argument("--noise-seed", type=_seed, default=0)
    _add_out(p, "arithmetic-seed{SEED}.png")


def _run_arithmetic(args: argparse.Namespace) -> int:
    ckpt, G, sheet = _load_for_latent(args)
    (za, la), (zb, lb), (zc, lc) = (_latent_refs(getattr(args, n), sheet, f"--{n}") for n in ("a", "b", "c"))
    result = vector_arithmetic(G, za, zb, zc, noise_scale=args.noise, seed=args.noise_seed)
    out = save_image_atomic(arithmetic_figure(result, indices=[la, lb, lc]), _explore_path(ckpt, args, f"arithmetic-seed{args.seed}.png"))
    print(f"wrote {out}: mean({','.join(la)}) - mean({','.join(lb)}) + mean({','.join(lc)}), with a 3x3 grid of noise {args.noise:g}")
    return 0


def _add_invert_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", metavar="CKPT", help="a run directory (its latest checkpoint) or a checkpoint file")
    p.add_argument("image", metavar="IMAGE", help="an image file (resized and centre-cropped to the generator's size)")
    p.add_argument("--restarts", type=_checked(int, lambda v: 1 <= v <= 64, "a whole number from 1 to 64"), default=8, help="random starting points, optimised together (default 8)")
    p.add_argument("--steps", type=_checked(int, lambda v: 1 <= v <= 20000, "a whole number from 1 to 20000"), default=500, help="Adam steps (default 500)")
    p.add_argument("--lr", type=_positive_float, default=0.05)
    p.add_argument("--seed", type=_seed, default=0)
    _add_device(p)
    _add_raw_g(p)
    _add_out(p, "invert-IMAGE.png (and .json with z)")


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
    target = torch.from_numpy(pixels.copy()).float().div(127.5).sub(1)  # (C, H, W) in [-1, 1]
    G = ckpt.build_generator(_device(args.device), raw=args.raw_g)
    result = invert(G, target, restarts=args.restarts, steps=args.steps, lr=args.lr, seed=args.seed)
    out = _explore_path(ckpt, args, f"invert-{source.stem}.png")
    save_image_atomic(inversion_figure(target, result), out)
    z_file = out.with_suffix(".json")
    atomic_write_bytes(z_file, (json.dumps({"z": [round(float(v), 7) for v in result.z], "image": str(source), "checkpoint": str(ckpt.path),
                                            "mse": result.mse, "psnr_db": result.psnr}) + "\n").encode())
    print(f"reconstruction MSE {result.mse:.4f} (PSNR {result.psnr:.1f} dB, best of {args.restarts} restarts, {args.steps} steps)")
    print(f"wrote {out} and {z_file} (use it in interpolate/arithmetic in place of an index)")
    return 0


def _add_neighbors_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", metavar="CKPT", help="a run directory (its latest checkpoint) or a checkpoint file")
    p.add_argument("--data", default=None, metavar="NAME_OR_PATH", help="training data to search (default: the checkpoint's)")
    p.add_argument("--data-dir", default=None, metavar="DIR")
    p.add_argument("-n", "--num", type=_checked(int, lambda v: 1 <= v <= 256, "a whole number from 1 to 256"), default=8, help="generated samples (default 8)")
    p.add_argument("-k", type=_checked(int, lambda v: 1 <= v <= 32, "a whole number from 1 to 32"), default=5, help="neighbours per sample (default 5)")
    p.add_argument("--features", default="auto", choices=("auto", "classifier", "pixels", "discriminator"),
                   help="second search space besides pixels (default auto: the dataset's classifier when trained, else D)")
    p.add_argument("--evaluator", default=None, metavar="FILE")
    p.add_argument("--seed", type=_seed, default=0)
    _add_device(p)
    _add_raw_g(p)
    _add_out(p, "neighbors-seed{SEED}.png")


def _run_neighbors(args: argparse.Namespace) -> int:

    device = str(_device(args.device))
    ckpt = load_checkpoint(args.checkpoint)
    mc = ckpt.model_config
    data_name, _ = _data_source(ckpt, args)
    data = _checkpoint_data(ckpt, args, "train")
    if data.images is None:
        raise ConfigError("neighbors needs the training data in memory; this dataset streams from disk")
    samples = generate(ckpt.build_generator(device, raw=args.raw_g), latent_sheet(mc, args.seed, args.num))
    real = data.images.float().div(127.5).sub(1)
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
    out = save_image_atomic(stack_vertical(panels, gap=16), _explore_path(ckpt, args, f"neighbors-seed{args.seed}.png"))
    print(f"wrote {out}: {args.num} samples (sheet --seed {args.seed}) with their {args.k} nearest training images")
    return 0


# --------------------------------------------------------------------------- #
# Seeing inside: dcgan probe | filters
# --------------------------------------------------------------------------- #
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
    p.add_argument("--data", default=None, metavar="NAME_OR_PATH", help="labelled data with a test split (default: the checkpoint's)")
    p.add_argument("--data-dir", default=None, metavar="DIR")
    p.add_argument("--labels-per-class", type=_checked(int, lambda v: 1 <= v <= 100_000, "a whole number from 1 to 100000"), default=100, metavar="N",
                   help="labelled training images per class (default 100)")
    p.add_argument("--max-test", type=_positive_int, default=None, metavar="N", help="score a seeded subset of N test images (default: all)")
    p.add_argument("--seed", type=_seed, default=0, help="chooses the labelled images, the validation split and the random D")
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
    report = run_probe(D, train, test, args.labels_per_class, seed=args.seed, baselines=() if args.no_baselines else ("pixels", "random_d"),
                       max_test=args.max_test)
    print(report.table())
    print(f"({time.perf_counter() - start:.1f} s in all)")
    out = Path(args.json) if args.json else _explore_dir(ckpt) / f"probe-{args.labels_per_class}.json"
    atomic_write_bytes(out, (json.dumps({"checkpoint": str(ckpt.path), "step": ckpt.step, "data": train.name, **report.to_dict()}, indent=2) + "\n").encode())
    print(f"report: {out}")
    return 0


def _add_filters_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", metavar="CKPT", help="a run directory (its latest checkpoint) or a checkpoint file")
    p.add_argument("--layer", type=_nonnegative_int, default=0, help="D block whose channels to show (0 = the first, image side)")
    p.add_argument("--channels", default="0,1,2,3,4,5,6,7", metavar="I,J,...", help="channels of that block (default 0..7)")
    p.add_argument("--top-k", type=_checked(int, lambda v: 1 <= v <= 32, "a whole number from 1 to 32"), default=6, help="images per channel (default 6)")
    p.add_argument("--data", default=None, metavar="NAME_OR_PATH", help="real images to search (default: the checkpoint's training data)")
    p.add_argument("--data-dir", default=None, metavar="DIR")
    p.add_argument("--num-images", type=_positive_int, default=5000, metavar="N", help="search a seeded subset of N images (default 5000)")
    p.add_argument("--seed", type=_seed, default=0)
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
    if data.images is None:
        raise ConfigError("filters needs the data in memory; this dataset streams from disk")
    pick = torch.randperm(len(data), generator=torch.Generator().manual_seed(args.seed))[: args.num_images].sort().values
    images = data.images[pick]
    D = with_real_statistics(D, data.images, seed=args.seed)  # D reads real images: BN statistics of real batches
    panels = [
        titled(discriminator_filters(D), f"D, first layer: {D.config.hidden_widths()[0]} filters", size=12),
        titled(generator_filters(G), "G, output layer", size=12),
        titled(top_activation_figure(D, images, args.layer, channels, args.top_k),
               f"D block {args.layer}: the {args.top_k} of {len(images)} training images that excite each channel most, with its activation map", size=12),
    ]
    save_image_atomic(stack_vertical(panels, gap=16), out)
    print(f"wrote {out}")
    return 0


COMMANDS = {
    "sheet": Command("a numbered grid of samples, to pick exemplars by index", SHEET_EXAMPLES, _add_sheet_args, _run_sheet),
    "interpolate": Command("walks between latent points, as a grid and a GIF (linear or spherical)", INTERPOLATE_EXAMPLES, _add_interpolate_args, _run_interpolate),
    "arithmetic": Command("vector arithmetic on z: mean(A) - mean(B) + mean(C), with the paper's noise grid", ARITHMETIC_EXAMPLES, _add_arithmetic_args, _run_arithmetic),
    "invert": Command("find the z whose image best reconstructs a real image", INVERT_EXAMPLES, _add_invert_args, _run_invert),
    "neighbors": Command("nearest training images of generated samples: a memorisation check", NEIGHBORS_EXAMPLES, _add_neighbors_args, _run_neighbors),
    "probe": Command("the paper's section 5.1: D's features + a linear SVM, against pixels and a random D", PROBE_EXAMPLES, _add_probe_args, _run_probe),
    "filters": Command("D's and G's first-layer filters, and the images that excite chosen D channels", FILTERS_EXAMPLES, _add_filters_args, _run_filters),
}
