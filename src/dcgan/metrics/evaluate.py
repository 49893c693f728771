"""Evaluation protocols: which samples are compared with which real images, through which features.

`evaluate` scores a generator (and, on request, the real-vs-real floor and a
Gaussian-noise ladder) against reference features of real data;
`reference_features` computes those once and caches them on disk, keyed by the
data's content, the extractor and the sample count. `TrackedMetric` is the cheap
version that training calls every `--eval-every` iterations.

No function here writes anything but the reference cache (and only when a
`cache_dir` is given): reports are returned, and the CLI saves them.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file as safetensors_load
from safetensors.torch import save as safetensors_save
from torch import nn

from ..data import ImageData
from ..errors import ConfigError
from ..fileio import atomic_write_bytes
from ..sampling import generate, sample_z
from .classifier import TrainedClassifier
from .extractors import Extractor
from .scores import METRICS

__all__ = ["EvalReport", "evaluate", "reference_features", "score", "TrackedMetric", "LADDER_SIGMAS", "real_images", "build_protocol"]

LADDER_SIGMAS = (0.1, 0.2, 0.5)  # Gaussian noise, in [-1, 1] image units, added to real test images


def _subset(n_total: int, n: int, seed: int) -> torch.Tensor:
    """The first `n` of a seeded permutation, in index order (all indices when n >= n_total)."""
    if n >= n_total:
        return torch.arange(n_total)
    return torch.randperm(n_total, generator=torch.Generator().manual_seed(seed))[:n].sort().values


def real_images(data: ImageData, indices: torch.Tensor) -> torch.Tensor:
    """uint8 images (n, C, H, W) of `data` at `indices`, from memory or decoded from disk."""
    if data.images is not None:
        return data.images[indices]
    return torch.stack([data.stream[int(i)] for i in indices])


def _unit(images: torch.Tensor) -> torch.Tensor:
    return images.float().div(127.5).sub(1)


def reference_features(
    data: ImageData,
    extractor: Extractor,
    num: int,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    batch_size: int = 500,
) -> torch.Tensor:
    """Features (n, F) of `num` real images chosen by `seed` (all of them when fewer).

    With `cache_dir`, they are stored there as safetensors under a key made of the
    data's fingerprint, the extractor's id, `num` and `seed`: a second call with
    the same data is a file read, and changed data gets a new key.
    """
    indices = _subset(len(data), num, seed)
    path = None
    if cache_dir is not None:
        key = hashlib.sha256(f"{data.fingerprint()}|{extractor.id}|{len(indices)}|{seed}".encode()).hexdigest()[:24]
        path = Path(cache_dir) / f"{extractor.name}-{key}.safetensors"
        if path.is_file():
            try:
                return safetensors_load(str(path))["features"]
            except Exception:
                pass  # a damaged cache entry is recomputed and replaced
    feats = []
    for chunk in indices.split(batch_size):
        feats.append(extractor.features(_unit(real_images(data, chunk)), batch_size))
    features = torch.cat(feats)
    if path is not None:
        mu = features.double().mean(0)
        meta = {"extractor": extractor.description, "data": data.name, "fingerprint": data.fingerprint(), "num": str(len(indices)), "seed": str(seed)}
        atomic_write_bytes(path, safetensors_save({"features": features.contiguous(), "mean": mu.float()}, metadata=meta))
    return features


def reference_mean_image(data: ImageData, num: int, seed: int = 0, batch_size: int = 500) -> torch.Tensor:
    """The mean image (C, H, W) in [-1, 1] of the same `num` real images `reference_features` uses."""
    total = None
    indices = _subset(len(data), num, seed)
    for chunk in indices.split(batch_size):
        part = _unit(real_images(data, chunk)).double().sum(0)
        total = part if total is None else total + part
    return (total / len(indices)).float()


def _real_reference(
    real: ImageData, extractor: Extractor, metrics: list[str], num_real: int, classifier: TrainedClassifier | None,
    cache_dir: str | Path | None, batch_size: int,
) -> tuple[bool, torch.Tensor, torch.Tensor | None]:
    """What `evaluate` and `sanity` compare against: (whether class probabilities are wanted, the real
    features, the real mean image when a metric needs it). Probability metrics need `classifier`."""
    want_probs = any(METRICS[m].needs == "probs" for m in metrics)
    if want_probs and classifier is None:
        raise ConfigError("metrics is, coverage and confidence need an evaluation classifier")
    features = reference_features(real, extractor, num_real, seed=0, cache_dir=cache_dir, batch_size=batch_size)
    wants_mean = any(METRICS[m].needs == "mean_image" for m in metrics)
    mean = reference_mean_image(real, num_real, seed=0, batch_size=batch_size) if wants_mean else None
    return want_probs, features, mean


def score(
    metrics: list[str],
    real_features: torch.Tensor,
    fake_features: torch.Tensor | None,
    fake_probs: torch.Tensor | None = None,
    classes: list[str] | None = None,
    real_mean: torch.Tensor | None = None,
    fake_mean: torch.Tensor | None = None,
) -> dict:
    """Run the named metrics: feature metrics compare real and fake features, probability metrics use
    fake_probs, mean-image metrics compare the two mean images (C, H, W)."""
    out: dict = {}
    for name in metrics:
        metric = METRICS[name]
        if metric.needs == "features":
            out.update(metric.compute(real_features, fake_features))
        elif metric.needs == "mean_image":
            if real_mean is None or fake_mean is None:
                raise ConfigError(f"metric {name!r} needs the mean images of both sets")
            out.update(metric.compute(real_mean, fake_mean))
        else:
            if fake_probs is None:
                raise ConfigError(f"metric {name!r} needs the evaluation classifier's probabilities")
            out.update(metric.compute(fake_probs, classes))
    return out


@dataclass
class EvalReport:
    """Scores of one or more subjects under one protocol."""

    protocol: dict  # extractor, real data and split, sample counts, seed, metric definitions
    rows: list[dict] = field(default_factory=list)  # {"subject": ..., metric values...}

    def to_dict(self) -> dict:
        return {"protocol": self.protocol, "results": self.rows}

    def table(self) -> str:
        """A plain-text table: one row per subject, one column per number (class shares left to the JSON)."""
        keys: list[str] = []
        for row in self.rows:
            for k, v in row.items():
                if k != "subject" and not isinstance(v, dict) and k not in keys:
                    keys.append(k)
        header = ["subject"] + keys
        lines = [[str(r["subject"])] + [_fmt(r.get(k)) for k in keys] for r in self.rows]
        widths = [max(len(h), *(len(l[i]) for l in lines)) for i, h in enumerate(header)]
        out = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths)))]
        out += ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(l, widths))) for l in lines]
        return "\n".join(out)

    def protocol_line(self) -> str:
        p = self.protocol
        return (
            f"protocol: features {p['features']} ({p['extractor']}); real: {p['real_data']} {p['real_split']} split, "
            f"{p['num_real']} images; generated: {p['num_generated']} samples, seed {p['seed']}"
        )


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return f"{v:.5f}" if abs(v) < 0.01 and v != 0 else f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}"
    return str(v)


def build_protocol(extractor: Extractor, real: ImageData, real_split: str, num_real: int, num_generated: int, seed: int, metrics: list[str]) -> dict:
    """The protocol every report states: extractor, real data and split, counts, seed, metric definitions."""
    return {
        "features": extractor.name,
        "extractor": extractor.description,
        "real_data": real.name,
        "real_split": real_split,
        "real_fingerprint": real.fingerprint(),
        "num_real": num_real,
        "num_generated": num_generated,
        "seed": seed,
        "metrics": {m: METRICS[m].description for m in metrics},
        "lower_is_better": {k: v for m in metrics for k, v in METRICS[m].lower_is_better.items()},
    }


class _Collector:
    """Features (and class probabilities) of image batches as they are produced."""

    def __init__(self, extractor: Extractor, classifier: TrainedClassifier | None, want_probs: bool):
        self.extractor, self.classifier, self.want_probs = extractor, classifier, want_probs
        self.feats: list[torch.Tensor] = []
        self.probs: list[torch.Tensor] = []
        self.image_sum: torch.Tensor | None = None  # (C, H, W) float64, for the mean image
        self.count = 0

    @property
    def mean_image(self) -> torch.Tensor:
        return (self.image_sum / max(self.count, 1)).float()

    def add(self, images: torch.Tensor) -> None:
        part = images.detach().sum(0, dtype=torch.float64).cpu()  # (C, H, W)
        self.image_sum = part if self.image_sum is None else self.image_sum + part
        self.count += images.shape[0]
        if self.want_probs and self.classifier is not None and self.extractor.classifier is self.classifier:
            f, p = self.extractor.features_and_probs(images)  # one pass for both
            self.feats.append(f)
            self.probs.append(p)
            return
        self.feats.append(self.extractor.features(images))
        if self.want_probs and self.classifier is not None:
            self.probs.append(self.classifier.run(images)[1])

    def result(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        return torch.cat(self.feats), (torch.cat(self.probs) if self.probs else None)


def evaluate(
    G: nn.Module | None,
    real: ImageData,
    extractor: Extractor,
    metrics: list[str],
    num_samples: int = 10_000,
    num_real: int | None = None,
    classifier: TrainedClassifier | None = None,
    seed: int = 0,
    test: ImageData | None = None,
    ladder: tuple[float, ...] = (),
    batch_size: int = 500,
    cache_dir: str | Path | None = None,
    real_split: str = "train",
) -> EvalReport:
    """Score `G`'s samples against real data under one stated protocol.

    `num_samples` generated images from z drawn with `seed`, against
    `num_real` (default: the same number) real images of `real`. Probability
    metrics (is, coverage, confidence) need `classifier`. With `test`, the report
    also scores real test images at the same count (the floor a perfect
    generator would reach), and each sigma in `ladder` scores those test images
    with Gaussian noise of that sigma added (clipped to [-1, 1]).
    """
    want_probs, real_feats, real_mean = _real_reference(real, extractor, metrics, num_real or num_samples, classifier,
                                                        cache_dir, batch_size)
    classes = list(classifier.config.classes) if classifier is not None else None
    report = EvalReport(build_protocol(extractor, real, real_split, int(real_feats.shape[0]), num_samples, seed, metrics))
    if G is not None:
        config = G.config
        z = sample_z(num_samples, config.z_dim, config.prior, torch.Generator().manual_seed(seed))
        collect = _Collector(extractor, classifier, want_probs)
        for chunk in z.split(batch_size):
            collect.add(generate(G, chunk, batch_size))
        feats, probs = collect.result()
        report.rows.append({"subject": "generator", "n": int(feats.shape[0]),
                            **score(metrics, real_feats, feats, probs, classes, real_mean, collect.mean_image)})
    if test is not None:
        idx = _subset(len(test), num_samples, seed=1)
        report.protocol["num_test"] = int(len(idx))
        for sigma in (0.0, *ladder):
            collect = _Collector(extractor, classifier, want_probs)
            noise_gen = torch.Generator().manual_seed(seed + 7)
            for chunk in idx.split(batch_size):
                x = _unit(real_images(test, chunk))
                if sigma > 0:
                    x = (x + sigma * torch.randn(x.shape, generator=noise_gen)).clamp_(-1, 1)
                collect.add(x)
            feats, probs = collect.result()
            subject = "real test (floor)" if sigma == 0 else f"test + noise {sigma:g}"
            report.rows.append({"subject": subject, "n": int(feats.shape[0]),
                                **score(metrics, real_feats, feats, probs, classes, real_mean, collect.mean_image)})
    return report


class TrackedMetric:
    """The metric logged during training: FID of `num_samples` samples from fixed noise against
    cached real features. Deterministic, and it draws nothing from the training RNG streams, so
    runs with and without it train identically."""

    name = "fid"

    def __init__(self, extractor: Extractor, real_features: torch.Tensor, num_samples: int, seed: int = 0):
        self.extractor = extractor
        self.real_features = real_features
        self.num_samples = num_samples
        self.seed = seed
        self.z: torch.Tensor | None = None

    def protocol(self) -> str:
        return f"{self.extractor.name} features, {self.num_samples} generated vs {self.real_features.shape[0]} real"

    def __call__(self, G: nn.Module) -> float:
        if self.z is None:
            c = G.config
            self.z = sample_z(self.num_samples, c.z_dim, c.prior, torch.Generator().manual_seed(self.seed))
        feats = torch.cat([self.extractor.features(generate(G, chunk)) for chunk in self.z.split(500)])
        return METRICS["fid"].compute(self.real_features, feats)["fid"]


def report_json(report: EvalReport) -> str:
    return json.dumps(report.to_dict(), indent=2) + "\n"
