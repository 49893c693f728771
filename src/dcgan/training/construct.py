"""How a `Trainer` is built from options or from a run directory: `Trainer.from_options` and `Trainer.resume`
call these for the parts (configs, data, checkpoint) and then construct the trainer.

`parts_from_options` layers the options (`resolve_options`), fills the image size and channels from the
dataset and takes a conditional run's classes from its data; `resume_parts` applies the resume rules
(only the fields TrainConfig marks `resume=True` may change, and the data must be the run's own).
"""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from ..checkpoint import Checkpoint, load_checkpoint
from ..data import DATASETS, DEFAULT_FILES_CHANNELS, DEFAULT_FILES_SIZE, ImageData, Storage, load_dataset
from ..errors import CheckpointError, ConfigError, DataError
from ..models import ModelConfig, check_models
from ..models.conditioning import MAX_CLASSES
from ..options import resumable_fields
from ..rundir import RunDir
from .config import TrainConfig
from .configfile import ConfigFile
from .resolve import resolve_options

__all__ = ["check_class_labels", "parts_from_options", "resume_parts"]


def check_class_labels(data: ImageData, num_classes: int | None = None) -> list[str]:
    """The class names of labelled `data` for a conditional run; DataError in one line when it has no labels
    or (with `num_classes`) labels outside the model's classes."""
    if data.storage is Storage.SHARDS:  # shards: the labels are in the stream; their counts are known per shard
        shards = data.shard_set
        counts = shards.label_counts() if shards.labelled else {}
        if not counts:
            raise DataError(
                f"--conditional needs class labels, and {data.name} has none: every sample needs a .cls "
                "member (dcgan data shard writes them for data with classes)"
            )
        lowest, highest = min(counts), max(counts)
    elif data.labels is None:
        raise DataError(
            f"--conditional needs class labels, and {data.name} has none: use MNIST, CIFAR-10, or a folder "
            "or archive with one sub-folder per class (two or more)"
        )
    else:
        lowest, highest = int(data.labels.min()), int(data.labels.max())
    classes = list(data.classes) if data.classes else [str(i) for i in range(highest + 1)]
    if len(classes) > MAX_CLASSES:
        raise DataError(f"{data.name} has {len(classes):,} classes; a conditional model takes at most {MAX_CLASSES:,}")
    if len(classes) < 2:
        raise DataError(f"{data.name} has one class ({classes[0]}); --conditional needs at least 2 (one sub-folder per class)")
    if num_classes is not None and (lowest < 0 or highest >= num_classes):
        raise DataError(f"{data.name} has labels outside the model's {num_classes} classes")
    return classes


def parts_from_options(
    options: dict[str, Any], config_file: ConfigFile | str | Path | None, progress: bool
) -> tuple[ModelConfig, TrainConfig, ImageData]:
    """The model config, train config and data of `Trainer.from_options(**options)`, checked before training."""
    model_keys = {f.name for f in fields(ModelConfig)}
    train_keys = {f.name for f in fields(TrainConfig)}
    unknown = set(options) - model_keys - train_keys
    if unknown:
        raise ConfigError(f"unknown option(s): {', '.join(sorted(unknown))}")
    options = resolve_options(options, config_file)
    train_config = TrainConfig(**{k: v for k, v in options.items() if k in train_keys})
    spec = DATASETS.get(train_config.data)
    model_opts = {k: v for k, v in options.items() if k in model_keys and v is not None}
    model_opts.setdefault("image_size", spec.default_size if spec else DEFAULT_FILES_SIZE)
    model_opts.setdefault("channels", spec.native_channels if spec else DEFAULT_FILES_CHANNELS)
    if spec is not None and spec.default_width is not None:
        model_opts.setdefault("width", spec.default_width)
    if "conditioning" in model_opts and not train_config.conditional:
        raise ConfigError("--conditioning chooses how a conditional model takes its class: add --conditional")
    model_config = ModelConfig(**model_opts)  # validates size and channels before any data is read
    check_models(model_config)  # G and D build and produce the right shapes before any data is read
    data = load_dataset(
        train_config.data, train_config.data_dir, image_size=model_config.image_size, channels=model_config.channels, progress=progress
    )
    if train_config.conditional:  # the classes come from the data
        classes = check_class_labels(data)
        model_config = replace(model_config, num_classes=len(classes), class_names=tuple(classes))
        check_models(model_config)
    return model_config, train_config, data


def resume_parts(
    run_dir: str | Path, data: ImageData | None, overrides: dict[str, Any]
) -> tuple[Checkpoint, ModelConfig, TrainConfig, ImageData, Path]:
    """The latest checkpoint of `run_dir`, its model config, its train config with `overrides` (resumable
    fields only), the data (loaded as the run's when None, checked by fingerprint) and the run's root."""
    ckpt = load_checkpoint(run_dir)
    if not ckpt.resumable:
        raise CheckpointError(
            f"{ckpt.path} is an exported generator (G's weights only, no D, optimizers or noise state) "
            "and cannot be resumed; resume the run directory it was exported from"
        )
    changes = {k: v for k, v in overrides.items() if v is not None}
    bad = set(changes) - resumable_fields(TrainConfig)
    if bad:
        raise ConfigError(f"cannot change {', '.join(sorted(bad))} when resuming; start a new run instead")
    if "steps" in changes:
        changes.setdefault("epochs", None)
    if "epochs" in changes:
        changes.setdefault("steps", None)
    config = replace(TrainConfig.from_record(ckpt.record.train_config), **changes)
    mc = ckpt.model_config
    if data is None:
        data = load_dataset(config.data, config.data_dir, image_size=mc.image_size, channels=mc.channels)
    expected = ckpt.record.data.get("fingerprint")
    if expected and data.fingerprint() != expected:
        raise DataError(
            f"the data for {config.data!r} differs from the data this run was trained on; resume needs the same data (or start a new run)"
        )
    assert ckpt.path is not None  # load_checkpoint read it from a file
    return ckpt, mc, config, data, RunDir.of_checkpoint(ckpt.path).root
