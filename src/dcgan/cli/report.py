"""`dcgan report`: a run's dashboard as one PNG and a self-contained HTML page."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError
from ..fileio import atomic_write_bytes
from ..imaging import save_image_atomic
from ..report import build_report, report_html, report_image
from ..rundir import RunDir
from .common import Command, _add_raw_g, add_seed

REPORT_EXAMPLES = """examples:
  dcgan report runs/mnist                     # runs/mnist/report.png and report.html
  dcgan report runs/mnist --out mnist-report.png
  dcgan report runs/mnist-cond                # a conditional run: also a class grid, a row per class
"""


def _add_report_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory")
    p.add_argument(
        "--out", default=None, metavar="FILE.png", help="the dashboard picture (default RUN_DIR/report.png); an .html page is written beside it"
    )
    add_seed(p, "the walks (and a conditional run's class grid) shown")
    _add_raw_g(p)


def _run_report(args: argparse.Namespace) -> int:
    report = build_report(args.run_dir, seed=args.seed, raw=args.raw_g)
    out = Path(args.out) if args.out else RunDir(args.run_dir).report
    if out.suffix.lower() != ".png":
        raise ConfigError(f"--out {args.out}: the dashboard is a .png file (the .html page is written beside it)")
    save_image_atomic(report_image(report), out)
    page = atomic_write_bytes(out.with_suffix(".html"), report_html(report).encode())
    print(f"wrote {out} and {page} ({len(report.panels)} panels: {', '.join(t.split(' (')[0] for t, _ in report.panels)})")
    return 0


COMMANDS = {
    "report": Command(
        "a run's dashboard as one PNG and an HTML page: samples, progress, curves, walks, filters (and a class grid when conditional)",
        REPORT_EXAMPLES,
        _add_report_args,
        _run_report,
    )
}
