"""Class-conditional models and their training: both conditioning methods, labels through the GAN step,
the class grid, classes in the checkpoint, bit-exact resume, and one-line errors for data without classes."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from dcgan.checkpoint import load_checkpoint
from dcgan.cli import main
from dcgan.errors import ConfigError, DataError
from dcgan.models import ModelConfig, build_models
from dcgan.models.conditioning import CONDITIONING, DEFAULT_CONDITIONING, MAX_CLASSES, balanced_labels, class_grid, resolve_class
from dcgan.sampling import generate, sample_z, standing_statistics
from dcgan.training import TrainConfig, Trainer

from conftest import TINY

pytestmark = pytest.mark.kernels  # depends on the CPU's kernels: make test-avx2 reruns it (pyproject's markers)

METHODS = tuple(CONDITIONING)
NAMES = tuple(str(i) for i in range(10))


def conditional_config(method, **kw):
    return ModelConfig(**{**TINY, **kw}, num_classes=10, class_names=NAMES, conditioning=method)


@pytest.mark.parametrize("method", METHODS)
def test_the_class_changes_the_image_and_not_the_shapes(method):
    G, D = build_models(conditional_config(method), seed=0)
    z = sample_z(4, 8, generator=torch.Generator().manual_seed(0))
    # Perturb the class parts away from their init so that the class matters as it does after training.
    with torch.no_grad():
        for name, p in G.named_parameters():
            if "scale" in name or "shift" in name or name == "blocks.0.0.weight":
                p.add_(torch.randn_like(p) * 0.5)
    a, b = generate(G, z, torch.zeros(4, dtype=torch.long)), generate(G, z, torch.full((4,), 7))
    assert a.shape == b.shape == (4, 1, 16, 16)
    assert (a - b).abs().max() > 1e-3
    assert torch.equal(generate(G, z, 7), b)  # one int for all samples
    logits = D(a, torch.zeros(4, dtype=torch.long))
    assert logits.shape == (4,)
    assert D(a).shape == (4,)  # no labels: D reads the image alone (the probe's features)


def test_projection_adds_a_class_term_to_d_and_concat_widens_the_inputs():
    G, D = build_models(conditional_config("concat"), seed=0)
    assert G.blocks[0][0].in_channels == 8 + 10  # z joined with the one-hot class
    assert D.blocks[0][0].in_channels == 1 + 10  # the image joined with ten label maps
    G, D = build_models(conditional_config("projection"), seed=0)
    assert G.blocks[0][0].in_channels == 8
    x = torch.randn(3, 1, 16, 16)
    with torch.no_grad():
        D.eval()
        h = D.blocks(x)
        expected = D.head(h).flatten() + (D.projection.embed.weight[[1, 2, 3]] * h.sum((2, 3))).sum(1)
        assert torch.allclose(D(x, torch.tensor([1, 2, 3])), expected, atol=1e-6)


def test_an_unconditional_pair_keeps_the_plain_weights():
    G, D = build_models(ModelConfig(**TINY), seed=0)
    assert not any("scale" in k or "shift" in k or "projection" in k or "embed" in k for k in {**G.state_dict(), **D.state_dict()})
    with pytest.raises(ConfigError, match="unconditional"):
        generate(G, torch.zeros(2, 8), torch.zeros(2, dtype=torch.long))


@pytest.mark.parametrize(
    "labels,match",
    [
        (None, "give a class label"),
        (torch.tensor([0, 10]), r"0\.\.9"),
        (torch.tensor([0.0, 1.0]), "whole-number"),
        (torch.tensor([1, 2, 3]), "shape"),
    ],
)
def test_a_conditional_generator_checks_its_labels(labels, match):
    G, _ = build_models(conditional_config("projection"), seed=0)
    with pytest.raises(ConfigError, match=match):
        generate(G, torch.zeros(2, 8), labels)


def test_config_limits_and_names():
    with pytest.raises(ConfigError, match="at least 2"):
        ModelConfig(**TINY, num_classes=1)
    with pytest.raises(ConfigError, match=f"2 to {MAX_CLASSES}"):
        ModelConfig(**TINY, num_classes=MAX_CLASSES + 1)
    with pytest.raises(ConfigError, match="3 class names for 10"):
        ModelConfig(**TINY, num_classes=10, class_names=("a", "b", "c"))
    mc = conditional_config("concat")
    assert ModelConfig.from_dict(json.loads(json.dumps(mc.to_dict()))) == mc  # survives a checkpoint's JSON


def test_resolve_class_by_name_index_and_case():
    names = ("T-shirt", "sneaker", "bag")
    assert resolve_class("sneaker", names, 3) == 1
    assert resolve_class("SNEAKER", names, 3) == 1
    assert resolve_class("2", names, 3) == 2
    assert resolve_class(0, names, 3) == 0
    with pytest.raises(ConfigError, match="unknown class 'boot'.*T-shirt, sneaker, bag"):
        resolve_class("boot", names, 3)
    with pytest.raises(ConfigError, match="out of range"):
        resolve_class("3", names, 3)
    with pytest.raises(ConfigError, match="unconditional"):
        resolve_class("1", (), 0)


def test_class_grid_rows_and_columns():
    columns = torch.randn(4, 8)
    z, labels = class_grid(columns, [2, 5, 7])
    assert z.shape == (12, 8) and labels.tolist() == [2] * 4 + [5] * 4 + [7] * 4
    assert torch.equal(z[0], z[4]) and torch.equal(z[3], z[11])  # the same z down each column
    assert balanced_labels(7, 3).tolist() == [0, 1, 2, 0, 1, 2, 0] and balanced_labels(5, 0) is None


def test_standing_statistics_of_a_conditional_generator_are_deterministic():
    G, _ = build_models(conditional_config("projection"), seed=0)
    standing_statistics(G, num_batches=2, batch_size=16, seed=3)
    first = {k: v.clone() for k, v in G.state_dict().items() if "running" in k}
    standing_statistics(G, num_batches=2, batch_size=16, seed=3)
    assert all(torch.equal(first[k], G.state_dict()[k]) for k in first)
    assert not torch.equal(first["blocks.0.1.norm.running_mean"], torch.zeros_like(first["blocks.0.1.norm.running_mean"]))


# --------------------------------------------------------------------------- #
# Training
# --------------------------------------------------------------------------- #
def conditional_trainer(data, run_dir=None, method=DEFAULT_CONDITIONING, **train):
    train = {"batch_size": 32, "seed": 0, "device": "cpu", "conditional": True, **train}
    mc = conditional_config(method)
    return Trainer(mc, TrainConfig(**train), data, run_dir=run_dir, progress=False)


@pytest.mark.parametrize("method", METHODS)
def test_a_step_trains_the_class_parameters(digits16, method):
    trainer = conditional_trainer(digits16, method=method)
    before = {k: v.clone() for m in (trainer.G, trainer.D) for k, v in m.named_parameters(prefix=type(m).__name__)}
    trainer.gan.step(trainer.feed.batch(trainer.feed.epoch_order(0), 0))
    after = {k: v for m in (trainer.G, trainer.D) for k, v in m.named_parameters(prefix=type(m).__name__)}
    class_parts = [k for k in after if any(s in k for s in ("scale", "shift", "embed", "blocks.0.0.weight"))]
    assert class_parts
    for k in class_parts:
        assert not torch.equal(before[k], after[k]), k


def test_the_batch_labels_reach_g_and_d(digits16):
    """G and D are called with the real batch's labels (the fakes take the same classes)."""
    trainer = conditional_trainer(digits16)
    seen = []
    hooks = [m.register_forward_pre_hook(lambda mod, args: seen.append((type(mod).__name__, args[1]))) for m in (trainer.G, trainer.D)]
    images, labels = trainer.feed.batch(trainer.feed.epoch_order(0), 0)
    trainer.gan.step((images, labels))
    for h in hooks:
        h.remove()
    assert {name for name, _ in seen} == {"Generator", "Discriminator"}
    for name, got in seen:
        assert torch.equal(got, labels), name


def _state(trainer):
    out = {f"G.{k}": v for k, v in trainer.G.state_dict().items()}
    out.update({f"D.{k}": v for k, v in trainer.D.state_dict().items()})
    out.update({f"G_ema.{k}": v for k, v in trainer.gan.ema.module.state_dict().items()})
    for name, opt in (("opt_g", trainer.gan.opt_g), ("opt_d", trainer.gan.opt_d)):
        for pid, st in opt.state_dict()["state"].items():
            out.update({f"{name}.{pid}.{k}": v for k, v in st.items()})
    return out


@pytest.mark.parametrize("method", METHODS)
def test_conditional_resume_equals_an_uninterrupted_run_bit_for_bit(tmp_path, digits16, method):
    straight = conditional_trainer(digits16, tmp_path / "straight", method, steps=15, batch_size=128)
    straight.train()
    part = conditional_trainer(digits16, tmp_path / "resumed", method, steps=7, batch_size=128)
    part.train()
    del part
    resumed = Trainer.resume(tmp_path / "resumed", progress=False, steps=15)
    assert resumed.model_config == straight.model_config
    assert torch.equal(resumed.fixed_labels, straight.fixed_labels)
    resumed.train()
    a, b = _state(straight), _state(resumed)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_the_run_keeps_its_classes_and_draws_a_row_per_class(tmp_path):
    run = tmp_path / "run"
    trainer = Trainer.from_options(run_dir=run, progress=False, data="digits", **TINY, conditional=True, steps=4, batch_size=64, seed=0)
    trainer.train()
    ckpt = load_checkpoint(run)
    mc = ckpt.model_config
    assert mc.num_classes == 10 and mc.class_names == NAMES and mc.conditioning == DEFAULT_CONDITIONING
    assert json.loads((run / "config.json").read_text())["model"]["class_names"] == list(NAMES)
    # The fixed grid: ten rows of the same ten z, labelled 0..9.
    assert trainer.fixed_labels.tolist() == [c for c in range(10) for _ in range(10)]
    assert torch.equal(trainer.fixed_noise[:10], trainer.fixed_noise[90:])
    with Image.open(run / "samples.png") as im:
        grid = np.asarray(im.convert("L"))
    cell = 64  # 16 px images drawn at 4x
    assert grid.shape[0] == 2 + 10 * (cell + 2)  # one row per class
    # The sampled generator from the checkpoint makes different images per class.
    G = ckpt.build_generator()
    z = trainer.fixed_noise[:3].cpu()
    assert not torch.equal(generate(G, z, 0), generate(G, z, 5))


def test_data_without_classes_is_refused_in_one_line(tmp_path, capsys):
    flat = tmp_path / "flat"
    flat.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(flat / f"{i}.png")
    assert main(["train", "--data", str(flat), "--conditional", "--steps", "1", "--out", str(tmp_path / "r"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs class labels" in err[0]
    assert not (tmp_path / "r").exists()  # nothing written for a refused run

    one = tmp_path / "one" / "cats"
    one.mkdir(parents=True)
    for i in range(8):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(one / f"{i}.png")
    assert main(["train", "--data", str(tmp_path / "one"), "--conditional", "--steps", "1", "--out", str(tmp_path / "r"), "--quiet"]) == 2
    # A single sub-folder reads as a wrapping folder, not as a class: the same one line.
    assert "one sub-folder per class (two or more)" in capsys.readouterr().err


def test_conditioning_without_conditional_is_refused(tmp_path, capsys):
    assert main(["train", "--conditioning", "concat", "--steps", "1", "--out", str(tmp_path / "r"), "--quiet"]) == 2
    assert "add --conditional" in capsys.readouterr().err


def test_too_many_classes_is_refused(digits16):
    from dcgan.data import ImageData
    from dcgan.training.loop import check_class_labels

    many = ImageData(digits16.images, torch.arange(len(digits16)) % 1437, name="many", classes=[str(i) for i in range(1437)])
    with pytest.raises(DataError, match=f"1,437 classes; a conditional model takes at most {MAX_CLASSES:,}"):
        check_class_labels(many)


def test_cli_trains_a_conditional_run_from_class_folders(tmp_path, capsys):
    root = tmp_path / "photos"
    rng = np.random.default_rng(0)
    for name, value in (("bright", 220), ("dark", 30)):
        (root / name).mkdir(parents=True)
        for i in range(40):
            pixels = np.clip(value + rng.normal(0, 10, (16, 16, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--data",
                str(root),
                "--conditional",
                "--conditioning",
                "concat",
                "--image-size",
                "16",
                "--z-dim",
                "8",
                "--width",
                "8",
                "--batch-size",
                "16",
                "--steps",
                "3",
                "--seed",
                "1",
                "--out",
                str(out),
                "--quiet",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    mc = load_checkpoint(out).model_config
    assert mc.class_names == ("bright", "dark") and mc.conditioning == "concat"
    # A conditional run cannot be resumed as anything else.
    assert main(["train", "--resume", str(out), "--conditioning", "projection", "--steps", "5"]) == 2


def test_the_probe_and_filters_read_a_conditional_d_without_labels(conditional_run, tmp_path):
    """The probe's features and the filter views take D on images alone (no class information)."""
    assert main(["probe", str(conditional_run), "--labels-per-class", "5", "--max-test", "200", "--device", "cpu"]) == 0
    assert main(["filters", str(conditional_run), "--out", str(tmp_path / "filters.png"), "--device", "cpu"]) == 0
    assert (tmp_path / "filters.png").stat().st_size > 0
