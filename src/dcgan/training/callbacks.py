"""Callbacks: everything periodic around the GAN step, each with its own schedule and its own state.

The loop (`loop.py`) calls, in list order:

    on_train_start(trainer)          once, before the first iteration
    on_log(trainer, record)          at each log point, with the window's averaged figures;
                                     may return Action.STOP or Action.ROLLBACK
    on_event(trainer, record)        a record another callback wants kept (an evaluation, a health event)
    on_rollback(trainer)             after a rollback restored the last checkpoint
    on_step_end(trainer)             after every iteration; a callback decides with its Schedule whether it is due
    on_train_end(trainer)            when the budget is spent or a stop was asked for (not on a crash)
    close()                          always, last: release bars and files

`state_dict()` / `load_state_dict()` of a callback with a `name` travel in every
checkpoint under that name, so a resumed run continues each callback exactly.

A new thing that happens every N steps is a new Callback subclass added to
`default_callbacks` (or passed to `Trainer(callbacks=[...])`), not new lines in the loop.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from ..figures import class_rows_image
from ..imaging import grid_image, save_gif, save_image_atomic
from ..sampling import generate

if TYPE_CHECKING:  # the trainer imports this module; the type is for readers and checkers only
    from .loop import Trainer

__all__ = ["Action", "Schedule", "Callback", "MetricsLog", "ProgressBar", "SampleWriter", "Checkpointer", "FinalPictures", "format_seconds"]


class Action(enum.IntEnum):
    """What a callback asks of the loop at a log point; the strongest request wins."""

    CONTINUE = 0
    ROLLBACK = 1  # the callback restored the last checkpoint: drop the data iterator and go on from there
    STOP = 2  # finish now (the final checkpoint and pictures are still written)


@dataclass(frozen=True)
class Schedule:
    """Every `every` iterations, or at the end of each epoch when `every` is None; optionally at the last step too."""

    every: int | None = None
    at_last_step: bool = False

    def due(self, trainer: Trainer) -> bool:
        state = trainer.state
        if self.at_last_step and state.step == trainer.total_steps():
            return True
        return state.step % self.every == 0 if self.every else state.at_epoch_end


class Callback:
    """Base class: every hook does nothing. `name` keys the callback's state in checkpoints ("" = no state)."""

    name = ""

    def on_train_start(self, trainer: Trainer) -> None: ...

    def on_log(self, trainer: Trainer, record: dict) -> Action | None: ...

    def on_event(self, trainer: Trainer, record: dict) -> None: ...

    def on_rollback(self, trainer: Trainer) -> None: ...

    def on_step_end(self, trainer: Trainer) -> None: ...

    def on_train_end(self, trainer: Trainer) -> None: ...

    def close(self) -> None: ...

    def summary(self) -> dict:
        """What this callback adds to the TrainResult (field name -> value)."""
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None: ...


class MetricsLog(Callback):
    """metrics.jsonl (every record) and, with --tensorboard, the same figures as TensorBoard scalars;
    remembers the last logged figures.

    TensorBoard tags: train/<figure> at each log point (loss_d, loss_g, d_real, d_fake, images_per_s, ...),
    eval/<figure> at each --eval-every evaluation (fid, and the tracked conditional_accuracy or intra_fid with
    their per-class values as eval/class_fid/<class> for up to MAX_CLASS_TAGS classes), health events as the
    text `health`, and the run's config.json as the text `config` when each session starts.
    """

    name = "metrics"
    MAX_CLASS_TAGS = 32  # per-class evaluation figures become scalars only up to this many classes

    def __init__(self) -> None:
        self.last: dict = {}

    def on_train_start(self, trainer):
        board = trainer.tensorboard
        if board is None:
            return
        if trainer.state.step > 0:  # resumed: what an earlier session logged after this checkpoint is logged again
            purge_from(board, trainer.state.step + 1)
        if trainer.run is not None and trainer.run.config.exists():
            text = trainer.run.config.read_text()
            board.add_text("config", "\n".join("    " + line for line in text.splitlines()), trainer.state.step)

    def on_log(self, trainer, record):
        self.last = record
        if trainer.tensorboard is not None:
            for key, value in self._numbers(record):
                trainer.tensorboard.add_scalar(f"train/{key}", value, record["step"])
        if trainer.run is not None:
            trainer.run.append_metrics(record)

    def on_event(self, trainer, record):
        if trainer.run is not None:
            trainer.run.append_metrics(record)
        board = trainer.tensorboard
        if board is None:
            return
        step = record["step"]
        if "health" in record:  # a condition in words: no numbers to plot
            text = f"step {step}: {record.get('message', record['health'])} ({record.get('action', '')})"
            board.add_text("health", text + (f". Hint: {record['hint']}" if record.get("hint") else ""), step)
            return
        group = "eval" if "eval" in record or "fid" in record else "events"
        for key, value in self._numbers(record, skip=("step", "epoch")):
            board.add_scalar(f"{group}/{key}", value, step)

    def on_rollback(self, trainer):
        if trainer.tensorboard is not None:  # the steps after the restored checkpoint are trained (and logged) again
            purge_from(trainer.tensorboard, trainer.state.step + 1)

    def _numbers(self, record: dict, skip: tuple[str, ...] = ("step",)) -> list[tuple[str, float]]:
        """(name, value) of each number in a record, and of each number in a small per-class dict as name/class."""
        out = []
        for key, value in record.items():
            if key in skip:
                continue
            if _is_number(value):
                out.append((key, float(value)))
            elif isinstance(value, dict) and len(value) <= self.MAX_CLASS_TAGS:
                out += [(f"{key}/{k}", float(v)) for k, v in value.items() if _is_number(v)]
        return out

    def summary(self) -> dict:
        return {"last": dict(self.last)}

    def state_dict(self) -> dict:
        return {"last": self.last}

    def load_state_dict(self, state: dict) -> None:
        self.last = dict(state.get("last") or {})


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)  # NaN too: a blown-up loss shows as one


def purge_from(writer, step: int) -> None:
    """Mark `step` as a restart in a TensorBoard log: TensorBoard then hides what the log holds at `step`
    and later (a resumed or rolled-back run logs those steps again), as SummaryWriter(purge_step=) does."""
    from tensorboard.compat.proto.event_pb2 import Event, SessionLog  # the tensorboard extra: present with a writer

    writer.file_writer.add_event(Event(step=step, session_log=SessionLog(status=SessionLog.START)))


class ProgressBar(Callback):
    """A tqdm bar per epoch with the losses, images/s and the ETA of the whole run; `write` prints beside it."""

    def __init__(self) -> None:
        self.bar = None
        self._session = (0, 0.0)  # (step, elapsed) when this session started: the ETA uses this session's pace

    def write(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line)
        else:
            print(line)

    def _open(self, trainer) -> None:
        state, total = trainer.state, trainer.total_steps()
        if state.step >= total:
            return
        remaining_in_epoch = min(state.steps_per_epoch - state.batch_in_epoch, total - state.step)
        self.bar = tqdm(
            total=state.batch_in_epoch + remaining_in_epoch,
            initial=state.batch_in_epoch,
            desc=f"epoch {state.epoch + 1}/{math.ceil(total / state.steps_per_epoch)}",
            unit="it",
            dynamic_ncols=True,
            leave=True,
            mininterval=0.5,
        )

    def on_train_start(self, trainer):
        self._session = (trainer.state.step, trainer.state.elapsed)
        self._open(trainer)

    def on_log(self, trainer, record):
        if self.bar is None:
            return
        state = trainer.state
        seconds_per_step = (state.elapsed - self._session[1]) / max(state.step - self._session[0], 1)
        eta = (trainer.total_steps() - state.step) * seconds_per_step
        text = (
            f"loss_D {record['loss_d']:.3f} loss_G {record['loss_g']:.3f} "
            f"D(x) {record['d_real']:.2f} D(G(z)) {record['d_fake']:.2f} "
            f"{record['images_per_s']:.0f} img/s total ETA {format_seconds(eta)}"
        )
        if trainer.flags.warnings:
            text += f" | WARNING: {', '.join(sorted(trainer.flags.warnings))}"
        self.bar.set_postfix_str(text, refresh=False)

    def on_rollback(self, trainer):
        self.close()
        self._open(trainer)

    def on_step_end(self, trainer):
        if self.bar is not None:
            self.bar.update(1)
        if trainer.state.at_epoch_end:
            self.close()
            self._open(trainer)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class SampleWriter(Callback):
    """The fixed-noise grid: samples/step_XXXXXXX.png and samples.png, on its schedule and at the end; with
    --tensorboard also the grid, weight histograms and gradient norms at each write."""

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule
        self.written_at = -1

    def on_step_end(self, trainer):
        if trainer.run is not None and self.schedule.due(trainer):
            self.write(trainer)

    def on_rollback(self, trainer):
        self.written_at = -1

    def on_train_end(self, trainer):
        if trainer.run is not None and self.written_at != trainer.state.step:
            self.write(trainer)

    def write(self, trainer) -> Path:
        img = sample_grid(trainer)
        path = save_image_atomic(img, trainer.run.sample_grid(trainer.state.step))
        save_image_atomic(img, trainer.run.latest_samples)
        if trainer.tensorboard is not None:
            self._log_tensorboard(trainer, img)
        self.written_at = trainer.state.step
        return path

    @staticmethod
    def _log_tensorboard(trainer, img: Image.Image) -> None:
        """The grid as the image `samples`; G's and D's weights as histograms G/<parameter>, D/<parameter>;
        the norm of each one's gradients from the last iteration as the scalars grad_norm/G, grad_norm/D."""
        board, step = trainer.tensorboard, trainer.state.step
        board.add_image("samples", np.asarray(img.convert("RGB")), step, dataformats="HWC")  # (H, W, 3) uint8
        for net, module in (("G", trainer.G), ("D", trainer.D)):
            grads = []
            for name, p in module.named_parameters():
                board.add_histogram(f"{net}/{name}", p.detach().float(), step)
                if p.grad is not None:
                    grads.append(p.grad.detach().float().norm())
            if grads:  # none before the first iteration of a session
                board.add_scalar(f"grad_norm/{net}", torch.stack(grads).norm().item(), step)


def sample_grid(trainer) -> Image.Image:
    """The fixed-noise samples of the sampling G (the average, by default) as a Pillow grid image, enlarged when small."""
    images = generate(trainer.sampling_generator(), trainer.fixed_noise, trainer.fixed_labels)
    if trainer.fixed_labels is None:
        img = grid_image(images)
    else:  # a row per class, its name at the left
        mc = trainer.model_config
        rows = int(trainer.fixed_labels.max()) + 1
        img = class_rows_image(images, [mc.class_name(c) for c in range(rows)])
    if img.width < 256:  # enlarge small grids (16x16 digits) so they can be seen
        img = img.resize((img.width * (512 // img.width), img.height * (512 // img.width)), resample=0)
    return img


class Checkpointer(Callback):
    """checkpoints/latest on its schedule and at the end; a failed state goes to checkpoints/failed instead."""

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule
        self.saved_at = -1
        self.last_path: Path | None = None

    def on_step_end(self, trainer):
        if trainer.run is not None and self.schedule.due(trainer) and not trainer.flags.nonfinite:
            self._save(trainer)

    def on_rollback(self, trainer):
        self.saved_at = -1

    def on_train_end(self, trainer):
        if trainer.run is None:
            return
        if trainer.flags.failure or trainer.flags.nonfinite:
            # Keep the last healthy checkpoint as `latest`; the failed state goes beside it for inspection.
            trainer.save(trainer.run.failed)
        elif self.saved_at != trainer.state.step:
            self._save(trainer)

    def _save(self, trainer) -> None:
        self.last_path = trainer.save()
        self.saved_at = trainer.state.step

    def summary(self) -> dict:
        return {"checkpoint": self.last_path}


class FinalPictures(Callback):
    """At the end: progress.gif from the sample grids so far, and losses.png from metrics.jsonl."""

    MAX_FRAMES = 100

    def on_train_end(self, trainer):
        run = trainer.run
        if run is None:
            return
        frames = run.sample_grids()
        if frames:
            chosen = frames[:: max(1, math.ceil(len(frames) / self.MAX_FRAMES))]
            if chosen[-1] != frames[-1]:
                chosen.append(frames[-1])
            images = []
            for p in chosen:
                with Image.open(p) as im:
                    images.append(im.copy())
            save_gif(images, run.progress_gif)
        records = run.read_metrics()
        if records:
            from ..plots import plot_losses  # matplotlib: loaded only when a run ends with curves to draw

            plot_losses(records, run.losses_plot)


def format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"
