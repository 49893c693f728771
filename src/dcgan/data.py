"""Datasets, looked up by name in a registry, decoded once into uint8 tensors.

Every loader returns an `ImageData`: images of shape (N, C, H, W), uint8, at the
size and channel count asked for, with labels where the format has them. The
trainer keeps the whole tensor (on the training device) and normalises each
batch to [-1, 1] there, so there is no per-item decode in the training loop.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .errors import DataError
from .imaging import resize_uint8

__all__ = [
    "ImageData",
    "DatasetSpec",
    "DATASETS",
    "register_dataset",
    "load_dataset",
    "default_data_root",
    "read_idx",
    "convert_channels",
]


@dataclass
class ImageData:
    """A dataset in memory."""

    images: torch.Tensor  # (N, C, H, W) uint8, 0..255
    labels: torch.Tensor | None = None  # (N,) int64 class indices, or None when the format has none
    name: str = ""  # registry name or path it came from
    classes: list[str] | None = None  # class names indexed by label
    source: str = ""  # where the files were read from, for `dcgan info`
    _fingerprint: str | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def image_size(self) -> int:
        return self.images.shape[-1]

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    def fingerprint(self) -> str:
        """sha256 of the decoded pixels (and shape): identifies the exact training data."""
        if self._fingerprint is None:
            h = hashlib.sha256(str(tuple(self.images.shape)).encode())
            h.update(self.images.contiguous().numpy().tobytes())
            self._fingerprint = h.hexdigest()
        return self._fingerprint


@dataclass(frozen=True)
class DatasetSpec:
    """How to load one named dataset."""

    name: str  # registry key, used with --data
    loader: Callable[[Path | None, str], ImageData]  # (data_dir or None, split) -> native-size ImageData
    default_size: int  # image size used when the user gives none
    native_channels: int  # channels as stored
    description: str  # one line for `--help` and errors
    needs_files: bool = True  # False for datasets bundled with a package


DATASETS: dict[str, DatasetSpec] = {}


def register_dataset(name: str, default_size: int, native_channels: int, description: str, needs_files: bool = True):
    """Decorator that adds a loader to the registry under `name`."""

    def wrap(fn: Callable[[Path | None, str], ImageData]):
        DATASETS[name] = DatasetSpec(name, fn, default_size, native_channels, description, needs_files)
        return fn

    return wrap


def default_data_root() -> Path:
    """Where datasets live when --data-dir is not given: $DCGAN_DATA_DIR or ~/.cache/dcgan/data."""
    return Path(os.environ.get("DCGAN_DATA_DIR", Path.home() / ".cache" / "dcgan" / "data"))


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


def load_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    image_size: int | None = None,
    channels: int | None = None,
    split: str = "train",
) -> ImageData:
    """Load a registered dataset at `image_size` with `channels` (defaults: the dataset's own).

    >>> data = load_dataset("digits", image_size=32)   # bundled with scikit-learn
    >>> data.images.shape
    torch.Size([1437, 1, 32, 32])
    """
    spec = DATASETS.get(name)
    if spec is None:
        known = ", ".join(sorted(DATASETS))
        if Path(name).exists():
            raise DataError(f"{name} is a path; folders and archives of images are not supported yet (datasets: {known})")
        raise DataError(f"unknown dataset {name!r}: use one of {known}")
    if split not in ("train", "test"):
        raise DataError(f"unknown split {split!r}: use train or test")
    root = Path(data_dir) if data_dir is not None else None
    if root is not None and not root.exists():
        raise DataError(f"data directory {root} does not exist")
    data = spec.loader(root, split)
    if channels is not None:
        data.images = convert_channels(data.images, channels)
    if image_size is not None:
        data.images = resize_uint8(data.images, image_size)
    data.name = name
    return data


# --------------------------------------------------------------------------- #
# IDX files (MNIST, Fashion-MNIST)
# --------------------------------------------------------------------------- #
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed) into a NumPy array, checking its header."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path} is not an IDX file")
    dtype, ndim = np.dtype(_IDX_DTYPES[raw[2]]), raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise DataError(f"{path} is truncated")
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    count = int(np.prod(shape)) if ndim else 0
    body = raw[4 + 4 * ndim :]
    if len(body) != count * dtype.itemsize:
        raise DataError(f"{path} is truncated or padded: header says {shape}, file holds {len(body)} bytes of data")
    return np.frombuffer(body, dtype=dtype).reshape(shape)


def _find(root: Path, stem: str) -> Path | None:
    for candidate in (root / f"{stem}.gz", root / stem):
        if candidate.is_file():
            return candidate
    return None


def _load_idx_pair(root: Path | None, split: str, dataset: str, classes: list[str]) -> ImageData:
    root = root if root is not None else default_data_root() / dataset
    prefix = "train" if split == "train" else "t10k"
    stems = (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte")
    paths = [_find(root, s) for s in stems]
    if None in paths:
        missing = ", ".join(f"{s}.gz" for s, p in zip(stems, paths) if p is None)
        raise DataError(f"{dataset} not found in {root}: it needs {missing} there (pass --data-dir DIR)")
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise DataError(f"{dataset} files in {root} do not match: images {images.shape}, labels {labels.shape}")
    return ImageData(
        images=torch.from_numpy(images.copy()).unsqueeze(1),  # (N, 1, 28, 28)
        labels=torch.from_numpy(labels.astype(np.int64)),
        classes=classes,
        source=str(root),
    )


@register_dataset("mnist", default_size=32, native_channels=1, description="MNIST handwritten digits, 28x28 grey (IDX files)")
def _load_mnist(root: Path | None, split: str) -> ImageData:
    return _load_idx_pair(root, split, "mnist", [str(i) for i in range(10)])


# --------------------------------------------------------------------------- #
# scikit-learn's bundled digits: 1,797 images of 8x8 with 17 grey levels
# --------------------------------------------------------------------------- #
DIGITS_TEST_SIZE = 360  # the last 360 images (20%) form the test split


@register_dataset(
    "digits", default_size=32, native_channels=1, needs_files=False,
    description="scikit-learn's bundled handwritten digits (8x8, upscaled), no download",
)
def _load_digits(root: Path | None, split: str) -> ImageData:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # Values 0..16 with ink high, like MNIST's white-on-black: scale to 0..255.
    images = torch.from_numpy((bunch.images * (255.0 / 16.0)).round().astype(np.uint8)).unsqueeze(1)
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    part = slice(None, -DIGITS_TEST_SIZE) if split == "train" else slice(-DIGITS_TEST_SIZE, None)
    return ImageData(images=images[part].contiguous(), labels=labels[part].contiguous(), classes=[str(i) for i in range(10)], source="sklearn.datasets.load_digits")
