"""Folders and archives of images (see imagefiles.py for the decoding rules) and LSUN lmdbs: decoded once into
memory and cached on disk, or streamed from disk when they would not fit."""

from __future__ import annotations

import hashlib
import json
import os
import random
import tarfile
import zipfile
import zlib
from pathlib import Path

import torch

from ..errors import DataError, first_line
from ..fileio import atomic_write_bytes
from .dataset import ImageData, default_cache_dir, default_memory_budget
from .imagefiles import IMAGE_EXTENSIONS, DecodeError, ImageSource, decode_image, decode_source, open_source
from .lsun import looks_like_lmdb, open_lmdb

__all__ = ["StreamDataset", "load_image_files", "open_file_source", "DEFAULT_FILES_SIZE", "DEFAULT_FILES_CHANNELS", "MAX_FAILED_FRACTION"]

DEFAULT_FILES_SIZE = 64  # the paper's size, for image folders given no --image-size
DEFAULT_FILES_CHANNELS = 3
MAX_FAILED_FRACTION = 0.1  # more undecodable files than this and training refuses the data
CACHE_FORMAT = "dcgan-decoded-v1"


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
        return ImageData(
            images=images,
            labels=labels,
            classes=json.loads(meta.get("classes", "null")),
            skipped=[tuple(x) for x in json.loads(meta.get("skipped", "[]"))],
            from_cache=True,
        )
    except Exception:  # a damaged cache file is ignored and rewritten
        return None


def _write_cache(path: Path, data: ImageData) -> None:
    from safetensors.torch import save as st_save

    tensors = {"images": data.image_tensor.contiguous()}
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
    source: ImageSource
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
        return _streamed(source, path, image_size, channels, max_failed_fraction)
    return _decoded(source, path, image_size, channels, cache, max_failed_fraction, progress)


def _streamed(source: ImageSource, path: Path, image_size: int, channels: int, max_failed_fraction: float) -> ImageData:
    """The files decoded on access in DataLoader workers, after a quick check of a sample of them."""
    if not source.random_access:
        raise DataError(
            f"{path}: a compressed tar archive cannot stream (gzip has no random access); unpack it, or use an uncompressed .tar or a .zip"
        )
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
    data = ImageData(
        images=None,
        labels=torch.tensor(source.labels) if source.labels else None,
        classes=source.classes,
        source=str(path),
        stream=StreamDataset(source, image_size, channels),
        skipped=failures,
    )
    data.name = str(path)
    return data


def _decoded(source: ImageSource, path: Path, image_size: int, channels: int, cache: bool, max_failed_fraction: float, progress: bool) -> ImageData:
    """Every file decoded into one uint8 tensor, from the on-disk cache when it holds them."""
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
