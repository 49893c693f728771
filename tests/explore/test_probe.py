"""The section 5.1 probe: D's features, labelled subsets, the L2-SVM and the whole protocol."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dcgan.errors import ConfigError, DataError
from dcgan.explore.probe import discriminator_features, feature_dim, fit_linear_svm, labelled_subset, pixel_features, run_probe
from dcgan.models import Discriminator, ModelConfig
from dcgan.training import Trainer

from conftest import TINY


def _images(config: ModelConfig, n: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, config.channels, config.image_size, config.image_size), generator=gen, dtype=torch.uint8)


@pytest.mark.parametrize(
    "options",
    [
        dict(image_size=16, channels=1, z_dim=8, width=8),
        dict(image_size=32, channels=3, z_dim=8, width=8),
        dict(image_size=28, channels=1, z_dim=8, width=4, d_block="maxpool"),
    ],
)
def test_feature_dim_matches_formula(options):
    config = ModelConfig(**options)
    D = Discriminator(config)
    feats = discriminator_features(D, _images(config, 5), batch_size=2)
    assert feats.shape == (5, feature_dim(config))
    assert feats.dtype == torch.float32 and feats.device.type == "cpu"
    assert feature_dim(config) == sum(config.hidden_widths()) * 16
    assert feature_dim(config, grid=2) == sum(config.hidden_widths()) * 4


def test_features_are_max_pooled_blocks_and_restore_mode():
    config = ModelConfig(**TINY)
    D = Discriminator(config).train()
    images = _images(config, 3)
    feats = discriminator_features(D, images, grid=2)
    assert D.training  # mode restored
    D.eval()
    with torch.no_grad():
        maps = D.features(images.float() / 127.5 - 1)
    expected = torch.cat([F.adaptive_max_pool2d(m, 2).flatten(1) for m in maps], dim=1)
    assert feats.shape == (3, sum(config.hidden_widths()) * 4)
    torch.testing.assert_close(feats, expected)
    # First block's slice: (3, widths[0], 2, 2) is the 2x2 max of the (8x8) map.
    first = feats[:, : config.hidden_widths()[0] * 4].reshape(3, -1, 2, 2)
    torch.testing.assert_close(first[:, :, 0, 0], maps[0][:, :, :4, :4].amax(dim=(2, 3)))


def test_features_reject_wrong_shape_and_grid():
    D = Discriminator(ModelConfig(**TINY))
    with pytest.raises(ConfigError):
        discriminator_features(D, torch.zeros(2, 3, 16, 16, dtype=torch.uint8))
    with pytest.raises(ConfigError):
        discriminator_features(D, torch.zeros(2, 1, 16, 16, dtype=torch.uint8), grid=0)
    with pytest.raises(DataError):
        discriminator_features(D, torch.zeros(2, 1, 16, 16))


def test_pixel_features():
    images = torch.tensor([[[[0, 255], [51, 102]]]], dtype=torch.uint8)  # (1, 1, 2, 2)
    torch.testing.assert_close(pixel_features(images), torch.tensor([[0.0, 1.0, 0.2, 0.4]]))


def test_labelled_subset_per_class_and_deterministic():
    labels = torch.arange(10).repeat(30)[torch.randperm(300, generator=torch.Generator().manual_seed(1))]
    idx = labelled_subset(labels, 7, seed=3)
    assert idx.numel() == 70 and idx.unique().numel() == 70
    assert torch.bincount(labels[idx], minlength=10).tolist() == [7] * 10
    assert torch.equal(idx, labelled_subset(labels, 7, seed=3))
    assert not torch.equal(idx, labelled_subset(labels, 7, seed=4))


def test_labelled_subset_errors():
    labels = torch.tensor([0, 0, 0, 1, 1])
    with pytest.raises(DataError, match="class 1 has only 2"):
        labelled_subset(labels, 3, seed=0)
    with pytest.raises(ConfigError):
        labelled_subset(labels, 0, seed=0)
    with pytest.raises(DataError):
        labelled_subset(None, 1, seed=0)


def test_fit_linear_svm_separable():
    gen = torch.Generator().manual_seed(0)
    y = torch.arange(3).repeat(20)  # 60 labels, 3 classes
    x = torch.randn(60, 50, generator=gen) * 0.1
    x[torch.arange(60), y] += 3.0  # class c lights up feature c
    result = fit_linear_svm(x, y, Cs=(0.01, 1.0), seed=0)
    assert set(result.val_accuracy) == {0.01, 1.0}
    assert result.best_C in (0.01, 1.0)
    assert result.accuracy(x, y) == 1.0
    single = fit_linear_svm(x, y, Cs=(0.5,))
    assert single.best_C == 0.5 and single.val_accuracy == {}


@pytest.fixture(scope="module")
def trained_d():
    trainer = Trainer.from_options(data="digits", progress=False, steps=100, seed=0, batch_size=64, **TINY)
    trainer.train()
    return trainer.D


def test_probe_on_digits_beats_chance(trained_d, digits16):
    from dcgan.data import load_dataset

    test = load_dataset("digits", image_size=16, split="test")
    report = run_probe(trained_d, digits16, test, per_class=20, seed=0, max_test=200)
    assert [r.name for r in report.rows] == ["discriminator", "pixels", "random_d"]
    assert report.n_train == 200 and report.n_test == 200 and report.n_classes == 10
    d, pixels = report.row("discriminator"), report.row("pixels")
    assert d.feature_dim == feature_dim(trained_d.config)
    assert pixels.feature_dim == 16 * 16
    assert d.test_accuracy > 0.5  # chance is 0.1
    assert pixels.test_accuracy > 0.5
    assert all(r.seconds >= 0 for r in report.rows)
    table = report.table()
    assert "discriminator" in table and "random_d" in table and "20 labels per class" in table
    # Same seed, same answer.
    again = run_probe(trained_d, digits16, test, per_class=20, seed=0, baselines=(), max_test=200)
    assert again.row("discriminator").test_accuracy == d.test_accuracy


def test_probe_errors(digits16):
    D = Discriminator(ModelConfig(**TINY))
    with pytest.raises(DataError, match="fewer than"):
        run_probe(D, digits16, digits16, per_class=10_000)
    with pytest.raises(ConfigError, match="baseline"):
        run_probe(D, digits16, digits16, per_class=5, baselines=("nope",))
    with pytest.raises(ConfigError):
        run_probe(Discriminator(ModelConfig(image_size=32, channels=1, z_dim=8, width=8)), digits16, digits16, per_class=5)
