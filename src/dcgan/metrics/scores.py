"""The sample-quality scores by name: the METRICS registry over the pure score functions of `measures.py`
(re-exported here, so `from dcgan.metrics.scores import fid_from_features` works as before).

The scores are looked up by name in METRICS (as in stylegan2-ada's
`metric_main.py`); each entry says what it is computed from (`Needs`: features,
class probabilities or mean images), which numbers it reports and which way is
better, and whether `--eval-every` may track it (`tracked`, `TRACKED_METRICS`).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import ConfigError
from .measures import (
    COPY_RATIO,
    GRID_PERIODS,
    class_coverage,
    conditional_accuracy,
    density_coverage,
    feature_stats,
    fid_from_features,
    frechet_distance,
    grid_pattern,
    inception_score,
    intra_fid,
    kid_from_features,
    mean_confidence,
    memorisation,
    precision_recall,
)

__all__ = [
    "Metric",
    "Needs",
    "METRICS",
    "TRACKED_METRICS",
    "tracked_metrics",
    "register_metric",
    "feature_stats",
    "frechet_distance",
    "fid_from_features",
    "kid_from_features",
    "precision_recall",
    "density_coverage",
    "memorisation",
    "inception_score",
    "class_coverage",
    "mean_confidence",
    "conditional_accuracy",
    "intra_fid",
    "grid_pattern",
    "GRID_PERIODS",
    "parse_metrics",
]


# --------------------------------------------------------------------------- #
# The registry
# --------------------------------------------------------------------------- #
class Needs(str, enum.Enum):
    """What a metric is computed from. A str, so reports and JSON keep the plain names ("features")."""

    FEATURES = "features"  # real and fake features (N, F)
    PROBS = "probs"  # the evaluation classifier's class probabilities of the fakes (N, K)
    MEAN_IMAGE = "mean_image"  # the real and the fake mean image (C, H, W)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Metric:
    """A named score. `needs` says what it is computed from (a `Needs`; its plain name is accepted too).
    A `conditional` score judges each sample against the class it was asked for, so it also takes the
    labels: features as (real features per class, fake, labels, classes), probs as (probs, labels, classes).

    A `tracked` score may be what `--eval-every` follows and keeps the best checkpoint of (`--eval-metric`,
    `TRACKED_METRICS`): it reports a figure under its own name, which `label` names in words ("intra-FID")
    and `percent` shows as a percentage. What tracking it takes follows from `needs` and `conditional`:
    the evaluation classifier (`needs_classifier`), the real features of every class (`needs_class_references`)."""

    name: str
    needs: Needs
    compute: Callable[..., dict]  # features and mean_image: (real, fake) -> dict; probs: (probs, classes) -> dict
    lower_is_better: dict[str, bool]  # each reported key -> True if smaller is better
    description: str
    conditional: bool = False  # needs the requested class of every sample (a class-conditional generator)
    tracked: bool = False  # --eval-every may track it
    label: str = ""  # its own figure in words; the name when empty
    percent: bool = False  # its own figure is a share, shown as a percentage

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "needs", Needs(self.needs))
        except ValueError:
            raise ConfigError(f"metric {self.name!r} needs {self.needs!r}: use {', '.join(n.value for n in Needs)}") from None
        object.__setattr__(self, "label", self.label or self.name)
        if self.tracked and self.name not in self.lower_is_better:
            raise ConfigError(f"tracked metric {self.name!r} must report a figure under its own name")
        if self.tracked and not self.conditional and self.needs is not Needs.FEATURES:
            raise ConfigError(f"tracked metric {self.name!r}: an unconditional tracked metric compares features")

    @property
    def higher_is_better(self) -> bool:
        """Whether a larger value of its own figure (the one named as the metric) is better."""
        return not self.lower_is_better[self.name]

    @property
    def needs_classifier(self) -> bool:
        """Whether it takes the evaluation classifier's class probabilities."""
        return self.needs is Needs.PROBS

    @property
    def needs_class_references(self) -> bool:
        """Whether it takes the real features of every class (intra-FID)."""
        return self.conditional and self.needs is Needs.FEATURES

    def show(self, value: float) -> str:
        """Its own figure in words: "FID 12.345", "conditional accuracy 93.1%"."""
        return f"{self.label} {100 * value:.1f}%" if self.percent else f"{self.label} {value:.3f}"


METRICS: dict[str, Metric] = {}


def register_metric(
    name: str,
    needs: Needs | str,
    lower_is_better: dict[str, bool],
    description: str,
    conditional: bool = False,
    *,
    tracked: bool = False,
    label: str = "",
    percent: bool = False,
):
    """Decorator adding a score function to METRICS under `name` (see `Metric` for the fields)."""

    def wrap(fn):
        METRICS[name] = Metric(name, needs, fn, lower_is_better, description, conditional, tracked, label, percent)
        return fn

    return wrap


@register_metric("fid", Needs.FEATURES, {"fid": True}, "Fréchet distance of feature means and covariances", tracked=True, label="FID")
def _fid(real, fake):
    return {"fid": fid_from_features(real, fake)}


@register_metric("kid", Needs.FEATURES, {"kid": True, "kid_std": True}, "kernel distance (unbiased MMD^2, cubic kernel), 100 subsets of 1000")
def _kid(real, fake):
    mean, std = kid_from_features(real, fake)
    return {"kid": mean, "kid_std": std}


@register_metric("pr", Needs.FEATURES, {"precision": False, "recall": False}, "improved precision (fidelity) and recall (diversity), k=5")
def _pr(real, fake):
    return precision_recall(real, fake)


@register_metric("dc", Needs.FEATURES, {"density": False, "coverage": False}, "density and coverage of the real k-NN balls, k=5")
def _dc(real, fake):
    return density_coverage(real, fake)


@register_metric(
    "memorisation",
    Needs.FEATURES,
    {"copies": True},
    f"share of samples nearer to a real reference image than {COPY_RATIO:g} x its distance to its own nearest neighbour",
)
def _memorisation(real, fake):
    return memorisation(real, fake)


@register_metric(
    "grid",
    Needs.MEAN_IMAGE,
    {"grid": True},
    "grey levels of the fixed pattern at periods 2 and 4 px in the mean sample (transposed-convolution dots)",
)
def _grid(real_mean, fake_mean):
    return {"grid": grid_pattern(real_mean, fake_mean)}


@register_metric("is", Needs.PROBS, {"is": False, "is_std": False}, "classifier Inception Score over 10 splits (max = number of classes)")
def _is(probs, classes):
    mean, std = inception_score(probs)
    return {"is": mean, "is_std": std}


@register_metric(
    "coverage", Needs.PROBS, {"class_entropy": False, "classes_covered": False}, "share of each class among samples and its normalised entropy"
)
def _coverage(probs, classes):
    return class_coverage(probs, classes)


@register_metric("confidence", Needs.PROBS, {"confidence": False}, "mean top-class probability of the classifier")
def _confidence(probs, classes):
    return {"confidence": mean_confidence(probs)}


@register_metric(
    "conditional_accuracy",
    Needs.PROBS,
    {"conditional_accuracy": False},
    "share of samples the evaluation classifier recognises as the class they were asked for",
    conditional=True,
    tracked=True,
    label="conditional accuracy",
    percent=True,
)
def _conditional_accuracy(probs, labels, classes):
    return conditional_accuracy(probs, labels, classes)


@register_metric(
    "intra_fid",
    Needs.FEATURES,
    {"intra_fid": True},
    "FID of each class's samples against real images of that class, averaged over the classes",
    conditional=True,
    tracked=True,
    label="intra-FID",
)
def _intra_fid(real_by_class, fake, labels, classes):
    return intra_fid(real_by_class, fake, labels, classes)


def tracked_metrics() -> tuple[str, ...]:
    """The names of the metrics --eval-every may track, in registry order (those registered so far)."""
    return tuple(name for name, m in METRICS.items() if m.tracked)


TRACKED_METRICS = tracked_metrics()  # the built-in ones: the choices of --eval-metric


def parse_metrics(text: str) -> list[str]:
    """'fid,kid' -> ['fid', 'kid'], 'all' -> every metric; unknown names raise ConfigError."""
    names = list(METRICS) if text.strip() == "all" else [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in METRICS]
    if unknown or not names:
        raise ConfigError(f"unknown metric(s) {', '.join(unknown) or repr(text)}: use {', '.join(METRICS)} or all")
    return list(dict.fromkeys(names))
