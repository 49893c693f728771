"""Benchmark: training images/s of dcgan's trainer against the PyTorch example, same model, same run.

Both train the 64x64 DCGAN (G 3.57M and D 2.76M parameters for one channel:
the example's ngf = ndf = 64 is dcgan's default width) on MNIST upscaled to 64x64
at batch 128. The measurements are interleaved (baseline, then each dcgan
configuration, repeated `--rounds` times) so that a slow moment of the machine
hits all of them; the median of the rounds is reported with the ratio to the
baseline. dcgan configurations:

- `fp32, as the example`: NCHW, the for-loop Adam, fp32; the data already on the device.
- `default`: what `dcgan train` does here (channels_last, fused Adam; bf16 only on CUDA).
- `bf16`: the default plus bf16 autocast (also on CPU).

On a GPU it also prints the achieved FLOP/s from the models' counted
multiply-accumulates (training ~ 3x G's forward and 6x D's forward per image:
G forward + backward, D forward on real, fake and fake-for-G plus three backward
passes) against the device's bf16 dense peak given by --peak-tflops.

    .venv/bin/python benchmarks/throughput.py --steps 6 --rounds 3            # CPU
    python benchmarks/throughput.py --device cuda --steps 50 --peak-tflops 989 # H200
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import baseline_example  # noqa: E402
from dcgan.data import load_dataset  # noqa: E402
from dcgan.imaging import resize_uint8  # noqa: E402
from dcgan.models import ModelConfig, model_summary  # noqa: E402
from dcgan.training import TrainConfig, Trainer  # noqa: E402

CONFIGS = {"fp32, as the example": dict(precision="fp32", channels_last=False, adam="loop"), "default": dict(), "bf16": dict(precision="bf16")}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_trainer(trainer: Trainer, steps: int, warmup: int) -> float:
    """images/s of `steps` iterations after `warmup`, data batches drawn on the device as in training."""
    order = trainer.feed.epoch_order(0)
    for i in range(warmup):
        trainer.gan.step(trainer.feed.batch(order, i % trainer.steps_per_epoch))
    _sync(trainer.device)
    start = time.perf_counter()
    for i in range(steps):
        trainer.gan.step(trainer.feed.batch(order, (warmup + i) % trainer.steps_per_epoch))
    _sync(trainer.device)
    return steps * trainer.config.batch_size / (time.perf_counter() - start)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default="../shared/data/mnist")
    p.add_argument("--images", type=int, default=10_000, help="MNIST images used (the baseline PNG-encodes them once)")
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--peak-tflops", type=float, default=None, help="the device's dense bf16 peak, for the FLOP/s fraction")
    args = p.parse_args()
    device = torch.device(args.device)

    data = load_dataset("mnist", args.data_dir, split="train")  # native 28x28
    native = data.images[: args.images]
    mc = ModelConfig(image_size=64, channels=1)
    ours_data = load_dataset("mnist", args.data_dir, split="train")
    ours_data.images = resize_uint8(native, 64)
    trainers = {
        name: Trainer(mc, TrainConfig(data="mnist", batch_size=128, seed=0, device=args.device, **opts), ours_data, progress=False)
        for name, opts in CONFIGS.items()
    }
    baseline = baseline_example.BaselineTrainer(native, nc=1, image_size=64, batch_size=128, workers=args.workers, device=args.device)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}"
        + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
    )
    print(f"model 64x64x1, width 64, batch 128; {args.rounds} rounds of {args.steps} timed steps after {args.warmup} warm-up steps")

    results: dict[str, list[float]] = {"PyTorch example (baseline)": [], **{n: [] for n in trainers}}
    for r in range(args.rounds):
        results["PyTorch example (baseline)"].append(baseline.train_steps(args.steps, warmup=args.warmup)["images_per_s"])
        for name, t in trainers.items():
            results[name].append(time_trainer(t, args.steps, args.warmup))
        print(f"round {r + 1}: " + ", ".join(f"{n} {v[-1]:.0f}" for n, v in results.items()), flush=True)

    g = sum(r["macs"] for r in model_summary(trainers["default"].G, torch.zeros(1, mc.z_dim, device=device)))
    d = sum(r["macs"] for r in model_summary(trainers["default"].D, torch.zeros(1, 1, 64, 64, device=device)))
    flops_per_image = 2 * (3 * g + 6 * d)
    base = statistics.median(results["PyTorch example (baseline)"])
    print()
    print("| trainer | images/s (median) | vs baseline |" + (" TFLOP/s | of bf16 peak |" if args.peak_tflops else ""))
    print("| --- | ---: | ---: |" + (" ---: | ---: |" if args.peak_tflops else ""))
    for name, values in results.items():
        med = statistics.median(values)
        row = f"| {name} | {med:,.0f} | {med / base:.2f}x |"
        if args.peak_tflops:
            tf = med * flops_per_image / 1e12
            row += f" {tf:.1f} | {100 * tf / args.peak_tflops:.1f}% |"
        print(row)
    print(f"\n(training FLOPs per image, from counted MACs: {flops_per_image / 1e9:.2f} GFLOP)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
