"""The discriminator as a feature extractor, Radford et al. (2015), section 5.1.

The paper measures the quality of D's representation by using it, frozen, as a
feature extractor for a linear classifier: every hidden layer's feature maps
are max-pooled to a 4x4 spatial grid, flattened and concatenated, and an L2-SVM
is trained on a few labelled examples per class. Here the same protocol runs
against two baselines on the same labels: raw pixels, and a randomly
initialised D of the same architecture (the features that the architecture alone
provides, before any GAN training).

Pure functions: features and reports are returned, never written; the CLI saves.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from ..data import ImageData, unit_batches
from ..errors import ConfigError, DataError
from ..models import Discriminator, ModelConfig, build_discriminator, evaluating
from ..sampling import with_real_statistics

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline  # sklearn is optional (the probe extra) and imported where it is used

__all__ = [
    "discriminator_features",
    "feature_dim",
    "pixel_features",
    "labelled_subset",
    "SVMResult",
    "fit_linear_svm",
    "ProbeRow",
    "ProbeReport",
    "run_probe",
    "BASELINES",
    "DEFAULT_CS",
]

BASELINES = ("pixels", "random_d")
DEFAULT_CS = (0.001, 0.01, 0.1, 1.0, 10.0)


# --------------------------------------------------------------------------- #
# Features
# --------------------------------------------------------------------------- #
def feature_dim(model_config: ModelConfig, grid: int = 4) -> int:
    """Length of `discriminator_features` for a D built from `model_config`: sum of hidden widths x grid^2."""
    return sum(model_config.hidden_widths()) * grid * grid


def _check_images(images: torch.Tensor, config: ModelConfig | None = None) -> None:
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise DataError(f"images must be a (N, C, H, W) tensor, got {getattr(images, 'shape', type(images).__name__)}")
    if images.dtype != torch.uint8:
        raise DataError(f"images must be uint8 (0..255), got {images.dtype}")
    if config is not None:
        expected = (config.channels, config.image_size, config.image_size)
        if tuple(images.shape[1:]) != expected:
            raise ConfigError(
                f"images of shape {tuple(images.shape[1:])} do not fit a discriminator for "
                f"{config.image_size}x{config.image_size}x{config.channels} images"
            )


def discriminator_features(D: Discriminator, images_uint8: torch.Tensor, grid: int = 4, batch_size: int = 256) -> torch.Tensor:
    """Section 5.1 features: every hidden block's maps max-pooled to grid x grid, flattened, concatenated.

    images_uint8: (N, C, H, W) uint8. Returns (N, feature_dim(D.config, grid)) float32 on the CPU.
    D runs in eval mode (batch norm uses its running statistics) without gradients;
    its previous mode is restored afterwards.
    """
    if not isinstance(grid, int) or grid < 1:
        raise ConfigError(f"grid must be a positive integer, got {grid!r}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be positive, got {batch_size}")
    _check_images(images_uint8, D.config)
    device = next(D.parameters()).device
    out: list[torch.Tensor] = []
    with evaluating(D):
        for x in unit_batches(images_uint8, batch_size, device):  # (B, C, H, W) in [-1, 1]
            pooled = [
                # (B, c_l, h_l, w_l) -> (B, c_l, grid, grid) -> (B, c_l * grid * grid)
                F.adaptive_max_pool2d(h, grid).flatten(1)
                for h in D.features(x)
            ]
            out.append(torch.cat(pooled, dim=1).float().cpu())  # (B, sum_l c_l * grid^2)
    if not out:
        return torch.zeros(0, feature_dim(D.config, grid))
    return torch.cat(out)


def pixel_features(images_uint8: torch.Tensor) -> torch.Tensor:
    """The baseline: pixels flattened and scaled to [0, 1]. (N, C, H, W) uint8 -> (N, C*H*W) float32."""
    _check_images(images_uint8)
    return images_uint8.reshape(images_uint8.shape[0], -1).float().div_(255.0)


def labelled_subset(labels: torch.Tensor, per_class: int, seed: int = 0) -> torch.Tensor:
    """Indices (sorted, int64) of `per_class` examples of every class present in `labels`, chosen by `seed`."""
    if labels is None:
        raise DataError("the dataset has no labels; the probe needs a labelled dataset")
    if not isinstance(per_class, int) or per_class < 1:
        raise ConfigError(f"labels per class must be a positive integer, got {per_class!r}")
    labels = torch.as_tensor(labels).long().cpu()  # (N,)
    gen = torch.Generator().manual_seed(seed)
    chosen: list[torch.Tensor] = []
    for cls in torch.unique(labels).tolist():
        members = torch.nonzero(labels == cls).flatten()  # (n_c,)
        if members.numel() < per_class:
            raise DataError(f"class {cls} has only {members.numel()} examples, fewer than the {per_class} labels per class asked for")
        chosen.append(members[torch.randperm(members.numel(), generator=gen)[:per_class]])
    return torch.sort(torch.cat(chosen)).values


# --------------------------------------------------------------------------- #
# Linear L2-SVM
# --------------------------------------------------------------------------- #
@dataclass
class SVMResult:
    """A fitted linear SVM and how its C was chosen."""

    model: Pipeline  # sklearn Pipeline(StandardScaler, LinearSVC), refitted on all training labels
    best_C: float
    val_accuracy: dict[float, float]  # C -> accuracy on the held-out part of the training labels ({} if only one C)
    converged: bool  # False if liblinear stopped at max_iter in the final fit (the warning is silenced)

    def predict(self, x: torch.Tensor | np.ndarray) -> np.ndarray:
        """Class predictions (N,) for features (N, D)."""
        return self.model.predict(_as_numpy(x))

    def accuracy(self, x: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray) -> float:
        """Fraction of `y` predicted correctly from `x`."""
        return float(np.mean(self.predict(x) == _as_numpy(y)))


def _as_numpy(a: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    a = np.asarray(a)
    return a.astype(np.float32, copy=False) if a.dtype.kind == "f" else a


def _make_svm(C: float, n_samples: int, n_features: int, max_iter: int):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    # The dual problem has one variable per sample: much cheaper when features outnumber samples.
    dual = n_samples < n_features
    return make_pipeline(StandardScaler(), LinearSVC(C=C, loss="squared_hinge", penalty="l2", dual=dual, max_iter=max_iter, random_state=0))


def _fit(model, x: np.ndarray, y: np.ndarray) -> bool:
    """Fit `model`; return False if liblinear warned that it did not converge (the warning is silenced)."""
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(x, y)
    for w in caught:  # pass on anything else
        if not issubclass(w.category, ConvergenceWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return not any(issubclass(w.category, ConvergenceWarning) for w in caught)


def fit_linear_svm(
    train_x: torch.Tensor | np.ndarray,
    train_y: torch.Tensor | np.ndarray,
    val_fraction: float = 0.2,
    Cs: Sequence[float] = DEFAULT_CS,
    seed: int = 0,
    max_iter: int = 2000,
) -> SVMResult:
    """Standardise features and fit a linear L2-SVM (squared hinge, one-vs-rest), choosing C on held-out labels.

    train_x: (N, D) features; train_y: (N,) class indices. C is chosen by
    accuracy on a stratified `val_fraction` of the training labels (ties go to
    the smaller C), then the model is refitted on all of them. The scaler is
    part of the returned pipeline, so it is fitted on training data only.
    """
    from sklearn.model_selection import train_test_split

    x = _as_numpy(train_x).reshape(len(train_x), -1)  # (N, D) float32
    y = _as_numpy(train_y).astype(np.int64)  # (N,)
    if x.shape[0] != y.shape[0]:
        raise DataError(f"{x.shape[0]} feature rows but {y.shape[0]} labels")
    Cs = tuple(float(c) for c in Cs)
    if not Cs or any(c <= 0 for c in Cs):
        raise ConfigError(f"Cs must be positive values, got {Cs}")
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2:
        raise DataError("the SVM needs labelled examples of at least two classes")

    val_accuracy: dict[float, float] = {}
    if len(Cs) == 1:
        best_C = Cs[0]
    else:
        if not 0 < val_fraction < 1:
            raise ConfigError(f"val_fraction must lie between 0 and 1, got {val_fraction}")
        n_val = max(len(classes), int(round(val_fraction * len(y))))  # a stratified split needs >= 1 per class
        if counts.min() < 2 or len(y) - n_val < len(classes):
            raise DataError(
                f"too few labels ({len(y)}, at least {counts.min()} per class) to hold out a validation split "
                "for choosing C; use more labels per class or a single C"
            )
        tr_x, va_x, tr_y, va_y = train_test_split(x, y, test_size=n_val, stratify=y, random_state=seed)
        for C in Cs:
            model = _make_svm(C, tr_x.shape[0], tr_x.shape[1], max_iter)
            _fit(model, tr_x, tr_y)  # large Cs may stop at max_iter here; that only weakens them in the choice
            val_accuracy[C] = float(np.mean(model.predict(va_x) == va_y))
        best_C = max(Cs, key=lambda c: (val_accuracy[c], -c))

    model = _make_svm(best_C, x.shape[0], x.shape[1], max_iter)
    converged = _fit(model, x, y)
    return SVMResult(model=model, best_C=best_C, val_accuracy=val_accuracy, converged=converged)


# --------------------------------------------------------------------------- #
# The whole protocol
# --------------------------------------------------------------------------- #
@dataclass
class ProbeRow:
    """One feature extractor's result."""

    name: str  # "discriminator", "pixels" or "random_d"
    feature_dim: int
    best_C: float
    val_accuracy: float  # held-out accuracy at best_C (nan when only one C was tried)
    test_accuracy: float
    seconds: float  # feature extraction + SVM fitting + testing
    converged: bool = True  # liblinear reached its tolerance in the final fit


@dataclass
class ProbeReport:
    """The rows of a probe and the protocol they share."""

    rows: list[ProbeRow]
    per_class: int  # labelled training examples per class
    n_train: int  # labelled training examples in all
    n_test: int  # test images scored
    seed: int
    grid: int  # side of the max-pooling grid
    n_classes: int = 0
    notes: list[str] = field(default_factory=list)

    def row(self, name: str) -> ProbeRow:
        """The row called `name`."""
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)

    def to_dict(self) -> dict:
        """Plain JSON-able data."""
        return asdict(self)

    def table(self) -> str:
        """A fixed-width text table of the rows, headed by the protocol."""
        lines = [
            f"linear L2-SVM probe: {self.per_class} labels per class x {self.n_classes} classes = {self.n_train} "
            f"training images, {self.n_test} test images, {self.grid}x{self.grid} max-pooling, seed {self.seed}",
            f"  {'features':<14} {'dim':>8} {'best C':>8} {'val acc':>8} {'test acc':>9} {'seconds':>8}",
        ]
        for r in self.rows:
            flag = "" if r.converged else "  (not converged)"
            lines.append(f"  {r.name:<14} {r.feature_dim:>8,} {r.best_C:>8g} {r.val_accuracy:>8.3f} {r.test_accuracy:>9.3f} {r.seconds:>8.2f}{flag}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _random_discriminator(D: Discriminator, seed: int) -> Discriminator:
    """A freshly initialised D of the same architecture, seeded, on D's device; the global RNG is left untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = build_discriminator(D.config)
    return fresh.to(next(D.parameters()).device)


def _check_probe_inputs(D: Discriminator, train: ImageData, test: ImageData, baselines: Sequence[str]) -> None:
    """The one-line errors of a probe that cannot run: an unknown baseline, data that streams from disk or
    has no labels, images that are not uint8 (N, C, H, W) at D's size."""
    unknown = [b for b in baselines if b not in BASELINES]
    if unknown:
        raise ConfigError(f"unknown baseline {unknown[0]!r}: use {', '.join(BASELINES)}")
    for part, data in (("training", train), ("test", test)):
        if not data.in_memory:
            raise DataError(f"the {part} data streams from disk; the probe needs it in memory")
        if data.labels is None:
            raise DataError(f"the {part} data has no labels; the probe needs a labelled dataset")
        assert data.images is not None  # in memory, just checked
        _check_images(data.images, D.config)


def _test_subset(test: ImageData, max_test: int | None, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, labels) of the test split, or of `max_test` of them chosen by `seed` (in their order in the split)."""
    test_images, test_y = test.images, test.labels
    assert test_images is not None and test_y is not None  # in memory and labelled: checked by _check_probe_inputs
    if max_test is not None:
        if max_test < 1:
            raise ConfigError(f"max_test must be positive, got {max_test}")
        if max_test < len(test):
            pick = torch.randperm(len(test), generator=torch.Generator().manual_seed(seed))[:max_test]
            pick = torch.sort(pick).values
            test_images, test_y = test_images[pick], test_y[pick]
    return test_images, test_y


def _extractors(
    D: Discriminator, train: ImageData, baselines: Sequence[str], seed: int, grid: int, batch_size: int
) -> list[tuple[str, Callable[[torch.Tensor], torch.Tensor]]]:
    """(name, features of uint8 images) for D and each baseline asked for, in the report's order."""
    # D reads real images here: batch-norm statistics of real batches, not training's real/fake mix.
    assert train.images is not None  # in memory: checked by _check_probe_inputs
    real_d = with_real_statistics(D, train.images, seed=seed)
    assert isinstance(real_d, Discriminator)  # a copy of D
    extractors = [("discriminator", lambda imgs: discriminator_features(real_d, imgs, grid, batch_size))]
    if "pixels" in baselines:
        extractors.append(("pixels", pixel_features))
    if "random_d" in baselines:
        random_d = with_real_statistics(_random_discriminator(real_d, seed), train.images, seed=seed)
        assert isinstance(random_d, Discriminator)  # a copy of the random D
        extractors.append(("random_d", lambda imgs: discriminator_features(random_d, imgs, grid, batch_size)))
    return extractors


def _probe_row(
    name: str,
    extract: Callable[[torch.Tensor], torch.Tensor],
    train_images: torch.Tensor,
    train_y: torch.Tensor,
    test_images: torch.Tensor,
    test_y: np.ndarray,
    Cs: Sequence[float],
    seed: int,
) -> ProbeRow:
    """One extractor's row: its features of the labelled training images fit the SVM (C chosen on a held-out
    split), which is then scored on the test images' features; the seconds count all of it."""
    start = time.perf_counter()
    tr_x, te_x = extract(train_images), extract(test_images)  # (n_train, D), (n_test, D)
    svm = fit_linear_svm(tr_x, train_y, Cs=Cs, seed=seed)
    return ProbeRow(
        name=name,
        feature_dim=int(tr_x.shape[1]),
        best_C=svm.best_C,
        val_accuracy=svm.val_accuracy.get(svm.best_C, float("nan")),
        test_accuracy=svm.accuracy(te_x, test_y),
        seconds=time.perf_counter() - start,
        converged=svm.converged,
    )


def run_probe(
    D: Discriminator,
    train: ImageData,
    test: ImageData,
    per_class: int,
    seed: int = 0,
    baselines: Sequence[str] = BASELINES,
    max_test: int | None = None,
    grid: int = 4,
    Cs: Sequence[float] = DEFAULT_CS,
    batch_size: int = 256,
) -> ProbeReport:
    """Section 5.1: an L2-SVM on D's features from `per_class` labels per class, scored on `test`.

    The labelled subset of `train` is chosen by `seed`; `max_test` (optional)
    scores a seeded subset of the test split. Baselines use the same labels:
    "pixels" (raw pixels in [0, 1]) and "random_d" (an untrained D of the same
    architecture, initialised with `seed`). Both Ds read the images with batch-norm
    statistics of real training batches (`sampling.with_real_statistics`).
    """
    _check_probe_inputs(D, train, test, baselines)
    assert train.images is not None and train.labels is not None  # in memory and labelled: just checked
    train_idx = labelled_subset(train.labels, per_class, seed)  # (per_class * n_classes,)
    train_images, train_y = train.images[train_idx], train.labels[train_idx]
    test_images, test_y = _test_subset(test, max_test, seed)
    test_y_np = test_y.numpy()
    rows = [
        _probe_row(name, extract, train_images, train_y, test_images, test_y_np, Cs, seed)
        for name, extract in _extractors(D, train, baselines, seed, grid, batch_size)
    ]
    notes = []
    if not all(r.converged for r in rows):
        notes.append("liblinear hit its iteration limit in a final fit; that row's accuracy may be slightly low")
    return ProbeReport(
        rows=rows,
        per_class=per_class,
        n_train=int(train_idx.numel()),
        n_test=int(test_y.numel()),
        seed=seed,
        grid=grid,
        n_classes=int(torch.unique(train_y).numel()),
        notes=notes,
    )
