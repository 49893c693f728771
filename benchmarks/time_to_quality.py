"""Benchmark: FID against training wall-clock, dcgan's recipe against the PyTorch example, one data set per run.

Two contenders, trained on the same machine:
- dcgan's recipe for the data set (`--recipe mnist` or `--recipe cifar10`: 32x32, the default training
  settings of docs/recipe.md (batch 64, Adam 8e-4 / (0, 0.99), lazy R1), the fast path: data on the device, channels_last, fused Adam, bf16 where the CPU has
  it), scored twice at every evaluation: the averaged G with standing statistics (what dcgan samples by
  default) and the trained G with eval-mode batch norm (`--raw-g`, and what `--ema off` would give: the
  average never feeds back into training), which makes the EMA on/off ablation;
- the PyTorch example's configuration (64x64, the images upscaled per item by PIL in DataLoader workers,
  `.item()` every step; benchmarks/baseline_example.py).

Every `--eval-every` seconds of training, each is scored by the evaluator `dcgan evaluate` uses by default
(`auto`: classifier-layers of the data set's evaluation classifier): FID of `--num-samples` samples against
as many real training images (64x64 samples are resized to the classifier's 32x32), and the `grid` score
(grey levels of the fixed dot pattern at periods 2 and 4 in the mean sample). The clock counts
training only, not the evaluations. The real-vs-real floor and the noise rungs are scored once under the
same protocol. The report gives, for each FID the baseline reached, how long each took to get there.

With `--side-by-side` both train at once, each on its own core with one thread (the baseline's two
DataLoader workers share its core), so a machine that is not quiet slows both alike:

    .venv/bin/python benchmarks/time_to_quality.py --minutes 10 --side-by-side --out /tmp/ttq   # MNIST, then CIFAR-10
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import baseline_example  # noqa: E402
from dcgan.data import default_cache_dir, load_dataset  # noqa: E402
from dcgan.imaging import grid_image  # noqa: E402
from dcgan.metrics import build_extractor, reference_features, resolve_features  # noqa: E402
from dcgan.metrics.evaluate import LADDER_SIGMAS, evaluate, reference_mean_image  # noqa: E402
from dcgan.metrics.scores import fid_from_features, grid_pattern  # noqa: E402
from dcgan.sampling import generate, sample_z  # noqa: E402
from dcgan.training import Trainer  # noqa: E402
from dcgan.training.recipes import get_recipe  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = {  # --data -> (dataset argument of load_dataset and the evaluator, its default --data-dir)
    "mnist": ("mnist", str(REPO.parent / "shared" / "data" / "mnist")),
    "cifar10": (str(REPO.parent / "shared" / "data" / "cifar10-jpg" / "CIFAR-10-images-jpg.tar.gz"), None),
}


def scores_of(images_fn, extractor, real_features, real_mean, n: int) -> tuple[float, float]:
    """(FID, grid) of `n` samples; `real_mean(size)` is the real mean image at the samples' own size."""
    images = torch.cat([images_fn(min(500, n - i), 1000 + i) for i in range(0, n, 500)])
    return fid_from_features(real_features, extractor.features(images)), grid_pattern(real_mean(images.shape[-1]), images.mean(0))


def contender(args, data: str, name: str):
    """(step_fn, {label: sample_fn}, description) of one contender."""
    data_arg, data_dir = DATA[data]
    if name == "dcgan":
        options = {k: v for k, v in get_recipe(data).options.items() if k not in ("data", "eval_every", "epochs")}
        trainer = Trainer.from_options(data=data_arg, data_dir=args.data_dir or data_dir, seed=0, epochs=1000, progress=False, **options)
        state = {"batches": iter(()), "epoch": 0}

        def step():
            try:
                batch = next(state["batches"])
            except StopIteration:
                state["batches"] = trainer.feed.epoch_batches(state["epoch"], 0)
                state["epoch"] += 1
                batch = next(state["batches"])
            trainer.gan.step(batch)

        def sampler(raw: bool):
            def sample(n, seed):
                G = trainer.gan.G if raw else trainer.gan.sampling_generator(trainer.gan.ema.updates)  # refreshed once per step
                return generate(G, sample_z(n, G.config.z_dim, G.config.prior, torch.Generator().manual_seed(seed)))

            return sample

        desc = f"dcgan --recipe {data} (32x32, batch {trainer.config.batch_size}, bf16={trainer.gan.bf16})"
        return step, {"dcgan (averaged G)": sampler(False), "dcgan --raw-g": sampler(True)}, desc
    native = load_dataset(data_arg, args.data_dir or data_dir, split="train")
    base = baseline_example.BaselineTrainer(native.images, nc=native.channels, image_size=64, batch_size=128, workers=2, seed=0)
    return (lambda: base.train_steps(1)), {"PyTorch example (64x64)": base.sample}, "the PyTorch example (64x64, batch 128)"


def race(args, data: str, name: str, extractor, real_features, real_mean) -> dict:
    step, samplers, desc = contender(args, data, name)
    history = {label: [] for label in samplers}
    trained, steps, next_eval = 0.0, 0, args.eval_every
    while trained < args.minutes * 60:
        start = time.perf_counter()
        while time.perf_counter() - start < next_eval - trained:
            step()
            steps += 1
        trained += time.perf_counter() - start
        next_eval += args.eval_every
        for label, sample in samplers.items():
            fid, grid = scores_of(sample, extractor, real_features, real_mean, args.num_samples)
            history[label].append((steps, round(trained, 1), fid, grid))
            print(f"{label}: step {steps}, {trained:.0f} s of training, FID {fid:.3f}, grid {grid:.2f}", flush=True)
    grids = {label: sample(64, 7) for label, sample in samplers.items()}
    return {"name": name, "description": desc, "history": history, "grids": grids}


def reached(history: list, threshold: float):
    return next(((steps, seconds) for steps, seconds, fid, _ in history if fid <= threshold), None)


def report(results: list[dict], rungs: dict, out: Path) -> None:
    print("\nFID (grid score in grey levels) against training minutes (" + "; ".join(r["description"] for r in results) + ")")
    curves = {label: h for r in results for label, h in r["history"].items()}
    print("| minutes | " + " | ".join(curves) + " |\n| ---: | " + " | ".join("---:" for _ in curves) + " |")
    for i in range(max(len(h) for h in curves.values())):
        cells = [f"{h[i][2]:.3f} ({h[i][3]:.1f})" if i < len(h) else "" for h in curves.values()]
        minutes = next(h[i][1] for h in curves.values() if i < len(h)) / 60
        print(f"| {minutes:.1f} | " + " | ".join(cells) + " |")
    print("\nrungs, same protocol: " + ", ".join(f"{k} {v:.3f}" for k, v in rungs.items()))
    base = curves.get("PyTorch example (64x64)")
    ours = curves.get("dcgan (averaged G)")
    if base and ours:
        best = min(h[2] for h in base)
        got = reached(ours, best)
        base_at = reached(base, best)
        print(f"\nthe baseline's best FID: {best:.3f}, after {base_at[1] / 60:.1f} minutes ({base_at[0]} iterations)")
        if got and got == ours[0][:2]:
            print(
                f"dcgan was already there at its first evaluation ({got[1] / 60:.1f} minutes, {got[0]} iterations): "
                f"at least {base_at[1] / got[1]:.1f}x sooner"
            )
        elif got:
            print(f"dcgan reached it after {got[1] / 60:.1f} minutes ({got[0]} iterations): {base_at[1] / got[1]:.1f}x sooner")
        else:
            print("dcgan did not reach it in its time")
        print(
            f"best FID in {max(h[-1][1] for h in curves.values()) / 60:.0f} minutes: "
            + ", ".join(f"{label} {min(x[2] for x in h):.3f}" for label, h in curves.items())
        )
    for r in results:
        for label, images in r["grids"].items():
            name = label.split(" ")[0] + ("-raw" if "raw" in label else "")
            grid_image(images, nrow=8).save(out / f"{name}.png")


def run_one(args, data: str, out: Path) -> None:
    """Both contenders on one data set, their report and `out/results.json`."""
    out.mkdir(parents=True, exist_ok=True)
    data_arg, data_dir = DATA[data]
    data_dir = args.data_dir or data_dir
    features, _ = resolve_features("auto", data_arg)
    extractor = build_extractor(features, dataset=data_arg)
    real = load_dataset(data_arg, data_dir, image_size=32, split="train")
    real_features = reference_features(real, extractor, args.num_samples, cache_dir=default_cache_dir() / "reference")
    means = {}

    def real_mean(size: int) -> torch.Tensor:  # the real mean image at a sample size (the baseline's is 64)
        if size not in means:
            images = real if size == 32 else load_dataset(data_arg, data_dir, image_size=size, split="train")
            means[size] = reference_mean_image(images, args.num_samples)
        return means[size]

    names = [args.only] if args.only else ["dcgan", "baseline"]
    if args.side_by_side and not args.only:
        procs = []
        for core, name in enumerate(names):
            cmd = [
                "taskset",
                "-c",
                str(core),
                sys.executable,
                __file__,
                "--data",
                data,
                "--minutes",
                str(args.minutes),
                "--eval-every",
                str(args.eval_every),
                "--num-samples",
                str(args.num_samples),
                "--out",
                str(out),
                "--only",
                name,
            ]
            if args.data_dir:
                cmd += ["--data-dir", args.data_dir]
            procs.append(subprocess.Popen(cmd, env=dict(os.environ, OMP_NUM_THREADS="1")))
        for proc in procs:
            proc.wait()
        results = [torch.load(out / f"{name}.pt", weights_only=False) for name in names]
    else:
        print(
            f"torch {torch.__version__}, {torch.get_num_threads()} threads; {extractor.description}; "
            f"FID of {args.num_samples} vs {args.num_samples}, every {args.eval_every:g} s of training",
            flush=True,
        )
        results = [race(args, data, name, extractor, real_features, real_mean) for name in names]
        if args.only:
            torch.save(results[0], out / f"{args.only}.pt")
            return
    test = load_dataset(data_arg, data_dir, image_size=32, split="test")
    ladder = evaluate(None, real, extractor, ["fid"], num_samples=args.num_samples, test=test, ladder=LADDER_SIGMAS)
    rungs = {row["subject"]: row["fid"] for row in ladder.rows}
    print(f"\n== {data}")
    report(results, rungs, out)
    (out / "results.json").write_text(
        json.dumps(
            {"features": extractor.description, "rungs": rungs, "curves": {label: h for r in results for label, h in r["history"].items()}}, indent=2
        )
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="mnist,cifar10", help=f"comma-separated, run one after the other: {', '.join(DATA)}")
    p.add_argument("--data-dir", default=None, help="where the (single) data set is, when not in ../shared/data")
    p.add_argument("--minutes", type=float, default=10.0, help="training minutes each")
    p.add_argument("--eval-every", type=float, default=60.0, help="seconds of training between evaluations")
    p.add_argument("--num-samples", type=int, default=2000)
    p.add_argument("--only", choices=("dcgan", "baseline"), default=None, help="train one contender (used by --side-by-side)")
    p.add_argument("--side-by-side", action="store_true", help="train both at once, each on its own core with one thread")
    p.add_argument("--out", default="/tmp/time-to-quality")
    args = p.parse_args()
    datasets = [d.strip() for d in args.data.split(",") if d.strip()]
    unknown = [d for d in datasets if d not in DATA]
    if unknown or not datasets:
        p.error(f"--data takes {', '.join(DATA)}, got {args.data!r}")
    for data in datasets:
        run_one(args, data, Path(args.out) / data if len(datasets) > 1 else Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
