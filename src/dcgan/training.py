"""The DCGAN trainer: the paper's defaults, an explicit D step and G step, exact resume.

Defaults (section 4 of the paper): Adam with lr 2e-4 and beta1 0.5, batch 128,
images scaled to [-1, 1]. D sees a real batch and a fake batch in separate
forward passes, so batch norm computes statistics per batch, as in the paper's
code. Losses are BCE-with-logits; G uses the non-saturating loss -log D(G(z)).

Typical use, from Python:

>>> trainer = Trainer.from_options(data="digits", image_size=32, steps=200, run_dir="runs/demo")
>>> result = trainer.train()
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from . import __version__, distributed
from .checkpoint import BEST, CHECKPOINT_DIR, FAILED, LATEST, Checkpoint, load_checkpoint, save_checkpoint
from .data import DATASETS, DEFAULT_FILES_CHANNELS, DEFAULT_FILES_SIZE, ImageData, load_dataset
from .errors import CheckpointError, ConfigError, DataError, first_line
from .health import ON_FAILURE, HealthIssue, HealthMonitor
from .imaging import grid_image, save_gif, save_image_atomic
from .models import Discriminator, Generator, ModelConfig, check_models, format_summary, model_summary
from .sampling import generate, sample_z

__all__ = ["TrainConfig", "Trainer", "TrainResult", "resolve_device", "read_metrics"]

METRICS_FILE = "metrics.jsonl"
SAMPLES_DIR = "samples"


PRECISIONS = ("auto", "fp32", "bf16")
MAX_SEED = 2**32 - 1  # seeds are mixed with epochs and ranks into torch's 64-bit generator seeds
ADAM_IMPLEMENTATIONS = ("auto", "fused", "foreach", "loop")


@dataclass(frozen=True)
class TrainConfig:
    """How to train. Model shape lives in ModelConfig; this holds the optimisation and the bookkeeping."""

    data: str = "digits"  # dataset name from the registry (see `dcgan train --help`)
    data_dir: str | None = None  # folder holding the dataset's files; None = the dataset's default place
    batch_size: int = 128  # images per batch (paper: 128)
    lr_g: float = 2e-4  # G's Adam learning rate (paper: 0.0002)
    lr_d: float = 2e-4  # D's Adam learning rate (paper: 0.0002)
    beta1: float = 0.5  # Adam beta1 (paper: 0.5; 0.9 "resulted in training oscillation and instability")
    beta2: float = 0.999  # Adam beta2 (PyTorch default, as in the paper's code)
    label_smoothing: float = 0.0  # one-sided: D's real targets are 1 - this (0 = off, as in the paper)
    d_steps: int = 1  # D updates per iteration, each with fresh fakes on the same real batch
    g_steps: int = 1  # G updates per iteration, each with fresh z
    steps: int | None = None  # budget in iterations (one real batch each); exclusive with epochs
    epochs: int | None = None  # budget in passes over the data; when neither is given: 1 epoch
    seed: int = 0  # seeds model init, data order and noise: equal seeds give equal CPU runs
    log_every: int = 20  # iterations between reading losses from the device (progress bar, metrics.jsonl)
    sample_every: int | None = None  # iterations between sample grids; None = at the end of every epoch
    checkpoint_every: int | None = None  # iterations between checkpoints; None = at the end of every epoch
    num_samples: int = 64  # size of the fixed-noise sample grid
    device: str = "auto"  # "auto" (cuda when present), "cpu" or "cuda"
    tensorboard: bool = False  # also log to TensorBoard (needs the tensorboard package)
    workers: int | None = None  # DataLoader workers for data streamed from disk; None = min(8, cores)
    eval_every: int | None = None  # iterations between FID evaluations (and `best` checkpoints); None = off
    eval_samples: int = 2000  # generated samples (and real images) per evaluation during training
    eval_features: str = "auto"  # feature extractor for it; auto = the dataset's classifier if trained, else pixels
    evaluator: str | None = None  # evaluation classifier file; None = the one `dcgan evaluator train` made for the data
    precision: str = "auto"  # "fp32", "bf16" (autocast), or auto: bf16 on CUDA and on CPUs with bf16 instructions
    channels_last: bool = True  # NHWC memory layout for the convolutions (faster with oneDNN and cuDNN)
    adam: str = "auto"  # Adam implementation: "fused", "foreach", "loop", or auto: fused
    compile: bool = False  # torch.compile G and D (first steps are slow while it compiles)
    sync_bn: bool = False  # with several processes: batch-norm statistics over all of them (default: per process)
    on_failure: str = "warn"  # what the health monitor does on a failure: warn, stop, or rollback to the last checkpoint
    max_rollbacks: int = 3  # rollbacks allowed before the run stops with a summary
    rollback_lr_factor: float = 1.0  # each rollback multiplies both learning rates by this (1 = unchanged)

    def __post_init__(self) -> None:
        if not isinstance(self.seed, int) or not 0 <= self.seed <= MAX_SEED:
            raise ConfigError(f"seed must be a whole number from 0 to {MAX_SEED}, got {self.seed!r}")
        positive = ("batch_size", "d_steps", "g_steps", "log_every", "num_samples", "eval_samples")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name.replace('_', '-')} must be a positive integer, got {value!r}")
        for name in ("steps", "epochs", "sample_every", "checkpoint_every", "eval_every"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"{name.replace('_', '-')} must be a positive integer, got {value!r}")
        if self.steps is not None and self.epochs is not None:
            raise ConfigError("give either steps or epochs as the budget, not both")
        for name in ("lr_g", "lr_d"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ConfigError(f"{name.replace('_', '-')} must be a positive number, got {value!r}")
        for name in ("beta1", "beta2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label-smoothing must be in [0, 1), got {self.label_smoothing!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {self.precision!r}: use {', '.join(PRECISIONS)}")
        if self.adam not in ADAM_IMPLEMENTATIONS:
            raise ConfigError(f"unknown Adam implementation {self.adam!r}: use {', '.join(ADAM_IMPLEMENTATIONS)}")
        if self.on_failure not in ON_FAILURE:
            raise ConfigError(f"unknown --on-failure {self.on_failure!r}: use {', '.join(ON_FAILURE)}")
        if not isinstance(self.max_rollbacks, int) or self.max_rollbacks < 0:
            raise ConfigError(f"max-rollbacks must be a whole number >= 0, got {self.max_rollbacks!r}")
        if not (isinstance(self.rollback_lr_factor, (int, float)) and 0 < self.rollback_lr_factor <= 1):
            raise ConfigError(f"rollback-lr-factor must be in (0, 1], got {self.rollback_lr_factor!r}")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ConfigError(f"unknown device {self.device!r}: use auto, cpu or cuda")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class TrainResult:
    """What `Trainer.train` did."""

    step: int  # iterations done in total, including earlier sessions of a resumed run
    epoch: float  # passes over the data so far
    seconds: float  # wall-clock of this call
    interrupted: bool  # stopped early by Ctrl-C / SIGTERM (a checkpoint was saved)
    last: dict  # the last logged figures (loss_d, loss_g, d_real, d_fake, images_per_s)
    checkpoint: Path | None  # the latest checkpoint written, if any
    best: dict = field(default_factory=dict)  # {"fid", "step"} of the best --eval-every evaluation
    failure: dict = field(default_factory=dict)  # set when the health monitor stopped the run: condition, message, step
    rollbacks: int = 0  # health rollbacks so far in this run


def resolve_device(name: str) -> torch.device:
    """"auto" means CUDA when a GPU is visible, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for, but no CUDA GPU is visible (use --device cpu)")
    return device


class Trainer:
    """Trains one G/D pair on an in-memory dataset, optionally writing a run directory.

    The run directory (when `run_dir` is given) receives `config.json`,
    `model_summary.txt`, `metrics.jsonl`, `samples/step_*.png` and `samples.png`
    (the latest grid), `checkpoints/latest.safetensors`, and at the end
    `progress.gif` and `losses.png`.
    """

    def __init__(
        self,
        model_config: ModelConfig,
        config: TrainConfig,
        data: ImageData,
        run_dir: str | Path | None = None,
        progress: bool = True,
    ):
        if data.images is not None and (data.images.dtype != torch.uint8 or data.images.ndim != 4):
            raise DataError("training data must be a uint8 tensor of shape (N, C, H, W)")
        shape = (data.channels, data.image_size, data.image_size)
        if shape != (model_config.channels, model_config.image_size, model_config.image_size):
            raise ConfigError(
                f"data is {shape} but the model expects "
                f"({model_config.channels}, {model_config.image_size}, {model_config.image_size})"
            )
        if len(data) < 2:
            raise DataError(f"the dataset has {len(data)} image(s); training needs at least 2")
        if config.batch_size > len(data):
            # Batch norm needs full batches and an epoch needs one: shrink rather than refuse.
            config = replace(config, batch_size=len(data))
        self.model_config = model_config
        self.config = config
        self.data = data
        self.device = resolve_device(config.device)
        self.dist = distributed.setup(self.device.type)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        # Only rank 0 writes anything; the others train and take part in the collectives.
        self.run_dir = Path(run_dir) if run_dir is not None and self.dist.is_main else None
        self.progress = progress and self.dist.is_main
        self.on_log: list[Callable[["Trainer", dict], None]] = []  # called with each logged record

        # Model init draws from the global RNG: seed it without disturbing the caller's stream.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.G = Generator(model_config).to(self.device)
            self.D = Discriminator(model_config).to(self.device)
        if config.channels_last:
            self.G.to(memory_format=torch.channels_last)
            self.D.to(memory_format=torch.channels_last)
        if config.sync_bn and self.device.type != "cuda":
            raise ConfigError("--sync-bn needs CUDA GPUs: PyTorch's SyncBatchNorm does not run on the CPU")
        if self.dist.enabled and config.sync_bn:
            self.G = nn.SyncBatchNorm.convert_sync_batchnorm(self.G)
            self.D = nn.SyncBatchNorm.convert_sync_batchnorm(self.D)
        adam = {"fused": {"fused": True}, "foreach": {"foreach": True}, "loop": {"foreach": False}}[
            "fused" if config.adam == "auto" else config.adam
        ]
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=config.lr_g, betas=(config.beta1, config.beta2), **adam)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=config.lr_d, betas=(config.beta1, config.beta2), **adam)
        # bf16 autocast by default on CUDA, and on CPUs with bf16 instructions (AVX512-BF16 or AMX), where it
        # measured 1.8x faster than fp32 (BENCHMARKS.md); elsewhere bf16 is emulated and slower.
        self.bf16 = config.precision == "bf16" or (
            config.precision == "auto" and (self.device.type == "cuda" or (self.device.type == "cpu" and cpu_has_bf16()))
        )
        self._G_fwd, self._D_fwd = self.G, self.D
        if config.compile:
            self._G_fwd, self._D_fwd = torch.compile(self.G), torch.compile(self.D)
        self._D_through = self._D_fwd  # D as the G step sees it: never the DDP wrapper (its weights get no gradient there)
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            self._G_fwd, self._D_fwd = DDP(self._G_fwd, device_ids=ids), DDP(self._D_fwd, device_ids=ids)

        # The whole dataset lives on the training device as uint8 (a quarter of float32's size);
        # batches are gathered and scaled to [-1, 1] there.
        self.images = data.images.to(self.device) if data.images is not None else None
        # Every process takes its own batch of each global step: an epoch is len / (batch x processes) steps.
        self.steps_per_epoch = len(data) // (config.batch_size * self.dist.world_size)  # incomplete batches are dropped
        if self.steps_per_epoch < 1:
            raise DataError(f"{len(data)} images are fewer than one batch of {config.batch_size} for each of {self.dist.world_size} processes")

        # Independent, explicitly seeded streams: training noise, and the fixed grid noise.
        self.noise_gen = torch.Generator(device=self.device).manual_seed(config.seed + 1_000_003 * self.dist.rank)
        self.fixed_noise = sample_z(
            config.num_samples, model_config.z_dim, model_config.prior, torch.Generator().manual_seed(config.seed + 1)
        ).to(self.device)

        self.step = 0  # iterations done
        self.epoch = 0  # complete epochs done
        self.batch_in_epoch = 0  # position within the current epoch
        self.elapsed = 0.0  # training seconds over all sessions of this run
        self._stop_requested = False
        self._stop_agreed = False
        self._tb_writer = None
        self._last_record: dict = {}
        self.tracked = None  # the TrackedMetric of --eval-every, built when training starts
        self.best: dict = {}  # {"fid": value, "step": step} of the best evaluation so far
        self.health = HealthMonitor()
        self.health_events: list[dict] = []  # every condition found, with the step and the action taken
        self.rollbacks = 0
        self.failure: dict = {}
        self._active_conditions: set[str] = set()
        self._nonfinite = False  # the weights are not finite: never write them over a good checkpoint

    # ------------------------------------------------------------------ #
    # Construction from options and from checkpoints
    # ------------------------------------------------------------------ #
    @classmethod
    def from_options(cls, run_dir: str | Path | None = None, progress: bool = True, **options) -> "Trainer":
        """Build a trainer from flat keyword options (any ModelConfig or TrainConfig field).

        `image_size` and `channels` default to the dataset's own; the data is
        loaded through the registry.
        """
        model_keys = {f.name for f in fields(ModelConfig)}
        train_keys = {f.name for f in fields(TrainConfig)}
        unknown = set(options) - model_keys - train_keys
        if unknown:
            raise ConfigError(f"unknown option(s): {', '.join(sorted(unknown))}")
        train_config = TrainConfig(**{k: v for k, v in options.items() if k in train_keys})
        spec = DATASETS.get(train_config.data)
        model_opts = {k: v for k, v in options.items() if k in model_keys and v is not None}
        model_opts.setdefault("image_size", spec.default_size if spec else DEFAULT_FILES_SIZE)
        model_opts.setdefault("channels", spec.native_channels if spec else DEFAULT_FILES_CHANNELS)
        model_config = ModelConfig(**model_opts)  # validates size and channels before any data is read
        check_models(model_config)  # G and D build and produce the right shapes before any data is read
        data = load_dataset(
            train_config.data, train_config.data_dir, image_size=model_config.image_size, channels=model_config.channels,
            progress=progress,
        )
        return cls(model_config, train_config, data, run_dir=run_dir, progress=progress)

    @classmethod
    def resume(
        cls, run_dir: str | Path, data: ImageData | None = None, progress: bool = True, **overrides
    ) -> "Trainer":
        """Continue the run in `run_dir` exactly where its latest checkpoint left it.

        `overrides` may change the budget and bookkeeping (steps, epochs,
        log_every, sample_every, checkpoint_every, device, tensorboard), not the
        model or the optimisation.
        """
        ckpt = load_checkpoint(run_dir)
        if not ckpt.resumable:
            raise CheckpointError(
                f"{ckpt.path} is an exported generator (G's weights only, no D, optimizers or noise state) "
                "and cannot be resumed; resume the run directory it was exported from"
            )
        allowed = {"steps", "epochs", "log_every", "sample_every", "checkpoint_every", "device", "tensorboard", "data_dir", "workers",
                   "eval_every", "on_failure", "max_rollbacks", "rollback_lr_factor"}
        bad = {k for k, v in overrides.items() if v is not None} - allowed
        if bad:
            raise ConfigError(f"cannot change {', '.join(sorted(bad))} when resuming; start a new run instead")
        saved = TrainConfig.from_dict(ckpt.state["train_config"])
        changes = {k: v for k, v in overrides.items() if v is not None}
        if "steps" in changes:
            changes.setdefault("epochs", None)
        if "epochs" in changes:
            changes.setdefault("steps", None)
        config = replace(saved, **changes)
        if data is None:
            data = load_dataset(config.data, config.data_dir, image_size=ckpt.model_config.image_size, channels=ckpt.model_config.channels)
        expected = ckpt.state.get("data", {}).get("fingerprint")
        if expected and data.fingerprint() != expected:
            raise DataError(
                f"the data for {config.data!r} differs from the data this run was trained on; "
                "resume needs the same data (or start a new run)"
            )
        run_dir = Path(run_dir) if Path(run_dir).is_dir() else Path(run_dir).parent.parent
        trainer = cls(ckpt.model_config, config, data, run_dir=run_dir, progress=progress)
        trainer.load_state(ckpt)
        return trainer

    # ------------------------------------------------------------------ #
    # One iteration: the D step, then the G step
    # ------------------------------------------------------------------ #
    def d_step(self, real: torch.Tensor, fake: torch.Tensor) -> dict[str, torch.Tensor]:
        """One D update on a real batch and a (detached) fake batch; figures stay on the device."""
        self.D.requires_grad_(True)
        self.opt_d.zero_grad(set_to_none=True)
        # Separate forward passes: batch norm normalises real and fake batches each by their own statistics.
        # One backward per pass; with several processes the gradients are averaged once, after the second.
        no_sync = self._D_fwd.no_sync() if self.dist.enabled else contextlib.nullcontext()
        with no_sync:
            with self._autocast():
                logits_real = self._D_fwd(real).float()  # (B,)
            loss_real = F.binary_cross_entropy_with_logits(logits_real, torch.full_like(logits_real, 1.0 - self.config.label_smoothing))
            loss_real.backward()
        with self._autocast():
            logits_fake = self._D_fwd(fake).float()  # (B,)
        loss_fake = F.binary_cross_entropy_with_logits(logits_fake, torch.zeros_like(logits_fake))
        loss_fake.backward()
        loss = loss_real.detach() + loss_fake.detach()
        self.opt_d.step()
        return {
            "loss_d": loss.detach(),
            "d_real": torch.sigmoid(logits_real.detach()).mean(),  # D(x)
            "d_fake": torch.sigmoid(logits_fake.detach()).mean(),  # D(G(z)) before D's update
        }

    def g_step(self, fake: torch.Tensor) -> dict[str, torch.Tensor]:
        """One G update through D on a fake batch that still carries G's graph (non-saturating loss)."""
        self.D.requires_grad_(False)  # gradients flow through D to G, but D's weight gradients are not needed
        self.opt_g.zero_grad(set_to_none=True)
        with self._autocast():
            logits = self._D_through(fake).float()
        loss = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
        loss.backward()
        self.opt_g.step()
        self.D.requires_grad_(True)
        return {"loss_g": loss.detach()}

    def train_step(self, real: torch.Tensor) -> dict[str, torch.Tensor]:
        """One iteration on a real batch in [-1, 1]: `d_steps` D updates, then `g_steps` G updates.

        As in the paper's code, the fake batch of the last D update is reused for
        the first G update, which saves one forward pass of G.
        """
        batch, cfg = real.shape[0], self.model_config
        if self.config.channels_last:
            real = real.contiguous(memory_format=torch.channels_last)
        for i in range(self.config.d_steps):
            z = sample_z(batch, cfg.z_dim, cfg.prior, self.noise_gen)
            if i == self.config.d_steps - 1:
                with self._autocast():
                    fake = self._G_fwd(z)  # (B, C, H, W), keeps its graph for the G step
            else:
                with torch.no_grad(), self._autocast():
                    fake = self._G_fwd(z)
            figures = self.d_step(real, fake.detach())
        figures.update(self.g_step(fake))
        for _ in range(self.config.g_steps - 1):
            with self._autocast():
                fake = self._G_fwd(sample_z(batch, cfg.z_dim, cfg.prior, self.noise_gen))
            figures.update(self.g_step(fake))
        return figures

    def _autocast(self):
        """bf16 autocast on the training device when the run uses it, else a no-op context."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    # ------------------------------------------------------------------ #
    # Data order: a permutation per epoch derived from (seed, epoch) alone,
    # so that a resumed run sees exactly the batches an uninterrupted one would.
    # ------------------------------------------------------------------ #
    def _epoch_order(self, epoch: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed((self.config.seed * 1_000_003 + epoch) % 2**63)
        return torch.randperm(len(self.data), generator=gen).to(self.device)

    def _batch_indices(self, order: torch.Tensor, index: int) -> torch.Tensor:
        """This process's rows of global step `index`: process r takes the r-th batch of the step's group."""
        B, k = self.config.batch_size, index * self.dist.world_size + self.dist.rank
        return order[k * B : (k + 1) * B]

    def _batch(self, order: torch.Tensor, index: int) -> torch.Tensor:
        return _to_unit_range(self.images[self._batch_indices(order, index)])

    def _epoch_batches(self, epoch: int, start: int) -> Iterator[torch.Tensor]:
        """The batches of `epoch` from batch index `start` on, as float tensors in [-1, 1] on the device."""
        order = self._epoch_order(epoch)
        if self.images is not None:
            for index in range(start, self.steps_per_epoch):
                yield self._batch(order, index)
            return
        # Streamed data: the same order, decoded by DataLoader workers.
        B = self.config.batch_size
        indices = torch.cat([self._batch_indices(order, i) for i in range(start, self.steps_per_epoch)]).cpu().tolist()
        workers = self.config.workers if self.config.workers is not None else min(8, os.cpu_count() or 1)
        loader = torch.utils.data.DataLoader(
            self.data.stream, batch_size=B, sampler=indices, drop_last=True, num_workers=workers,
            pin_memory=self.device.type == "cuda", prefetch_factor=4 if workers else None,
        )
        for batch in loader:
            yield _to_unit_range(batch.to(self.device, non_blocking=True))

    # ------------------------------------------------------------------ #
    # The loop
    # ------------------------------------------------------------------ #
    def total_steps(self) -> int:
        """The iteration budget: `steps`, or `epochs` x iterations per epoch (1 epoch by default)."""
        if self.config.steps is not None:
            return self.config.steps
        return (self.config.epochs or 1) * self.steps_per_epoch

    def train(self) -> TrainResult:
        """Run until the budget is spent or Ctrl-C / SIGTERM asks to stop; save what was learned."""
        total = self.total_steps()
        cfg = self.config
        start = time.perf_counter()
        self._session_step, self._session_elapsed = self.step, self.elapsed  # for the ETA
        if self.run_dir is not None:
            self._prepare_run_dir()
        if cfg.eval_every and self.tracked is None and self.dist.is_main:
            self.tracked = self.build_tracked_metric()
        if cfg.on_failure == "rollback":
            if self.dist.enabled:
                raise ConfigError("--on-failure rollback is not available with several processes; use warn or stop")
            if self.run_dir is None:
                raise ConfigError("--on-failure rollback needs a run directory to keep the checkpoint it rolls back to")
            if not self.checkpoint_path().exists():
                self.save()  # the state to return to if the very first stretch fails
        sums = torch.zeros(4, device=self.device)  # running sums of loss_d, loss_g, d_real, d_fake
        window_steps, window_start = 0, time.perf_counter()
        last_checkpoint: Path | None = None
        saved_at = sampled_at = -1
        bar = None
        batches = None
        with self._stop_signals():
            try:
                while self.step < total and not self._should_stop():
                    if batches is None:
                        batches = self._epoch_batches(self.epoch, self.batch_in_epoch)
                    if bar is None and self.progress:
                        bar = self._epoch_bar(total)
                    figures = self.train_step(next(batches))
                    sums += torch.stack([figures["loss_d"], figures["loss_g"], figures["d_real"], figures["d_fake"]])
                    self.step += 1
                    self.batch_in_epoch += 1
                    window_steps += 1
                    epoch_end = self.batch_in_epoch == self.steps_per_epoch
                    if epoch_end:
                        self.epoch += 1
                        self.batch_in_epoch = 0
                        batches = None
                    last_step = self.step == total
                    # Every process reaches the same log points (a stop request joins them only with one process).
                    if self.step % cfg.log_every == 0 or epoch_end or last_step or (self._stop_requested and not self.dist.enabled):
                        # The one host synchronisation: read the window's averages (over all processes).
                        now = time.perf_counter()
                        self.elapsed += now - window_start
                        values = distributed.all_mean(sums / window_steps, self.dist).tolist()
                        if self.dist.enabled:
                            self._stop_agreed = distributed.any_true(self._stop_requested, self.dist, self.device)
                            self._reseed_noise()  # every possible save point is a reseed point: resume stays exact
                        record = {
                            "step": self.step,
                            "epoch": round(self.epoch + self.batch_in_epoch / self.steps_per_epoch, 4),
                            "loss_d": values[0],
                            "loss_g": values[1],
                            "d_real": values[2],
                            "d_fake": values[3],
                            "images_per_s": window_steps * cfg.batch_size * self.dist.world_size / max(now - window_start, 1e-9),
                            "elapsed_s": round(self.elapsed, 3),
                        }
                        self._log(record, bar, total)
                        sums.zero_()
                        window_steps, window_start = 0, time.perf_counter()
                        verdict = self._check_health(record, bar)
                        if self.dist.enabled:  # rank 0 decides for all, so that they stop together
                            verdict, self.failure = distributed.broadcast_from_main((verdict, self.failure), self.dist)
                        if verdict == "stop":
                            break
                        if verdict == "rollback":
                            batches = None  # the data position came back with the checkpoint
                            if bar is not None:
                                bar.close()
                                bar = None
                            saved_at = sampled_at = -1
                            continue
                    if self.tracked is not None and (self.step % cfg.eval_every == 0 or last_step):
                        self._evaluate(bar)
                    if bar is not None:
                        bar.update(1)
                        if epoch_end:
                            bar.close()
                            bar = None
                    if self.run_dir is not None:
                        if (cfg.sample_every and self.step % cfg.sample_every == 0) or (not cfg.sample_every and epoch_end):
                            self.save_samples()
                            sampled_at = self.step
                        if ((cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0) or (
                            not cfg.checkpoint_every and epoch_end
                        )) and not self._nonfinite:
                            last_checkpoint = self.save()
                            saved_at = self.step
            finally:
                if bar is not None:
                    bar.close()
            # Whether the budget ran out or a stop was asked for: keep everything learned so far.
            if self.run_dir is not None:
                if self.failure or self._nonfinite:
                    # Keep the last healthy checkpoint as `latest`; the failed state goes beside it for inspection.
                    self.save(self.run_dir / CHECKPOINT_DIR / FAILED)
                elif saved_at != self.step:
                    last_checkpoint = self.save()
                if sampled_at != self.step:
                    self.save_samples()
                self._finish_pictures()
        if self._tb_writer is not None:
            self._tb_writer.close()
            self._tb_writer = None
        distributed.barrier(self.dist)  # leave together: rank 0 may still be writing pictures
        return TrainResult(
            step=self.step,
            epoch=self.epoch + self.batch_in_epoch / self.steps_per_epoch,
            seconds=time.perf_counter() - start,
            interrupted=self._should_stop(),
            last=dict(self._last_record),
            checkpoint=last_checkpoint,
            best=dict(self.best),
            failure=dict(self.failure),
            rollbacks=self.rollbacks,
        )

    @contextmanager
    def _stop_signals(self) -> Iterator[None]:
        """First Ctrl-C / SIGTERM: finish the current iteration, save, return. Second: stop at once."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum, frame):
            if self._stop_requested:
                raise KeyboardInterrupt
            self._stop_requested = True

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)

    def _should_stop(self) -> bool:
        """Stop now? With several processes, only once all of them agreed at a log point."""
        return self._stop_agreed if self.dist.enabled else self._stop_requested

    def _reseed_noise(self) -> None:
        """With several processes: each one's noise stream restarts from (seed, rank, step) at log points,
        so a checkpoint needs no per-process RNG state to resume exactly."""
        self.noise_gen.manual_seed(((self.config.seed * 1_000_003 + self.dist.rank) * 1_000_033 + self.step) % 2**63)

    def request_stop(self) -> None:
        """Ask the loop to stop after the current iteration (as Ctrl-C does)."""
        self._stop_requested = True

    def _epoch_bar(self, total: int):
        from tqdm.auto import tqdm

        remaining_in_epoch = min(self.steps_per_epoch - self.batch_in_epoch, total - self.step)
        epochs_total = math.ceil(total / self.steps_per_epoch)
        return tqdm(
            total=self.batch_in_epoch + remaining_in_epoch,
            initial=self.batch_in_epoch,
            desc=f"epoch {self.epoch + 1}/{epochs_total}",
            unit="it",
            dynamic_ncols=True,
            leave=True,
            mininterval=0.5,
        )

    # ------------------------------------------------------------------ #
    # Evaluation during training (--eval-every) and the best checkpoint
    # ------------------------------------------------------------------ #
    def build_tracked_metric(self):
        """The FID tracker of --eval-every: extractor chosen by eval_features, real features cached."""
        from .data import default_cache_dir
        from .metrics.classifier import default_evaluator_path
        from .metrics.evaluate import TrackedMetric, reference_features
        from .metrics.extractors import build_extractor

        cfg = self.config
        name = cfg.eval_features
        if name == "auto":
            has_classifier = cfg.evaluator or default_evaluator_path(self.data.name).is_file()
            name = "classifier" if has_classifier else "pixels"
        extractor = build_extractor(name, dataset=self.data.name, evaluator=cfg.evaluator, device=str(self.device))
        real = reference_features(self.data, extractor, cfg.eval_samples, cache_dir=default_cache_dir() / "reference")
        return TrackedMetric(extractor, real, cfg.eval_samples, seed=cfg.seed + 2)

    def _evaluate(self, bar) -> None:
        value = self.tracked(self.G)
        record = {
            "step": self.step,
            "epoch": round(self.epoch + self.batch_in_epoch / self.steps_per_epoch, 4),
            "fid": value,
            "eval": self.tracked.protocol(),
        }
        improved = not self.best or value < self.best["fid"]
        if improved:
            self.best = {"fid": value, "step": self.step}
        if bar is not None:
            bar.write(f"step {self.step}: FID {value:.3f} ({self.tracked.protocol()})"
                      + (" - best so far" if improved else f"; best {self.best['fid']:.3f} at step {self.best['step']}"))
        self._record(record)
        if self.run_dir is not None and improved:
            self.save(self.run_dir / CHECKPOINT_DIR / BEST)
        if self._tb_writer is not None:
            self._tb_writer.add_scalar("fid", value, self.step)

    # ------------------------------------------------------------------ #
    # Training health (--on-failure warn | stop | rollback)
    # ------------------------------------------------------------------ #
    def _check_health(self, record: dict, bar) -> str | None:
        """Run the monitor on the window just logged; returns None, "stop" or "rollback"."""
        samples = generate(self.G, self.fixed_noise) if self.fixed_noise.shape[0] >= 2 else None
        issues = self.health.check(record, [self.G, self.D], samples, self.step)
        self._nonfinite = any(i.condition == "nonfinite" for i in issues)
        onset = [i for i in issues if i.condition not in self._active_conditions]
        self._active_conditions = {i.condition for i in issues}
        if not issues:
            return None
        mode = self.config.on_failure
        action = mode
        if mode == "rollback" and self.rollbacks >= self.config.max_rollbacks:
            action = "stop"
        for issue in onset if mode == "warn" else issues:
            self._report_health(issue, action, bar)
        if bar is not None and mode == "warn":
            bar.set_postfix_str(f"{bar.postfix or ''} | WARNING: {', '.join(sorted(self._active_conditions))}", refresh=False)
        if action == "warn":
            return None
        if action == "stop":
            issue = issues[0]
            self.failure = {"condition": issue.condition, "message": issue.message, "hint": issue.hint, "step": self.step,
                            "rollbacks": self.rollbacks}
            return "stop"
        self._rollback()
        return "rollback"

    def _report_health(self, issue: HealthIssue, action: str, bar) -> None:
        event = {"step": self.step, "health": issue.condition, "message": issue.message, "hint": issue.hint, "action": action}
        self.health_events.append(event)
        words = {"warn": "training goes on", "stop": "stopping", "rollback": "rolling back to the last checkpoint"}[action]
        line = f"step {self.step}: {issue.message}; {words}. Hint: {issue.hint}"
        if bar is not None:
            bar.write(line)
        elif self.progress:
            print(line)
        self._record(event)

    def _rollback(self) -> None:
        """Restore the last checkpoint, then continue with a fresh noise stream (and lower learning rates)."""
        ckpt = load_checkpoint(self.checkpoint_path(), self.device)
        failed_step = self.step
        rollbacks = self.rollbacks + 1
        best_diversity = self.health.best_diversity
        self.load_state(ckpt)
        self.rollbacks = rollbacks
        self.health = HealthMonitor(self.health.config, best_diversity=best_diversity)
        self._active_conditions, self._nonfinite = set(), False
        # A different noise stream, so the run does not walk into the same failure again.
        self.noise_gen.manual_seed(self.config.seed + 7919 * self.rollbacks)
        # Learning rates of the n-th rollback: the configured ones times factor^n, whatever the checkpoint held.
        scale = self.config.rollback_lr_factor ** self.rollbacks
        for opt, lr in ((self.opt_g, self.config.lr_g), (self.opt_d, self.config.lr_d)):
            for group in opt.param_groups:
                group["lr"] = lr * scale
        self._drop_records_after(self.step, keep_health=True)  # they belong to the abandoned stretch
        note = f"rolled back from step {failed_step} to step {self.step} (rollback {self.rollbacks} of {self.config.max_rollbacks})"
        self.health_events.append({"step": self.step, "health": "rollback", "message": note, "action": "rollback"})

    def _log(self, record: dict, bar, total: int) -> None:
        self._last_record = record
        if bar is not None:
            seconds_per_step = (self.elapsed - self._session_elapsed) / max(self.step - self._session_step, 1)
            eta = (total - self.step) * seconds_per_step
            bar.set_postfix_str(
                f"loss_D {record['loss_d']:.3f} loss_G {record['loss_g']:.3f} "
                f"D(x) {record['d_real']:.2f} D(G(z)) {record['d_fake']:.2f} "
                f"{record['images_per_s']:.0f} img/s total ETA {_format_seconds(eta)}",
                refresh=False,
            )
        if self._tb_writer is not None:
            for key in ("loss_d", "loss_g", "d_real", "d_fake", "images_per_s"):
                self._tb_writer.add_scalar(key, record[key], record["step"])
        self._record(record)

    def _record(self, record: dict) -> None:
        """One line of metrics.jsonl (losses, an evaluation or a health event), then the on_log callbacks."""
        if self.run_dir is not None:
            with open(self.run_dir / METRICS_FILE, "a") as f:
                f.write(json.dumps(record) + "\n")
        for callback in self.on_log:
            callback(self, record)

    def _drop_records_after(self, step: int, keep_health: bool = False) -> None:
        """Remove metrics.jsonl lines past `step` (logged after the checkpoint being resumed or rolled back to)."""
        metrics = self.run_dir / METRICS_FILE if self.run_dir is not None else None
        if metrics is None or not metrics.exists():
            return
        kept = [line for line in metrics.read_text().splitlines()
                if line.strip() and ((keep_health and '"health"' in line) or _record_step(line) <= step)]
        metrics.write_text("".join(line + "\n" for line in kept))

    # ------------------------------------------------------------------ #
    # Run directory: config, samples, pictures, checkpoints
    # ------------------------------------------------------------------ #
    def checkpoint_bytes(self) -> int:
        """About how large one checkpoint is: weights and buffers of G and D, and both Adams' two moments."""
        params = sum(p.numel() * p.element_size() for m in (self.G, self.D) for p in m.parameters())
        buffers = sum(b.numel() * b.element_size() for m in (self.G, self.D) for b in m.buffers())
        return 3 * params + buffers + self.fixed_noise.numel() * 4 + 64 * 1024

    def check_run_dir(self) -> None:
        """Before training: the run directory can be written and has room for the checkpoints (a
        checkpoint, its temporary copy while it is written, a best and a failed one) and pictures."""
        run = self.run_dir
        try:
            run.mkdir(parents=True, exist_ok=True)
            probe = run / ".write-test"
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as exc:
            raise ConfigError(f"cannot write to the run directory {run} ({exc.strerror or exc}); pick another --out") from None
        needed = 4 * self.checkpoint_bytes() + 20 * 2**20
        free = shutil.disk_usage(run).free
        if free < needed:
            raise ConfigError(
                f"not enough free space in {run}: checkpoints need about {needed / 2**20:.0f} MB, "
                f"{free / 2**20:.0f} MB are free"
            )

    def _prepare_run_dir(self) -> None:
        run = self.run_dir
        self.check_run_dir()
        (run / SAMPLES_DIR).mkdir(exist_ok=True)
        (run / "config.json").write_text(json.dumps(self._config_record(), indent=2) + "\n")
        summary = "\n\n".join(
            [
                format_summary("Generator", model_summary(self.G, self.fixed_noise[:1])),
                format_summary("Discriminator", model_summary(self.D, self.fixed_noise.new_zeros(1, self.model_config.channels, self.model_config.image_size, self.model_config.image_size))),
            ]
        )
        (run / "model_summary.txt").write_text(summary + "\n")
        # A resumed run may have logged past its last checkpoint before it was killed: drop those lines.
        self._drop_records_after(self.step)
        if self.config.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ConfigError("--tensorboard needs the tensorboard package: pip install tensorboard") from None
            self._tb_writer = SummaryWriter(str(run / "tensorboard"))

    def _config_record(self) -> dict:
        return {
            "dcgan_version": __version__,
            "model": self.model_config.to_dict(),
            "train": self.config.to_dict(),
            "data": self._data_record(),
        }

    def _data_record(self) -> dict:
        return {
            "name": self.data.name,
            "source": self.data.source,
            "num_images": len(self.data),
            "image_size": self.model_config.image_size,
            "channels": self.model_config.channels,
            "fingerprint": self.data.fingerprint(),
        }

    def sample_grid(self):
        """The fixed-noise samples as a Pillow grid image (G in eval mode)."""
        img = grid_image(generate(self.G, self.fixed_noise))
        if img.width < 256:  # enlarge small grids (16x16 digits) so they can be seen
            img = img.resize((img.width * (512 // img.width), img.height * (512 // img.width)), resample=0)
        return img

    def save_samples(self) -> Path:
        """Write samples/step_XXXXXXX.png and samples.png (the latest) into the run directory."""
        img = self.sample_grid()
        path = save_image_atomic(img, self.run_dir / SAMPLES_DIR / f"step_{self.step:07d}.png")
        save_image_atomic(img, self.run_dir / "samples.png")
        if self._tb_writer is not None:
            import numpy as np

            self._tb_writer.add_image("samples", np.asarray(img.convert("RGB")), self.step, dataformats="HWC")
        return path

    def _finish_pictures(self) -> None:
        """progress.gif from the sample grids so far, and losses.png from metrics.jsonl."""
        frames = sorted((self.run_dir / SAMPLES_DIR).glob("step_*.png"))
        if frames:
            stride = max(1, math.ceil(len(frames) / 100))  # at most ~100 frames
            chosen = frames[::stride]
            if chosen[-1] != frames[-1]:
                chosen.append(frames[-1])
            from PIL import Image

            images = []
            for p in chosen:
                with Image.open(p) as im:
                    images.append(im.copy())
            save_gif(images, self.run_dir / "progress.gif")
        records = read_metrics(self.run_dir)
        if records:
            from .plots import plot_losses

            plot_losses(records, self.run_dir / "losses.png")

    def checkpoint_path(self) -> Path:
        return self.run_dir / CHECKPOINT_DIR / LATEST

    def save(self, path: str | Path | None = None) -> Path:
        """Write a checkpoint that resumes exactly (models, optimizers, RNG, data position, noise, config)."""
        path = Path(path) if path is not None else self.checkpoint_path()
        extra = {
            "fixed_noise": self.fixed_noise,
            "rng.noise": self.noise_gen.get_state(),
            "rng.torch_cpu": torch.get_rng_state(),
        }
        state = {
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "steps_per_epoch": self.steps_per_epoch,
            "processes": self.dist.world_size,
            "elapsed_s": self.elapsed,
            "precision": "bf16" if self.bf16 else "fp32",  # what "auto" resolved to on this machine
            "train_config": self.config.to_dict(),
            "data": self._data_record(),
            "last": self._last_record,
            "best": self.best,
            "health": self.health.state_dict(),
            "rollbacks": self.rollbacks,
            "torch_version": torch.__version__,
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        return save_checkpoint(
            path,
            self.model_config,
            self.G,
            self.D,
            optimizers={"opt_g": self.opt_g, "opt_d": self.opt_d},
            extra=extra,
            state=state,
        )

    def load_state(self, ckpt: Checkpoint) -> None:
        """Restore everything `save` wrote."""
        ckpt.load_module("G", self.G)
        ckpt.load_module("D", self.D)
        ckpt.load_optimizer("opt_g", self.opt_g)
        ckpt.load_optimizer("opt_d", self.opt_d)
        try:
            fixed = ckpt.tensors["extra.fixed_noise"]
            if fixed.ndim != 2 or fixed.shape[1] != self.model_config.z_dim or fixed.shape[0] < 1:
                raise ValueError(f"fixed noise of shape {tuple(fixed.shape)}")
            self.fixed_noise = fixed.to(self.device)
            self.noise_gen.set_state(ckpt.tensors["extra.rng.noise"].cpu())
            torch.set_rng_state(ckpt.tensors["extra.rng.torch_cpu"].cpu())
        except (KeyError, ValueError, RuntimeError, TypeError) as exc:
            raise CheckpointError(f"{ckpt.path} cannot be resumed: its random-number or noise state is damaged ({first_line(exc)})") from None
        self.step = int(ckpt.state["step"])
        if self.dist.enabled:
            self._reseed_noise()  # as the uninterrupted run did at this step
        self.epoch = int(ckpt.state["epoch"])
        self.batch_in_epoch = int(ckpt.state["batch_in_epoch"])
        self.elapsed = float(ckpt.state.get("elapsed_s", 0.0))
        self._last_record = dict(ckpt.state.get("last", {}))
        self.best = dict(ckpt.state.get("best") or {})
        self.health.load_state_dict(ckpt.state.get("health") or {})
        self.rollbacks = int(ckpt.state.get("rollbacks", 0))
        if int(ckpt.state.get("steps_per_epoch", self.steps_per_epoch)) != self.steps_per_epoch:
            raise DataError("the data, batch size or number of processes differs from the run's; resume needs the same")


def cpu_has_bf16() -> bool:
    """Whether this CPU has native bf16 arithmetic (x86 AVX512-BF16 or AMX; read from /proc/cpuinfo on Linux)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def _to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 0..255 -> float [-1, 1], the range G's tanh produces."""
    return images.float().div_(127.5).sub_(1.0)


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The records of RUN_DIR/metrics.jsonl in order, without lines a kill left half-written; [] without the file."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def _record_step(line: str) -> int:
    try:
        return int(json.loads(line).get("step", 0))
    except (ValueError, AttributeError):
        return 1 << 62  # unreadable line: drop it


def _format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"
