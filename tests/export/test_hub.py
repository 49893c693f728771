"""The Hugging Face Hub: `dcgan export --format hub`, loading such a folder, and hf:// and `dcgan push` offline."""

import json
import time

import numpy as np
import pytest
import torch
from PIL import Image

from dcgan.checkpoint import load_checkpoint
from dcgan.cli import EXIT_USER_ERROR
from dcgan.errors import CheckpointError
from dcgan.export.hub import HUB_FILES, HUB_TAGS
from dcgan.sampling import generate, sample_z
from dcgan.training import Trainer

from conftest import TINY, one_line_error, run_cli


def snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("hub-run") / "run"
    Trainer.from_options(run_dir=root, data="digits", progress=False, steps=2, batch_size=16, seed=0, **TINY).train()
    return root


@pytest.fixture(scope="module")
def hub_folder(run, tmp_path_factory):
    out = tmp_path_factory.mktemp("hub") / "folder"
    assert run_cli("export", run, "--format", "hub", "--out", out, "--license", "mit") == 0
    return out


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network, whatever the machine: an empty Hub cache, offline mode and an endpoint that refuses at once."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "1")
    monkeypatch.setenv("HF_HUB_DOWNLOAD_TIMEOUT", "1")
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-home" / "hub"))


def test_hub_folder_layout_and_front_matter(hub_folder, run):
    assert sorted(p.name for p in hub_folder.iterdir()) == sorted(HUB_FILES)
    config = json.loads((hub_folder / "config.json").read_text())
    assert config == load_checkpoint(run).model_config.to_dict()
    readme = (hub_folder / "README.md").read_text()
    assert readme.startswith("---\n")
    front, body = readme[4:].split("\n---\n", 1)
    lines = front.splitlines()
    assert "library_name: dcgan" in lines
    assert lines[lines.index("tags:") + 1 :][: len(HUB_TAGS)] == [f"- {t}" for t in HUB_TAGS]
    assert 'license: "mit"' in lines
    assert lines[lines.index("datasets:") + 1] == '- "digits"'
    assert body.lstrip().startswith("# DCGAN generator: 16x16 grey images")


def test_hub_folder_loads_like_the_run(hub_folder, run, tmp_path):
    z = sample_z(8, TINY["z_dim"], "normal", torch.Generator().manual_seed(0))
    from_run = generate(load_checkpoint(run).build_generator(), z)
    from_folder = load_checkpoint(hub_folder)
    assert not from_folder.resumable
    assert torch.equal(generate(from_folder.build_generator(), z), from_run)
    # the CLI reads the folder too, and draws the same grid as from the run
    assert run_cli("generate", run, "-n", "4", "--out", tmp_path / "run.png") == 0
    assert run_cli("generate", hub_folder, "-n", "4", "--out", tmp_path / "folder.png") == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "run.png")), np.asarray(Image.open(tmp_path / "folder.png")))


def test_hub_export_refuses_to_overwrite_and_lists(run, hub_folder, capsys):
    before = snapshot(hub_folder)
    assert run_cli("export", run, "--format", "hub", "--out", hub_folder) == EXIT_USER_ERROR
    assert "--force" in one_line_error(capsys.readouterr().err)
    assert run_cli("export", run, "--format", "hub,onnx", "--out", hub_folder / "x") == EXIT_USER_ERROR
    assert "alone" in one_line_error(capsys.readouterr().err)
    assert snapshot(hub_folder) == before


@pytest.fixture
def sleeps(monkeypatch):
    """Every wait asked of time.sleep (the Hub client's retry back-off waits through it), recorded and skipped:
    'answers at once' as a count of waits, not a wall-clock bound that a busy machine can miss."""
    waits = []
    monkeypatch.setattr(time, "sleep", waits.append)
    return waits


def test_hf_reference_offline_is_one_line(offline, sleeps, tmp_path, capsys):
    with pytest.raises(CheckpointError, match="nobody/no-such-dcgan"):
        load_checkpoint("hf://nobody/no-such-dcgan")
    assert run_cli("generate", "hf://nobody/no-such-dcgan", "-n", "4", "--out", tmp_path / "g.png") == EXIT_USER_ERROR
    line = one_line_error(capsys.readouterr().err)
    assert "could not reach" in line and "nobody/no-such-dcgan" in line
    assert run_cli("generate", "hf://justaname", "--out", tmp_path / "g.png") == EXIT_USER_ERROR
    assert "hf://owner/name" in one_line_error(capsys.readouterr().err)
    assert not (tmp_path / "g.png").exists()
    assert sleeps == [], "no retries, no waiting"


def test_push_offline_is_one_line_and_writes_nothing(offline, run, capsys):
    before = snapshot(run)
    assert run_cli("push", run, "nobody/dcgan-test") == EXIT_USER_ERROR
    line = one_line_error(capsys.readouterr().err)
    assert "Hugging Face Hub" in line and "nobody/dcgan-test" in line
    assert run_cli("push", run, "not-a-repo-id") == EXIT_USER_ERROR
    assert "owner/name" in one_line_error(capsys.readouterr().err)
    assert snapshot(run) == before


def test_push_unreachable_endpoint_is_one_line(offline, sleeps, run, monkeypatch, capsys):
    """Not offline by flag, but the Hub refuses: still one line, quickly."""
    monkeypatch.delenv("HF_HUB_OFFLINE")
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    assert run_cli("push", run, "nobody/dcgan-test") == EXIT_USER_ERROR
    line = one_line_error(capsys.readouterr().err)
    assert "nobody/dcgan-test" in line
    assert sleeps == [], "no retries, no waiting"


def test_hf_reference_reads_the_hub_cache(hub_folder, run, monkeypatch, tmp_path):
    """hf://owner/name asks huggingface_hub for generator.safetensors (cache first) and loads it like the folder."""
    import huggingface_hub

    asked = []

    def fake_download(repo_id, filename, local_files_only=False, **kwargs):
        asked.append((repo_id, filename, local_files_only))
        return str(hub_folder / filename)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    z = sample_z(4, TINY["z_dim"], "normal", torch.Generator().manual_seed(1))
    ckpt = load_checkpoint("hf://someone/dcgan-digits")
    assert asked == [("someone/dcgan-digits", "generator.safetensors", True)]
    assert torch.equal(generate(ckpt.build_generator(), z), generate(load_checkpoint(run).build_generator(), z))
    assert run_cli("generate", "hf://someone/dcgan-digits/generator.safetensors", "-n", "4", "--out", tmp_path / "g.png") == 0
