"""Benchmark: what one request to `dcgan serve` costs, against the bare library call it wraps.

For each request the page makes (a grid of samples, a walk, vector arithmetic,
a slider move, an inversion), the same work is timed twice in one run:

- `library`: the pure function on the generator (generate, interpolate,
  vector_arithmetic, move_along + generate, invert), tensors in and out;
- `HTTP`: a real request to a real uvicorn server on 127.0.0.1, from a client
  in this process: JSON in, JSON with PNG data URLs out, through validation,
  the model gate and the page's pictures (numbered sheet, walk strip + GIF,
  arithmetic figure).

The two are interleaved `--rounds` times and the medians are reported with
their ratio, the price of serving. Without a checkpoint a freshly initialised
generator of `--image-size` is used (the cost does not depend on training).

    .venv/bin/python benchmarks/serve_latency.py runs/mnist --rounds 7
    .venv/bin/python benchmarks/serve_latency.py --image-size 64 --channels 3
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import time
import urllib.request

import torch

from dcgan.checkpoint import Checkpoint, load_checkpoint
from dcgan.explore.latent import interpolate, invert, latent_sheet, move_along, vector_arithmetic
from dcgan.imaging import tensor_to_pil
from dcgan.models import Generator, ModelConfig
from dcgan.sampling import generate
from dcgan.server import Explorer, bind_socket, create_app, running


def _fresh_checkpoint(size: int, channels: int) -> Checkpoint:
    config = ModelConfig(image_size=size, channels=channels)
    torch.manual_seed(0)
    G = Generator(config)
    return Checkpoint(config, {f"G.{k}": v for k, v in G.state_dict().items()}, {"step": 0})


def _post(url: str, body, raw: bool = False) -> dict:
    data = body if raw else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/octet-stream" if raw else "application/json"})
    with urllib.request.urlopen(request, timeout=600) as r:
        return json.load(r)


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=600) as r:
        return json.load(r)


def _ms(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", nargs="?", help="a run directory or checkpoint (default: a fresh generator)")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--invert-steps", type=int, default=300)
    args = parser.parse_args()

    ckpt = load_checkpoint(args.checkpoint) if args.checkpoint else _fresh_checkpoint(args.image_size, args.channels)
    explorer = Explorer(ckpt)
    with bind_socket("127.0.0.1", 0) as sock, running(create_app(explorer), sock) as url:
        measure(explorer, url.rstrip("/"), args.rounds, args.invert_steps)


def measure(explorer: Explorer, base: str, rounds: int, steps: int) -> None:
    """Time each request as a library call and over HTTP to `base`, interleaved, and print the medians."""
    G, config = explorer.G, explorer.config

    sheet = latent_sheet(config, 0, 64)
    ref = lambda i: {"seed": 0, "n": 64, "index": i}  # noqa: E731
    directions = explorer.directions()  # fitted once, as the page's first slider use does
    k = directions.directions.shape[0]
    amounts = [1.0] + [0.0] * (k - 1)
    target = generate(G, sheet[5:6])[0]  # a generated image, so the inversion has an exact answer
    buf = io.BytesIO()
    tensor_to_pil(target).save(buf, format="PNG")
    upload = buf.getvalue()

    cases = [
        ("grid of 64 samples", lambda: generate(G, latent_sheet(config, 0, 64)), lambda: _post(f"{base}/api/sheet", {"seed": 0, "n": 64})),
        (
            "walk, 10 steps",
            lambda: interpolate(G, sheet[3:4], sheet[17:18], 10),
            lambda: _post(f"{base}/api/walk", {"a": ref(3), "b": ref(17), "steps": 10}),
        ),
        (
            "arithmetic, 3+3+3 exemplars",
            lambda: vector_arithmetic(G, sheet[0:3], sheet[3:6], sheet[6:9]),
            lambda: _post(f"{base}/api/arithmetic", {"a": [ref(0), ref(1), ref(2)], "b": [ref(3), ref(4), ref(5)], "c": [ref(6), ref(7), ref(8)]}),
        ),
        (
            "slider move",
            lambda: generate(G, move_along(sheet[1], directions.directions, amounts, config.prior).unsqueeze(0)),
            lambda: _post(f"{base}/api/slide", {"base": ref(1), "amounts": amounts}),
        ),
        (
            f"inversion, 4 restarts x {steps} steps",
            lambda: invert(G, target, restarts=4, steps=steps),
            lambda: _post(f"{base}/api/invert?restarts=4&steps={steps}", upload, raw=True),
        ),
    ]
    info = _get(f"{base}/api/info")
    print(
        f"model: {info['image_size']}x{info['image_size']}x{info['channels']}, z {info['z_dim']}, step {info['step']}; "
        f"{torch.get_num_threads()} CPU threads; median of {rounds} rounds, after one warm-up"
    )
    print(f"{'request':<36} {'library ms':>11} {'HTTP ms':>9} {'ratio':>7}")
    for name, library, http in cases:
        library(), http()  # warm-up
        lib_times, http_times = [], []
        for _ in range(rounds):  # interleaved, so a slow moment of the machine hits both
            lib_times.append(_ms(library))
            http_times.append(_ms(http))
        lib, web = statistics.median(lib_times), statistics.median(http_times)
        print(f"{name:<36} {lib:>11.1f} {web:>9.1f} {web / lib:>6.2f}x")


if __name__ == "__main__":
    main()
