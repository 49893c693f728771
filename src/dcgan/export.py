"""Exporting a generator on its own: safetensors, ONNX or TorchScript, with a model card.

`EXPORT_FORMATS` maps a format name to how its file is built from G (in eval
mode, on the CPU) and the model card, how the file is checked (the same z must
give the same images as PyTorch, within the format's tolerance) and how it is
used. `model_card` gathers what a user of the file needs: z's size and prior,
the image size, channels and range, the training data and its hash, the steps,
and the metrics measured for that checkpoint with their protocol;
`model_card_markdown` writes it for people.

Nothing here writes files: `export_files` returns each file's bytes with the
result of its check, and `dcgan export` saves them.

>>> from dcgan import load_checkpoint
>>> files = export_files(load_checkpoint("runs/mnist"), ["onnx"], metrics=[])
>>> [(f.name, f.max_diff) for f in files]
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import math
import sys
import warnings
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Callable, Iterator

import torch

from . import __version__
from .checkpoint import GENERATOR_FORMAT, Checkpoint, checkpoint_bytes, checkpoint_from_bytes
from .errors import ConfigError
from .models import Generator, ModelConfig, build_generator, model_summary
from .rundir import RunDir
from .sampling import generate, sample_z

__all__ = [
    "ExportFormat",
    "ExportedFile",
    "EXPORT_FORMATS",
    "PRIOR_SAMPLING",
    "CARD_JSON",
    "CARD_MARKDOWN",
    "parse_formats",
    "export_names",
    "export_files",
    "missing_requirements",
    "run_metrics",
    "model_card",
    "model_card_markdown",
    "tolerance_text",
    "check_safetensors",
    "check_onnx",
    "check_torchscript",
]

CARD_VERSION = 1
CARD_JSON = "model_card.json"
CARD_MARKDOWN = "MODEL_CARD.md"
FILE_STEM = "generator"
INSTALL_HINT = "pip install 'dcgan[export]'"

PAPER = (
    "Alec Radford, Luke Metz, Soumith Chintala. Unsupervised Representation Learning with Deep Convolutional "
    "Generative Adversarial Networks. ICLR 2016. arXiv:1511.06434"
)
CITATION = """@inproceedings{radford2016dcgan,
  title     = {Unsupervised Representation Learning with Deep Convolutional Generative Adversarial Networks},
  author    = {Radford, Alec and Metz, Luke and Chintala, Soumith},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year      = {2016},
  eprint    = {1511.06434},
  archivePrefix = {arXiv}
}"""

# What the data record's fingerprint hashes (see data.ImageData.fingerprint).
FINGERPRINT_OF = (
    "sha256 of the decoded training pixels and their shape; for data streamed from disk, "
    "of the file names, sizes and modification times"
)
TO_UINT8 = "((images.clip(-1, 1) + 1) * 127.5).round().astype(np.uint8)"
G_BLOCK_MEANS = {
    "transposed": "transposed convolutions, kernel 4, stride 2 (the paper's fractionally-strided convolutions)",
    "nearest": "nearest-neighbour x2 resize, then a 3x3 convolution",
}
# Loading this file and continuing training needs D, both optimizers and the noise state, which an export leaves out.
# What only resuming reads is left out too: the health monitor's state, a top-level key in checkpoints from before
# training callbacks and a callback's entry under "callbacks" since.
RESUME_ONLY_STATE = ("health",)


@dataclass(frozen=True)
class PriorSampling:
    """How to draw z from one of the priors in models.PRIORS, in words and in code."""

    description: str  # the distribution, for the card
    torch: str  # a PyTorch expression for n vectors; {z_dim} is filled in
    numpy: str  # the NumPy one, float32, from `rng = np.random.default_rng(seed)`


PRIOR_SAMPLING: dict[str, PriorSampling] = {
    "normal": PriorSampling("standard normal N(0, I)", "torch.randn(n, {z_dim})",
                            "rng.standard_normal((n, {z_dim}), dtype=np.float32)"),
    "uniform": PriorSampling("uniform U(-1, 1) in every coordinate", "torch.rand(n, {z_dim}) * 2 - 1",
                             "rng.uniform(-1, 1, (n, {z_dim})).astype(np.float32)"),
}


# --------------------------------------------------------------------------- #
# Keeping the exporters quiet
# --------------------------------------------------------------------------- #
_NOISY_LOGGERS = ("torch.onnx", "torch.export", "torch._export", "torch._dynamo", "torch.fx", "onnxscript", "onnx_ir")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Keep the exporters off the user's terminal: warnings (TorchScript is deprecated, ...) and log lines
    below ERROR (torchvision is not installed, ...) are dropped, and what they print to stdout or stderr
    is held back and shown only if the export fails, where it may say why."""
    captured = io.StringIO()
    loggers = [logging.getLogger(name) for name in _NOISY_LOGGERS]
    levels = [logger.level for logger in loggers]
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
            warnings.simplefilter("ignore")
            for logger in loggers:
                logger.setLevel(logging.ERROR)
            yield
    except BaseException:
        sys.stderr.write(captured.getvalue())
        raise
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def missing_requirements(formats: list[str]) -> list[str]:
    """Modules the given formats need that are not installed (ONNX: onnx, onnxscript, onnxruntime)."""
    needed = dict.fromkeys(m for name in formats for m in EXPORT_FORMATS[name].requires)
    return [m for m in needed if find_spec(m) is None]


def _require(formats: list[str]) -> None:
    missing = missing_requirements(formats)
    if missing:
        needing = [n for n in formats if any(m in missing for m in EXPORT_FORMATS[n].requires)]
        raise ConfigError(f"the {' and '.join(needing)} export needs {', '.join(missing)} (not installed): {INSTALL_HINT}")


# --------------------------------------------------------------------------- #
# Checks: the same z through the file and through PyTorch
# --------------------------------------------------------------------------- #
def _max_difference(run: Callable[[torch.Tensor], torch.Tensor], G: Generator, num: int, seed: int) -> float:
    """Largest |run(z) - G(z)| over `num` draws from G's prior (seeded), fed as one batch and as a batch of one.

    PyTorch sees the same batches: CPU convolutions round differently for
    different batch sizes, which would hide an exact match behind ~1e-9 noise.
    """
    if num < 2:
        raise ConfigError(f"a check needs at least 2 samples (a batch of one and a larger one), got {num}")
    c = G.config
    z = sample_z(num, c.z_dim, c.prior, torch.Generator().manual_seed(seed))
    worst = 0.0
    for batch in (z, z[:1]):
        out = run(batch).cpu()
        want = generate(G, batch, batch_size=len(batch)).cpu()  # (n, C, H, W), eval mode
        if tuple(out.shape) != tuple(want.shape):
            raise RuntimeError(f"the exported generator gives images of shape {tuple(out.shape)} for z of shape "
                               f"{tuple(batch.shape)}; PyTorch gives {tuple(want.shape)}")
        diff = float((out.float() - want).abs().max())
        worst = max(worst, diff if math.isfinite(diff) else math.inf)
    return worst


def check_safetensors(data: bytes, G: Generator, num: int = 16, seed: int = 0) -> float:
    """Load an exported safetensors file the way every dcgan command does; max |difference| of its G from `G`."""
    ckpt = checkpoint_from_bytes(data, "the exported safetensors file")
    if ckpt.resumable:
        raise RuntimeError(f"the exported file is marked {ckpt.format!r}, not {GENERATOR_FORMAT!r}")
    with torch.random.fork_rng(devices=[]):  # Generator() initialises weights from the global RNG
        loaded = ckpt.build_generator()
    return _max_difference(lambda z: generate(loaded, z), G, num, seed)


def check_onnx(onnx_bytes: bytes, G: Generator, num: int = 16, seed: int = 0) -> float:
    """Run the ONNX file with onnxruntime (CPU) and `G` with PyTorch on the same z; return the max |difference|.

    z is drawn from G's prior with an explicit torch.Generator seeded by `seed`,
    and goes through the file as a batch of `num` and as a batch of one, which
    also checks that the batch dimension is dynamic.
    """
    _require(["onnx"])
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: its C++ warnings would reach the terminal unasked
    session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    return _max_difference(lambda z: torch.from_numpy(session.run(["images"], {"z": z.numpy()})[0]), G, num, seed)


def check_torchscript(data: bytes, G: Generator, num: int = 16, seed: int = 0) -> float:
    """Load the TorchScript file with torch.jit.load and compare it with `G` on the same z; max |difference|."""
    with _quiet():  # torch.jit.load warns that TorchScript is deprecated
        module = torch.jit.load(io.BytesIO(data), map_location="cpu")
    module.eval()

    def run(z: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return module(z)

    return _max_difference(run, G, num, seed)


# --------------------------------------------------------------------------- #
# Builders: G in eval mode on the CPU and the card -> the file's bytes
# --------------------------------------------------------------------------- #
def _card_metadata(card: dict) -> dict[str, str]:
    """String entries for a file's header: the whole card as JSON, and the fields a loader looks for first."""
    model, training = card["model"], card.get("training") or {}
    return {
        "model_card": json.dumps(card),
        "dcgan.z_dim": str(model["z_dim"]),
        "dcgan.prior": model["prior"],
        "dcgan.image_size": str(model["image_size"]),
        "dcgan.channels": str(model["channels"]),
        "dcgan.output_range": "[-1, 1]",
        "dcgan.step": str(training.get("step", "")),
        "dcgan.data": str((training.get("data") or {}).get("name", "")),
        "dcgan.data_sha256": str((training.get("data") or {}).get("sha256", "")),
        "dcgan.version": __version__,
    }


def _exported_state(state: dict) -> dict:
    """The checkpoint's training record without what only resuming uses (in either layout of the state)."""
    kept = {k: v for k, v in state.items() if k not in RESUME_ONLY_STATE}
    if isinstance(kept.get("callbacks"), dict):
        kept["callbacks"] = {k: v for k, v in kept["callbacks"].items() if k not in RESUME_ONLY_STATE}
    return kept


def _build_safetensors(G: Generator, card: dict, state: dict) -> bytes:
    # The checkpoint layout with G alone and its own format marker: `load_checkpoint` reads it, `--resume` refuses it.
    return checkpoint_bytes(G.config, G, state=_exported_state(state), file_format=GENERATOR_FORMAT,
                            metadata={"model_card": json.dumps(card)})


def _build_onnx(G: Generator, card: dict, state: dict) -> bytes:
    _require(["onnx"])
    import onnx

    # torch.export-based exporter (the TorchScript-based one is deprecated). A batch of two as the example,
    # so that the batch dimension is not specialised to 1; `batch` stays symbolic in the graph.
    example = torch.zeros(2, G.config.z_dim)
    with _quiet(), torch.no_grad():
        program = torch.onnx.export(
            G, (example,), dynamo=True, input_names=["z"], output_names=["images"],
            dynamic_shapes={"z": {0: torch.export.Dim("batch", min=1)}}, verbose=False,
        )
    model = program.model_proto
    model.graph.name = "dcgan_generator"
    model.doc_string = card["summary"]
    onnx.helper.set_model_props(model, _card_metadata(card))
    return model.SerializeToString()


def _build_torchscript(G: Generator, card: dict, state: dict) -> bytes:
    # trace, not script: scripting fails on the config attribute, and tracing is exact for this static graph
    # (the batch size stays symbolic: forward reshapes with z.shape[0], which the trace records as an op).
    buffer = io.BytesIO()
    with _quiet(), torch.no_grad():  # jit.trace and jit.save warn that TorchScript is deprecated
        traced = torch.jit.trace(G, torch.zeros(2, G.config.z_dim), check_trace=False)
        torch.jit.save(traced, buffer, _extra_files={CARD_JSON: json.dumps(card)})
    return buffer.getvalue()


@dataclass(frozen=True)
class ExportFormat:
    """One file format for an exported generator: how to build it, check it and use it."""

    suffix: str  # the file is "generator" + suffix
    description: str  # one line for --help and the card
    build: Callable[[Generator, dict, dict], bytes]  # (G in eval mode on the CPU, card, checkpoint state) -> file bytes
    check: Callable[[bytes, Generator, int, int], float]  # (file bytes, G, num, seed) -> max |file(z) - G(z)|
    tolerance: float  # the check passes at or below this absolute difference, in [-1, 1] image units
    runner: str  # what the check runs the file with, for the report
    usage: str  # Python that loads the file and draws 16 images; formatted with the card's numbers
    requires: tuple[str, ...] = ()  # modules beyond dcgan's dependencies (all in the `export` extra)

    def filename(self) -> str:
        return FILE_STEM + self.suffix


EXPORT_FORMATS: dict[str, ExportFormat] = {
    "safetensors": ExportFormat(
        ".safetensors",
        "G's weights with its config and the card in the header; every dcgan command that samples reads it",
        _build_safetensors, check_safetensors, 0.0, "dcgan (PyTorch), rebuilt from the file",
        """import torch
from dcgan import generate, load_checkpoint, sample_z

ckpt = load_checkpoint("{file}")
G = ckpt.build_generator()  # eval mode
z = sample_z(16, {z_dim}, "{prior}", torch.Generator().manual_seed(0))  # 16 draws from {prior_means}
images = generate(G, z)  # {shape}, float32 in [-1, 1]
# or from the shell: dcgan generate {file} -n 64 --out grid.png""",
    ),
    "onnx": ExportFormat(
        ".onnx",
        "ONNX graph (torch.export-based exporter), input z (batch, z_dim), output images (batch, C, H, W)",
        _build_onnx, check_onnx, 1e-4, "onnxruntime (CPUExecutionProvider) against PyTorch",
        """import numpy as np
import onnxruntime as ort

session = ort.InferenceSession("{file}", providers=["CPUExecutionProvider"])
rng = np.random.default_rng(0)
n = 16
z = {sample_numpy}
images = session.run(["images"], {{"z": z}})[0]  # {shape}, float32 in [-1, 1]
pixels = {to_uint8}  # NCHW, 0..255""",
        requires=("onnx", "onnxscript", "onnxruntime"),
    ),
    "torchscript": ExportFormat(
        ".torchscript.pt",
        "TorchScript (torch.jit.trace) for LibTorch/C++; PyTorch has deprecated TorchScript",
        _build_torchscript, check_torchscript, 1e-6, "torch.jit.load against PyTorch eager",
        """import torch

G = torch.jit.load("{file}", map_location="cpu")
n = 16
z = {sample_torch}
with torch.no_grad():
    images = G(z)  # {shape}, float32 in [-1, 1]""",
    ),
}


def parse_formats(text: str) -> list[str]:
    """'onnx,safetensors' -> ['onnx', 'safetensors'], 'all' -> every format; unknown names raise ConfigError."""
    names = list(EXPORT_FORMATS) if text.strip() == "all" else [n.strip().lower() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in EXPORT_FORMATS]
    if unknown or not names:
        raise ConfigError(f"unknown export format(s) {', '.join(unknown) or repr(text)}: use {', '.join(EXPORT_FORMATS)} or all")
    return list(dict.fromkeys(names))


# --------------------------------------------------------------------------- #
# Metrics recorded for a checkpoint
# --------------------------------------------------------------------------- #
def _metric_definitions() -> dict[str, tuple[str, bool]]:
    """Each reported key (fid, kid_std, recall, ...) -> (its metric's description, lower is better)."""
    from .metrics.scores import METRICS

    return {key: (m.description, lower) for m in METRICS.values() for key, lower in m.lower_is_better.items()}


def _protocol_text(protocol: dict) -> str:
    from .metrics.evaluate import EvalReport

    try:
        return EvalReport(protocol).protocol_line().removeprefix("protocol: ")
    except (KeyError, TypeError):  # a report from another version: its protocol as it stands
        return json.dumps({k: v for k, v in protocol.items() if not isinstance(v, dict)}, sort_keys=True)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def run_metrics(run_dir: str | Path, step: int, best: dict | None = None) -> list[dict]:
    """The metrics measured for the checkpoint at `step` of the run in `run_dir`, each with its protocol.

    Two sources: the reports `dcgan evaluate` wrote for that step
    (RUN_DIR/eval/step_NNNNNNN-FEATURES.json; the generator's scores, with the
    real-test floor where it was scored), and the FID that `--eval-every`
    logged at that step in RUN_DIR/metrics.jsonl. `best`, a checkpoint state's
    {"fid", "step"}, stands in for the latter when metrics.jsonl no longer
    holds that step (a rollback drops the lines after the checkpoint it returns
    to). Other steps' numbers are left out; nothing measured gives [].
    """
    run_dir = Path(run_dir)
    definitions = _metric_definitions()
    found: list[dict] = []
    for path in RunDir(run_dir).evaluations(step):
        try:
            report = json.loads(path.read_text())
            protocol, rows = report["protocol"], report["results"]
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not a report of `dcgan evaluate`
        if not isinstance(protocol, dict) or protocol.get("step", step) != step:
            continue
        generator = next((r for r in rows if isinstance(r, dict) and r.get("subject") == "generator"), None)
        floor = next((r for r in rows if isinstance(r, dict) and str(r.get("subject", "")).startswith("real test")), {})
        for key, value in (generator or {}).items():
            if key in ("subject", "n") or not _is_number(value):
                continue
            description, lower = definitions.get(key, ("", bool((protocol.get("lower_is_better") or {}).get(key))))
            found.append({
                "name": key,
                "value": value,
                "lower_is_better": lower,
                "definition": description,
                "floor": floor.get(key) if _is_number(floor.get(key)) else None,  # real test images scored the same way
                "protocol": _protocol_text(protocol),
                "source": f"eval/{path.name}",
            })
    tracked = None
    for record in RunDir(run_dir).read_metrics():
        if record.get("step") == step and _is_number(record.get("fid")):
            tracked = record  # the last one wins: a resumed run may have evaluated that step again
    fid_definition = definitions.get("fid", ("", True))[0]
    if tracked is not None:
        found.append({"name": "fid", "value": tracked["fid"], "lower_is_better": True, "definition": fid_definition, "floor": None,
                      "protocol": f"tracked during training (--eval-every) against the training data: {tracked.get('eval', 'protocol not recorded')}",
                      "source": "metrics.jsonl"})
    elif best and best.get("step") == step and _is_number(best.get("fid")):
        found.append({"name": "fid", "value": best["fid"], "lower_is_better": True, "definition": fid_definition, "floor": None,
                      "protocol": "tracked during training (--eval-every) against the training data; the checkpoint records the value, "
                                  "metrics.jsonl no longer holds its protocol",
                      "source": "checkpoint state (best)"})
    return found


# --------------------------------------------------------------------------- #
# The model card
# --------------------------------------------------------------------------- #
def _layers_text(mc: ModelConfig) -> str:
    """z (B, 100) -> 512x4x4 -> 256x8x8 -> 128x16x16 -> 64x32x32 -> 3x64x64 (tanh), for the card."""
    widths = mc.hidden_widths()[::-1]
    maps = [f"{w}x{mc.base_size * 2**i}x{mc.base_size * 2**i}" for i, w in enumerate(widths)]
    return f"z (B, {mc.z_dim}) -> " + " -> ".join(maps) + f" -> {mc.channels}x{mc.image_size}x{mc.image_size} (tanh)"


def model_card(ckpt: Checkpoint, metrics: list[dict]) -> dict:
    """Everything a user of the exported generator needs, as JSON-able data.

    Sections: `model` (z's size and prior and how to draw it, image size,
    channels and range and how to map it to uint8, architecture, parameters),
    `training` (data with its sha256, step, epoch, optimisation, precision,
    seed, time, versions), `metrics` (each with its value and protocol; see
    `run_metrics`), `usage` (Python for each export format) and the paper.
    """
    mc = ckpt.model_config
    with torch.random.fork_rng(devices=[]):  # building a Generator draws its initial weights from the global RNG
        rows = model_summary(build_generator(mc), torch.zeros(1, mc.z_dim))
    prior = PRIOR_SAMPLING[mc.prior]
    shape = ["batch", mc.channels, mc.image_size, mc.image_size]
    colour = "grey" if mc.channels == 1 else "RGB"
    record = ckpt.record
    trained = bool(ckpt.state)  # an empty state records no training
    train = record.train_config or {}
    data = record.data or {}
    data_name = data.get("name") or train.get("data")
    epoch = record.epoch_fraction
    training = {}
    if trained:
        training = {
            "data": {
                "name": data_name,
                "source": data.get("source"),
                "data_dir": train.get("data_dir"),
                "num_images": data.get("num_images"),
                "sha256": data.get("fingerprint"),
                "sha256_of": FINGERPRINT_OF,
            },
            "step": ckpt.step,
            "epoch": round(epoch, 4),
            "batch_size": train.get("batch_size"),
            "processes": record.processes,
            "optimizer": "Adam",
            "lr_g": train.get("lr_g"),
            "lr_d": train.get("lr_d"),
            "betas": [train.get("beta1"), train.get("beta2")],
            "label_smoothing": train.get("label_smoothing"),
            "d_steps": train.get("d_steps"),
            "g_steps": train.get("g_steps"),
            # Checkpoints from before the resolved precision was recorded only know the option ("auto").
            "precision": record.precision or f"{train.get('precision')} (not resolved in the checkpoint)",
            "seed": train.get("seed"),
            "elapsed_s": record.elapsed_s,
            "saved_at": record.saved_at,
            "dcgan_version": ckpt.dcgan_version,
            "torch_version": record.torch_version,
            "best_tracked_fid": record.best or None,
        }
    steps_text = f"{ckpt.step} steps ({epoch:.2f} epochs)" if trained else "an unrecorded number of steps"
    summary = (
        f"A DCGAN generator (Radford, Metz and Chintala 2015) that maps a latent vector z of {mc.z_dim} numbers drawn "
        f"from {prior.description} to a {mc.image_size}x{mc.image_size} {colour} image in [-1, 1]"
        + (f", trained on {data_name} for {steps_text}." if data_name else ".")
    )
    numbers = {
        "z_dim": mc.z_dim,
        "prior": mc.prior,
        "prior_means": prior.description,
        "shape": "(16, " + ", ".join(map(str, shape[1:])) + ")",
        "sample_torch": prior.torch.format(z_dim=mc.z_dim),
        "sample_numpy": prior.numpy.format(z_dim=mc.z_dim),
        "to_uint8": TO_UINT8,
    }
    return {
        "card_version": CARD_VERSION,
        "title": f"DCGAN generator: {mc.image_size}x{mc.image_size} {colour} images" + (f" ({data_name})" if data_name else ""),
        "summary": summary,
        "model": {
            "architecture": "DCGAN generator (Radford et al. 2015): a stack of x2 upsampling blocks (the G block: transposed convolutions or resize + convolution) with batch norm and ReLU, tanh output",
            "layers": _layers_text(mc),
            "z_dim": mc.z_dim,
            "z_dim_means": "the length of the latent vector z, the paper's nz",
            "prior": mc.prior,
            "prior_means": prior.description,
            "sample_z": {"torch": numbers["sample_torch"], "numpy": numbers["sample_numpy"]},
            "input": {"name": "z", "shape": ["batch", mc.z_dim], "dtype": "float32"},
            "output": {"name": "images", "shape": shape, "layout": "NCHW", "dtype": "float32", "range": [-1.0, 1.0]},
            "to_uint8": TO_UINT8,
            "image_size": mc.image_size,
            "channels": mc.channels,
            "colour": colour,
            "g_block": mc.g_block,
            "g_block_means": G_BLOCK_MEANS.get(mc.g_block, mc.g_block),
            "width": mc.width,
            "max_channels": mc.max_channels,
            "parameters": sum(r["params"] for r in rows),
            "macs_per_image": sum(r["macs"] for r in rows),
            "batch_norm": "eval mode: the running statistics from training, so each image depends on its own z only",
            "config": mc.to_dict(),
        },
        "training": training,
        "metrics": metrics,
        "metrics_note": (
            f"{len(metrics)} number(s) measured for step {ckpt.step}; compare numbers only under the same protocol"
            if metrics else
            f"no metrics recorded for step {ckpt.step}: measure them with `dcgan evaluate CKPT` "
            "(RUN_DIR/eval/ keeps the report, which a later export picks up) or train with --eval-every"
        ),
        "usage": {name: fmt.usage.format(file=fmt.filename(), **numbers) for name, fmt in EXPORT_FORMATS.items()},
        "source": {"checkpoint": ckpt.path.name if ckpt.path else None, "step": ckpt.step},
        "exported_with": {"dcgan_version": __version__, "torch_version": torch.__version__},
        "paper": PAPER,
        "citation": CITATION,
    }


def _cell(value) -> str:
    """A Markdown table cell: pipes escaped, on one line."""
    text = "-" if value is None else f"{value:.6g}" if isinstance(value, float) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def tolerance_text(tolerance: float) -> str:
    """A check's tolerance for people: "exact" or "1e-04"."""
    return "0 (exact)" if tolerance == 0 else f"{tolerance:.0e}"


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."


def model_card_markdown(card: dict) -> str:
    """The card as Markdown (MODEL_CARD.md): what the model is, how it was trained and scored, how to use it."""
    m, t = card["model"], card.get("training") or {}
    lines = [f"# {card['title']}", "", card["summary"], "", "## Model", "", "| | |", "|---|---|"]
    rows = [
        ("architecture", m["architecture"]),
        ("layers", f"`{m['layers']}`"),
        ("z", f"{m['z_dim']} numbers ({m['z_dim_means']}), prior {m['prior']}: {m['prior_means']}, "
              f"e.g. `{m['sample_z']['torch']}`"),
        ("input", f"`{m['input']['name']}`, shape ({', '.join(map(str, m['input']['shape']))}), {m['input']['dtype']}"),
        ("output", f"`{m['output']['name']}`, shape ({', '.join(map(str, m['output']['shape']))}), {m['output']['layout']}, "
                   f"{m['output']['dtype']} in [-1, 1]"),
        ("to uint8", f"`{m['to_uint8']}`"),
        ("image", f"{m['image_size']}x{m['image_size']}, {m['channels']} channel(s) ({m['colour']})"),
        ("parameters", f"{m['parameters']:,} ({m['macs_per_image'] / 1e6:.1f}M multiply-accumulates per image)"),
        ("G block", f"{m['g_block']}: {m['g_block_means']}; width {m['width']}, at most {m['max_channels']} channels"),
        ("batch norm", m["batch_norm"]),
    ]
    lines += [f"| {k} | {_cell(v)} |" for k, v in rows]
    lines += ["", "## Training", ""]
    if t:
        d = t["data"]
        rows = [
            ("data", f"{d['name']} ({d['num_images']} images from {d['source']})"),
            ("data sha256", f"`{d['sha256']}`: {d['sha256_of']}"),
            ("progress", f"step {t['step']}, epoch {t['epoch']:.2f}, {t['processes']} process(es)"),
            ("optimisation", f"batch {t['batch_size']}, Adam lr G {t['lr_g']} / D {t['lr_d']}, betas ({t['betas'][0]}, {t['betas'][1]}), "
                             f"label smoothing {t['label_smoothing']}, {t['d_steps']} D / {t['g_steps']} G step(s) per iteration"),
            ("precision", t["precision"]),
            ("seed", t["seed"]),
            ("training time", f"{t['elapsed_s']:.0f} s" if _is_number(t["elapsed_s"]) else None),
            ("saved at", t["saved_at"]),
            ("versions", f"dcgan {t['dcgan_version']}, torch {t['torch_version']}"),
        ]
        lines += ["| | |", "|---|---|"] + [f"| {k} | {_cell(v)} |" for k, v in rows]
    else:
        lines.append("The checkpoint records no training state.")
    lines += ["", "## Metrics", ""]
    if card["metrics"]:
        lines += ["| metric | value | real-test floor | better | protocol | source |", "|---|---:|---:|---|---|---|"]
        for r in card["metrics"]:
            lines.append(f"| {r['name']} | {_cell(r['value'])} | {_cell(r['floor'])} | {'lower' if r['lower_is_better'] else 'higher'} "
                         f"| {_cell(r['protocol'])} | {_cell(r['source'])} |")
        lines += ["", _sentence(card["metrics_note"])]
    else:
        lines.append(_sentence(card["metrics_note"]))
    if card.get("files"):
        lines += ["", "## Files", "", "| file | size | sha256 | check |", "|---|---:|---|---|"]
        for f in card["files"]:
            check = "-" if f["max_diff"] is None else f"max \\|diff\\| {f['max_diff']:.1e} (tolerance {tolerance_text(f['tolerance'])}), {f['checked_with']}"
            lines.append(f"| `{f['name']}` | {f['bytes']:,} B | `{f['sha256'][:16]}...` | {check} |")
    lines += ["", "## Usage", ""]
    for name, code in card["usage"].items():
        lines += [f"### {name}", "", "```python", code, "```", ""]
    lines += ["## Citation", "", card["paper"], "", "```bibtex", card["citation"], "```", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- #
# Everything one export writes
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class ExportedFile:
    """One file of an export, not yet written."""

    name: str  # file name inside the export folder
    data: bytes  # its content
    format: str  # an EXPORT_FORMATS name, or "card"
    max_diff: float | None = None  # largest |file(z) - G(z)| its check found; None for the card
    tolerance: float | None = None  # the format's tolerance

    @property
    def passed(self) -> bool:
        return self.max_diff is None or self.max_diff <= self.tolerance


def export_names(formats: list[str]) -> list[str]:
    """The file names an export of `formats` writes: one per format, then the card as JSON and Markdown."""
    return [EXPORT_FORMATS[name].filename() for name in formats] + [CARD_JSON, CARD_MARKDOWN]


def export_files(ckpt: Checkpoint, formats: list[str], metrics: list[dict], num_check: int = 16, seed: int = 0) -> list[ExportedFile]:
    """Build and check the files of an export: G in each of `formats`, then the card (JSON and Markdown).

    Every file is checked against PyTorch on `num_check` seeded z (as one batch
    and as a batch of one); the result is in `max_diff`, and the caller decides
    what to do with a file that fails. The card files list each file's size,
    sha256 and check; the card inside the files cannot list them, and is the
    same otherwise.
    """
    _require(formats)
    G = ckpt.build_generator("cpu")  # eval mode; exports are CPU float32 graphs
    card = model_card(ckpt, metrics)
    files = []
    for name in formats:
        fmt = EXPORT_FORMATS[name]
        data = fmt.build(G, card, ckpt.state)
        files.append(ExportedFile(fmt.filename(), data, name, fmt.check(data, G, num_check, seed), fmt.tolerance))
    listed = dict(card, files=[
        {"name": f.name, "format": f.format, "bytes": len(f.data), "sha256": hashlib.sha256(f.data).hexdigest(),
         "max_diff": f.max_diff, "tolerance": f.tolerance, "checked_with": EXPORT_FORMATS[f.format].runner}
        for f in files
    ])
    files.append(ExportedFile(CARD_JSON, (json.dumps(listed, indent=2, ensure_ascii=False) + "\n").encode(), "card"))
    files.append(ExportedFile(CARD_MARKDOWN, model_card_markdown(listed).encode(), "card"))
    return files
