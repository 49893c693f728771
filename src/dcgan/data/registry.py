"""The dataset registry: named datasets (`DATASETS`, filled by `builtin.py`) and `load_dataset`, which also
takes a folder, an archive, an LSUN lmdb or WebDataset shards by path."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import DataError
from ..imaging import resize_uint8
from .dataset import ImageData, convert_channels
from .folders import DEFAULT_FILES_CHANNELS, DEFAULT_FILES_SIZE, load_image_files
from .lsun import looks_like_lmdb
from .shards import looks_like_shards, open_shards

if TYPE_CHECKING:
    from .download import DownloadSpec

__all__ = ["DatasetSpec", "DATASETS", "register_dataset", "load_dataset"]


@dataclass(frozen=True)
class DatasetSpec:
    """How to load one named dataset."""

    name: str  # registry key, used with --data
    loader: Callable[[Path | None, str], ImageData]  # (data_dir or None, split) -> native-size ImageData
    default_size: int  # image size used when the user gives none
    native_channels: int  # channels as stored
    description: str  # one line for `--help` and errors
    needs_files: bool = True  # False for datasets bundled with a package
    download: DownloadSpec | None = None  # where `dcgan data download NAME` fetches its files; None: no download
    # the model width (--width) used when the user gives none: the one measured best on this dataset
    # (docs/recipe.md); None: ModelConfig's default
    default_width: int | None = None


DATASETS: dict[str, DatasetSpec] = {}


def register_dataset(
    name: str,
    default_size: int,
    native_channels: int,
    description: str,
    needs_files: bool = True,
    download: DownloadSpec | None = None,
    default_width: int | None = None,
):
    """Decorator that adds a loader to the registry under `name` (with its download, where it has one)."""

    def wrap(fn: Callable[[Path | None, str], ImageData]):
        DATASETS[name] = DatasetSpec(name, fn, default_size, native_channels, description, needs_files, download, default_width)
        return fn

    return wrap


def load_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    image_size: int | None = None,
    channels: int | None = None,
    split: str = "train",
    cache: bool = True,
    stream: bool | None = None,
    max_memory_bytes: int | None = None,
    progress: bool = False,
) -> ImageData:
    """Load a registered dataset, or a folder or archive of images, at `image_size` with `channels`.

    Registered datasets default to their own size and channels; folders and
    archives to 64x64 RGB. For folders and archives, `cache` keeps the decoded
    tensor on disk (keyed by content, size and channels) so a second run starts
    in seconds, and `stream` (None = when the decoded data would exceed
    `max_memory_bytes`) decodes batches on the fly in DataLoader workers instead.

    >>> data = load_dataset("digits", image_size=32)   # bundled with scikit-learn
    >>> data.images.shape
    torch.Size([1437, 1, 32, 32])
    """
    if split not in ("train", "test"):
        raise DataError(f"unknown split {split!r}: use train or test")
    spec = DATASETS.get(name)
    if spec is None and looks_like_shards(name):
        shards = open_shards(name, image_size or DEFAULT_FILES_SIZE, channels or DEFAULT_FILES_CHANNELS, progress=progress)
        return ImageData(images=None, name=name, classes=shards.classes, source=name, shards=shards)
    if spec is None:
        if Path(name).exists() or any(sep in name for sep in "/\\") or Path(name).suffix or looks_like_lmdb(name):
            return load_image_files(
                name,
                image_size or DEFAULT_FILES_SIZE,
                channels or DEFAULT_FILES_CHANNELS,
                split=split,
                cache=cache,
                stream=stream,
                max_memory_bytes=max_memory_bytes,
                progress=progress,
            )
        known = ", ".join(sorted(DATASETS))
        raise DataError(f"unknown dataset {name!r}: use one of {known}, or a folder, archive, LSUN lmdb or WebDataset shards of images")
    root = Path(data_dir) if data_dir is not None else None
    if root is not None and not root.exists():
        raise DataError(f"data directory {root} does not exist")
    data = spec.loader(root, split)
    if channels is not None:
        data.images = convert_channels(data.image_tensor, channels)
    if image_size is not None:
        data.images = resize_uint8(data.image_tensor, image_size)
    data.name = name
    return data
