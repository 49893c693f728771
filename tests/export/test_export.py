"""`dcgan export`: the generator alone as safetensors, ONNX and TorchScript, each checked against PyTorch, with a model card."""

import copy
import dataclasses
import io
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from dcgan import export
from dcgan.checkpoint import GENERATOR_FORMAT, load_checkpoint
from dcgan.cli import EXIT_EXPORT_MISMATCH
from dcgan.errors import CheckpointError, ConfigError
from dcgan.export import (
    CARD_JSON,
    CARD_MARKDOWN,
    EXPORT_FORMATS,
    check_onnx,
    export_files,
    model_card,
    model_card_markdown,
    parse_formats,
    run_metrics,
)
from dcgan.sampling import generate, sample_z
from dcgan.training import Trainer

from conftest import one_line_error, run_cli

pytestmark = pytest.mark.kernels  # depends on the CPU's kernels: make test-avx2 reruns it (pyproject's markers)

ONNX_TOLERANCE = 1e-4
# Two tiny models between them cover 28x28 (7x7 base map) and 32x32, grey and RGB, both G blocks and both priors.
MODELS = {
    "28x1": dict(image_size=28, channels=1, g_block="transposed", prior="normal"),
    "32x3": dict(image_size=32, channels=3, g_block="nearest", prior="uniform"),
}
EVAL = ["--eval-every", "2", "--eval-samples", "64", "--eval-features", "pixels"]


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny trained run per model. The 28x28 one is made by the CLI with --eval-every and then scored by
    `dcgan evaluate`, so that its metrics.jsonl and eval/ hold what the card picks up."""
    root = tmp_path_factory.mktemp("export-runs")
    made = {}
    for name, options in MODELS.items():
        run = root / name
        if name == "28x1":
            assert (
                run_cli(
                    "train",
                    "--data",
                    "digits",
                    "--steps",
                    "4",
                    "--batch-size",
                    "32",
                    "--z-dim",
                    "8",
                    "--width",
                    "8",
                    "--image-size",
                    "28",
                    "--seed",
                    "0",
                    "--quiet",
                    "--device",
                    "cpu",
                    "--out",
                    run,
                    *EVAL,
                )
                == 0
            )
            assert run_cli("evaluate", run, "--features", "pixels", "--metrics", "fid,kid", "--num-samples", "64", "--floors", "--device", "cpu") == 0
        else:
            Trainer.from_options(run_dir=run, data="digits", progress=False, steps=2, batch_size=32, z_dim=8, width=8, seed=0, **options).train()
        made[name] = run
    return made


@pytest.fixture(scope="module", params=list(MODELS))
def exported(request, runs):
    """(checkpoint, G, {format name or card file: ExportedFile}) of every format, built once per model."""
    ckpt = load_checkpoint(runs[request.param])
    files = export_files(ckpt, list(EXPORT_FORMATS), run_metrics(runs[request.param], ckpt.step))
    return ckpt, ckpt.build_generator(), {f.format if f.format != "card" else f.name: f for f in files}


def _prior_z(G, n, seed=1):
    c = G.config
    return sample_z(n, c.z_dim, c.prior, torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------- #
# The three formats
# --------------------------------------------------------------------------- #
def test_every_file_passes_its_check(exported):
    _, _, files = exported
    for name, fmt in EXPORT_FORMATS.items():
        f = files[name]
        assert f.name == "generator" + fmt.suffix and f.passed, (f.name, f.max_diff)
    assert files["safetensors"].max_diff == 0.0  # the same weights through the same code: bit for bit


def test_safetensors_reloads_as_a_checkpoint_and_generates_identical_images(exported, tmp_path):
    ckpt, G, files = exported
    path = tmp_path / "generator.safetensors"
    path.write_bytes(files["safetensors"].data)
    loaded = load_checkpoint(path)
    assert loaded.format == GENERATOR_FORMAT and not loaded.resumable
    assert loaded.model_config == ckpt.model_config and loaded.step == ckpt.step
    assert not loaded.has("D") and not any(k.startswith(("opt_", "extra.")) for k in loaded.tensors)
    assert loaded.state["data"] == ckpt.state["data"] and "health" not in loaded.state
    z = _prior_z(G, 6)
    assert torch.equal(generate(loaded.build_generator(), z), generate(G, z))
    with pytest.raises(CheckpointError, match="no discriminator"):
        loaded.build_discriminator()
    with safe_open(str(path), "pt") as f:
        card = json.loads(f.metadata()["model_card"])
    assert card["model"]["z_dim"] == ckpt.model_config.z_dim and "files" not in card


@pytest.mark.parametrize("batch", [1, 5])
def test_onnx_in_onnxruntime_matches_pytorch(exported, batch):
    import onnx
    import onnxruntime as ort

    ckpt, G, files = exported
    mc = ckpt.model_config
    data = files["onnx"].data
    model = onnx.load_from_string(data)
    (inp,), (out,) = model.graph.input, model.graph.output
    assert inp.name == "z" and out.name == "images"
    assert inp.type.tensor_type.shape.dim[0].dim_param  # a named, dynamic batch dimension
    assert [d.dim_value for d in out.type.tensor_type.shape.dim[1:]] == [mc.channels, mc.image_size, mc.image_size]
    props = {p.key: p.value for p in model.metadata_props}
    assert props["dcgan.z_dim"] == str(mc.z_dim) and props["dcgan.prior"] == mc.prior and props["dcgan.output_range"] == "[-1, 1]"
    assert json.loads(props["model_card"])["training"]["data"]["sha256"] == ckpt.state["data"]["fingerprint"]

    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    z = _prior_z(G, batch)
    images = session.run(["images"], {"z": z.numpy()})[0]
    assert images.shape == (batch, mc.channels, mc.image_size, mc.image_size) and images.dtype == np.float32
    with torch.no_grad():
        expected = G(z).numpy()
    assert np.abs(images - expected).max() <= ONNX_TOLERANCE
    assert images.min() >= -1 and images.max() <= 1


def test_check_onnx_catches_a_file_of_another_generator(exported):
    ckpt, G, files = exported
    assert check_onnx(files["onnx"].data, G) <= ONNX_TOLERANCE
    other = copy.deepcopy(G)
    output_layer = [m for m in other.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))][-1]
    with torch.no_grad():
        output_layer.bias += 0.01  # every pixel moves by ~0.01 before the tanh
    assert check_onnx(files["onnx"].data, other) > 10 * ONNX_TOLERANCE


@pytest.mark.parametrize("batch", [1, 5])
def test_torchscript_matches_pytorch(exported, batch):
    ckpt, G, files = exported
    extra = {CARD_JSON: ""}
    with warnings.catch_warnings():  # PyTorch has deprecated TorchScript, and says so on every load
        warnings.simplefilter("ignore")
        module = torch.jit.load(io.BytesIO(files["torchscript"].data), map_location="cpu", _extra_files=extra)
    assert json.loads(extra[CARD_JSON])["model"]["z_dim"] == ckpt.model_config.z_dim
    z = _prior_z(G, batch)
    with torch.no_grad():
        assert torch.allclose(module(z), G(z), rtol=0, atol=1e-6)


# --------------------------------------------------------------------------- #
# The model card
# --------------------------------------------------------------------------- #
def test_card_has_every_field(exported):
    ckpt, G, files = exported
    mc = ckpt.model_config
    card = json.loads(files[CARD_JSON].data)
    model, training = card["model"], card["training"]
    assert model["z_dim"] == mc.z_dim and "nz" in model["z_dim_means"]
    assert model["prior"] == mc.prior and model["sample_z"]["torch"] and model["sample_z"]["numpy"]
    assert model["image_size"] == mc.image_size and model["channels"] == mc.channels
    assert model["output"]["range"] == [-1.0, 1.0] and model["output"]["shape"] == ["batch", mc.channels, mc.image_size, mc.image_size]
    assert "127.5" in model["to_uint8"]
    assert model["parameters"] == sum(p.numel() for p in G.parameters()) and model["g_block"] == mc.g_block
    assert training["data"]["name"] == "digits" and training["data"]["num_images"] == ckpt.state["data"]["num_images"]
    assert training["data"]["sha256"] == ckpt.state["data"]["fingerprint"] and len(training["data"]["sha256"]) == 64
    assert training["step"] == ckpt.step and training["epoch"] > 0 and training["batch_size"] == 32
    assert training["lr_g"] == training["lr_d"] == ckpt.state["train_config"]["lr_g"] and training["seed"] == 0
    assert (
        training["loss"] == "non-saturating"
        and training["r1_gamma"] == ckpt.state["train_config"]["r1_gamma"]
        and training["augment"] == "none"
        and training["precision"] in ("fp32", "bf16")
    )
    assert training["elapsed_s"] > 0 and training["saved_at"] and training["dcgan_version"] and training["torch_version"]
    assert set(card["usage"]) == set(EXPORT_FORMATS)
    assert all(f"{mc.z_dim}" in code for code in card["usage"].values())
    assert "1511.06434" in card["citation"] and "Radford" in card["paper"]
    listed = {f["name"]: f for f in card["files"]}
    for name in EXPORT_FORMATS:
        f = files[name]
        assert listed[f.name]["bytes"] == len(f.data) and listed[f.name]["max_diff"] == f.max_diff
    markdown = files[CARD_MARKDOWN].data.decode()
    assert f"{mc.z_dim} numbers" in markdown and training["data"]["sha256"] in markdown and "```bibtex" in markdown
    assert markdown == model_card_markdown(card)


def test_the_usage_snippet_for_onnx_runs(exported, tmp_path, monkeypatch):
    """The card's ONNX snippet, run as written next to the exported file."""
    _, _, files = exported
    (tmp_path / "generator.onnx").write_bytes(files["onnx"].data)
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(json.loads(files[CARD_JSON].data)["usage"]["onnx"], scope)
    assert scope["pixels"].dtype == np.uint8 and scope["images"].shape[0] == 16


def test_card_says_when_nothing_was_measured(runs):
    ckpt = load_checkpoint(runs["32x3"])
    assert run_metrics(runs["32x3"], ckpt.step) == []
    card = model_card(ckpt, [])
    assert card["metrics"] == [] and "no metrics recorded" in card["metrics_note"] and "dcgan evaluate" in card["metrics_note"]
    assert "No metrics recorded" in model_card_markdown(card)


def test_card_of_the_evaluated_run_holds_both_sources(runs):
    ckpt = load_checkpoint(runs["28x1"])
    metrics = run_metrics(runs["28x1"], ckpt.step)
    sources = {m["source"] for m in metrics}
    assert sources == {f"eval/step_{ckpt.step:07d}-pixels.json", "metrics.jsonl"}
    evaluated = {m["name"]: m for m in metrics if m["source"].startswith("eval/")}
    assert set(evaluated) == {"fid", "kid", "kid_std"} and evaluated["fid"]["floor"] is not None
    assert "64 samples" in evaluated["fid"]["protocol"] and evaluated["fid"]["lower_is_better"]


def _write_report(run: Path, step: int, fid: float, floor: float | None = None) -> None:
    protocol = {
        "features": "pixels",
        "extractor": "raw pixels",
        "real_data": "digits",
        "real_split": "train",
        "num_real": 500,
        "num_generated": 500,
        "seed": 0,
        "metrics": {"fid": "Fréchet distance"},
        "lower_is_better": {"fid": True},
        "step": step,
    }
    rows = [{"subject": "generator", "n": 500, "fid": fid, "class_shares": {"0": 0.1}}]
    if floor is not None:
        rows.append({"subject": "real test (floor)", "n": 500, "fid": floor})
    (run / "eval").mkdir(parents=True, exist_ok=True)
    (run / "eval" / f"step_{step:07d}-pixels.json").write_text(json.dumps({"protocol": protocol, "results": rows}))


def test_run_metrics_picks_the_checkpoint_step_only(tmp_path):
    run = tmp_path / "run"
    _write_report(run, 4, 40.0)
    _write_report(run, 6, 30.0, floor=2.0)
    (run / "eval" / "step_0000006-broken.json").write_text("{not json")
    records = [
        {"step": 4, "loss_d": 1.0},
        {"step": 4, "fid": 44.0, "eval": "pixels features, 500 generated vs 500 real"},
        {"step": 6, "loss_d": 0.9},
        {"step": 6, "fid": 33.0, "eval": "pixels features, 500 generated vs 500 real"},
        {"step": 6, "health": "collapse", "message": "x"},
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records) + "garbage line\n")

    found = run_metrics(run, 6)
    assert [(m["name"], m["value"], m["source"]) for m in found] == [("fid", 30.0, "eval/step_0000006-pixels.json"), ("fid", 33.0, "metrics.jsonl")]
    assert found[0]["floor"] == 2.0 and "digits train split, 500 images" in found[0]["protocol"]
    assert "--eval-every" in found[1]["protocol"] and "500 generated" in found[1]["protocol"]
    assert [m["value"] for m in run_metrics(run, 4)] == [40.0, 44.0]
    assert run_metrics(run, 5) == [] and run_metrics(tmp_path / "nowhere", 6) == []
    # A best checkpoint whose FID line a rollback dropped: the state's record stands in, honestly labelled.
    best = run_metrics(run, 8, best={"fid": 12.5, "step": 8})
    assert [(m["value"], m["source"]) for m in best] == [(12.5, "checkpoint state (best)")]
    assert run_metrics(run, 8, best={"fid": 12.5, "step": 7}) == []


def test_parse_formats():
    assert parse_formats("all") == list(EXPORT_FORMATS)
    assert parse_formats("onnx, safetensors,onnx") == ["onnx", "safetensors"]
    for bad in ("", "pickle", "onnx,tflite"):
        with pytest.raises(ConfigError, match="unknown export format"):
            parse_formats(bad)


# --------------------------------------------------------------------------- #
# The command line
# --------------------------------------------------------------------------- #
@pytest.fixture(scope="module")
def cli_export(runs, tmp_path_factory):
    """`dcgan export RUN --format all` as a user runs it, in a fresh process: (process, out folder)."""
    out = tmp_path_factory.mktemp("cli-export") / "release"
    proc = subprocess.run(
        [sys.executable, "-m", "dcgan", "export", str(runs["28x1"]), "--format", "all", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONWARNINGS": "default"},
    )
    return proc, out


def test_cli_export_all(cli_export, runs):
    proc, out = cli_export
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no exporter chatter, no deprecation warnings, even with warnings on
    names = ["generator.safetensors", "generator.onnx", "generator.torchscript.pt", CARD_JSON, CARD_MARKDOWN]
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    lines = proc.stdout.splitlines()
    for name in names:
        assert any(name in line and "kB" in line for line in lines), (name, proc.stdout)
    assert any("onnxruntime" in line and "tolerance 1e-04" in line for line in lines)
    card = json.loads((out / CARD_JSON).read_text())
    assert "z_dim 8" in proc.stdout and "8 numbers" in (out / CARD_MARKDOWN).read_text()
    assert {f["name"]: f["bytes"] for f in card["files"]} == {n: (out / n).stat().st_size for n in names[:3]}
    assert card["training"]["data"]["sha256"] == load_checkpoint(runs["28x1"]).state["data"]["fingerprint"]
    assert {m["source"] for m in card["metrics"]} == {"eval/step_0000004-pixels.json", "metrics.jsonl"}


def test_cli_refuses_to_overwrite_without_force(cli_export, capsys):
    _, out = cli_export
    before = snapshot(out)
    assert run_cli("export", out / "generator.safetensors", "--out", out) == 2
    line = one_line_error(capsys.readouterr().err)
    assert "already holds generator.safetensors, model_card.json, MODEL_CARD.md" in line and "--force" in line
    assert snapshot(out) == before


def test_cli_default_folder_force_and_the_exported_file_everywhere(runs, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(runs["28x1"], run)
    assert run_cli("export", run) == 0
    exported = run / "export" / "generator.safetensors"
    assert exported.is_file() and (run / "export" / CARD_MARKDOWN).is_file() and not (run / "export" / "generator.onnx").exists()
    assert "4 metric(s) recorded for step 4" in capsys.readouterr().out  # fid, kid, kid_std from eval/, the tracked fid
    assert run_cli("export", run, "--force") == 0
    # Sampling commands read it like a checkpoint, and give the same images.
    assert run_cli("generate", exported, "-n", "4", "--seed", "3", "--out", tmp_path / "from-export.png") == 0
    assert run_cli("generate", run, "-n", "4", "--seed", "3", "--out", tmp_path / "from-run.png") == 0
    assert (tmp_path / "from-export.png").read_bytes() == (tmp_path / "from-run.png").read_bytes()
    capsys.readouterr()
    assert run_cli("info", exported, "--json") == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == GENERATOR_FORMAT and info["discriminator"] is None and info["step"] == 4
    # ...but training cannot continue from it.
    before = snapshot(run)
    assert run_cli("train", "--resume", exported, "--steps", "10", "--quiet") == 2
    line = one_line_error(capsys.readouterr().err)
    assert "exported generator" in line and "cannot be resumed" in line
    assert snapshot(run) == before


@pytest.mark.parametrize(
    "argv, message",
    [
        (["export", "{tmp}/notes.txt"], "not a readable dcgan checkpoint"),
        (["export", "{tmp}/missing.safetensors"], "does not exist"),
        (["export", "{run}", "--format", "pickle"], "unknown export format"),
        (["export", "{run}", "--out", "{tmp}/notes.txt"], "is a file"),
    ],
)
def test_cli_one_line_errors(runs, tmp_path, capsys, argv, message):
    (tmp_path / "notes.txt").write_text("hello")
    argv = [a.format(tmp=tmp_path, run=runs["28x1"]) for a in argv]
    assert run_cli(*argv) == 2
    assert message in one_line_error(capsys.readouterr().err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_cli_without_the_onnx_packages(runs, tmp_path, capsys, monkeypatch):
    real = export.formats.find_spec
    monkeypatch.setattr(export.formats, "find_spec", lambda name: None if name == "onnxruntime" else real(name))
    assert run_cli("export", runs["28x1"], "--format", "safetensors,onnx", "--out", tmp_path / "out") == 2
    line = one_line_error(capsys.readouterr().err)
    assert "onnx export needs onnxruntime" in line and "pip install 'dcgan[export]'" in line
    assert not (tmp_path / "out").exists()


def test_cli_writes_nothing_when_a_check_fails(runs, tmp_path, capsys, monkeypatch):
    broken = dataclasses.replace(EXPORT_FORMATS["safetensors"], check=lambda data, G, num, seed: 0.5)
    monkeypatch.setitem(EXPORT_FORMATS, "safetensors", broken)
    assert run_cli("export", runs["28x1"], "--out", tmp_path / "out") == EXIT_EXPORT_MISMATCH
    line = one_line_error(capsys.readouterr().err)
    assert "generator.safetensors does not reproduce the generator" in line and "nothing was written" in line
    assert not (tmp_path / "out").exists()
