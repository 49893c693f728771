"""The metric sanity suite: known degradations of real held-out images, scored like a generator.

A score alone says little: is FID 3 good? The suite answers with a ladder of
subjects whose defects are known, each made from real images and scored
against the same real reference, through the same features, at the same
count as a generator would be:

- the floor: real held-out (test) images, what a perfect generator scores;
- Gaussian noise of several sigmas, blur of two strengths, faint bright dots
  on a regular grid (the transposed-convolution artifact), a 2-pixel shift;
- a dropped class, and a duplicated class (one twice as often, another
  missing half), from the labels;
- a memorised subset: copies of reference images, which FID scores at or
  below the floor and only the nearest-neighbour view (`memorisation`) flags.

Each entry of DEGRADATIONS builds its images from `SanityInputs`; `sanity`
scores them all and returns an `EvalReport` whose rows also hold FID as a
multiple of the floor's. Nothing here writes files (the reference features
are cached only when a `cache_dir` is given, as in `evaluate`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..data import ImageData, to_unit_range
from ..errors import ConfigError
from .classifier import TrainedClassifier
from .evaluate import EvalReport, FeatureCollector, build_protocol, real_reference, score
from .extractors import Extractor
from .reference import real_images, subset
from .scores import METRICS

__all__ = ["SanityInputs", "Degradation", "DEGRADATIONS", "register_degradation", "sanity", "floor_ratio", "SANITY_METRICS", "FLOOR_SUBJECT"]

SANITY_METRICS = ("fid", "pr", "memorisation", "grid")  # the library default: FID, fidelity/diversity, copies, dots
FLOOR_SUBJECT = "real test (floor)"  # the same row name as `evaluate`'s floor
DOT_AMPLITUDE = 0.2  # in [-1, 1] units: +25 grey levels on black, faint but visible when zoomed in
SHIFT_PIXELS = 2


@dataclass(frozen=True)
class SanityInputs:
    """What a degradation may use: the held-out images (and their labels), the real reference, and a seed."""

    test: ImageData  # the held-out split, whole: class degradations choose from all of it
    floor_indices: torch.Tensor  # the n test images of the floor, as `evaluate` chooses them
    reference: ImageData  # the data the reference features come from (the training split)
    reference_indices: torch.Tensor  # the images of `reference` in the reference features
    seed: int

    @property
    def n(self) -> int:
        return len(self.floor_indices)

    def floor(self) -> torch.Tensor:
        """The floor's images, float in [-1, 1]."""
        return to_unit_range(real_images(self.test, self.floor_indices))

    def generator(self, offset: int) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 1000 + offset)

    def class_name(self, label: int) -> str:
        classes = self.test.classes or []
        return str(classes[label]) if label < len(classes) else str(label)


@dataclass(frozen=True)
class Degradation:
    """A known defect: `make` turns SanityInputs into float images in [-1, 1] (about n of them)."""

    name: str  # registry key
    make: Callable[[SanityInputs], torch.Tensor]
    subject: Callable[[SanityInputs], str]  # its row in the table
    description: str
    needs_labels: bool = False


DEGRADATIONS: dict[str, Degradation] = {}


def register_degradation(name: str, description: str, subject: str | Callable[[SanityInputs], str] | None = None, needs_labels: bool = False):
    """Decorator adding an image maker to DEGRADATIONS under `name`."""

    def wrap(fn):
        label = subject if callable(subject) else (lambda _inputs, text=subject or name: text)
        DEGRADATIONS[name] = Degradation(name, fn, label, description, needs_labels)
        return fn

    return wrap


# --------------------------------------------------------------------------- #
# Image operations
# --------------------------------------------------------------------------- #
def gaussian_noise(x: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    return (x + sigma * torch.randn(x.shape, generator=generator)).clamp_(-1, 1)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of `sigma` pixels, edges replicated (no dark border)."""
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-t.square() / (2 * sigma**2))
    kernel /= kernel.sum()
    c = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def grid_dots(x: torch.Tensor, stride: int, amplitude: float = DOT_AMPLITUDE) -> torch.Tensor:
    """Brighten every stride-th pixel of every stride-th row: on a dark background, a regular grid of
    faint dots, the pattern uneven overlaps of stride-2 transposed convolutions leave."""
    out = x.clone()
    out[..., ::stride, ::stride] += amplitude
    return out.clamp_(-1, 1)


def shift(x: torch.Tensor, pixels: int) -> torch.Tensor:
    """Move the content `pixels` right and `pixels` down, repeating the edge rows and columns into the gap."""
    return F.pad(x, (pixels, 0, pixels, 0), mode="replicate")[..., : x.shape[-2], : x.shape[-1]]


def _choose(pool: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k indices from `pool`, without repeats while the pool lasts, then drawn again from it."""
    picked = pool[torch.randperm(len(pool), generator=generator)[:k]]
    if k > len(pool):  # a class with too few images: the extra ones repeat (stated in the description)
        picked = torch.cat([picked, pool[torch.randint(len(pool), (k - len(pool),), generator=generator)]])
    return picked


def _class_mix(inputs: SanityInputs, weights: dict[int, float], offset: int) -> torch.Tensor:
    """n test images whose classes come in proportion to `weights` (1 for classes not named)."""
    labels = inputs.test.labels
    present = torch.unique(labels).tolist()
    w = torch.tensor([weights.get(c, 1.0) for c in present], dtype=torch.float64)
    counts = (inputs.n * w / w.sum()).round().long()
    g = inputs.generator(offset)
    chosen = [_choose((labels == c).nonzero().squeeze(1), int(k), g) for c, k in zip(present, counts) if k > 0]
    indices = torch.cat(chosen).sort().values
    return to_unit_range(real_images(inputs.test, indices))


def _classes(inputs: SanityInputs) -> list[int]:
    return torch.unique(inputs.test.labels).tolist()


# --------------------------------------------------------------------------- #
# The registry (the order is the table's)
# --------------------------------------------------------------------------- #
for _i, _sigma in enumerate((0.1, 0.2, 0.5)):
    register_degradation(f"noise-{_sigma:g}", f"Gaussian noise of sigma {_sigma:g} ([-1, 1] units), clipped", f"test + noise {_sigma:g}")(
        lambda inputs, sigma=_sigma, offset=_i: gaussian_noise(inputs.floor(), sigma, inputs.generator(offset))
    )
for _sigma in (0.5, 1.0):
    register_degradation(f"blur-{_sigma:g}", f"Gaussian blur of sigma {_sigma:g} pixels", f"test, blur {_sigma:g} px")(
        lambda inputs, sigma=_sigma: gaussian_blur(inputs.floor(), sigma)
    )
for _stride in (2, 4):
    register_degradation(
        f"dots-{_stride}",
        f"+{DOT_AMPLITUDE:g} on every {_stride}th pixel of every {_stride}th row, clipped: faint dots on the background",
        f"test, dots stride {_stride}",
    )(lambda inputs, stride=_stride: grid_dots(inputs.floor(), stride))
register_degradation("shift", f"content moved {SHIFT_PIXELS} pixels right and {SHIFT_PIXELS} down", f"test, shifted {SHIFT_PIXELS} px")(
    lambda inputs: shift(inputs.floor(), SHIFT_PIXELS)
)


@register_degradation(
    "drop-class",
    "test images without the first class (as many images, the others' share grows)",
    lambda inputs: f"test, class {inputs.class_name(_classes(inputs)[0])} dropped",
    needs_labels=True,
)
def _drop_class(inputs: SanityInputs) -> torch.Tensor:
    return _class_mix(inputs, {_classes(inputs)[0]: 0.0}, offset=10)


@register_degradation(
    "duplicate-class",
    "the second class twice as often, the third at half its share (images repeat only where a class runs out)",
    lambda inputs: f"test, class {inputs.class_name(_classes(inputs)[1])} x2, {inputs.class_name(_classes(inputs)[2])} x0.5",
    needs_labels=True,
)
def _duplicate_class(inputs: SanityInputs) -> torch.Tensor:
    classes = _classes(inputs)
    if len(classes) < 3:
        raise ConfigError("the duplicated-class degradation needs at least 3 classes")
    return _class_mix(inputs, {classes[1]: 2.0, classes[2]: 0.5}, offset=11)


@register_degradation(
    "memorised", "copies of n of the reference's own training images (a generator that memorised them)", "memorised: reference copies"
)
def _memorised(inputs: SanityInputs) -> torch.Tensor:
    ref = inputs.reference_indices
    chosen = ref[subset(len(ref), inputs.n, inputs.seed + 12)]
    return to_unit_range(real_images(inputs.reference, chosen))


# --------------------------------------------------------------------------- #
# The suite
# --------------------------------------------------------------------------- #
def floor_ratio(rows: list[dict], key: str = "fid") -> None:
    """Add `fid_x_floor` (FID over the floor's FID) to every row that has FID, in place."""
    floor = next((r.get(key) for r in rows if r.get("subject") == FLOOR_SUBJECT), None)
    for row in rows:
        if floor and isinstance(row.get(key), float):
            row[f"{key}_x_floor"] = row[key] / floor


def sanity(
    real: ImageData,
    test: ImageData,
    extractor: Extractor,
    metrics: Sequence[str] = SANITY_METRICS,
    num: int = 2000,
    num_real: int | None = None,
    classifier: TrainedClassifier | None = None,
    seed: int = 0,
    names: Sequence[str] | None = None,
    batch_size: int = 500,
    cache_dir=None,
    real_split: str = "train",
) -> EvalReport:
    """Score the floor and each degradation in `names` (default: all of DEGRADATIONS) against `real`.

    `num` held-out images of `test` per subject (the floor's are the ones `evaluate` uses) against
    `num_real` (default: the same number) reference images of `real`, chosen as `evaluate` chooses
    them, so the ladder reads directly against a generator's report. Class degradations need labels;
    without them they are left out and listed in the protocol's `skipped`. Probability metrics need
    `classifier`. Each row also gets `fid_x_floor` when FID is among the metrics.
    """
    metrics = list(metrics)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ConfigError(f"unknown metric(s) {', '.join(unknown)}: use {', '.join(METRICS)}")
    names = list(DEGRADATIONS) if names is None else list(names)
    missing = [n for n in names if n not in DEGRADATIONS]
    if missing:
        raise ConfigError(f"unknown degradation(s) {', '.join(missing)}: use {', '.join(DEGRADATIONS)}")
    num_real = num_real or num
    want_probs, real_feats, real_mean = real_reference(real, extractor, metrics, num_real, classifier, cache_dir, batch_size)
    inputs = SanityInputs(test, subset(len(test), num, seed=1), real, subset(len(real), num_real, seed=0), seed)
    skipped = {}
    if test.labels is None:
        skipped = {n: "needs labels" for n in names if DEGRADATIONS[n].needs_labels}
        names = [n for n in names if n not in skipped]
    classes = list(classifier.config.classes) if classifier is not None else None
    report = EvalReport(build_protocol(extractor, real, real_split, int(real_feats.shape[0]), inputs.n, seed, metrics))
    report.protocol["num_test"] = inputs.n
    report.protocol["sanity"] = {n: DEGRADATIONS[n].description for n in names}
    if skipped:
        report.protocol["skipped"] = skipped
    subjects = [(FLOOR_SUBJECT, inputs.floor)] + [(DEGRADATIONS[n].subject(inputs), lambda n=n: DEGRADATIONS[n].make(inputs)) for n in names]
    for subject, make in subjects:
        images = make()
        collect = FeatureCollector(extractor, classifier, want_probs)
        for chunk in images.split(batch_size):
            collect.add(chunk)
        feats, probs = collect.result()
        report.rows.append(
            {"subject": subject, "n": int(feats.shape[0]), **score(metrics, real_feats, feats, probs, classes, real_mean, collect.mean_image)}
        )
    floor_ratio(report.rows)
    return report
