"""Benchmark: memory while streaming an epoch from a large folder of images.

Makes (once) a folder of N PNG files (MNIST digits, cycled, in class sub-folders), then trains one epoch on
it with the data streamed from disk by DataLoader workers (forced with stream=True; a folder this size
would otherwise be decoded once into memory), and samples the resident memory of the trainer and its
workers every second. Flat memory means the streamed path holds no per-image state.

    .venv/bin/python benchmarks/streaming_memory.py --folder /tmp/stream200k --images 200000
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import threading
import time
from pathlib import Path

from PIL import Image


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def tree_rss_mb() -> float:
    """Resident memory of this process and its children (the DataLoader workers)."""
    me = os.getpid()
    total = rss_mb(me)
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    if int(f.read().split(")")[1].split()[1]) == me:
                        total += rss_mb(int(pid))
            except (OSError, IndexError, ValueError):
                continue
    return total


def make_folder(folder: Path, n: int, data_dir: str) -> None:
    from dcgan.data import load_dataset

    mnist = load_dataset("mnist", data_dir, split="train")
    for c in range(10):
        (folder / str(c)).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        j = i % len(mnist)
        buf = io.BytesIO()
        Image.fromarray(mnist.images[j, 0].numpy()).save(buf, format="PNG")
        (folder / str(int(mnist.labels[j])) / f"{i:07d}.png").write_bytes(buf.getvalue())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--folder", default="/tmp/stream200k")
    p.add_argument("--images", type=int, default=200_000)
    p.add_argument("--data-dir", default="../shared/data/mnist")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    folder = Path(args.folder)
    if not folder.exists():
        start = time.perf_counter()
        make_folder(folder, args.images, args.data_dir)
        print(f"wrote {args.images} PNG files in {time.perf_counter() - start:.0f} s")
    from dcgan.data import load_dataset
    from dcgan.models import ModelConfig
    from dcgan.training import TrainConfig, Trainer

    data = load_dataset(str(folder), image_size=32, channels=1, stream=True)
    trainer = Trainer(
        ModelConfig(image_size=32, channels=1, z_dim=32, width=16),
        TrainConfig(data=str(folder), epochs=1, seed=0, workers=args.workers, log_every=50),
        data,
        progress=False,
    )
    samples: list[tuple[float, float]] = []
    done = threading.Event()

    def watch():
        t0 = time.perf_counter()
        while not done.is_set():
            samples.append((time.perf_counter() - t0, tree_rss_mb()))
            time.sleep(1.0)

    threading.Thread(target=watch, daemon=True).start()
    start = time.perf_counter()
    result = trainer.train()
    done.set()
    seconds = time.perf_counter() - start
    rss = [m for _, m in samples]
    tenth = max(1, len(rss) // 10)
    print(
        f"{len(data)} images streamed, {result.step} iterations of 128 in {seconds:.0f} s "
        f"({result.step * 128 / seconds:.0f} images/s, {args.workers} workers)"
    )
    print(
        f"resident memory of trainer + workers: first 10% of the epoch max {max(rss[:tenth]):.0f} MB, "
        f"last 10% max {max(rss[-tenth:]):.0f} MB, peak {max(rss):.0f} MB over {len(rss)} one-second samples"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
