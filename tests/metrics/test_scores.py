"""The score functions against direct computations on small feature sets."""

import itertools
import json
import math

import numpy as np
import pytest
import torch

from dcgan.errors import ConfigError
from dcgan.metrics import (
    METRICS,
    TRACKED_METRICS,
    Metric,
    Needs,
    class_coverage,
    density_coverage,
    fid_from_features,
    frechet_distance,
    inception_score,
    kid_from_features,
    mean_confidence,
    parse_metrics,
    precision_recall,
)
from dcgan.metrics.scores import feature_stats, grid_pattern


def _features(n=400, f=12, shift=0.0, seed=0):
    """n draws from one correlated Gaussian (the same for every seed), moved by `shift`."""
    mix = torch.randn(f, f, generator=torch.Generator().manual_seed(1234)) / math.sqrt(f)
    return torch.randn(n, f, generator=torch.Generator().manual_seed(seed)) @ mix + shift


def test_fid_of_a_set_against_itself_is_zero():
    x = _features()
    assert fid_from_features(x, x) == pytest.approx(0.0, abs=1e-8)


def test_fid_matches_scipy_sqrtm():
    scipy_linalg = pytest.importorskip("scipy.linalg")
    a, b = _features(seed=1), _features(shift=0.3, seed=2) * 1.5
    mu1, s1 = (t.numpy() for t in feature_stats(a))
    mu2, s2 = (t.numpy() for t in feature_stats(b))
    covmean = scipy_linalg.sqrtm(s1 @ s2).real
    expected = float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))
    assert fid_from_features(a, b) == pytest.approx(expected, rel=1e-6)


def test_fid_grows_with_the_gap_between_distributions():
    base = _features(seed=3)
    values = [fid_from_features(base, _features(shift=s, seed=4)) for s in (0.0, 0.2, 0.5, 1.0)]
    assert values == sorted(values) and values[-1] > 10 * values[0]


def test_frechet_distance_of_known_gaussians():
    # Diagonal covariances: the closed form is sum (mu diff)^2 + sum (sqrt(a) - sqrt(b))^2.
    mu1, mu2 = torch.tensor([0.0, 1.0]), torch.tensor([1.0, 1.0])
    s1, s2 = torch.diag(torch.tensor([1.0, 4.0])), torch.diag(torch.tensor([4.0, 9.0]))
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(1 + 1 + 1, rel=1e-9)


def _direct_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with the cubic polynomial kernel, written out pair by pair."""
    f = x.shape[1]
    k = lambda a, b: (a @ b / f + 1.0) ** 3  # noqa: E731
    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(n), 2)) / (n * (n - 1))
    xy = sum(k(a, b) for a in x for b in y) / (m * n)
    return xx + yy - 2 * xy


def test_kid_agrees_with_a_direct_computation():
    x, y = _features(30, 5, seed=5), _features(30, 5, shift=0.4, seed=6)
    mean, std = kid_from_features(x, y, subsets=1, subset_size=30)
    assert mean == pytest.approx(_direct_mmd2(x.double().numpy(), y.double().numpy()), rel=1e-9)
    assert std == 0.0


def test_kid_is_near_zero_for_one_distribution_and_positive_for_two():
    same = kid_from_features(_features(500, seed=7), _features(500, seed=8), subsets=20, subset_size=200)[0]
    apart = kid_from_features(_features(500, seed=7), _features(500, shift=1.0, seed=8), subsets=20, subset_size=200)[0]
    assert abs(same) < 0.01 < apart


def _direct_prdc(real: np.ndarray, fake: np.ndarray, k: int) -> dict:
    d_rr = np.linalg.norm(real[:, None] - real[None], axis=2)
    d_ff = np.linalg.norm(fake[:, None] - fake[None], axis=2)
    d_rf = np.linalg.norm(real[:, None] - fake[None], axis=2)  # (N, M)
    r_real = np.sort(d_rr, axis=1)[:, k]
    r_fake = np.sort(d_ff, axis=1)[:, k]
    return {
        "precision": float((d_rf <= r_real[:, None]).any(0).mean()),
        "recall": float((d_rf <= r_fake[None, :]).any(1).mean()),
        "density": float((d_rf <= r_real[:, None]).sum(0).mean() / k),
        "coverage": float((d_rf.min(1) <= r_real).mean()),
    }


def test_knn_scores_agree_with_a_direct_computation():
    real, fake = _features(120, 4, seed=9), _features(90, 4, shift=0.5, seed=10)
    expected = _direct_prdc(real.double().numpy(), fake.double().numpy(), k=5)
    got = {**precision_recall(real, fake, k=5), **density_coverage(real, fake, k=5)}
    for key in expected:
        assert got[key] == pytest.approx(expected[key], abs=1e-6), key


def test_knn_scores_extremes():
    x = _features(200, 6, seed=11)
    assert precision_recall(x, x) == {"precision": 1.0, "recall": 1.0}
    assert density_coverage(x, x)["coverage"] == 1.0
    far = x + 1000.0
    assert precision_recall(x, far) == {"precision": 0.0, "recall": 0.0}
    assert density_coverage(x, far) == {"density": 0.0, "coverage": 0.0}
    with pytest.raises(ConfigError):
        precision_recall(x[:3], x[:3], k=5)


def test_inception_score_bounds():
    k = 10
    one_hot = torch.eye(k).repeat(50, 1)  # confident and spread evenly over all classes
    assert inception_score(one_hot)[0] == pytest.approx(k, rel=1e-6)
    collapsed = torch.zeros(500, k)
    collapsed[:, 3] = 1.0
    assert inception_score(collapsed)[0] == pytest.approx(1.0, rel=1e-6)
    unsure = torch.full((500, k), 1.0 / k)
    assert inception_score(unsure)[0] == pytest.approx(1.0, rel=1e-6)


def test_class_coverage_and_confidence():
    k = 4
    even = torch.eye(k).repeat(25, 1)
    cov = class_coverage(even, ["a", "b", "c", "d"])
    assert cov["class_entropy"] == pytest.approx(1.0) and cov["classes_covered"] == 4
    assert cov["class_shares"] == {"a": 0.25, "b": 0.25, "c": 0.25, "d": 0.25}
    one = torch.zeros(100, k)
    one[:, 2] = 1
    cov = class_coverage(one)
    assert cov["class_entropy"] == 0.0 and cov["classes_covered"] == 1
    assert mean_confidence(one) == 1.0
    assert mean_confidence(torch.full((10, k), 0.25)) == pytest.approx(0.25)


def test_metric_registry_and_parsing():
    assert parse_metrics("fid, kid,fid") == ["fid", "kid"]
    assert parse_metrics("all") == list(METRICS)
    with pytest.raises(ConfigError, match="unknown metric"):
        parse_metrics("fid,bogus")
    for metric in METRICS.values():
        assert metric.needs in ("features", "probs", "mean_image") and metric.lower_is_better
        assert isinstance(metric.needs, Needs)


def test_needs_is_an_enum_that_reads_as_its_plain_name():
    assert {m.name: m.needs for m in METRICS.values() if m.name in ("fid", "grid", "is")} == {
        "fid": Needs.FEATURES,
        "grid": Needs.MEAN_IMAGE,
        "is": Needs.PROBS,
    }
    assert Needs.PROBS == "probs" and str(Needs.MEAN_IMAGE) == "mean_image" and f"{Needs.FEATURES}" == "features"
    assert json.dumps({"needs": Needs.FEATURES}) == '{"needs": "features"}'  # reports keep the plain names
    plain = Metric("x", "probs", lambda probs, classes: {"x": 0.0}, {"x": True}, "a plain name")
    assert plain.needs is Needs.PROBS and plain.label == "x"
    with pytest.raises(ConfigError, match=r"metric 'x' needs 'pixels': use features, probs, mean_image"):
        Metric("x", "pixels", lambda r, f: {}, {"x": True}, "")


def test_tracked_metrics_and_what_they_take_come_from_the_registry():
    assert TRACKED_METRICS == tuple(name for name, m in METRICS.items() if m.tracked)
    assert set(TRACKED_METRICS) == {"fid", "intra_fid", "conditional_accuracy"}
    fid, intra, accuracy = METRICS["fid"], METRICS["intra_fid"], METRICS["conditional_accuracy"]
    assert not fid.higher_is_better and not intra.higher_is_better and accuracy.higher_is_better
    assert [m.needs_classifier for m in (fid, intra, accuracy)] == [False, False, True]
    assert [m.needs_class_references for m in (fid, intra, accuracy)] == [False, True, False]
    assert [m.conditional for m in (fid, intra, accuracy)] == [False, True, True]
    assert (fid.show(12.3456), intra.show(5.5), accuracy.show(0.931)) == ("FID 12.346", "intra-FID 5.500", "conditional accuracy 93.1%")
    # a tracked metric reports a figure under its own name; an unconditional one compares features
    with pytest.raises(ConfigError, match="under its own name"):
        Metric("pr2", Needs.FEATURES, lambda r, f: {}, {"precision": False}, "", tracked=True)
    with pytest.raises(ConfigError, match="compares features"):
        Metric("sharp", Needs.MEAN_IMAGE, lambda r, f: {}, {"sharp": True}, "", tracked=True)


# --------------------------------------------------------------------------- #
# Grid artifacts
# --------------------------------------------------------------------------- #
def test_grid_pattern_measures_a_checkerboard_in_grey_levels():
    real = torch.zeros(1, 32, 32) - 0.9
    board = real.clone()
    board[..., ::2, ::2] += 0.02  # +2.55 grey levels at every other pixel of every other row
    # A dot every 2 pixels is a mean shift of a/4 plus three stride-2 frequencies of a/4 each.
    assert grid_pattern(real, board) == pytest.approx(3 * 2.55 / 4, rel=1e-5)
    board4 = real.clone()
    board4[..., ::4, ::4] += 0.02  # the same dots every 4 pixels: 15 frequencies of a/16 each
    assert grid_pattern(real, board4) == pytest.approx(15 * 2.55 / 16, rel=1e-5)
    assert grid_pattern(real, board4, periods=(2,)) == pytest.approx(3 * 2.55 / 16, rel=1e-5)


def test_grid_pattern_ignores_smooth_differences_and_brightness():
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 32), torch.linspace(-1, 1, 32), indexing="ij")
    blob = torch.exp(-(xx**2 + yy**2) * 4).unsqueeze(0)  # (1, 32, 32): a digit-like bright centre
    assert grid_pattern(blob - 1, 0.9 * blob - 1) < 0.05
    assert grid_pattern(blob - 1, blob - 0.8) == pytest.approx(0.0, abs=1e-5)
    # Three channels: the score is the channels' mean.
    rgb = torch.zeros(3, 8, 8)
    dotted = rgb.clone()
    dotted[0, ::2, ::2] = 0.04
    assert grid_pattern(rgb, dotted) == pytest.approx(3 * 5.1 / 4 / 3, rel=1e-5)


def test_grid_pattern_refuses_images_of_two_sizes():
    with pytest.raises(ConfigError, match="one size"):
        grid_pattern(torch.zeros(1, 32, 32), torch.zeros(1, 64, 64))
