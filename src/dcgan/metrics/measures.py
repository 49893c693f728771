"""The sample-quality scores' arithmetic: pure functions over features, class probabilities or mean images.

Nothing here reads files or runs a network: callers pass feature matrices (N, F) of real and generated
images, softmax probabilities (N, K) of a classifier, or the mean image (C, H, W) of each set. Every
score is computed in float64 where precision matters. The conditional scores (`conditional_accuracy`,
`intra_fid`) also take the class each sample was asked for, labels (N,), and score every class on its own.

`scores.py` registers them by name in METRICS (and re-exports them: `from dcgan.metrics.scores import fid_from_features` works).
"""

from __future__ import annotations

import math

import torch

from ..errors import ConfigError

__all__ = [
    "feature_stats",
    "frechet_distance",
    "fid_from_features",
    "kid_from_features",
    "precision_recall",
    "density_coverage",
    "memorisation",
    "COPY_RATIO",
    "inception_score",
    "class_coverage",
    "mean_confidence",
    "conditional_accuracy",
    "intra_fid",
    "grid_pattern",
    "GRID_PERIODS",
]


# --------------------------------------------------------------------------- #
# FID
# --------------------------------------------------------------------------- #
def feature_stats(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (F,) and unbiased covariance (F, F) of features (N, F), in float64."""
    x = features.double()
    if x.ndim != 2 or x.shape[0] < 2:
        raise ConfigError(f"statistics need at least 2 feature vectors, got shape {tuple(x.shape)}")
    mu = x.mean(0)
    centred = x - mu
    sigma = centred.T @ centred / (x.shape[0] - 1)
    return mu, sigma


def _sqrt_psd(matrix: torch.Tensor) -> torch.Tensor:
    """Square root of a symmetric positive semi-definite matrix through its eigen-decomposition."""
    values, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * values.clamp_min(0).sqrt()) @ vectors.T


def frechet_distance(mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2) (Heusel et al. 2017).

    d^2 = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)). The trace of the
    matrix square root is taken as the sum of square roots of the eigenvalues of
    S1^(1/2) S2 S1^(1/2), which is symmetric, so no complex parts appear (the
    scipy `sqrtm` route gives the same value; tests check it).
    """
    mu1, mu2, sigma1, sigma2 = (t.double() for t in (mu1, mu2, sigma1, sigma2))
    root1 = _sqrt_psd(sigma1)
    middle = root1 @ sigma2 @ root1
    eigenvalues = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp_min(0)
    trace_sqrt = eigenvalues.sqrt().sum()
    value = (mu1 - mu2).square().sum() + sigma1.trace() + sigma2.trace() - 2 * trace_sqrt
    return max(float(value), 0.0)


def fid_from_features(real: torch.Tensor, fake: torch.Tensor) -> float:
    """FID between two feature sets (N, F) and (M, F)."""
    return frechet_distance(*feature_stats(real), *feature_stats(fake))


# --------------------------------------------------------------------------- #
# KID
# --------------------------------------------------------------------------- #
def _polynomial_mmd2(x: torch.Tensor, y: torch.Tensor, degree: int = 3, coef: float = 1.0) -> torch.Tensor:
    """Unbiased MMD^2 with the kernel k(a, b) = (a.b / F + coef)^degree (Bińkowski et al. 2018)."""
    f = x.shape[1]
    k_xx = (x @ x.T / f + coef) ** degree
    k_yy = (y @ y.T / f + coef) ** degree
    k_xy = (x @ y.T / f + coef) ** degree
    m, n = x.shape[0], y.shape[0]
    sum_xx = (k_xx.sum() - k_xx.diagonal().sum()) / (m * (m - 1))
    sum_yy = (k_yy.sum() - k_yy.diagonal().sum()) / (n * (n - 1))
    return sum_xx + sum_yy - 2 * k_xy.mean()


def kid_from_features(real: torch.Tensor, fake: torch.Tensor, subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Kernel Inception Distance: mean and standard deviation of the unbiased
    polynomial-kernel MMD^2 over `subsets` random subsets of `subset_size` pairs.

    The subset size is capped by the smaller set; with one subset covering both
    sets whole, this is exactly the unbiased MMD^2 of the two sets.
    """
    x, y = real.double(), fake.double()
    size = min(subset_size, x.shape[0], y.shape[0])
    if size < 2:
        raise ConfigError("KID needs at least 2 real and 2 generated samples")
    g = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(subsets):
        ix = torch.randperm(x.shape[0], generator=g)[:size]
        iy = torch.randperm(y.shape[0], generator=g)[:size]
        values.append(_polynomial_mmd2(x[ix], y[iy]))
    v = torch.stack(values)
    return float(v.mean()), float(v.std(unbiased=False)) if len(values) > 1 else 0.0


# --------------------------------------------------------------------------- #
# k-NN manifold scores: precision / recall (Kynkäänniemi et al. 2019),
# density / coverage (Naeem et al. 2020)
# --------------------------------------------------------------------------- #
def _kth_neighbour_radii(x: torch.Tensor, k: int, chunk: int = 2048) -> torch.Tensor:
    """Distance from each row of x to its k-th nearest other row (N,), computed in chunks."""
    radii = []
    for start in range(0, x.shape[0], chunk):
        d = torch.cdist(x[start : start + chunk], x)  # (chunk, N), includes the zero self-distance
        radii.append(d.kthvalue(k + 1, dim=1).values)
    return torch.cat(radii)


def _inside_counts(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
    """For each point, how many balls B(centre_i, radius_i) contain it (M,)."""
    counts = []
    for start in range(0, points.shape[0], chunk):
        d = torch.cdist(points[start : start + chunk], centres)  # (chunk, N)
        counts.append((d <= radii.unsqueeze(0)).sum(1))
    return torch.cat(counts)


def _check_k(k: int, *sets: torch.Tensor) -> None:
    smallest = min(s.shape[0] for s in sets)
    if k < 1 or k >= smallest:
        raise ConfigError(f"k-NN scores need k in [1, {smallest - 1}] for {smallest} samples, got k={k}")


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 5) -> dict[str, float]:
    """Improved precision and recall: the share of generated samples inside the
    real k-NN manifold (fidelity), and of real samples inside the generated one
    (diversity)."""
    real, fake = real.float(), fake.float()
    _check_k(k, real, fake)
    real_radii = _kth_neighbour_radii(real, k)
    fake_radii = _kth_neighbour_radii(fake, k)
    precision = (_inside_counts(fake, real, real_radii) > 0).double().mean()
    recall = (_inside_counts(real, fake, fake_radii) > 0).double().mean()
    return {"precision": float(precision), "recall": float(recall)}


def density_coverage(real: torch.Tensor, fake: torch.Tensor, k: int = 5) -> dict[str, float]:
    """Density (how many real k-NN balls contain each generated sample, over k;
    about 1 for matching distributions) and coverage (the share of real balls
    that contain at least one generated sample)."""
    real, fake = real.float(), fake.float()
    _check_k(k, real, fake)
    real_radii = _kth_neighbour_radii(real, k)
    density = _inside_counts(fake, real, real_radii).double().mean() / k
    # Coverage looks from the real side: does the ball of real sample i hold any generated sample?
    covered = []
    for start in range(0, real.shape[0], 2048):
        d = torch.cdist(real[start : start + 2048], fake)  # (chunk, M)
        covered.append(d.min(1).values <= real_radii[start : start + 2048])
    coverage = torch.cat(covered).double().mean()
    return {"density": float(density), "coverage": float(coverage)}


def _nearest(points: torch.Tensor, centres: torch.Tensor, chunk: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """Distance from each point to its nearest centre, and that centre's index (M,), (M,)."""
    dists, indices = [], []
    for start in range(0, points.shape[0], chunk):
        d, i = torch.cdist(points[start : start + chunk], centres).min(1)
        dists.append(d)
        indices.append(i)
    return torch.cat(dists), torch.cat(indices)


COPY_RATIO = 0.5  # a sample copies a real image when it is nearer to it than half that image's own nearest-neighbour distance


def memorisation(real: torch.Tensor, fake: torch.Tensor, ratio: float = COPY_RATIO) -> dict[str, float]:
    """Copies: the share of generated samples nearer to their nearest real reference image than
    `ratio` times that image's distance to its own nearest other reference image.

    The threshold is local, so dense regions (MNIST's many similar ones) do not flag
    new images for being near an old one: real held-out images score about 0 (MNIST,
    classifier and pixel features: at most 0.2% at 2,000 and 10,000 images), and samples
    that replay reference images score 1. FID cannot see this: a copy of the reference
    scores at or below the real-vs-real floor.
    """
    real, fake = real.float(), fake.float()
    if real.shape[0] < 2:
        raise ConfigError("the memorisation score needs at least 2 real samples")
    spacing = _kth_neighbour_radii(real, 1)  # each real image's distance to its nearest other one
    nearest, index = _nearest(fake, real)
    return {"copies": float((nearest < ratio * spacing[index]).double().mean())}


# --------------------------------------------------------------------------- #
# Grid artifacts
# --------------------------------------------------------------------------- #
GRID_PERIODS = (2, 4)  # the strides of G's last two transposed convolutions: the periods their dots repeat at


def grid_pattern(real_mean: torch.Tensor, fake_mean: torch.Tensor, periods: tuple[int, ...] = GRID_PERIODS) -> float:
    """Amplitude, in grey levels (0-255), of the fixed grid pattern in the samples' mean image.

    Uneven overlaps of stride-2 transposed convolutions print a pattern that repeats every 2 and 4
    pixels at the same place in every sample (the "dots"). Averaging many samples keeps it and
    averages the content away, so it is the part of `fake_mean - real_mean` (both (C, H, W) in
    [-1, 1]) at the 2-D frequencies of a grid of those periods: the sum of their Fourier amplitudes,
    averaged over channels (a checkerboard of +-a scores a). Real data scores near 0, the noise of
    the two means (MNIST test against training images: 0.18 at 5,000 images each, 0.11 at 10,000).
    """
    if real_mean.shape != fake_mean.shape:
        raise ConfigError(f"the grid score compares images of one size: real {tuple(real_mean.shape)}, generated {tuple(fake_mean.shape)}")
    diff = (fake_mean.double() - real_mean.double()) * 127.5  # grey levels
    h, w = diff.shape[-2:]
    spectrum = torch.fft.fft2(diff).abs() / (h * w)  # (C, H, W): the amplitude of each 2-D frequency
    mask = torch.zeros(h, w, dtype=torch.bool)
    for period in periods:
        if h % period == 0 and w % period == 0:
            mask[:: h // period, :: w // period] = True
    mask[0, 0] = False  # the mean brightness is not a pattern
    return float(spectrum[:, mask].sum(1).mean())


# --------------------------------------------------------------------------- #
# Classifier scores
# --------------------------------------------------------------------------- #
def inception_score(probs: torch.Tensor, splits: int = 10) -> tuple[float, float]:
    """exp(E_x KL(p(y|x) || p(y))), mean and standard deviation over `splits` (Salimans et al. 2016).

    With a classifier trained on the data set (not Inception), this is the
    "classifier score"; its maximum is the number of classes.
    """
    p = probs.double().clamp_min(1e-12)
    splits = max(1, min(splits, p.shape[0]))
    scores = []
    for part in p.chunk(splits):
        marginal = part.mean(0, keepdim=True)
        kl = (part * (part.log() - marginal.log())).sum(1).mean()
        scores.append(kl.exp())
    s = torch.stack(scores)
    return float(s.mean()), float(s.std(unbiased=False)) if len(scores) > 1 else 0.0


def class_coverage(probs: torch.Tensor, classes: list[str] | None = None) -> dict:
    """How generated samples spread over the classes, by the classifier's top prediction.

    Returns each class's share, the normalised entropy of the shares (1 = all
    classes equally often, 0 = one class only), and how many classes receive at
    least half of their fair share (1/(2K)).
    """
    k = probs.shape[1]
    counts = torch.bincount(probs.argmax(1), minlength=k).double()
    shares = counts / counts.sum()
    nonzero = shares[shares > 0]
    entropy = float(-(nonzero * nonzero.log()).sum() / math.log(k)) if k > 1 else 1.0
    names = classes if classes and len(classes) == k else [str(i) for i in range(k)]
    return {
        "class_entropy": entropy,
        "classes_covered": int((shares >= 0.5 / k).sum()),
        "class_shares": {name: round(float(s), 4) for name, s in zip(names, shares)},
    }


def mean_confidence(probs: torch.Tensor) -> float:
    """Mean of the classifier's top probability: how recognisable the samples are."""
    return float(probs.double().max(1).values.mean())


# --------------------------------------------------------------------------- #
# Class-conditional scores: each sample is judged against the class it was asked for
# --------------------------------------------------------------------------- #
def _class_keys(num_classes: int, classes: list[str] | tuple[str, ...] | None) -> list[str]:
    return [str(c) for c in classes] if classes and len(classes) == num_classes else [str(i) for i in range(num_classes)]


def conditional_accuracy(probs: torch.Tensor, labels: torch.Tensor, classes: list[str] | None = None) -> dict:
    """How often the classifier recognises a sample as the class it was asked for.

    probs (N, K) are the classifier's softmax on the samples, labels (N,) the requested classes,
    indices into the same K classes. Returns the overall share, and each class's share among the
    samples of that class (None for a class with no samples): a generator that ignores its label
    scores about 1/K, one that draws every class right scores the classifier's own accuracy.
    """
    labels = labels.long().cpu()
    if probs.shape[0] != labels.shape[0]:
        raise ConfigError(f"conditional accuracy needs one label per sample: {probs.shape[0]} samples, {labels.shape[0]} labels")
    k = probs.shape[1]
    right = (probs.argmax(1).cpu() == labels).double()  # (N,)
    per_class = {}
    for c, name in enumerate(_class_keys(k, classes)):
        mask = labels == c
        per_class[name] = round(float(right[mask].mean()), 4) if mask.any() else None
    return {"conditional_accuracy": float(right.mean()), "class_accuracy": per_class}


def intra_fid(real_by_class: list[torch.Tensor], fake: torch.Tensor, labels: torch.Tensor, classes: list[str] | None = None) -> dict:
    """Intra-FID (Miyato & Koyama 2018): FID of each class's samples against real images of that class.

    real_by_class[c] holds the real features (N_c, F) of class c, fake (N, F) the samples' features
    and labels (N,) their requested classes. Returns the mean over classes and each class's FID.
    A generator that draws the right images for the wrong class keeps its overall FID (the mix of
    classes is unchanged) but not its intra-FID. Per-class sets are small, and FID reads higher at
    small counts, so compare it with real held-out images scored at the same counts (the floor).
    """
    labels = labels.long().cpu()
    k = len(real_by_class)
    per_class = {}
    for c, name in enumerate(_class_keys(k, classes)):
        mine = fake[labels == c]
        if real_by_class[c].shape[0] < 2 or mine.shape[0] < 2:
            raise ConfigError(
                f"intra-FID needs at least 2 real images and 2 samples of every class; class {name} has "
                f"{real_by_class[c].shape[0]} real and {mine.shape[0]} generated"
            )
        per_class[name] = fid_from_features(real_by_class[c], mine)
    return {"intra_fid": sum(per_class.values()) / k, "class_fid": per_class}
