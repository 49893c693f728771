"""Benchmark: generation throughput of an exported generator, PyTorch eager against TorchScript and ONNX Runtime.

Two generators: 64x64 RGB and 32x32 grey (z_dim 100, width 64 by default, so
the 64x64 one is the PyTorch example's G: 3.58M parameters). The files are
built by `dcgan export`'s own code (EXPORT_FORMATS), so this times what users
get. Each backend draws images from the same z at batch 1 (interactive use)
and batch 64 (bulk); the backends are interleaved (eager, TorchScript, ONNX
Runtime, repeated `--rounds` times) so that a slow moment of the machine hits
all of them, each round runs for `--seconds` after `--warmup` calls, and the
median images/s of the rounds is reported with the ratio to eager. ONNX Runtime
gets as many intra-op threads as PyTorch uses. Weights are random: speed does
not depend on them. No assertions; it prints a Markdown table.

    .venv/bin/python benchmarks/export_inference.py                  # both models, batch 1 and 64
    .venv/bin/python benchmarks/export_inference.py --rounds 3 --seconds 0.5 --width 32
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable

import torch

from dcgan.checkpoint import Checkpoint
from dcgan.export import EXPORT_FORMATS, model_card
from dcgan.models import Generator, ModelConfig
from dcgan.sampling import sample_z

MODELS = {"64x64 RGB": dict(image_size=64, channels=3), "32x32 grey": dict(image_size=32, channels=1)}
BATCHES = (1, 64)


def _backends(G: Generator, threads: int) -> dict[str, Callable[[torch.Tensor], object]]:
    """name -> function drawing images for a batch of z (a CPU float32 tensor), built from the export's files."""
    import onnxruntime as ort

    card = model_card(Checkpoint(G.config, {f"G.{k}": v for k, v in G.state_dict().items()}), [])
    with warnings.catch_warnings():  # PyTorch has deprecated TorchScript and says so on every load
        warnings.simplefilter("ignore")
        scripted = torch.jit.load(io.BytesIO(EXPORT_FORMATS["torchscript"].build(G, card, {})), map_location="cpu").eval()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    session = ort.InferenceSession(EXPORT_FORMATS["onnx"].build(G, card, {}), options, providers=["CPUExecutionProvider"])

    def eager(z):
        with torch.inference_mode():
            return G(z)

    def torchscript(z):
        with torch.inference_mode():
            return scripted(z)

    def onnxruntime(z):
        return torch.from_numpy(session.run(["images"], {"z": z.numpy()})[0])

    return {"PyTorch eager (baseline)": eager, "TorchScript": torchscript, "ONNX Runtime": onnxruntime}


def time_backend(run: Callable, z: torch.Tensor, seconds: float, warmup: int) -> float:
    """images/s of `run(z)` called repeatedly for at least `seconds`, after `warmup` calls."""
    for _ in range(warmup):
        run(z)
    calls, start = 0, time.perf_counter()
    while True:
        run(z)
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return calls * len(z) / elapsed


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--width", type=int, default=64, help="G's last hidden channels (default 64, the PyTorch example's ngf)")
    p.add_argument("--z-dim", type=int, default=100)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seconds", type=float, default=1.0, help="timed seconds per backend per round")
    p.add_argument("--warmup", type=int, default=3, help="untimed calls before each timed stretch")
    p.add_argument("--models", default=",".join(MODELS), help=f"comma-separated: {', '.join(MODELS)}")
    args = p.parse_args()

    import onnxruntime

    threads = torch.get_num_threads()
    print(
        f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, {threads} threads "
        f"({os.cpu_count()} cores, {platform.processor() or platform.machine()})"
    )
    print(f"z_dim {args.z_dim}, width {args.width}; median of {args.rounds} rounds of {args.seconds:g} s after {args.warmup} warm-up calls")
    rows = []
    for model_name in [m.strip() for m in args.models.split(",") if m.strip()]:
        torch.manual_seed(0)
        G = Generator(ModelConfig(z_dim=args.z_dim, width=args.width, **MODELS[model_name])).eval()
        params = sum(p.numel() for p in G.parameters())
        backends = _backends(G, threads)
        for batch in BATCHES:
            z = sample_z(batch, G.config.z_dim, G.config.prior, torch.Generator().manual_seed(1))
            with torch.inference_mode():
                reference = G(z)
            diffs = {name: float((run(z) - reference).abs().max()) for name, run in backends.items()}
            results: dict[str, list[float]] = {name: [] for name in backends}
            for r in range(args.rounds):
                for name, run in backends.items():
                    results[name].append(time_backend(run, z, args.seconds, args.warmup))
                print(f"{model_name}, batch {batch}, round {r + 1}: " + ", ".join(f"{n} {v[-1]:,.0f}" for n, v in results.items()), flush=True)
            base = statistics.median(results["PyTorch eager (baseline)"])
            for name, values in results.items():
                med = statistics.median(values)
                rows.append((f"{model_name} ({params / 1e6:.2f}M)", batch, name, med, med / base, diffs[name]))
    print()
    print("| generator | batch | backend | images/s (median) | vs eager | max abs diff vs eager |")
    print("| --- | ---: | --- | ---: | ---: | ---: |")
    for model_name, batch, name, med, ratio, diff in rows:
        print(f"| {model_name} | {batch} | {name} | {med:,.0f} | {ratio:.2f}x | {diff:.1e} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
