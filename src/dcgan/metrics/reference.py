"""The real images a score compares with, chosen by seed, and their features, computed once and cached on disk
(keyed by the data's content, the extractor, the count, the seed and the class). Below `evaluate.py` and
`conditional.py`, which both draw on it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from safetensors.torch import load_file as safetensors_load
from safetensors.torch import save as safetensors_save

from ..data import ImageData, to_unit_range
from ..errors import ConfigError
from ..fileio import atomic_write_bytes
from .extractors import Extractor

__all__ = ["subset", "reference_indices", "real_images", "reference_features", "reference_mean_image"]


def subset(n_total: int, n: int, seed: int) -> torch.Tensor:
    """The first `n` of a seeded permutation, in index order (all indices when n >= n_total)."""
    if n >= n_total:
        return torch.arange(n_total)
    return torch.randperm(n_total, generator=torch.Generator().manual_seed(seed))[:n].sort().values


def reference_indices(data: ImageData, num: int, seed: int, label: int | None = None) -> torch.Tensor:
    """The images `reference_features` uses: `num` of all of `data`, or of those labelled `label`."""
    if label is None:
        return subset(len(data), num, seed)
    if data.labels is None:
        raise ConfigError(f"per-class scores need class labels, and the data {data.name!r} has none")
    pool = (data.labels == label).nonzero().squeeze(1)  # (N_c,) indices of the class, ascending
    return pool[subset(len(pool), num, seed)]


def real_images(data: ImageData, indices: torch.Tensor) -> torch.Tensor:
    """uint8 images (n, C, H, W) of `data` at `indices`, from memory or decoded from disk (`ImageData.images_at`)."""
    return data.images_at(indices)


def reference_features(
    data: ImageData,
    extractor: Extractor,
    num: int,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    batch_size: int = 500,
    label: int | None = None,
) -> torch.Tensor:
    """Features (n, F) of `num` real images chosen by `seed` (all of them when fewer).

    With `label`, the images are chosen among those of that class only. With
    `cache_dir`, they are stored there as safetensors under a key made of the
    data's fingerprint, the extractor's id, `num`, `seed` (and the class): a
    second call with the same data is a file read, and changed data gets a new key.
    """
    indices = reference_indices(data, num, seed, label)
    path = None
    if cache_dir is not None:
        which = "" if label is None else f"|class {label}"  # the whole data keeps the keys it always had
        key = hashlib.sha256(f"{data.fingerprint()}|{extractor.id}|{len(indices)}|{seed}{which}".encode()).hexdigest()[:24]
        path = Path(cache_dir) / f"{extractor.name}-{key}.safetensors"
        if path.is_file():
            try:
                return safetensors_load(str(path))["features"]
            except Exception:
                pass  # a damaged cache entry is recomputed and replaced
    feats = []
    for chunk in indices.split(batch_size):
        feats.append(extractor.features(to_unit_range(real_images(data, chunk)), batch_size))
    features = torch.cat(feats)
    if path is not None:
        mu = features.double().mean(0)
        meta = {
            "extractor": extractor.description,
            "data": data.name,
            "fingerprint": data.fingerprint(),
            "num": str(len(indices)),
            "seed": str(seed),
            "class": "" if label is None else str(label),
        }
        atomic_write_bytes(path, safetensors_save({"features": features.contiguous(), "mean": mu.float()}, metadata=meta))
    return features


def reference_mean_image(data: ImageData, num: int, seed: int = 0, batch_size: int = 500) -> torch.Tensor:
    """The mean image (C, H, W) in [-1, 1] of the same `num` real images `reference_features` uses."""
    total = None
    indices = subset(len(data), num, seed)
    for chunk in indices.split(batch_size):
        part = to_unit_range(real_images(data, chunk)).double().sum(0)
        total = part if total is None else total + part
    assert total is not None, "the mean image of no images"
    return (total / len(indices)).float()
