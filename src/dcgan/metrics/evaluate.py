"""Evaluation protocols: which samples are compared with which real images, through which features.

`evaluate` scores a generator (and, on request, the real-vs-real floor and a
Gaussian-noise ladder) against reference features of real data;
`reference_features` computes those once and caches them on disk, keyed by the
data's content, the extractor and the sample count. `TrackedMetric` is the cheap
version that training calls every `--eval-every` iterations.

For a class-conditional generator, the conditional scores (`conditional_accuracy`,
`intra_fid`) judge every sample against the class it was asked for: samples come in
balanced classes, real references are drawn per class (`class_reference_features`),
and the real test images of each class give intra-FID's floor. Those class-conditional
parts live in `conditional.py`; their public names are importable from here too.

No function here writes anything but the reference cache (and only when a
`cache_dir` is given): reports are returned, and the CLI saves them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..data import ImageData, to_unit_range
from ..errors import ConfigError
from ..models import Generator
from ..sampling import balanced_labels, generate, sample_z
from .classifier import TrainedClassifier
from .conditional import (  # class_reference_features and per_class_count: re-exported, imported from here
    _Conditional,
    check_classes,
    class_names_or_numbers,
    class_reference_features,
    conditional_setup,
    per_class_count,
)
from .extractors import Extractor
from .reference import real_images, reference_features, reference_mean_image, subset
from .scores import METRICS, TRACKED_METRICS, Needs, tracked_metrics

__all__ = [
    "EvalReport",
    "evaluate",
    "reference_features",
    "class_reference_features",
    "check_classes",
    "score",
    "TrackedMetric",
    "TRACKED_METRICS",
    "LADDER_SIGMAS",
    "real_images",
    "build_protocol",
    "per_class_count",
]

LADDER_SIGMAS = (0.1, 0.2, 0.5)  # Gaussian noise, in [-1, 1] image units, added to real test images


def real_reference(
    real: ImageData,
    extractor: Extractor,
    metrics: list[str],
    num_real: int,
    classifier: TrainedClassifier | None,
    cache_dir: str | Path | None,
    batch_size: int,
) -> tuple[bool, torch.Tensor, torch.Tensor | None]:
    """What `evaluate` and `sanity` compare against: (whether class probabilities are wanted, the real
    features, the real mean image when a metric needs it). Probability metrics need `classifier`."""
    want_probs = any(METRICS[m].needs_classifier for m in metrics)
    if want_probs and classifier is None:
        names = ", ".join(m for m in metrics if METRICS[m].needs_classifier)
        raise ConfigError(f"metrics {names} need an evaluation classifier")
    features = reference_features(real, extractor, num_real, seed=0, cache_dir=cache_dir, batch_size=batch_size)
    wants_mean = any(METRICS[m].needs is Needs.MEAN_IMAGE for m in metrics)
    mean = reference_mean_image(real, num_real, seed=0, batch_size=batch_size) if wants_mean else None
    return want_probs, features, mean


def _class_count(metric: str, class_names: list[str] | None, real_by_class: list[torch.Tensor] | None, fake_probs: torch.Tensor | None) -> int:
    """How many classes a conditional metric scores: from the names, else the real classes, else the probabilities."""
    if class_names:
        return len(class_names)
    if real_by_class is not None:
        return len(real_by_class)
    if fake_probs is None:
        raise ConfigError(f"metric {metric!r} needs the classes: their names, the real features of each or the classifier's probabilities")
    return fake_probs.shape[1]


def score(
    metrics: list[str],
    real_features: torch.Tensor,
    fake_features: torch.Tensor | None,
    fake_probs: torch.Tensor | None = None,
    classes: list[str] | None = None,
    real_mean: torch.Tensor | None = None,
    fake_mean: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
    real_by_class: list[torch.Tensor] | None = None,
    class_names: list[str] | None = None,
) -> dict:
    """Run the named metrics: feature metrics compare real and fake features, probability metrics use
    fake_probs, mean-image metrics compare the two mean images (C, H, W).

    Conditional metrics also need `labels` (N,), the class each fake was asked for (intra-FID also the
    real features of each class, `real_by_class`); a subject without labels is left without them.
    With labels, the row also counts the subjects of each class (`class_counts`).
    """
    out: dict = {}
    for name in metrics:
        metric = METRICS[name]
        if metric.conditional:
            if labels is None:
                continue  # a subject whose classes are unknown (a degradation of mixed images)
            names = class_names_or_numbers(class_names, _class_count(name, class_names, real_by_class, fake_probs))
            out["class_counts"] = {n: int((labels == c).sum()) for c, n in enumerate(names)}
            if metric.needs is Needs.FEATURES:
                if real_by_class is None:
                    raise ConfigError(f"metric {name!r} needs the real features of every class")
                out.update(metric.compute(real_by_class, fake_features, labels, names))
            else:
                if fake_probs is None:
                    raise ConfigError(f"metric {name!r} needs the evaluation classifier's probabilities")
                out.update(metric.compute(fake_probs, labels, names))
        elif metric.needs is Needs.FEATURES:
            out.update(metric.compute(real_features, fake_features))
        elif metric.needs is Needs.MEAN_IMAGE:
            if real_mean is None or fake_mean is None:
                raise ConfigError(f"metric {name!r} needs the mean images of both sets")
            out.update(metric.compute(real_mean, fake_mean))
        else:
            if fake_probs is None:
                raise ConfigError(f"metric {name!r} needs the evaluation classifier's probabilities")
            out.update(metric.compute(fake_probs, classes))
    return out


def text_table(header: list[str], rows: list[list[str]]) -> str:
    """Rows of text cells as aligned columns: the first column left-aligned, the others right-aligned (numbers)."""
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))) for cells in [header, *rows])


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
        return text_table(["subject"] + keys, [[str(r["subject"])] + [_fmt(r.get(k)) for k in keys] for r in self.rows])

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


class FeatureCollector:
    """Features (and class probabilities) of image batches as they are produced."""

    def __init__(self, extractor: Extractor, classifier: TrainedClassifier | None, want_probs: bool):
        self.extractor, self.classifier, self.want_probs = extractor, classifier, want_probs
        self.feats: list[torch.Tensor] = []
        self.probs: list[torch.Tensor] = []
        self.image_sum: torch.Tensor | None = None  # (C, H, W) float64, for the mean image
        self.count = 0

    @property
    def mean_image(self) -> torch.Tensor:
        assert self.image_sum is not None, "the mean image of no images"
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
    G: Generator | None,
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
    test_metrics: list[str] | None = None,
) -> EvalReport:
    """Score `G`'s samples against real data under one stated protocol.

    `num_samples` generated images from z drawn with `seed`, against
    `num_real` (default: the same number) real images of `real`. Probability
    metrics (is, coverage, confidence) need `classifier`. With `test`, the report
    also scores real test images at the same count (the floor a perfect
    generator would reach), and each sigma in `ladder` scores those test images
    with Gaussian noise of that sigma added (clipped to [-1, 1]).

    Conditional metrics (conditional_accuracy, intra_fid) need a class-conditional
    `G` (or, without one, labelled `test` images: their floor alone). The samples
    then come in balanced classes, each real class gives up to
    ceil(num_real / K) reference images, and test rows are scored per class by
    their true labels; the protocol states the per-class counts. `test_metrics`
    (default: `metrics`) are the ones the test rows get, e.g. the conditional
    ones alone for the per-class floor.
    """
    num_real = num_real or num_samples
    cond = conditional_setup(G, real, extractor, metrics, num_real, classifier, cache_dir, batch_size)
    plain = [m for m in metrics if not METRICS[m].conditional]
    want_probs, real_feats, real_mean = real_reference(real, extractor, plain, num_real, classifier, cache_dir, batch_size)
    want_probs = want_probs or (cond is not None and cond.wants_probs)
    classes = list(classifier.config.classes) if classifier is not None else None
    report = EvalReport(build_protocol(extractor, real, real_split, int(real_feats.shape[0]), num_samples, seed, metrics))
    if cond is not None:
        report.protocol.update(cond.protocol())
    scoring = _Scoring(extractor, classifier, want_probs, real_feats, real_mean, classes, cond, batch_size)
    if G is not None:
        report.rows.append(_generator_row(scoring, G, num_samples, seed, metrics))
    if test is not None:
        _add_test_rows(report, scoring, test, num_samples, seed, ladder, metrics if test_metrics is None else test_metrics)
    return report


@dataclass
class _Scoring:
    """What every row of one `evaluate` report is scored with: the features (and class probabilities when
    wanted), the real reference they are compared with, and the conditional setup (None without one)."""

    extractor: Extractor
    classifier: TrainedClassifier | None
    want_probs: bool
    real_feats: torch.Tensor
    real_mean: torch.Tensor | None
    classes: list[str] | None  # the classifier's classes
    cond: _Conditional | None
    batch_size: int

    def collector(self) -> FeatureCollector:
        """An empty collector for one row's images."""
        return FeatureCollector(self.extractor, self.classifier, self.want_probs)

    def row(self, subject: str, collect: FeatureCollector, labels: torch.Tensor | None, names: list[str]) -> dict:
        """The row of `subject`: its image count and the metrics `names` of what `collect` gathered."""
        feats, probs = collect.result()
        extra = self.cond.score_args(labels) if self.cond is not None else {}
        return {
            "subject": subject,
            "n": int(feats.shape[0]),
            **score(names, self.real_feats, feats, probs, self.classes, self.real_mean, collect.mean_image, **extra),
        }


def _generator_row(scoring: _Scoring, G: Generator, num_samples: int, seed: int, metrics: list[str]) -> dict:
    """The generator's row: `num_samples` samples from z drawn with `seed`, scored by the metrics `metrics`."""
    config = G.config
    z = sample_z(num_samples, config.z_dim, config.prior, torch.Generator().manual_seed(seed))
    labels = balanced_labels(num_samples, config.num_classes)  # a conditional G: every class equally often
    collect = scoring.collector()
    for chunk, chunk_labels in _chunks(z, labels, scoring.batch_size):
        collect.add(generate(G, chunk, chunk_labels, batch_size=scoring.batch_size))
    return scoring.row("generator", collect, labels, metrics)


def _add_test_rows(
    report: EvalReport, scoring: _Scoring, test: ImageData, num_samples: int, seed: int, ladder: tuple[float, ...], names: list[str]
) -> None:
    """The floor's row (up to `num_samples` real test images, chosen with seed 1, scored by their true labels) and a
    row per sigma of `ladder` (those images plus Gaussian noise of that sigma drawn with `seed` + 7, clipped to [-1, 1])."""
    idx = subset(len(test), num_samples, seed=1)
    test_labels = test.labels[idx] if test.labels is not None else None  # (n,) the classes the floor is scored by
    if scoring.cond is not None and test_labels is not None:
        check_classes(scoring.cond.class_names, scoring.cond.num_classes, real=test)
    report.protocol["num_test"] = int(len(idx))
    for sigma in (0.0, *ladder):
        collect = scoring.collector()
        noise_gen = torch.Generator().manual_seed(seed + 7)
        for chunk in idx.split(scoring.batch_size):
            x = to_unit_range(real_images(test, chunk))
            if sigma > 0:
                x = (x + sigma * torch.randn(x.shape, generator=noise_gen)).clamp_(-1, 1)
            collect.add(x)
        subject = "real test (floor)" if sigma == 0 else f"test + noise {sigma:g}"
        report.rows.append(scoring.row(subject, collect, test_labels, names))


def _chunks(z: torch.Tensor, labels: torch.Tensor | None, size: int):
    """(z, labels) in chunks of `size`; labels None (an unconditional G) stays None."""
    return zip(z.split(size), labels.split(size) if labels is not None else [None] * math.ceil(len(z) / size))


class TrackedMetric:
    """The metric logged during training: `metric` (FID by default) of `num_samples` samples from fixed
    noise against cached real features. Deterministic, and it draws nothing from the training RNG
    streams, so runs with and without it train identically.

    `metric` is a tracked one of METRICS (TRACKED_METRICS), and what it takes comes from its entry. For a class-conditional
    G the samples come in balanced classes. A metric that needs the real features of every class (`intra_fid`)
    takes `real_by_class` (see `class_reference_features`), one that needs the evaluation classifier
    (`conditional_accuracy`) a `classifier` whose classes are G's; the conditional ones also report the
    overall FID, so every evaluation record has one.
    """

    def __init__(
        self,
        extractor: Extractor,
        real_features: torch.Tensor,
        num_samples: int,
        seed: int = 0,
        metric: str = "fid",
        classifier: TrainedClassifier | None = None,
        real_by_class: list[torch.Tensor] | None = None,
        class_names: list[str] | tuple[str, ...] = (),
    ):
        if metric not in tracked_metrics():
            raise ConfigError(f"unknown tracked metric {metric!r}: use {', '.join(tracked_metrics())}")
        spec = METRICS[metric]
        if spec.needs_classifier and classifier is None:
            raise ConfigError(f"tracking {metric} needs the evaluation classifier")
        if spec.needs_class_references:
            if real_by_class is None:
                raise ConfigError(f"tracking {metric} needs the real features of every class")
            if num_samples < 2 * len(real_by_class):
                raise ConfigError(
                    f"{spec.label} needs at least 2 samples per class: {num_samples} samples for "
                    f"{len(real_by_class)} classes (--eval-samples {2 * len(real_by_class)} or more)"
                )
        self.spec = spec  # the METRICS entry
        self.extractor = extractor
        self.real_features = real_features
        self.num_samples = num_samples
        self.seed = seed
        self.name = metric  # the key its value has in metrics.jsonl and in the best record
        self.classifier = classifier
        self.real_by_class = real_by_class
        self.class_names = list(class_names)
        self.z: torch.Tensor | None = None

    @property
    def lower_is_better(self) -> bool:
        return not self.spec.higher_is_better

    def protocol(self) -> str:
        text = f"{self.extractor.name} features, {self.num_samples} generated vs {self.real_features.shape[0]} real"
        if self.real_by_class is not None:
            counts = sorted({int(f.shape[0]) for f in self.real_by_class})
            k = len(self.real_by_class)
            real = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
            text += f"; {self.spec.label} per class: about {self.num_samples // k} generated vs {real} real"
        if self.spec.needs_classifier:
            assert self.classifier is not None  # checked when tracking began
            text += f"; accuracy by the evaluation classifier {self.classifier.weights_id()[:8]}"
        return text

    def figures(self, G: Generator) -> dict:
        """{"fid": ...} and, when another metric is tracked, its figure (a conditional one with its per-class
        values): every evaluation record has the overall FID."""
        c = G.config
        if self.z is None:
            self.z = sample_z(self.num_samples, c.z_dim, c.prior, torch.Generator().manual_seed(self.seed))
        labels = balanced_labels(self.num_samples, c.num_classes)
        if not self.spec.conditional:  # the samples' features against the real ones (`Metric` checks it needs them)
            feats = torch.cat([self.extractor.features(generate(G, chunk, chunk_labels)) for chunk, chunk_labels in _chunks(self.z, labels, 500)])
            return {key: METRICS[key].compute(self.real_features, feats)[key] for key in dict.fromkeys(("fid", self.name))}
        if labels is None:
            raise ConfigError(f"{self.name} scores a class-conditional generator, and this one is unconditional")
        collect = FeatureCollector(self.extractor, self.classifier, self.classifier is not None)
        for chunk, chunk_labels in _chunks(self.z, labels, 500):
            collect.add(generate(G, chunk, chunk_labels))
        feats, probs = collect.result()
        names = class_names_or_numbers(self.class_names, c.num_classes)
        out = score(["fid", self.name], self.real_features, feats, probs, labels=labels, real_by_class=self.real_by_class, class_names=names)
        out.pop("class_counts", None)  # balanced: stated by the protocol
        return out

    def __call__(self, G: Generator) -> float:
        return self.figures(G)[self.name]


def report_json(report: EvalReport) -> str:
    return json.dumps(report.to_dict(), indent=2) + "\n"
