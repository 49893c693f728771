"""--tensorboard: what a run writes to RUN_DIR/tensorboard, read back as TensorBoard reads it."""

import io
import json
import sys

import pytest
from PIL import Image

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

from dcgan.errors import ConfigError  # noqa: E402
from dcgan.models import ModelConfig  # noqa: E402
from dcgan.training import Action, Callback, TrainConfig, Trainer  # noqa: E402

from conftest import TINY  # noqa: E402

TRAIN = ("loss_d", "loss_g", "d_real", "d_fake", "images_per_s", "epoch", "elapsed_s")


def make_trainer(data, run_dir, callbacks=None, **train):
    options = dict(batch_size=32, seed=0, device="cpu", steps=8, log_every=2, sample_every=4, checkpoint_every=4, tensorboard=True)
    options.update(train)
    return Trainer(ModelConfig(**TINY), TrainConfig(**options), data, run_dir=run_dir, progress=False, callbacks=callbacks)


def read_log(run_dir) -> EventAccumulator:
    """The event log as TensorBoard shows it (everything kept, restarts purged)."""
    acc = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "images": 0, "histograms": 0, "tensors": 0})
    return acc.Reload()


def steps(acc, tag, kind="Scalars"):
    return [e.step for e in getattr(acc, kind)(tag)]


def config_texts(acc) -> list[tuple[int, dict]]:
    out = []
    for event in acc.Tensors("config/text_summary"):
        text = event.tensor_proto.string_val[0].decode()
        out.append((event.step, json.loads("\n".join(line[4:] for line in text.splitlines()))))  # a 4-space code block
    return out


def test_a_run_logs_every_figure_the_grid_histograms_and_its_config(digits16, tmp_path):
    run = tmp_path / "run"
    trainer = make_trainer(digits16, run)
    trainer.train()
    acc = read_log(run)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for key in TRAIN:  # every figure of metrics.jsonl, at its steps, with its value
        events = acc.Scalars(f"train/{key}")
        assert [e.step for e in events] == [2, 4, 6, 8], key
        assert [e.value for e in events] == pytest.approx([r[key] for r in records], rel=1e-6), key
    # The fixed-noise grid at each write, as the PNG the run saved.
    images = acc.Images("samples")
    assert [e.step for e in images] == [4, 8]
    with Image.open(io.BytesIO(images[-1].encoded_image_string)) as shown, Image.open(run / "samples.png") as saved:
        assert shown.size == saved.size and shown.size[0] >= 256
        assert shown.convert("RGB").tobytes() == saved.convert("RGB").tobytes()
    # Weight histograms of both networks at each grid, and the gradient norms beside them.
    histograms = acc.Tags()["histograms"]
    expected = [f"G/{n}" for n, _ in trainer.G.named_parameters()] + [f"D/{n}" for n, _ in trainer.D.named_parameters()]
    assert sorted(histograms) == sorted(expected)
    assert all(steps(acc, tag, "Histograms") == [4, 8] for tag in histograms)
    weight = trainer.G.blocks[0][0].weight
    assert acc.Histograms("G/blocks.0.0.weight")[-1].histogram_value.num == weight.numel()
    assert acc.Histograms("G/blocks.0.0.weight")[-1].histogram_value.max == pytest.approx(weight.max().item())
    for net in ("G", "D"):
        norms = acc.Scalars(f"grad_norm/{net}")
        assert [e.step for e in norms] == [4, 8] and all(e.value > 0 for e in norms)
    # The run's config, once at the start.
    [(step, config)] = config_texts(acc)
    assert step == 0 and config == json.loads((run / "config.json").read_text())
    assert config["train"]["tensorboard"] is True
    assert "eval/fid" not in acc.Tags()["scalars"]  # no --eval-every, no evaluation


def test_a_conditional_run_logs_its_tracked_metric_and_its_class_grid(digits_classifier, tmp_path):
    run = tmp_path / "run"
    Trainer.from_options(
        run_dir=run,
        progress=False,
        data="digits",
        **TINY,
        conditional=True,
        steps=4,
        batch_size=32,
        seed=0,
        log_every=2,
        sample_every=4,
        eval_every=2,
        eval_samples=100,
        eval_metric="conditional_accuracy",
        tensorboard=True,
    ).train()
    acc = read_log(run)
    evals = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if '"tracked"' in line]
    assert [e["step"] for e in evals] == [2, 4]
    for key in ("conditional_accuracy", "fid"):
        events = acc.Scalars(f"eval/{key}")
        assert [e.step for e in events] == [2, 4]
        assert [e.value for e in events] == pytest.approx([e[key] for e in evals], rel=1e-6)
    per_class = [t for t in acc.Tags()["scalars"] if t.startswith("eval/class_accuracy/")]
    assert sorted(per_class) == sorted(f"eval/class_accuracy/{c}" for c in evals[0]["class_accuracy"]) and len(per_class) == 10
    assert not any(t.startswith("eval/") and t.endswith(("epoch", "step")) for t in acc.Tags()["scalars"])
    # The grid: a row per class, as saved.
    [image] = acc.Images("samples")
    with Image.open(run / "samples.png") as saved:
        assert image.step == 4 and (image.width, image.height) == saved.size


class CrashAt(Callback):
    """Fails after the log point at `step`, as a killed process would: the last checkpoint is older."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, trainer):
        if trainer.state.step == self.step:
            raise RuntimeError("killed")


def test_a_resumed_run_continues_the_same_log_without_duplicate_steps(digits16, tmp_path):
    run = tmp_path / "run"
    with pytest.raises(RuntimeError, match="killed"):
        make_trainer(digits16, run, callbacks=[CrashAt(6)]).train()  # logged step 6; its checkpoint is at step 4
    before = read_log(run)
    assert steps(before, "train/loss_d") == [2, 4, 6]
    Trainer.resume(run, data=digits16, progress=False).train()
    acc = read_log(run)
    for key in TRAIN:
        assert steps(acc, f"train/{key}") == [2, 4, 6, 8], key
    # The step-6 figures shown are the resumed run's: the same as metrics.jsonl now holds.
    records = {r["step"]: r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())}
    assert acc.Scalars("train/elapsed_s")[2].value == pytest.approx(records[6]["elapsed_s"], rel=1e-6)
    assert steps(acc, "samples", "Images") == [4, 8]
    assert steps(acc, "G/blocks.0.0.weight", "Histograms") == [4, 8]
    assert [step for step, _ in config_texts(acc)] == [0, 4]  # each session states its config where it starts


class RollBackAt(Callback):
    """At the log point of `step`, once: restore the last checkpoint, as the health monitor's rollback does."""

    def __init__(self, step):
        self.step, self.done = step, False

    def on_log(self, trainer, record):
        if trainer.state.step == self.step and not self.done:
            self.done = True
            trainer.load_checkpoint(trainer.run.latest)
            return Action.ROLLBACK
        return None


def test_a_rollback_replaces_the_abandoned_steps(digits16, tmp_path):
    run = tmp_path / "run"
    make_trainer(digits16, run, callbacks=[RollBackAt(6)]).train()
    acc = read_log(run)
    assert steps(acc, "train/loss_d") == [2, 4, 6, 8]
    assert steps(acc, "samples", "Images") == [4, 8]


def test_without_a_run_directory_nothing_is_written(digits16, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    trainer = make_trainer(digits16, None, steps=2)
    trainer.train()
    assert trainer.tensorboard is None and not list(tmp_path.iterdir())


def test_tensorboard_missing_is_one_line(digits16, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if the package were not installed
    with pytest.raises(ConfigError, match=r"^--tensorboard needs the tensorboard package: pip install tensorboard$"):
        make_trainer(digits16, tmp_path / "run", steps=2).train()


class ReportAt(Callback):
    """Emits a health event at the log point of `step`, as the health monitor does when it finds a condition."""

    def __init__(self, step):
        self.step = step

    def on_log(self, trainer, record):
        if trainer.state.step == self.step:
            trainer.emit(
                {"step": self.step, "health": "collapse", "message": "the samples look alike", "hint": "lower the learning rates", "action": "warn"}
            )


def test_health_events_are_logged_as_text(digits16, tmp_path):
    run = tmp_path / "run"
    make_trainer(digits16, run, callbacks=[ReportAt(2)], steps=2).train()
    [event] = read_log(run).Tensors("health/text_summary")
    assert event.step == 2
    assert event.tensor_proto.string_val[0].decode() == "step 2: the samples look alike (warn). Hint: lower the learning rates"
