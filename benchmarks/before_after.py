"""Benchmark: training images/s of two source trees of dcgan, interleaved in one run (a change must not slow training).

Each round times, in a fresh process per tree, the trainer that `benchmarks/throughput.py` times as `default`
(what `dcgan train` does on this machine), on the same data and model; the trees alternate within every round so
that a slow moment of the machine hits both. The median over rounds is reported, with the ratio after / before.

    git worktree add /tmp/before 64f8a4c
    .venv/bin/python benchmarks/before_after.py --before /tmp/before/src --rounds 5            # 64x64, batch 128
    .venv/bin/python benchmarks/before_after.py --before /tmp/before/src --image-size 32 --batch 64  # the MNIST default
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
AFTER = HERE.parent / "src"

# Runs in a child process whose sys.path starts with one tree's src/: only the API both trees share.
CHILD = """
import json, sys, time
import torch
from dcgan.data import load_dataset
from dcgan.imaging import resize_uint8
from dcgan.models import ModelConfig
from dcgan.training import TrainConfig, Trainer
import dcgan
a = json.loads(sys.argv[1])
data = load_dataset("mnist", a["data_dir"], split="train")
data.images = resize_uint8(data.images[: a["images"]], a["image_size"])
trainer = Trainer(ModelConfig(image_size=a["image_size"], channels=1), TrainConfig(data="mnist", batch_size=a["batch"], seed=0),
                  data, progress=False)
order = trainer.feed.epoch_order(0)
for i in range(a["warmup"]):
    trainer.gan.step(trainer.feed.batch(order, i % trainer.steps_per_epoch))
start = time.perf_counter()
for i in range(a["steps"]):
    trainer.gan.step(trainer.feed.batch(order, (a["warmup"] + i) % trainer.steps_per_epoch))
elapsed = time.perf_counter() - start
print(json.dumps({"images_per_s": a["steps"] * a["batch"] / elapsed, "module": dcgan.__file__}))
"""


def run_tree(src: Path, args: argparse.Namespace) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src)}
    params = json.dumps({k: getattr(args, k) for k in ("data_dir", "images", "image_size", "batch", "steps", "warmup")})
    out = subprocess.run([sys.executable, "-c", CHILD, params], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", type=Path, required=True, help="the src/ folder of the tree to compare with (a git worktree)")
    p.add_argument("--after", type=Path, default=AFTER, help="the src/ folder of the tree under test (default: this one)")
    p.add_argument("--data-dir", default=str(HERE.parent.parent / "shared" / "data" / "mnist"))
    p.add_argument("--images", type=int, default=5_000)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    results: dict[str, list[float]] = {name: [] for name in trees}
    for r in range(args.rounds):
        order = list(trees) if r % 2 == 0 else list(reversed(trees))  # alternate who goes first
        for name in order:
            got = run_tree(trees[name], args)
            if not got["module"].startswith(str(trees[name])):
                raise SystemExit(f"{name}: imported {got['module']}, not the tree at {trees[name]}")
            results[name].append(got["images_per_s"])
        print(f"round {r + 1}: " + ", ".join(f"{n} {v[-1]:.1f}" for n, v in results.items()), flush=True)
    before, after = (statistics.median(results[n]) for n in ("before", "after"))
    print(
        f"\n{args.image_size}x{args.image_size}x1, batch {args.batch}, {args.steps} timed steps after {args.warmup}, median of {args.rounds} rounds"
    )
    print("| tree | images/s (median) | after / before |\n| --- | ---: | ---: |")
    print(f"| before ({trees['before']}) | {before:.1f} | |\n| after ({trees['after']}) | {after:.1f} | {after / before:.3f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
