"""Benchmark: training images/s of dcgan's trainer against the PyTorch example, same model, same run.

The model is the 64x64 DCGAN (the example's ngf = ndf = 64 is dcgan's default width; G 3.57M and D 2.76M
parameters for one channel) on MNIST upscaled to 64x64, at `--batch-size` (64 by default). Contenders:

- `the PyTorch example, fp32`: benchmarks/baseline_example.py as the example is (NCHW, fp32, PIL
  transforms in 2 DataLoader workers, `.item()` every step);
- `the example, bf16 + channels_last`: the same loop with the two settings a user would add for speed
  (bf16 autocast around the forward passes, both networks and the batch in channels_last);
- `dcgan, fp32 as the example`: dcgan's GAN step in NCHW fp32 with the for-loop Adam, data on the device;
- `dcgan train`: what `dcgan train` picks on this machine (channels_last, fused Adam, bf16 where the CPU
  has it, the default recipe's R1 every 16 D updates and the averaged G);
- `dcgan train, 32x32 MNIST`: the default MNIST model (`dcgan train --data mnist`), for its images/s.

The measurements are interleaved (each contender in turn, `--rounds` times) so that a slow moment of the
machine hits all of them; the median of the rounds is reported with the ratio to the example. Every row
also gives GFLOP/s from the convolutions' counted multiply-accumulates per training image (G: forward,
backward-data, backward-weights; D: three forwards, three backward-data and two backward-weights passes, as
benchmarks/layer_profile.py counts them; batch norm, activations and R1 not counted) and that as a share of
a square matmul timed in the same run in bf16 (fp32 on a CPU without bf16): the peak of the matrix units.

    .venv/bin/python benchmarks/throughput.py --steps 6 --rounds 3       # CPU
    python benchmarks/throughput.py --device cuda --steps 50              # a GPU
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
from dcgan.training.step import cpu_has_bf16  # noqa: E402

EXAMPLE, EXAMPLE_FAST = "the PyTorch example, fp32", "the example, bf16 + channels_last"
DCGAN = {"dcgan, fp32 as the example": dict(precision="fp32", channels_last=False, adam="loop"), "dcgan train": dict()}
MNIST32 = "dcgan train, 32x32 MNIST (the default model)"


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


def training_flops(G: torch.nn.Module, D: torch.nn.Module, z_dim: int, channels: int, size: int, device) -> float:
    """Convolution FLOPs of one training image: G 3 passes (2 for its first layer, whose input is z);
    D 8 passes (6 for its first layer, whose input gradient only G's update needs)."""
    g = [r["macs"] for r in model_summary(G, torch.zeros(1, z_dim, device=device)) if r["macs"]]
    d = [r["macs"] for r in model_summary(D, torch.zeros(1, channels, size, size, device=device)) if r["macs"]]
    return 2 * (3 * sum(g) - g[0] + 8 * sum(d) - 2 * d[0])


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int = 4096, repeats: int = 5) -> float:
    """GFLOP/s of an n x n by n x n matmul in `dtype` on `device` (the best of `repeats`, after one warm-up)."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for i in range(repeats + 1):
        _sync(device)
        start = time.perf_counter()
        a @ b
        _sync(device)
        if i:
            best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default="../shared/data/mnist")
    p.add_argument("--images", type=int, default=10_000, help="MNIST images used (the baseline PNG-encodes them once)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    device = torch.device(args.device)
    bf16 = device.type == "cuda" or cpu_has_bf16()

    data = load_dataset("mnist", args.data_dir, split="train")  # native 28x28
    native = data.images[: args.images]
    mc = ModelConfig(image_size=64, channels=1)
    ours_data = load_dataset("mnist", args.data_dir, split="train")
    ours_data.images = resize_uint8(native, 64)
    mnist32 = load_dataset("mnist", args.data_dir, split="train")
    mnist32.images = resize_uint8(native, 32)

    def trainer(model: ModelConfig, images, **opts) -> Trainer:
        cfg = TrainConfig(data="mnist", batch_size=args.batch_size, seed=0, device=args.device, **opts)
        return Trainer(model, cfg, images, progress=False)

    trainers = {name: trainer(mc, ours_data, **opts) for name, opts in DCGAN.items()}
    trainers[MNIST32] = trainer(ModelConfig(image_size=32, channels=1), mnist32)
    kw = dict(nc=1, image_size=64, batch_size=args.batch_size, workers=args.workers, device=args.device)
    baselines = {
        EXAMPLE: baseline_example.BaselineTrainer(native, **kw),
        EXAMPLE_FAST: baseline_example.BaselineTrainer(native, bf16=True, channels_last=True, **kw),
    }
    peak_dtype = torch.bfloat16 if bf16 else torch.float32
    peak = matmul_peak(device, peak_dtype)
    t = trainers["dcgan train"]
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}"
        + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
        + f"; dcgan train computes in {t.gan.precision}"
    )
    print(f"model 64x64x1, width 64, batch {args.batch_size}; {args.rounds} rounds of {args.steps} timed steps after {args.warmup} warm-up steps")
    print(f"matmul 4096x4096 in {str(peak_dtype).removeprefix('torch.')}: {peak:,.0f} GFLOP/s (the peak)")

    results: dict[str, list[float]] = {n: [] for n in (*baselines, *trainers)}
    for r in range(args.rounds):
        for name, b in baselines.items():
            results[name].append(b.train_steps(args.warmup + args.steps, warmup=args.warmup)["images_per_s"])
        for name, tr in trainers.items():
            results[name].append(time_trainer(tr, args.steps, args.warmup))
        print(f"round {r + 1}: " + ", ".join(f"{n} {v[-1]:.1f}" for n, v in results.items()), flush=True)

    flops = training_flops(t.G, t.D, mc.z_dim, 1, 64, device)
    m = trainers[MNIST32]
    flops32 = training_flops(m.G, m.D, 100, 1, 32, device)
    base, fast = statistics.median(results[EXAMPLE]), statistics.median(results[EXAMPLE_FAST])
    print()
    print("| trainer | images/s (median) | vs the example | vs the example in bf16 + channels_last | GFLOP/s | of the matmul peak |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, values in results.items():
        med = statistics.median(values)
        gf = med * (flops32 if name == MNIST32 else flops) / 1e9
        ratios = f"{med / base:.2f}x | {med / fast:.2f}x" if name != MNIST32 else "| "
        print(f"| {name} | {med:,.1f} | {ratios} | {gf:,.0f} | {100 * gf / peak:.0f}% |")
    print(f"\n(convolution FLOPs per training image, counted: 64x64 {flops / 1e9:.2f} GFLOP, 32x32 {flops32 / 1e9:.3f} GFLOP)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
