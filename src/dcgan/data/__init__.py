"""Data: every source of training images, by concern.

- `dataset.py`: `ImageData` (the in-memory dataset) and the shared facts: cache and data folders, channel
  conversion, `to_unit_range` (uint8 -> [-1, 1]).
- `registry.py`: `DATASETS` by name and `load_dataset`, which also takes paths; `builtin.py` registers MNIST,
  Fashion-MNIST, the digits and CIFAR-10, each with its `download.py` entry.
- `imagefiles.py` (folders and archives: decoding rules), `folders.py` (decode once and cache, or stream),
  `lsun.py` (the LSUN lmdb reader), `shards/` (WebDataset shards: plan, stream) and `shard_writer.py`
  (`dcgan data shard`).
- `check.py` (`dcgan data check`) and `download.py` (`dcgan data download`).

The names of the 0.3.0 module `dcgan.data` are all here, so its imports keep working.
"""

from __future__ import annotations

from . import builtin  # noqa: F401  (registers the built-in datasets)
from .builtin import CIFAR_CLASSES, DIGITS_TEST_SIZE, FASHION_CLASSES, read_idx
from .dataset import (
    ImageData,
    Storage,
    convert_channels,
    dataset_stem,
    default_cache_dir,
    default_data_root,
    default_memory_budget,
    to_unit_range,
    unit_batches,
)
from .folders import DEFAULT_FILES_CHANNELS, DEFAULT_FILES_SIZE, MAX_FAILED_FRACTION, StreamDataset, load_image_files, open_file_source
from .registry import DATASETS, DatasetSpec, load_dataset, register_dataset

__all__ = [
    "ImageData",
    "Storage",
    "DatasetSpec",
    "DATASETS",
    "register_dataset",
    "load_dataset",
    "default_data_root",
    "default_cache_dir",
    "default_memory_budget",
    "read_idx",
    "convert_channels",
    "load_image_files",
    "StreamDataset",
    "dataset_stem",
    "open_file_source",
    "to_unit_range",
    "unit_batches",
    "DEFAULT_FILES_SIZE",
    "DEFAULT_FILES_CHANNELS",
    "MAX_FAILED_FRACTION",
    "FASHION_CLASSES",
    "CIFAR_CLASSES",
    "DIGITS_TEST_SIZE",
]
