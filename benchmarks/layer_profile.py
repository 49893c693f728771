"""Benchmark: where a training step's convolution time goes, per layer and per pass, on this CPU.

Every convolution of the DCGAN pair (G's transposed ones and D's strided ones) is timed on its own in
the three passes training runs it in: forward, backward-data (the gradient for its input) and
backward-weights (the gradient for its weight), through `aten.convolution` and
`aten.convolution_backward` as autograd calls them, channels_last, in bf16 where the CPU has it (as
`dcgan train` picks) or in the dtype given. Each row gives the milliseconds, the GFLOP and GFLOP/s of
that pass beside a square bf16 (or fp32) matmul timed in the same run: the peak the matrix units reach.

One training iteration runs each pass a known number of times (GANStep.step, R1 aside): G forward once,
backward-data once (all but its first layer, whose input is z) and backward-weights once; D forward three
times (real, fake, and the fake again for G's update), backward-weights twice (real and fake: in G's update
D's weights need no gradient) and backward-data three times (every pass sends its gradient down through D's
layers; only G's update needs it out of D's first layer, towards G). The last table weighs the per-pass
times with those counts: the share of the iteration's convolution time each layer takes, and the
iteration's convolution-only images/s and GFLOP/s. Last, the whole training step (`GANStep.step` as
`dcgan train` builds it, R1 and the averaged G's update included) is timed on batches of the same size: the convolutions' share of it is what the rest of the step (batch norm, activations, casts, Adam)
leaves.

    .venv/bin/python benchmarks/layer_profile.py                       # 64x64x1, batch 64, bf16 where the CPU has it
    .venv/bin/python benchmarks/layer_profile.py --image-size 32 --dtype fp32
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

from dcgan.models import ModelConfig, build_models
from dcgan.training import Trainer
from dcgan.training.step import cpu_has_bf16

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import matmul_peak, time_trainer  # noqa: E402

DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


def timed(fn, repeats: int, warmup: int = 2) -> float:
    """Median seconds of `fn()` over `repeats` calls after `warmup`."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def conv_layers(model: nn.Module, example: torch.Tensor) -> list[tuple[str, nn.Module, tuple]]:
    """(name, conv module, input shape) of every Conv2d / ConvTranspose2d, in forward order."""
    found: list[tuple[str, nn.Module, tuple]] = []
    hooks = [
        m.register_forward_hook(lambda mod, inputs, out, name=name: found.append((name, mod, tuple(inputs[0].shape))))
        for name, m in model.named_modules()
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))
    ]
    with torch.no_grad():
        model.eval()
        model(example)
    for h in hooks:
        h.remove()
    return found


def profile_layer(conv: nn.Module, in_shape: tuple, dtype: torch.dtype, repeats: int) -> dict:
    """Seconds of forward, backward-data and backward-weights of one convolution at `in_shape`, and its MACs."""
    transposed = isinstance(conv, nn.ConvTranspose2d)
    weight = conv.weight.detach().to(dtype).contiguous(memory_format=torch.channels_last)
    x = torch.randn(in_shape, dtype=dtype).contiguous(memory_format=torch.channels_last)
    stride, padding, dilation = list(conv.stride), list(conv.padding), list(conv.dilation)
    out_pad = list(conv.output_padding) if transposed else [0, 0]
    bias = conv.bias.detach().to(dtype) if conv.bias is not None else None

    def forward():
        return torch.ops.aten.convolution(x, weight, bias, stride, padding, dilation, transposed, out_pad, 1)

    out = forward()
    grad = torch.randn_like(out).contiguous(memory_format=torch.channels_last)
    bias_sizes = [weight.shape[1] if transposed else weight.shape[0]] if bias is not None else None

    def backward(mask):
        return lambda: torch.ops.aten.convolution_backward(grad, x, weight, bias_sizes, stride, padding, dilation, transposed, out_pad, 1, mask)

    # MACs of one pass: every output element of the forward needs (input channels x kernel area) of them
    # (for a transposed conv, every input element times output channels x kernel area); the backward passes
    # do as many.
    k = weight.shape[2] * weight.shape[3]
    macs = x.numel() * weight.shape[1] * k if transposed else out.numel() * weight.shape[1] * k
    with torch.no_grad():
        return {
            "forward": timed(forward, repeats),
            "backward-data": timed(backward([True, False, False]), repeats),
            "backward-weights": timed(backward([False, True, bias is not None]), repeats),
            "macs": macs,
            "out_shape": tuple(out.shape),
        }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--channels", type=int, default=1)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--dtype", choices=("auto", *DTYPES), default="auto", help="auto: bf16 where the CPU has it, as dcgan train picks")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--matmul-n", type=int, default=4096)
    p.add_argument("--step-iterations", type=int, default=16, help="iterations per round of the whole-step timing (16: one R1 step in each)")
    args = p.parse_args()
    name = args.dtype if args.dtype != "auto" else ("bf16" if cpu_has_bf16() else "fp32")
    dtype = DTYPES[name]
    mc = ModelConfig(image_size=args.image_size, channels=args.channels, width=args.width)
    G, D = build_models(mc, seed=0)
    B = args.batch_size
    peak = matmul_peak(torch.device("cpu"), dtype, args.matmul_n)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {name}, channels_last; model {args.image_size}x{args.image_size}x{args.channels}, width {args.width}, batch {B}"
    )
    print(f"matmul {args.matmul_n}x{args.matmul_n} in {name}: {peak:,.0f} GFLOP/s (the peak below)\n")

    # (layer label, times, passes per iteration: {pass: count})
    rows = []
    for model_name, model, example in (("G", G, torch.zeros(2, mc.z_dim, 1, 1)), ("D", D, torch.zeros(2, mc.channels, mc.image_size, mc.image_size))):
        for i, (lname, conv, shape) in enumerate(conv_layers(model, example)):
            shape = (B, *shape[1:])
            r = profile_layer(conv, shape, dtype, args.repeats)
            first = i == 0  # its input is z (G) or the images (D): no gradient for it in training
            if model_name == "G":
                counts = {"forward": 1, "backward-data": 0 if first else 1, "backward-weights": 1}
            else:
                counts = {"forward": 3, "backward-data": 1 if first else 3, "backward-weights": 2}
            label = f"{model_name} {lname}: {'convT' if isinstance(conv, nn.ConvTranspose2d) else 'conv'} {conv.in_channels}->{conv.out_channels}, {shape[2]}x{shape[3]} -> {r['out_shape'][2]}x{r['out_shape'][3]}"
            rows.append((label, r, counts))

    print("| layer | pass | ms | GFLOP | GFLOP/s | of the matmul peak |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for label, r, _ in rows:
        gflop = 2 * r["macs"] / 1e9
        for pass_name in ("forward", "backward-data", "backward-weights"):
            s = r[pass_name]
            print(f"| {label} | {pass_name} | {1e3 * s:.2f} | {gflop:.3f} | {gflop / s:,.0f} | {100 * gflop / s / peak:.0f}% |")

    total = sum(r[p] * c for _, r, counts in rows for p, c in counts.items())
    flops = sum(2 * r["macs"] * c for _, r, counts in rows for c in counts.values())
    print("\n| layer | share of the iteration's convolution time | ms per iteration |")
    print("| --- | ---: | ---: |")
    for label, r, counts in rows:
        s = sum(r[p] * c for p, c in counts.items())
        print(f"| {label} | {100 * s / total:.0f}% | {1e3 * s:.1f} |")
    print(
        f"\nconvolutions alone: {1e3 * total:.1f} ms per iteration of batch {B}, {B / total:,.0f} images/s, "
        f"{flops / total / 1e9:,.0f} GFLOP/s = {100 * flops / total / 1e9 / peak:.0f}% of the matmul peak "
        f"({flops / B / 1e9:.2f} GFLOP of convolution per training image)"
    )
    step = whole_step(mc, B, name, args.step_iterations)
    print(
        f"the whole training step (GANStep.step, median of {args.step_iterations} iterations in 3 rounds): "
        f"{1e3 * step:.1f} ms per iteration, {B / step:,.0f} images/s; the convolutions alone are {100 * total / step:.0f}% of it"
    )
    return 0


def whole_step(mc: ModelConfig, batch_size: int, precision: str, iterations: int) -> float:
    """Median seconds of one `GANStep.step` (as `dcgan train` builds it for this model) over 3 rounds of
    `iterations`, timed by throughput.py's `time_trainer` on the digits at this size."""
    trainer = Trainer.from_options(
        data="digits", steps=1, device="cpu", progress=False, seed=0, precision=precision,
        image_size=mc.image_size, channels=mc.channels, width=mc.width, batch_size=batch_size,
    )  # fmt: skip
    images_per_s = [time_trainer(trainer, iterations, warmup=3) for _ in range(3)]
    return batch_size / statistics.median(images_per_s)


if __name__ == "__main__":
    sys.exit(main())
