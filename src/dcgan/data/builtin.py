"""The built-in datasets: MNIST and Fashion-MNIST (IDX files), scikit-learn's digits and CIFAR-10, each
registered with `register_dataset` together with where to download it."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from . import download
from .dataset import ImageData, default_data_root
from .registry import register_dataset

__all__ = ["read_idx", "FASHION_CLASSES", "CIFAR_CLASSES", "DIGITS_TEST_SIZE"]


# --------------------------------------------------------------------------- #
# IDX files (MNIST, Fashion-MNIST)
# --------------------------------------------------------------------------- #
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


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
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
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
    image_path, label_path = paths
    if image_path is None or label_path is None:
        missing = ", ".join(f"{s}.gz" for s, p in zip(stems, paths) if p is None)
        raise DataError(
            f"{dataset} not found in {root}: it needs {missing} there (pass --data-dir DIR, or get them with: dcgan data download {dataset} --root {root})"
        )
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise DataError(f"{dataset} files in {root} do not match: images {images.shape}, labels {labels.shape}")
    return ImageData(
        images=torch.from_numpy(images.copy()).unsqueeze(1),  # (N, 1, 28, 28)
        labels=torch.from_numpy(labels.astype(np.int64)),
        classes=classes,
        source=str(root),
    )


@register_dataset(
    "mnist",
    default_size=32,
    native_channels=1,
    description="MNIST handwritten digits, 28x28 grey (IDX files)",
    download=download.MNIST,
    default_width=48,  # 12 minutes on a core: FID 0.065 against width 64's 0.095 (1.5x more iterations; docs/recipe.md)
)
def _load_mnist(root: Path | None, split: str) -> ImageData:
    return _load_idx_pair(root, split, "mnist", [str(i) for i in range(10)])


# --------------------------------------------------------------------------- #
# scikit-learn's bundled digits: 1,797 images of 8x8 with 17 grey levels
# --------------------------------------------------------------------------- #
DIGITS_TEST_SIZE = 360  # the last 360 images (20%) form the test split


@register_dataset(
    "digits",
    default_size=32,
    native_channels=1,
    needs_files=False,
    description="scikit-learn's bundled handwritten digits (8x8, upscaled), no download",
)
def _load_digits(root: Path | None, split: str) -> ImageData:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # Values 0..16 with ink high, like MNIST's white-on-black: scale to 0..255.
    images = torch.from_numpy((bunch.images * (255.0 / 16.0)).round().astype(np.uint8)).unsqueeze(1)
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    part = slice(None, -DIGITS_TEST_SIZE) if split == "train" else slice(-DIGITS_TEST_SIZE, None)
    return ImageData(
        images=images[part].contiguous(), labels=labels[part].contiguous(), classes=[str(i) for i in range(10)], source="sklearn.datasets.load_digits"
    )


# --------------------------------------------------------------------------- #
# Fashion-MNIST (the same IDX format as MNIST)
# --------------------------------------------------------------------------- #
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


@register_dataset(
    "fashion-mnist", default_size=32, native_channels=1, description="Fashion-MNIST clothing, 28x28 grey (IDX files)", download=download.FASHION_MNIST
)
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
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("builtins", "dict"),
        ("builtins", "list"),
        ("__builtin__", "dict"),
        ("__builtin__", "list"),
        ("_codecs", "encode"),  # how Python 3 pickles bytes at protocol 2
        ("copy_reg", "_reconstructor"),
        ("copyreg", "_reconstructor"),
        ("builtins", "object"),
        ("__builtin__", "object"),
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


@register_dataset(
    "cifar10",
    default_size=32,
    native_channels=3,
    description="CIFAR-10, 32x32 RGB (python or binary batches)",
    download=download.CIFAR10,
    default_width=32,  # 12 minutes on a core: FID 0.338 against 64f8a4c's 1.366 (width 64: 2.2x fewer iterations; docs/recipe.md)
)
def _load_cifar10(root: Path | None, split: str) -> ImageData:
    root = root if root is not None else default_data_root() / "cifar10"
    files, kind = _cifar_files(root, split)
    if not files:
        wanted = "data_batch_1..5 (python) or data_batch_1..5.bin (binary)" if split == "train" else "test_batch or test_batch.bin"
        raise DataError(
            f"cifar10 {split} files not found in {root}: it needs {wanted} there or in cifar-10-batches-py/ or -bin/ (pass --data-dir DIR, or get them with: dcgan data download cifar10 --root {root})"
        )
    reader = _read_cifar_bin if kind == "bin" else _read_cifar_pickle
    parts = [reader(p) for p in files]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return ImageData(images=torch.from_numpy(images), labels=torch.from_numpy(labels), classes=list(CIFAR_CLASSES), source=str(files[0].parent))


# --------------------------------------------------------------------------- #
