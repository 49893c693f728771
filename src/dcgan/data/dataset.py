"""The dataset type (`ImageData`, its images in memory or streamed: `Storage`) and the small facts every data
module shares: where data and caches live, channel conversion, and batches in [-1, 1] (`unit_batches`)."""

from __future__ import annotations

import enum
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..errors import DataError
from ..imaging import to_unit_range

if TYPE_CHECKING:
    from .folders import StreamDataset
    from .shards import ShardSet

__all__ = [
    "ImageData",
    "Storage",
    "default_data_root",
    "default_cache_dir",
    "default_memory_budget",
    "dataset_stem",
    "convert_channels",
    "to_unit_range",
    "unit_batches",
]


class Storage(enum.Enum):
    """Where the images of an `ImageData` are, and so which of its fields holds them."""

    MEMORY = "memory"  # `images`: a uint8 tensor (N, C, H, W)
    STREAM = "stream"  # `stream`: a StreamDataset, files of a folder or archive decoded on access
    SHARDS = "shards"  # `shards`: a ShardSet, WebDataset shards (always streamed)


@dataclass
class ImageData:
    """A dataset: uint8 images with their labels, held in memory or streamed from disk (`storage`).

    Exactly one of `images`, `stream` and `shards` holds the images; ask `storage` (or `in_memory`)
    which, and read images at any indices with `images_at`. `image_tensor`, `stream_dataset` and `shard_set`
    return that field, typed, or raise a DataError for data stored otherwise.
    """

    images: torch.Tensor | None  # (N, C, H, W) uint8, 0..255; None when the data streams from disk
    labels: torch.Tensor | None = None  # (N,) int64 class indices, or None when the format has none
    name: str = ""  # registry name or path it came from
    classes: list[str] | None = None  # class names indexed by label
    source: str = ""  # where the files were read from, for `dcgan info`
    stream: StreamDataset | None = None  # set instead of `images` for folders too large for memory
    shards: ShardSet | None = None  # set instead of `images` for WebDataset shards (always streamed)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason) of files that failed to decode
    from_cache: bool = False  # decoded images came from the on-disk cache
    _fingerprint: str | None = field(default=None, repr=False)

    @property
    def storage(self) -> Storage:
        """Which field holds the images: MEMORY (`images`), STREAM (`stream`) or SHARDS (`shards`)."""
        if self.images is not None:
            return Storage.MEMORY
        if self.shards is not None:
            return Storage.SHARDS
        if self.stream is not None:
            return Storage.STREAM
        raise DataError(f"the dataset {self.name!r} holds no images: it needs images, a stream or shards")

    @property
    def in_memory(self) -> bool:
        """Whether the images are a tensor in memory (`images`), rather than streamed from disk."""
        return self.storage is Storage.MEMORY

    @property
    def image_tensor(self) -> torch.Tensor:
        """`images`, the uint8 tensor (N, C, H, W) of data in memory; a DataError for data streamed from disk."""
        if self.images is None:
            raise DataError(f"the dataset {self.name!r} streams from disk ({self.storage.value}): its images are not in memory")
        return self.images

    @property
    def shard_set(self) -> ShardSet:
        """`shards`, of data in WebDataset shards (Storage.SHARDS); a DataError for other data."""
        if self.storage is not Storage.SHARDS or self.shards is None:
            raise DataError(f"the dataset {self.name!r} is not in shards ({self.storage.value})")
        return self.shards

    @property
    def stream_dataset(self) -> StreamDataset:
        """`stream`, of a folder or archive decoded on access (Storage.STREAM); a DataError for other data."""
        if self.storage is not Storage.STREAM or self.stream is None:
            raise DataError(f"the dataset {self.name!r} is not streamed from files ({self.storage.value})")
        return self.stream

    def __len__(self) -> int:
        return self.image_tensor.shape[0] if self.in_memory else len(self._streamed)

    @property
    def _streamed(self) -> StreamDataset | ShardSet:
        return self.shard_set if self.storage is Storage.SHARDS else self.stream_dataset

    @property
    def image_size(self) -> int:
        return self.image_tensor.shape[-1] if self.in_memory else self._streamed.size

    @property
    def channels(self) -> int:
        return self.image_tensor.shape[1] if self.in_memory else self._streamed.channels

    def images_at(self, indices: torch.Tensor | list[int]) -> torch.Tensor:
        """uint8 images (n, C, H, W) at `indices`, in the order given: from memory, or decoded from disk."""
        storage = self.storage
        if storage is Storage.MEMORY:
            return self.image_tensor[indices]
        if storage is Storage.SHARDS:
            return self.shard_set.read(indices)
        stream = self.stream_dataset
        return torch.stack([stream[int(i)] for i in indices])

    def fingerprint(self) -> str:
        """sha256 of the decoded pixels (and shape): identifies the exact training data.

        For streamed folders, a hash of the file names, sizes and modification times; for shards, of
        each shard's name, size and sample count.
        """
        if self._fingerprint is None and not self.in_memory:
            storage = self.storage
            source = self.shard_set.fingerprint if storage is Storage.SHARDS else self.stream_dataset.source.fingerprint
            self._fingerprint = hashlib.sha256(f"{source}:{self.image_size}:{self.channels}".encode()).hexdigest()
        if self._fingerprint is None:
            images = self.image_tensor
            h = hashlib.sha256(str(tuple(images.shape)).encode())
            h.update(images.contiguous().numpy().tobytes())
            self._fingerprint = h.hexdigest()
        return self._fingerprint


def default_data_root() -> Path:
    """Where datasets live when --data-dir is not given: $DCGAN_DATA_DIR or ~/.cache/dcgan/data."""
    return Path(os.environ.get("DCGAN_DATA_DIR", Path.home() / ".cache" / "dcgan" / "data"))


def dataset_stem(name: str) -> str:
    """A file-name-safe stem for a dataset name or path: "mnist", "photos", "CIFAR-10-images-jpg"."""
    stem = Path(name.rstrip("/\\")).name
    for suffix in (".tar.gz", ".tgz", ".tar", ".zip"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in stem) or "data"


def convert_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """Grey (N, 1, H, W) <-> RGB (N, 3, H, W), uint8. RGB to grey uses ITU-R 601 luma, as Pillow's "L"."""
    c = images.shape[1]
    if c == channels:
        return images
    if c == 1 and channels == 3:
        return images.expand(-1, 3, -1, -1).contiguous()
    if c == 3 and channels == 1:
        weights = torch.tensor([299, 587, 114], dtype=torch.int32).view(1, 3, 1, 1)
        return ((images.to(torch.int32) * weights).sum(1, keepdim=True) + 500).div(1000, rounding_mode="floor").to(torch.uint8)
    raise DataError(f"cannot convert images with {c} channels to {channels}")


def default_memory_budget() -> int:
    """Decoded datasets up to a quarter of physical memory are held in memory; larger ones stream.
    $DCGAN_MEMORY_BUDGET (bytes) sets another limit: 0 streams every folder, zip and plain tar."""
    if os.environ.get("DCGAN_MEMORY_BUDGET", "").strip().isdigit():
        return int(os.environ["DCGAN_MEMORY_BUDGET"])
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4
    except (ValueError, OSError, AttributeError):
        return 4 << 30


def default_cache_dir() -> Path:
    """Where decoded datasets are cached: $DCGAN_CACHE_DIR or ~/.cache/dcgan/decoded."""
    return Path(os.environ.get("DCGAN_CACHE_DIR", Path.home() / ".cache" / "dcgan" / "decoded"))


def unit_batches(images_uint8: torch.Tensor, batch_size: int, device: torch.device) -> Iterator[torch.Tensor]:
    """uint8 images (N, C, H, W) as float batches in [-1, 1] on `device`, `batch_size` at a time."""
    for chunk in images_uint8.split(batch_size):
        yield to_unit_range(chunk.to(device))
