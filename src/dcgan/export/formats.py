"""The export formats: how a generator becomes a file, and how each file is checked against PyTorch.

`EXPORT_FORMATS` maps a format name to how its file is built from G (in eval
mode, on the CPU) and the model card, how the file is checked (the same z must
give the same images as PyTorch, within the format's tolerance) and how it is used.

A class-conditional G takes its class as a second input in every format:
`labels`, int64 class indices of shape (batch,), beside `z` (batch, z_dim). Its
checks feed seeded labels in which every class appears.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.util import find_spec

import torch

from .._version import __version__
from ..checkpoint import GENERATOR_FORMAT, checkpoint_bytes, checkpoint_from_bytes
from ..errors import ConfigError
from ..models import Generator
from ..models.conditioning import balanced_labels
from ..sampling import generate, sample_z

__all__ = [
    "ExportFormat",
    "EXPORT_FORMATS",
    "CARD_JSON",
    "CARD_MARKDOWN",
    "LABELS_INPUT",
    "parse_formats",
    "missing_requirements",
    "require",
    "check_inputs",
    "check_safetensors",
    "check_onnx",
    "check_torchscript",
]

FILE_STEM = "generator"
CARD_JSON = "model_card.json"  # the card beside the files, and inside the TorchScript one
CARD_MARKDOWN = "MODEL_CARD.md"
LABELS_INPUT = "labels"  # a conditional G's second input in the ONNX and TorchScript files: int64 class indices (batch,)
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
# Checks: the same z (and labels) through the file and through PyTorch
# --------------------------------------------------------------------------- #
# A check's runner: (z (n, z_dim), labels (n,) int64 or None for an unconditional G) -> images (n, C, H, W)
Runner = Callable[[torch.Tensor, "torch.Tensor | None"], torch.Tensor]


def check_inputs(G: Generator, num: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The seeded inputs a check feeds: z (n, z_dim) from G's prior and, for a conditional G, labels (n,) int64.

    An unconditional G gets `num` z and no labels. A conditional one gets
    n = max(num, num_classes), so that every class appears: the labels are
    0, 1, ..., K-1, 0, ... in an order shuffled by the same seed, so that the
    batch of one is not always class 0.
    """
    c = G.config
    gen = torch.Generator().manual_seed(seed)
    n = max(num, c.num_classes)
    z = sample_z(n, c.z_dim, c.prior, gen)  # drawn first: an unconditional check sees the z it always did
    if not c.conditional:
        return z, None
    labels = balanced_labels(n, c.num_classes)
    assert labels is not None  # a conditional G has num_classes > 0
    return z, labels[torch.randperm(n, generator=gen)]


def _max_difference(run: Runner, G: Generator, num: int, seed: int) -> float:
    """Largest |run(z, labels) - G(z, labels)| over the seeded inputs of `check_inputs`, fed as one batch and
    as a batch of one.

    PyTorch sees the same batches: CPU convolutions round differently for
    different batch sizes, which would hide an exact match behind ~1e-9 noise.
    """
    if num < 2:
        raise ConfigError(f"a check needs at least 2 samples (a batch of one and a larger one), got {num}")
    z, labels = check_inputs(G, num, seed)
    worst = 0.0
    for end in (len(z), 1):
        batch, batch_labels = z[:end], None if labels is None else labels[:end]
        out = run(batch, batch_labels).cpu()
        want = generate(G, batch, batch_labels, batch_size=len(batch)).cpu()  # (n, C, H, W), eval mode
        if tuple(out.shape) != tuple(want.shape):
            raise RuntimeError(
                f"the exported generator gives images of shape {tuple(out.shape)} for z of shape "
                f"{tuple(batch.shape)}; PyTorch gives {tuple(want.shape)}"
            )
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
    if loaded.config != G.config:  # a conditional G must come back with its classes, names and method
        raise RuntimeError(f"the exported file's model config differs from the generator's: {loaded.config} != {G.config}")
    return _max_difference(lambda z, labels: generate(loaded, z, labels), G, num, seed)


def check_onnx(onnx_bytes: bytes, G: Generator, num: int = 16, seed: int = 0) -> float:
    """Run the ONNX file with onnxruntime (CPU) and `G` with PyTorch on the same z; return the max |difference|.

    z is drawn from G's prior with an explicit torch.Generator seeded by `seed`,
    and goes through the file as a batch of `num` and as a batch of one, which
    also checks that the batch dimension is dynamic. A conditional G's file
    takes the seeded labels of `check_inputs` as its second input, `labels`.
    """
    require(["onnx"])
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: its C++ warnings would reach the terminal unasked
    session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    inputs = [i.name for i in session.get_inputs()]
    expected = ["z", LABELS_INPUT] if G.config.conditional else ["z"]
    if inputs != expected:
        raise RuntimeError(f"the ONNX file takes the inputs {inputs}; this generator needs {expected}")

    def run(z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        feed = {"z": z.numpy()} if labels is None else {"z": z.numpy(), LABELS_INPUT: labels.numpy()}
        return torch.from_numpy(session.run(["images"], feed)[0])

    return _max_difference(run, G, num, seed)


def check_torchscript(data: bytes, G: Generator, num: int = 16, seed: int = 0) -> float:
    """Load the TorchScript file with torch.jit.load and compare it with `G` on the same z; max |difference|."""
    with _quiet():  # torch.jit.load warns that TorchScript is deprecated
        module = torch.jit.load(io.BytesIO(data), map_location="cpu")
    module.eval()

    def run(z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        with torch.no_grad():
            return module(z) if labels is None else module(z, labels)

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
    } | (
        {  # only a conditional card has these: an unconditional file's header stays as it was
            "dcgan.num_classes": str(model["num_classes"]),
            "dcgan.class_names": json.dumps([c["name"] for c in model["classes"]]),  # by label
            "dcgan.conditioning": model["conditioning"],
            "dcgan.labels_input": LABELS_INPUT,
        }
        if model.get("num_classes")
        else {}
    )


def _example_inputs(G: Generator) -> tuple[torch.Tensor, ...]:
    """What the exporters trace G with: z (2, z_dim), and labels (2,) int64 for a conditional G.

    A batch of two, so that the batch dimension is not specialised to 1."""
    z = torch.zeros(2, G.config.z_dim)
    return (z, torch.zeros(2, dtype=torch.long)) if G.config.conditional else (z,)


def _exported_state(state: dict) -> dict:
    """The checkpoint's training record without what only resuming uses (in either layout of the state)."""
    kept = {k: v for k, v in state.items() if k not in RESUME_ONLY_STATE}
    if isinstance(kept.get("callbacks"), dict):
        kept["callbacks"] = {k: v for k, v in kept["callbacks"].items() if k not in RESUME_ONLY_STATE}
    return kept


def _build_safetensors(G: Generator, card: dict, state: dict) -> bytes:
    # The checkpoint layout with G alone and its own format marker: `load_checkpoint` reads it, `--resume` refuses it.
    return checkpoint_bytes(G.config, G, state=_exported_state(state), file_format=GENERATOR_FORMAT, metadata={"model_card": json.dumps(card)})


def _build_onnx(G: Generator, card: dict, state: dict) -> bytes:
    require(["onnx"])
    import onnx

    # torch.export-based exporter (the TorchScript-based one is deprecated). A batch of two as the example,
    # so that the batch dimension is not specialised to 1; `batch` stays symbolic in the graph. A conditional
    # G's labels (batch,) int64 are a second graph input that shares z's batch dimension.
    example = _example_inputs(G)
    batch = torch.export.Dim("batch", min=1)
    names = ["z", LABELS_INPUT][: len(example)]
    with _quiet(), torch.no_grad():
        program = torch.onnx.export(
            G, example, dynamo=True, input_names=names, output_names=["images"], dynamic_shapes={name: {0: batch} for name in names}, verbose=False
        )
    assert program is not None  # the dynamo exporter always returns its ONNXProgram (None is the legacy one's)
    model = program.model_proto
    model.graph.name = "dcgan_generator"
    model.doc_string = card["summary"]
    onnx.helper.set_model_props(model, _card_metadata(card))
    return model.SerializeToString()


def _build_torchscript(G: Generator, card: dict, state: dict) -> bytes:
    # trace, not script: scripting fails on the config attribute, and tracing is exact for this static graph
    # (the batch size stays symbolic: forward reshapes with z.shape[0], which the trace records as an op).
    # A conditional G is traced with its labels, which become the module's second argument: G(z, labels).
    buffer = io.BytesIO()
    with _quiet(), torch.no_grad():  # jit.trace and jit.save warn that TorchScript is deprecated
        example = _example_inputs(G)
        traced = torch.jit.trace(G, example if len(example) > 1 else example[0], check_trace=False)
        torch.jit.save(traced, buffer, _extra_files={CARD_JSON: json.dumps(card)})
    return buffer.getvalue()


@dataclass(frozen=True)
class ExportFormat:
    """One file format for an exported generator: how to build it, check it and use it."""

    suffix: str  # the file is "generator" + suffix
    description: str  # one line for --help and the card
    build: Callable[[Generator, dict, dict], bytes]  # (G in eval mode on the CPU, card, checkpoint state) -> file bytes
    check: Callable[[bytes, Generator, int, int], float]  # (file bytes, G, num, seed) -> max |file(z[, y]) - G(z[, y])|
    tolerance: float  # the check passes at or below this absolute difference, in [-1, 1] image units
    runner: str  # what the check runs the file with, for the report
    usage: str  # Python that loads the file and draws 16 images; formatted with the card's numbers
    conditional_usage: str  # the same for a conditional G, passing a class; also formatted with {label}, {label_name}, ...
    requires: tuple[str, ...] = ()  # modules beyond dcgan's dependencies (all in the `export` extra)

    def filename(self) -> str:
        return FILE_STEM + self.suffix


EXPORT_FORMATS: dict[str, ExportFormat] = {
    "safetensors": ExportFormat(
        ".safetensors",
        "G's weights with its config and the card in the header; every dcgan command that samples reads it",
        _build_safetensors,
        check_safetensors,
        0.0,
        "dcgan (PyTorch), rebuilt from the file",
        """import torch
from dcgan import generate, load_checkpoint, sample_z

ckpt = load_checkpoint("{file}")
G = ckpt.build_generator()  # eval mode
z = sample_z(16, {z_dim}, "{prior}", torch.Generator().manual_seed(0))  # 16 draws from {prior_means}
images = generate(G, z)  # {shape}, float32 in [-1, 1]
# or from the shell: dcgan generate {file} -n 64 --out grid.png""",
        """import torch
from dcgan import generate, load_checkpoint, sample_z

ckpt = load_checkpoint("{file}")
G = ckpt.build_generator()  # eval mode
classes = ckpt.model_config.class_names  # the class names, indexed by label: {classes_text}
z = sample_z(16, {z_dim}, "{prior}", torch.Generator().manual_seed(0))  # 16 draws from {prior_means}
labels = torch.full((16,), {label})  # the class of each z, int64 in 0..{last_label}; {label} is {label_name}
images = generate(G, z, labels)  # {shape}, float32 in [-1, 1]
# or from the shell: dcgan generate {file} -n 64 --class {label_shell} --out grid.png""",
    ),
    "onnx": ExportFormat(
        ".onnx",
        "ONNX graph (torch.export-based exporter), input z (batch, z_dim) (and labels (batch,) int64 for a conditional G), "
        "output images (batch, C, H, W)",
        _build_onnx,
        check_onnx,
        1e-4,
        "onnxruntime (CPUExecutionProvider) against PyTorch",
        """import numpy as np
import onnxruntime as ort

session = ort.InferenceSession("{file}", providers=["CPUExecutionProvider"])
rng = np.random.default_rng(0)
n = 16
z = {sample_numpy}
images = session.run(["images"], {{"z": z}})[0]  # {shape}, float32 in [-1, 1]
pixels = {to_uint8}  # NCHW, 0..255""",
        """import numpy as np
import onnxruntime as ort

session = ort.InferenceSession("{file}", providers=["CPUExecutionProvider"])
rng = np.random.default_rng(0)
n = 16
z = {sample_numpy}
labels = np.full(n, {label}, dtype=np.int64)  # the class of each z, 0..{last_label}; {label} is {label_name}
images = session.run(["images"], {{"z": z, "labels": labels}})[0]  # {shape}, float32 in [-1, 1]
pixels = {to_uint8}  # NCHW, 0..255""",
        requires=("onnx", "onnxscript", "onnxruntime"),
    ),
    "torchscript": ExportFormat(
        ".torchscript.pt",
        "TorchScript (torch.jit.trace) for LibTorch/C++; PyTorch has deprecated TorchScript",
        _build_torchscript,
        check_torchscript,
        1e-6,
        "torch.jit.load against PyTorch eager",
        """import torch

G = torch.jit.load("{file}", map_location="cpu")
n = 16
z = {sample_torch}
with torch.no_grad():
    images = G(z)  # {shape}, float32 in [-1, 1]""",
        """import torch

G = torch.jit.load("{file}", map_location="cpu")
n = 16
z = {sample_torch}
labels = torch.full((n,), {label}, dtype=torch.long)  # the class of each z, 0..{last_label}; {label} is {label_name}
with torch.no_grad():
    images = G(z, labels)  # {shape}, float32 in [-1, 1]""",
    ),
}


def parse_formats(text: str) -> list[str]:
    """'onnx,safetensors' -> ['onnx', 'safetensors'], 'all' -> every format; unknown names raise ConfigError."""
    names = list(EXPORT_FORMATS) if text.strip() == "all" else [n.strip().lower() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in EXPORT_FORMATS]
    if unknown or not names:
        raise ConfigError(f"unknown export format(s) {', '.join(unknown) or repr(text)}: use {', '.join(EXPORT_FORMATS)} or all")
    return list(dict.fromkeys(names))
