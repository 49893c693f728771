"""Benchmark: the DCGAN's thin convolutions (one input or output channel) through oneDNN against the
same convolution written as a matmul, in bf16 autocast, channels_last, on this CPU.

D's first layer (1 -> 64 channels, 4x4, stride 2) as `F.unfold` + matmul, and G's last (transposed,
64 -> 1) as matmul + `F.fold`, each timed forward and forward + backward (data and weights) at batch 64,
64x64 images, with the largest relative difference from the native result (bf16 rounding). The training
step keeps the native path unless this shows a gain worth a second code path (BENCHMARKS.md).

    .venv/bin/python benchmarks/thin_layers.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from layer_profile import timed  # noqa: E402


def timed_ms(fn, repeats: int = 20, warmup: int = 3) -> float:
    """Median milliseconds of `fn()` over `repeats` calls after `warmup` (layer_profile's timer)."""
    return 1e3 * timed(fn, repeats, warmup)


def d_first_native(x, w):
    return F.conv2d(x, w, None, 2, 1)  # (B, 64, 32, 32)


def d_first_unfold(x, w):
    b = x.shape[0]
    cols = F.unfold(x.to(torch.bfloat16), 4, padding=1, stride=2)  # (B, 16, 1024)
    return torch.matmul(w.view(64, 16).to(torch.bfloat16), cols).view(b, 64, 32, 32)  # (B, 64, 32, 32)


def g_last_native(h, w):
    return F.conv_transpose2d(h, w, None, 2, 1)  # (B, 1, 64, 64)


def g_last_fold(h, w):
    b = h.shape[0]
    cols = torch.matmul(w.view(64, 16).t().to(torch.bfloat16), h.to(torch.bfloat16).reshape(b, 64, 1024))  # (B, 16, 1024)
    return F.fold(cols.float(), (64, 64), 4, padding=1, stride=2)  # (B, 1, 64, 64)


def compare(label: str, native, matmul, x: torch.Tensor, w: torch.Tensor) -> None:
    """Print forward and forward+backward times of both forms and their largest relative differences."""
    results = {}
    for name, fn in (("native", native), ("matmul", matmul)):
        xx, ww = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = fn(xx, ww)
            grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))

            def both(fn=fn, xx=xx, ww=ww, grad=grad):
                xx.grad = ww.grad = None
                fn(xx, ww).float().backward(grad)

            forward_ms = timed_ms(lambda fn=fn, xx=xx, ww=ww: fn(xx, ww))
            total_ms = timed_ms(both)
            both()
        results[name] = (out.float().detach(), xx.grad.clone(), ww.grad.clone())
        print(f"| {label} | {name} | {forward_ms:.2f} | {total_ms:.2f} |")
    (a, ga_x, ga_w), (b, gb_x, gb_w) = results["native"], results["matmul"]

    def rel(p, q):
        return ((p - q).abs().max() / p.abs().max()).item()

    print(f"| {label} | largest relative difference | output {rel(a, b):.4f} | grad input {rel(ga_x, gb_x):.4f}, grad weight {rel(ga_w, gb_w):.4f} |")


def main() -> int:
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, bf16 autocast, channels_last, batch 64\n")
    print("| layer | form | forward ms | forward + backward ms |")
    print("| --- | --- | ---: | ---: |")
    images = torch.randn(64, 1, 64, 64)
    compare("D conv 1->64, 64x64 -> 32x32", d_first_native, d_first_unfold, images, torch.randn(64, 1, 4, 4) * 0.02)
    hidden = torch.randn(64, 64, 32, 32).contiguous(memory_format=torch.channels_last)
    compare("G convT 64->1, 32x32 -> 64x64", g_last_native, g_last_fold, hidden, torch.randn(64, 1, 4, 4) * 0.02)
    return 0


if __name__ == "__main__":
    sys.exit(main())
