"""A run's dashboard: final samples, the progress strip, curves, a latent walk and the filters
(and, for a class-conditional run, a class grid: a row per class, the same z down each column).

`build_report` reads a run directory (it writes nothing) and returns titled
panels plus a summary; `report_image` stacks them into one PNG-ready picture and
`report_html` into a self-contained page with the pictures inlined.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from .checkpoint import Checkpoint, load_checkpoint
from .errors import ConfigError
from .explore.figures import walk_figure
from .explore.latent import interpolate, latent_sheet, sheet_labels
from .figures import class_rows_image, stack_vertical, titled
from .models import Generator
from .models.conditioning import class_grid
from .rundir import RunDir
from .sampling import generate
from .training.monitors import describe_best

__all__ = ["Report", "build_report", "report_image", "report_html"]

CLASS_GRID_ROWS = 20  # classes shown in a conditional run's class grid (the first ones, by label)
CLASS_GRID_COLUMNS = 10  # samples per class row


@dataclass
class Report:
    """Titled pictures of one run and the numbers that describe it."""

    run_dir: Path
    summary: dict = field(default_factory=dict)
    panels: list[tuple[str, Image.Image]] = field(default_factory=list)


def _progress_strip(run: RunDir, frames: int = 8, width: int = 160) -> Image.Image | None:
    """Up to `frames` of the per-epoch sample grids, evenly spaced, shrunk and labelled with their step."""
    paths = run.sample_grids()
    if not paths:
        return None
    count = min(frames, len(paths))
    chosen = [paths[round(i * (len(paths) - 1) / max(count - 1, 1))] for i in range(count)]  # first and last included
    tiles = []
    for p in chosen:
        with Image.open(p) as im:
            tile = im.convert("RGB").resize((width, round(im.height * width / im.width)), Image.Resampling.LANCZOS)
        tiles.append(titled(tile, f"step {int(p.stem.split('_')[1])}", size=11))
    height = max(t.height for t in tiles)
    strip = Image.new("RGB", (sum(t.width for t in tiles) + 6 * (len(tiles) - 1), height), "white")
    x = 0
    for t in tiles:
        strip.paste(t, (x, 0))
        x += t.width + 6
    return strip


def build_report(run_dir: str | Path, walks: int = 4, steps: int = 8, seed: int = 0, raw: bool = False) -> Report:
    """Collect a run's pictures and figures; raise ConfigError when `run_dir` is not a run."""
    run_dir = Path(run_dir)
    run = RunDir(run_dir)
    if not run.checkpoints.is_dir():
        raise ConfigError(f"{run_dir} is not a run directory (no checkpoints/ inside)")
    ckpt = load_checkpoint(run_dir)
    report = Report(run_dir)
    report.summary = _summary(run_dir, ckpt)
    G = ckpt.build_generator(raw=raw)
    _add_training_panels(report, run, ckpt.step)
    _add_model_panels(report, ckpt, G, walks, steps, seed)
    return report


def _summary(run_dir: Path, ckpt: Checkpoint) -> dict:
    """The report's summary line: the run, its data and model, how far and how long it trained."""
    record, mc = ckpt.record, ckpt.model_config
    summary = {
        "run": str(run_dir),
        "data": (record.data or {}).get("name"),
        "images": (record.data or {}).get("num_images"),
        "model": f"{mc.image_size}x{mc.image_size}x{mc.channels}, z_dim {mc.z_dim}, width {mc.width}",
        "step": ckpt.step,
        "training_s": round(float(record.elapsed_s), 1),
        "last": record.last,
        "best": record.best,
    }
    if mc.conditional:
        names = [mc.class_name(k) for k in range(mc.num_classes)]
        summary["classes"] = (
            f"{mc.num_classes} ({mc.conditioning}): " + ", ".join(names[:CLASS_GRID_ROWS]) + (", ..." if len(names) > CLASS_GRID_ROWS else "")
        )
    return summary


def _add_training_panels(report: Report, run: RunDir, step: int) -> None:
    """The pictures training left in the run: the latest samples, the progress strip, the loss plot."""
    records = run.read_metrics()
    if run.latest_samples.exists():
        with Image.open(run.latest_samples) as im:
            report.panels.append((f"samples at step {step} (fixed noise)", im.convert("RGB")))
    strip = _progress_strip(run)
    if strip is not None:
        report.panels.append(("progress over training (the frames of progress.gif)", strip))
    train_records = [r for r in records if "loss_d" in r]
    if train_records:
        from .plots import loss_figure_png

        report.panels.append(
            (
                "losses, D outputs" + (" and FID" if any("fid" in r for r in records) else ""),
                Image.open(io.BytesIO(loss_figure_png(records))).convert("RGB"),
            )
        )


def _add_model_panels(report: Report, ckpt: Checkpoint, G: Generator, walks: int, steps: int, seed: int) -> None:
    """The pictures drawn now from the trained pair: a class grid, spherical walks, the filters."""
    mc = ckpt.model_config
    if mc.conditional:
        classes = list(range(min(mc.num_classes, CLASS_GRID_ROWS)))
        z, labels = class_grid(latent_sheet(mc, seed, CLASS_GRID_COLUMNS), classes)  # (rows * cols, D), (rows * cols,)
        shown = "" if len(classes) == mc.num_classes else f", the first {len(classes)} of {mc.num_classes} classes"
        report.panels.append(
            (
                f"classes: a row per class, the same z down each column (seed {seed}{shown})",
                class_rows_image(generate(G, z, labels), [mc.class_name(k) for k in classes]),
            )
        )
    sheet = latent_sheet(mc, seed, 2 * walks)
    walk_labels = sheet_labels(mc, walks)  # a conditional G: walk r within class r mod K
    walk_images = interpolate(G, sheet[:walks], sheet[walks:], steps, "spherical", labels=walk_labels)
    in_classes = "" if walk_labels is None else ", in classes " + ", ".join(mc.class_name(int(k)) for k in walk_labels) + ", a row each"
    report.panels.append((f"spherical walks between random z (seed {seed}{in_classes})", walk_figure(walk_images)))
    try:
        from .explore.filters import discriminator_filters, generator_filters

        parts = [titled(discriminator_filters(ckpt.build_discriminator()), "D, first layer", size=11)]
        parts.append(titled(generator_filters(G), "G, output layer", size=11))
        report.panels.append(("filters", stack_vertical(parts)))
    except Exception:  # noqa: BLE001 - a picture that cannot be made is left out, not fatal
        pass


def report_image(report: Report, width: int = 1100) -> Image.Image:
    """One picture: a summary line, then every panel with its title, scaled down to at most `width`."""
    s = report.summary
    line = f"{s['run']}: {s['data']} ({s['images']} images), {s['model']}, step {s['step']}, {s['training_s']} s of training"
    if s["best"]:
        line += f"; best {describe_best(s['best'])}"
    parts = [titled(Image.new("RGB", (width, 2), "white"), line, size=14)]
    for title, image in report.panels:
        if image.width > width:
            image = image.resize((width, math.ceil(image.height * width / image.width)), Image.Resampling.LANCZOS)
        parts.append(titled(image, title, size=13))
    return stack_vertical(parts, gap=14)


def _data_uri(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def report_html(report: Report) -> str:
    """A self-contained HTML page (pictures inlined as base64 PNG)."""
    s = report.summary
    rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(json.dumps(v) if isinstance(v, dict) else str(v))}</td></tr>" for k, v in s.items()
    )
    sections = "".join(
        f"<section><h2>{html.escape(title)}</h2><img src='{_data_uri(image)}' alt='{html.escape(title)}'></section>" for title, image in report.panels
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>dcgan report</title>"
        "<style>body{font-family:sans-serif;max-width:1200px;margin:2em auto;color:#222}"
        "img{max-width:100%;image-rendering:pixelated;border:1px solid #ddd}th{text-align:left;padding-right:1em}"
        "table{border-collapse:collapse;margin-bottom:1em}td,th{border-bottom:1px solid #eee;padding:2px 6px}</style></head>"
        f"<body><h1>dcgan run: {html.escape(str(report.run_dir))}</h1><table>{rows}</table>{sections}</body></html>\n"
    )
