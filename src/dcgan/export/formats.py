"""The export formats: how a generator becomes a file, and how each file is checked against PyTorch.

`EXPORT_FORMATS` maps a format name to how its file is built from G (in eval
mode, on the CPU) and the model card, how the file is checked (the same z must
give the same images as PyTorch, within the format's tolerance) and how it is used.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import sys
import warnings
from dataclasses import dataclass
from importlib.util import find_spec
from typing import Callable, Iterator

import torch

from .. import __version__
from ..checkpoint import GENERATOR_FORMAT, checkpoint_bytes, checkpoint_from_bytes
from ..errors import ConfigError
from ..models import Generator
from ..sampling import generate, sample_z

__all__ = ["ExportFormat", "EXPORT_FORMATS", "CARD_JSON", "CARD_MARKDOWN", "parse_formats", "missing_requirements", "require",
           "check_safetensors", "check_onnx", "check_torchscript"]

FILE_STEM = "generator"
CARD_JSON = "model_card.json"  # the card beside the files, and inside the TorchScript one
CARD_MARKDOWN = "MODEL_CARD.md"
INSTALL_HINT = "pip install 'dcgan[export]'"
# Loading this file and continuing training needs D, both optimizers and the noise state, which an export leaves out.
# What only resuming reads is left out too: the health monitor's state, a top-level key in checkpoints from before
# training callbacks and a callback's entry under "callbacks" since.
RESUME_ONLY_STATE = ("health",)


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


def require(formats: list[str]) -> None:
    """Raise ConfigError in one line when a format's modules are not installed."""
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
    require(["onnx"])
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
    require(["onnx"])
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
