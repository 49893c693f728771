"""Benchmark: which half-life for the averaged G? One MNIST training run, several averages kept beside it.

Trains dcgan's MNIST configuration (`--batch-size`, seed 0, the paper's settings) for `--minutes` of wall
clock on this process's threads, updating one `GeneratorEMA` per half-life in `--half-lives` (thousands of
images, each with the default ramp-up) and one per `--no-rampup` half-life after every step. The
averages never feed back into training, so one run compares them all at the same step. Then each, with
standing statistics, and the trained G (eval-mode batch norm) are scored by the default evaluator: FID of
`--num-samples` samples against as many training images, and the grid score.

Two batch sizes side by side, one core each:

    OMP_NUM_THREADS=1 taskset -c 0 .venv/bin/python benchmarks/ema_half_lives.py --batch-size 64 &
    OMP_NUM_THREADS=1 taskset -c 1 .venv/bin/python benchmarks/ema_half_lives.py --batch-size 128
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from dcgan.data import load_dataset
from dcgan.metrics import build_extractor, resolve_features
from dcgan.metrics.evaluate import evaluate
from dcgan.training import Trainer
from dcgan.training.config import TrainConfig
from dcgan.training.ema import GeneratorEMA

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data" / "mnist"))
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--minutes", type=float, default=12.0)
    p.add_argument("--half-lives", default="10,30,100,300", help="thousands of images, with the default ramp-up")
    p.add_argument("--no-rampup", default="30", help="thousands of images, without a ramp-up")
    p.add_argument("--num-samples", type=int, default=10_000)
    args = p.parse_args()
    trainer = Trainer.from_options(data="mnist", data_dir=args.data_dir, seed=0, epochs=1000, progress=False, batch_size=args.batch_size)
    gan, defaults = trainer.gan, TrainConfig()
    averages = {}
    for text, rampup in ((args.half_lives, defaults.ema_rampup), (args.no_rampup, None)):
        for kimg in (float(v) for v in text.split(",") if v.strip()):
            name = f"averaged, half-life {kimg:g}k images" + ("" if rampup else ", no ramp-up")
            averages[name] = GeneratorEMA(gan.G, kimg * 1000, rampup, defaults.standing_batches, 128, seed=0)
    start, steps, epoch, batches = time.perf_counter(), 0, 0, iter(())
    while time.perf_counter() - start < args.minutes * 60:
        try:
            batch = next(batches)
        except StopIteration:
            batches, epoch = trainer.feed.epoch_batches(epoch, 0), epoch + 1
            batch = next(batches)
        gan.step(batch)
        steps += 1
        for ema in averages.values():
            ema.update(gan.G, args.batch_size)
    real = load_dataset("mnist", args.data_dir, image_size=32, split="train")
    extractor = build_extractor(resolve_features("auto", "mnist")[0], dataset="mnist")
    print(
        f"batch {args.batch_size}: {steps} steps in {args.minutes:g} minutes; {extractor.description}; "
        f"{args.num_samples} samples vs {args.num_samples} training images"
    )
    print("| generator | FID | grid |\n| --- | ---: | ---: |")
    for name, G in [("trained G (eval-mode BN)", gan.G)] + [(n, e.refresh(steps)) for n, e in averages.items()]:
        row = evaluate(G, real, extractor, ["fid", "grid"], num_samples=args.num_samples).rows[0]
        print(f"| {name} | {row['fid']:.4f} | {row['grid']:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
