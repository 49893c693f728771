"""Benchmark: class-conditional DCGANs, both conditioning methods against the unconditional model trained as long.

For one data set, trains (or reuses, when the run directory already holds a finished run) three runs with
the same recipe, seed and number of iterations:
- `none`: the unconditional model;
- `concat`: `--conditional --conditioning concat` (one-hot y joined to z, label maps joined to D's input);
- `projection`: `--conditional --conditioning projection` (class-conditional batch norm in G, a projection
  term in D's logit).
Each is then scored by `dcgan evaluate` with the data set's evaluation classifier (`auto` features):
overall FID, and for the conditional ones the conditional accuracy (the classifier recognises the class
asked for) and intra-FID (each class's samples against that class's real images), with the real test
images' per-class floor. It prints one table, the per-class intra-FID of each conditional run, the first
`--eval-every` evaluation at which the tracked conditional accuracy reached `--target` (with the training
time to get there), and writes a grid per conditional run: a row per class, the same z down each column.

    .venv/bin/python benchmarks/conditional.py --data mnist --steps 1500 --out runs/cond   # MNIST
    .venv/bin/python benchmarks/conditional.py --data cifar10 --steps 1000 --out runs/cond
    .venv/bin/python benchmarks/conditional.py --data mnist --only concat --steps 4685 --eval-every 250 \
        --eval-metric conditional_accuracy --out runs/cond-time        # time to 97% conditional accuracy

`--side-by-side` trains the runs at once, one core and one thread each, so a busy machine slows all alike.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from dcgan.checkpoint import load_checkpoint
from dcgan.figures import class_rows_image
from dcgan.imaging import save_image_atomic
from dcgan.models.conditioning import class_grid
from dcgan.sampling import generate, sample_z

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
DATA = {  # --data -> (the recipe, the options that name the data)
    "mnist": ("mnist", ["--data-dir", str(SHARED / "mnist")]),
    "cifar10": ("cifar10", ["--data", str(SHARED / "cifar10-jpg" / "CIFAR-10-images-jpg.tar.gz")]),
    "clothing": ("photos64", ["--data", str(SHARED / "clothing" / "clothing-96.tar.gz")]),
}
METHODS = {"none": [], "concat": ["--conditional", "--conditioning", "concat"], "projection": ["--conditional", "--conditioning", "projection"]}


def train_commands(args) -> dict[str, list[str]]:
    recipe, data = DATA[args.data]
    commands = {}
    for name in args.only.split(","):
        cmd = [
            sys.executable,
            "-m",
            "dcgan",
            "train",
            "--recipe",
            recipe,
            *data,
            *METHODS[name],
            "--steps",
            str(args.steps),
            "--seed",
            str(args.seed),
            "--out",
            str(args.out / f"{args.data}-{name}"),
            "--quiet",
            *args.train_args,
        ]
        if args.eval_every:
            cmd += ["--eval-every", str(args.eval_every)]
        if args.eval_metric and name != "none":
            cmd += ["--eval-metric", args.eval_metric]
        commands[name] = cmd
    return commands


def train(args) -> None:
    """Train every run not yet finished; with --side-by-side all at once, one core each."""
    pending = {}
    for name, cmd in train_commands(args).items():
        run = args.out / f"{args.data}-{name}"
        if (run / "checkpoints" / "latest.safetensors").exists() and load_checkpoint(run).step >= args.steps:
            print(f"{run}: finished already, reused")
            continue
        pending[name] = cmd
    procs = []
    for i, (name, cmd) in enumerate(pending.items()):
        env = dict(os.environ)
        if args.side_by_side:
            env["OMP_NUM_THREADS"] = "1"
            cmd = ["taskset", "-c", str(i % (os.cpu_count() or 1)), *cmd]
        print("training:", " ".join(cmd[cmd.index("train") :]), flush=True)
        proc = subprocess.Popen(cmd, env=env)
        if not args.side_by_side:
            proc.wait()
        procs.append((name, proc))
    for name, proc in procs:
        if proc.wait() != 0:
            raise SystemExit(f"training {name} failed (exit {proc.returncode})")


def evaluate(run: Path, num_samples: int) -> dict:
    """`dcgan evaluate` of the run's latest checkpoint, as JSON."""
    out = run.parent / f"{run.name}-eval.json"
    if not out.exists():
        cmd = [
            sys.executable,
            "-m",
            "dcgan",
            "evaluate",
            str(run),
            "--num-samples",
            str(num_samples),
            "--json",
            str(out),
            "--metrics",
            "fid,conditional_accuracy,intra_fid" if load_checkpoint(run).model_config.conditional else "fid",
        ]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


def first_reaching(run: Path, key: str, target: float) -> dict | None:
    """The first evaluation in metrics.jsonl whose `key` reached `target`, with the training seconds before it."""
    elapsed = 0.0
    for line in (run / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        elapsed = record.get("elapsed_s", elapsed)
        if isinstance(record.get(key), (int, float)) and record[key] >= target:
            return {"step": record["step"], "value": record[key], "seconds": elapsed}
    return None


def class_figure(run: Path, path: Path, columns: int = 10, seed: int = 0) -> None:
    """A row per class (up to 10), the same `columns` z down each column, from the run's averaged G."""
    ckpt = load_checkpoint(run)
    G, mc = ckpt.build_generator(), ckpt.model_config
    z, labels = class_grid(sample_z(columns, mc.z_dim, mc.prior, torch.Generator().manual_seed(seed)), list(range(min(10, mc.num_classes))))
    rows = sorted(set(labels.tolist()))
    save_image_atomic(class_rows_image(generate(G, z, labels), [mc.class_name(c) for c in rows]), path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", choices=tuple(DATA), default="mnist")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", default="none,concat,projection", help="which runs: none, concat, projection")
    p.add_argument("--num-samples", type=int, default=10_000, help="samples per evaluation (default 10000)")
    p.add_argument("--eval-every", type=int, default=None, help="also track a figure while training")
    p.add_argument("--eval-metric", default=None, help="the tracked figure of the conditional runs")
    p.add_argument("--target", type=float, default=0.97, help="conditional accuracy to report the time to (default 0.97)")
    p.add_argument("--side-by-side", action="store_true")
    p.add_argument("--out", type=Path, default=Path("runs/cond"))
    p.add_argument("train_args", nargs="*", help="more options for dcgan train (after --)")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    train(args)

    print(f"\n{args.data}, {args.steps} iterations each, seed {args.seed}; {args.num_samples} samples per evaluation")
    print(f"{'run':<12} {'train s':>8} {'FID':>8} {'cond. acc.':>10} {'intra-FID':>9} {'floor acc.':>10} {'floor intra':>11}")
    per_class = {}
    for name in args.only.split(","):
        run = args.out / f"{args.data}-{name}"
        report = evaluate(run, args.num_samples)
        rows = {r["subject"]: r for r in report["results"]}
        gen, floor = rows["generator"], rows.get("real test (floor)", {})
        seconds = load_checkpoint(run).record.elapsed_s or 0.0
        acc, floor_acc = gen.get("conditional_accuracy"), floor.get("conditional_accuracy")
        print(
            f"{name:<12} {seconds:>8.0f} {gen['fid']:>8.3f} {'' if acc is None else f'{100 * acc:.1f}%':>10} "
            f"{gen.get('intra_fid', float('nan')):>9.3f} {'' if floor_acc is None else f'{100 * floor_acc:.1f}%':>10} "
            f"{floor.get('intra_fid', float('nan')):>11.3f}"
        )
        if name != "none":
            per_class[name] = gen.get("class_fid") or {}
            class_figure(run, args.out / f"{args.data}-{name}-classes.png")
            if args.eval_metric == "conditional_accuracy":
                hit = first_reaching(run, "conditional_accuracy", args.target)
                print(
                    f"{'':<12} first tracked conditional accuracy >= {100 * args.target:.0f}%: "
                    + (f"step {hit['step']} ({100 * hit['value']:.1f}%) after {hit['seconds']:.0f} s of training" if hit else "not reached")
                )
    for name, values in per_class.items():
        if values:
            print(f"intra-FID per class, {name}: " + ", ".join(f"{k} {v:.3f}" for k, v in values.items()))
    print(f"class grids: {args.out}/{args.data}-<method>-classes.png")


if __name__ == "__main__":
    main()
