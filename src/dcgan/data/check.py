"""Pre-flight check of a dataset: what is there, what will fail, what training will do.

`check_files` looks at every file of a folder or archive, or every entry of an LSUN
lmdb (formats, modes, sizes, duplicates by content hash, files that cannot be
decoded); `check_shards` reads every sample of a set of WebDataset shards and
says how they are laid out; `check_named` summarises a registered dataset. All
return a `CheckReport`, whose `text()` is what `dcgan data check` prints. Nothing here
writes files.
"""

from __future__ import annotations

import collections
import hashlib
import io
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..models import ModelConfig, check_models
from .folders import MAX_FAILED_FRACTION, open_file_source
from .imagefiles import DecodeError, ImageSource, decode_image
from .registry import DATASETS, load_dataset
from .shards import iter_samples, looks_like_shards, open_shards

__all__ = ["CheckReport", "check_files", "check_shards", "check_named", "check_dataset"]


@dataclass
class CheckReport:
    """The findings of a pre-flight check."""

    path: str
    image_size: int
    channels: int
    total: int = 0  # files considered (images with a known extension)
    checked: int = 0  # files actually opened (all, or a sample)
    formats: dict = field(default_factory=dict)  # Pillow format -> count
    modes: dict = field(default_factory=dict)  # Pillow mode -> count
    widths: list = field(default_factory=list)
    heights: list = field(default_factory=list)
    non_square: int = 0
    smaller_than_target: int = 0  # images that will be enlarged
    duplicates: list = field(default_factory=list)  # groups of member names with identical bytes
    failures: list = field(default_factory=list)  # (name, reason)
    classes: list | None = None
    class_counts: dict = field(default_factory=dict)
    split_used: str | None = None
    model_ok: str = ""  # a line about the G/D shape check
    kind: str = ""  # "folder", "zip", "tar", "lmdb", "shards", or "" for a registered dataset
    notes: list = field(default_factory=list)  # further lines (e.g. how shards are laid out)

    @property
    def failed_fraction(self) -> float:
        return len(self.failures) / self.checked if self.checked else 0.0

    @property
    def usable(self) -> bool:
        return self.checked > len(self.failures) and self.failed_fraction <= MAX_FAILED_FRACTION

    def verdict(self) -> str:
        if self.total == 0:
            return "training will refuse this data: it holds no images"
        if not self.usable:
            return (
                f"training will refuse this data: {len(self.failures)} of {self.checked} files cannot be decoded "
                f"(more than {MAX_FAILED_FRACTION:.0%})"
            )
        if self.failures:
            return f"training will skip the {len(self.failures)} undecodable file(s) and use the other {self.checked - len(self.failures)}"
        return f"training will use all {self.total} images"

    def text(self) -> str:
        lines = [f"dataset      {self.path}"]
        sample = "" if self.checked == self.total else f" ({self.checked} checked as a sample)"
        lines.append(f"images       {self.total}{sample}" + (f", split {self.split_used}" if self.split_used else ""))
        if self.formats:
            lines.append("formats      " + ", ".join(f"{k} {v}" for k, v in sorted(self.formats.items(), key=lambda kv: -kv[1])))
        if self.modes:
            lines.append("modes        " + ", ".join(f"{k} {v}" for k, v in sorted(self.modes.items(), key=lambda kv: -kv[1])))
        if self.widths:
            w, h = np.array(self.widths), np.array(self.heights)
            lines.append(
                f"sizes        width {w.min()}..{w.max()} (median {int(np.median(w))}), height {h.min()}..{h.max()} "
                f"(median {int(np.median(h))}); {self.non_square} non-square (centre-cropped), "
                f"{self.smaller_than_target} smaller than {self.image_size} (enlarged)"
            )
        if self.classes:
            counts = ", ".join(f"{c} {self.class_counts.get(i, 0)}" for i, c in enumerate(self.classes))
            lines.append(f"classes      {len(self.classes)}: {counts}")
        else:
            why = {"lmdb": "an lmdb is one category", "shards": "no .cls members"}.get(self.kind, "no sub-folders")
            lines.append(f"classes      none ({why})")
        if self.duplicates:
            extra = sum(len(g) - 1 for g in self.duplicates)
            example = " = ".join(self.duplicates[0][:3])
            lines.append(f"duplicates   {extra} file(s) repeat another's exact bytes, in {len(self.duplicates)} group(s); e.g. {example}")
        else:
            lines.append("duplicates   none")
        if self.failures:
            lines.append(f"undecodable  {len(self.failures)}:")
            for name, reason in self.failures[:20]:
                lines.append(f"  {name}: {reason}")
            if len(self.failures) > 20:
                lines.append(f"  ... and {len(self.failures) - 20} more")
        else:
            lines.append("undecodable  none")
        lines.extend(self.notes)
        if self.model_ok:
            lines.append(f"model        {self.model_ok}")
        lines.append(f"verdict      {self.verdict()}")
        return "\n".join(lines)


def _model_line(image_size: int, channels: int) -> str:
    config = ModelConfig(image_size=image_size, channels=channels)
    check_models(config)
    return f"G and D for {image_size}x{image_size}x{channels} build, G makes {channels}x{image_size}x{image_size}, D gives one logit per image"


def check_files(path, image_size: int = 64, channels: int = 3, split: str = "train", sample: int | None = None, seed: int = 0) -> CheckReport:
    """Open and decode every file of a folder or archive, or every entry of an LSUN lmdb (or a random `sample`)."""
    source: ImageSource = open_file_source(path, split)
    report = CheckReport(str(path), image_size, channels, total=len(source), classes=source.classes, split_used=source.split_used, kind=source.kind)
    report.model_ok = _model_line(image_size, channels)
    chosen = set(range(len(source)))
    if sample is not None and sample < len(source):
        chosen = set(random.Random(seed).sample(range(len(source)), sample))
    formats: collections.Counter[str] = collections.Counter()
    modes: collections.Counter[str] = collections.Counter()
    hashes: dict[str, list[str]] = collections.defaultdict(list)
    iterator = source.iter_bytes() if source.kind == "tar" or sample is None else ((i, source.read(source.names[i])) for i in sorted(chosen))
    for i, data in iterator:
        if i not in chosen:
            continue
        name = source.names[i]
        report.checked += 1
        if source.labels is not None:
            report.class_counts[source.labels[i]] = report.class_counts.get(source.labels[i], 0) + 1
        if isinstance(data, Exception):
            report.failures.append((name, f"cannot read: {data}"))
            continue
        hashes[hashlib.sha1(data).hexdigest()].append(name)
        _look(report, formats, modes, name, data)
    report.formats, report.modes = dict(formats), dict(modes)
    report.duplicates = sorted(sorted(g) for g in hashes.values() if len(g) > 1)
    report.failures.sort()
    return report


def check_shards(spec: str, image_size: int = 64, channels: int = 3, sample: int | None = None, seed: int = 0) -> CheckReport:
    """Read every sample of a set of WebDataset shards (decoding all, or a random `sample` of them), and say how
    the shards are laid out: sizes, classes per shard, and whether the planned counts still hold."""
    shards = open_shards(spec, image_size, channels)
    total = len(shards)
    report = CheckReport(str(spec), image_size, channels, total=total, classes=shards.classes, kind="shards")
    report.model_ok = _model_line(image_size, channels)
    chosen = None if sample is None or sample >= total else set(random.Random(seed).sample(range(total), sample))
    formats: collections.Counter[str] = collections.Counter()
    modes: collections.Counter[str] = collections.Counter()
    hashes: dict[str, list[str]] = collections.defaultdict(list)
    position, changed, one_class = 0, [], 0
    for info in shards.shards:
        seen, classes_here = 0, set()
        for key, data, label in iter_samples(info.url):
            seen += 1
            name = f"{Path(info.url).name}:{key}"
            if label is not None:
                report.class_counts[label] = report.class_counts.get(label, 0) + 1
                classes_here.add(label)
            hashes[hashlib.sha1(data).hexdigest()].append(name)
            if chosen is not None and position + seen - 1 not in chosen:
                continue
            report.checked += 1
            _look(report, formats, modes, name, data)
        position += info.count
        if seen != info.count:
            changed.append(f"{info.url} holds {seen}, the index says {info.count}")
        one_class += len(classes_here) == 1
    report.formats, report.modes = dict(formats), dict(modes)
    report.duplicates = sorted(sorted(g) for g in hashes.values() if len(g) > 1)
    report.failures.sort()
    counts = [s.count for s in shards.shards]
    report.notes.append(f"shards       {len(counts)}, {min(counts)}..{max(counts)} samples each")
    if changed:
        report.notes.append(
            f"changed      {len(changed)} shard(s) no longer hold what was counted, e.g. {changed[0]}; "
            "training would stop at them: write the index again (dcgan data shard) or clear the count cache"
        )
    if shards.classes and len(shards.classes) > 1 and one_class > len(counts) // 2:
        report.notes.append(
            f"order        {one_class} of {len(counts)} shards hold a single class: the shards look sorted by class, "
            "and a shuffle buffer only mixes within a shard; write them shuffled (dcgan data shard does)"
        )
    return report


def _look(report: CheckReport, formats: collections.Counter[str], modes: collections.Counter[str], name: str, data: bytes) -> None:
    """Record one file's format, mode and size, and whether it decodes at the report's size."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            formats[im.format or "?"] += 1
            modes[im.mode] += 1
            report.widths.append(im.width)
            report.heights.append(im.height)
            report.non_square += im.width != im.height
            report.smaller_than_target += min(im.size) < report.image_size
    except Exception:
        pass  # decode_image below gives the reason
    try:
        decode_image(data, report.image_size, report.channels)
    except DecodeError as exc:
        report.failures.append((name, str(exc)))


def check_named(name: str, data_dir=None, image_size: int | None = None, channels: int | None = None, split: str = "train") -> CheckReport:
    """Load a registered dataset and summarise it (count, classes, duplicate images)."""
    spec = DATASETS[name]
    image_size = image_size or spec.default_size
    channels = channels or spec.native_channels
    data = load_dataset(name, data_dir, image_size=None, channels=None, split=split)
    native = data.image_tensor
    report = CheckReport(f"{name} ({data.source})", image_size, channels, total=len(data), checked=len(data), classes=data.classes)
    report.model_ok = _model_line(image_size, channels)
    report.formats = {f"{name} ({spec.description})": len(data)}
    report.widths = [native.shape[-1]] * len(data)
    report.heights = [native.shape[-2]] * len(data)
    report.smaller_than_target = len(data) if native.shape[-1] < image_size else 0
    if data.labels is not None:
        values, counts = np.unique(data.labels.numpy(), return_counts=True)
        report.class_counts = dict(zip(values.tolist(), counts.tolist()))
    flat = native.reshape(len(data), -1).numpy()
    hashes: dict[bytes, list[str]] = collections.defaultdict(list)
    for i in range(len(flat)):
        hashes[hashlib.sha1(flat[i].tobytes()).digest()].append(f"#{i}")
    report.duplicates = sorted(g for g in hashes.values() if len(g) > 1)
    return report


def check_dataset(
    name_or_path: str, data_dir=None, image_size: int | None = None, channels: int | None = None, split: str = "train", sample: int | None = None
) -> CheckReport:
    """`check_named` for registry names, `check_shards` for shards, `check_files` for folders and archives."""
    if name_or_path in DATASETS:
        return check_named(name_or_path, data_dir, image_size, channels, split)
    if looks_like_shards(name_or_path):
        return check_shards(name_or_path, image_size or 64, channels or 3, sample)
    return check_files(name_or_path, image_size or 64, channels or 3, split, sample)
