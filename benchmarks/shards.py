"""Benchmark: streaming from WebDataset shards against the streamed folder, and 2-process DDP over shards.

1. Streaming. Makes (once) a folder of N PNG files (MNIST digits, cycled, in class sub-folders) and
   `write_shards` of it (the folder's bytes unchanged, shuffled, --shard-size samples a shard), then reads
   one full epoch of `DataFeed.epoch_batches` from each: the folder streamed by DataLoader workers
   (`stream=True`) and the shards, same batch, same workers, on CPU, no model (this times the data path
   alone: read, decode, resize, collate, scale to [-1, 1]). Reports images/s, the ratio shards/folder,
   and the resident memory of the process and its workers at 10%, 50% and 100% of the epoch and its
   peak (sampled every second in a thread) to show that it stays flat. tree_rss_mb counts the pages a
   forked worker shares with the trainer in both, and a shard worker that has read all its parts exits
   before the last batch: compare one path's figures across its epoch rather than the paths' levels.
   Both paths are read from a warm page cache (the data was just written); --repeat reads them again in
   reverse order, to show what going first gains or loses.
2. DDP. `dcgan train` on the shards for --steps iterations of batch 64 per process, with 1 process and
   with `--nproc 2` (gloo DDP, so a step of the 2-process run is 2 x 64 images), on the same cores.
   images/s is read from the runs' metrics.jsonl, leaving out the first log window (start-up, warm-up).

The one-off cost of building the folder and the shards is printed separately, with their sizes on disk.

    .venv/bin/python benchmarks/shards.py                                    # 200,000 images, shards of 5000
    .venv/bin/python benchmarks/shards.py --images 4000 --shard-size 500 --steps 20   # a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dcgan.data import ImageData, load_dataset  # noqa: E402
from dcgan.data.shard_writer import write_shards  # noqa: E402
from dcgan.data.shards import usable_workers  # noqa: E402
from dcgan.training.distributed import DistInfo  # noqa: E402
from dcgan.training.feed import DataFeed  # noqa: E402
from streaming_memory import make_folder, tree_rss_mb  # noqa: E402

FRACTIONS = (0.1, 0.5, 1.0)  # points of the epoch at which the resident memory is reported


# --------------------------------------------------------------------------- #
# The machine and the data on disk
# --------------------------------------------------------------------------- #
def cpu_model() -> tuple[str, bool]:
    """The CPU's model name and whether it has the bf16 instructions (`--precision auto` then trains in bf16)."""
    name, flags = "unknown", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and name == "unknown":
                    name = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return name, "avx512_bf16" in flags


def disk_usage(path: Path) -> tuple[int, int, int]:
    """(files, apparent bytes, allocated bytes): 200k small PNGs take far more blocks than bytes, shards do not."""
    files, apparent, allocated = 0, 0, 0
    stack = [path]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for e in entries:
                if e.is_dir(follow_symlinks=False):
                    stack.append(Path(e.path))
                elif e.is_file(follow_symlinks=False):
                    st = e.stat(follow_symlinks=False)
                    files, apparent, allocated = files + 1, apparent + st.st_size, allocated + st.st_blocks * 512
    return files, apparent, allocated


def describe_size(path: Path) -> str:
    files, apparent, allocated = disk_usage(path)
    return f"{files:,} files, {apparent / 2**20:,.0f} MB of data, {allocated / 2**20:,.0f} MB allocated"


class Progress:
    """A line every 10% of a long build, so that a 200,000-image build is not silent for minutes."""

    def __init__(self, what: str, total: int):
        self.what, self.total, self.done, self.next = what, total, 0, total // 10

    def __call__(self, n: int) -> None:
        self.done += n
        if self.done >= self.next and self.total >= 10:
            print(f"  {self.what}: {self.done:,} / {self.total:,}", flush=True)
            self.next += self.total // 10


def build_folder(folder: Path, n: int, data_dir: str) -> float | None:
    """Seconds to write the folder, or None when it is there already (built into a temporary name first,
    so that an interrupted build is never taken for a finished one)."""
    if folder.is_dir():
        return None
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    print(f"writing {n:,} PNG files to {folder} (once)", flush=True)
    start = time.perf_counter()
    make_folder(partial, n, data_dir)
    seconds = time.perf_counter() - start
    partial.rename(folder)
    return seconds


def build_shards(folder: Path, out: Path, shard_size: int) -> float | None:
    """Seconds to write the shards, or None when they are there already (`write_shards` renames into place at the end)."""
    if (out / "shards.json").is_file():
        return None
    total = sum(1 for _ in folder.rglob("*.png"))
    print(f"writing shards of {shard_size:,} samples to {out} (once)", flush=True)
    start = time.perf_counter()
    write_shards(str(folder), out, shard_size=shard_size, seed=0, progress=Progress("samples sharded", total))
    return time.perf_counter() - start


# --------------------------------------------------------------------------- #
# One epoch of the data path
# --------------------------------------------------------------------------- #
@dataclass
class EpochResult:
    path: str
    images: int
    open_s: float  # load_dataset: listing the folder / reading the shard index
    first_batch_s: float  # worker start-up until the first batch
    seconds: float  # the whole epoch, first batch included (what training sees)
    rss_at: dict[float, float] = field(default_factory=dict)  # fraction of the epoch -> MB
    peak_mb: float = 0.0
    samples: int = 0  # one-second RSS samples taken

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds


def rss_sampler(samples: list[float], done: threading.Event) -> threading.Thread:
    """A thread that appends tree_rss_mb() every second until `done` is set."""

    def watch() -> None:
        while not done.is_set():
            samples.append(tree_rss_mb())
            done.wait(1.0)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def read_epoch(name: str, load, batch_size: int, workers: int) -> EpochResult:
    """Iterate one epoch of DataFeed.epoch_batches(0, 0) on CPU; `load` makes the ImageData (timed apart)."""
    start = time.perf_counter()
    data: ImageData = load()
    open_s = time.perf_counter() - start
    feed = DataFeed(data, batch_size, seed=0, device=torch.device("cpu"), dist=DistInfo(rank=0, world_size=1), workers=workers)
    steps = feed.steps_per_epoch
    # The batches after which memory is read: the inline reading gives the exact point of the epoch,
    # the thread's once-a-second readings the peak between them.
    marks = {max(1, round(f * steps)): f for f in FRACTIONS}
    samples: list[float] = []
    done = threading.Event()
    thread = rss_sampler(samples, done)
    result = EpochResult(name, steps * batch_size, open_s, 0.0, 0.0)
    start = time.perf_counter()
    n = 0
    for images, _labels in feed.epoch_batches(0, 0):  # noqa: B007  (the last batch is used after the loop)
        n += 1
        if n == 1:
            result.first_batch_s = time.perf_counter() - start
        if n in marks:
            result.rss_at[marks[n]] = tree_rss_mb()
    result.seconds = time.perf_counter() - start
    done.set()
    thread.join()
    assert n == steps and images.shape[0] == batch_size, (n, steps, images.shape)
    result.peak_mb = max(samples + list(result.rss_at.values()))
    result.samples = len(samples)
    return result


def print_epoch(r: EpochResult, workers: int) -> None:
    rss = ", ".join(f"{int(f * 100)}% {r.rss_at[f]:,.0f} MB" for f in FRACTIONS)
    print(
        f"{r.path}: {r.images:,} images in {r.seconds:.1f} s = {r.images_per_s:,.0f} images/s "
        f"({workers} workers; opened in {r.open_s:.2f} s, first batch after {r.first_batch_s:.2f} s)",
        flush=True,
    )
    print(f"  resident memory of process + workers: {rss}; peak {r.peak_mb:,.0f} MB over {r.samples} one-second samples", flush=True)


# --------------------------------------------------------------------------- #
# dcgan train with 1 and 2 processes
# --------------------------------------------------------------------------- #
@dataclass
class TrainRun:
    nproc: int
    omp_threads: int
    images_per_s: float  # over the log windows after the first
    windows: int
    wall_s: float  # the whole command: start-up, training, final samples and checkpoint


def train_run(shards: Path, out: Path, nproc: int, steps: int, batch_size: int, log_every: int, cache_dir: Path) -> TrainRun:
    """`dcgan train` on the shards; images/s from metrics.jsonl without the first window (DataLoader start-up)."""
    # The two cores are shared out: both to the one process, one to each of two (torchrun's default
    # would do the same; set here so that the figure does not depend on how it was launched).
    omp = max(1, (os.cpu_count() or 1) // nproc)
    env = {**os.environ, "OMP_NUM_THREADS": str(omp), "DCGAN_CACHE_DIR": str(cache_dir)}
    shutil.rmtree(out, ignore_errors=True)
    cmd = [
        sys.executable,
        "-m",
        "dcgan",
        "train",
        "--data",
        str(shards),
        "--image-size",
        "64",
        "--channels",
        "1",
        "--steps",
        str(steps),
        "--batch-size",
        str(batch_size),
        "--workers",
        "1",
        "--seed",
        "0",
        "--device",
        "cpu",
        "--quiet",
        "--out",
        str(out),
        "--log-every",
        str(log_every),
    ]
    if nproc > 1:
        cmd += ["--nproc", str(nproc)]
    print(f"$ OMP_NUM_THREADS={omp} {' '.join(cmd[1:])}", flush=True)
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        print(done.stdout)
        raise SystemExit(f"dcgan train with {nproc} process(es) failed (exit {done.returncode})")
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    windows = [r for r in records if "images_per_s" in r]
    if len(windows) < 2:
        raise SystemExit(f"{out}: {len(windows)} log window(s); give more --steps than --log-every")
    # Windows after the first, as one: images over their summed time (elapsed_s is cumulative training time).
    first, last = windows[0], windows[-1]
    images = (last["step"] - first["step"]) * batch_size * nproc
    rate = images / (last["elapsed_s"] - first["elapsed_s"])
    print(
        f"  {nproc} process(es): {rate:,.0f} images/s over steps {first['step']}..{last['step']} "
        f"({len(windows) - 1} windows), whole command {wall:.0f} s",
        flush=True,
    )
    return TrainRun(nproc, omp, rate, len(windows) - 1, wall)


# --------------------------------------------------------------------------- #
def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default="/work/bench-shards", help="folder for the images, shards, runs and caches")
    p.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"))
    p.add_argument("--images", type=int, default=200_000)
    p.add_argument("--shard-size", type=int, default=5000)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--channels", type=int, default=1, choices=(1, 3))
    p.add_argument("--batch-size", type=int, default=128, help="batch of the streaming epochs (the DDP runs use 64)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeat", action="store_true", help="read both again, shards first, to expose page-cache effects")
    p.add_argument("--steps", type=int, default=100, help="iterations of each DDP run")
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--skip-stream", action="store_true")
    p.add_argument("--skip-ddp", action="store_true")
    args = p.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    os.environ["DCGAN_CACHE_DIR"] = str(work / "cache")  # the shard-count cache too: nothing lands in ~/.cache
    folder = work / f"folder-{args.images}"
    shards = work / f"shards-{args.images}-{args.shard_size}"

    model, bf16 = cpu_model()
    print(
        f"CPU: {model}, {os.cpu_count()} cores, avx512_bf16 {'yes' if bf16 else 'no'}; torch {torch.__version__} "
        f"({torch.get_num_threads()} threads in this process)"
    )
    load = os.getloadavg()[0]
    busy = "  (other processes are using the CPU: the figures will be low and noisy)" if load > 0.5 else ""
    print(f"load average {load:.2f}{busy}")
    print(
        f"N = {args.images:,} images ({args.image_size}x{args.image_size}x{args.channels}), shards of {args.shard_size:,}, "
        f"batch {args.batch_size}, {args.workers} workers (shards use {usable_workers(args.workers)}), work folder {work}"
    )

    build = {"folder": build_folder(folder, args.images, args.data_dir), "shards": build_shards(folder, shards, args.shard_size)}
    for what, seconds in build.items():
        print(f"{what}: " + ("present, not rebuilt" if seconds is None else f"built in {seconds:.1f} s (one-off)"))
    print(f"on disk: folder {describe_size(folder)}; shards {describe_size(shards)}", flush=True)

    epochs: list[EpochResult] = []
    if not args.skip_stream:
        loaders = {
            "folder (streamed)": lambda: load_dataset(str(folder), image_size=args.image_size, channels=args.channels, stream=True),
            "shards": lambda: load_dataset(str(shards), image_size=args.image_size, channels=args.channels),
        }
        order = list(loaders) + (list(reversed(loaders)) if args.repeat else [])
        print()
        for name in order:
            epochs.append(read_epoch(name, loaders[name], args.batch_size, args.workers))
            print_epoch(epochs[-1], args.workers)

    runs: list[TrainRun] = []
    if not args.skip_ddp:
        print()
        if args.steps > args.images // (64 * 2):  # a new epoch restarts the readers and writes a checkpoint mid-window
            print(f"note: {args.steps} steps are more than one epoch of the 2-process run ({args.images // 128} steps)")
        for nproc in (1, 2):
            runs.append(train_run(shards, work / "runs" / f"nproc{nproc}", nproc, args.steps, 64, args.log_every, work / "cache"))

    print()
    print_tables(args, build, epochs, runs)
    return 0


def print_tables(args: argparse.Namespace, build: dict, epochs: list[EpochResult], runs: list[TrainRun]) -> None:
    """The figures as markdown, for BENCHMARKS.md."""
    if epochs:
        print(
            f"One epoch of {args.images:,} MNIST PNGs at {args.image_size}x{args.image_size}, batch {args.batch_size}, "
            f"{args.workers} workers, data path only (CPU, warm page cache):"
        )
        print()
        print("| data | images/s | vs folder | first batch | RSS at 10% / 50% / 100% | peak RSS |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        folder_rate = next(e.images_per_s for e in epochs if e.path.startswith("folder"))
        for e in epochs:
            rss = " / ".join(f"{e.rss_at[f]:,.0f}" for f in FRACTIONS)
            print(
                f"| {e.path} | {e.images_per_s:,.0f} | {e.images_per_s / folder_rate:.2f}x | {e.first_batch_s:.1f} s "
                f"| {rss} MB | {e.peak_mb:,.0f} MB |"
            )
        built = [f"{k} {v:.0f} s" for k, v in build.items() if v is not None]
        if built:
            print(f"\n(one-off: {', '.join(built)})")
        print()
    if runs:
        one = runs[0].images_per_s
        print(
            f"`dcgan train` on the shards, 64x64x1, batch 64 per process, {args.steps} steps, gloo DDP on "
            f"{os.cpu_count()} cores; images/s after the first of every {args.log_every} steps:"
        )
        print()
        print("| processes | OMP threads each | global batch | images/s | vs 1 process |")
        print("| ---: | ---: | ---: | ---: | ---: |")
        for r in runs:
            print(f"| {r.nproc} | {r.omp_threads} | {64 * r.nproc} | {r.images_per_s:,.0f} | {r.images_per_s / one:.2f}x |")


if __name__ == "__main__":
    sys.exit(main())
