"""Shards by name (patterns, `::` lists, `pipe:` commands, the shard index), their samples, and their counts."""

from __future__ import annotations

import collections
import hashlib
import io
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ...errors import DataError, first_line
from ..dataset import default_cache_dir
from ..imagefiles import IMAGE_EXTENSIONS, DecodeError, decode_image

SHARD_INDEX = "shards.json"  # the index `dcgan data shard` writes beside its shards
INDEX_KIND = "wids-shard-index-v1"  # the webdataset project's shard-index format (wids), which we extend
IMAGE_SUFFIXES = tuple(sorted(ext.lstrip(".") for ext in IMAGE_EXTENSIONS)) + ("ppm", "pgm", "pbm")
COUNT_CACHE_FORMAT = "dcgan-shard-counts-v1"
WEBDATASET_INSTALL_HINT = "pip install 'dcgan[shards]'"


def _wds():
    try:
        import webdataset
    except ImportError:
        raise DataError(f"reading WebDataset shards needs the webdataset package: {WEBDATASET_INSTALL_HINT}") from None
    return webdataset


# --------------------------------------------------------------------------- #
# Naming shards
# --------------------------------------------------------------------------- #
_BRACES = re.compile(r"\{[^{}]*(\.\.|,)[^{}]*\}")


def looks_like_shards(spec: str | os.PathLike) -> bool:
    """True for a brace pattern, a `::` list, a `pipe:` command, a shard index (`*.json`) or a folder holding one."""
    s = str(spec)
    if s.startswith("pipe:"):
        return True
    p = Path(s)
    if p.is_dir():  # a folder of images, even one with braces in its name, unless it holds a shard index
        return (p / SHARD_INDEX).is_file()
    if p.is_file():
        return s.lower().endswith(".json")
    return "::" in s or bool(_BRACES.search(s)) or s.lower().endswith(".json")


def expand_shard_spec(spec: str) -> list[str]:
    """The shard URLs a spec names: each `::`-separated part brace-expanded, in order."""
    from braceexpand import braceexpand

    urls: list[str] = []
    for part in str(spec).split("::"):
        if part:
            urls.extend(braceexpand(part))
    return urls


def _is_local(url: str) -> bool:
    return not re.match(r"^[a-z][a-z0-9+.-]*:", url) or url.startswith("file:")


def _local_path(url: str) -> Path:
    return Path(re.sub(r"^file://?", "/", url) if url.startswith("file:") else url)


# --------------------------------------------------------------------------- #
# Reading one shard
# --------------------------------------------------------------------------- #
def _image_suffix(sample: dict) -> str | None:
    for suffix in IMAGE_SUFFIXES:
        if suffix in sample:
            return suffix
    return None


def _label(sample: dict) -> int | None:
    raw = sample.get("cls")
    if raw is None:
        return None
    try:
        return int(raw.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        raise DataError(f"sample {sample.get('__key__')!r} has a .cls that is not an integer: {raw[:20]!r}") from None


def _reason(url: str, exc: Exception) -> str:
    """One line for a failed read; for a pipe: command, its exit status rather than webdataset's Popen arguments."""
    text = first_line(exc)
    status = re.search(r"exit (-?\d+)", text)
    if url.startswith("pipe:") and status:
        return f"the command `{url[5:]}` exited with status {status.group(1)}"
    return text


def iter_samples(url: str) -> Iterator[tuple[str, bytes, int | None]]:
    """The samples of one shard in stored order, as (key, image bytes, label or None).

    Members are grouped into samples by webdataset's rules (the name up to the first dot of
    the file name is the key); a sample without an image member is passed over. A shard that
    cannot be opened or is not a tar raises DataError in one line naming it.
    """
    wds = _wds()
    from webdataset.tariterators import group_by_keys, tar_file_iterator

    if _is_local(url) and not _local_path(url).exists():
        raise DataError(f"shard {url} does not exist")
    try:
        stream = wds.gopen(url, "rb")
    except Exception as exc:
        raise DataError(f"cannot open shard {url}: {_reason(url, exc)}") from None
    finished = False
    try:
        members = ({**m, "__url__": url} for m in tar_file_iterator(stream))
        for sample in group_by_keys(members):
            suffix = _image_suffix(sample)
            if suffix is not None:
                yield sample["__key__"], sample[suffix], _label(sample)
        finished = True
    except DataError:
        raise
    except Exception as exc:  # tarfile.ReadError, OSError, a failed pipe: command, ...
        reason: Exception = exc
        if url.startswith("pipe:"):
            try:
                stream.close()  # the command's exit status says more than the empty stream it left
            except Exception as status:
                reason = status
        raise DataError(f"cannot read shard {url}: {_reason(url, reason)}") from None
    finally:
        try:
            stream.close()  # a pipe: command that exited non-zero raises here
        except Exception as exc:
            if finished:  # not when the reader stopped early (the command then sees a closed pipe)
                raise DataError(f"cannot read shard {url}: {_reason(url, exc)}") from None


# --------------------------------------------------------------------------- #
# The set of shards
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class ShardInfo:
    """One shard: where it is and what it holds."""

    url: str  # a local path or a gopen URL (pipe:...)
    count: int  # samples with an image
    labels: dict[int, int] = field(default_factory=dict)  # class index -> samples of it (those with a .cls)
    nbytes: int | None = None  # file size, for local files


@dataclass
class ShardSet:
    """The shards of a dataset and the decode target; no file handles, so it pickles into DataLoader workers."""

    spec: str  # what the user gave: pattern, pipe: command or index
    shards: list[ShardInfo]
    size: int  # decoded image size
    channels: int  # decoded channels
    classes: list[str] | None = None  # class names by index, when every sample has a .cls
    fingerprint: str = ""

    def __len__(self) -> int:
        return sum(s.count for s in self.shards)

    @property
    def counts(self) -> tuple[int, ...]:
        return tuple(s.count for s in self.shards)

    @property
    def labelled(self) -> bool:
        return all(sum(s.labels.values()) == s.count for s in self.shards) and any(s.labels for s in self.shards)

    def label_counts(self) -> dict[int, int]:
        total: dict[int, int] = {}
        for s in self.shards:
            for k, v in s.labels.items():
                total[k] = total.get(k, 0) + v
        return total

    def decode(self, data: bytes) -> np.ndarray:
        return decode_image(data, self.size, self.channels)

    def read(self, indices: list[int] | torch.Tensor) -> torch.Tensor:
        """Decoded uint8 images (n, C, H, W) at `indices` of the stored order (see `read_samples`)."""
        return read_samples(self, indices)


def _count_cache_dir() -> Path:
    return default_cache_dir() / "shard-counts"


def _scan_key(url: str) -> str:
    """A cache key for a shard's counts: a local file by path, size and time; a pipe: command by its text."""
    if _is_local(url):
        p = _local_path(url)
        st = p.stat()
        return hashlib.sha256(f"{COUNT_CACHE_FORMAT}:{p.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:32]
    return hashlib.sha256(f"{COUNT_CACHE_FORMAT}:{url}".encode()).hexdigest()[:32]


_SKIP_META = re.compile(r"__[^/]*__($|/)")  # webdataset's tar_file_iterator passes over these names


@dataclass(frozen=True)
class MemberTable:
    """Where each sample's image lies in a local, uncompressed shard, and its label: read from the tar headers
    once, so samples are then read with one `pread` each, in any order, without parsing the tar again."""

    offsets: np.ndarray  # (n,) int64: byte offset of the sample's image data in the file
    sizes: np.ndarray  # (n,) int64: its length
    labels: np.ndarray  # (n,) int64: the .cls value, -1 where the sample has none

    def __len__(self) -> int:
        return len(self.offsets)


def random_access(url: str) -> bool:
    """A local file that is an uncompressed tar (a gzipped shard can only be streamed)."""
    if not _is_local(url):
        return False
    try:
        with open(_local_path(url), "rb") as f:
            return f.read(2) != b"\x1f\x8b"
    except OSError:
        return False


def _scan_members(url: str) -> MemberTable:
    """Group a local tar's members into samples by webdataset's rules (`group_by_keys` on `tar_file_iterator`'s
    output: regular files, meta names passed over, the key up to the first dot, consecutive members of one
    key make a sample), seeking over the data; samples without an image member are passed over."""
    import tarfile

    from webdataset.tariterators import base_plus_ext

    offsets, sizes, labels = [], [], []
    current: dict | None = None
    path = _local_path(url)

    def flush(sample: dict | None, tar) -> None:
        if not sample:
            return
        suffix = _image_suffix(sample)
        if suffix is None:
            return
        info = sample[suffix]
        offsets.append(info.offset_data)
        sizes.append(info.size)
        cls = sample.get("cls")
        labels.append(-1 if cls is None else _label({"__key__": sample["__key__"], "cls": tar.extractfile(cls).read()}))

    try:
        with tarfile.open(path, "r:") as tar:
            for info in tar:
                name = info.name
                if not info.isreg() or ("/" not in name and name.startswith("__") and name.endswith("__")) or _SKIP_META.match(name):
                    continue
                prefix, suffix = base_plus_ext(name)
                if prefix is None:
                    continue
                suffix = suffix.lower()
                if current is None or prefix != current["__key__"]:
                    flush(current, tar)
                    current = {"__key__": prefix}
                if suffix in current:
                    raise DataError(f"shard {url}: {name} repeats a member of sample {prefix!r}")
                current[suffix] = info
                # keep memory flat over a large shard; TarFile.members is real but missing from typeshed's stubs
                tar.members = []  # type: ignore[attr-defined]
            flush(current, tar)
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"cannot read shard {url}: {first_line(exc)}") from None
    as_array = lambda values: np.asarray(values, dtype=np.int64)  # noqa: E731
    return MemberTable(as_array(offsets), as_array(sizes), as_array(labels))


# This process's most recent member tables, by cache key: a part reads a shard in one or two segments, so a few
# are enough, and memory stays flat however many shards there are (a table is 24 bytes a sample).
_TABLES: collections.OrderedDict[str, MemberTable] = collections.OrderedDict()
TABLES_HELD = 2 * 8


def member_table(url: str, cache: bool = True) -> MemberTable:
    """The member table of a local uncompressed shard: held while recently used, cached on disk by path, size and time."""
    key = _scan_key(url)
    if key in _TABLES:
        _TABLES.move_to_end(key)
        return _TABLES[key]
    path = _count_cache_dir() / f"{key}.npz"
    table = None
    if cache and path.is_file():
        try:
            with np.load(path) as saved:
                table = MemberTable(saved["offsets"], saved["sizes"], saved["labels"])
        except (OSError, ValueError, KeyError):
            table = None  # a damaged cache entry is rebuilt
    if table is None:
        table = _scan_members(url)
        if cache:
            from ...fileio import atomic_write_bytes

            buf = io.BytesIO()
            np.savez(buf, offsets=table.offsets, sizes=table.sizes, labels=table.labels)
            try:
                atomic_write_bytes(path, buf.getvalue())
            except OSError:
                pass  # a read-only cache only costs a rescan next time
    _TABLES[key] = table
    while len(_TABLES) > TABLES_HELD:
        _TABLES.popitem(last=False)
    return table


def read_members(url: str, table: MemberTable, stored: list[int] | np.ndarray) -> Iterator[tuple[bytes, int | None]]:
    """(image bytes, label) of the samples at `stored` indices of a local shard, in that order (one pread each)."""
    fd = os.open(_local_path(url), os.O_RDONLY)
    try:
        for i in stored:
            data = os.pread(fd, int(table.sizes[i]), int(table.offsets[i]))
            label = int(table.labels[i])
            yield data, (None if label < 0 else label)
    finally:
        os.close(fd)


def scan_shard(url: str, cache: bool = True) -> ShardInfo:
    """Count the samples (and classes) of one shard; the result is cached. A local uncompressed shard is
    read by its headers alone (its member table); any other is streamed once."""
    nbytes = _local_path(url).stat().st_size if _is_local(url) else None
    if random_access(url):
        table = member_table(url, cache)
        values, counts = np.unique(table.labels[table.labels >= 0], return_counts=True)
        return ShardInfo(url, len(table), dict(zip(values.tolist(), counts.tolist())), nbytes)
    key = _scan_key(url)
    path = _count_cache_dir() / f"{key}.json"
    if cache and path.is_file():
        try:
            saved = json.loads(path.read_text())
            return ShardInfo(url, int(saved["count"]), {int(k): int(v) for k, v in saved["labels"].items()}, nbytes)
        except (OSError, ValueError, KeyError, TypeError):
            pass  # a damaged cache entry is recounted
    count = 0
    labels: dict[int, int] = {}
    for _, _, label in iter_samples(url):
        count += 1
        if label is not None:
            labels[label] = labels.get(label, 0) + 1
    if cache:
        from ...fileio import atomic_write_bytes

        try:
            atomic_write_bytes(path, json.dumps({"count": count, "labels": labels}).encode())
        except OSError:
            pass  # a read-only cache only costs a recount next time
    return ShardInfo(url, count, labels, nbytes)


def _read_index(path: Path) -> tuple[list[ShardInfo], list[str] | None]:
    """The shards and classes of a shard index (the wids format, with dcgan's per-shard label counts)."""
    try:
        index = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read the shard index {path}: {first_line(exc)}") from None
    if not isinstance(index, dict) or not isinstance(index.get("shardlist"), list):
        raise DataError(f'{path} is not a shard index: it needs a "shardlist" of {{"url", "nsamples"}} entries')
    extra = index.get("dcgan") or {}
    label_counts = extra.get("labels") or []
    shards = []
    for i, entry in enumerate(index["shardlist"]):
        try:
            url, count = str(entry["url"]), int(entry["nsamples"])
        except (KeyError, TypeError, ValueError):
            raise DataError(f'{path}: shard entry {i} needs "url" and "nsamples"') from None
        if _is_local(url) and not Path(url).is_absolute():
            url = str(path.parent / url)  # as wids does: relative to the index
        labels = {int(k): int(v) for k, v in label_counts[i].items()} if i < len(label_counts) else {}
        nbytes = _local_path(url).stat().st_size if _is_local(url) and _local_path(url).exists() else None
        shards.append(ShardInfo(url, count, labels, nbytes))
    return shards, extra.get("classes")


def _fingerprint(shards: list[ShardInfo], classes: list[str] | None) -> str:
    """Identifies the data for resuming: each shard's name, sample count, classes and size (no file times,
    so copied shards still resume their runs)."""
    h = hashlib.sha256(b"shards-v1")
    for s in shards:
        h.update(f"{Path(s.url).name if _is_local(s.url) else s.url}|{s.count}|{sorted(s.labels.items())}|{s.nbytes}\n".encode())
    h.update(json.dumps(classes).encode())
    return h.hexdigest()


def open_shards(spec: str, size: int, channels: int, progress: bool = False, cache: bool = True) -> ShardSet:
    """The shards a spec names, with every shard's sample count: from the index, or counted once (cached).

    DataError in one line for a missing shard, an empty set, or a shard that is not a tar.
    """
    _wds()
    s = str(spec)
    p = Path(s)
    classes = None
    if not s.startswith("pipe:") and (s.lower().endswith(".json") or (p.is_dir() and (p / SHARD_INDEX).is_file())):
        index = p / SHARD_INDEX if p.is_dir() else p
        shards, classes = _read_index(index)
        missing = [sh.url for sh in shards if _is_local(sh.url) and not _local_path(sh.url).exists()]
        if missing:
            raise DataError(f"{len(missing)} of the {len(shards)} shards in {index} are missing, e.g. {missing[0]}")
    else:
        urls = expand_shard_spec(s)
        if not urls:
            raise DataError(f"{s!r} names no shards")
        missing = [u for u in urls if _is_local(u) and not _local_path(u).exists()]
        if missing:
            raise DataError(f"{len(missing)} of the {len(urls)} shards named by {s!r} do not exist, e.g. {missing[0]}")
        bar = None
        if progress and len(urls) > 1:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(urls), desc="counting samples in the shards (once; cached)", unit="shard", mininterval=0.5)
        shards = []
        try:
            for url in urls:
                shards.append(scan_shard(url, cache=cache))
                if bar is not None:
                    bar.update()
        finally:
            if bar is not None:
                bar.close()
    if not shards or sum(sh.count for sh in shards) == 0:
        raise DataError(f"{s} holds no images ({', '.join(IMAGE_SUFFIXES[:5])}, ... members grouped by key)")
    found = ShardSet(s, shards, size, channels)
    if found.labelled:  # class names from the index, else the indices themselves
        found.classes = classes or [str(i) for i in range(max(found.label_counts()) + 1)]
    found.fingerprint = _fingerprint(shards, found.classes)
    return found


def read_samples(shards: ShardSet, indices: list[int] | torch.Tensor) -> torch.Tensor:
    """Decoded uint8 images (n, C, H, W) at `indices` of the shards' stored order (shard after shard), in the
    order asked; reads each shard holding one of them once, in the calling process."""
    indices = [int(i) for i in indices]
    total = len(shards)
    if any(i < 0 or i >= total for i in indices):
        raise IndexError(f"sample index out of range (the shards hold {total})")
    starts = np.cumsum([0] + [s.count for s in shards.shards])
    want: dict[int, dict[int, list[int]]] = {}
    for out, i in enumerate(indices):
        shard = int(np.searchsorted(starts, i, side="right")) - 1
        want.setdefault(shard, {}).setdefault(i - int(starts[shard]), []).append(out)
    result = np.zeros((len(indices), shards.channels, shards.size, shards.size), dtype=np.uint8)
    for shard, offsets in sorted(want.items()):
        url = shards.shards[shard].url
        samples: Iterator[tuple[int, bytes]]
        if random_access(url):
            stored = sorted(offsets)
            samples = zip(stored, (data for data, _ in read_members(url, member_table(url), stored)))
        else:
            samples = ((i, data) for i, (_, data, _) in enumerate(iter_samples(url)) if i in offsets)
        for i, data in samples:
            try:
                pixels = shards.decode(data)
            except DecodeError:
                continue  # an undecodable sample stays black here; `dcgan data check` lists it
            for out in offsets[i]:
                result[out] = pixels
    return torch.from_numpy(result)
