"""Benchmark: sample quality after the same wall-clock minutes, the code before a change against the code after it.

Each code tree trains the default MNIST configuration (`dcgan train --data mnist --seed 0`, 32x32, the paper's
settings) as a subprocess, one after the other on the same machine; after `--minutes` the run gets SIGTERM,
saves its checkpoint and exits, as a user's Ctrl-C would. Every checkpoint is then scored by the *current*
evaluator under one protocol: FID of `--num-samples` samples against MNIST training images, beside the
real-vs-real floor (held-out test images) and the noise-ladder rungs, and the background "dot contrast":
the spread between the mean background values of the pixel phases at stride 2 and 4, which is what a
regular pattern of faint dots at the stride of G's last layers shows as (0 for a flat background).

The code after the change is scored twice: its default sampler (the averaged G with standing batch-norm
statistics) and `--raw-g` (the trained G with eval-mode batch norm, which is all the code before offers).

    .venv/bin/python benchmarks/quality_minutes.py --old-src /tmp/old/src --minutes 12 --out /tmp/quality
    (git worktree add /tmp/old COMMIT makes the old tree)
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

from dcgan.checkpoint import load_checkpoint
from dcgan.data import load_dataset
from dcgan.metrics.evaluate import evaluate
from dcgan.metrics.extractors import build_extractor, resolve_features
from dcgan.sampling import generate, sample_z

REPO = Path(__file__).resolve().parents[1]


def start_training(src: Path, run: Path, data_dir: str, core: int | None = None) -> subprocess.Popen:
    """`python -m dcgan train` of the code in `src` (on one CPU core, with one thread, when `core` is given)."""
    env = dict(os.environ, PYTHONPATH=str(src))
    cmd = [sys.executable, "-m", "dcgan", "train", "--data", "mnist", "--data-dir", data_dir, "--seed", "0",
           "--epochs", "1000", "--quiet", "--out", str(run)]
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


def dot_contrast(G, num: int = 2000, seed: int = 1) -> dict:
    """Spread of the mean background (a 5-pixel border) over the pixel phases at stride 2 and 4."""
    c = G.config
    x = generate(G, sample_z(num, c.z_dim, c.prior, torch.Generator().manual_seed(seed))).mean(1).mean(0)  # (H, W)
    size = x.shape[-1]
    border = torch.zeros(size, size, dtype=torch.bool)
    border[:5], border[-5:], border[:, :5], border[:, -5:] = True, True, True, True
    out = {}
    for period in (2, 4):
        means = []
        for i in range(period):
            for j in range(period):
                phase = torch.zeros(size, size, dtype=torch.bool)
                phase[i::period, j::period] = True
                means.append(x[phase & border].mean())
        out[f"dots_{period}"] = float(torch.stack(means).max() - torch.stack(means).min())
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--old-src", required=True, help="src/ folder of the code before the change (a git worktree)")
    p.add_argument("--new-src", default=str(REPO / "src"))
    p.add_argument("--minutes", type=float, default=12.0)
    p.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data" / "mnist"))
    p.add_argument("--features", default=None, help="feature extractor (default: the evaluate command's default)")
    p.add_argument("--num-samples", type=int, default=10_000)
    p.add_argument("--out", default="/tmp/quality-minutes")
    p.add_argument("--skip-training", action="store_true", help="score the runs already in --out")
    p.add_argument("--side-by-side", action="store_true",
                   help="train both at once, each on its own core with one thread (for a machine that is not quiet: "
                   "whatever else runs slows both alike); default: one after the other, each with every core")
    args = p.parse_args()
    out = Path(args.out)
    runs = {"before": (Path(args.old_src), out / "before"), "after": (Path(args.new_src), out / "after")}
    if not args.skip_training and args.side_by_side:
        print(f"training both side by side for {args.minutes} minutes ...", flush=True)
        stop_after([start_training(src, run, args.data_dir, core) for core, (src, run) in enumerate(runs.values())], args.minutes)
    elif not args.skip_training:
        for name, (src, run) in runs.items():
            print(f"training {name} for {args.minutes} minutes ...", flush=True)
            stop_after([start_training(src, run, args.data_dir)], args.minutes)
    figures = {name: run_figures(run) for name, (_, run) in runs.items()}
    real = load_dataset("mnist", args.data_dir, image_size=32, split="train")
    test = load_dataset("mnist", args.data_dir, image_size=32, split="test")
    features = args.features or resolve_features("auto", "mnist")[0]  # what `dcgan evaluate` picks
    extractor = build_extractor(features, dataset="mnist")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; features: {extractor.description}")
    rows = []
    subjects = [("before", "before", False), ("after (default: averaged G, standing BN)", "after", False),
                ("after --raw-g (trained G, eval BN)", "after", True)]
    for label, run, raw in subjects:
        ckpt = load_checkpoint(runs[run][1])
        G = ckpt.build_generator(raw=raw)
        report = evaluate(G, real, extractor, ["fid"], num_samples=args.num_samples, test=test if not rows else None,
                          ladder=(0.1, 0.2, 0.5) if not rows else ())
        for r in report.rows:
            subject = label if r["subject"] == "generator" else r["subject"]
            rows.append({"subject": subject, "fid": r["fid"], **(figures[run] if r["subject"] == "generator" else {}),
                         **(dot_contrast(G) if r["subject"] == "generator" else {})})
    floor = next(r["fid"] for r in rows if r["subject"] == "real test (floor)")
    print("\n| subject | steps | FID | x floor | dots (stride 2) | dots (stride 4) |\n| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['subject']} | {r.get('steps', '')} | {r['fid']:.3f} | {r['fid'] / floor:.1f}x | "
              f"{r.get('dots_2', float('nan')):.4f} | {r.get('dots_4', float('nan')):.4f} |")
    before = next(r["fid"] for r in rows if r["subject"] == "before")
    after = next(r["fid"] for r in rows if r["subject"].startswith("after (default"))
    print(f"\nFID before / after: {before / after:.2f}x")
    (out / "results.json").write_text(json.dumps({"rows": rows, "features": extractor.description}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
