"""`dcgan export`: the generator alone as safetensors, ONNX or TorchScript, with a model card."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from ..checkpoint import Checkpoint, load_checkpoint
from ..errors import ConfigError
from ..export import EXPORT_FORMATS, ExportedFile, export_files, export_names, parse_formats, run_metrics, tolerance_text
from ..export.hub import HUB_FILES, hub_files, push_folder
from ..fileio import atomic_write_bytes
from ..rundir import RunDir
from .common import EXIT_EXPORT_MISMATCH, Command, _add_raw_g

EXPORT_EXAMPLES = """examples:
  dcgan export runs/mnist                                  # runs/mnist/export/generator.safetensors + model card
  dcgan export runs/mnist --format onnx,torchscript --out release/
  dcgan export runs/mnist/checkpoints/best.safetensors --format all --force
  dcgan generate runs/mnist/export/generator.safetensors -n 64 --out grid.png   # every sampling command reads it
  dcgan export runs/mnist --format hub --out hub/mnist     # generator.safetensors, config.json, README.md for the Hub
  dcgan push runs/mnist you/dcgan-mnist                    # the same folder, uploaded (huggingface_hub)
  dcgan generate hf://you/dcgan-mnist -n 64 --out grid.png # downloaded once, then read from the Hub cache

formats:
  safetensors  G's weights, config and card; loads wherever a checkpoint does, but cannot be resumed
  onnx         input z (batch, z_dim), output images (batch, C, H, W) in [-1, 1]; checked with onnxruntime
               (needs: pip install 'dcgan[export]')
  torchscript  torch.jit.trace, for LibTorch/C++; PyTorch has deprecated TorchScript, so prefer onnx
  hub          a Hugging Face Hub folder: generator.safetensors, config.json and the card as README.md
               with its metadata (on its own, not in a list); any dcgan command loads the folder

A class-conditional generator (dcgan train --conditional) takes its class as a second input,
labels (batch,) int64, in the onnx and torchscript files: G(z, labels); generate(G, z, labels) for
safetensors. The model card lists the classes by label and name.

Every file is checked before anything is written: the same z through the file and through PyTorch,
as a batch of 16 and a batch of one (tolerance: safetensors exact, onnx 1e-4, torchscript 1e-6);
a conditional generator's check feeds seeded labels in which every class appears.
The model card (model_card.json, MODEL_CARD.md) holds z's size and prior, the image size and range,
the training data and its sha256, the step, and the metrics recorded for that step with their protocol
(from `dcgan evaluate` reports in RUN_DIR/eval/ and the --eval-every FID in RUN_DIR/metrics.jsonl).
"""


def _add_export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", metavar="CKPT", help="a run directory (its latest checkpoint) or a checkpoint file")
    p.add_argument(
        "--format",
        default="safetensors",
        metavar="LIST",
        help=f"comma-separated: {', '.join(EXPORT_FORMATS)}, or all; or hub alone (default safetensors)",
    )
    p.add_argument("--out", default=None, metavar="DIR", help="folder to write into (default RUN_DIR/export)")
    p.add_argument("--force", action="store_true", help="replace files an earlier export left there")
    p.add_argument("--license", default=None, metavar="ID", help="the licence for a hub folder's card, e.g. mit (default: none stated)")
    _add_raw_g(p)


def _size_text(num_bytes: int) -> str:
    return f"{num_bytes / 1e6:.1f} MB" if num_bytes >= 1e6 else f"{num_bytes / 1e3:.1f} kB"


def _run_of(ckpt: Checkpoint) -> RunDir:
    """The run directory of a checkpoint loaded from a file."""
    assert ckpt.path is not None  # load_checkpoint records the file
    return RunDir.of_checkpoint(ckpt.path)


def _tolerance(f: ExportedFile) -> str:
    """The tolerance of a checked file, for people."""
    assert f.tolerance is not None, "a checked file has its format's tolerance"
    return tolerance_text(f.tolerance)


def _run_export(args: argparse.Namespace) -> int:
    if args.format.strip().lower() == "hub":
        return _export_hub(args)
    if "hub" in [n.strip().lower() for n in args.format.split(",")]:
        raise ConfigError("--format hub writes a folder of its own: give it alone, not in a list")
    formats = parse_formats(args.format)
    ckpt = load_checkpoint(args.checkpoint)
    run = _run_of(ckpt)
    out = Path(args.out) if args.out else run.export_dir
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder to export into")
    existing = [name for name in export_names(formats) if (out / name).exists()]
    if existing and not args.force:
        raise ConfigError(f"{out} already holds {', '.join(existing)}; pass --force to replace {'it' if len(existing) == 1 else 'them'}")
    mc = ckpt.model_config
    metrics = run_metrics(run.root, ckpt.step, ckpt.record.best)
    classes = f", {mc.num_classes} classes ({mc.conditioning})" if mc.conditional else ""
    print(
        f"exporting G of {ckpt.path} (step {ckpt.step}, {mc.image_size}x{mc.image_size}x{mc.channels}, z_dim {mc.z_dim} {mc.prior}"
        f"{classes}) as {', '.join(formats)} ...",
        flush=True,
    )
    files = export_files(ckpt, formats, metrics, raw=args.raw_g)
    failed = [f for f in files if not f.passed]
    if failed:  # a bug in an exporter or a runtime, not the user's: but one line, and nothing half-written
        f = failed[0]
        print(
            f"dcgan export: error: {f.name} does not reproduce the generator: max |diff| {f.max_diff:.2e} > tolerance "
            f"{_tolerance(f)} ({EXPORT_FORMATS[f.format].runner}); nothing was written",
            file=sys.stderr,
        )
        return EXIT_EXPORT_MISMATCH
    width = max(len(f.name) for f in files)
    for f in files:
        path = atomic_write_bytes(out / f.name, f.data)
        check = "" if f.max_diff is None else (f"  {EXPORT_FORMATS[f.format].runner}: max |diff| {f.max_diff:.1e}, tolerance {_tolerance(f)}")
        print(f"  {str(path):<{width + len(str(out)) + 1}}  {_size_text(len(f.data)):>9}{check}")
    if metrics:
        print(f"model card: {len(metrics)} metric(s) recorded for step {ckpt.step} ({', '.join(dict.fromkeys(m['name'] for m in metrics))})")
    else:
        print(f"model card: no metrics recorded for step {ckpt.step}; measure them with: dcgan evaluate {ckpt.path}, then export again")
    return 0


def _hub_folder_files(checkpoint: str, raw: bool, license: str | None):
    ckpt = load_checkpoint(checkpoint)
    run = _run_of(ckpt)
    return ckpt, run, hub_files(ckpt, run_metrics(run.root, ckpt.step, ckpt.record.best), raw=raw, license=license)


def _export_hub(args: argparse.Namespace) -> int:
    ckpt, run, files = _hub_folder_files(args.checkpoint, args.raw_g, args.license)
    out = Path(args.out) if args.out else run.root / "hub"
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder to export into")
    existing = [name for name in HUB_FILES if (out / name).exists()]
    if existing and not args.force:
        raise ConfigError(f"{out} already holds {', '.join(existing)}; pass --force to replace {'it' if len(existing) == 1 else 'them'}")
    for name, data in files:
        print(f"  {atomic_write_bytes(out / name, data)}  {_size_text(len(data)):>9}")
    print(f"a Hugging Face Hub folder for step {ckpt.step}; upload it with: dcgan push {args.checkpoint} OWNER/NAME")
    return 0


def _add_push_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", metavar="RUN", help="a run directory (its latest checkpoint) or a checkpoint file")
    p.add_argument("repo_id", metavar="REPO_ID", help="the Hub model repo, owner/name (created if missing)")
    p.add_argument("--private", action="store_true", help="create the repo as private")
    p.add_argument("--license", default=None, metavar="ID", help="the licence for the card, e.g. mit (default: none stated)")
    _add_raw_g(p)


def _run_push(args: argparse.Namespace) -> int:
    ckpt, _, files = _hub_folder_files(args.checkpoint, args.raw_g, args.license)
    with tempfile.TemporaryDirectory(prefix="dcgan-hub-") as folder:  # nothing is written into the run
        for name, data in files:
            (Path(folder) / name).write_bytes(data)
        url = push_folder(folder, args.repo_id, private=args.private)
    print(f"pushed G of {ckpt.path} (step {ckpt.step}) to {args.repo_id}: {url}")
    print(f"load it anywhere with: dcgan generate hf://{args.repo_id.removeprefix('hf://')} -n 64 --out grid.png")
    return 0


PUSH_EXAMPLES = """examples:
  huggingface-cli login                                    # once: a token with write access
  dcgan push runs/mnist you/dcgan-mnist                    # the `dcgan export --format hub` folder, uploaded
  dcgan push runs/mnist you/dcgan-mnist --private --license mit
  dcgan generate hf://you/dcgan-mnist -n 64 --out grid.png

Offline (or with HF_HUB_OFFLINE=1) it stops with one line and writes nothing.
"""


COMMANDS = {
    "export": Command("the generator alone as safetensors, ONNX or TorchScript, with a model card", EXPORT_EXAMPLES, _add_export_args, _run_export),
    "push": Command("upload the generator to the Hugging Face Hub (owner/name), model card as README", PUSH_EXAMPLES, _add_push_args, _run_push),
}
