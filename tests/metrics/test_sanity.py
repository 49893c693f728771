"""The metric sanity suite: the degradations themselves, the memorisation score, the layer features,
and the ladder on real data (scikit-learn digits always, MNIST when ../shared/data has it)."""

import pytest
import torch

from dcgan.cli import main
from dcgan.data import ImageData, load_dataset
from dcgan.errors import ConfigError
from dcgan.metrics import DEGRADATIONS, build_extractor, memorisation, sanity
from dcgan.metrics.classifier import LAYER_BLOCKS, calibrate_classifier, layer_feature_dim, layer_features
from dcgan.metrics.layers import _raw_blocks
from dcgan.metrics.sanity import SanityInputs, gaussian_blur, grid_dots, shift


def _cli(*args) -> int:
    try:
        return main([str(a) for a in args])
    except SystemExit as exc:
        return exc.code


def _by_name(report) -> dict:
    """Rows keyed by degradation name ("floor" for the floor)."""
    rows = iter(report.rows)
    out = {"floor": next(rows)}
    for name, row in zip(report.protocol["sanity"], rows):
        out[name] = row
    return out


# --------------------------------------------------------------------------- #
# The image operations and the class mixes
# --------------------------------------------------------------------------- #
def test_image_operations():
    x = torch.full((2, 1, 8, 8), -1.0)
    x[:, :, 3:5, 3:5] = 1.0
    dots = grid_dots(x, 2, 0.2)
    changed = dots != x
    assert changed[..., 0, 0].all() and not changed[..., 4, 4].any()  # background dots; strokes at +1 stay clipped
    assert not changed[..., 1::2, :].any() and not changed[..., :, 1::2].any()  # only every 2nd row and column
    assert torch.allclose(dots[0, 0, 0, 0], torch.tensor(-0.8))
    moved = shift(x, 2)
    assert torch.equal(moved[:, :, 5:7, 5:7], x[:, :, 3:5, 3:5]) and moved.shape == x.shape
    blurred = gaussian_blur(x, 1.0)
    assert blurred.shape == x.shape and blurred.max() < 1.0 and torch.allclose(blurred[..., 0, 0], torch.tensor(-1.0), atol=1e-3)
    assert torch.allclose(blurred.mean(), x.mean(), atol=0.05)  # blur moves brightness, it does not add it
    assert gaussian_blur(x, 0.5).max() > blurred.max()  # less blur keeps more of the peak


def test_class_degradations_change_the_class_mix(digits16):
    test = load_dataset("digits", image_size=16, split="test")
    inputs = SanityInputs(test, torch.arange(200), digits16, torch.arange(300), seed=0)
    dropped = DEGRADATIONS["drop-class"].make(inputs)
    assert len(dropped) == pytest.approx(200, abs=2)
    # every image of the dropped set is a test image of another class than 0
    zeros = test.images[test.labels == 0].float().div(127.5).sub(1)
    assert not any(torch.equal(img, z) for img in dropped[:40] for z in zeros)
    doubled = DEGRADATIONS["duplicate-class"].make(inputs)
    assert len(doubled) == pytest.approx(200, abs=3)
    memorised = DEGRADATIONS["memorised"].make(inputs)
    reference = digits16.images[:300].float().div(127.5).sub(1)
    assert all(any(torch.equal(img, r) for r in reference) for img in memorised[:20])
    assert DEGRADATIONS["duplicate-class"].subject(inputs) == "test, class 1 x2, 2 x0.5"


def test_memorisation_flags_copies_and_not_new_draws():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(500, 16, generator=g)
    fresh = torch.randn(500, 16, generator=g)
    assert memorisation(real, fresh)["copies"] < 0.02
    assert memorisation(real, real[:200])["copies"] == 1.0
    near = real[:200] + 0.01 * torch.randn(200, 16, generator=g)  # copies with a little noise still count
    assert memorisation(real, near)["copies"] > 0.95
    half = torch.cat([real[:250], fresh[:250]])
    assert memorisation(real, half)["copies"] == pytest.approx(0.5, abs=0.02)


# --------------------------------------------------------------------------- #
# The layer features
# --------------------------------------------------------------------------- #
def test_layer_features_are_calibrated_per_block(digits_classifier):
    clf = digits_classifier
    train = load_dataset("digits", image_size=16, split="train")
    x = train.images.float().div(127.5).sub(1)
    with torch.no_grad():
        feats = layer_features(clf, x)
        raw = _raw_blocks(clf.model, x, LAYER_BLOCKS)
    assert feats.shape == (len(x), layer_feature_dim(clf.config))
    # Calibrated on these very images: block b's total variance equals its weight.
    start = 0
    for block, spec in zip(raw, LAYER_BLOCKS):
        part = feats[:, start : start + block.shape[1]].double()
        start += block.shape[1]
        assert (part - part.mean(0)).square().sum(1).mean() == pytest.approx(spec.weight, rel=1e-3)
    # Calibrating later, on the same data, gives the same record; other data is refused.
    again = calibrate_classifier(clf, train)
    assert again.info["layer_calibration"] == clf.info["layer_calibration"]
    other = load_dataset("digits", image_size=16, split="test")
    with pytest.raises(ConfigError, match="not the images"):
        calibrate_classifier(clf, other)


def test_extractor_ids_differ_and_describe_the_features(digits_classifier):
    layers = build_extractor("classifier-layers", dataset="digits")
    penultimate = build_extractor("classifier", dataset="digits")
    assert layers.id != penultimate.id and digits_classifier.weights_id() in layers.id
    assert f"{layer_feature_dim(digits_classifier.config)} features" in layers.description
    x = torch.rand(5, 1, 16, 16) * 2 - 1
    f, p = layers.features_and_probs(x)
    assert torch.allclose(f, layers.features(x), atol=1e-5)
    assert torch.allclose(p, digits_classifier.run(x)[1], atol=1e-5)
    f, p = penultimate.features_and_probs(x)
    assert torch.allclose(f, penultimate.features(x), atol=1e-5)
    assert torch.allclose(p, digits_classifier.run(x)[1], atol=1e-5)


# --------------------------------------------------------------------------- #
# The ladder on real data
# --------------------------------------------------------------------------- #
def _check_ladder(rows: dict, margin: float) -> None:
    """What the evaluator must show; `margin` is the multiple of the floor's FID the structural defects
    must reach. The dots must be flagged by FID or, when it is scored, by the grid score."""
    fid = {name: row["fid"] for name, row in rows.items()}
    floor = fid["floor"]
    assert all(v > floor for name, v in fid.items() if name not in ("floor", "memorised")), fid
    assert fid["noise-0.1"] < fid["noise-0.2"] < fid["noise-0.5"], fid
    assert fid["blur-0.5"] < fid["blur-1"], fid
    for name in ("drop-class", "duplicate-class", "shift"):
        assert fid[name] >= margin * floor, (name, fid[name] / floor)
    # FID cannot see memorisation (copies of the reference score at or below the floor); the copies score can.
    assert fid["memorised"] <= 1.05 * floor
    assert rows["memorised"]["copies"] > 0.95 and rows["floor"]["copies"] < 0.05
    if "grid" in rows["floor"]:
        # The dots are a fixed pattern: the grid score sees them at once, and not the random-phase noise.
        grid = {name: row["grid"] for name, row in rows.items()}
        assert grid["dots-2"] > 5 * max(grid["floor"], grid["noise-0.2"]), grid
        assert grid["dots-4"] > 3 * max(grid["floor"], grid["noise-0.2"]), grid
    else:
        assert fid["dots-2"] >= margin * floor, fid["dots-2"] / floor


def test_sanity_ladder_on_digits(digits_classifier):
    train = load_dataset("digits", image_size=16, split="train")
    test = load_dataset("digits", image_size=16, split="test")
    report = sanity(train, test, build_extractor("classifier-layers", dataset="digits"), num=360)
    rows = _by_name(report)
    assert list(rows) == ["floor", *DEGRADATIONS]
    # 360 images of 8x8 digits upscaled: a noisy floor, so a smaller margin than on MNIST
    _check_ladder(rows, margin=1.5)
    assert rows["floor"]["fid_x_floor"] == 1.0 and report.protocol["num_test"] == 360


def test_sanity_without_labels_skips_the_class_degradations(digits16):
    test = load_dataset("digits", image_size=16, split="test")
    unlabelled = ImageData(test.images, None, name="digits")
    report = sanity(digits16, unlabelled, build_extractor("pixels"), ["fid"], num=200)
    assert set(report.protocol["skipped"]) == {"drop-class", "duplicate-class"}
    assert len(report.rows) == 1 + len(DEGRADATIONS) - 2


def test_sanity_ladder_on_mnist(mnist_evaluation):
    """2,000 held-out vs 2,000 training images through a classifier trained in seconds: the structural
    defects stand well above the floor, the grid score flags the dots, and the layout the penultimate
    layer averages away (a 2-pixel shift) is seen."""
    train, test, evaluator = mnist_evaluation
    layers = sanity(
        train, test, build_extractor("classifier-layers", dataset="mnist", evaluator=evaluator), ["fid", "memorisation", "grid"], num=2000
    )
    rows = _by_name(layers)
    _check_ladder(rows, margin=3.0)
    new = {name: row["fid_x_floor"] for name, row in rows.items()}
    # The penultimate layer of the same classifier, same images: the shift stays near its floor.
    penultimate = sanity(train, test, build_extractor("classifier", dataset="mnist", evaluator=evaluator), ["fid"], num=2000, names=["shift"])
    old = {name: row["fid_x_floor"] for name, row in _by_name(penultimate).items()}
    assert new["shift"] >= 2 * old["shift"], (new["shift"], old["shift"])


def test_noise_augmentation_weighs_shapes_over_faint_noise(mnist_evaluation, tmp_path):
    """The same small classifier trained with and without noise augmentation: with it, sigma-0.1 noise
    costs far fewer multiples of the floor, while a dropped class (a shape defect) costs more than sigma-0.2 noise."""
    from dcgan.data import ImageData
    from dcgan.metrics import save_classifier, train_classifier

    train, test, _ = mnist_evaluation
    subset = ImageData(train.images[:6000], train.labels[:6000], name="mnist", classes=train.classes)
    check = ImageData(test.images[:1000], test.labels[:1000], name="mnist", classes=test.classes)
    ratios = {}
    for noise in (0.0, 0.3):
        clf = train_classifier(subset, check, epochs=2, width=8, seed=0, noise=noise)
        assert clf.info["noise_augmentation"] == noise
        path = save_classifier(tmp_path / f"noise-{noise}.safetensors", clf)
        report = sanity(
            train,
            test,
            build_extractor("classifier-layers", dataset="mnist", evaluator=path),
            ["fid"],
            num=2000,
            names=["noise-0.1", "noise-0.2", "drop-class"],
        )
        ratios[noise] = {name: row["fid_x_floor"] for name, row in _by_name(report).items()}
    plain, robust = ratios[0.0], ratios[0.3]
    assert robust["noise-0.1"] < robust["noise-0.2"], robust  # still ranked, and still above the floor
    assert robust["noise-0.1"] > 1.0, robust
    assert robust["noise-0.1"] < 0.5 * plain["noise-0.1"], (robust, plain)
    assert robust["drop-class"] >= 3 and robust["drop-class"] > robust["noise-0.2"], robust


# --------------------------------------------------------------------------- #
# The command line
# --------------------------------------------------------------------------- #
def test_cli_sanity_ladder(digits_classifier, capsys, tmp_path):
    out = tmp_path / "ladder.json"
    assert (
        _cli(
            "evaluate",
            "--data",
            "digits",
            "--image-size",
            "16",
            "--sanity",
            "--num-samples",
            "360",
            "--metrics",
            "fid,pr,memorisation",
            "--json",
            out,
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "features: classifier-layers" in text and "fid_x_floor" in text
    for subject in ("real test (floor)", "test + noise 0.5", "test, dots stride 2", "memorised: reference copies"):
        assert subject in text
    assert out.is_file()
