"""DistributedDataParallel on the CPU with gloo: two processes, rank 0 writes, resume is exact."""

import json
import os
import subprocess
import sys

import pytest
import torch

from dcgan.checkpoint import load_checkpoint

ARGS = ["--data", "digits", "--image-size", "16", "--z-dim", "8", "--width", "8", "--batch-size", "32",
        "--log-every", "3", "--checkpoint-every", "6", "--seed", "0", "--quiet"]


def _dcgan(tmp_path, *args, timeout=240):
    env = {**os.environ, "DCGAN_CACHE_DIR": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "dcgan", *map(str, args)], capture_output=True, text=True, env=env, timeout=timeout)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
def test_two_processes_train_resume_exactly_and_only_rank0_writes(tmp_path):
    straight = _dcgan(tmp_path, "train", *ARGS, "--steps", "12", "--nproc", "2", "--out", tmp_path / "straight")
    assert straight.returncode == 0, straight.stderr[-2000:]
    assert "done: 12 iterations" in straight.stdout and straight.stdout.count("done:") == 1  # rank 0 alone reports
    steps = [json.loads(line)["step"] for line in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [3, 6, 9, 12]  # one writer: every log line once
    ckpt = load_checkpoint(tmp_path / "straight")
    assert ckpt.state["processes"] == 2 and ckpt.state["steps_per_epoch"] == 1437 // (32 * 2)

    part = _dcgan(tmp_path, "train", *ARGS, "--steps", "6", "--nproc", "2", "--out", tmp_path / "resumed")
    assert part.returncode == 0, part.stderr[-2000:]
    resumed = _dcgan(tmp_path, "train", "--resume", tmp_path / "resumed", "--steps", "12", "--nproc", "2", "--quiet")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = load_checkpoint(tmp_path / "straight"), load_checkpoint(tmp_path / "resumed")
    assert b.step == 12
    for key in a.tensors:
        if key.startswith(("G.", "D.")):
            assert torch.equal(a.tensors[key], b.tensors[key]), key

    # Resuming with another number of processes is refused in one line.
    single = _dcgan(tmp_path, "train", "--resume", tmp_path / "resumed", "--steps", "14", "--quiet")
    assert single.returncode == 2 and "number of processes" in single.stderr and "Traceback" not in single.stderr


def test_sync_bn_on_cpu_is_refused_in_one_line(tmp_path):
    out = _dcgan(tmp_path, "train", *ARGS, "--steps", "2", "--sync-bn", "--out", tmp_path / "run")
    assert out.returncode == 2 and "SyncBatchNorm" in out.stderr
