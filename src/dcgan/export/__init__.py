"""Exporting a generator on its own: safetensors, ONNX or TorchScript, with a model card.

`EXPORT_FORMATS` maps a format name to how its file is built from G (in eval
mode, on the CPU) and the model card, how the file is checked (the same z must
give the same images as PyTorch, within the format's tolerance) and how it is
used. `model_card` gathers what a user of the file needs: z's size and prior,
the image size, channels and range, the training data and its hash, the steps,
and the metrics measured for that checkpoint with their protocol;
`model_card_markdown` writes it for people.

A class-conditional G is exported with its class as a second input (`labels`,
int64 of shape (batch,), in the ONNX and TorchScript files; `generate(G, z,
labels)` for the safetensors one), checked on seeded z and labels in which
every class appears, and its card lists the classes by label and name.

Nothing here writes files: `export_files` returns each file's bytes with the
result of its check, and `dcgan export` saves them.

>>> from dcgan import load_checkpoint
>>> files = export_files(load_checkpoint("runs/mnist"), ["onnx"], metrics=[])
>>> [(f.name, f.max_diff) for f in files]
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from ..checkpoint import Checkpoint
from .card import CARD_JSON, CARD_MARKDOWN, PRIOR_SAMPLING, model_card, model_card_markdown, run_metrics, tolerance_text
from .formats import (
    EXPORT_FORMATS,
    LABELS_INPUT,
    ExportFormat,
    check_inputs,
    check_onnx,
    check_safetensors,
    check_torchscript,
    missing_requirements,
    parse_formats,
    require,
)

__all__ = [
    "ExportFormat",
    "ExportedFile",
    "EXPORT_FORMATS",
    "PRIOR_SAMPLING",
    "CARD_JSON",
    "CARD_MARKDOWN",
    "LABELS_INPUT",
    "parse_formats",
    "export_names",
    "export_files",
    "missing_requirements",
    "run_metrics",
    "model_card",
    "model_card_markdown",
    "tolerance_text",
    "check_inputs",
    "check_safetensors",
    "check_onnx",
    "check_torchscript",
]


# --------------------------------------------------------------------------- #
# Everything one export writes
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class ExportedFile:
    """One file of an export, not yet written."""

    name: str  # file name inside the export folder
    data: bytes  # its content
    format: str  # an EXPORT_FORMATS name, or "card"
    max_diff: float | None = None  # largest |file(z[, labels]) - G(z[, labels])| its check found; None for the card
    tolerance: float | None = None  # the format's tolerance

    @property
    def passed(self) -> bool:
        if self.max_diff is None:
            return True
        assert self.tolerance is not None, "a checked file has its format's tolerance"
        return self.max_diff <= self.tolerance


def export_names(formats: list[str]) -> list[str]:
    """The file names an export of `formats` writes: one per format, then the card as JSON and Markdown."""
    return [EXPORT_FORMATS[name].filename() for name in formats] + [CARD_JSON, CARD_MARKDOWN]


def export_files(
    ckpt: Checkpoint, formats: list[str], metrics: list[dict], num_check: int = 16, seed: int = 0, raw: bool = False
) -> list[ExportedFile]:
    """Build and check the files of an export: G in each of `formats`, then the card (JSON and Markdown).

    Every file is checked against PyTorch on `num_check` seeded z (as one batch
    and as a batch of one), with seeded labels covering every class for a
    conditional G (see `check_inputs`); the result is in `max_diff`, and the caller decides
    what to do with a file that fails. The card files list each file's size,
    sha256 and check; the card inside the files cannot list them, and is the
    same otherwise.
    """
    require(formats)
    G = ckpt.build_generator("cpu", raw=raw)  # eval mode; exports are CPU float32 graphs
    card = model_card(ckpt, metrics, raw=raw)
    files = []
    for name in formats:
        fmt = EXPORT_FORMATS[name]
        data = fmt.build(G, card, ckpt.state)
        files.append(ExportedFile(fmt.filename(), data, name, fmt.check(data, G, num_check, seed), fmt.tolerance))
    listed = dict(
        card,
        files=[
            {
                "name": f.name,
                "format": f.format,
                "bytes": len(f.data),
                "sha256": hashlib.sha256(f.data).hexdigest(),
                "max_diff": f.max_diff,
                "tolerance": f.tolerance,
                "checked_with": EXPORT_FORMATS[f.format].runner,
            }
            for f in files
        ],
    )
    files.append(ExportedFile(CARD_JSON, (json.dumps(listed, indent=2, ensure_ascii=False) + "\n").encode(), "card"))
    files.append(ExportedFile(CARD_MARKDOWN, model_card_markdown(listed).encode(), "card"))
    return files
