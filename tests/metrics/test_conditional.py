"""Metrics of class-conditional generators: conditional accuracy, intra-FID with its per-class floor,
--eval-every tracking them, and `dcgan evaluate` on a conditional run."""

import dataclasses
import json

import pytest
import torch
from torch import nn

from dcgan.checkpoint import load_checkpoint
from dcgan.cli import main
from dcgan.data import load_dataset
from dcgan.errors import ConfigError
from dcgan.metrics import (
    Classifier,
    TrainedClassifier,
    build_extractor,
    conditional_accuracy,
    evaluate,
    fid_from_features,
    intra_fid,
    save_classifier,
)
from dcgan.models import ModelConfig
from dcgan.training import Trainer
from dcgan.training.monitors import Evaluate

from conftest import TINY

COND = ["conditional_accuracy", "intra_fid"]


def _cli(*args) -> int:
    try:
        return main([str(a) for a in args])
    except SystemExit as exc:
        return exc.code


class RealImagesOfClass(nn.Module):
    """A stand-in "generator" that answers class y with a real image of class (y + shift) % 10, picked by z.

    shift 0 is a perfect conditional generator (as good as real held-out images); shift 1 draws perfect
    digits of the wrong class, so the overall mix of images, and with it the overall FID, is unchanged.
    """

    def __init__(self, data, shift: int = 0):
        super().__init__()
        self.config = ModelConfig(**TINY, num_classes=10, class_names=tuple(data.classes))
        self.anchor = nn.Parameter(torch.zeros(1))  # generate() reads the device from the parameters
        self.images = data.images.float() / 127.5 - 1  # (N, 1, 16, 16)
        self.pools = [(data.labels == c).nonzero().squeeze(1) for c in range(10)]
        self.shift = shift

    def forward(self, z, labels):
        picks = []
        for zi, y in zip(z, labels):
            pool = self.pools[(int(y) + self.shift) % 10]
            picks.append(pool[int(zi[0].abs() * 1e4) % len(pool)])
        return self.images[torch.stack(picks)]


@pytest.fixture(scope="module")
def digits_splits():
    return load_dataset("digits", image_size=16, split="train"), load_dataset("digits", image_size=16, split="test")


# --------------------------------------------------------------------------- #
# The scores
# --------------------------------------------------------------------------- #
def test_conditional_accuracy_counts_the_requested_class():
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    probs = torch.nn.functional.one_hot(torch.tensor([0, 1, 1, 1, 0, 0]), 3).float()  # right: 0, 1, 1, -, -, -
    out = conditional_accuracy(probs, labels, ["a", "b", "c"])
    assert out["conditional_accuracy"] == pytest.approx(3 / 6)
    assert out["class_accuracy"] == {"a": 0.5, "b": 1.0, "c": 0.0}
    with pytest.raises(ConfigError, match="one label per sample"):
        conditional_accuracy(probs, labels[:4])


def test_intra_fid_is_the_mean_of_per_class_fids():
    g = torch.Generator().manual_seed(0)
    real = [torch.randn(50, 4, generator=g) + c for c in range(3)]
    fake = torch.cat([torch.randn(40, 4, generator=g) + c for c in range(3)])
    labels = torch.arange(3).repeat_interleave(40)
    out = intra_fid(real, fake, labels, ["x", "y", "z"])
    per_class = [fid_from_features(real[c], fake[labels == c]) for c in range(3)]
    assert list(out["class_fid"]) == ["x", "y", "z"]
    assert out["class_fid"]["y"] == pytest.approx(per_class[1])
    assert out["intra_fid"] == pytest.approx(sum(per_class) / 3)
    # the right images under the wrong labels: per class they are far off
    assert intra_fid(real, fake, (labels + 1) % 3)["intra_fid"] > 3 * out["intra_fid"]
    with pytest.raises(ConfigError, match="class z has 50 real and 1 generated"):
        intra_fid(real, fake[:81], labels[:81], ["x", "y", "z"])


# --------------------------------------------------------------------------- #
# evaluate(): a perfect and a wrong-class generator against the per-class floor
# --------------------------------------------------------------------------- #
def test_real_images_of_the_right_class_score_at_the_floor_and_shifted_classes_do_not(digits_classifier, digits_splits):
    train, test = digits_splits
    ex = build_extractor("classifier-layers", dataset="digits")
    rows = {}
    for shift in (0, 1):
        report = evaluate(
            RealImagesOfClass(test, shift), train, ex, ["fid", *COND], num_samples=360, classifier=ex.classifier, test=test, test_metrics=COND
        )
        gen, floor = report.rows
        assert gen["subject"] == "generator" and floor["subject"] == "real test (floor)"
        rows[shift] = gen
    right, wrong = rows[0], rows[1]
    accuracy = digits_classifier.info["test_accuracy"]
    # the right class: recognised as often as real test images are, and intra-FID at the real-vs-real floor
    assert right["conditional_accuracy"] > 0.8 and right["conditional_accuracy"] == pytest.approx(accuracy, abs=0.05)
    assert floor["conditional_accuracy"] == pytest.approx(accuracy, abs=1e-6)  # the floor is the classifier's test accuracy
    assert right["intra_fid"] < 1.5 * floor["intra_fid"]
    # the wrong class: almost never recognised as the class asked for, and intra-FID far above the floor ...
    assert wrong["conditional_accuracy"] < 0.1
    assert wrong["intra_fid"] > 5 * floor["intra_fid"]
    assert all(wrong["class_fid"][c] > right["class_fid"][c] for c in right["class_fid"])
    # ... while the overall FID cannot tell the two apart: the mix of images is the same
    assert wrong["fid"] == pytest.approx(right["fid"], rel=0.3)
    # per-class figures and counts, stated
    assert list(right["class_accuracy"]) == list(test.classes) and right["class_counts"] == {c: 36 for c in test.classes}
    assert sum(floor["class_counts"].values()) == 360 and floor["class_counts"]["3"] == 37
    assert report.protocol["num_real_per_class"] == {c: 36 for c in train.classes}
    assert report.protocol["classes"] == list(train.classes) and "intra_fid" in report.protocol["metrics"]
    assert "class_accuracy" not in report.table() and "intra_fid" in report.table()


def test_conditional_metrics_check_the_generator_and_the_classifier(digits_classifier, digits_splits):
    train, test = digits_splits
    ex = build_extractor("pixels")
    plain = RealImagesOfClass(test)
    plain.config = dataclasses.replace(plain.config, num_classes=0, class_names=())
    with pytest.raises(ConfigError, match="class-conditional generator, and this one is unconditional"):
        evaluate(plain, train, ex, ["intra_fid"], num_samples=40)
    with pytest.raises(ConfigError, match="needs an evaluation classifier"):
        evaluate(RealImagesOfClass(test), train, ex, ["conditional_accuracy"], num_samples=40)
    renamed = _renamed_classifier(digits_classifier, tuple("abcdefghij"))
    with pytest.raises(ConfigError, match=r"classes \(a, b, c, d, e, f, g, h, i, j\) are not the model's 10 \(0, 1,"):
        evaluate(RealImagesOfClass(test), train, ex, ["conditional_accuracy"], num_samples=40, classifier=renamed)
    # real data whose classes are not the model's
    other = dataclasses.replace(train, classes=list("abcdefghij"))
    with pytest.raises(ConfigError, match="real data's classes"):
        evaluate(RealImagesOfClass(test), other, ex, ["intra_fid"], num_samples=40)


def _renamed_classifier(clf: TrainedClassifier, classes: tuple) -> TrainedClassifier:
    """The same weights under other class names (or, with fewer classes, a fresh head)."""
    config = dataclasses.replace(clf.config, classes=classes, num_classes=len(classes))
    model = Classifier(config)
    state = {k: v for k, v in clf.model.state_dict().items() if not k.startswith("head.") or len(classes) == clf.config.num_classes}
    model.load_state_dict(state, strict=False)
    return TrainedClassifier(model, dict(clf.info))


# --------------------------------------------------------------------------- #
# --eval-every tracking a conditional metric
# --------------------------------------------------------------------------- #
class _Scripted:
    """A tracked metric that answers a fixed sequence of values (to check which one "best" keeps)."""

    def __init__(self, name: str, lower_is_better: bool, values: list[float]):
        self.name, self.lower_is_better, self.values = name, lower_is_better, list(values)
        self.extractor = build_extractor("pixels")

    def protocol(self) -> str:
        return "scripted"

    def figures(self, G) -> dict:
        value = self.values.pop(0)
        return {"fid": 100.0 + value, self.name: value} if self.name != "fid" else {"fid": value}


@pytest.mark.parametrize(
    "name, lower, values, best_step",
    [
        ("conditional_accuracy", False, [0.2, 0.6, 0.4], 4),  # highest wins
        ("intra_fid", True, [5.0, 3.0, 4.0], 4),  # lowest wins
        ("fid", True, [5.0, 6.0, 4.0], 6),
    ],
)
def test_the_best_checkpoint_follows_the_metric_direction(tmp_path, name, lower, values, best_step):
    run = tmp_path / "run"
    trainer = Trainer.from_options(run_dir=run, progress=False, data="digits", **TINY, conditional=True, steps=6, batch_size=32, eval_every=2, seed=0)
    trainer.callback(Evaluate).tracked = _Scripted(name, lower, values)
    result = trainer.train()
    assert result.best["step"] == best_step and load_checkpoint(run / "checkpoints" / "best.safetensors").step == best_step
    expected = {"fid": 4.0, "step": 6} if name == "fid" else {"metric": name, name: values[1], "fid": 100 + values[1], "step": 4}
    assert result.best == expected
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if '"eval"' in line]
    assert [r["step"] for r in records] == [2, 4, 6] and [r[name] for r in records] == values


def test_cli_train_tracks_conditional_accuracy(digits_classifier, tmp_path, capsys):
    run = tmp_path / "run"
    assert (
        _cli(
            "train",
            "--data",
            "digits",
            "--conditional",
            "--image-size",
            "16",
            "--z-dim",
            "8",
            "--width",
            "8",
            "--steps",
            "20",
            "--batch-size",
            "32",
            "--seed",
            "1",
            "--eval-every",
            "10",
            "--eval-samples",
            "200",
            "--eval-metric",
            "conditional_accuracy",
            "--out",
            run,
            "--quiet",
        )
        == 0
    )
    out = capsys.readouterr().out
    evals = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if '"tracked"' in line]
    assert [e["step"] for e in evals] == [10, 20]
    for e in evals:
        assert e["tracked"] == "conditional_accuracy" and 0 <= e["conditional_accuracy"] <= 1 and e["fid"] > 0
        assert len(e["class_accuracy"]) == 10 and "accuracy by the evaluation classifier" in e["eval"]
    best = max(evals, key=lambda e: e["conditional_accuracy"])  # the first of equals: only a higher value replaces it
    ckpt = load_checkpoint(run / "checkpoints" / "best.safetensors")
    assert ckpt.step == best["step"] and ckpt.record.best["conditional_accuracy"] == best["conditional_accuracy"]
    assert f"(conditional accuracy {100 * best['conditional_accuracy']:.1f}% (FID" in out and "best checkpoint" in out
    # --eval-metric defines the run's "best": --resume may not change it
    assert _cli("train", "--resume", run, "--steps", "30", "--eval-metric", "intra_fid", "--quiet") == 2
    assert "--eval-metric" in capsys.readouterr().err


def test_eval_every_tracks_intra_fid(tmp_path):
    run = tmp_path / "run"
    trainer = Trainer.from_options(
        run_dir=run,
        progress=False,
        data="digits",
        **TINY,
        conditional=True,
        steps=10,
        batch_size=32,
        eval_every=5,
        eval_samples=100,
        eval_metric="intra_fid",
        eval_features="pixels",
        seed=0,
    )
    result = trainer.train()
    evals = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if '"tracked"' in line]
    assert [e["step"] for e in evals] == [5, 10] and all(e["tracked"] == "intra_fid" for e in evals)
    assert all(len(e["class_fid"]) == 10 and e["intra_fid"] == pytest.approx(sum(e["class_fid"].values()) / 10) for e in evals)
    assert "intra-FID per class: about 10 generated vs 10 real" in evals[0]["eval"]
    best = min(evals, key=lambda e: e["intra_fid"])
    assert result.best == {"metric": "intra_fid", "intra_fid": best["intra_fid"], "fid": best["fid"], "step": best["step"]}
    assert load_checkpoint(run / "checkpoints" / "best.safetensors").step == best["step"]
    with pytest.raises(ConfigError, match="at least 2 samples per class"):
        Trainer.from_options(
            run_dir=tmp_path / "few",
            progress=False,
            data="digits",
            **TINY,
            conditional=True,
            steps=2,
            eval_every=1,
            eval_samples=10,
            eval_metric="intra_fid",
            eval_features="pixels",
        ).train()


def test_cli_train_conditional_metric_on_an_unconditional_model_is_one_line(tmp_path, capsys):
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
            "--eval-every",
            "2",
            "--eval-metric",
            "intra_fid",
            "--out",
            tmp_path / "run",
            "--quiet",
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "--eval-metric intra_fid scores a class-conditional model" in err and len(err.strip().splitlines()) == 1, err


# --------------------------------------------------------------------------- #
# dcgan evaluate on a conditional run
# --------------------------------------------------------------------------- #
def test_cli_evaluate_a_conditional_run(conditional_run, digits_classifier, tmp_path, capsys):
    out_json = tmp_path / "report.json"
    assert _cli("evaluate", conditional_run, "--num-samples", "200", "--json", out_json) == 0
    out = capsys.readouterr().out
    report = json.loads(out_json.read_text())
    gen, floor = report["results"][0], report["results"][1]
    assert gen["subject"] == "generator" and floor["subject"] == "real test (floor)"
    for key in ("fid", "kid", "conditional_accuracy", "intra_fid", "class_entropy"):
        assert key in gen, key
    assert set(gen["class_accuracy"]) == set(gen["class_fid"]) == {str(i) for i in range(10)}
    assert gen["class_counts"] == {str(i): 20 for i in range(10)}
    # the per-class floor: real test images of each class, at the same per-class counts as the reference
    assert floor["intra_fid"] > 0 and floor["conditional_accuracy"] > 0.8 and "fid" not in floor
    assert report["protocol"]["num_real_per_class"] == {str(i): 20 for i in range(10)}
    # on screen: the overall table, class coverage, and the per-class table with the floor beside it
    assert "conditional_accuracy" in out and "intra_fid" in out and "class shares (generator)" in out
    assert "per class" in out and "floor intra-FID" in out
    table = out[out.index("per class") :].splitlines()
    assert table[1].split()[:3] == ["class", "samples", "accuracy"]
    assert [line.split()[0] for line in table[2:13]] == [str(i) for i in range(10)] + ["all"]
    assert "intra-FID compares each class's samples with that class's real images alone (20 per class here)" in out

    # --floors: every rung gets the per-class figures; --sanity: the ladder's floor row carries them
    assert (
        _cli("evaluate", conditional_run, "--num-samples", "100", "--metrics", "fid,intra_fid", "--floors", "--json", tmp_path / "floors.json") == 0
    )
    rows = json.loads((tmp_path / "floors.json").read_text())["results"]
    assert [r["subject"] for r in rows][:3] == ["generator", "real test (floor)", "test + noise 0.1"]
    assert all("intra_fid" in r and "fid" in r for r in rows)
    assert rows[1]["intra_fid"] < rows[-1]["intra_fid"]  # noise 0.5 on the right classes is worse than the floor
    capsys.readouterr()
    assert (
        _cli("evaluate", conditional_run, "--num-samples", "100", "--metrics", "fid,intra_fid", "--sanity", "--json", tmp_path / "sanity.json") == 0
    )
    rows = json.loads((tmp_path / "sanity.json").read_text())["results"]
    floors = [r for r in rows if r["subject"] == "real test (floor)"]
    assert len(floors) == 1 and "intra_fid" in floors[0] and floors[0]["fid_x_floor"] == 1.0
    assert "intra_fid" not in next(r for r in rows if r["subject"] == "test + noise 0.5")  # mixed images: no per-class score


def test_cli_evaluate_class_mismatch_is_one_line(conditional_run, digits_classifier, tmp_path, capsys):
    fewer = save_classifier(tmp_path / "three.safetensors", _renamed_classifier(digits_classifier, ("0", "1", "2")))
    renamed = save_classifier(tmp_path / "letters.safetensors", _renamed_classifier(digits_classifier, tuple("abcdefghij")))
    for path, what in (
        (fewer, "classifier's 3 classes (0, 1, 2) are not the model's 10"),
        (renamed, "classifier's 10 classes (a, b, c, d, e, f, g, h, i, j) are not the model's 10"),
    ):
        capsys.readouterr()
        assert _cli("evaluate", conditional_run, "--evaluator", path, "--num-samples", "100", "--json", tmp_path / "x.json") == 2
        err = capsys.readouterr().err
        assert what in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_cli_conditional_metrics_need_a_conditional_checkpoint(digits_classifier, tmp_path, capsys):
    run = tmp_path / "run"
    Trainer.from_options(run_dir=run, progress=False, data="digits", **TINY, steps=4, batch_size=32, seed=0).train()
    assert _cli("evaluate", run, "--num-samples", "100", "--metrics", "fid,intra_fid") == 2
    err = capsys.readouterr().err
    assert "intra_fid score a class-conditional generator: this checkpoint is unconditional" in err and len(err.strip().splitlines()) == 1
    # --metrics all on an unconditional model: as before, no conditional figures and no per-class table
    assert _cli("evaluate", run, "--num-samples", "100", "--json", tmp_path / "plain.json") == 0
    out = capsys.readouterr().out
    gen = json.loads((tmp_path / "plain.json").read_text())["results"][0]
    assert "fid" in gen and "intra_fid" not in gen and "conditional_accuracy" not in gen and "per class" not in out
