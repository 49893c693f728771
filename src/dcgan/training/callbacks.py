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
from PIL import Image
from tqdm.auto import tqdm

from ..figures import class_rows_image
from ..imaging import grid_image, save_gif, save_image_atomic
from ..sampling import generate

if TYPE_CHECKING:  # the trainer imports this module; the type is for readers and checkers only
    from .loop import Trainer

__all__ = ["Action", "Schedule", "Callback", "MetricsLog", "ProgressBar", "SampleWriter", "Checkpointer",
           "FinalPictures", "format_seconds"]


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

    def due(self, trainer: "Trainer") -> bool:
        state = trainer.state
        if self.at_last_step and state.step == trainer.total_steps():
            return True
        return state.step % self.every == 0 if self.every else state.at_epoch_end


class Callback:
    """Base class: every hook does nothing. `name` keys the callback's state in checkpoints ("" = no state)."""

    name = ""

    def on_train_start(self, trainer: "Trainer") -> None: ...

    def on_log(self, trainer: "Trainer", record: dict) -> Action | None: ...

    def on_event(self, trainer: "Trainer", record: dict) -> None: ...

    def on_rollback(self, trainer: "Trainer") -> None: ...

    def on_step_end(self, trainer: "Trainer") -> None: ...

    def on_train_end(self, trainer: "Trainer") -> None: ...

    def close(self) -> None: ...

    def summary(self) -> dict:
        """What this callback adds to the TrainResult (field name -> value)."""
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None: ...


class MetricsLog(Callback):
    """metrics.jsonl (every record) and TensorBoard scalars; remembers the last logged figures."""

    name = "metrics"
    SCALARS = ("loss_d", "loss_g", "d_real", "d_fake", "images_per_s")

    def __init__(self) -> None:
        self.last: dict = {}

    def on_log(self, trainer, record):
        self.last = record
        if trainer.tensorboard is not None:
            for key in self.SCALARS:
                trainer.tensorboard.add_scalar(key, record[key], record["step"])
        self.on_event(trainer, record)

    def on_event(self, trainer, record):
        if trainer.run is not None:
            trainer.run.append_metrics(record)
        if trainer.tensorboard is not None and "fid" in record:
            trainer.tensorboard.add_scalar("fid", record["fid"], record["step"])

    def summary(self) -> dict:
        return {"last": dict(self.last)}

    def state_dict(self) -> dict:
        return {"last": self.last}

    def load_state_dict(self, state: dict) -> None:
        self.last = dict(state.get("last") or {})


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
            total=state.batch_in_epoch + remaining_in_epoch, initial=state.batch_in_epoch,
            desc=f"epoch {state.epoch + 1}/{math.ceil(total / state.steps_per_epoch)}", unit="it",
            dynamic_ncols=True, leave=True, mininterval=0.5,
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
        text = (f"loss_D {record['loss_d']:.3f} loss_G {record['loss_g']:.3f} "
                f"D(x) {record['d_real']:.2f} D(G(z)) {record['d_fake']:.2f} "
                f"{record['images_per_s']:.0f} img/s total ETA {format_seconds(eta)}")
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
    """The fixed-noise grid: samples/step_XXXXXXX.png and samples.png, on its schedule and at the end."""

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
            trainer.tensorboard.add_image("samples", np.asarray(img.convert("RGB")), trainer.state.step, dataformats="HWC")
        self.written_at = trainer.state.step
        return path


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
