"""`dcgan train`: a new run, or --resume of one; with --nproc, the same command under torchrun."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import fields
from pathlib import Path

from ..checkpoint import load_checkpoint
from ..data import Storage, dataset_stem, default_cache_dir
from ..data.shards import PARTS, usable_workers
from ..errors import ConfigError, DCGANError
from ..models import ModelConfig
from ..options import POSITIVE_FLOAT, POSITIVE_INT, add_options, flag_of, legacy_words, resumable_fields
from ..rundir import RunDir
from ..training import TrainConfig, Trainer
from ..training.configfile import ConfigFile, read_config_file
from ..training.monitors import Evaluate, describe_best
from ..training.recipes import RECIPES
from ..training.resolve import DEFAULT_DATA, resolve_options
from .common import EXIT_INTERRUPTED, EXIT_TRAINING_FAILED, Command, add_data

TRAIN_EXAMPLES = """examples:
  dcgan train                                   # digits bundled with scikit-learn, 32x32, a short CPU run
  dcgan train --data mnist --data-dir ../shared/data/mnist --epochs 1 --out runs/mnist
  dcgan train --resume runs/mnist --epochs 5    # continue exactly where it stopped
  dcgan train --config runs/mnist/config.json --out runs/again   # repeat a run (same seed, same weights)
  dcgan train --config mnist.toml --lr 1e-4     # options from a TOML file; the command line overrides it
"""

CONFIGS = (ModelConfig, TrainConfig)  # every field of both is a flag, generated from its `option(...)`
GROUPS = {  # the --help sections, by the `group` of each option
    "data": "data",
    "model": "model (fixed for a run; refused with --resume)",
    "training": "training",
    "quality": "sample quality",
    "speed": "speed and scale",
    "outputs": "outputs",
    "health": "training health",
}


def _add_train_args(p: argparse.ArgumentParser) -> None:
    groups = {key: p.add_argument_group(title) for key, title in GROUPS.items()}
    # The few flags that are not one config field each:
    groups["data"].add_argument(
        "--recipe",
        default=None,
        choices=tuple(RECIPES),
        metavar="NAME",
        help="start from a named, measured configuration: "
        + "; ".join(f"{r.name}: {r.description}" for r in RECIPES.values())
        + " (options given as well override it)",
    )
    groups["data"].add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help="start from a TOML file of options ([model] / [train] tables or flat), or the "
        "config.json of an earlier run (or its folder) to repeat it; a --recipe is applied "
        "under the file, options given as well override both",
    )
    add_data(groups["data"], "dataset", default=DEFAULT_DATA)
    groups["training"].add_argument(
        "--lr", type=POSITIVE_FLOAT.parse, default=None, metavar="LR", help="Adam learning rate of both G and D (default 8e-4; the paper's 2e-4)"
    )
    groups["speed"].add_argument(
        "--nproc",
        type=POSITIVE_INT.parse,
        default=None,
        metavar="N",
        help="train with N processes (DistributedDataParallel via torchrun; one per GPU, or gloo on CPU)",
    )
    groups["outputs"].add_argument("--out", default=None, metavar="RUN_DIR", help="run directory (default runs/DATA-DATE-TIME)")
    groups["outputs"].add_argument("--resume", default=None, metavar="RUN_DIR", help="continue this run exactly; --steps/--epochs set the new total")
    groups["outputs"].add_argument("--quiet", action="store_true", help="no progress bar")
    add_options(p, CONFIGS, groups)


def _launch_torchrun(nproc: int, argv: list[str]) -> int:
    """Re-run this very command under torchrun with `nproc` processes (minus --nproc itself)."""
    rest, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--nproc":
            skip = True
            continue
        if a.startswith("--nproc="):
            continue
        rest.append(a)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", "-m", "dcgan", *rest]
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))  # share the cores, quietly
    print(f"launching {nproc} processes: {' '.join(cmd[1:])}", flush=True)
    return subprocess.call(cmd, env=env)


def _run_train(args: argparse.Namespace) -> int:
    if args.nproc and args.nproc > 1 and int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return _launch_torchrun(args.nproc, sys.argv[1:] if args.argv is None else args.argv)
    if int(os.environ.get("RANK", "0")) != 0:
        sys.stdout = open(os.devnull, "w")  # only rank 0 talks; the other processes print nothing but errors
    if args.config is not None and args.resume is not None:
        raise ConfigError("--config starts a new run and --resume continues one with its own settings: give one of them")
    if args.lr is not None:
        args.lr_g = args.lr if args.lr_g is None else args.lr_g
        args.lr_d = args.lr if args.lr_d is None else args.lr_d
    trainer = _resumed_trainer(args) if args.resume else _new_trainer(args)
    g_rows, d_rows = trainer.model_summaries()
    print(f"G: {_params(g_rows)}; D: {_params(d_rows)}")
    print(f"compute: {trainer.gan.compute_path()}")
    tracked = _evaluate_callback(trainer).prepare(trainer)  # before training: a missing classifier is reported now
    if tracked is not None:
        every = _evaluate_callback(trainer).schedule.every
        print(f"evaluating every {every} iterations, the best kept: {tracked.protocol()} ({tracked.extractor.description})")
    result = trainer.train()
    if trainer.run is None:  # a process other than rank 0 of a multi-process run: rank 0 reports
        return EXIT_INTERRUPTED if result.interrupted else EXIT_TRAINING_FAILED if result.failure else 0
    return _report(trainer, result)


def _resumed_trainer(args: argparse.Namespace) -> Trainer:
    """The trainer of --resume RUN: only the options TrainConfig marks resumable may be given."""
    if args.out and Path(args.out).resolve() != Path(args.resume).resolve():
        raise ConfigError("--out and --resume name different folders; a resumed run stays in its own folder")
    may_change = resumable_fields(*CONFIGS)
    fixed = [
        flag_of(f, getattr(args, f.name))
        for cls in CONFIGS
        for f in fields(cls)
        if f.name not in may_change and getattr(args, f.name, None) is not None
    ]
    if args.data is not None:
        fixed.insert(0, "--data")
    if args.recipe is not None:
        fixed.insert(0, "--recipe")
    if args.lr is not None:
        fixed.append("--lr")
    if fixed:
        raise ConfigError(f"--resume keeps the run's own settings; drop {', '.join(fixed)}")
    trainer = Trainer.resume(args.resume, progress=not args.quiet, **{name: getattr(args, name) for name in may_change})
    if trainer.step >= trainer.total_steps():
        raise ConfigError(
            f"{args.resume} is already at step {trainer.step} of {trainer.total_steps()}; pass a larger --steps or --epochs to train further"
        )
    print(f"resuming {trainer.run_dir} at step {trainer.step} (epoch {trainer.epoch}), training to step {trainer.total_steps()}")
    return trainer


def _new_trainer(args: argparse.Namespace) -> Trainer:
    """The trainer of a new run: the options given over the config file over the recipe, layered and defaulted
    by `resolve_options` in `Trainer.from_options`, as from Python (a random seed unless given, recorded in the run)."""
    given = {f.name: getattr(args, f.name) for cls in CONFIGS for f in fields(cls) if getattr(args, f.name, None) is not None}
    file = read_config_file(args.config) if args.config is not None else None
    data = resolve_options(given, file)["data"]  # for the run directory's name, before any data is read
    run_dir = Path(args.out) if args.out else Path("runs") / f"{dataset_stem(data)}-{time.strftime('%Y%m%d-%H%M%S')}"
    if RunDir(run_dir).holds_run():
        raise ConfigError(f"{run_dir} already holds a run; continue it with --resume {run_dir} or pick another --out")
    trainer = Trainer.from_options(run_dir=run_dir, progress=not args.quiet, config_file=file, **given)
    mc, loaded = trainer.model_config, trainer.data
    if file is not None:
        _check_against_file(file, trainer, data_overridden=args.data is not None, given=given)
    if loaded.skipped:
        first = "; ".join(f"{n}: {r}" for n, r in loaded.skipped[:2])
        print(f"skipped {len(loaded.skipped)} file(s) that could not be decoded ({first}); see: dcgan data check {data}")
    if loaded.storage is Storage.SHARDS:
        assert loaded.shards is not None  # the storage says so
        workers = usable_workers(trainer.feed.workers)
        readers = f"{workers} DataLoader worker(s) (a divisor of {PARTS}, at most --workers)" if workers else "the training process"
        print(
            f"streaming {len(loaded)} images from {len(loaded.shards.shards)} shard(s), shuffled per (seed, epoch), "
            f"decoded batch by batch by {readers}"
        )
    elif loaded.storage is Storage.STREAM:
        print(f"streaming {len(loaded)} images from disk, decoded batch by batch by the DataLoader workers")
    elif loaded.from_cache:
        print(f"decoded images read from the cache ({default_cache_dir()})")
    print(
        f"training on {data} ({len(loaded)} images, {mc.image_size}x{mc.image_size}x{mc.channels}) "
        f"for {trainer.total_steps()} iterations of batch {trainer.config.batch_size} on {trainer.device}, seed {trainer.config.seed}"
    )
    print(f"run directory: {run_dir}")
    return trainer


def _check_against_file(file: ConfigFile, trainer: Trainer, data_overridden: bool, given: dict) -> None:
    """Say what the file set and what the command line changed; refuse data whose classes differ from the run's."""
    changed = sorted(flag_of(f, given[f.name]) for cls in CONFIGS for f in fields(cls) if f.name in given and f.name not in ("data", "recipe"))
    if data_overridden:
        changed.insert(0, "--data")
    print(f"options from {file.path}" + (f", with {', '.join(changed)} from the command line" if changed else ""))
    if data_overridden:
        return  # other data: other classes and another fingerprint are what was asked for
    classes = trainer.model_config.class_names
    if file.class_names is not None and tuple(classes) != file.class_names:
        raise ConfigError(
            f"the data's classes ({', '.join(classes) or 'none'}) differ from those of {file.path} "
            f"({', '.join(file.class_names)}); a conditional run needs the same classes"
        )
    if file.fingerprint and trainer.data.fingerprint() != file.fingerprint:
        print(f"note: the data differs from the data {file.path} was trained on, so the run will not repeat it exactly")


def _evaluate_callback(trainer: Trainer) -> Evaluate:
    """The trainer's --eval-every callback (every trainer has one: training.loop.default_callbacks)."""
    evaluate = trainer.callback(Evaluate)
    assert isinstance(evaluate, Evaluate)  # Trainer.callback is typed Callback | None
    return evaluate


def _report(trainer: Trainer, result) -> int:
    """The closing lines of rank 0, and the exit status."""
    run = trainer.run
    assert run is not None  # rank 0 has the run directory
    if result.interrupted:
        print(
            f"\ninterrupted at step {result.step}: checkpoint saved to {result.checkpoint}\ncontinue with: dcgan train --resume {run.root}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    if result.failure:
        f = result.failure
        print(
            f"\nstopped at step {f['step']}: {f['message']}"
            + (f" after {f['rollbacks']} rollback(s)" if f.get("rollbacks") else "")
            + f".\nHint: {f['hint']}\n"
            f"The last healthy checkpoint is {run.latest} (step {_checkpoint_step(run.root)}); "
            f"the failed state is in {run.failed}; events are in {run.metrics}",
            file=sys.stderr,
        )
        return EXIT_TRAINING_FAILED
    last = result.last
    print(
        f"done: {result.step} iterations ({result.epoch:.2f} epochs) in {result.seconds:.1f} s"
        + (f"; last loss_D {last['loss_d']:.3f} loss_G {last['loss_g']:.3f} D(x) {last['d_real']:.2f} D(G(z)) {last['d_fake']:.2f}" if last else "")
    )
    print(f"  samples (latest): {run.latest_samples}")
    print(f"  progress GIF:     {run.progress_gif}")
    print(f"  loss curves:      {run.losses_plot}")
    print(f"  checkpoint:       {result.checkpoint}")
    if trainer.health_events:
        counts = Counter(e["health"] for e in trainer.health_events)
        print(f"  health events:    {', '.join(f'{k} x{v}' for k, v in counts.items())} (details in {run.metrics})")
    if result.best:
        tracked = _evaluate_callback(trainer).tracked
        print(f"  best checkpoint:  {run.best} ({describe_best(result.best)}, {tracked.protocol() if tracked else 'see metrics.jsonl'})")
    print(f"  generate more:    dcgan generate {run.root} -n 64 --out {run.generated}")
    return 0


def _checkpoint_step(run: Path) -> str:
    try:
        return str(load_checkpoint(run).step)
    except DCGANError:
        return "?"


def _params(rows: list[dict]) -> str:
    return f"{sum(r['params'] for r in rows) / 1e6:.2f}M params, {sum(r['macs'] for r in rows) / 1e6:.1f}M MACs/image"


COMMANDS = {
    "train": Command(
        "train a DCGAN (with no options: a short demo on scikit-learn's digits)",
        TRAIN_EXAMPLES,
        _add_train_args,
        _run_train,
        old_words=lambda words: legacy_words(words, CONFIGS),
    )
}
