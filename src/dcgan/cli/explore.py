"""Exploring a generator's latent space.

The latent space: `dcgan sheet`, `interpolate`, `arithmetic`; the searches `invert` and `neighbors` are in
`search`, with the helpers here. (Seeing inside D, `dcgan probe` and `filters`, is in `discriminator`.)
Pictures go to RUN_DIR/explore/ unless --out says otherwise.

With a class-conditional model every latent command takes --class (a name or an
index). Without it, a sheet's sample i is drawn in class i mod K (balanced), so
indices keep naming the same images across commands; `interpolate` can also walk
across classes at a fixed z, and `invert` infers the class when not told.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from pathlib import Path

import torch

from ..checkpoint import load_checkpoint
from ..errors import ConfigError
from ..explore.figures import arithmetic_figure, walk_figure, walk_frames
from ..explore.latent import INTERPOLATIONS, class_walk, interpolate, latent_sheet, pick, sheet_labels, vector_arithmetic
from ..figures import numbered_sheet, titled
from ..imaging import save_gif, save_image_atomic
from ..sampling import generate
from .common import MAX_GENERATE, Command, _add_device, _add_raw_g, _checked, _device, _explore_path, _positive_int, add_seed
from .generate import add_class_option, balanced_note, class_option, describe_classes

# --------------------------------------------------------------------------- #
# The latent space: dcgan sheet | interpolate | arithmetic (invert | neighbors: search.py)
# --------------------------------------------------------------------------- #
SHEET_EXAMPLES = """examples:
  dcgan sheet runs/mnist --seed 0 -n 64          # pick exemplars by the number under each sample
  dcgan arithmetic runs/mnist --a 3,17,21 --b 5,9,11 --c 2,4,8   # indices refer to that sheet
  dcgan sheet runs/mnist-cond --class 7          # a conditional model: the same z, all drawn as 7s
"""

INTERPOLATE_EXAMPLES = """examples:
  dcgan interpolate runs/mnist                          # 4 random pairs of the seed-0 sheet, spherical
  dcgan interpolate runs/mnist --pairs 3:17,5:9 --steps 12 --method linear
  dcgan interpolate runs/mnist --pairs 3:runs/mnist/explore/invert-seven.json   # to an inverted real image
  dcgan interpolate runs/mnist-cond --class 3 --pairs 3:17     # a conditional model: a walk among 3s
  dcgan interpolate runs/mnist-cond --from-class 3 --to-class 8 --z 0,5,9   # z fixed, the class moves 3 -> 8
"""

ARITHMETIC_EXAMPLES = """examples:
  dcgan sheet runs/celeba --seed 0 -n 64                # find smiling women (a), neutral women (b), neutral men (c)
  dcgan arithmetic runs/celeba --a 3,17,21 --b 5,9,11 --c 2,4,8 --noise 0.25
  dcgan arithmetic runs/mnist-cond --class 7 --a 1,2,3 --b 4,5,6 --c 7,8,9   # a conditional model: all in class 7
"""


def _default_name(kind: str, seed: int, label: int | None) -> str:
    """The file a latent tool writes when no --out is given: KIND-seedN.png, with -classK for a class."""
    return f"{kind}-seed{seed}" + ("" if label is None else f"-class{label}") + ".png"


def _write_figure(figure, ckpt, args: argparse.Namespace, default: str, says: str, beside: Callable[[Path], Path] | None = None) -> int:
    """The close of every latent command: write `figure` to --out or RUN_DIR/explore/DEFAULT, then what `beside`
    writes next to it (a GIF, a z file), print `wrote PICTURE [and BESIDE]: SAYS`; the exit code 0."""
    out = save_image_atomic(figure, _explore_path(ckpt, args, default))
    also = f" and {beside(out)}" if beside is not None else ""
    print(f"wrote {out}{also}: {says}")
    return 0


def _add_sheet_source(p: argparse.ArgumentParser, class_help: str | None = None) -> None:
    p.add_argument("checkpoint", metavar="CKPT", help="a run directory (its latest checkpoint) or a checkpoint file")
    add_seed(p, "the numbered sheet the indices refer to")
    p.add_argument("-n", "--num", type=_positive_int, default=64, help="size of that sheet (default 64)")
    if class_help:
        add_class_option(p, class_help)
    _add_device(p)
    _add_raw_g(p)


def _add_out(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument("--out", default=None, metavar="FILE.png", help=f"picture to write (default RUN_DIR/explore/{default})")


def _load_for_latent(args: argparse.Namespace):
    """(checkpoint, G, the sheet's z (n, D), the sheet's classes (n,) or None, --class or None).

    A conditional model's sheet is drawn in --class, or without it in balanced classes (i mod K)."""
    if args.num > MAX_GENERATE:
        raise ConfigError(f"-n {args.num} is more than {MAX_GENERATE:,} samples")
    device = _device(args.device)
    ckpt = load_checkpoint(args.checkpoint)
    mc = ckpt.model_config
    label = class_option(mc, getattr(args, "class_", None))
    G = ckpt.build_generator(device, raw=args.raw_g)
    return ckpt, G, latent_sheet(mc, args.seed, args.num), sheet_labels(mc, args.num, label), label


def _latent_refs(text: str, sheet, option: str, sheet_classes=None):
    """'3,17,21' or '3,path/to/z.json' -> (z (k, D), names, classes): sheet indices or z files written by
    `dcgan invert`. A class is the sheet's class of that index, or the z file's; None where there is none."""

    zs, labels, classes = [], [], []
    for token in (t.strip() for t in text.split(",")):
        if not token:
            continue
        if token.isdigit():
            zs.append(pick(sheet, [int(token)], f"{option} index")[0])
            labels.append(token)
            classes.append(None if sheet_classes is None else int(sheet_classes[int(token)]))
        else:
            z, label = _read_z(token, sheet.shape[1])
            zs.append(z)
            labels.append(Path(token).stem)
            classes.append(label)
    if not zs:
        raise ConfigError(f"{option} needs at least one sheet index or z file")
    return torch.stack(zs), labels, classes


def _read_z(path: str, z_dim: int):
    """(z (D,), its class or None) from a z file of `dcgan invert`."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{path} is neither a sheet index nor an existing z file (from dcgan invert)")
    try:
        record = json.loads(p.read_text())
        z = torch.tensor(record["z"], dtype=torch.float32)
        label = record.get("class")
        label = None if label is None else int(label)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"{path} is not a z file written by dcgan invert ({exc})") from None
    if z.shape != (z_dim,):
        raise ConfigError(f"{path} holds a z of length {z.numel()}, but this generator takes {z_dim}")
    return z, label


def _add_sheet_args(p: argparse.ArgumentParser) -> None:
    _add_sheet_source(
        p,
        "for a class-conditional model: draw the whole sheet in this class, a name (any case) or index "
        "(default: balanced, sample i in class i mod the number of classes)",
    )
    p.add_argument("--nrow", type=_positive_int, default=None, help="samples per row (default: square)")
    _add_out(p, "sheet-seed{SEED}.png")


def _run_sheet(args: argparse.Namespace) -> int:
    ckpt, G, sheet, classes, label = _load_for_latent(args)
    mc = ckpt.model_config
    nrow = min(args.nrow, args.num) if args.nrow else None
    title = f"{ckpt.path} (step {ckpt.step}), --seed {args.seed} -n {args.num}"
    if label is not None:
        title += f", class {mc.class_name(label)}"
    elif classes is not None:
        title += f", sample i in class i mod {mc.num_classes}"
        print(balanced_note(mc))
    img = titled(numbered_sheet(generate(G, sheet, classes), nrow=nrow), title, size=12)
    same = f" --class {args.class_}" if label is not None else ""
    return _write_figure(
        img,
        ckpt,
        args,
        _default_name("sheet", args.seed, label),
        f"{args.num} samples numbered 0..{args.num - 1} (use the numbers with --seed {args.seed} -n {args.num}{same})",
    )


def _add_interpolate_args(p: argparse.ArgumentParser) -> None:
    _add_sheet_source(
        p,
        "for a class-conditional model: walk within this class, a name (any case) or index (default: each "
        "end in its sheet class, i mod the number of classes, or its z file's class; when the two differ "
        "the class input moves along with z)",
    )
    p.add_argument("--pairs", default=None, metavar="A:B,...", help="walks between sheet indices (or z files from dcgan invert), e.g. 3:17,5:9")
    p.add_argument("--random", type=_positive_int, default=4, metavar="N", help="without --pairs: N random pairs of the sheet (default 4)")
    p.add_argument(
        "--steps",
        type=_checked(int, lambda v: 2 <= v <= 200, "a whole number from 2 to 200"),
        default=10,
        help="images per walk, endpoints included (default 10)",
    )
    p.add_argument(
        "--method", choices=tuple(INTERPOLATIONS), default="spherical", help="spherical (slerp, keeps the norm) or linear (default spherical)"
    )
    p.add_argument(
        "--from-class",
        dest="from_class",
        default=None,
        metavar="CLASS",
        help="with --to-class, a walk across classes at a fixed z: each z (--z, or --random sheet entries) is held "
        "still while G's class input moves from this class to --to-class. The input is interpolated exactly: a "
        "soft one-hot for concat, the per-class batch-norm scale and shift for projection. The ends are the two "
        "classes; the images between are G's guess, it was trained on whole classes only. With --pairs, z "
        "moves too",
    )
    p.add_argument("--to-class", dest="to_class", default=None, metavar="CLASS", help="the class a walk across classes ends in")
    p.add_argument(
        "--z",
        dest="z_points",
        default=None,
        metavar="I,J,...",
        help="with --from-class/--to-class: the sheet indices (or z files) to hold fixed (default: --random of them)",
    )
    _add_out(p, "interpolate-seed{SEED}.png (and .gif)")


def _run_interpolate(args: argparse.Namespace) -> int:

    ckpt, G, sheet, sheet_classes, label = _load_for_latent(args)
    mc = ckpt.model_config
    if (args.from_class is None) != (args.to_class is None):
        raise ConfigError("a walk across classes needs both --from-class and --to-class")
    across = args.from_class is not None
    start_class, end_class = class_option(mc, args.from_class, "--from-class"), class_option(mc, args.to_class, "--to-class")
    if across and label is not None:
        raise ConfigError("--class walks within one class; --from-class/--to-class walk across classes: give one or the other")
    if args.z_points and not across:
        raise ConfigError("--z names the points of a walk across classes: use it with --from-class and --to-class")
    if args.z_points and args.pairs:
        raise ConfigError("--z holds z fixed and --pairs moves it: give one or the other")
    g = torch.Generator().manual_seed(args.seed + 1)
    if across and not args.pairs:
        # z fixed, the class moves: one row per point.
        if args.z_points:
            points, names, _ = _latent_refs(args.z_points, sheet, "--z")
        else:
            idx = torch.randperm(sheet.shape[0], generator=g)[: args.random]
            points, names = sheet[idx], [str(int(i)) for i in idx]
        assert start_class is not None and end_class is not None  # across: both classes were given
        walks = class_walk(G, points, start_class, end_class, args.steps)
        what = f"class {mc.class_name(start_class)} -> {mc.class_name(end_class)} at fixed z"
        title = f"{what} (a row each: " + ", ".join(names) + ")"
        summary = f"{len(names)} walks of {args.steps} steps, {what}"
    else:
        starts, ends, labels, start_labels, end_labels = _walk_ends(args, sheet, sheet_classes, g)
        if across and mc.conditional:
            assert start_class is not None and end_class is not None  # across: both classes were given
            y_start, y_end = torch.full((len(labels),), start_class), torch.full((len(labels),), end_class)
        else:
            y_start, y_end = _walk_classes(mc, label, start_labels, end_labels)
        walks = interpolate(
            G, starts, ends, args.steps, args.method, labels=y_start, end_labels=None if y_end is None or torch.equal(y_start, y_end) else y_end
        )
        summary = f"{len(labels)} walks of {args.steps} steps, {args.method}"
        if mc.conditional:
            labels = [
                f"{text} ({mc.class_name(int(a))}" + ("" if int(a) == int(b) else f"->{mc.class_name(int(b))}") + ")"
                for text, a, b in zip(labels, y_start, y_end)
            ]
            summary += ": " + ", ".join(labels)  # each walk with its class, or its start and end class
        title = f"{args.method}: " + ", ".join(labels)

    def gif(out: Path) -> Path:
        return save_gif(walk_frames(walks), out.with_suffix(".gif"), duration_ms=120, last_frame_ms=120)

    return _write_figure(walk_figure(walks, [title]), ckpt, args, _default_name("interpolate", args.seed, None), summary, gif)


def _walk_ends(args: argparse.Namespace, sheet, sheet_classes, g: torch.Generator):
    """(starts, ends, labels, start classes, end classes) of the walks: --pairs, else --random pairs of the sheet.
    A class is the sheet's class of an index or a z file's own; None where there is none."""
    if not args.pairs:
        if sheet.shape[0] < 2:
            raise ConfigError("random pairs need a sheet of at least 2 samples")
        idx = torch.stack([torch.randperm(sheet.shape[0], generator=g)[:2] for _ in range(args.random)])
        labels = [f"{int(a)}->{int(b)}" for a, b in idx]
        start_labels: list[int | None]
        end_labels: list[int | None]
        start_labels = end_labels = [None] * len(labels)
        if sheet_classes is not None:
            start_labels, end_labels = [int(sheet_classes[a]) for a, _ in idx], [int(sheet_classes[b]) for _, b in idx]
        return sheet[idx[:, 0]], sheet[idx[:, 1]], labels, start_labels, end_labels
    starts, ends, labels, start_labels, end_labels = [], [], [], [], []
    for pair in args.pairs.split(","):
        if pair.count(":") != 1:
            raise ConfigError(f"--pairs {args.pairs!r}: write each pair as A:B, e.g. 3:17")
        a, b = pair.split(":")
        za, la, ca = _latent_refs(a, sheet, "--pairs", sheet_classes)
        zb, lb, cb = _latent_refs(b, sheet, "--pairs", sheet_classes)
        starts.append(za[0])
        ends.append(zb[0])
        labels.append(f"{la[0]}->{lb[0]}")
        start_labels.append(ca[0])
        end_labels.append(cb[0])
    return torch.stack(starts), torch.stack(ends), labels, start_labels, end_labels


def _walk_classes(mc, label: int | None, start_labels: list, end_labels: list):
    """(classes at the start, classes at the end) of walks within classes; (None, None) for an unconditional model."""
    if not mc.conditional:
        return None, None
    if label is not None:
        y = torch.full((len(start_labels),), label)  # within one class: z files' own classes give way
        return y, y
    # Each end in its sheet class (i mod K) or its z file's class; a z file of no class takes the other end's.
    y_start = torch.tensor([a if a is not None else (b if b is not None else 0) for a, b in zip(start_labels, end_labels)])
    y_end = torch.tensor([e if e is not None else int(s) for e, s in zip(end_labels, y_start)])
    print(balanced_note(mc))
    return y_start, y_end


def _add_arithmetic_args(p: argparse.ArgumentParser) -> None:
    _add_sheet_source(
        p,
        "for a class-conditional model (required there): the class that the exemplars, the means and the "
        "results are all drawn in, a name (any case) or index; the indices refer to `dcgan sheet --class` "
        "of the same class",
    )
    for name in ("a", "b", "c"):
        p.add_argument(f"--{name}", required=True, metavar="I,J,K", help=f"group {name.upper()}: sheet indices (or z files) whose mean z is used")
    p.add_argument(
        "--noise",
        type=_checked(float, lambda v: math.isfinite(v) and v >= 0, "a number >= 0"),
        default=0.25,
        help="standard deviation of the noise added around the result in the 3x3 grid (default 0.25, as in the paper)",
    )
    add_seed(p, "the noise around the result", flag="--noise-seed")
    _add_out(p, "arithmetic-seed{SEED}.png")


def _run_arithmetic(args: argparse.Namespace) -> int:
    ckpt, G, sheet, _, label = _load_for_latent(args)
    mc = ckpt.model_config
    if mc.conditional and label is None:
        raise ConfigError(f"this model is class-conditional: say which class to draw the arithmetic in with --class ({describe_classes(mc)})")
    (za, la, _), (zb, lb, _), (zc, lc, _) = (_latent_refs(getattr(args, n), sheet, f"--{n}") for n in ("a", "b", "c"))
    result = vector_arithmetic(G, za, zb, zc, noise_scale=args.noise, seed=args.noise_seed, label=label)
    figure = arithmetic_figure(result, indices=[la, lb, lc])
    if label is not None:
        figure = titled(figure, f"all drawn in class {mc.class_name(label)}", size=12)
    in_class = "" if label is None else f", all in class {mc.class_name(label)}"
    return _write_figure(
        figure,
        ckpt,
        args,
        _default_name("arithmetic", args.seed, label),
        f"mean({','.join(la)}) - mean({','.join(lb)}) + mean({','.join(lc)}), with a 3x3 grid of noise {args.noise:g}{in_class}",
    )


COMMANDS = {
    "sheet": Command("a numbered grid of samples, to pick exemplars by index", SHEET_EXAMPLES, _add_sheet_args, _run_sheet),
    "interpolate": Command(
        "walks between latent points, as a grid and a GIF (linear or spherical)", INTERPOLATE_EXAMPLES, _add_interpolate_args, _run_interpolate
    ),
    "arithmetic": Command(
        "vector arithmetic on z: mean(A) - mean(B) + mean(C), with the paper's noise grid", ARITHMETIC_EXAMPLES, _add_arithmetic_args, _run_arithmetic
    ),
}
