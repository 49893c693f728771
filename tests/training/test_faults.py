"""Crash tests: `dcgan train` killed with SIGKILL at random moments (often mid-checkpoint) and
stopped with SIGTERM must always leave a run that loads and resumes.

Every write of a checkpoint goes through `fileio.atomic_write_bytes`: a temporary
`.NAME.tmp-PID` beside the target, fsync, rename. A SIGKILL can leave such a temporary
behind; it must never be taken for a checkpoint nor get in the way of a resume.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dcgan.checkpoint import load_checkpoint, resolve_checkpoint

TINY_TRAIN = ["--data", "digits", "--image-size", "16", "--z-dim", "8", "--width", "8", "--batch-size", "32", "--seed", "0", "--quiet"]
TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.tmp-(?P<pid>\d+)$")  # fileio.atomic_write_bytes' temporaries
TIMEOUT = 180


def dcgan(*args) -> list[str]:
    return [sys.executable, "-m", "dcgan", *map(str, args)]


def env_for(tmp_path: Path) -> dict:
    return {**os.environ, "DCGAN_CACHE_DIR": str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1"}


def wait_for(condition, what: str, proc: subprocess.Popen, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"training ended (exit {proc.returncode}) before {what}:\n{out}\n{err}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None


def last_logged_step(run: Path) -> int:
    lines = [line for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return json.loads(lines[-1])["step"]


@dataclass
class Soak:
    """What a series of kills did."""

    kills: int = 0
    kills_mid_write: int = 0  # kills that left a checkpoint temporary behind
    resumes: int = 0
    resumes_failed: int = 0
    steps: list[int] = field(default_factory=list)  # the loadable step after each kill
    leftovers: set[str] = field(default_factory=set)

    def summary(self) -> str:
        return (
            f"{self.kills} kills ({self.kills_mid_write} mid-checkpoint-write), {self.resumes} resumes "
            f"({self.resumes_failed} failed), loadable steps after each kill / resume {self.steps}, "
            f"{len(self.leftovers)} temporaries left behind"
        )


def check_run_after_kill(run: Path, killed_pid: int, soak: Soak) -> int:
    """The run still loads; temporaries (if any) are not checkpoints. Returns the loadable step."""
    ckpt_dir = run / "checkpoints"
    assert resolve_checkpoint(run) == ckpt_dir / "latest.safetensors"
    ck = load_checkpoint(run)
    assert ck.step >= 1 and ck.model_config.image_size == 16
    ck.build_generator()
    ck.build_discriminator()
    for path in ckpt_dir.iterdir():
        temp = TEMP_NAME.match(path.name)
        if temp:
            assert not path.name.endswith(".safetensors"), "a temporary must not look like a checkpoint"
            soak.leftovers.add(path.name)
            if int(temp["pid"]) == killed_pid and temp["target"] == "latest.safetensors":
                soak.kills_mid_write += 1
        elif path.suffix == ".safetensors":
            load_checkpoint(path)  # every real checkpoint is complete (latest, best, failed ...)
    return ck.step


def kill_once(run: Path, env: dict, rng: random.Random, soak: Soak, fresh: bool, mid_write: bool = False) -> int:
    """Start training (fresh for 400 steps, or resuming RUN with a budget it cannot reach), SIGKILL it
    after it has written a checkpoint -- at a random moment 0.05-0.6 s later, or (mid_write) the instant
    its next checkpoint temporary appears -- and check what it left. Returns the loadable step."""
    latest = run / "checkpoints" / "latest.safetensors"
    before = inode(latest)
    argv = (
        dcgan("train", *TINY_TRAIN, "--steps", 400, "--checkpoint-every", 1, "--log-every", 1, "--out", run)
        if fresh
        else dcgan("train", "--resume", run, "--steps", 1_000_000, "--quiet")
    )
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        # Fresh: the first checkpoint exists. Resumed: it has written a new one (a new inode: os.replace).
        wait_for(lambda: inode(latest) not in (None, before), "a checkpoint", proc)
        if mid_write:  # spin (no sleep) until the next write has begun: os.replace has not happened yet
            temp = latest.with_name(f".{latest.name}.tmp-{proc.pid}")
            deadline = time.monotonic() + 30
            while not temp.exists() and time.monotonic() < deadline and proc.poll() is None:
                pass
        else:
            time.sleep(rng.uniform(0.05, 0.6))
        assert proc.poll() is None, "training finished before the kill"
        os.kill(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    soak.kills += 1
    if not fresh:  # a resumed run that got as far as a new checkpoint: it did resume where the last one left off
        assert f"at step {soak.steps[-1]} " in out, out
        soak.resumes += 1
    step = check_run_after_kill(run, proc.pid, soak)
    assert not soak.steps or step >= soak.steps[-1], f"steps went backwards: {soak.steps} then {step}"
    soak.steps.append(step)
    return step


def resume_to(run: Path, env: dict, target: int, soak: Soak) -> None:
    """`dcgan train --resume RUN --steps TARGET` finishes cleanly at TARGET."""
    # A garbage temporary of a process that never finished (a dead pid's) must be ignored.
    (run / "checkpoints" / ".latest.safetensors.tmp-999999999").write_bytes(b"\x00" * 64)
    proc = subprocess.run(dcgan("train", "--resume", run, "--steps", target, "--quiet"), capture_output=True, text=True, env=env, timeout=TIMEOUT)
    soak.resumes += 1
    if proc.returncode != 0:
        soak.resumes_failed += 1
    assert proc.returncode == 0, proc.stderr
    assert f"at step {target - 3}" in proc.stdout
    assert load_checkpoint(run).step == target
    assert last_logged_step(run) == target
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines() if '"loss_d"' in line]
    assert steps == sorted(steps) and len(steps) == len(set(steps)), "metrics.jsonl repeats or reorders steps"
    soak.steps.append(target)


def kill_resume_cycles(tmp_path: Path, cycles: int, seed: int, finish_every_cycle: bool = True) -> Soak:
    """`cycles` SIGKILLs, every third one aimed at a checkpoint write in progress. With finish_every_cycle,
    each is followed by a resume that must finish cleanly 3 steps later; without (cheaper), the next
    killed run is itself a resume, and one clean finish ends the series."""
    run = tmp_path / "run"
    env = env_for(tmp_path)
    rng = random.Random(seed)
    soak = Soak()
    for i in range(cycles):
        step = kill_once(run, env, rng, soak, fresh=(i == 0), mid_write=(i % 3 == 1))
        if finish_every_cycle or i == cycles - 1:
            resume_to(run, env, step + 3, soak)
    return soak


@pytest.mark.kernels  # bit-exact against another run: rerun on the AVX2 paths by make test-avx2
def test_kill_9_during_training_then_resume(tmp_path):
    """Three kills: of a fresh run, then twice of a resumed one; then a resume that finishes (4 processes)."""
    soak = kill_resume_cycles(tmp_path, cycles=3, seed=0, finish_every_cycle=False)
    print(soak.summary())
    assert soak.kills == 3 and soak.resumes == 3 and soak.resumes_failed == 0
    assert soak.steps == sorted(soak.steps)  # (the soak also checks that aimed kills do land mid-write)


@pytest.mark.slow
def test_kill_9_soak(tmp_path, record_property):
    start = time.perf_counter()
    soak = kill_resume_cycles(tmp_path, cycles=30, seed=1)
    record_property("soak", soak.summary())
    print(f"\nsoak: {soak.summary()} in {time.perf_counter() - start:.0f} s")
    assert soak.kills == 30 and soak.resumes == 30 + 29 and soak.resumes_failed == 0  # 29 killed resumes, 30 finished
    assert soak.kills_mid_write >= 5, "kills aimed at checkpoint writes should mostly land in one"
    assert soak.steps == sorted(soak.steps), "a step count went backwards"


def test_sigterm_saves_a_checkpoint_and_resumes(tmp_path):
    run = tmp_path / "run"
    env = env_for(tmp_path)
    proc = subprocess.Popen(
        dcgan("train", *TINY_TRAIN, "--steps", 100000, "--log-every", 1, "--out", run),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        metrics = run / "metrics.jsonl"
        wait_for(lambda: metrics.exists() and len(metrics.read_text().splitlines()) >= 3, "3 logged steps", proc)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "interrupted at step" in err and "--resume" in err and "Traceback" not in err
    ck = load_checkpoint(run)
    assert ck.step >= 3
    assert ck.step == last_logged_step(run)
    assert not [p.name for p in (run / "checkpoints").iterdir() if TEMP_NAME.match(p.name)], "a clean stop leaves no temporaries"

    target = ck.step + 2
    resumed = subprocess.run(dcgan("train", "--resume", run, "--steps", target, "--quiet"), capture_output=True, text=True, env=env, timeout=TIMEOUT)
    assert resumed.returncode == 0, resumed.stderr
    assert load_checkpoint(run).step == target == last_logged_step(run)
