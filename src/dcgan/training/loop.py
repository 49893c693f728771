"""The trainer: a short loop that advances one TrainState, steps the GAN and calls callbacks.

    data (DataFeed) --(images, labels)--> GANStep.step --figures--> window sums
        |                                                               |
        TrainState.advance()                          every log_every: one host sync -> record
        |                                                               |
        callbacks.on_step_end  <------------------------------  callbacks.on_log (may STOP / ROLLBACK)

Typical use, from Python:

>>> trainer = Trainer.from_options(data="digits", image_size=32, steps=200, run_dir="runs/demo")
>>> result = trainer.train()
"""

from __future__ import annotations

import json
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import torch

from .._version import __version__
from ..checkpoint import EMA_PREFIX, Checkpoint, TrainingRecord, load_checkpoint, save_checkpoint
from ..data import ImageData
from ..errors import CheckpointError, ConfigError, DataError, first_line
from ..models import ModelConfig, format_summary, model_summary
from ..models.conditioning import class_grid
from ..rundir import RunDir
from ..sampling import sample_z
from . import distributed
from .callbacks import Action, Callback, Checkpointer, FinalPictures, MetricsLog, ProgressBar, SampleWriter, Schedule
from .config import TrainConfig
from .configfile import ConfigFile
from .construct import check_class_labels, parts_from_options, resume_parts
from .feed import DataFeed
from .monitors import Evaluate, Health
from .state import Flags, TrainState
from .step import GANStep

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

C = TypeVar("C", bound=Callback)

__all__ = ["Trainer", "TrainResult", "resolve_device", "default_callbacks"]

FIGURES = ("loss_d", "loss_g", "d_real", "d_fake")  # what GANStep.step returns, averaged over each log window


@dataclass
class TrainResult:
    """What `Trainer.train` did."""

    step: int  # iterations done in total, including earlier sessions of a resumed run
    epoch: float  # passes over the data so far
    seconds: float  # wall-clock of this call
    interrupted: bool  # stopped early by Ctrl-C / SIGTERM (a checkpoint was saved)
    last: dict = field(default_factory=dict)  # the last logged figures (loss_d, loss_g, d_real, d_fake, images_per_s)
    checkpoint: Path | None = None  # the latest checkpoint written, if any
    best: dict = field(default_factory=dict)  # {"fid", "step"} of the best --eval-every evaluation
    failure: dict = field(default_factory=dict)  # set when the health monitor stopped the run: condition, message, step
    rollbacks: int = 0  # health rollbacks so far in this run


def resolve_device(name: str) -> torch.device:
    """ "auto" means CUDA when a GPU is visible, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name} was asked for, but no CUDA GPU is visible (use --device cpu)")
    return device


def default_callbacks(config: TrainConfig, progress: bool) -> list[Callback]:
    """The callbacks of every run, in the order they are called."""
    callbacks: list[Callback] = [MetricsLog(), Health(), Evaluate(config.eval_every)]
    if progress:
        callbacks.append(ProgressBar())
    callbacks += [SampleWriter(Schedule(config.sample_every)), Checkpointer(Schedule(config.checkpoint_every)), FinalPictures()]
    return callbacks


GRID_CLASS_ROWS = 32  # a conditional run's grid shows the first 32 classes, one row each
GRID_CLASS_COLUMNS = 10  # and 10 samples of each (the same 10 z in every row)


def fixed_grid(model_config: ModelConfig, num_samples: int, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The z (and, for a conditional model, the labels) of the fixed-noise grid, drawn from `seed` alone.

    Unconditional: `num_samples` z. Conditional: one row per class with the same GRID_CLASS_COLUMNS z
    in each row, so a column shows one z across the classes."""
    gen = torch.Generator().manual_seed(seed)
    mc = model_config
    if not mc.conditional:
        return sample_z(num_samples, mc.z_dim, mc.prior, gen), None
    columns = sample_z(GRID_CLASS_COLUMNS, mc.z_dim, mc.prior, gen)
    return class_grid(columns, list(range(min(mc.num_classes, GRID_CLASS_ROWS))))


class Trainer:
    """Trains one G/D pair, optionally writing a run directory (layout in `dcgan.rundir`).

    It holds the GAN step (`gan`: G, D, optimizers), the data feed, the TrainState
    and the callbacks; `train()` is the loop. Extra callbacks go in `callbacks`.
    """

    def __init__(
        self,
        model_config: ModelConfig,
        config: TrainConfig,
        data: ImageData,
        run_dir: str | Path | None = None,
        progress: bool = True,
        callbacks: list[Callback] | None = None,
    ):
        if data.in_memory and (data.image_tensor.dtype != torch.uint8 or data.image_tensor.ndim != 4):
            raise DataError("training data must be a uint8 tensor of shape (N, C, H, W)")
        shape = (data.channels, data.image_size, data.image_size)
        if shape != (model_config.channels, model_config.image_size, model_config.image_size):
            raise ConfigError(
                f"data is {shape} but the model expects ({model_config.channels}, {model_config.image_size}, {model_config.image_size})"
            )
        if len(data) < 2:
            raise DataError(f"the dataset has {len(data)} image(s); training needs at least 2")
        if model_config.conditional:
            check_class_labels(data, model_config.num_classes)
        if config.batch_size > len(data):
            # Batch norm needs full batches and an epoch needs one: shrink rather than refuse.
            config = replace(config, batch_size=len(data))
        self.model_config, self.config, self.data = model_config, config, data
        self.device = resolve_device(config.device)
        self.dist = distributed.setup(self.device.type)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        seed = config.seed
        if seed is None:  # none given: a random seed, rank 0's on every process, recorded in the run
            seed = distributed.broadcast_from_main(secrets.randbelow(2**31), self.dist)
            config = replace(config, seed=seed)
        self.config = config
        # Only rank 0 writes anything; the others train and take part in the collectives.
        self.run = RunDir(run_dir) if run_dir is not None and self.dist.is_main else None
        self.progress = progress and self.dist.is_main
        self.gan = GANStep(model_config, config, self.device, self.dist)
        self.feed = DataFeed(data, config.batch_size, seed, self.device, self.dist, config.workers)
        self.state = TrainState(self.feed.steps_per_epoch)
        self.flags = Flags()
        # The fixed grid noise: its own seeded stream, the same for every process. A conditional run's grid
        # has a row per class (up to GRID_CLASS_ROWS) and the same z down each column.
        self.fixed_noise, self.fixed_labels = fixed_grid(model_config, config.num_samples, seed + 1)
        self.fixed_noise = self.fixed_noise.to(self.device)
        self.fixed_labels = self.fixed_labels.to(self.device) if self.fixed_labels is not None else None
        self.tensorboard: SummaryWriter | None = None  # a SummaryWriter while training with --tensorboard
        self._summaries: tuple[list[dict], list[dict]] | None = None
        self.callbacks = default_callbacks(config, self.progress) + list(callbacks or [])

    # The models and the position, for readers of the Python API ---------------
    G = property(lambda self: self.gan.G)
    D = property(lambda self: self.gan.D)
    step = property(lambda self: self.state.step)
    epoch = property(lambda self: self.state.epoch)
    steps_per_epoch = property(lambda self: self.state.steps_per_epoch)

    @property
    def run_dir(self) -> Path | None:
        return self.run.root if self.run is not None else None

    def callback(self, kind: type[C]) -> C | None:
        """The first callback of this type, or None."""
        return next((c for c in self.callbacks if isinstance(c, kind)), None)

    @property
    def health_events(self) -> list[dict]:
        health = self.callback(Health)
        return health.events if health is not None else []

    def model_summaries(self) -> tuple[list[dict], list[dict]]:
        """G's and D's layer rows (`models.model_summary`), computed once."""
        if self._summaries is None:
            mc = self.model_config
            image = self.fixed_noise.new_zeros(1, mc.channels, mc.image_size, mc.image_size)
            self._summaries = (model_summary(self.G, self.fixed_noise[:1]), model_summary(self.D, image))
        return self._summaries

    def sampling_generator(self):
        """The G that grids, evaluations and checkpoints sample: the averaged one with standing statistics
        computed for this step (once), or the trained G with --no-ema."""
        return self.gan.sampling_generator(self.state.step)

    def total_steps(self) -> int:
        """The iteration budget: `steps`, or `epochs` x iterations per epoch (1 epoch by default)."""
        if self.config.steps is not None:
            return self.config.steps
        return (self.config.epochs or 1) * self.state.steps_per_epoch

    # ------------------------------------------------------------------ #
    # The loop
    # ------------------------------------------------------------------ #
    def train(self) -> TrainResult:
        """Run until the budget is spent or Ctrl-C / SIGTERM asks to stop; save what was learned."""
        total, start = self.total_steps(), time.perf_counter()
        if self.run is not None:
            self._prepare_run_dir()
        sums = torch.zeros(len(FIGURES), device=self.device)  # running sums of the figures over the log window
        window = (0, time.perf_counter())  # (iterations, start time) of the log window
        batches = None
        with self._stop_signals():
            try:
                self._call("on_train_start")
                while self.state.step < total and not self._should_stop():
                    if batches is None:
                        batches = self.feed.epoch_batches(self.state.epoch, self.state.batch_in_epoch)
                    if self.dist.enabled:  # each process's noise from (seed, rank, step): a checkpoint at any step resumes exactly
                        self.gan.reseed_for_step(self.state.step)
                    figures = self.gan.step(next(batches))
                    sums += torch.stack([figures[k] for k in FIGURES])
                    self.state.advance()
                    window = (window[0] + 1, window[1])
                    if self.state.at_epoch_end:
                        batches = None
                    if self._log_due(total):
                        record = self._read_window(sums, *window)
                        sums.zero_()
                        window = (0, time.perf_counter())
                        action = max((c.on_log(self, record) or Action.CONTINUE for c in self.callbacks), default=Action.CONTINUE)
                        if action == Action.STOP:
                            break
                        if action == Action.ROLLBACK:  # the data position came back with the checkpoint
                            batches = None
                            self._call("on_rollback")
                            continue
                    self._call("on_step_end")
                # Whether the budget ran out or a stop was asked for: keep everything learned so far.
                self._call("on_train_end")
            finally:
                for callback in self.callbacks:
                    callback.close()
                if self.tensorboard is not None:
                    self.tensorboard.close()
                    self.tensorboard = None
        distributed.barrier(self.dist)  # leave together: rank 0 may still be writing pictures
        summary = {k: v for c in self.callbacks for k, v in c.summary().items()}
        return TrainResult(
            step=self.state.step,
            epoch=self.state.epoch_fraction,
            seconds=time.perf_counter() - start,
            interrupted=self._should_stop(),
            failure=dict(self.flags.failure),
            **summary,
        )

    def _call(self, hook: str) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(self)

    def _log_due(self, total: int) -> bool:
        """Every process reaches the same log points (a stop request joins them only with one process)."""
        s = self.state
        return s.step % self.config.log_every == 0 or s.at_epoch_end or s.step == total or (self.flags.stop_requested and not self.dist.enabled)

    def _read_window(self, sums: torch.Tensor, steps: int, started: float) -> dict:
        """The one host synchronisation: the window's averages (over all processes) as a metrics record."""
        now = time.perf_counter()
        self.state.elapsed += now - started
        values = distributed.all_mean(sums / steps, self.dist).tolist()
        if self.dist.enabled:
            self.flags.stop_agreed = distributed.any_true(self.flags.stop_requested, self.dist, self.device)
        augment = self.gan.augment
        return {
            "step": self.state.step,
            "epoch": round(self.state.epoch_fraction, 4),
            **dict(zip(FIGURES, values)),
            **({"augment_p": round(float(augment.p), 4)} if augment is not None and augment.target is not None else {}),
            "images_per_s": steps * self.config.batch_size * self.dist.world_size / max(now - started, 1e-9),
            "elapsed_s": round(self.state.elapsed, 3),
        }

    def emit(self, record: dict) -> None:
        """Keep a record (an evaluation, a health event): every callback's on_event gets it."""
        for callback in self.callbacks:
            callback.on_event(self, record)

    def say(self, line: str) -> None:
        """A line for the person watching: beside the progress bar, or nothing when quiet."""
        bar = self.callback(ProgressBar)
        if bar is not None:
            bar.write(line)

    @contextmanager
    def _stop_signals(self) -> Iterator[None]:
        """First Ctrl-C / SIGTERM: finish the current iteration, save, return. Second: stop at once."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum, frame):
            if self.flags.stop_requested:
                raise KeyboardInterrupt
            self.flags.stop_requested = True

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)

    def _should_stop(self) -> bool:
        """Stop now? With several processes, only once all of them agreed at a log point."""
        return self.flags.stop_agreed if self.dist.enabled else self.flags.stop_requested

    def request_stop(self) -> None:
        """Ask the loop to stop after the current iteration (as Ctrl-C does)."""
        self.flags.stop_requested = True

    # ------------------------------------------------------------------ #
    # Run directory
    # ------------------------------------------------------------------ #
    def check_run_dir(self) -> None:
        """Before training: the run directory can be written and has room for the checkpoints (a
        checkpoint, its temporary copy while it is written, a best and a failed one) and pictures."""
        self._writes().check_writable(4 * self.gan.checkpoint_size_estimate() + 20 * 2**20)

    def _writes(self) -> RunDir:
        """The run directory this trainer writes; a ConfigError when it writes none (no run_dir, or not rank 0)."""
        if self.run is None:
            raise ConfigError("this trainer writes no run directory: give it a run_dir (only rank 0 writes one)")
        return self.run

    def _prepare_run_dir(self) -> None:
        run = self._writes()
        self.check_run_dir()
        run.samples_dir.mkdir(exist_ok=True)
        run.config.write_text(json.dumps(self._config_record(), indent=2) + "\n")
        g_rows, d_rows = self.model_summaries()
        summary = "\n\n".join([format_summary("Generator", g_rows), format_summary("Discriminator", d_rows)])
        run.model_summary.write_text(summary + "\n")
        # A resumed run may have logged past its last checkpoint before it was killed: drop those lines.
        run.truncate_metrics(self.state.step)
        if self.config.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter  # optional extra: tensorboard
            except ImportError:
                raise ConfigError("--tensorboard needs the tensorboard package: pip install tensorboard") from None
            self.tensorboard = SummaryWriter(str(run.tensorboard))

    def _config_record(self) -> dict:
        return {"dcgan_version": __version__, "model": self.model_config.to_dict(), "train": self.config.to_dict(), "data": self._data_record()}

    def _data_record(self) -> dict:
        return {
            "name": self.data.name,
            "source": self.data.source,
            "num_images": len(self.data),
            "image_size": self.model_config.image_size,
            "channels": self.model_config.channels,
            "fingerprint": self.data.fingerprint(),
        }

    # ------------------------------------------------------------------ #
    # Checkpoints
    # ------------------------------------------------------------------ #
    def save(self, path: str | Path | None = None) -> Path:
        """Write a checkpoint that resumes exactly (models, optimizers, RNG, data position, noise, callbacks)."""
        path = Path(path) if path is not None else self._writes().latest
        extra = {
            "fixed_noise": self.fixed_noise,
            **({"fixed_labels": self.fixed_labels} if self.fixed_labels is not None else {}),
            "rng.noise": self.gan.noise_gen.get_state(),
            "rng.torch_cpu": torch.get_rng_state(),
            **self.gan.state_tensors(),  # the R1 schedule, the augmentation's stream and strength
        }
        ema = self.gan.ema
        record = TrainingRecord(
            **self.state.state_dict(),
            processes=self.dist.world_size,
            precision=self.gan.precision,
            train_config=self.config.to_dict(),
            data=self._data_record(),
            callbacks={c.name: c.state_dict() for c in self.callbacks if c.name},
            ema=ema.state_dict() if ema is not None else {},
            torch_version=torch.__version__,
            saved_at=time.strftime("%Y-%m-%dT%H:%M:%S"),
        )
        optimizers: dict[str, torch.optim.Optimizer] = {"opt_g": self.gan.opt_g, "opt_d": self.gan.opt_d}
        return save_checkpoint(
            path,
            self.model_config,
            self.G,
            self.D,
            optimizers=optimizers,
            extra=extra,
            state=record.to_dict(),
            G_ema=self.sampling_generator() if ema is not None else None,
        )

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore the checkpoint at `path` (used by rollbacks)."""
        self.load_state(load_checkpoint(path, self.device))

    def load_state(self, ckpt: Checkpoint) -> None:
        """Restore everything `save` wrote."""
        record = ckpt.record
        ckpt.load_module("G", self.G)
        ckpt.load_module("D", self.D)
        if self.gan.ema is not None and ckpt.has_ema:
            ckpt.load_module(EMA_PREFIX, self.gan.ema.module)
            self.gan.ema.load_state_dict(record.ema)
        # (a checkpoint without an average, from --no-ema or an older version, starts one from G at the next step)
        ckpt.load_optimizer("opt_g", self.gan.opt_g)
        ckpt.load_optimizer("opt_d", self.gan.opt_d)
        try:
            fixed = ckpt.tensors["extra.fixed_noise"]
            if fixed.ndim != 2 or fixed.shape[1] != self.model_config.z_dim or fixed.shape[0] < 1:
                raise ValueError(f"fixed noise of shape {tuple(fixed.shape)}")
            self.fixed_noise = fixed.to(self.device)
            if self.model_config.conditional:
                labels = ckpt.tensors["extra.fixed_labels"]
                if labels.shape != (fixed.shape[0],):
                    raise ValueError(f"fixed labels of shape {tuple(labels.shape)}")
                self.fixed_labels = labels.to(self.device)
            self.gan.noise_gen.set_state(ckpt.tensors["extra.rng.noise"].cpu())
            torch.set_rng_state(ckpt.tensors["extra.rng.torch_cpu"].cpu())
            self.gan.load_state_tensors({k.removeprefix("extra."): v for k, v in ckpt.tensors.items() if k.startswith("extra.")})
        except (KeyError, ValueError, RuntimeError, TypeError) as exc:
            raise CheckpointError(f"{ckpt.path} cannot be resumed: its random-number or noise state is damaged ({first_line(exc)})") from None
        try:
            self.state.load_state_dict(ckpt.state)
        except (KeyError, ValueError, TypeError) as exc:
            raise CheckpointError(f"{ckpt.path} cannot be resumed: its training state is damaged ({first_line(exc)})") from None
        for callback in self.callbacks:
            if callback.name:
                callback.load_state_dict(record.callbacks.get(callback.name) or {})
        if (record.steps_per_epoch or self.state.steps_per_epoch) != self.state.steps_per_epoch:
            raise DataError("the data, batch size or number of processes differs from the run's; resume needs the same")

    # ------------------------------------------------------------------ #
    # Construction from options and from checkpoints
    # ------------------------------------------------------------------ #
    @classmethod
    def from_options(
        cls, run_dir: str | Path | None = None, progress: bool = True, config_file: ConfigFile | str | Path | None = None, **options
    ) -> Trainer:
        """Build a trainer from flat keyword options (any ModelConfig or TrainConfig field), as `dcgan train` does:
        `resolve_options` layers a `recipe`, then `config_file` (TOML or a run's config.json), then the options given,
        and defaults the budget (digits: 25 epochs, others: 1); no seed means a random one, recorded in the run.
        `image_size` and `channels` default to the dataset's own; the data is loaded through the registry."""
        model_config, train_config, data = parts_from_options(options, config_file, progress)
        return cls(model_config, train_config, data, run_dir=run_dir, progress=progress)

    @classmethod
    def resume(cls, run_dir: str | Path, data: ImageData | None = None, progress: bool = True, **overrides) -> Trainer:
        """Continue the run in `run_dir` exactly where its latest checkpoint left it.

        `overrides` may change the fields TrainConfig marks `resume=True` (the budget and the
        bookkeeping), not the model or the optimisation.
        """
        ckpt, model_config, config, data, root = resume_parts(run_dir, data, overrides)
        trainer = cls(model_config, config, data, run_dir=root, progress=progress)
        trainer.load_state(ckpt)
        return trainer
