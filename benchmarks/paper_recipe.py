"""Benchmark (a check run by hand): `--recipe paper` trains the same G as the default of the code before issue 25, bit for bit.

Both trees train MNIST (`dcgan train --data mnist --seed 0 --steps N`), the old one with its defaults (the paper's
settings, which were the default then), the current one with `--recipe paper --ema`, one after the other on this
machine with the same threads; then every tensor of G (and D) in the two checkpoints is compared.

    git worktree add /tmp/old 78b0efd
    .venv/bin/python benchmarks/paper_recipe.py --old-src /tmp/old/src --steps 100
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[1]


def train(src: Path, out: Path, steps: int, data_dir: str, extra: list[str]) -> None:
    env = dict(os.environ, PYTHONPATH=str(src))
    cmd = [
        sys.executable,
        "-m",
        "dcgan",
        "train",
        "--data",
        "mnist",
        "--data-dir",
        data_dir,
        "--seed",
        "0",
        "--steps",
        str(steps),
        "--quiet",
        "--out",
        str(out),
        *extra,
    ]
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--old-src", required=True, help="src/ of the code before issue 25 (a git worktree of 78b0efd)")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data" / "mnist"))
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old, new = Path(tmp) / "old", Path(tmp) / "new"
        train(Path(args.old_src), old, args.steps, args.data_dir, [])
        train(REPO / "src", new, args.steps, args.data_dir, ["--recipe", "paper", "--ema"])
        a, b = (load_file(str(run / "checkpoints" / "latest.safetensors")) for run in (old, new))
    different = []
    for prefix in ("G.", "D.", "G_ema."):
        keys = sorted(k for k in a if k.startswith(prefix))
        same = [k for k in keys if k in b and torch.equal(a[k], b[k])]
        print(f"{prefix[:-1]:6} {len(same)} of {len(keys)} tensors identical after {args.steps} steps")
        different += [k for k in keys if k not in same]
    print("identical: " + ("yes, bit for bit" if not different else f"NO ({', '.join(different[:5])} ...)"))
    return 0 if not different else 1


if __name__ == "__main__":
    sys.exit(main())
