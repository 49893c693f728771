"""The evaluation classifier, extractors, cached reference features, protocols, CLI and --eval-every."""

import json
import re

import pytest
import torch

from dcgan.cli import main
from dcgan.data import default_cache_dir, load_dataset
from dcgan.errors import CheckpointError, ConfigError
from dcgan.metrics import (
    METRICS,
    TrackedMetric,
    TrainedClassifier,
    build_extractor,
    evaluate,
    load_classifier,
    reference_features,
    resolve_features,
    save_classifier,
)
from dcgan.metrics.classifier import accuracy, adapt_images
from dcgan.training import Trainer
from dcgan.training.monitors import Evaluate, describe_best

from conftest import TINY


def test_classifier_learns_digits_and_round_trips(digits_classifier, tmp_path):
    assert digits_classifier.info["test_accuracy"] > 0.8  # 16x16 digits, 8 epochs, width 8
    path = save_classifier(tmp_path / "c.safetensors", digits_classifier)
    loaded = load_classifier(path)
    test = load_dataset("digits", image_size=16, split="test")
    assert accuracy(loaded.model, test.images, test.labels) == pytest.approx(digits_classifier.info["test_accuracy"])
    assert loaded.weights_id() == digits_classifier.weights_id()
    assert loaded.config.classes == tuple(str(i) for i in range(10))


def test_loading_something_else_as_a_classifier_is_one_line(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="not a readable evaluation classifier"):
        load_classifier(bad)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_classifier(tmp_path / "missing.safetensors")


def test_adapt_images_converts_size_and_channels():
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    y = adapt_images(x, 32, 1)
    assert y.shape == (2, 1, 32, 32) and y.min() >= -1 and y.max() <= 1
    assert adapt_images(torch.zeros(1, 1, 16, 16), 16, 3).shape == (1, 3, 16, 16)


def test_extractor_registry():
    with pytest.raises(ConfigError, match="unknown feature extractor"):
        build_extractor("bogus")
    px = build_extractor("pixels")
    assert px.features(torch.zeros(3, 3, 64, 64)).shape == (3, 3 * 16 * 16)
    with pytest.raises(CheckpointError, match="dcgan evaluator train --data nosuch"):
        build_extractor("classifier", dataset="nosuch")
    with pytest.raises(ConfigError, match="needs a checkpoint"):
        build_extractor("discriminator")


def test_inception_extractor_explains_what_is_missing():
    try:
        import pytorch_fid  # noqa: F401
    except Exception:
        with pytest.raises(ConfigError, match="pip install pytorch-fid"):
            build_extractor("inception")
    else:
        pytest.skip("pytorch-fid is installed; the weights may need a download")


def test_reference_features_are_cached_and_invalidated(digits16, tmp_path):
    calls = []
    ex = build_extractor("pixels")
    inner = ex.fn
    ex.fn = lambda x: (calls.append(len(x)), inner(x))[1]
    first = reference_features(digits16, ex, 300, cache_dir=tmp_path)
    assert calls and len(list(tmp_path.iterdir())) == 1
    calls.clear()
    second = reference_features(digits16, ex, 300, cache_dir=tmp_path)
    assert not calls and torch.equal(first, second)  # read from the cache, not recomputed
    changed = load_dataset("digits", image_size=16)
    changed.images = changed.images.clone()
    changed.images[0, 0, 0, 0] ^= 1  # one pixel differs: a different dataset
    reference_features(changed, ex, 300, cache_dir=tmp_path)
    assert calls and len(list(tmp_path.iterdir())) == 2
    reference_features(digits16, ex, 200, cache_dir=tmp_path)  # another sample count: another entry
    assert len(list(tmp_path.iterdir())) == 3


def test_floors_and_noise_ladder_order(digits_classifier):
    train = load_dataset("digits", image_size=16, split="train")
    test = load_dataset("digits", image_size=16, split="test")
    for name in ("classifier", "pixels"):  # classifier-layers: the sanity ladder's tests
        ex = build_extractor(name, dataset="digits")
        report = evaluate(None, train, ex, ["fid", "kid", "pr"], num_samples=360, classifier=None, test=test, ladder=(0.1, 0.2, 0.5))
        fids = [row["fid"] for row in report.rows]
        assert [row["subject"] for row in report.rows] == ["real test (floor)", "test + noise 0.1", "test + noise 0.2", "test + noise 0.5"]
        assert fids == sorted(fids), (name, fids)  # FID grows along the noise ladder
        assert report.rows[0]["kid"] < report.rows[-1]["kid"], name
        if name == "pixels":
            # the classifier is trained to look past noise (NOISE_AUGMENTATION), so its precision may hold at 0.5
            assert report.rows[0]["precision"] > report.rows[-1]["precision"]
        assert report.protocol["num_real"] == 360 and report.protocol["features"] == name


def test_evaluate_a_generator(digits_classifier):
    trainer = Trainer.from_options(data="digits", progress=False, steps=30, seed=0, batch_size=64, **TINY)
    trainer.train()
    train = trainer.data
    ex = build_extractor("classifier", dataset="digits")
    report = evaluate(trainer.G, train, ex, ["fid", "kid", "pr", "dc", "is", "coverage", "confidence"], num_samples=300, classifier=ex.classifier)
    row = report.rows[0]
    assert row["subject"] == "generator" and row["n"] == 300
    assert row["fid"] > 0 and 1.0 <= row["is"] <= 10.0 and 0 <= row["confidence"] <= 1
    assert sum(row["class_shares"].values()) == pytest.approx(1.0, abs=1e-3)
    again = evaluate(trainer.G, train, ex, ["fid"], num_samples=300)
    assert again.rows[0]["fid"] == pytest.approx(row["fid"])  # the same seed gives the same samples
    assert "generator" in report.table() and "fid" in report.table()


@pytest.fixture
def half_fid():
    """A tracked metric registered for one test (half the FID, higher is better: only its direction differs)."""
    from dcgan.metrics import fid_from_features, register_metric

    @register_metric("half_fid", "features", {"half_fid": False}, "half the FID", tracked=True, label="half-FID")
    def _half_fid(real, fake):
        return {"half_fid": fid_from_features(real, fake) / 2}

    yield METRICS["half_fid"]
    del METRICS["half_fid"]


def test_a_tracked_metric_is_one_registry_entry(half_fid):
    from dcgan.models import ModelConfig, build_generator

    G = build_generator(ModelConfig(**TINY))
    ex = build_extractor("pixels")
    real = ex.features(torch.rand(64, 1, 16, 16) * 2 - 1)
    tracked = TrackedMetric(ex, real, 64, metric="half_fid")
    figures = tracked.figures(G)
    assert set(figures) == {"fid", "half_fid"} and figures["half_fid"] == pytest.approx(figures["fid"] / 2)
    assert not tracked.lower_is_better and tracked(G) == figures["half_fid"]
    best = {"metric": "half_fid", "half_fid": 1.25, "fid": 2.5, "step": 4}
    assert describe_best(best) == "half-FID 1.250 (FID 2.500) at step 4"
    assert describe_best({"metric": "gone", "gone": 1.0, "fid": 3.0}) == "FID 3.000"  # a metric no longer registered
    with pytest.raises(ConfigError, match="unknown tracked metric 'kid': use fid, conditional_accuracy, intra_fid, half_fid"):
        TrackedMetric(ex, real, 64, metric="kid")


def test_eval_every_does_not_change_training(digits_classifier):
    opts = dict(data="digits", progress=False, steps=12, seed=3, batch_size=64, **TINY)
    plain = Trainer.from_options(**opts)
    plain.train()
    tracked = Trainer.from_options(eval_every=5, eval_samples=200, **opts)
    result = tracked.train()
    for a, b in zip(plain.G.state_dict().values(), tracked.G.state_dict().values()):
        assert torch.equal(a, b)
    assert result.best and result.best["step"] in (5, 10, 12)
    # auto picks the trained classifier's features (classifier-layers once training resolves auto with resolve_features)
    assert tracked.callback(Evaluate).tracked.extractor.name in ("classifier", "classifier-layers")


def _cli(*args) -> int:
    """Exit status of `dcgan ARGS` run in-process (argparse's own errors arrive as SystemExit)."""
    try:
        return main([str(a) for a in args])
    except SystemExit as exc:
        return exc.code


def test_cli_evaluator_train_and_list(tmp_path, capsys):
    out = tmp_path / "clf.safetensors"
    assert _cli("evaluator", "train", "--data", "digits", "--image-size", "16", "--epochs", "2", "--width", "8", "--out", out, "--quiet") == 0
    assert "test accuracy" in capsys.readouterr().out and out.is_file()
    assert _cli("evaluator", "train", "--data", "digits", "--out", out, "--quiet") == 2  # never replaced silently
    assert "--force" in capsys.readouterr().err
    assert _cli("evaluator", "list") == 0
    assert _cli("evaluator", "train", "--data", "/nonexistent/folder", "--quiet") == 2


def test_cli_train_with_eval_every_then_evaluate(digits_classifier, tmp_path, capsys):
    run = tmp_path / "run"
    code = _cli(
        "train",
        "--data",
        "digits",
        "--image-size",
        "16",
        "--z-dim",
        "8",
        "--width",
        "8",
        "--steps",
        "20",
        "--batch-size",
        "64",
        "--seed",
        "1",
        "--eval-every",
        "10",
        "--eval-samples",
        "200",
        "--out",
        run,
        "--quiet",
    )
    assert code == 0
    out = capsys.readouterr().out
    assert re.search(r": classifier(-layers)? features", out) and "best checkpoint" in out
    assert (run / "checkpoints" / "best.safetensors").is_file()
    evals = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if '"fid"' in line]
    assert [e["step"] for e in evals] == [10, 20]
    assert (run / "losses.png").stat().st_size > 0

    code = _cli("evaluate", run, "--num-samples", "300", "--floors", "--metrics", "fid,kid,pr,dc,is,coverage,confidence")
    assert code == 0
    out = capsys.readouterr().out
    # the default features: the layer features of the trained classifier
    assert "protocol: features classifier-layers" in out and "real test (floor)" in out and "test + noise 0.5" in out
    report = json.loads((run / "eval" / "step_0000020-classifier-layers.json").read_text())
    assert [r["subject"] for r in report["results"]][:2] == ["generator", "real test (floor)"]
    assert report["protocol"]["num_generated"] == 300 and report["protocol"]["real_split"] == "train"

    assert _cli("evaluate", run, "--num-samples", "300", "--features", "classifier", "--metrics", "fid") == 0
    assert "protocol: features classifier (" in capsys.readouterr().out  # the penultimate layer alone, by name
    # more samples than the test split has images: the floor is read at a smaller count, and the output says so
    assert _cli("evaluate", run, "--num-samples", "1000", "--floors", "--metrics", "fid,grid", "--json", tmp_path / "n.json") == 0
    note = re.search(
        r"note: the floor and the rungs use the (\d+) test images there are, against 1000 samples.*--num-samples (\d+)", capsys.readouterr().out
    )
    assert note and note.group(1) == note.group(2) and int(note.group(1)) < 1000
    assert (run / "eval" / "step_0000020-classifier.json").is_file()

    out_json = tmp_path / "px.json"
    assert (
        _cli(
            "evaluate",
            run / "checkpoints" / "best.safetensors",
            "--features",
            "pixels",
            "--metrics",
            "fid",
            "--num-samples",
            "100",
            "--json",
            out_json,
        )
        == 0
    )
    assert json.loads(out_json.read_text())["protocol"]["features"] == "pixels"
    assert _cli("evaluate", run, "--features", "discriminator", "--metrics", "fid,kid", "--num-samples", "100", "--json", tmp_path / "d.json") == 0
    # the reference features were cached
    assert any((default_cache_dir() / "reference").iterdir())


def test_cli_evaluate_user_errors(tmp_path, capsys, digits_classifier):
    assert _cli("evaluate", tmp_path / "missing") == 2
    assert _cli("evaluate") == 2
    assert "--floors" in capsys.readouterr().err
    assert _cli("evaluate", "--data", "digits", "--floors", "--metrics", "bogus") == 2
    assert "unknown metric" in capsys.readouterr().err
    assert _cli("evaluate", "--data", "digits", "--floors", "--features", "classifier", "--evaluator", tmp_path / "none.safetensors") == 2
    assert "does not exist" in capsys.readouterr().err
    assert _cli("evaluate", "--data", "digits", "--floors", "--num-samples", "0") == 2


def test_cli_floors_only(digits_classifier, capsys):
    assert _cli("evaluate", "--data", "digits", "--image-size", "16", "--floors", "--num-samples", "360", "--metrics", "fid,confidence") == 0
    out = capsys.readouterr().out
    assert "real test (floor)" in out and "confidence" in out and "generator" not in out


def test_auto_features_resolution(digits_classifier, tmp_path, monkeypatch):
    assert resolve_features("auto", "digits")[0] == "classifier-layers"
    assert resolve_features("pixels", "digits") == ("pixels", "")
    # a classifier saved before the layer calibration existed: its penultimate layer, and how to calibrate it
    old_info = {k: v for k, v in digits_classifier.info.items() if k != "layer_calibration"}
    old = save_classifier(tmp_path / "old.safetensors", TrainedClassifier(digits_classifier.model, old_info))
    name, note = resolve_features("auto", "digits", old)
    assert name == "classifier" and "dcgan evaluator calibrate --data digits" in note
    with pytest.raises(ConfigError, match="dcgan evaluator calibrate --data digits"):
        build_extractor("classifier-layers", dataset="digits", evaluator=old)
    # no classifier at all: pixels, and how to get better features
    monkeypatch.setenv("DCGAN_EVALUATOR_DIR", str(tmp_path / "empty"))
    name, note = resolve_features("auto", "digits")
    assert name == "pixels" and "dcgan evaluator train --data digits" in note


def test_cli_evaluate_without_a_classifier(tmp_path, capsys, monkeypatch):
    """A fresh machine: no evaluation classifier. Pixels, one line saying so, and the probability
    metrics skipped with a note, unless asked for by name."""
    monkeypatch.setenv("DCGAN_EVALUATOR_DIR", str(tmp_path / "evaluators"))
    run = tmp_path / "run"
    assert (
        _cli(
            "train",
            "--data",
            "digits",
            "--image-size",
            "16",
            "--z-dim",
            "8",
            "--width",
            "8",
            "--steps",
            "4",
            "--batch-size",
            "64",
            "--seed",
            "1",
            "--out",
            run,
            "--quiet",
        )
        == 0
    )
    capsys.readouterr()
    assert _cli("evaluate", run, "--num-samples", "100") == 0
    out = capsys.readouterr().out
    assert "features: pixels" in out and "dcgan evaluator train --data digits" in out
    assert "skipped is, coverage, confidence" in out and "protocol: features pixels" in out
    report = json.loads((run / "eval" / "step_0000004-pixels.json").read_text())
    assert "fid" in report["results"][0] and "is" not in report["results"][0]
    assert _cli("evaluate", run, "--num-samples", "100", "--metrics", "fid,is") == 2  # asked for by name: an error
    assert "dcgan evaluator train --data digits" in capsys.readouterr().err


def test_cli_evaluator_calibrate(digits_classifier, tmp_path, capsys):
    old_info = {k: v for k, v in digits_classifier.info.items() if k != "layer_calibration"}
    path = save_classifier(tmp_path / "old.safetensors", TrainedClassifier(digits_classifier.model, old_info))
    assert _cli("evaluator", "calibrate", "--data", "digits", "--evaluator", path) == 0
    assert "layer calibration measured on 1437 training images" in capsys.readouterr().out
    calibrated = load_classifier(path)
    assert calibrated.info["layer_calibration"] == digits_classifier.info["layer_calibration"]  # as if trained today
    assert calibrated.weights_id() == digits_classifier.weights_id()
    assert _cli("evaluator", "calibrate", "--data", "digits", "--evaluator", tmp_path / "none.safetensors") == 2
