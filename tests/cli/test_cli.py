"""The `dcgan` command end to end, in-process and as a subprocess, writing into tmp_path."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from conftest import run_cli

TINY_ARGS = ["--image-size", "16", "--z-dim", "8", "--width", "8", "--batch-size", "64", "--seed", "1", "--quiet", "--device", "cpu"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("cli") / "run"
    assert run_cli("train", "--data", "digits", "--steps", "6", "--out", run, *TINY_ARGS) == 0
    return run


def test_train_writes_a_complete_run(trained):
    for name in ("config.json", "samples.png", "progress.gif", "losses.png", "metrics.jsonl", "checkpoints/latest.safetensors"):
        assert (trained / name).exists(), name


def test_generate_grid_and_folder(trained, tmp_path, capsys):
    assert run_cli("generate", trained, "-n", "9", "--seed", "3", "--out", tmp_path / "grid.png") == 0
    with Image.open(tmp_path / "grid.png") as im:
        assert im.size == (2 + 3 * 18, 2 + 3 * 18)  # 3x3 grid of 16x16 with 2-pixel padding
    assert run_cli("generate", trained / "checkpoints" / "latest.safetensors", "-n", "4", "--out", f"{tmp_path}/many/") == 0
    files = sorted((tmp_path / "many").glob("*.png"))
    assert len(files) == 4
    with Image.open(files[0]) as im:
        assert im.size == (16, 16) and im.mode == "L"
    # The same seed gives the same grid.
    assert run_cli("generate", trained, "-n", "9", "--seed", "3", "--out", tmp_path / "again.png") == 0
    assert (tmp_path / "again.png").read_bytes() == (tmp_path / "grid.png").read_bytes()


def test_info_text_and_json(trained, capsys):
    assert run_cli("info", trained) == 0
    out = capsys.readouterr().out
    assert "step 6" in out and "digits" in out and "params" in out
    assert run_cli("info", trained, "--json", "--layers") == 0
    info = json.loads(capsys.readouterr().out.split("\n\nGenerator")[0])
    assert info["step"] == 6 and info["model"]["image_size"] == 16 and info["generator"]["params"] > 0


def test_resume_from_cli(trained, tmp_path, capsys):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(trained, run)
    assert run_cli("train", "--resume", run, "--steps", "9", "--quiet") == 0
    assert "resuming" in capsys.readouterr().out
    assert json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 9
    # Already done: a clear refusal.
    assert run_cli("train", "--resume", run, "--steps", "9", "--quiet") == 2
    assert "already at step 9" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--image-size", "48", "--out", "{tmp}/r"], "unsupported image size 48"),
        (["train", "--data", "mnist", "--data-dir", "{tmp}/nowhere", "--out", "{tmp}/r"], "does not exist"),
        (["train", "--data", "mnist", "--data-dir", "{tmp}", "--out", "{tmp}/r"], "train-images-idx3-ubyte.gz"),
        (["train", "--data", "imagenet", "--out", "{tmp}/r"], "unknown dataset"),
        (["train", "--batch-size", "0"], "positive whole number"),
        (["train", "--steps", "5", "--epochs", "1"], "not allowed with argument"),
        (["train", "--lr", "abc"], "expected a positive number"),
        (["generate", "{tmp}/missing", "--out", "{tmp}/x.png"], "does not exist"),
        (["generate", "{tmp}", "--out", "{tmp}/x.png"], "no checkpoint"),
        (["info", "{tmp}/garbage.safetensors"], "not a readable dcgan checkpoint"),
        (["train", "--resume", "{tmp}"], "no checkpoint"),
    ],
)
def test_user_mistakes_are_one_line_and_non_zero(argv, message, tmp_path):
    (tmp_path / "garbage.safetensors").write_bytes(b"\x00" * 100)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    proc = subprocess.run([sys.executable, "-m", "dcgan", *argv], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    err = proc.stderr.strip()
    assert message in err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err


def test_generate_refuses_unknown_suffix(trained, tmp_path, capsys):
    assert run_cli("generate", trained, "--out", tmp_path / "grid.xyz") == 2
    assert "use an image file" in capsys.readouterr().err


def test_existing_run_is_never_overwritten(trained, capsys):
    before = (trained / "checkpoints" / "latest.safetensors").read_bytes()
    assert run_cli("train", "--out", trained, "--steps", "2", *TINY_ARGS) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (trained / "checkpoints" / "latest.safetensors").read_bytes() == before


def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(tmp_path):
    run = tmp_path / "run"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dcgan", "train", "--steps", "100000", "--out", str(run), "--log-every", "1", *TINY_ARGS],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.time() + 120
        metrics = run / "metrics.jsonl"
        while time.time() < deadline and not (metrics.exists() and len(metrics.read_text().splitlines()) >= 3):
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted at step" in err and "--resume" in err
    from dcgan.checkpoint import load_checkpoint

    ck = load_checkpoint(run)
    assert ck.step >= 3
    assert ck.step == json.loads(Path(run / "metrics.jsonl").read_text().splitlines()[-1])["step"]


def test_help_has_examples():
    for command in ("train", "generate", "info"):
        proc = subprocess.run([sys.executable, "-m", "dcgan", command, "--help"], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0 and "examples:" in proc.stdout
