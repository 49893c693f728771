"""Benchmark: sample quality after the same wall-clock minutes, the code before a change against the code after it.

Each code tree trains the default MNIST configuration (`dcgan train --data mnist --seed 0`, 32x32, the paper's
settings) as a subprocess, one after the other on the same machine; after `--minutes` the run gets SIGTERM,
saves its checkpoint and exits, as a user's Ctrl-C would. Every checkpoint is then scored by the *current*
evaluator under one protocol: FID of `--num-samples` samples against MNIST training images in each of
`--features` (several feature spaces may be given), beside the real-vs-real floor (held-out test images)
and the noise-ladder rungs, and the `grid` score: the grey levels of the fixed pattern at periods of 2 and
4 pixels in the mean sample, which is what the dots at the stride of G's last layers are.
It also writes `grids.png`: the same 16 z through each subject at 4x zoom, plain and with the
brightness times 8 (the background's dots show there).

The code after the change is scored twice: its default sampler (the averaged G with standing batch-norm
statistics) and `--raw-g` (the trained G with eval-mode batch norm, which is all the code before offers).

    .venv/bin/python benchmarks/quality_minutes.py --old-src /tmp/old/src --minutes 12 --out /tmp/quality
    (git worktree add /tmp/old COMMIT makes the old tree; --after-args "--recipe mnist" trains the
    code after the change with extra options)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from PIL import Image

from dcgan.checkpoint import load_checkpoint
from dcgan.data import load_dataset
from dcgan.imaging import grid_image
from dcgan.metrics.evaluate import evaluate
from dcgan.metrics.extractors import build_extractor, resolve_features
from dcgan.sampling import generate, sample_z

REPO = Path(__file__).resolve().parents[1]


def start_training(src: Path, run: Path, data_dir: str, core: int | None = None, extra: list[str] = ()) -> subprocess.Popen:
    """`python -m dcgan train` of the code in `src` (on one CPU core, with one thread, when `core` is given)."""
    env = dict(os.environ, PYTHONPATH=str(src))
    cmd = [
        sys.executable,
        "-m",
        "dcgan",
        "train",
        "--data",
        "mnist",
        "--data-dir",
        data_dir,
        "--seed",
        "0",
        "--epochs",
        "1000",
        "--quiet",
        "--out",
        str(run),
        *extra,
    ]
    if core is not None:
        env["OMP_NUM_THREADS"] = "1"
        cmd = ["taskset", "-c", str(core), *cmd]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_after(procs: list[subprocess.Popen], minutes: float) -> None:
    """SIGTERM every process `minutes` after now (each saves a checkpoint and exits, as after Ctrl-C)."""
    deadline = time.perf_counter() + minutes * 60
    for proc in procs:
        try:
            proc.wait(timeout=max(deadline - time.perf_counter(), 0.1))
        except subprocess.TimeoutExpired:
            pass
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        proc.wait(timeout=600)


def run_figures(run: Path) -> dict:
    ckpt = load_checkpoint(run)
    return {"steps": ckpt.step, "training_s": round(ckpt.record.elapsed_s, 1)}


def zoomed_grids(images: list[torch.Tensor]) -> Image.Image:
    """One 4x4 grid per subject (16 images (16, C, H, W) in [-1, 1]) side by side, then the same with the
    brightness times 8; 4x zoom."""
    rows = []
    for gain in (1, 8):
        grids = [grid_image(((x + 1) * gain - 1).clamp(-1, 1), nrow=4, scale=4) for x in images]
        row = Image.new(grids[0].mode, (sum(g.width for g in grids), grids[0].height))
        for i, g in enumerate(grids):
            row.paste(g, (i * g.width, 0))
        rows.append(row)
    out = Image.new(rows[0].mode, (rows[0].width, 2 * rows[0].height))
    out.paste(rows[0], (0, 0))
    out.paste(rows[1], (0, rows[0].height))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--old-src", required=True, help="src/ folder of the code before the change (a git worktree)")
    p.add_argument("--new-src", default=str(REPO / "src"))
    p.add_argument("--minutes", type=float, default=12.0)
    p.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data" / "mnist"))
    p.add_argument("--features", default=None, help="comma-separated feature extractors (default: the evaluate command's default)")
    p.add_argument("--after-args", default="", help="extra `dcgan train` options for the code after the change, e.g. '--recipe mnist'")
    p.add_argument("--num-samples", type=int, default=10_000)
    p.add_argument("--out", default="/tmp/quality-minutes")
    p.add_argument("--skip-training", action="store_true", help="score the runs already in --out")
    p.add_argument(
        "--side-by-side",
        action="store_true",
        help="train both at once, each on its own core with one thread (for a machine that is not quiet: "
        "whatever else runs slows both alike); default: one after the other, each with every core",
    )
    args = p.parse_args()
    out = Path(args.out)
    runs = {"before": (Path(args.old_src), out / "before"), "after": (Path(args.new_src), out / "after")}
    extra = {"before": [], "after": args.after_args.split()}
    if not args.skip_training and args.side_by_side:
        print(f"training both side by side for {args.minutes} minutes ...", flush=True)
        stop_after([start_training(src, run, args.data_dir, core, extra[name]) for core, (name, (src, run)) in enumerate(runs.items())], args.minutes)
    elif not args.skip_training:
        for name, (src, run) in runs.items():
            print(f"training {name} for {args.minutes} minutes ...", flush=True)
            stop_after([start_training(src, run, args.data_dir, extra=extra[name])], args.minutes)
    figures = {name: run_figures(run) for name, (_, run) in runs.items()}
    real = load_dataset("mnist", args.data_dir, image_size=32, split="train")
    test = load_dataset("mnist", args.data_dir, image_size=32, split="test")
    names = (args.features or resolve_features("auto", "mnist")[0]).split(",")  # default: what `dcgan evaluate` picks
    extractors = [build_extractor(name, dataset="mnist") for name in names]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; features: " + "; ".join(f"{e.name}: {e.description}" for e in extractors))
    rows, pictures = [], []
    subjects = [
        ("before", "before", False),
        ("after (default: averaged G, standing BN)", "after", False),
        ("after --raw-g (trained G, eval BN)", "after", True),
    ]
    for label, run, raw in subjects:
        ckpt = load_checkpoint(runs[run][1])
        G = ckpt.build_generator(raw=raw)
        pictures.append(generate(G, sample_z(16, G.config.z_dim, G.config.prior, torch.Generator().manual_seed(0))))
        first = not rows
        for i, extractor in enumerate(extractors):
            report = evaluate(
                G,
                real,
                extractor,
                ["fid", "grid"],
                num_samples=args.num_samples,
                test=test if first else None,
                ladder=(0.1, 0.2, 0.5) if first else (),
            )
            for r in report.rows:
                subject = label if r["subject"] == "generator" else r["subject"]
                if i == 0:
                    rows.append({"subject": subject, "grid": r["grid"], **(figures[run] if r["subject"] == "generator" else {})})
                row = next(x for x in rows if x["subject"] == subject)
                row[f"fid_{extractor.name}"] = r["fid"]
    zoomed_grids(pictures).save(out / "grids.png")
    floor = {e.name: next(r[f"fid_{e.name}"] for r in rows if r["subject"] == "real test (floor)") for e in extractors}
    print("\n| subject | steps | " + " | ".join(f"FID {n} | x floor" for n in names) + " | grid (grey levels) |")
    print("| --- | ---: | " + " | ".join("---: | ---:" for _ in names) + " | ---: |")
    for r in rows:
        fids = " | ".join(f"{r[f'fid_{n}']:.3f} | {r[f'fid_{n}'] / floor[n]:.1f}x" for n in names)
        print(f"| {r['subject']} | {r.get('steps', '')} | {fids} | {r['grid']:.2f} |")
    for n in names:
        before = next(r[f"fid_{n}"] for r in rows if r["subject"] == "before")
        after = next(r[f"fid_{n}"] for r in rows if r["subject"].startswith("after (default"))
        print(f"FID before / after ({n}): {before / after:.2f}x")
    (out / "results.json").write_text(json.dumps({"rows": rows, "features": {e.name: e.description for e in extractors}}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
