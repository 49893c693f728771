"""The `dcgan` command line: a thin layer that parses, calls the library and saves files.

Commands are looked up by name in COMMANDS; each has a `--help` with an example.
User mistakes end in one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import secrets
import sys
import time
from dataclasses import fields
from pathlib import Path
from typing import Callable

from . import __version__
from .errors import ConfigError, DCGANError

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_TRAINING_FAILED = 3  # the health monitor stopped the run (--on-failure stop, or rollbacks used up)
EXIT_EXPORT_MISMATCH = 4  # an exported file does not reproduce the generator within its tolerance (nothing written)


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
_seed = _checked(int, lambda v: 0 <= v <= 2**32 - 1, "a whole number from 0 to 4294967295")


def _help_formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


# --------------------------------------------------------------------------- #
# dcgan train
# --------------------------------------------------------------------------- #
TRAIN_EXAMPLES = """examples:
  dcgan train                                   # digits bundled with scikit-learn, 32x32, a short CPU run
  dcgan train --data mnist --data-dir ../shared/data/mnist --epochs 1 --out runs/mnist
  dcgan train --resume runs/mnist --epochs 5    # continue exactly where it stopped
"""


def _add_train_args(p: argparse.ArgumentParser) -> None:
    from .data import DATASETS
    from .models import DOWNSAMPLE_BLOCKS, PRIORS, SUPPORTED_SIZES, UPSAMPLE_BLOCKS

    data = p.add_argument_group("data")
    data.add_argument("--data", default=None, metavar="NAME_OR_PATH", help=f"dataset: {', '.join(sorted(DATASETS))}, or a folder / .zip / .tar(.gz) of images (default: digits)")
    data.add_argument("--data-dir", default=None, metavar="DIR", help="folder holding the dataset's files (mnist: the four IDX .gz files)")

    model = p.add_argument_group("model (fixed for a run; ignored with --resume)")
    model.add_argument("--image-size", type=int, default=None, metavar="N", help=f"{', '.join(map(str, SUPPORTED_SIZES))} (default: the dataset's: 32 for the named ones, 64 for folders)")
    model.add_argument("--channels", type=int, default=None, choices=(1, 3), help="1 grey or 3 RGB (default: the dataset's)")
    model.add_argument("--z-dim", type=_positive_int, default=None, metavar="N", help="latent size, the paper's nz (default 100)")
    model.add_argument("--width", type=_positive_int, default=None, metavar="N", help="G's last / D's first hidden channels, doubling towards 4x4 (default 64; the paper's 64x64 model is 128)")
    model.add_argument("--max-channels", type=_positive_int, default=None, metavar="N", help="cap on channels per layer (default 1024)")
    model.add_argument("--prior", choices=PRIORS, default=None, help="distribution of z (default normal)")
    model.add_argument("--g-block", choices=tuple(UPSAMPLE_BLOCKS), default=None, help="G upsampling (default transposed, as in the paper)")
    model.add_argument("--d-block", choices=tuple(DOWNSAMPLE_BLOCKS), default=None, help="D downsampling (default strided, as in the paper)")

    train = p.add_argument_group("training")
    budget = train.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=_positive_int, default=None, metavar="N", help="total iterations (one real batch each)")
    budget.add_argument("--epochs", type=_positive_int, default=None, metavar="N", help="total passes over the data (digits default 25, others 1)")
    train.add_argument("--batch-size", type=_positive_int, default=None, metavar="N", help="default 128 (paper)")
    train.add_argument("--lr", type=_positive_float, default=None, metavar="LR", help="Adam learning rate of both G and D (default 2e-4, paper)")
    train.add_argument("--lr-g", type=_positive_float, default=None, metavar="LR", help="G's learning rate (overrides --lr)")
    train.add_argument("--lr-d", type=_positive_float, default=None, metavar="LR", help="D's learning rate (overrides --lr)")
    train.add_argument("--beta1", type=_unit_float, default=None, help="Adam beta1 (default 0.5, paper)")
    train.add_argument("--beta2", type=_unit_float, default=None, help="Adam beta2 (default 0.999)")
    train.add_argument("--label-smoothing", type=_unit_float, default=None, metavar="S", help="one-sided: real targets 1-S (default 0, off)")
    train.add_argument("--d-steps", type=_positive_int, default=None, metavar="N", help="D updates per iteration (default 1)")
    train.add_argument("--g-steps", type=_positive_int, default=None, metavar="N", help="G updates per iteration (default 1)")
    train.add_argument("--seed", type=_seed, default=None, help="makes CPU runs repeatable (default: a random seed, recorded in the run)")
    train.add_argument("--device", default=None, choices=("auto", "cpu", "cuda"), help="default auto: cuda when present")
    speed = p.add_argument_group("speed and scale")
    speed.add_argument("--precision", choices=("auto", "fp32", "bf16"), default=None,
                       help="bf16 autocast or fp32 (default auto: bf16 on CUDA, fp32 on CPU; see BENCHMARKS.md)")
    speed.add_argument("--no-channels-last", dest="channels_last", action="store_false", default=None,
                       help="keep the NCHW memory layout instead of channels_last")
    speed.add_argument("--adam", choices=("auto", "fused", "foreach", "loop"), default=None, help="Adam implementation (default auto: fused)")
    speed.add_argument("--compile", action="store_true", default=None, help="torch.compile G and D (slow first steps)")
    speed.add_argument("--nproc", type=_positive_int, default=None, metavar="N",
                       help="train with N processes (DistributedDataParallel via torchrun; one per GPU, or gloo on CPU)")
    speed.add_argument("--sync-bn", action="store_true", default=None, help="with several processes: batch-norm statistics over all of them")
    train.add_argument("--workers", type=_nonnegative_int, default=None, metavar="N", help="DataLoader workers when data streams from disk (default min(8, cores))")

    out = p.add_argument_group("outputs")
    out.add_argument("--out", default=None, metavar="RUN_DIR", help="run directory (default runs/DATA-DATE-TIME)")
    out.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue this run exactly; --steps/--epochs set the new total")
    out.add_argument("--log-every", type=_positive_int, default=None, metavar="N", help="iterations between progress/log updates (default 20)")
    out.add_argument("--sample-every", type=_positive_int, default=None, metavar="N", help="iterations between sample grids (default: every epoch)")
    out.add_argument("--checkpoint-every", type=_positive_int, default=None, metavar="N", help="iterations between checkpoints (default: every epoch)")
    out.add_argument("--num-samples", type=_positive_int, default=None, metavar="N", help="images in the fixed-noise grid (default 64)")
    out.add_argument("--eval-every", type=_positive_int, default=None, metavar="N", help="iterations between FID evaluations; the best is kept as checkpoints/best.safetensors")
    out.add_argument("--eval-samples", type=_positive_int, default=None, metavar="N", help="samples per evaluation (default 2000)")
    out.add_argument("--eval-features", default=None, choices=("auto", "classifier", "pixels", "inception"), help="features of that FID (default auto: the dataset's classifier when trained, else pixels)")
    out.add_argument("--evaluator", default=None, metavar="FILE", help="evaluation classifier file (default: the one trained for --data)")
    health = p.add_argument_group("training health")
    health.add_argument("--on-failure", choices=("warn", "stop", "rollback"), default=None,
                        help="on NaNs, D saturation, mode collapse or G-loss blow-up: warn and go on (default), stop, "
                        "or roll back to the last checkpoint with a fresh noise stream")
    health.add_argument("--max-rollbacks", type=_nonnegative_int, default=None, metavar="N", help="rollbacks before stopping (default 3)")
    health.add_argument("--rollback-lr-factor", type=_checked(float, lambda v: 0 < v <= 1, "a number in (0, 1]"), default=None, metavar="F",
                        help="multiply both learning rates by F at each rollback (default 1: unchanged)")
    out.add_argument("--tensorboard", action="store_true", default=None, help="also log to RUN_DIR/tensorboard (needs tensorboard)")
    out.add_argument("--quiet", action="store_true", help="no progress bar")


DEFAULT_EPOCHS = {"digits": 25}  # the demo's budget; other datasets default to one epoch


def _launch_torchrun(nproc: int, argv: list[str]) -> int:
    """Re-run this very command under torchrun with `nproc` processes (minus --nproc itself)."""
    import subprocess

    rest, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--nproc":
            skip = True
            continue
        if a.startswith("--nproc="):
            continue
        rest.append(a)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", "-m", "dcgan", *rest]
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))  # share the cores, quietly
    print(f"launching {nproc} processes: {' '.join(cmd[1:])}", flush=True)
    return subprocess.call(cmd, env=env)


def _run_train(args: argparse.Namespace) -> int:
    from .data import dataset_stem
    from .models import ModelConfig
    from .training import TrainConfig, Trainer

    if args.nproc and args.nproc > 1 and int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return _launch_torchrun(args.nproc, sys.argv[1:] if args.argv is None else args.argv)
    if int(os.environ.get("RANK", "0")) != 0:
        sys.stdout = open(os.devnull, "w")  # only rank 0 talks; the other processes print nothing but errors

    if args.lr is not None:
        args.lr_g = args.lr if args.lr_g is None else args.lr_g
        args.lr_d = args.lr if args.lr_d is None else args.lr_d
    progress = not args.quiet

    if args.resume:
        if args.out and Path(args.out).resolve() != Path(args.resume).resolve():
            raise ConfigError("--out and --resume name different folders; a resumed run stays in its own folder")
        ignored = [n for n in ("data", "image_size", "channels", "z_dim", "width", "max_channels", "prior", "g_block", "d_block",
                               "batch_size", "lr_g", "lr_d", "beta1", "beta2", "label_smoothing", "d_steps", "g_steps", "seed", "num_samples",
                               "eval_samples", "eval_features", "evaluator", "precision", "channels_last", "adam", "compile", "sync_bn")
                   if getattr(args, n) is not None]
        if ignored:
            raise ConfigError(f"--resume keeps the run's own settings; drop {', '.join('--' + n.replace('_', '-') for n in ignored)}")
        trainer = Trainer.resume(
            args.resume, progress=progress, steps=args.steps, epochs=args.epochs, log_every=args.log_every,
            sample_every=args.sample_every, checkpoint_every=args.checkpoint_every, device=args.device,
            tensorboard=args.tensorboard, data_dir=args.data_dir, workers=args.workers, eval_every=args.eval_every,
            on_failure=args.on_failure, max_rollbacks=args.max_rollbacks, rollback_lr_factor=args.rollback_lr_factor,
        )
        if trainer.step >= trainer.total_steps():
            raise ConfigError(
                f"{args.resume} is already at step {trainer.step} of {trainer.total_steps()}; "
                "pass a larger --steps or --epochs to train further"
            )
        print(f"resuming {trainer.run_dir} at step {trainer.step} (epoch {trainer.epoch}), training to step {trainer.total_steps()}")
    else:
        data = args.data or "digits"
        epochs = args.epochs
        if args.steps is None and epochs is None:
            epochs = DEFAULT_EPOCHS.get(data, 1)
        seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
        options = {f.name: getattr(args, f.name) for f in fields(ModelConfig) if getattr(args, f.name, None) is not None}
        options.update({f.name: getattr(args, f.name) for f in fields(TrainConfig)
                        if f.name not in ("data", "epochs", "seed") and getattr(args, f.name, None) is not None})
        run_dir = Path(args.out) if args.out else Path("runs") / f"{dataset_stem(data)}-{time.strftime('%Y%m%d-%H%M%S')}"
        if (run_dir / "checkpoints").exists() and any((run_dir / "checkpoints").iterdir()):
            raise ConfigError(f"{run_dir} already holds a run; continue it with --resume {run_dir} or pick another --out")
        trainer = Trainer.from_options(run_dir=run_dir, progress=progress, data=data, epochs=epochs, seed=seed, **options)
        mc = trainer.model_config
        loaded = trainer.data
        if loaded.skipped:
            first = "; ".join(f"{n}: {r}" for n, r in loaded.skipped[:2])
            print(f"skipped {len(loaded.skipped)} file(s) that could not be decoded ({first}); see: dcgan data check {data}")
        if loaded.stream is not None:
            print(f"streaming {len(loaded)} images from disk (too large to hold decoded in memory)")
        elif loaded.from_cache:
            from .data import default_cache_dir

            print(f"decoded images read from the cache ({default_cache_dir()})")
        print(
            f"training on {data} ({len(trainer.data)} images, {mc.image_size}x{mc.image_size}x{mc.channels}) "
            f"for {trainer.total_steps()} iterations of batch {trainer.config.batch_size} on {trainer.device}, seed {seed}"
        )
        print(f"run directory: {run_dir}")
    _print_model_line(trainer)
    if trainer.config.eval_every:
        trainer.tracked = trainer.build_tracked_metric()  # before training: a missing classifier is reported now
        print(f"evaluating every {trainer.config.eval_every} iterations: {trainer.tracked.protocol()} ({trainer.tracked.extractor.description})")
    result = trainer.train()
    run = trainer.run_dir
    if run is None:  # a process other than rank 0 of a multi-process run: rank 0 reports
        return EXIT_INTERRUPTED if result.interrupted else EXIT_TRAINING_FAILED if result.failure else 0
    if result.interrupted:
        print(
            f"\ninterrupted at step {result.step}: checkpoint saved to {result.checkpoint}\n"
            f"continue with: dcgan train --resume {run}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    if result.failure:
        f = result.failure
        print(
            f"\nstopped at step {f['step']}: {f['message']}"
            + (f" after {f['rollbacks']} rollback(s)" if f.get("rollbacks") else "")
            + f".\nHint: {f['hint']}\n"
            f"The last healthy checkpoint is {run / 'checkpoints' / 'latest.safetensors'} (step {_checkpoint_step(run)}); "
            f"the failed state is in {run / 'checkpoints' / 'failed.safetensors'}; events are in {run / 'metrics.jsonl'}",
            file=sys.stderr,
        )
        return EXIT_TRAINING_FAILED
    last = result.last
    print(
        f"done: {result.step} iterations ({result.epoch:.2f} epochs) in {result.seconds:.1f} s"
        + (f"; last loss_D {last['loss_d']:.3f} loss_G {last['loss_g']:.3f} D(x) {last['d_real']:.2f} D(G(z)) {last['d_fake']:.2f}" if last else "")
    )
    print(f"  samples (latest): {run / 'samples.png'}")
    print(f"  progress GIF:     {run / 'progress.gif'}")
    print(f"  loss curves:      {run / 'losses.png'}")
    print(f"  checkpoint:       {result.checkpoint}")
    if trainer.health_events:
        counts: dict[str, int] = {}
        for e in trainer.health_events:
            counts[e["health"]] = counts.get(e["health"], 0) + 1
        print(f"  health events:    {', '.join(f'{k} x{v}' for k, v in counts.items())} (details in {run / 'metrics.jsonl'})")
    if result.best:
        print(f"  best checkpoint:  {run / 'checkpoints' / 'best.safetensors'} (FID {result.best['fid']:.3f} at step {result.best['step']}, "
              f"{trainer.tracked.protocol() if trainer.tracked else 'see metrics.jsonl'})")
    print(f"  generate more:    dcgan generate {run} -n 64 --out {run / 'generated.png'}")
    return 0


def _checkpoint_step(run: Path) -> str:
    from .checkpoint import load_checkpoint

    try:
        return str(load_checkpoint(run).step)
    except DCGANError:
        return "?"


def _print_model_line(trainer) -> None:
    from .models import model_summary

    mc = trainer.model_config
    g = model_summary(trainer.G, trainer.fixed_noise[:1])
    d = model_summary(trainer.D, trainer.fixed_noise.new_zeros(1, mc.channels, mc.image_size, mc.image_size))
    print(
        f"G: {sum(r['params'] for r in g) / 1e6:.2f}M params, {sum(r['macs'] for r in g) / 1e6:.1f}M MACs/image; "
        f"D: {sum(r['params'] for r in d) / 1e6:.2f}M params, {sum(r['macs'] for r in d) / 1e6:.1f}M MACs/image"
    )


# --------------------------------------------------------------------------- #
# dcgan generate
# --------------------------------------------------------------------------- #
GENERATE_EXAMPLES = """examples:
  dcgan generate runs/demo -n 64 --seed 1 --out grid.png     # one grid
  dcgan generate runs/demo -n 100 --out samples/             # one PNG per sample
"""

IMAGE_SUFFIXES = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP"}


def _add_generate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", metavar="CKPT", help="a run directory (its latest checkpoint) or a checkpoint file")
    p.add_argument("-n", "--num", type=_positive_int, default=64, help="number of samples (default 64)")
    p.add_argument("--seed", type=_seed, default=0, help="noise seed: the same seed gives the same images (default 0)")
    p.add_argument("--out", required=True, metavar="FILE.png|DIR/", help="a grid image file, or a folder (ending in /) for one PNG per sample")
    p.add_argument("--nrow", type=_positive_int, default=None, help="images per grid row (default: square)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))


MAX_GENERATE = 100_000


def _run_generate(args: argparse.Namespace) -> int:
    import torch

    from .checkpoint import load_checkpoint
    from .imaging import grid_image, save_image_atomic, tensor_to_pil
    from .sampling import generate, sample_z
    from .training import resolve_device

    if args.num > MAX_GENERATE:
        raise ConfigError(f"-n {args.num} is more than {MAX_GENERATE:,} samples in one call")
    out = Path(args.out)
    as_folder = args.out.endswith(("/", "\\")) or out.is_dir()
    if not as_folder and out.suffix.lower() not in IMAGE_SUFFIXES:
        raise ConfigError(f"--out {args.out}: use an image file ({', '.join(IMAGE_SUFFIXES)}) or a folder ending in /")
    device = resolve_device(args.device)
    ckpt = load_checkpoint(args.checkpoint)
    G = ckpt.build_generator(device)
    mc = ckpt.model_config
    z = sample_z(args.num, mc.z_dim, mc.prior, torch.Generator().manual_seed(args.seed))
    images = generate(G, z)
    if as_folder:
        out.mkdir(parents=True, exist_ok=True)
        for i, image in enumerate(images):
            save_image_atomic(tensor_to_pil(image), out / f"sample_{args.seed}_{i:05d}.png")
        print(f"wrote {len(images)} images ({mc.image_size}x{mc.image_size}) to {out}/")
    else:
        nrow = min(args.nrow, len(images)) if args.nrow else None  # wider than the samples would be empty canvas
        save_image_atomic(grid_image(images, nrow=nrow), out, format=IMAGE_SUFFIXES[out.suffix.lower()])
        print(f"wrote a grid of {len(images)} samples to {out}")
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


def _run_info(args: argparse.Namespace) -> int:
    import torch

    from .checkpoint import load_checkpoint
    from .models import format_summary, model_summary

    ckpt = load_checkpoint(args.checkpoint)
    mc = ckpt.model_config
    G = ckpt.build_generator()
    g_rows = model_summary(G, torch.zeros(1, mc.z_dim))
    d_rows = None
    if ckpt.has("D"):
        d_rows = model_summary(ckpt.build_discriminator(), torch.zeros(1, mc.channels, mc.image_size, mc.image_size))
    state = ckpt.state
    info = {
        "checkpoint": str(ckpt.path),
        "format": ckpt.format,
        "file_bytes": ckpt.path.stat().st_size,
        "dcgan_version": ckpt.dcgan_version,
        "model": mc.to_dict(),
        "step": state.get("step"),
        "epoch": (state.get("epoch", 0) + state.get("batch_in_epoch", 0) / max(state.get("steps_per_epoch", 1), 1)) if state else None,
        "train": state.get("train_config"),
        "data": state.get("data"),
        "last": state.get("last"),
        "best": state.get("best"),
        "elapsed_s": state.get("elapsed_s"),
        "saved_at": state.get("saved_at"),
        "generator": {"params": sum(r["params"] for r in g_rows), "macs_per_image": sum(r["macs"] for r in g_rows)},
        "discriminator": None if d_rows is None else {"params": sum(r["params"] for r in d_rows), "macs_per_image": sum(r["macs"] for r in d_rows)},
    }
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    data = info["data"] or {}
    train = info["train"] or {}
    kind = "" if ckpt.resumable else "exported generator, "
    print(f"checkpoint   {info['checkpoint']} ({kind}{info['file_bytes'] / 1e6:.1f} MB, dcgan {info['dcgan_version']})")
    print(f"model        {mc.image_size}x{mc.image_size}x{mc.channels}, z_dim {mc.z_dim} ({mc.prior}), width {mc.width}, "
          f"G block {mc.g_block}, D block {mc.d_block}")
    print(f"generator    {info['generator']['params']:,} params, {info['generator']['macs_per_image'] / 1e6:.1f}M MACs/image")
    if info["discriminator"]:
        print(f"discriminator {info['discriminator']['params']:,} params, {info['discriminator']['macs_per_image'] / 1e6:.1f}M MACs/image")
    if state:
        print(f"progress     step {info['step']}, epoch {info['epoch']:.2f}, {info['elapsed_s'] or 0:.0f} s of training, saved {info['saved_at']}")
        print(f"data         {data.get('name')} ({data.get('num_images')} images from {data.get('source')}), sha256 {str(data.get('fingerprint'))[:16]}...")
        print(f"training     batch {train.get('batch_size')}, lr G {train.get('lr_g')} D {train.get('lr_d')}, betas ({train.get('beta1')}, {train.get('beta2')}), seed {train.get('seed')}")
        best = state.get("best") or {}
        if best:
            print(f"best FID     {best['fid']:.3f} at step {best['step']} (--eval-every; checkpoints/best.safetensors)")
        last = info["last"] or {}
        if isinstance(last, dict) and all(isinstance(last.get(k), (int, float)) for k in ("loss_d", "loss_g", "d_real", "d_fake")):
            print(f"last losses  loss_D {last['loss_d']:.3f} loss_G {last['loss_g']:.3f} D(x) {last['d_real']:.2f} D(G(z)) {last['d_fake']:.2f}")
    if args.layers:
        print()
        print(format_summary("Generator", g_rows))
        if d_rows:
            print()
            print(format_summary("Discriminator", d_rows))
    return 0


# --------------------------------------------------------------------------- #
# dcgan export
# --------------------------------------------------------------------------- #
EXPORT_EXAMPLES = """examples:
  dcgan export runs/mnist                                  # runs/mnist/export/generator.safetensors + model card
  dcgan export runs/mnist --format onnx,torchscript --out release/
  dcgan export runs/mnist/checkpoints/best.safetensors --format all --force
  dcgan generate runs/mnist/export/generator.safetensors -n 64 --out grid.png   # every sampling command reads it

formats:
  safetensors  G's weights, config and card; loads wherever a checkpoint does, but cannot be resumed
  onnx         input z (batch, z_dim), output images (batch, C, H, W) in [-1, 1]; checked with onnxruntime
               (needs: pip install 'dcgan[export]')
  torchscript  torch.jit.trace, for LibTorch/C++; PyTorch has deprecated TorchScript, so prefer onnx

Every file is checked before anything is written: the same z through the file and through PyTorch,
as a batch of 16 and a batch of one (tolerance: safetensors exact, onnx 1e-4, torchscript 1e-6).
The model card (model_card.json, MODEL_CARD.md) holds z's size and prior, the image size and range,
the training data and its sha256, the step, and the metrics recorded for that step with their protocol
(from `dcgan evaluate` reports in RUN_DIR/eval/ and the --eval-every FID in RUN_DIR/metrics.jsonl).
"""


def _add_export_args(p: argparse.ArgumentParser) -> None:
    from .export import EXPORT_FORMATS

    p.add_argument("checkpoint", metavar="CKPT", help="a run directory (its latest checkpoint) or a checkpoint file")
    p.add_argument("--format", default="safetensors", metavar="LIST",
                   help=f"comma-separated: {', '.join(EXPORT_FORMATS)}, or all (default safetensors)")
    p.add_argument("--out", default=None, metavar="DIR", help="folder to write into (default RUN_DIR/export)")
    p.add_argument("--force", action="store_true", help="replace files an earlier export left there")


def _size_text(num_bytes: int) -> str:
    return f"{num_bytes / 1e6:.1f} MB" if num_bytes >= 1e6 else f"{num_bytes / 1e3:.1f} kB"


def _run_export(args: argparse.Namespace) -> int:
    from .checkpoint import load_checkpoint
    from .export import EXPORT_FORMATS, export_files, export_names, parse_formats, run_metrics, tolerance_text
    from .fileio import atomic_write_bytes

    formats = parse_formats(args.format)
    ckpt = load_checkpoint(args.checkpoint)
    out = Path(args.out) if args.out else _run_dir_of(ckpt) / "export"
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder to export into")
    existing = [name for name in export_names(formats) if (out / name).exists()]
    if existing and not args.force:
        raise ConfigError(f"{out} already holds {', '.join(existing)}; pass --force to replace {'it' if len(existing) == 1 else 'them'}")
    mc = ckpt.model_config
    metrics = run_metrics(_run_dir_of(ckpt), ckpt.step, ckpt.state.get("best"))
    print(f"exporting G of {ckpt.path} (step {ckpt.step}, {mc.image_size}x{mc.image_size}x{mc.channels}, z_dim {mc.z_dim} {mc.prior}) "
          f"as {', '.join(formats)} ...", flush=True)
    files = export_files(ckpt, formats, metrics)
    failed = [f for f in files if not f.passed]
    if failed:  # a bug in an exporter or a runtime, not the user's: but one line, and nothing half-written
        f = failed[0]
        print(f"dcgan export: error: {f.name} does not reproduce the generator: max |diff| {f.max_diff:.2e} > tolerance "
              f"{tolerance_text(f.tolerance)} ({EXPORT_FORMATS[f.format].runner}); nothing was written", file=sys.stderr)
        return EXIT_EXPORT_MISMATCH
    width = max(len(f.name) for f in files)
    for f in files:
        path = atomic_write_bytes(out / f.name, f.data)
        check = "" if f.max_diff is None else (
            f"  {EXPORT_FORMATS[f.format].runner}: max |diff| {f.max_diff:.1e}, tolerance {tolerance_text(f.tolerance)}")
        print(f"  {str(path):<{width + len(str(out)) + 1}}  {_size_text(len(f.data)):>9}{check}")
    if metrics:
        print(f"model card: {len(metrics)} metric(s) recorded for step {ckpt.step} ({', '.join(dict.fromkeys(m['name'] for m in metrics))})")
    else:
        print(f"model card: no metrics recorded for step {ckpt.step}; measure them with: dcgan evaluate {ckpt.path}, then export again")
    return 0


# --------------------------------------------------------------------------- #
# dcgan data check | download
# --------------------------------------------------------------------------- #
DATA_EXAMPLES = """examples:
  dcgan data check ~/photos --image-size 64          # every file: formats, sizes, duplicates, failures
  dcgan data check ../shared/data/cifar10-jpg/CIFAR-10-images-jpg.tar.gz --image-size 32
  dcgan data check mnist --data-dir ../shared/data/mnist
  dcgan data download mnist --root data/mnist        # then: dcgan train --data mnist --data-dir data/mnist
"""


def _add_data_args(p: argparse.ArgumentParser) -> None:
    from .download import DOWNLOADS

    sub = p.add_subparsers(dest="data_command", metavar="ACTION", parser_class=_Parser, required=True)
    check = sub.add_parser("check", help="pre-flight check of a dataset (name, folder or archive)", epilog=DATA_EXAMPLES,
                           description="Report what a dataset holds and what training will do with it.", formatter_class=_help_formatter)
    check.add_argument("data", metavar="NAME_OR_PATH")
    check.add_argument("--data-dir", default=None, metavar="DIR", help="folder with a named dataset's files")
    check.add_argument("--image-size", type=int, default=None, metavar="N", help="training size to check for (default: the dataset's, 64 for folders)")
    check.add_argument("--channels", type=int, choices=(1, 3), default=None)
    check.add_argument("--split", choices=("train", "test"), default="train")
    check.add_argument("--sample", type=_positive_int, default=None, metavar="N", help="check a random sample of N files only")
    download = sub.add_parser("download", help="download a dataset from its canonical location, with checksums", epilog=DATA_EXAMPLES,
                              description="Download and verify a dataset's files (resumes partial downloads).", formatter_class=_help_formatter)
    download.add_argument("name", choices=sorted(DOWNLOADS))
    download.add_argument("--root", required=True, metavar="DIR", help="folder to put the files in")
    download.add_argument("--base-url", default=None, metavar="URL", help="fetch from this mirror instead (URL/FILENAME)")


def _run_data(args: argparse.Namespace) -> int:
    if args.data_command == "download":
        from .download import download_dataset

        root = download_dataset(args.name, args.root, base_url=args.base_url)
        print(f"{args.name} is ready in {root}: dcgan train --data {args.name} --data-dir {root}")
        return 0
    from .datacheck import check_dataset
    from .models import SUPPORTED_SIZES

    if args.image_size is not None and args.image_size not in SUPPORTED_SIZES:
        raise ConfigError(f"unsupported image size {args.image_size}: use one of {', '.join(map(str, SUPPORTED_SIZES))}")
    report = check_dataset(args.data, args.data_dir, args.image_size, args.channels, args.split, args.sample)
    print(report.text())
    return 0 if report.usable and report.total else EXIT_USER_ERROR


# --------------------------------------------------------------------------- #
# dcgan evaluator train | list
# --------------------------------------------------------------------------- #
EVALUATOR_EXAMPLES = """examples:
  dcgan evaluator train --data mnist --data-dir ../shared/data/mnist     # about 1.5 minutes on 2 CPU cores
  dcgan evaluator train --data digits
  dcgan evaluator list
"""

EVALUATOR_EPOCHS = {"mnist": 3, "fashion-mnist": 6, "cifar10": 15, "digits": 30}  # others: 10


def _add_evaluator_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="evaluator_command", metavar="ACTION", parser_class=_Parser, required=True)
    train = sub.add_parser("train", help="train the evaluation classifier of a labelled dataset", epilog=EVALUATOR_EXAMPLES,
                           description="Train the small CNN whose features and class probabilities `dcgan evaluate` uses.",
                           formatter_class=_help_formatter)
    train.add_argument("--data", required=True, metavar="NAME_OR_PATH", help="a labelled dataset: mnist, fashion-mnist, cifar10, digits, or a folder with one sub-folder per class")
    train.add_argument("--data-dir", default=None, metavar="DIR")
    train.add_argument("--image-size", type=int, default=None, metavar="N", help="input size (default: the dataset's, 32 for the named ones)")
    train.add_argument("--channels", type=int, choices=(1, 3), default=None)
    train.add_argument("--epochs", type=_positive_int, default=None, help="default: mnist 3, fashion-mnist 6, cifar10 15, digits 30, others 10")
    train.add_argument("--width", type=_positive_int, default=None, help="first-stage channels (default 16 for grey, 32 for RGB)")
    train.add_argument("--batch-size", type=_positive_int, default=128)
    train.add_argument("--seed", type=_seed, default=0)
    train.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    train.add_argument("--out", default=None, metavar="FILE", help="where to save it (default: the evaluator folder, where --features classifier looks)")
    train.add_argument("--force", action="store_true", help="replace an existing classifier")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    sub.add_parser("list", help="list the trained evaluation classifiers", formatter_class=_help_formatter)


def _run_evaluator(args: argparse.Namespace) -> int:
    from .metrics.classifier import default_evaluator_dir, default_evaluator_path, describe, load_classifier, save_classifier, train_classifier

    if args.evaluator_command == "list":
        folder = default_evaluator_dir()
        files = sorted(folder.glob("*.safetensors")) if folder.is_dir() else []
        if not files:
            print(f"no evaluation classifiers in {folder}; train one with: dcgan evaluator train --data mnist")
            return 0
        for f in files:
            try:
                print(f"{f.stem:16s} {describe(load_classifier(f))}  {f}")
            except DCGANError as exc:
                print(f"{f.stem:16s} unreadable: {exc}")
        return 0

    from .data import load_dataset
    from .training import resolve_device

    out = Path(args.out) if args.out else default_evaluator_path(args.data)
    if out.exists() and not args.force:
        raise ConfigError(f"{out} already exists; pass --force to replace it (reference features made with it are then recomputed)")
    from .data import DATASETS

    spec = DATASETS.get(args.data)
    size = args.image_size or (spec.default_size if spec else None)
    train = load_dataset(args.data, args.data_dir, image_size=size, channels=args.channels, split="train", progress=not args.quiet)
    test = load_dataset(args.data, args.data_dir, image_size=train.image_size, channels=train.channels, split="test")
    epochs = args.epochs or EVALUATOR_EPOCHS.get(args.data, 10)
    width = args.width or (16 if train.channels == 1 else 32)
    device = resolve_device(args.device)
    print(f"training the evaluation classifier on {args.data} ({len(train)} images {train.image_size}x{train.image_size}x{train.channels}, "
          f"{len(test)} test) for {epochs} epochs on {device}")
    clf = train_classifier(
        train, test, epochs=epochs, batch_size=args.batch_size, width=width, seed=args.seed, device=device, progress=not args.quiet,
        on_epoch=None if not args.quiet else (lambda e, loss, acc: print(f"epoch {e}: loss {loss:.3f}, test accuracy {100 * acc:.2f}%")),
    )
    save_classifier(out, clf)
    print(f"test accuracy {100 * clf.info['test_accuracy']:.2f}% after {epochs} epochs in {clf.info['seconds']:.0f} s; saved to {out}")
    print(f"use it with: dcgan evaluate RUN_DIR --data {args.data} --features classifier")
    return 0


# --------------------------------------------------------------------------- #
# dcgan evaluate
# --------------------------------------------------------------------------- #
EVALUATE_EXAMPLES = """examples:
  dcgan evaluate runs/mnist --num-samples 10000                 # every metric, classifier features
  dcgan evaluate runs/mnist --metrics fid,kid --features pixels
  dcgan evaluate runs/mnist --floors                            # also real-vs-real and the noise ladder
  dcgan evaluate --data mnist --data-dir ../shared/data/mnist --floors   # floors only, no generator
"""


def _add_evaluate_args(p: argparse.ArgumentParser) -> None:
    from .metrics.extractors import FEATURE_EXTRACTORS
    from .metrics.scores import METRICS

    p.add_argument("checkpoint", nargs="?", default=None, metavar="CKPT", help="a run directory or checkpoint file (omit to score only the floors)")
    p.add_argument("--data", default=None, metavar="NAME_OR_PATH", help="real data to compare with (default: the checkpoint's training data)")
    p.add_argument("--data-dir", default=None, metavar="DIR")
    p.add_argument("--split", choices=("train", "test"), default="train", help="real split of the reference (default train)")
    p.add_argument("--metrics", default="all", metavar="LIST", help=f"comma-separated: {', '.join(METRICS)}, or all (default)")
    p.add_argument("--features", default="classifier", choices=tuple(FEATURE_EXTRACTORS), help="feature extractor (default classifier)")
    p.add_argument("--evaluator", default=None, metavar="FILE", help="evaluation classifier file (default: the one trained for --data)")
    p.add_argument("--num-samples", type=_positive_int, default=10_000, metavar="N", help="generated samples (default 10000)")
    p.add_argument("--num-real", type=_positive_int, default=None, metavar="N", help="real images (default: as many as --num-samples)")
    p.add_argument("--floors", action="store_true", help="also score real test images (the floor) and test images with noise sigma 0.1, 0.2, 0.5")
    p.add_argument("--seed", type=_seed, default=0, help="noise seed of the generated samples (default 0)")
    p.add_argument("--image-size", type=int, default=None, metavar="N", help="without CKPT: size to score the floors at (default: the dataset's)")
    p.add_argument("--json", default=None, metavar="FILE", help="where to write the JSON report (default RUN_DIR/eval/step_N-FEATURES.json)")
    p.add_argument("--no-cache", action="store_true", help="recompute the real reference features")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))


MAX_EVAL_SAMPLES = 200_000


def _run_evaluate(args: argparse.Namespace) -> int:
    from .checkpoint import load_checkpoint
    from .data import DATASETS, default_cache_dir, load_dataset
    from .fileio import atomic_write_bytes
    from .metrics.evaluate import LADDER_SIGMAS, evaluate, report_json
    from .metrics.extractors import build_extractor, load_dataset_classifier
    from .metrics.scores import METRICS, parse_metrics
    from .training import resolve_device

    metrics = parse_metrics(args.metrics)
    if max(args.num_samples, args.num_real or 0) > MAX_EVAL_SAMPLES:
        raise ConfigError(f"at most {MAX_EVAL_SAMPLES:,} samples per evaluation")
    if args.checkpoint is None and not args.floors:
        raise ConfigError("give a checkpoint to evaluate, or --floors to score only the real-data floors")
    if args.checkpoint is None and args.data is None:
        raise ConfigError("without a checkpoint, say which data with --data")
    device = str(resolve_device(args.device))
    ckpt = load_checkpoint(args.checkpoint, device) if args.checkpoint else None
    data_name, data_dir = _data_source(ckpt, args)
    if ckpt:
        size, channels = ckpt.model_config.image_size, ckpt.model_config.channels
    else:
        spec = DATASETS.get(data_name)
        size = args.image_size or (spec.default_size if spec else 64)
        channels = spec.native_channels if spec else 3
    real = load_dataset(data_name, data_dir, image_size=size, channels=channels, split=args.split)
    test = load_dataset(data_name, data_dir, image_size=size, channels=channels, split="test") if args.floors else None
    extractor = build_extractor(args.features, dataset=data_name, evaluator=args.evaluator, checkpoint=ckpt, device=device)
    classifier = extractor.classifier
    if classifier is None and any(METRICS[m].needs == "probs" for m in metrics):
        if args.metrics == "all":  # the classifier-only scores are dropped quietly when there is none
            try:
                classifier = load_dataset_classifier(data_name, args.evaluator, device)
            except DCGANError:
                metrics = [m for m in metrics if METRICS[m].needs == "features"]
        else:
            classifier = load_dataset_classifier(data_name, args.evaluator, device)
    G = ckpt.build_generator(device) if ckpt else None
    subjects = (["generator"] if G is not None else []) + (["the floor", "the noise ladder"] if args.floors else [])
    print(f"scoring {' and '.join(subjects)} with {extractor.name} features against {data_name} {args.split} ...", flush=True)
    start = time.perf_counter()
    report = evaluate(
        G, real, extractor, metrics, num_samples=args.num_samples, num_real=args.num_real, classifier=classifier,
        seed=args.seed, test=test, ladder=LADDER_SIGMAS if args.floors else (), real_split=args.split,
        cache_dir=None if args.no_cache else default_cache_dir() / "reference",
    )
    if ckpt:
        report.protocol["checkpoint"] = str(ckpt.path)
        report.protocol["step"] = ckpt.step
    report.protocol["seconds"] = round(time.perf_counter() - start, 1)
    print(report.protocol_line())
    print(report.table())
    for row in report.rows:
        if "class_shares" in row:
            shares = ", ".join(f"{k} {100 * v:.0f}%" for k, v in row["class_shares"].items())
            print(f"class shares ({row['subject']}): {shares}")
    out = Path(args.json) if args.json else None
    if out is None and ckpt is not None:
        out = _run_dir_of(ckpt) / "eval" / f"step_{ckpt.step:07d}-{args.features}.json"
    if out is not None:
        atomic_write_bytes(out, report_json(report).encode())
        print(f"report: {out}")
    return 0


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
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))


def _add_out(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument("--out", default=None, metavar="FILE.png", help=f"picture to write (default RUN_DIR/explore/{default})")


def _run_dir_of(ckpt) -> Path:
    """The run directory of a checkpoint (RUN_DIR/checkpoints/X.safetensors), or the file's own folder."""
    return ckpt.path.parent.parent if ckpt.path.parent.name == "checkpoints" else ckpt.path.parent


def _explore_path(ckpt, args: argparse.Namespace, default: str) -> Path:
    """--out, or RUN_DIR/explore/NAME for a checkpoint inside a run directory."""
    if args.out:
        out = Path(args.out)
        if out.suffix.lower() not in IMAGE_SUFFIXES:
            raise ConfigError(f"--out {args.out}: use an image file ({', '.join(IMAGE_SUFFIXES)})")
        return out
    return _run_dir_of(ckpt) / "explore" / default


def _load_for_latent(args: argparse.Namespace):
    from .checkpoint import load_checkpoint
    from .latent import latent_sheet
    from .training import resolve_device

    if args.num > MAX_GENERATE:
        raise ConfigError(f"-n {args.num} is more than {MAX_GENERATE:,} samples")
    device = resolve_device(args.device)
    ckpt = load_checkpoint(args.checkpoint)
    G = ckpt.build_generator(device)
    return ckpt, G, latent_sheet(ckpt.model_config, args.seed, args.num)


def _latent_refs(text: str, sheet, option: str):
    """'3,17,21' or '3,path/to/z.json' -> (z (k, D), labels): sheet indices or z files written by `dcgan invert`."""
    import torch

    from .latent import pick

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
    import torch

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
    from .figures import numbered_sheet, titled
    from .imaging import save_image_atomic
    from .sampling import generate

    ckpt, G, sheet = _load_for_latent(args)
    nrow = min(args.nrow, args.num) if args.nrow else None
    img = titled(numbered_sheet(generate(G, sheet), nrow=nrow), f"{ckpt.path} (step {ckpt.step}), --seed {args.seed} -n {args.num}", size=12)
    out = save_image_atomic(img, _explore_path(ckpt, args, f"sheet-seed{args.seed}.png"))
    print(f"wrote {out}: {args.num} samples numbered 0..{args.num - 1} (use the numbers with --seed {args.seed} -n {args.num})")
    return 0


def _add_interpolate_args(p: argparse.ArgumentParser) -> None:
    from .latent import INTERPOLATIONS

    _add_sheet_source(p)
    p.add_argument("--pairs", default=None, metavar="A:B,...", help="walks between sheet indices (or z files from dcgan invert), e.g. 3:17,5:9")
    p.add_argument("--random", type=_positive_int, default=4, metavar="N", help="without --pairs: N random pairs of the sheet (default 4)")
    p.add_argument("--steps", type=_checked(int, lambda v: 2 <= v <= 200, "a whole number from 2 to 200"), default=10, help="images per walk, endpoints included (default 10)")
    p.add_argument("--method", choices=tuple(INTERPOLATIONS), default="spherical", help="spherical (slerp, keeps the norm) or linear (default spherical)")
    _add_out(p, "interpolate-seed{SEED}.png (and .gif)")


def _run_interpolate(args: argparse.Namespace) -> int:
    import torch

    from .figures import walk_figure, walk_frames
    from .imaging import save_gif, save_image_atomic
    from .latent import interpolate

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
    from .figures import arithmetic_figure
    from .imaging import save_image_atomic
    from .latent import vector_arithmetic

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
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    _add_out(p, "invert-IMAGE.png (and .json with z)")


def _run_invert(args: argparse.Namespace) -> int:
    import torch

    from .checkpoint import load_checkpoint
    from .fileio import atomic_write_bytes
    from .figures import inversion_figure
    from .imagefiles import DecodeError, decode_image
    from .imaging import save_image_atomic
    from .latent import invert
    from .training import resolve_device

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
    G = ckpt.build_generator(resolve_device(args.device))
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
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    _add_out(p, "neighbors-seed{SEED}.png")


def _run_neighbors(args: argparse.Namespace) -> int:
    import torch

    from .checkpoint import load_checkpoint
    from .figures import neighbors_figure, stack_vertical
    from .imaging import save_image_atomic
    from .latent import latent_sheet, nearest_neighbors
    from .metrics.classifier import default_evaluator_path
    from .metrics.extractors import build_extractor
    from .sampling import generate
    from .training import resolve_device

    device = str(resolve_device(args.device))
    ckpt = load_checkpoint(args.checkpoint)
    mc = ckpt.model_config
    data_name, _ = _data_source(ckpt, args)
    data = _checkpoint_data(ckpt, args, "train")
    if data.images is None:
        raise ConfigError("neighbors needs the training data in memory; this dataset streams from disk")
    samples = generate(ckpt.build_generator(device), latent_sheet(mc, args.seed, args.num))
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


def _data_source(ckpt, args: argparse.Namespace) -> tuple[str, str | None]:
    """(data name or path, data dir): --data and --data-dir, else what the checkpoint was trained on."""
    saved = (ckpt.state.get("train_config") or {}) if ckpt else {}
    name = args.data or saved.get("data")
    if not name:
        raise ConfigError("the checkpoint does not record its training data; say which with --data")
    return name, args.data_dir if args.data_dir is not None or args.data else saved.get("data_dir")


def _checkpoint_data(ckpt, args: argparse.Namespace, split: str):
    """The checkpoint's training data (or --data) at its generator's size and channels."""
    from .data import load_dataset

    name, data_dir = _data_source(ckpt, args)
    mc = ckpt.model_config
    return load_dataset(name, data_dir, image_size=mc.image_size, channels=mc.channels, split=split)


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
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))


def _run_probe(args: argparse.Namespace) -> int:
    from .checkpoint import load_checkpoint
    from .fileio import atomic_write_bytes
    from .probe import run_probe
    from .training import resolve_device

    ckpt = load_checkpoint(args.checkpoint)
    if not ckpt.has("D"):
        raise ConfigError(f"{ckpt.path} holds no discriminator to probe")
    train, test = _checkpoint_data(ckpt, args, "train"), _checkpoint_data(ckpt, args, "test")
    D = ckpt.build_discriminator(resolve_device(args.device))
    print(f"probing D of {ckpt.path} (step {ckpt.step}) on {train.name}: {args.labels_per_class} labels per class ...", flush=True)
    start = time.perf_counter()
    report = run_probe(D, train, test, args.labels_per_class, seed=args.seed, baselines=() if args.no_baselines else ("pixels", "random_d"),
                       max_test=args.max_test)
    print(report.table())
    print(f"({time.perf_counter() - start:.1f} s in all)")
    out = Path(args.json) if args.json else _run_dir_of(ckpt) / "explore" / f"probe-{args.labels_per_class}.json"
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
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))


def _run_filters(args: argparse.Namespace) -> int:
    import torch

    from .checkpoint import load_checkpoint
    from .figures import stack_vertical, titled
    from .filters import discriminator_filters, generator_filters, top_activation_figure
    from .imaging import save_image_atomic
    from .training import resolve_device

    try:
        channels = [int(c) for c in args.channels.split(",") if c.strip()]
    except ValueError:
        raise ConfigError(f"--channels {args.channels!r}: give channel numbers like 0,3,7") from None
    if not channels:
        raise ConfigError("--channels needs at least one channel number")
    ckpt = load_checkpoint(args.checkpoint)
    out = _explore_path(ckpt, args, "filters.png")
    device = resolve_device(args.device)
    D, G = ckpt.build_discriminator(device), ckpt.build_generator(device)
    data = _checkpoint_data(ckpt, args, "train")
    if data.images is None:
        raise ConfigError("filters needs the data in memory; this dataset streams from disk")
    pick = torch.randperm(len(data), generator=torch.Generator().manual_seed(args.seed))[: args.num_images].sort().values
    images = data.images[pick]
    panels = [
        titled(discriminator_filters(D), f"D, first layer: {D.config.hidden_widths()[0]} filters", size=12),
        titled(generator_filters(G), "G, output layer", size=12),
        titled(top_activation_figure(D, images, args.layer, channels, args.top_k),
               f"D block {args.layer}: the {args.top_k} of {len(images)} training images that excite each channel most, with its activation map", size=12),
    ]
    save_image_atomic(stack_vertical(panels, gap=16), out)
    print(f"wrote {out}")
    return 0


# --------------------------------------------------------------------------- #
# dcgan serve
# --------------------------------------------------------------------------- #
SERVE_EXAMPLES = """examples:
  dcgan serve runs/mnist                        # open http://127.0.0.1:8000/ in a browser
  dcgan serve runs/mnist --port 0 --open        # any free port, and open the page
  dcgan serve runs/mnist/checkpoints/best.safetensors --max-samples 100

The page: a grid of samples from a seed (new seed, grid size), a click on two samples walks
between them, groups A, B, C for vector arithmetic with the paper's 3x3 noise grid, an upload
box to invert your own image, sliders along principal directions of z, and a download link
under every picture. Only this machine can reach it unless --host says otherwise.
"""


def _add_serve_args(p: argparse.ArgumentParser) -> None:
    from .server import ServeLimits

    d = ServeLimits()
    p.add_argument("checkpoint", metavar="CKPT", help="a run directory (its latest checkpoint), a checkpoint or an exported generator")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0: every interface)")
    p.add_argument("--port", type=_checked(int, lambda v: 0 <= v <= 65535, "a port from 0 to 65535"), default=8000,
                   help="port (default 8000; 0 picks a free one)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--open", action="store_true", help="open the page in the default web browser")
    p.add_argument("--verbose", action="store_true", help="log every request")
    limits = p.add_argument_group("limits of one request")
    limits.add_argument("--max-samples", type=_checked(int, lambda v: 1 <= v <= 4096, "a whole number from 1 to 4096"),
                        default=d.max_samples, help=f"samples on one grid (default {d.max_samples})")
    limits.add_argument("--max-upload-mb", type=_positive_float, default=d.max_upload_bytes / 2**20,
                        help=f"size of an uploaded image in MiB (default {d.max_upload_bytes / 2**20:g})")
    limits.add_argument("--max-upload-megapixels", type=_positive_float, default=d.max_upload_pixels / 1e6,
                        help=f"pixels of an uploaded image, in millions (default {d.max_upload_pixels / 1e6:g})")
    limits.add_argument("--max-invert-steps", type=_checked(int, lambda v: 1 <= v <= 100_000, "a whole number from 1 to 100000"),
                        default=d.max_invert_steps, help=f"Adam steps of one inversion (default {d.max_invert_steps})")
    limits.add_argument("--directions", type=_checked(int, lambda v: 1 <= v <= 64, "a whole number from 1 to 64"),
                        default=d.directions, help=f"principal directions offered as sliders (default {d.directions})")


def _run_serve(args: argparse.Namespace) -> int:
    from importlib.util import find_spec

    missing = [name for name in ("fastapi", "uvicorn") if find_spec(name) is None]
    if missing:
        raise ConfigError(f"dcgan serve needs {' and '.join(missing)}: pip install 'dcgan[serve]'")
    from .checkpoint import load_checkpoint
    from .server import LOOPBACK_HOSTS, Explorer, ServeLimits, bind_socket, create_app, is_loopback, serve, url_of
    from .training import resolve_device

    ckpt = load_checkpoint(args.checkpoint)
    limits = ServeLimits(
        max_samples=args.max_samples,
        max_upload_bytes=int(args.max_upload_mb * 2**20),
        max_upload_pixels=int(args.max_upload_megapixels * 1e6),
        max_invert_steps=args.max_invert_steps,
        directions=args.directions,
    )
    explorer = Explorer(ckpt, resolve_device(args.device), limits)
    local = is_loopback(args.host)
    sock = bind_socket(args.host, args.port)
    url = url_of(sock)
    mc = ckpt.model_config
    print(f"serving {ckpt.path} (step {ckpt.step}, {mc.image_size}x{mc.image_size}x{mc.channels}) on {next(explorer.G.parameters()).device}")
    if local:
        print(f"open {url} in a browser; Ctrl-C stops the server", flush=True)
    else:
        port = sock.getsockname()[1]
        print(f"listening on {url} (from this machine: http://127.0.0.1:{port}/); Ctrl-C stops the server", flush=True)
        print(f"dcgan serve: warning: --host {args.host} lets other machines reach this server, which has no login", file=sys.stderr)
    if args.open:
        import webbrowser

        webbrowser.open(url if local else f"http://127.0.0.1:{sock.getsockname()[1]}/")
    try:
        serve(create_app(explorer, allowed_hosts=LOOPBACK_HOSTS if local else None), sock, verbose=args.verbose)
    except KeyboardInterrupt:  # uvicorn shuts down on Ctrl-C, then raises it again: stopping is what was asked
        pass
    finally:
        sock.close()
    print("server stopped")
    return 0


# --------------------------------------------------------------------------- #
# dcgan report
# --------------------------------------------------------------------------- #
REPORT_EXAMPLES = """examples:
  dcgan report runs/mnist                     # runs/mnist/report.png and report.html
  dcgan report runs/mnist --out mnist-report.png
"""


def _add_report_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory")
    p.add_argument("--out", default=None, metavar="FILE.png", help="the dashboard picture (default RUN_DIR/report.png); an .html page is written beside it")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the walks shown (default 0)")


def _run_report(args: argparse.Namespace) -> int:
    from .fileio import atomic_write_bytes
    from .imaging import save_image_atomic
    from .report import build_report, report_html, report_image

    report = build_report(args.run_dir, seed=args.seed)
    out = Path(args.out) if args.out else Path(args.run_dir) / "report.png"
    if out.suffix.lower() != ".png":
        raise ConfigError(f"--out {args.out}: the dashboard is a .png file (the .html page is written beside it)")
    save_image_atomic(report_image(report), out)
    page = atomic_write_bytes(out.with_suffix(".html"), report_html(report).encode())
    print(f"wrote {out} and {page} ({len(report.panels)} panels: {', '.join(t.split(' (')[0] for t, _ in report.panels)})")
    return 0


# --------------------------------------------------------------------------- #
# Registry and entry point
# --------------------------------------------------------------------------- #
COMMANDS: dict[str, tuple[str, str, Callable, Callable]] = {
    # name: (one-line help, examples, add-arguments, run)
    "train": ("train a DCGAN (with no options: a short demo on scikit-learn's digits)", TRAIN_EXAMPLES, _add_train_args, _run_train),
    "generate": ("write samples from a checkpoint as a grid or one PNG each", GENERATE_EXAMPLES, _add_generate_args, _run_generate),
    "info": ("print a checkpoint's config, progress, data and size", INFO_EXAMPLES, _add_info_args, _run_info),
    "export": ("the generator alone as safetensors, ONNX or TorchScript, with a model card", EXPORT_EXAMPLES, _add_export_args, _run_export),
    "data": ("check a dataset before training, or download one", DATA_EXAMPLES, _add_data_args, _run_data),
    "evaluate": ("score a generator: FID, KID, precision/recall, density/coverage, classifier scores", EVALUATE_EXAMPLES, _add_evaluate_args, _run_evaluate),
    "evaluator": ("train or list the evaluation classifiers that `evaluate` uses for features", EVALUATOR_EXAMPLES, _add_evaluator_args, _run_evaluator),
    "sheet": ("a numbered grid of samples, to pick exemplars by index", SHEET_EXAMPLES, _add_sheet_args, _run_sheet),
    "interpolate": ("walks between latent points, as a grid and a GIF (linear or spherical)", INTERPOLATE_EXAMPLES, _add_interpolate_args, _run_interpolate),
    "arithmetic": ("vector arithmetic on z: mean(A) - mean(B) + mean(C), with the paper's noise grid", ARITHMETIC_EXAMPLES, _add_arithmetic_args, _run_arithmetic),
    "invert": ("find the z whose image best reconstructs a real image", INVERT_EXAMPLES, _add_invert_args, _run_invert),
    "neighbors": ("nearest training images of generated samples: a memorisation check", NEIGHBORS_EXAMPLES, _add_neighbors_args, _run_neighbors),
    "probe": ("the paper's section 5.1: D's features + a linear SVM, against pixels and a random D", PROBE_EXAMPLES, _add_probe_args, _run_probe),
    "filters": ("D's and G's first-layer filters, and the images that excite chosen D channels", FILTERS_EXAMPLES, _add_filters_args, _run_filters),
    "serve": ("a local web page to explore a generator: samples, walks, arithmetic, inversion, sliders", SERVE_EXAMPLES, _add_serve_args, _run_serve),
    "report": ("a run's dashboard as one PNG and an HTML page: samples, progress, curves, walks, filters", REPORT_EXAMPLES, _add_report_args, _run_report),
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
    for name, (help_text, examples, add_args, _) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text, epilog=examples, formatter_class=_help_formatter)
        add_args(p)
    return parser


def _one_line(value) -> str:
    """An error message on one line: newlines in user-given paths are shown escaped."""
    return str(value).replace("\r", "\\r").replace("\n", "\\n")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    words = sys.argv[1:] if argv is None else list(argv)
    for word in words:  # argparse turns `--opt=--` into an empty list that no type check sees
        if word.startswith("--") and word.endswith("=--"):
            parser.error(f"{word}: '--' is not a value")
    args = parser.parse_args(words)
    args.argv = argv  # the words of this command, for re-launching it under torchrun
    if args.command is None:
        parser.print_help()
        return EXIT_USER_ERROR
    run = COMMANDS[args.command][3]
    try:
        return run(args)
    except DCGANError as exc:
        print(f"dcgan {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"dcgan {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as exc:  # permissions, full disk, a folder where a file should be: the user's to fix
        print(f"dcgan {args.command}: error: {_one_line(exc.strerror or exc)}{': ' + _one_line(exc.filename) if exc.filename else ''}", file=sys.stderr)
        return 1
    finally:
        from .distributed import cleanup

        cleanup()


if __name__ == "__main__":
    sys.exit(main())
