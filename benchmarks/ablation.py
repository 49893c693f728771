"""Benchmark: issue 25's ablation table, several named `dcgan train` configurations for the same wall-clock minutes.

Each configuration (`--config 'NAME=OPTIONS'`, OPTIONS being extra `dcgan train` options; without any
--config, the data set's list in CONFIGS below) trains as a subprocess,
`python -m dcgan train <data> --seed 0 --epochs 100000 --quiet --out OUT/NAME --eval-every N OPTIONS`,
`--slots` at a time, each pinned to its own core with one thread (`taskset -c i`, OMP_NUM_THREADS=1; with
`--slots 1` one after the other, each with every core). After `--minutes` of wall-clock the run gets
SIGTERM, saves `checkpoints/latest.safetensors` and exits, as a user's Ctrl-C would; `--epochs 100000`
overrides a recipe's budget, so the clock stops every run. Each run's output is kept in OUT/NAME/train.log.

After all training, every run's latest checkpoint (and its best one, when --eval-every saved one) is scored
by one evaluator under one protocol: its default sampler (the averaged G where the run has one), FID,
precision and recall of `--num-samples` samples against as many real training images in the features
`dcgan evaluate` picks by default (the data set's evaluation classifier's layers, else pixels), and the
`grid` score (grey levels of the fixed dot pattern at periods 2 and 4 in the mean sample); beside them the
real-vs-real floor (held-out test images, as many as there are up to --num-samples) and the noise rungs
sigma 0.1 and 0.2. The run's own tracked FID (metrics.jsonl) gives OUT/curves.png, FID against training
minutes; OUT/grids.png shows the same 16 z through each configuration's sampler at 4x zoom (one row each,
plain and with the brightness times 8), and OUT/results.json holds every figure.

    .venv/bin/python benchmarks/ablation.py --data mnist --minutes 6 --out /tmp/ablation-mnist
    .venv/bin/python benchmarks/ablation.py --data cifar10 --config 'hinge=--loss hinge' --config 'paper=--recipe paper --ema'
    (--skip-training scores the runs already in --out; --only NAME,... retrains some of them)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from dcgan.checkpoint import load_checkpoint
from dcgan.data import default_cache_dir, load_dataset
from dcgan.imaging import grid_image
from dcgan.metrics.evaluate import evaluate
from dcgan.metrics.extractors import build_extractor, resolve_features
from dcgan.sampling import generate, sample_z

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
EXIT_INTERRUPTED = 130  # what `dcgan train` returns after SIGTERM / Ctrl-C, its checkpoint saved

# --data -> (the `dcgan train` data options, load_dataset's name and data_dir, default --eval-every, default --num-samples)
DATA = {
    "mnist": (["--data", "mnist", "--data-dir", str(SHARED / "mnist")], "mnist", str(SHARED / "mnist"), 200, 5000),
    "cifar10": (
        ["--data", str(SHARED / "cifar10-jpg" / "CIFAR-10-images-jpg.tar.gz"), "--image-size", "32"],
        str(SHARED / "cifar10-jpg" / "CIFAR-10-images-jpg.tar.gz"),
        None,
        200,
        5000,
    ),
    "clothing": (
        ["--data", str(SHARED / "clothing" / "clothing-96.tar.gz"), "--image-size", "64"],
        str(SHARED / "clothing" / "clothing-96.tar.gz"),
        None,
        100,
        2000,
    ),
}

# Each change on its own, against the paper's settings with the averaged G (the default up to issue 25).
_TODAY = "--recipe paper --ema"
_SINGLE = {
    "paper+ema": _TODAY,
    "ttur": f"{_TODAY} --lr-d 4e-4 --lr-g 1e-4",
    "betas0": f"{_TODAY} --beta1 0 --beta2 0.99",
    "hinge": f"{_TODAY} --loss hinge",
    "sn": f"{_TODAY} --d-norm spectral",
    "r1": f"{_TODAY} --r1-gamma 1",
    "diffaug": f"{_TODAY} --augment translation,cutout",
    "ada": f"{_TODAY} --augment translation,cutout --augment-target 0.6",
    "batch64": f"{_TODAY} --batch-size 64",
    "d2": f"{_TODAY} --d-steps 2",
    "sn+hinge": f"{_TODAY} --d-norm spectral --loss hinge",
    "default": "",  # the current default, whatever it is
}
# The photo sets: the defaults against the paper's, and the knobs that moved on colour photos (issue 25's runs).
_CIFAR = {
    "default": "",
    "paper+ema": _TODAY,
    "r1-0.1": "--r1-gamma 0.1",  # what --recipe cifar10 sets
    "r1-0.01": "--r1-gamma 0.01",
    "lr4e-4": "--lr 4e-4",
    "lr2e-4": "--lr 2e-4",
    "ada": "--augment translation,cutout,color --augment-target 0.6",
}
_CLOTHING = {
    "photos64-before": f"{_TODAY} --batch-size 64",  # --recipe photos64 up to issue 25
    "def-r1-0.1": "--r1-gamma 0.1",  # what --recipe photos64 sets now
    "def-r1-0.1-lr4e-4": "--r1-gamma 0.1 --lr 4e-4",
    "def-r1-0.1-lr2e-4": "--r1-gamma 0.1 --lr 2e-4",
}
CONFIGS = {  # --data -> {name: `dcgan train` options}, trained when no --config is given
    "mnist": dict(_SINGLE),
    "cifar10": dict(_CIFAR),
    "clothing": dict(_CLOTHING),
}


def start_run(src: Path, run: Path, data_args: list[str], options: list[str], eval_every: int, core: int | None) -> subprocess.Popen:
    """`python -m dcgan train` of the code in `src` into `run` (on one CPU core, with one thread, when `core` is
    given), its stdout and stderr in run/train.log (the same launch as quality_minutes.start_training)."""
    if (run / "train.log").exists() or (run / "config.json").exists():
        shutil.rmtree(run)  # a retrained config starts afresh: no metrics.jsonl or best checkpoint of the run before
    run.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(src))
    cmd = [sys.executable, "-m", "dcgan", "train", *data_args, "--seed", "0", "--epochs", "100000", "--quiet"]
    cmd += ["--out", str(run), "--eval-every", str(eval_every), *options]
    if core is not None:
        env["OMP_NUM_THREADS"] = "1"
        cmd = ["taskset", "-c", str(core), *cmd]
    log = open(run / "train.log", "w")  # noqa: SIM115 (closed when the run ends)
    log.write("$ " + shlex.join(cmd) + "\n")
    log.flush()
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    proc.log = log  # type: ignore[attr-defined]
    return proc


def log_tail(run: Path, lines: int = 15) -> str:
    text = (run / "train.log").read_text(errors="replace").splitlines() if (run / "train.log").exists() else []
    return "\n".join("    " + line for line in text[-lines:])


def train_all(args, configs: dict[str, list[str]], names: list[str], out: Path) -> dict[str, dict]:
    """Train `names`, `--slots` at a time (a freed core takes the next one), each stopped by SIGTERM after
    `--minutes`; returns {name: {"started", "wall_s", "rc", "failed"}} (also written to OUT/NAME/launch.json)."""
    data_args = DATA[args.data][0]
    pending = list(names)
    cores = [int(c) for c in args.cores.split(",")] if args.cores else list(range(args.slots)) if args.slots > 1 else [None]
    free = list(cores)
    running: dict[str, tuple[subprocess.Popen, float, int | None, bool]] = {}  # name -> (proc, start, core, signalled)
    info: dict[str, dict] = {}
    while pending or running:
        while pending and free:
            name, core = pending.pop(0), free.pop(0)
            where = f"core {core}, 1 thread" if core is not None else f"{os.cpu_count()} cores"
            print(f"training {name} ({' '.join(configs[name]) or 'no options'}) for {args.minutes:g} minutes on {where} ...", flush=True)
            src = dict(item.split("=", 1) for item in args.src_for).get(name, args.src)  # --src-for NAME=PATH
            proc = start_run(Path(src), out / name, data_args, configs[name], args.eval_every, core)
            running[name] = (proc, time.time(), core, False)
        time.sleep(1.0)
        for name, (proc, start, core, signalled) in list(running.items()):
            if proc.poll() is None:
                if not signalled and time.time() - start >= args.minutes * 60:
                    proc.send_signal(signal.SIGTERM)  # saves latest.safetensors and exits, as after Ctrl-C
                    running[name] = (proc, start, core, True)
                elif signalled and time.time() - start >= args.minutes * 60 + 600:
                    proc.kill()  # ten minutes to save a checkpoint is more than enough
                continue
            proc.log.close()  # type: ignore[attr-defined]
            del running[name]
            free.append(core)
            rc = proc.returncode
            failed = not signalled or rc not in (0, EXIT_INTERRUPTED)
            info[name] = {"started": start, "wall_s": round(time.time() - start, 1), "rc": rc, "failed": failed}
            (out / name / "launch.json").write_text(json.dumps(info[name] | {"options": configs[name]}, indent=2))
            if failed:
                when = "before its deadline" if not signalled else "after SIGTERM"
                print(f"!! {name} exited with {rc} {when}; the end of {out / name / 'train.log'}:\n{log_tail(out / name)}", flush=True)
            else:
                print(f"{name} stopped after {info[name]['wall_s']:.0f} s (exit {rc})", flush=True)
    return info


def tracked_curve(run: Path) -> list[dict]:
    """The run's own --eval-every evaluations from metrics.jsonl: [{"step", "fid", "minutes"}].

    The evaluation records carry no clock ({"step", "epoch", "fid", "eval"}); the loss records
    ({"step", ..., "images_per_s", "elapsed_s"}, every log interval) carry the run's training seconds, so an
    evaluation's minutes are those seconds interpolated at its step (extrapolated past the last loss record)."""
    path = run / "metrics.jsonl"
    if not path.exists():
        return []
    evals, clock = [], []  # (step, fid), (step, elapsed_s)
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(rec, dict) or not isinstance(rec.get("step"), int):
            continue
        if isinstance(rec.get("fid"), (int, float)):
            evals.append((rec["step"], float(rec["fid"])))
        elif isinstance(rec.get("elapsed_s"), (int, float)):
            clock.append((rec["step"], float(rec["elapsed_s"])))
    clock = sorted(set(clock))
    points = []
    for step, fid in evals:
        points.append({"step": step, "fid": fid, "minutes": None if not clock else _seconds_at(clock, step) / 60})
    return points


def _seconds_at(clock: list[tuple[int, float]], step: int) -> float:
    """Training seconds at `step`, linear between the loss records around it (from (0, 0) before the first)."""
    known = [(0, 0.0), *clock]
    for (s0, t0), (s1, t1) in zip(known, known[1:]):
        if s0 <= step <= s1:
            return t0 + (t1 - t0) * (step - s0) / max(s1 - s0, 1)
    s0, t0 = known[-2] if len(known) > 2 else known[0]
    s1, t1 = known[-1]
    return t1 + (t1 - t0) / max(s1 - s0, 1) * (step - s1)


def draw_curves(curves: dict[str, list[dict]], path: Path) -> None:
    """Tracked FID (log scale) against training minutes (steps where minutes are unknown), one line per config."""
    has_minutes = all(p["minutes"] is not None for c in curves.values() for p in c)
    xkey = "minutes" if has_minutes else "step"
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return _draw_curves_pil(curves, path, xkey)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for name, points in curves.items():
        if points:
            ax.plot([p[xkey] for p in points], [p["fid"] for p in points], marker=".", label=name)
    ax.set_yscale("log")
    ax.set_xlabel("training minutes" if has_minutes else "iterations")
    ax.set_ylabel("tracked FID (the run's own --eval-every)")
    ax.grid(True, which="both", alpha=0.3)
    if any(curves.values()):
        ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _draw_curves_pil(curves: dict[str, list[dict]], path: Path, xkey: str) -> None:
    points = [p for c in curves.values() for p in c if p["fid"] > 0]
    if not points:
        return
    w, h, m = 700, 450, 50
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    x1 = max(p[xkey] for p in points) or 1
    lo, hi = math.log(min(p["fid"] for p in points)), math.log(max(p["fid"] for p in points))
    span = (hi - lo) or 1.0
    colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
    d.rectangle([m, m, w - m, h - m], outline="black")
    for i, (name, c) in enumerate(curves.items()):
        xy = [(m + p[xkey] / x1 * (w - 2 * m), h - m - (math.log(p["fid"]) - lo) / span * (h - 2 * m)) for p in c if p["fid"] > 0]
        colour = colours[i % len(colours)]
        if len(xy) > 1:
            d.line(xy, fill=colour, width=2)
        d.text((m + 10, m + 10 + 14 * i), name, fill=colour)
    d.text((m, h - m + 10), f"{xkey} 0 .. {x1:.3g}; FID (log) {math.exp(lo):.3g} .. {math.exp(hi):.3g}", fill="black")
    img.save(path)


def labelled_grids(images: dict[str, torch.Tensor]) -> Image.Image:
    """One row per config: its name, then its 16 images (16, C, H, W) in [-1, 1] as a 4x4 grid at 4x zoom, plain
    and with the brightness times 8 (a one-row-per-subject variant of quality_minutes.zoomed_grids)."""
    label_w = 120
    rows = []
    for name, x in images.items():
        pair = [grid_image(((x + 1) * gain - 1).clamp(-1, 1), nrow=4, scale=4).convert("RGB") for gain in (1, 8)]
        row = Image.new("RGB", (label_w + sum(g.width for g in pair), pair[0].height), "white")
        ImageDraw.Draw(row).text((6, 6), name, fill="black")
        for i, g in enumerate(pair):
            row.paste(g, (label_w + i * pair[0].width, 0))
        rows.append(row)
    out = Image.new("RGB", (max(r.width for r in rows), sum(r.height for r in rows)), "white")
    y = 0
    for r in rows:
        out.paste(r, (0, y))
        y += r.height
    return out


def machine() -> dict:
    model = platform.processor() or "unknown"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    flags: set[str] = set()
    try:
        flags = set(next(ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags")).split(":", 1)[1].split())
    except (OSError, StopIteration):
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "amx": any(f.startswith("amx") for f in flags),
        "avx512_bf16": "avx512_bf16" in flags,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


def fmt(v, digits: int = 3) -> str:
    return "" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", choices=list(DATA), default="mnist")
    p.add_argument("--minutes", type=float, default=6.0, help="wall-clock training minutes of every run")
    p.add_argument("--slots", type=int, default=2, help="runs training at once, each on its own core with one thread (1: each with every core)")
    p.add_argument("--cores", default=None, help="comma-separated cores to pin runs to, one run per core (overrides --slots), e.g. 0 or 0,1")
    p.add_argument("--config", action="append", default=[], metavar="NAME=OPTIONS", help="a named config: extra `dcgan train` options (repeatable)")
    p.add_argument("--out", default=None, help="default: /tmp/ablation-DATA")
    p.add_argument("--eval-every", type=int, default=None, help="iterations between each run's tracked FID (default: 200, clothing 100)")
    p.add_argument("--num-samples", type=int, default=None, help="samples for the final scoring (default: 5000, clothing 2000)")
    p.add_argument("--train-only", action="store_true", help="train, then stop without scoring (score later with --skip-training)")
    p.add_argument("--skip-training", action="store_true", help="score the runs already in --out")
    p.add_argument("--only", default=None, help="comma-separated names: (re)train only these configs, then score all")
    p.add_argument("--src", default=str(REPO / "src"), help="src/ folder of the code that trains (PYTHONPATH of the runs)")
    p.add_argument(
        "--src-for",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="train config NAME with the code in PATH (a git worktree's src/), e.g. the code before a change; repeatable",
    )
    args = p.parse_args()
    data_args, data_name, data_dir, eval_default, samples_default = DATA[args.data]
    args.eval_every = args.eval_every or eval_default
    args.num_samples = args.num_samples or samples_default
    out = Path(args.out or f"/tmp/ablation-{args.data}")
    out.mkdir(parents=True, exist_ok=True)
    if args.config:
        configs = {}
        for item in args.config:
            name, sep, options = item.partition("=")
            if not sep or not name.strip() or "/" in name:
                p.error(f"--config takes NAME=OPTIONS, got {item!r}")
            configs[name.strip()] = shlex.split(options)
    else:
        configs = {name: shlex.split(options) for name, options in CONFIGS[args.data].items()}
    only = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else list(configs)
    unknown = [n for n in only if n not in configs]
    if unknown:
        p.error(f"--only names {unknown} are not among the configs {list(configs)}")
    if args.slots < 1:
        p.error("--slots takes 1 or more")

    info: dict[str, dict] = {}
    if not args.skip_training:
        info = train_all(args, configs, only, out)
        if args.train_only:
            return 0
    for name in configs:  # runs trained earlier (--skip-training, --only)
        if name not in info and (out / name / "launch.json").exists():
            info[name] = json.loads((out / name / "launch.json").read_text())

    # scoring: one evaluator, one protocol, after all training
    print("scoring ...", flush=True)
    ckpts = {}
    for name in configs:
        latest = out / name / "checkpoints" / "latest.safetensors"
        if latest.exists():
            ckpts[name] = load_checkpoint(latest)
        else:
            print(f"!! {name}: no {latest}; left out of the table", flush=True)
    if not ckpts:
        print("no run has a checkpoint to score")
        return 1
    first = next(iter(ckpts.values()))
    size, channels = first.model_config.image_size, first.model_config.channels
    real = load_dataset(data_name, data_dir, image_size=size, channels=channels, split="train")
    test = load_dataset(data_name, data_dir, image_size=size, channels=channels, split="test")
    features, note = resolve_features("auto", data_name)  # what `dcgan evaluate` picks by default
    if note:
        print(note)
    extractor = build_extractor(features, dataset=data_name)
    cache_dir = default_cache_dir() / "reference"
    metrics = ["fid", "pr", "grid"]

    def score(G, with_floor: bool) -> list[dict]:
        report = evaluate(
            G,
            real,
            extractor,
            metrics,
            num_samples=args.num_samples,
            test=test if with_floor else None,
            ladder=(0.1, 0.2) if with_floor else (),
            cache_dir=cache_dir,
        )
        if with_floor or not hasattr(score, "protocol"):
            score.protocol = report.protocol  # type: ignore[attr-defined]  # the floor's call states num_test
        return report.rows

    rows, pictures, floor_rows = [], {}, []
    for name, ckpt in ckpts.items():
        G = ckpt.build_generator()  # the default sampler: the averaged G where the run has one
        pictures[name] = generate(G, sample_z(16, G.config.z_dim, G.config.prior, torch.Generator().manual_seed(0)))
        scored = score(G, with_floor=not floor_rows)
        if not floor_rows:
            floor_rows = scored[1:]
        rec = ckpt.record
        batch = rec.train_config.get("batch_size")
        ips = rec.last.get("images_per_s")
        if ips is None and batch and rec.elapsed_s:
            ips = ckpt.step * batch / rec.elapsed_s
        row = {
            "name": name,
            "options": shlex.join(configs[name]),
            "steps": ckpt.step,
            "training_s": round(rec.elapsed_s, 1),
            "images_per_s": ips,
            "sampler": ckpt.generator_kind(),
            **{k: v for k, v in scored[0].items() if k not in ("subject", "n")},
        }
        best_path = out / name / "checkpoints" / "best.safetensors"
        if best_path.exists():
            best = load_checkpoint(best_path)
            b = score(best.build_generator(), with_floor=False)[0]
            row["best"] = {"step": best.step, "fid": b["fid"], "precision": b.get("precision"), "recall": b.get("recall"), "grid": b.get("grid")}
        row["tracked"] = tracked_curve(out / name)
        row["launch"] = info.get(name)
        rows.append(row)

    floor = next(r["fid"] for r in floor_rows if r["subject"] == "real test (floor)")
    where = machine()
    walls = sorted({round(r["launch"]["wall_s"] / 60, 1) for r in rows if r.get("launch")})  # what the runs had, also with --skip-training
    budget = " / ".join(f"{w:g}" for w in walls) or f"{args.minutes:g}"
    print(f"\n== {args.data}: {budget} wall-clock minutes each; features {extractor.name} ({extractor.description})")
    print(
        f"FID, precision, recall of {args.num_samples} samples vs {score.protocol['num_real']} real train images; floor: {score.protocol.get('num_test')} test images"
    )  # type: ignore[attr-defined]
    print("\n| config | options | steps | training s | images/s | FID latest | x floor | precision | recall | grid | FID best (step) |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        best = f"{r['best']['fid']:.3f} ({r['best']['step']})" if "best" in r else ""
        ips = f"{r['images_per_s']:.0f}" if r["images_per_s"] else ""
        print(
            f"| {r['name']} | `{r['options'] or '(none)'}` | {r['steps']} | {r['training_s']:.0f} | {ips} | {r['fid']:.3f} | {r['fid'] / floor:.1f}x | "
            f"{fmt(r.get('precision'))} | {fmt(r.get('recall'))} | {r['grid']:.2f} | {best} |"
        )
    for r in floor_rows:
        print(
            f"| {r['subject']} | | | | | {r['fid']:.3f} | {r['fid'] / floor:.1f}x | {fmt(r.get('precision'))} | {fmt(r.get('recall'))} | {r['grid']:.2f} | |"
        )
    print(
        f"\nmachine: {where['cpu']}, {where['cores']} cores (amx: {'yes' if where['amx'] else 'no'}, "
        f"avx512_bf16: {'yes' if where['avx512_bf16'] else 'no'}); torch {where['torch']}, {where['threads']} threads in the scorer"
    )

    labelled_grids(pictures).save(out / "grids.png")
    draw_curves({r["name"]: r["tracked"] for r in rows}, out / "curves.png")
    results = {
        "data": args.data,
        "minutes": args.minutes,
        "slots": args.slots,
        "eval_every": args.eval_every,
        "num_samples": args.num_samples,
        "features": {"name": extractor.name, "description": extractor.description},
        "protocol": score.protocol,  # type: ignore[attr-defined]
        "machine": where,
        "configs": rows,
        "floor": floor_rows,
    }
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    print(f"wrote {out / 'results.json'}, {out / 'grids.png'}, {out / 'curves.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
