"""DistributedDataParallel on the CPU with gloo: two processes, rank 0 writes, resume is exact."""

import json
import os
import subprocess
import sys

import pytest
import torch

from dcgan.checkpoint import load_checkpoint

ARGS = [
    "--data",
    "digits",
    "--image-size",
    "16",
    "--z-dim",
    "8",
    "--width",
    "8",
    "--batch-size",
    "32",
    "--log-every",
    "3",
    "--checkpoint-every",
    "6",
    "--seed",
    "0",
    "--quiet",
]


def _dcgan(tmp_path, *args, timeout=240, env=None):
    env = {**os.environ, "DCGAN_CACHE_DIR": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "dcgan", *map(str, args)], capture_output=True, text=True, env=env, timeout=timeout)


@pytest.mark.kernels  # bit-exact against another run: rerun on the AVX2 paths by make test-avx2
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


def test_each_process_takes_a_disjoint_share_of_every_epoch(digits16):
    """Per-rank batches of the (seed, epoch) order: no image twice in an epoch across the processes."""
    from dcgan.training.distributed import DistInfo
    from dcgan.training.feed import DataFeed

    feeds = [DataFeed(digits16, 32, seed=3, device=torch.device("cpu"), dist=DistInfo(rank=r, world_size=2)) for r in range(2)]
    for epoch in range(2):
        order = feeds[0].epoch_order(epoch)
        seen = torch.cat([f.batch_indices(order, i) for f in feeds for i in range(f.steps_per_epoch)])
        assert len(seen) == 2 * 32 * feeds[0].steps_per_epoch == len(set(seen.tolist()))  # every row at most once
        assert not torch.equal(order, feeds[0].epoch_order(epoch + 1))


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
def test_two_processes_stream_from_disk_and_resume_exactly(tmp_path, digits16):
    """Data too large for the memory budget streams through DataLoader workers in every process."""
    from PIL import Image

    folder = tmp_path / "pngs"
    folder.mkdir()
    for i, image in enumerate(digits16.images[:400]):
        Image.fromarray(image[0].numpy()).save(folder / f"{i:04d}.png")
    common = [
        "--data",
        folder,
        "--image-size",
        "16",
        "--channels",
        "1",
        "--z-dim",
        "8",
        "--width",
        "8",
        "--batch-size",
        "32",
        "--log-every",
        "2",
        "--checkpoint-every",
        "4",
        "--workers",
        "1",
        "--seed",
        "0",
        "--quiet",
        "--nproc",
        "2",
    ]
    env = {"DCGAN_MEMORY_BUDGET": "0"}  # stream, whatever the machine's memory
    straight = _dcgan(tmp_path, "train", *common, "--steps", "8", "--out", tmp_path / "straight", env=env)
    assert straight.returncode == 0, straight.stderr[-2000:]
    assert "streaming 400 images from disk" in straight.stdout
    part = _dcgan(tmp_path, "train", *common, "--steps", "4", "--out", tmp_path / "resumed", env=env)
    assert part.returncode == 0, part.stderr[-2000:]
    resumed = _dcgan(tmp_path, "train", "--resume", tmp_path / "resumed", "--steps", "8", "--nproc", "2", "--quiet", env=env)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = load_checkpoint(tmp_path / "straight"), load_checkpoint(tmp_path / "resumed")
    assert b.step == 8 and a.state["steps_per_epoch"] == 400 // (32 * 2)
    for key in a.tensors:
        if key.startswith(("G.", "D.")):
            assert torch.equal(a.tensors[key], b.tensors[key]), key


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _kill_node(proc) -> None:
    """kill -9 a node: its torchrun agent and every process under it (torchrun starts its workers in sessions
    of their own, so the agent's process group alone would leave the trainer running)."""
    import signal

    children: dict[int, list[int]] = {}
    for stat in os.listdir("/proc"):
        if stat.isdigit():
            try:
                with open(f"/proc/{stat}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(stat))
    todo, everyone = [proc.pid], []
    while todo:
        pid = todo.pop()
        everyone.append(pid)
        todo += children.get(pid, [])
    for pid in everyone:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _nodes(tmp_path, port: int, run_id: str, *args):
    """Two torchrun "nodes" of one process each on this machine, meeting through a c10d rendezvous."""
    env = {**os.environ, "DCGAN_CACHE_DIR": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        "2",
        "--nproc-per-node",
        "1",
        "--rdzv-backend",
        "c10d",
        "--rdzv-endpoint",
        f"127.0.0.1:{port}",
        "--rdzv-id",
        run_id,
        "--max-restarts",
        "0",
        "-m",
        "dcgan",
        *map(str, args),
    ]
    return [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True) for _ in range(2)]


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
def test_two_nodes_survive_a_killed_node_and_resume_exactly(tmp_path):
    """torchrun --nnodes 2 with c10d rendezvous on 127.0.0.1; kill -9 one node mid-run; resume from the checkpoint:
    the weights equal those of an uninterrupted run of two processes on one node."""
    import time

    args = [*ARGS, "--checkpoint-every", "50"]  # the first checkpoint early, most of the run after it
    straight = _dcgan(tmp_path, "train", *args, "--steps", "300", "--nproc", "2", "--out", tmp_path / "straight")
    assert straight.returncode == 0, straight.stderr[-2000:]

    run = tmp_path / "nodes"
    nodes = _nodes(tmp_path, _free_port(), "first", "train", *args, "--steps", "300", "--out", run)
    latest = run / "checkpoints" / "latest.safetensors"
    deadline = time.time() + 180
    while not latest.exists() and time.time() < deadline and all(n.poll() is None for n in nodes):
        time.sleep(0.2)
    assert latest.exists(), nodes[0].communicate(timeout=60)[1][-2000:]
    _kill_node(nodes[1])  # one whole node goes down: its agent and its trainer
    nodes[1].communicate(timeout=60)
    try:  # the survivor fails its next collective and stops; should it wait on its peer instead, stop it too,
        nodes[0].communicate(timeout=90)  # as an operator would (README: "when a node dies")
    except subprocess.TimeoutExpired:
        _kill_node(nodes[0])
        nodes[0].communicate(timeout=60)
    killed_at = load_checkpoint(run).step
    assert 50 <= killed_at < 300

    again = _nodes(tmp_path, _free_port(), "second", "train", "--resume", run, "--steps", "300", "--quiet")
    outs = [n.communicate(timeout=240) for n in again]
    assert all(n.returncode == 0 for n in again), "\n".join(err[-1500:] for _, err in outs)
    a, b = load_checkpoint(tmp_path / "straight"), load_checkpoint(run)
    assert b.step == 300 and b.state["processes"] == 2
    for key in a.tensors:
        if key.startswith(("G.", "D.")):
            assert torch.equal(a.tensors[key], b.tensors[key]), key
