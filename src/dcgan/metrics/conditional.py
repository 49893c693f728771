"""The class-conditional parts of evaluation: classes checked, real references per class, the conditional set-up.

For a class-conditional generator, the conditional scores (`conditional_accuracy`,
`intra_fid`) judge every sample against the class it was asked for: samples come in
balanced classes, real references are drawn per class (`class_reference_features`),
and the real test images of each class give intra-FID's floor. `evaluate` (in
`evaluate.py`) and the `--eval-every` monitor call what is here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from ..data import ImageData
from ..errors import ConfigError
from .classifier import TrainedClassifier
from .extractors import Extractor
from .reference import reference_features
from .scores import METRICS

__all__ = ["class_reference_features", "per_class_count", "check_classes"]


def class_reference_features(
    data: ImageData,
    extractor: Extractor,
    num_classes: int,
    num_per_class: int,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    batch_size: int = 500,
) -> list[torch.Tensor]:
    """Features of up to `num_per_class` real images of each class 0..num_classes-1: a list of
    (n_c, F), what intra-FID compares each class's samples with (cached as `reference_features`)."""

    if data.labels is None:
        raise ConfigError(f"intra-FID compares each class with its real images, and the data {data.name!r} has no class labels")
    return [reference_features(data, extractor, num_per_class, seed, cache_dir, batch_size, label=c) for c in range(num_classes)]


def per_class_count(num: int, num_classes: int) -> int:
    """Real images per class that stand beside `num` images of `num_classes` balanced classes."""
    return max(2, math.ceil(num / num_classes))


def class_names_or_numbers(names: tuple[str, ...] | list[str] | None, num_classes: int) -> list[str]:
    """The class names when there is one for each of `num_classes`, else the class numbers as names."""
    return [str(n) for n in names] if names and len(names) == num_classes else [str(i) for i in range(num_classes)]


def _shown(names: list[str]) -> str:
    return ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")


def check_classes(
    class_names: tuple[str, ...] | list[str] | None, num_classes: int, classifier: TrainedClassifier | None = None, real: ImageData | None = None
) -> None:
    """ConfigError, in one line, when the evaluation classifier's or the real data's classes are not the model's.

    Conditional accuracy reads "the sample of class c was recognised as c", which only means something
    when class c is the same class for the classifier and the generator; intra-FID needs the same of
    the real data's labels. Names are compared when both sides have them, counts always.
    """
    mine = class_names_or_numbers(class_names, num_classes)
    if classifier is not None:
        theirs_count = classifier.config.num_classes
        theirs = class_names_or_numbers(classifier.config.classes, theirs_count)
        if theirs_count != num_classes or (classifier.config.classes and class_names and theirs != mine):
            raise ConfigError(
                f"the evaluation classifier's {theirs_count} classes ({_shown(theirs)}) are not the model's {num_classes} "
                f"({_shown(mine)}): conditional accuracy needs a classifier trained on the model's classes "
                f"(--evaluator FILE, or dcgan evaluator train on the model's data)"
            )
    if real is not None:
        if real.labels is None:
            raise ConfigError(f"per-class scores need the real data's class labels, and {real.name!r} has none")
        real_names = [str(c) for c in real.classes] if real.classes else None
        top = int(real.labels.max()) + 1 if len(real.labels) else 0
        if (real_names is not None and class_names and real_names != mine) or top > num_classes:
            raise ConfigError(
                f"the real data's classes ({_shown(real_names or [str(i) for i in range(top)])}) are not the model's "
                f"{num_classes} ({_shown(mine)}): compare with the data the model was trained on (--data)"
            )


@dataclass
class _Conditional:
    """What the conditional metrics of one evaluation share: the classes and the real features per class."""

    num_classes: int
    class_names: list[str]
    metrics: list[str]
    real_by_class: list[torch.Tensor] | None  # (n_c, F) per class, when intra-FID is asked for

    @property
    def wants_probs(self) -> bool:
        return any(METRICS[m].needs_classifier for m in self.metrics)

    def score_args(self, labels: torch.Tensor | None) -> dict:
        return {"labels": labels, "real_by_class": self.real_by_class, "class_names": self.class_names}

    def protocol(self) -> dict:
        out: dict = {"classes": self.class_names, "generated_classes": "balanced: class i % K for sample i, every class equally often"}
        if self.real_by_class is not None:
            out["num_real_per_class"] = {n: int(f.shape[0]) for n, f in zip(self.class_names, self.real_by_class)}
            out["intra_fid_note"] = (
                "each class's FID uses that class's samples and real images alone: small sets, and FID "
                "reads higher at small counts, so read it against the floor's at the same counts"
            )
        return out


def conditional_setup(
    G, real: ImageData, extractor: Extractor, metrics: list[str], num_real: int, classifier: TrainedClassifier | None, cache_dir, batch_size: int
) -> _Conditional | None:
    """The classes the conditional metrics score, checked against the classifier and the real data; None without them."""
    cond = [m for m in metrics if METRICS[m].conditional]
    if not cond:
        return None
    if G is not None and not G.config.conditional:
        raise ConfigError(f"{', '.join(cond)} score a class-conditional generator, and this one is unconditional")
    if G is not None:
        num_classes, names = G.config.num_classes, G.config.class_names
    else:  # the floor alone: the real data's classes
        if real.labels is None:
            raise ConfigError(f"{', '.join(cond)} need class labels, and the data {real.name!r} has none")
        names = tuple(real.classes or ())
        num_classes = len(names) or int(real.labels.max()) + 1
    if any(METRICS[m].needs_classifier for m in cond):
        if classifier is None:
            raise ConfigError(f"{', '.join(m for m in cond if METRICS[m].needs_classifier)} needs an evaluation classifier")
        check_classes(names, num_classes, classifier=classifier)
    by_class = None
    if any(METRICS[m].needs_class_references for m in cond):
        check_classes(names, num_classes, real=real)
        by_class = class_reference_features(
            real, extractor, num_classes, per_class_count(num_real, num_classes), seed=0, cache_dir=cache_dir, batch_size=batch_size
        )
    return _Conditional(num_classes, class_names_or_numbers(names, num_classes), cond, by_class)
