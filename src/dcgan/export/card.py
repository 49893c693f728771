"""The model card: what a user of an exported generator needs, as data and as Markdown.

`model_card` gathers z's size and prior, the image size, channels and range, the
training data and its hash, the steps, and the metrics measured for that
checkpoint with their protocol; `model_card_markdown` writes it for people.
A class-conditional generator's card also lists its classes (label and name),
its conditioning method and its second input, `labels`, and its usage
snippets pass a class.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path

import torch

from .._version import __version__
from ..checkpoint import Checkpoint
from ..metrics.evaluate import EvalReport
from ..metrics.scores import METRICS
from ..models import ModelConfig, build_generator, model_summary
from ..models.conditioning import CONDITIONING
from ..models.priors import LATENT_PRIORS, get_prior
from ..rundir import RunDir
from .formats import CARD_JSON, CARD_MARKDOWN, EXPORT_FORMATS, LABELS_INPUT

__all__ = ["PRIOR_SAMPLING", "CARD_JSON", "CARD_MARKDOWN", "run_metrics", "model_card", "model_card_markdown", "tolerance_text"]

CARD_VERSION = 1

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
FINGERPRINT_OF = "sha256 of the decoded training pixels and their shape; for data streamed from disk, of the file names, sizes and modification times"
TO_UINT8 = "((images.clip(-1, 1) + 1) * 127.5).round().astype(np.uint8)"
GENERATOR_KIND_MEANS = {
    "ema": "an exponential moving average of G's weights over training, which every dcgan command samples by default",
    "raw": "the trained G's weights at this step (exported with --raw-g, or from a run without an average)",
}
BATCH_NORM_MEANS = {
    "ema": "eval mode with standing statistics: recomputed for these weights from fresh z in train mode, so each image depends on its own z only",
    "raw": "eval mode: the running statistics from training, so each image depends on its own z only",
}
G_BLOCK_MEANS = {
    "transposed": "transposed convolutions, kernel 4, stride 2 (the paper's fractionally-strided convolutions)",
    "nearest": "nearest-neighbour x2 resize, then a 3x3 convolution",
}


@dataclass(frozen=True)
class PriorSampling:
    """How to draw z from one of the priors, in words and in code (read from `models.priors.LATENT_PRIORS`)."""

    description: str  # the distribution, for the card
    torch: str  # a PyTorch expression for n vectors; {z_dim} is filled in
    numpy: str  # the NumPy one, float32, from `rng = np.random.default_rng(seed)`


# Kept for the name's users; the priors themselves are the one source of these texts.
PRIOR_SAMPLING: dict[str, PriorSampling] = {name: PriorSampling(p.description, p.torch_code, p.numpy_code) for name, p in LATENT_PRIORS.items()}


# --------------------------------------------------------------------------- #
# Metrics recorded for a checkpoint
# --------------------------------------------------------------------------- #
def _metric_definitions() -> dict[str, tuple[str, bool]]:
    """Each reported key (fid, kid_std, recall, ...) -> (its metric's description, lower is better)."""
    return {key: (m.description, lower) for m in METRICS.values() for key, lower in m.lower_is_better.items()}


def _protocol_text(protocol: dict) -> str:
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
    found = _evaluated_metrics(run_dir, step, definitions)
    fid = _tracked_fid(run_dir, step, best, definitions.get("fid", ("", True))[0])
    return found if fid is None else [*found, fid]


def _evaluated_metrics(run_dir: Path, step: int, definitions: dict[str, tuple[str, bool]]) -> list[dict]:
    """The generator's scores in the reports `dcgan evaluate` wrote for `step`, each with its real-test floor."""
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
            found.append(
                {
                    "name": key,
                    "value": value,
                    "lower_is_better": lower,
                    "definition": description,
                    "floor": floor.get(key) if _is_number(floor.get(key)) else None,  # real test images scored the same way
                    "protocol": _protocol_text(protocol),
                    "source": f"eval/{path.name}",
                }
            )
    return found


def _tracked_fid(run_dir: Path, step: int, best: dict | None, fid_definition: str) -> dict | None:
    """The FID `--eval-every` logged at `step` in metrics.jsonl, else the checkpoint's `best` of that step, else None."""
    tracked = None
    for record in RunDir(run_dir).read_metrics():
        if record.get("step") == step and _is_number(record.get("fid")):
            tracked = record  # the last one wins: a resumed run may have evaluated that step again
    if tracked is not None:
        return {
            "name": "fid",
            "value": tracked["fid"],
            "lower_is_better": True,
            "definition": fid_definition,
            "floor": None,
            "protocol": f"tracked during training (--eval-every) against the training data: {tracked.get('eval', 'protocol not recorded')}",
            "source": "metrics.jsonl",
        }
    if best and best.get("step") == step and _is_number(best.get("fid")):
        return {
            "name": "fid",
            "value": best["fid"],
            "lower_is_better": True,
            "definition": fid_definition,
            "floor": None,
            "protocol": "tracked during training (--eval-every) against the training data; the checkpoint records the value, "
            "metrics.jsonl no longer holds its protocol",
            "source": "checkpoint state (best)",
        }
    return None


# --------------------------------------------------------------------------- #
# The model card
# --------------------------------------------------------------------------- #
# Where the class enters a conditional G, by conditioning method, for the card's layers line.
CONDITIONING_LAYERS = {
    "concat": "[z (B, {z_dim}), one_hot(labels) (B, {num_classes})] -> {maps}",
    "projection": "z (B, {z_dim}) -> {maps}; labels (B,) pick each batch norm's scale and shift",
}
SHOWN_CLASSES = 12  # class names written out in one line of the card; the Classes table has them all


def _layers_text(mc: ModelConfig) -> str:
    """z (B, 100) -> 512x4x4 -> 256x8x8 -> 128x16x16 -> 64x32x32 -> 3x64x64 (tanh), for the card."""
    widths = mc.hidden_widths()[::-1]
    maps = [f"{w}x{mc.base_size * 2**i}x{mc.base_size * 2**i}" for i, w in enumerate(widths)]
    maps_text = " -> ".join(maps) + f" -> {mc.channels}x{mc.image_size}x{mc.image_size} (tanh)"
    if mc.conditional:
        return CONDITIONING_LAYERS[mc.conditioning].format(z_dim=mc.z_dim, num_classes=mc.num_classes, maps=maps_text)
    return f"z (B, {mc.z_dim}) -> " + maps_text


def _classes_text(mc: ModelConfig) -> str:
    """'0 = "0", 1 = "1", ..., 9 = "9"' (the first SHOWN_CLASSES), for one line of the card."""
    shown = [f"{i} = {json.dumps(mc.class_name(i), ensure_ascii=False)}" for i in range(min(mc.num_classes, SHOWN_CLASSES))]
    return ", ".join(shown) + (f", ... ({mc.num_classes} in all)" if mc.num_classes > SHOWN_CLASSES else "")


def _conditional_numbers(mc: ModelConfig) -> dict:
    """What a conditional usage snippet is formatted with: an example class (label 1) and the class list."""
    label = 1  # a conditional model has at least 2 classes; label 0 would read like "no class"
    name = mc.class_name(label)
    return {
        "label": label,
        "label_name": json.dumps(name, ensure_ascii=False),
        "label_shell": shlex.quote(name),
        "last_label": mc.num_classes - 1,
        "classes_text": _classes_text(mc),
    }


def _conditioning_section(mc: ModelConfig) -> dict:
    """The card's entries for a conditional G: its classes, its conditioning method and its `labels` input."""
    return {
        "num_classes": mc.num_classes,
        "classes": [{"label": i, "name": mc.class_name(i)} for i in range(mc.num_classes)],
        "classes_means": "the label is the class index that G, and each exported file, takes for every z; the names come from the training data",
        "conditioning": mc.conditioning,
        "conditioning_means": CONDITIONING[mc.conditioning].description,
        "labels_input": {"name": LABELS_INPUT, "shape": ["batch"], "dtype": "int64", "range": [0, mc.num_classes - 1]},
    }


def _training_section(ckpt: Checkpoint) -> dict:
    """The card's `training` section: the data and its hash, the position, the optimisation and the versions."""
    record = ckpt.record
    train, data = record.train_config, record.data
    return {
        "data": {
            "name": data.get("name") or train.get("data"),
            "source": data.get("source"),
            "data_dir": train.get("data_dir"),
            "num_images": data.get("num_images"),
            "sha256": data.get("fingerprint"),
            "sha256_of": FINGERPRINT_OF,
        },
        "step": ckpt.step,
        "epoch": round(record.epoch_fraction, 4),
        "batch_size": train.get("batch_size"),
        "processes": record.processes,
        "optimizer": "Adam",
        "lr_g": train.get("lr_g"),
        "lr_d": train.get("lr_d"),
        "betas": [train.get("beta1"), train.get("beta2")],
        "label_smoothing": train.get("label_smoothing"),
        "d_steps": train.get("d_steps"),
        "g_steps": train.get("g_steps"),
        # what a checkpoint from before these options trained with (training.config.EARLIER_RUNS and the defaults then)
        "loss": train.get("loss", "non-saturating"),
        "r1_gamma": train.get("r1_gamma", 0.0),
        "r1_every": train.get("r1_every", 16),
        "augment": train.get("augment", "none"),
        "augment_target": train.get("augment_target"),
        # Checkpoints from before the resolved precision was recorded only know the option ("auto").
        "precision": record.precision or f"{train.get('precision')} (not resolved in the checkpoint)",
        "seed": train.get("seed"),
        "elapsed_s": record.elapsed_s,
        "saved_at": record.saved_at,
        "dcgan_version": ckpt.dcgan_version,
        "torch_version": record.torch_version,
        "best_tracked_fid": record.best or None,
    }


def _output_shape(mc: ModelConfig) -> list:
    return ["batch", mc.channels, mc.image_size, mc.image_size]


def _summary(ckpt: Checkpoint, prior, colour: str, data_name: str | None, trained: bool) -> str:
    """The card's one-paragraph summary: what G maps to what, trained on what for how long."""
    mc = ckpt.model_config
    steps_text = f"{ckpt.step} steps ({ckpt.record.epoch_fraction:.2f} epochs)" if trained else "an unrecorded number of steps"
    given_class = f" and a class label (0 to {mc.num_classes - 1}, one of {mc.num_classes} classes)" if mc.conditional else ""
    return (
        f"A {'class-conditional ' if mc.conditional else ''}DCGAN generator (Radford, Metz and Chintala 2015) that maps "
        f"a latent vector z of {mc.z_dim} numbers drawn from {prior.description}{given_class} to a "
        f"{mc.image_size}x{mc.image_size} {colour} image in [-1, 1]" + (f", trained on {data_name} for {steps_text}." if data_name else ".")
    )


def _model_section(ckpt: Checkpoint, kind: str, rows: list[dict], numbers: dict, colour: str) -> dict:
    """The card's `model` section: input and output, architecture, size, which G and its batch norm, the config."""
    mc = ckpt.model_config
    architecture = (
        "DCGAN generator (Radford et al. 2015): a stack of x2 upsampling blocks (the G block: transposed convolutions or "
        "resize + convolution) with batch norm and ReLU, tanh output"
    )
    if mc.conditional:
        architecture += f"; class-conditional ({mc.conditioning}): {CONDITIONING[mc.conditioning].description}"
    model = {
        "architecture": architecture,
        "layers": _layers_text(mc),
        "z_dim": mc.z_dim,
        "z_dim_means": "the length of the latent vector z, the paper's nz",
        "prior": mc.prior,
        "prior_means": numbers["prior_means"],
        "sample_z": {"torch": numbers["sample_torch"], "numpy": numbers["sample_numpy"]},
        "input": {"name": "z", "shape": ["batch", mc.z_dim], "dtype": "float32"},
    }
    if mc.conditional:  # an unconditional card keeps its keys, in their order
        model |= _conditioning_section(mc)
    half_life = ckpt.record.ema.get("half_life_images") if kind == "ema" else None
    return {
        **model,
        "output": {"name": "images", "shape": _output_shape(mc), "layout": "NCHW", "dtype": "float32", "range": [-1.0, 1.0]},
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
        "generator": kind,
        "generator_means": GENERATOR_KIND_MEANS[kind] + (f" (half-life {half_life / 1000:g}k images)" if half_life else ""),
        # a conditional G's standing statistics come from fresh z with uniformly drawn classes
        "batch_norm": BATCH_NORM_MEANS[kind].replace("fresh z", "fresh z and uniformly drawn classes") if mc.conditional else BATCH_NORM_MEANS[kind],
        "config": mc.to_dict(),
    }


def model_card(ckpt: Checkpoint, metrics: list[dict], raw: bool = False) -> dict:
    """Everything a user of the exported generator needs, as JSON-able data.

    Sections: `model` (z's size and prior and how to draw it, image size,
    channels and range and how to map it to uint8, architecture, parameters),
    `training` (data with its sha256, step, epoch, optimisation, precision,
    seed, time, versions), `metrics` (each with its value and protocol; see
    `run_metrics`), `usage` (Python for each export format) and the paper.
    `raw` says the export holds the trained G rather than its average.
    A conditional G's `model` section adds `num_classes`, `classes` (each
    {"label", "name"}), `conditioning` and `labels_input`, and its usage
    snippets pass a class (label 1).
    """
    mc = ckpt.model_config
    kind = ckpt.generator_kind(raw)
    with torch.random.fork_rng(devices=[]):  # building a Generator draws its initial weights from the global RNG
        rows = model_summary(build_generator(mc), torch.zeros(1, mc.z_dim))
    prior = get_prior(mc.prior)
    colour = "grey" if mc.channels == 1 else "RGB"
    trained = bool(ckpt.state)  # an empty state records no training
    data_name = ckpt.record.data.get("name") or ckpt.record.train_config.get("data")
    numbers = {
        "z_dim": mc.z_dim,
        "prior": mc.prior,
        "prior_means": prior.description,
        "shape": "(16, " + ", ".join(map(str, _output_shape(mc)[1:])) + ")",
        "sample_torch": prior.torch_code.format(z_dim=mc.z_dim),
        "sample_numpy": prior.numpy_code.format(z_dim=mc.z_dim),
        "to_uint8": TO_UINT8,
    }
    if mc.conditional:
        numbers |= _conditional_numbers(mc)
    return {
        "card_version": CARD_VERSION,
        "title": ("Class-conditional DCGAN generator" if mc.conditional else "DCGAN generator")
        + f": {mc.image_size}x{mc.image_size} {colour} images"
        + (f" ({data_name})" if data_name else ""),
        "summary": _summary(ckpt, prior, colour, data_name, trained),
        "model": _model_section(ckpt, kind, rows, numbers, colour),
        "training": _training_section(ckpt) if trained else {},
        "metrics": metrics,
        "metrics_note": (
            f"{len(metrics)} number(s) measured for step {ckpt.step}; compare numbers only under the same protocol"
            if metrics
            else f"no metrics recorded for step {ckpt.step}: measure them with `dcgan evaluate CKPT` "
            "(RUN_DIR/eval/ keeps the report, which a later export picks up) or train with --eval-every"
        ),
        "usage": {
            name: (fmt.conditional_usage if mc.conditional else fmt.usage).format(file=fmt.filename(), **numbers)
            for name, fmt in EXPORT_FORMATS.items()
        },
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


def _model_markdown(m: dict) -> list[str]:
    """The Model section (and Classes, for a conditional G) of MODEL_CARD.md."""
    lines = ["## Model", "", "| | |", "|---|---|"]
    rows = [
        ("architecture", m["architecture"]),
        ("layers", f"`{m['layers']}`"),
        ("z", f"{m['z_dim']} numbers ({m['z_dim_means']}), prior {m['prior']}: {m['prior_means']}, e.g. `{m['sample_z']['torch']}`"),
        (
            "input",
            f"`{m['input']['name']}`, shape ({', '.join(map(str, m['input']['shape']))}), {m['input']['dtype']}"
            + (
                f"; `{m['labels_input']['name']}`, shape (batch,), {m['labels_input']['dtype']} class labels "
                f"{m['labels_input']['range'][0]} to {m['labels_input']['range'][1]} (see Classes)"
                if m.get("labels_input")
                else ""
            ),
        ),
        (
            "output",
            f"`{m['output']['name']}`, shape ({', '.join(map(str, m['output']['shape']))}), {m['output']['layout']}, "
            f"{m['output']['dtype']} in [-1, 1]",
        ),
        ("to uint8", f"`{m['to_uint8']}`"),
        ("image", f"{m['image_size']}x{m['image_size']}, {m['channels']} channel(s) ({m['colour']})"),
        ("parameters", f"{m['parameters']:,} ({m['macs_per_image'] / 1e6:.1f}M multiply-accumulates per image)"),
        ("G block", f"{m['g_block']}: {m['g_block_means']}; width {m['width']}, at most {m['max_channels']} channels"),
        ("weights", m["generator_means"]),
        ("batch norm", m["batch_norm"]),
    ]
    if m.get("classes"):
        rows += [
            (
                "classes",
                f"{m['num_classes']}: "
                + ", ".join(f"{c['label']} = `{c['name']}`" for c in m["classes"][:SHOWN_CLASSES])
                + (", ..." if m["num_classes"] > SHOWN_CLASSES else ""),
            ),
            ("conditioning", f"{m['conditioning']}: {m['conditioning_means']}"),
        ]
    lines += [f"| {k} | {_cell(v)} |" for k, v in rows]
    if m.get("classes"):
        lines += ["", "## Classes", "", _sentence(m["classes_means"]), "", "| label | name |", "|---:|---|"]
        lines += [f"| {c['label']} | {_cell(c['name'])} |" for c in m["classes"]]
    return lines


def _training_markdown(t: dict) -> list[str]:
    """The Training section of MODEL_CARD.md."""
    lines = ["", "## Training", ""]
    if t:
        d = t["data"]
        rows = [
            ("data", f"{d['name']} ({d['num_images']} images from {d['source']})"),
            ("data sha256", f"`{d['sha256']}`: {d['sha256_of']}"),
            ("progress", f"step {t['step']}, epoch {t['epoch']:.2f}, {t['processes']} process(es)"),
            (
                "optimisation",
                f"batch {t['batch_size']}, Adam lr G {t['lr_g']} / D {t['lr_d']}, betas ({t['betas'][0]}, {t['betas'][1]}), "
                f"label smoothing {t['label_smoothing']}, {t['d_steps']} D / {t['g_steps']} G step(s) per iteration",
            ),
            (
                "regularisation",
                f"{t['loss']} loss, R1 gamma {t['r1_gamma']} every {t['r1_every']} D updates, augmentation {t['augment']}"
                + (f" (adaptive, target {t['augment_target']})" if t.get("augment_target") is not None else ""),
            ),
            ("precision", t["precision"]),
            ("seed", t["seed"]),
            ("training time", f"{t['elapsed_s']:.0f} s" if _is_number(t["elapsed_s"]) else None),
            ("saved at", t["saved_at"]),
            ("versions", f"dcgan {t['dcgan_version']}, torch {t['torch_version']}"),
        ]
        lines += ["| | |", "|---|---|"] + [f"| {k} | {_cell(v)} |" for k, v in rows]
    else:
        lines.append("The checkpoint records no training state.")
    return lines


def model_card_markdown(card: dict) -> str:
    """The card as Markdown (MODEL_CARD.md): what the model is, how it was trained and scored, how to use it."""
    lines = [f"# {card['title']}", "", card["summary"], ""] + _model_markdown(card["model"]) + _training_markdown(card.get("training") or {})
    lines += ["", "## Metrics", ""]
    if card["metrics"]:
        lines += ["| metric | value | real-test floor | better | protocol | source |", "|---|---:|---:|---|---|---|"]
        for r in card["metrics"]:
            lines.append(
                f"| {r['name']} | {_cell(r['value'])} | {_cell(r['floor'])} | {'lower' if r['lower_is_better'] else 'higher'} "
                f"| {_cell(r['protocol'])} | {_cell(r['source'])} |"
            )
        lines += ["", _sentence(card["metrics_note"])]
    else:
        lines.append(_sentence(card["metrics_note"]))
    if card.get("files"):
        lines += ["", "## Files", "", "| file | size | sha256 | check |", "|---|---:|---|---|"]
        for f in card["files"]:
            check = (
                "-"
                if f["max_diff"] is None
                else f"max \\|diff\\| {f['max_diff']:.1e} (tolerance {tolerance_text(f['tolerance'])}), {f['checked_with']}"
            )
            lines.append(f"| `{f['name']}` | {f['bytes']:,} B | `{f['sha256'][:16]}...` | {check} |")
    lines += ["", "## Usage", ""]
    for name, code in card["usage"].items():
        lines += [f"### {name}", "", "```python", code, "```", ""]
    lines += ["## Citation", "", card["paper"], "", "```bibtex", card["citation"], "```", ""]
    return "\n".join(lines)
