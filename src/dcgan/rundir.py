"""The run directory: one place that knows its layout, its metrics file and its disk space.

    RUN_DIR/
      config.json                 the resolved model and training config, the data's fingerprint
      model_summary.txt           G's and D's layers, shapes, parameters and MACs
      metrics.jsonl               one JSON record a line: losses, evaluations, health events
      samples/step_XXXXXXX.png    the fixed-noise grid at each sample point
      samples.png                 the latest grid
      checkpoints/latest.safetensors   what --resume and every CKPT argument read
      checkpoints/best.safetensors     the best --eval-every evaluation
      checkpoints/failed.safetensors   the state a health failure stopped at
      progress.gif, losses.png    written when training ends
      tensorboard/                with --tensorboard
      report.png, report.html     `dcgan report`
      generated.png               the `dcgan generate` suggestion
      eval/step_XXXXXXX-FEATURES.json   `dcgan evaluate` reports
      explore/                    pictures of the explore commands
      export/                     `dcgan export` files and the model card

Every command that reads or writes a run goes through `RunDir`; nothing else
spells these names.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

__all__ = ["RunDir", "CHECKPOINT_DIR", "LATEST", "BEST", "FAILED", "read_metrics"]

CHECKPOINT_DIR = "checkpoints"
LATEST = "latest.safetensors"
BEST = "best.safetensors"  # written by --eval-every whenever the tracked FID improves
FAILED = "failed.safetensors"  # the state a health failure stopped at, kept beside the healthy `latest`
METRICS_FILE = "metrics.jsonl"
SAMPLES_DIR = "samples"


@dataclass(frozen=True)
class RunDir:
    """Paths of one run directory, and the few operations on its files."""

    root: Path

    def __init__(self, root: str | Path):
        object.__setattr__(self, "root", Path(root))

    @classmethod
    def of_checkpoint(cls, path: str | Path) -> RunDir:
        """The run directory of a checkpoint file (RUN/checkpoints/X.safetensors), or the file's own folder."""
        path = Path(path)
        folder = path.parent
        return cls(folder.parent if folder.name == CHECKPOINT_DIR else folder)

    # Paths ------------------------------------------------------------------
    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def model_summary(self) -> Path:
        return self.root / "model_summary.txt"

    @property
    def metrics(self) -> Path:
        return self.root / METRICS_FILE

    @property
    def samples_dir(self) -> Path:
        return self.root / SAMPLES_DIR

    def sample_grid(self, step: int) -> Path:
        return self.samples_dir / f"step_{step:07d}.png"

    def sample_grids(self) -> list[Path]:
        """Every saved grid, oldest first."""
        return sorted(self.samples_dir.glob("step_*.png"))

    @property
    def latest_samples(self) -> Path:
        return self.root / "samples.png"

    @property
    def checkpoints(self) -> Path:
        return self.root / CHECKPOINT_DIR

    @property
    def latest(self) -> Path:
        return self.checkpoints / LATEST

    @property
    def best(self) -> Path:
        return self.checkpoints / BEST

    @property
    def failed(self) -> Path:
        return self.checkpoints / FAILED

    @property
    def progress_gif(self) -> Path:
        return self.root / "progress.gif"

    @property
    def losses_plot(self) -> Path:
        return self.root / "losses.png"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"

    @property
    def report(self) -> Path:
        return self.root / "report.png"

    @property
    def generated(self) -> Path:
        return self.root / "generated.png"

    @property
    def eval_dir(self) -> Path:
        return self.root / "eval"

    def evaluation(self, step: int, features: str) -> Path:
        """Where `dcgan evaluate` keeps its report of the checkpoint at `step` with these features."""
        return self.eval_dir / f"step_{step:07d}-{features}.json"

    def evaluations(self, step: int) -> list[Path]:
        return sorted(self.eval_dir.glob(f"step_{step:07d}-*.json"))

    @property
    def explore_dir(self) -> Path:
        return self.root / "explore"

    @property
    def export_dir(self) -> Path:
        return self.root / "export"

    def holds_run(self) -> bool:
        """Whether a run already lives here (a checkpoint folder with something in it)."""
        return self.checkpoints.is_dir() and any(self.checkpoints.iterdir())

    # Metrics ----------------------------------------------------------------
    def append_metrics(self, record: dict) -> None:
        """One more line of metrics.jsonl."""
        with open(self.metrics, "a") as f:
            f.write(json.dumps(record) + "\n")

    def read_metrics(self) -> list[dict]:
        """The records of metrics.jsonl in order, without lines a kill left half-written; [] without the file."""
        if not self.metrics.is_file():
            return []
        records = []
        for line in self.metrics.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
        return records

    def truncate_metrics(self, step: int, keep_health: bool = False) -> None:
        """Drop the lines logged after `step` (past the checkpoint being resumed or rolled back to).

        Health events are kept with `keep_health`: a rollback's record of why it happened stays.
        """
        if not self.metrics.exists():
            return
        kept = [
            line
            for line in self.metrics.read_text().splitlines()
            if line.strip() and ((keep_health and '"health"' in line) or _record_step(line) <= step)
        ]
        self.metrics.write_text("".join(line + "\n" for line in kept))

    # Space ------------------------------------------------------------------
    def check_writable(self, needed_bytes: int) -> None:
        """Create the folder, prove it can be written, and insist on `needed_bytes` of free space.

        Raises ConfigError in one line, before any training time is spent.
        """
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / ".write-test"
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as exc:
            raise ConfigError(f"cannot write to the run directory {self.root} ({exc.strerror or exc}); pick another --out") from None
        free = shutil.disk_usage(self.root).free
        if free < needed_bytes:
            raise ConfigError(
                f"not enough free space in {self.root}: checkpoints need about {needed_bytes / 2**20:.0f} MB, {free / 2**20:.0f} MB are free"
            )


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The records of RUN_DIR/metrics.jsonl (see `RunDir.read_metrics`)."""
    return RunDir(run_dir).read_metrics()


def _record_step(line: str) -> int:
    try:
        return int(json.loads(line).get("step", 0))
    except (ValueError, AttributeError):
        return 1 << 62  # unreadable line: drop it
