"""Benchmark: wall-clock to reach a classifier-FID threshold on MNIST, dcgan's default against the PyTorch example.

One run, on this machine, one after the other:
- dcgan's default MNIST configuration (32x32, the paper's hyper-parameters,
  the fast path: data on the device, channels_last, fused Adam, bf16 where the
  CPU has it), and
- the PyTorch example's configuration (64x64, MNIST upscaled per item by PIL in
  DataLoader workers, `.item()` every step; benchmarks/baseline_example.py).

Both are scored every `--eval-every` iterations with the same evaluation
classifier (FID of 2,000 samples against 2,000 real training images, classifier
features; 64x64 samples are resized to the classifier's 32x32). The clock counts
training only, not the evaluations. It stops at the first evaluation under the
threshold, or at `--max-seconds`.

    .venv/bin/python benchmarks/time_to_quality.py --threshold 10
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import baseline_example  # noqa: E402

from dcgan.data import default_cache_dir, load_dataset  # noqa: E402
from dcgan.metrics import build_extractor, reference_features  # noqa: E402
from dcgan.metrics.scores import fid_from_features  # noqa: E402
from dcgan.training import Trainer  # noqa: E402


@torch.no_grad()
def fid_of(sample_fn, extractor, real_features, n: int = 2000) -> float:
    images = torch.cat([sample_fn(500, seed) for seed in range(n // 500)])
    return fid_from_features(real_features, extractor.features(images))


def race(name: str, step_fn, sample_fn, extractor, real, eval_every: int, threshold: float, max_seconds: float) -> dict:
    trained, steps, history = 0.0, 0, []
    while trained < max_seconds:
        start = time.perf_counter()
        for _ in range(eval_every):
            step_fn()
        trained += time.perf_counter() - start
        steps += eval_every
        fid = fid_of(sample_fn, extractor, real)
        history.append((steps, round(trained, 1), round(fid, 2)))
        print(f"{name}: step {steps}, {trained:.0f} s of training, FID {fid:.2f}", flush=True)
        if fid <= threshold:
            return {"name": name, "reached": True, "seconds": trained, "steps": steps, "fid": fid, "history": history}
    return {"name": name, "reached": False, "seconds": trained, "steps": steps, "fid": history[-1][2], "history": history}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default="../shared/data/mnist")
    p.add_argument("--threshold", type=float, default=10.0)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--max-seconds", type=float, default=900.0)
    p.add_argument("--precision", default="auto", help="dcgan's precision (auto, fp32, bf16)")
    p.add_argument("--skip-baseline", action="store_true")
    args = p.parse_args()
    extractor = build_extractor("classifier", dataset="mnist")
    real32 = load_dataset("mnist", args.data_dir, image_size=32, split="train")
    real = reference_features(real32, extractor, 2000, cache_dir=default_cache_dir() / "reference")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; threshold: classifier FID <= {args.threshold} "
          f"(2,000 vs 2,000), evaluated every {args.eval_every} iterations; {extractor.description}")

    trainer = Trainer.from_options(data="mnist", data_dir=args.data_dir, seed=0, epochs=100, progress=False, precision=args.precision)
    batches, epoch = iter(()), 0

    def ours_step():
        nonlocal batches, epoch
        try:
            real_batch = next(batches)
        except StopIteration:
            batches = trainer.feed.epoch_batches(epoch, 0)
            epoch += 1
            real_batch = next(batches)
        trainer.gan.step(real_batch)

    def ours_sample(n, seed):
        from dcgan.sampling import generate, sample_z

        # What dcgan samples by default: the averaged G with standing statistics (the trained G with --ema off).
        G = trainer.gan.sampling_generator(trainer.gan.ema.updates if trainer.gan.ema else 0)  # refreshed once per step
        return generate(G, sample_z(n, 100, "normal", torch.Generator().manual_seed(1000 + seed)))

    results = [race(f"dcgan default (32x32, bf16={trainer.gan.bf16})", ours_step, ours_sample, extractor, real,
                    args.eval_every, args.threshold, args.max_seconds)]
    if not args.skip_baseline:
        native = load_dataset("mnist", args.data_dir, split="train").images
        base = baseline_example.BaselineTrainer(native, nc=1, image_size=64, batch_size=128, workers=2, seed=0)
        results.append(race("PyTorch example (64x64)", lambda: base.train_steps(1), base.sample, extractor, real,
                            args.eval_every, args.threshold, args.max_seconds))
    print()
    print("| configuration | reached FID <= %g | iterations | training seconds | FID then |" % args.threshold)
    print("| --- | --- | ---: | ---: | ---: |")
    for r in results:
        print(f"| {r['name']} | {'yes' if r['reached'] else 'no (stopped at the time limit)'} | {r['steps']} | {r['seconds']:.0f} | {r['fid']:.2f} |")
    if len(results) == 2 and results[0]["reached"]:
        print(f"\nspeed-up in time to quality: {results[1]['seconds'] / results[0]['seconds']:.1f}x"
              + ("" if results[1]["reached"] else " (at least: the baseline had not reached the threshold)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
