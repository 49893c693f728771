"""Datasets, looked up by name in a registry, decoded once into uint8 tensors.

Every loader returns an `ImageData`: images of shape (N, C, H, W), uint8, at the
size and channel count asked for, with labels where the format has them. The
trainer keeps the whole tensor (on the training device) and normalises each
batch to [-1, 1] there, so there is no per-item decode in the training loop.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import pickle
import random
import struct
import tarfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from .errors import DataError, first_line
from .imagefiles import IMAGE_EXTENSIONS, DecodeError, ImageSource, decode_image, decode_source, open_source
from .imaging import resize_uint8
from .lsun import looks_like_lmdb, open_lmdb
from .shards import ShardSet, looks_like_shards, open_shards

__all__ = [
    "ImageData",
    "DatasetSpec",
    "DATASETS",
    "register_dataset",
    "load_dataset",
    "default_data_root",
    "read_idx",
    "convert_channels",
    "load_image_files",
    "StreamDataset",
    "default_cache_dir",
    "dataset_stem",
    "open_file_source",
]


@dataclass
class ImageData:
    """A dataset in memory."""

    images: torch.Tensor | None  # (N, C, H, W) uint8, 0..255; None when the data streams from disk
    labels: torch.Tensor | None = None  # (N,) int64 class indices, or None when the format has none
    name: str = ""  # registry name or path it came from
    classes: list[str] | None = None  # class names indexed by label
    source: str = ""  # where the files were read from, for `dcgan info`
    stream: "StreamDataset | None" = None  # set instead of `images` for folders too large for memory
    shards: ShardSet | None = None  # set instead of `images` for WebDataset shards (always streamed)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason) of files that failed to decode
    from_cache: bool = False  # decoded images came from the on-disk cache
    _fingerprint: str | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self._streamed) if self.images is None else self.images.shape[0]

    @property
    def _streamed(self) -> "StreamDataset | ShardSet":
        return self.shards if self.shards is not None else self.stream

    @property
    def image_size(self) -> int:
        return self._streamed.size if self.images is None else self.images.shape[-1]

    @property
    def channels(self) -> int:
        return self._streamed.channels if self.images is None else self.images.shape[1]

    def fingerprint(self) -> str:
        """sha256 of the decoded pixels (and shape): identifies the exact training data.

        For streamed folders, a hash of the file names, sizes and modification times; for shards, of
        each shard's name, size and sample count.
        """
        if self._fingerprint is None and self.images is None:
            source = self.shards.fingerprint if self.shards is not None else self.stream.source.fingerprint
            self._fingerprint = hashlib.sha256(f"{source}:{self.image_size}:{self.channels}".encode()).hexdigest()
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
                name, image_size or DEFAULT_FILES_SIZE, channels or DEFAULT_FILES_CHANNELS, split=split,
                cache=cache, stream=stream, max_memory_bytes=max_memory_bytes, progress=progress,
            )
        known = ", ".join(sorted(DATASETS))
        raise DataError(f"unknown dataset {name!r}: use one of {known}, or a folder, archive, LSUN lmdb or WebDataset shards of images")
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
        raise DataError(f"{dataset} not found in {root}: it needs {missing} there (pass --data-dir DIR, or get them with: dcgan data download {dataset} --root {root})")
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


# --------------------------------------------------------------------------- #
# Fashion-MNIST (the same IDX format as MNIST)
# --------------------------------------------------------------------------- #
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


@register_dataset("fashion-mnist", default_size=32, native_channels=1, description="Fashion-MNIST clothing, 28x28 grey (IDX files)")
def _load_fashion_mnist(root: Path | None, split: str) -> ImageData:
    return _load_idx_pair(root, split, "fashion-mnist", FASHION_CLASSES)


# --------------------------------------------------------------------------- #
# CIFAR-10: the python-pickle batches or the binary version
# --------------------------------------------------------------------------- #
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR_RECORD = 1 + 3 * 32 * 32  # binary version: a label byte, then R, G and B planes of 32x32


class _CifarUnpickler(pickle.Unpickler):
    """The CIFAR python batches are pickles: allow only the types they hold, so no code can run."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("builtins", "dict"), ("builtins", "list"), ("__builtin__", "dict"), ("__builtin__", "list"),
        ("_codecs", "encode"),  # how Python 3 pickles bytes at protocol 2
        ("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor"), ("builtins", "object"), ("__builtin__", "object"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR batch")
        return super().find_class(module, name)


def _read_cifar_pickle(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            batch = _CifarUnpickler(f, encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(batch.get(b"labels", batch.get(b"fine_labels")), dtype=np.int64)
    except (OSError, EOFError, pickle.UnpicklingError, KeyError, ValueError, TypeError, AttributeError) as exc:
        raise DataError(f"{path} is not a CIFAR-10 python batch ({exc})") from None
    if len(labels) != len(data):
        raise DataError(f"{path}: {len(data)} images but {len(labels)} labels")
    return data, labels


def _read_cifar_bin(path: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % CIFAR_RECORD:
        raise DataError(f"{path} is not a CIFAR-10 binary batch (size {raw.size} is not a multiple of {CIFAR_RECORD})")
    records = raw.reshape(-1, CIFAR_RECORD)
    labels = records[:, 0].astype(np.int64)
    if labels.max() > 9:
        raise DataError(f"{path} is not a CIFAR-10 binary batch (label {labels.max()} > 9)")
    return records[:, 1:].reshape(-1, 3, 32, 32), labels


def _cifar_files(root: Path, split: str) -> tuple[list[Path], str]:
    """Batch files for a split, from ROOT, ROOT/cifar-10-batches-py or ROOT/cifar-10-batches-bin."""
    for folder in (root / "cifar-10-batches-py", root / "cifar-10-batches-bin", root):
        if not folder.is_dir():
            continue
        if split == "train":
            py = sorted(folder.glob("data_batch_[0-9]"))
            binary = sorted(p for p in folder.glob("*.bin") if "test" not in p.name)
        else:
            py = [p for p in (folder / "test_batch",) if p.exists()]
            binary = sorted(p for p in folder.glob("*.bin") if "test" in p.name)
        if binary:
            return binary, "bin"
        if py:
            return py, "pickle"
    return [], ""


@register_dataset("cifar10", default_size=32, native_channels=3, description="CIFAR-10, 32x32 RGB (python or binary batches)")
def _load_cifar10(root: Path | None, split: str) -> ImageData:
    root = root if root is not None else default_data_root() / "cifar10"
    files, kind = _cifar_files(root, split)
    if not files:
        wanted = "data_batch_1..5 (python) or data_batch_1..5.bin (binary)" if split == "train" else "test_batch or test_batch.bin"
        raise DataError(f"cifar10 {split} files not found in {root}: it needs {wanted} there or in cifar-10-batches-py/ or -bin/ (pass --data-dir DIR, or get them with: dcgan data download cifar10 --root {root})")
    reader = _read_cifar_bin if kind == "bin" else _read_cifar_pickle
    parts = [reader(p) for p in files]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return ImageData(images=torch.from_numpy(images), labels=torch.from_numpy(labels), classes=list(CIFAR_CLASSES), source=str(files[0].parent))


# --------------------------------------------------------------------------- #
# Folders and archives of images (see imagefiles.py for decoding rules)
# --------------------------------------------------------------------------- #
DEFAULT_FILES_SIZE = 64  # the paper's size, for image folders given no --image-size
DEFAULT_FILES_CHANNELS = 3
MAX_FAILED_FRACTION = 0.1  # more undecodable files than this and training refuses the data
CACHE_FORMAT = "dcgan-decoded-v1"


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


class StreamDataset(torch.utils.data.Dataset):
    """Images decoded on access, for folders too large to hold in memory. Items are uint8 (C, H, W).

    A file that fails to decode is replaced by the next decodable one, so one bad
    file never stops training; the pre-flight check reports them beforehand.
    """

    def __init__(self, source: ImageSource, size: int, channels: int):
        self.source, self.size, self.channels = source, size, channels

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> torch.Tensor:
        for attempt in range(min(len(self.source), 50)):
            name = self.source.names[(index + attempt) % len(self.source)]
            try:
                pixels = decode_image(self.source.read(name), self.size, self.channels)
                return torch.from_numpy(pixels if pixels.flags.writeable else pixels.copy())
            except (DecodeError, OSError):
                continue
        raise DataError(f"50 files in a row failed to decode near {self.source.names[index]}")


def _failure_summary(failures: list[tuple[str, str]], total: int, root: Path) -> str:
    shown = "; ".join(f"{name}: {reason}" for name, reason in failures[:3])
    more = f" (and {len(failures) - 3} more)" if len(failures) > 3 else ""
    return f"{len(failures)} of {total} files in {root} could not be decoded: {shown}{more}"


def _cache_key(source: ImageSource, size: int, channels: int) -> str:
    return hashlib.sha256(f"{CACHE_FORMAT}:{source.fingerprint}:{source.split_used}:{size}:{channels}".encode()).hexdigest()[:32]


def _read_cache(path: Path) -> ImageData | None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != CACHE_FORMAT:
                return None
            images = f.get_tensor("images")
            labels = f.get_tensor("labels") if "labels" in f.keys() else None
        return ImageData(images=images, labels=labels, classes=json.loads(meta.get("classes", "null")),
                         skipped=[tuple(x) for x in json.loads(meta.get("skipped", "[]"))], from_cache=True)
    except Exception:  # a damaged cache file is ignored and rewritten
        return None


def _write_cache(path: Path, data: ImageData) -> None:
    from safetensors.torch import save as st_save

    from .fileio import atomic_write_bytes

    tensors = {"images": data.images.contiguous()}
    if data.labels is not None:
        tensors["labels"] = data.labels.contiguous()
    meta = {"format": CACHE_FORMAT, "classes": json.dumps(data.classes), "skipped": json.dumps(data.skipped[:1000])}
    try:
        atomic_write_bytes(path, st_save(tensors, metadata=meta))
    except OSError:
        pass  # a read-only or full cache folder only costs a slower next start


def open_file_source(path: str | os.PathLike, split: str = "train") -> ImageSource:
    """The files of a folder or archive, or the entries of an LSUN lmdb, listed; DataError in one line when it cannot."""
    try:
        return open_lmdb(path) if looks_like_lmdb(path) else open_source(Path(path), split)
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{path} does not exist") from None
    except Exception as exc:
        raise DataError(f"cannot read {path}: {first_line(exc)}") from None


def load_image_files(
    path: str | os.PathLike,
    image_size: int,
    channels: int,
    split: str = "train",
    cache: bool = True,
    stream: bool | None = None,
    max_memory_bytes: int | None = None,
    max_failed_fraction: float = MAX_FAILED_FRACTION,
    progress: bool = False,
) -> ImageData:
    """Images from a folder (recursive) or a .zip/.tar/.tar.gz archive, labelled by sub-folder names,
    or from an LSUN lmdb (unlabelled; always streamed: see lsun.py)."""
    path = Path(path)
    try:
        if looks_like_lmdb(path):
            source, stream = open_lmdb(path), True
        else:
            source = open_source(path, split)
    except FileNotFoundError:
        raise DataError(f"{path} does not exist") from None
    except (ValueError, OSError, EOFError, zlib.error, zipfile.BadZipFile, tarfile.TarError, IndexError) as exc:
        raise DataError(f"cannot read {path}: {first_line(exc)}") from None
    if len(source) == 0:
        raise DataError(f"{path} holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    budget = max_memory_bytes if max_memory_bytes is not None else default_memory_budget()
    decoded_bytes = len(source) * channels * image_size * image_size
    if stream is None:
        stream = decoded_bytes > budget and source.random_access
    if stream:
        if not source.random_access:
            raise DataError(f"{path}: a compressed tar archive cannot stream (gzip has no random access); "
                            "unpack it, or use an uncompressed .tar or a .zip")
        # Quick pre-flight on a sample, since streamed files are only decoded during training.
        sample = random.Random(0).sample(range(len(source)), min(200, len(source)))
        failures = []
        for i in sample:
            try:
                decode_image(source.read(source.names[i]), image_size, channels)
            except (DecodeError, OSError) as exc:
                failures.append((source.names[i], str(exc)))
        if len(failures) > max_failed_fraction * len(sample):
            raise DataError(_failure_summary(failures, len(sample), path) + " (a sample); training stops")
        data = ImageData(images=None, labels=torch.tensor(source.labels) if source.labels else None, classes=source.classes,
                         source=str(path), stream=StreamDataset(source, image_size, channels), skipped=failures)
        data.name = str(path)
        return data

    cache_file = default_cache_dir() / f"{_cache_key(source, image_size, channels)}.safetensors"
    data = _read_cache(cache_file) if cache else None
    if data is None:
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(source), desc=f"decoding {path.name}", unit="img", mininterval=0.5)
        try:
            decoded = decode_source(source, image_size, channels, progress=bar.update if bar else None)
        finally:
            if bar is not None:
                bar.close()
        data = ImageData(
            images=torch.from_numpy(decoded.images),
            labels=torch.from_numpy(decoded.labels) if decoded.labels is not None else None,
            classes=source.classes,
            skipped=decoded.failures,
        )
        if len(data) and len(decoded.failures) <= max_failed_fraction * decoded.total and cache:
            _write_cache(cache_file, data)
    total = len(data) + len(data.skipped)
    if len(data) == 0:
        raise DataError(f"none of the {total} files in {path} could be decoded ({data.skipped[0][0]}: {data.skipped[0][1]})")
    if len(data.skipped) > max_failed_fraction * total:
        raise DataError(_failure_summary(data.skipped, total, path) + f"; more than {max_failed_fraction:.0%} failed, so training stops")
    data.source = str(path)
    data.name = str(path)
    return data


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 images 0..255 as float in [-1, 1], the range of G's tanh (a new tensor)."""
    return images.float().div_(127.5).sub_(1.0)


def unit_batches(images_uint8: torch.Tensor, batch_size: int, device: torch.device) -> Iterator[torch.Tensor]:
    """uint8 images (N, C, H, W) as float batches in [-1, 1] on `device`, `batch_size` at a time."""
    for chunk in images_uint8.split(batch_size):
        yield to_unit_range(chunk.to(device))
