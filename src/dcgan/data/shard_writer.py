"""`dcgan data shard SRC OUT`: any dataset the toolkit reads, written as WebDataset shards with an index.

Files keep their original bytes (a JPEG stays the same JPEG); registered datasets held as
pixels (MNIST, CIFAR-10) are written as lossless PNG. Samples are shuffled by a seed before
they are cut into shards, so each shard is a random sample of the data (the WebDataset
advice: a reader's shuffle buffer only mixes within a shard). The shards and `shards.json`
are written into a temporary folder beside OUT and renamed into place at the end, so an
interrupted run leaves nothing half-written under OUT.
"""

from __future__ import annotations

import io
import json
import os
import random
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from ..errors import DataError
from .dataset import default_memory_budget
from .folders import open_file_source
from .registry import DATASETS, load_dataset
from .shards.source import INDEX_KIND, SHARD_INDEX, _wds

TAR_MTIME = 1_700_000_000  # a fixed member time, so the same data and seed give byte-identical shards


# A source for the writer: (number of samples, labels or None, class names or None, and a function that gives the
# samples (index, file suffix or "", bytes) in a given order of indices).
Samples = Callable[[list[int]], Iterator[tuple[int, str, bytes]]]


def _registry_samples(name: str, data_dir, split: str) -> tuple[int, list | None, list[str] | None, Samples]:
    """A dataset held as pixels (MNIST, CIFAR-10): each image encoded as lossless PNG."""
    from PIL import Image

    data = load_dataset(name, data_dir, split=split)
    images = data.image_tensor.numpy()  # (N, C, H, W) uint8

    def samples(order: list[int]) -> Iterator[tuple[int, str, bytes]]:
        for i in order:
            pixels = images[i]
            buf = io.BytesIO()
            Image.fromarray(pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0)).save(buf, format="PNG", compress_level=1)
            yield i, "png", buf.getvalue()

    return len(data), data.labels.tolist() if data.labels is not None else None, data.classes, samples


def _file_samples(path: str, split: str, shuffle: bool) -> tuple[int, list | None, list[str] | None, Samples]:
    """A folder, archive or lmdb: each file's own bytes, under its own suffix (an lmdb's under Pillow's format)."""
    source = open_file_source(path, split)
    suffix = (lambda i: "") if source.kind == "lmdb" else (lambda i: Path(source.names[i]).suffix.lower().lstrip("."))

    def samples(order: list[int]) -> Iterator[tuple[int, str, bytes]]:
        if source.random_access:
            for i in order:
                try:
                    yield i, suffix(i), source.read(source.names[i])
                except OSError:
                    yield i, suffix(i), b""  # left out and counted, as a file that is not an image
            return
        # A .tar.gz reads front to back only: in its own order, or (to shuffle) held in memory first.
        stored = ((i, b"" if isinstance(data, Exception) else data) for i, data in source.iter_bytes())
        if order == sorted(order):
            for i, data in stored:
                yield i, suffix(i), data
            return
        held = dict(stored)
        for i in order:
            yield i, suffix(i), held.pop(i)

    if shuffle and not source.random_access and sum(source.sizes) > default_memory_budget():
        raise DataError(
            f"{path} is a compressed tar of {sum(source.sizes) / 2**30:.1f} GB: shuffling it needs it all in memory; "
            "unpack it (or use an uncompressed .tar), or keep its order with --no-shuffle"
        )
    return len(source), source.labels, source.classes, samples


def _image_kind(data: bytes) -> str | None:
    """The file suffix Pillow's format calls for (jpg, png, webp, ...), or None for bytes that are no image."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt = (im.format or "").lower()
    except Exception:
        return None
    return {"jpeg": "jpg", "tiff": "tif", "mpo": "jpg"}.get(fmt, fmt) or None


def _write_tars(
    samples: Iterator[tuple[int, str, bytes]],
    labels: list | None,
    staging: Path,
    prefix: str,
    shard_size: int,
    progress: Callable[[int], None] | None,
) -> tuple[list[dict], list[dict[str, int]], list[str]]:
    """Write the samples into tars of `shard_size` images in `staging`: (the shard list, each shard's label counts,
    the indices left out because they are no image)."""
    wds = _wds()
    shardlist: list[dict] = []
    label_counts: list[dict[str, int]] = []
    skipped: list[str] = []
    writer, written = None, 0

    def finish_shard() -> None:
        name = f"{prefix}-{len(shardlist):06d}.tar"
        shardlist.append({"url": name, "nsamples": written, "filesize": (staging / name).stat().st_size})

    for i, suffix, data in samples:
        kind = _image_kind(data) if data else None
        if kind is None:
            skipped.append(str(i))
        else:
            if writer is None:
                writer = wds.TarWriter(str(staging / f"{prefix}-{len(shardlist):06d}.tar"), encoder=False, mtime=TAR_MTIME)
                label_counts.append({})
                written = 0
            sample = {"__key__": f"{i:08d}", suffix or kind: data}
            if labels is not None:
                sample["cls"] = str(int(labels[i])).encode()
                label_counts[-1][str(int(labels[i]))] = label_counts[-1].get(str(int(labels[i])), 0) + 1
            writer.write(sample)
            written += 1
            if written == shard_size:
                writer.close()
                finish_shard()
                writer = None
        if progress is not None:
            progress(1)
    if writer is not None:
        writer.close()
        finish_shard()
    return shardlist, label_counts, skipped


def write_shards(
    src: str,
    out: str | os.PathLike,
    shard_size: int = 10_000,
    split: str = "train",
    data_dir=None,
    seed: int = 0,
    shuffle: bool = True,
    prefix: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Write `src` (a registered name, folder, archive or LSUN lmdb) as shards `OUT/PREFIX-000000.tar`, ... and
    `OUT/shards.json`. Returns the index. Samples that are not images are left out and counted."""
    _wds()  # a missing webdataset says so before anything is read
    out = Path(out)
    if shard_size < 1:
        raise DataError("--shard-size must be at least 1")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out} already exists and is not empty: pick a new folder for the shards")
    if src in DATASETS:
        total, labels, classes, samples = _registry_samples(src, data_dir, split)
    else:
        total, labels, classes, samples = _file_samples(src, split, shuffle)
    if total == 0:
        raise DataError(f"{src} holds no images")
    order = list(range(total))
    if shuffle:
        random.Random(seed).shuffle(order)
    prefix = prefix or split
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        shardlist, label_counts, skipped = _write_tars(samples(order), labels, staging, prefix, shard_size, progress)
        if not shardlist:
            raise DataError(f"none of the {total} samples of {src} is an image Pillow can open")
        index = {
            "__kind__": INDEX_KIND,
            "wids_version": 1,
            "name": f"{Path(str(src).rstrip('/')).name}-{split}",
            "shardlist": shardlist,
            "dcgan": {
                "source": str(src),
                "split": split,
                "shuffled": shuffle,
                "seed": seed,
                "skipped": len(skipped),
                "classes": classes if labels is not None else None,
                "labels": label_counts if labels is not None else [],
            },
        }
        (staging / SHARD_INDEX).write_text(json.dumps(index, indent=1) + "\n")
        if out.exists():
            out.rmdir()  # empty, checked above
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return index


def shard_pattern(out: str | os.PathLike, index: dict) -> str:
    """The brace pattern naming the shards of an index written by `write_shards`."""
    names = [s["url"] for s in index["shardlist"]]
    first, last = names[0], names[-1]
    stem = first.rsplit("-", 1)[0]
    if len(names) == 1:
        return str(Path(out) / first)
    return str(Path(out) / f"{stem}-{{{first.rsplit('-', 1)[1][:-4]}..{last.rsplit('-', 1)[1][:-4]}}}.tar")
