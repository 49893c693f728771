"""`dcgan export`: the generator alone as safetensors, ONNX or TorchScript, with a model card."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..checkpoint import load_checkpoint
from ..errors import ConfigError
from ..export import EXPORT_FORMATS, export_files, export_names, parse_formats, run_metrics, tolerance_text
from ..fileio import atomic_write_bytes
from ..rundir import RunDir
from .common import EXIT_EXPORT_MISMATCH, Command, _add_raw_g

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
    p.add_argument("--format", default="safetensors", metavar="LIST",
                   help=f"comma-separated: {', '.join(EXPORT_FORMATS)}, or all (default safetensors)")
    p.add_argument("--out", default=None, metavar="DIR", help="folder to write into (default RUN_DIR/export)")
    p.add_argument("--force", action="store_true", help="replace files an earlier export left there")
    _add_raw_g(p)


def _size_text(num_bytes: int) -> str:
    return f"{num_bytes / 1e6:.1f} MB" if num_bytes >= 1e6 else f"{num_bytes / 1e3:.1f} kB"


def _run_export(args: argparse.Namespace) -> int:
    formats = parse_formats(args.format)
    ckpt = load_checkpoint(args.checkpoint)
    run = RunDir.of_checkpoint(ckpt.path)
    out = Path(args.out) if args.out else run.export_dir
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder to export into")
    existing = [name for name in export_names(formats) if (out / name).exists()]
    if existing and not args.force:
        raise ConfigError(f"{out} already holds {', '.join(existing)}; pass --force to replace {'it' if len(existing) == 1 else 'them'}")
    mc = ckpt.model_config
    metrics = run_metrics(run.root, ckpt.step, ckpt.record.best)
    classes = f", {mc.num_classes} classes ({mc.conditioning})" if mc.conditional else ""
    print(f"exporting G of {ckpt.path} (step {ckpt.step}, {mc.image_size}x{mc.image_size}x{mc.channels}, z_dim {mc.z_dim} {mc.prior}"
          f"{classes}) as {', '.join(formats)} ...", flush=True)
    files = export_files(ckpt, formats, metrics, raw=args.raw_g)
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


COMMANDS = {
    "export": Command("the generator alone as safetensors, ONNX or TorchScript, with a model card", EXPORT_EXAMPLES, _add_export_args, _run_export),
}
