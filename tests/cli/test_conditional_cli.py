"""Every sampling and exploring command with a class-conditional model, end to end into tmp_path:
--class changes the images and picks the right rows, class names resolve, walks across classes are
an exact interpolation of the class input, inversion infers a class, and mistakes are one line."""

import copy
import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from dcgan.checkpoint import load_checkpoint, save_checkpoint
from dcgan.cli import main
from dcgan.errors import ConfigError
from dcgan.explore.latent import class_walk, generate_between_classes, interpolate, invert, latent_sheet, sheet_labels, vector_arithmetic
from dcgan.figures import class_rows_image
from dcgan.imaging import tensor_to_pil
from dcgan.models import ModelConfig, build_models
from dcgan.models.conditioning import ClassConditionalBatchNorm2d, class_grid
from dcgan.report import build_report
from dcgan.sampling import generate, sample_z

from conftest import TINY, run_cli

CLOTHES = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "Sneaker", "bag", "ankle boot")


def pixels(path):
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).copy()


def G_of(run):
    ckpt = load_checkpoint(run)
    return ckpt, ckpt.build_generator()


@pytest.fixture(scope="module")
def unconditional_checkpoint(tmp_path_factory):
    """An untrained unconditional generator and discriminator saved as a checkpoint file."""
    G, D = build_models(ModelConfig(**TINY), seed=0)
    return save_checkpoint(tmp_path_factory.mktemp("unconditional") / "plain.safetensors", G.config, G, D)


# --------------------------------------------------------------------------- #
# dcgan generate, dcgan info
# --------------------------------------------------------------------------- #
def test_generate_draws_the_asked_class_and_names_the_files(conditional_run, tmp_path):
    ckpt, G = G_of(conditional_run)
    for k in (0, 7):
        assert run_cli("generate", conditional_run, "-n", 4, "--seed", 3, "--class", k, "--out", f"{tmp_path}/c{k}/") == 0
    files = {k: sorted((tmp_path / f"c{k}").glob("*.png")) for k in (0, 7)}
    assert [f.name for f in files[7]] == [f"sample_3_{i:05d}_7.png" for i in range(4)]
    # The files are G's images of the seed's z in that class (the same z as without --class) ...
    expected = generate(G, sample_z(4, 8, generator=torch.Generator().manual_seed(3)), 7)
    for f, image in zip(files[7], expected):
        assert np.array_equal(pixels(f), np.asarray(tensor_to_pil(image).convert("RGB")))
    # ... and the class changes them.
    assert not np.array_equal(np.stack([pixels(f) for f in files[0]]), np.stack([pixels(f) for f in files[7]]))


def test_class_all_is_a_row_per_class_with_the_same_z_down_each_column(conditional_run, tmp_path, capsys):
    ckpt, G = G_of(conditional_run)
    assert run_cli("generate", conditional_run, "-n", 3, "--seed", 2, "--class", "all", "--out", tmp_path / "all.png") == 0
    assert "10 classes x 3 samples" in capsys.readouterr().out
    z, labels = class_grid(sample_z(3, 8, generator=torch.Generator().manual_seed(2)), list(range(10)))
    assert labels.tolist() == [k for k in range(10) for _ in range(3)]
    expected = class_rows_image(generate(G, z, labels), [str(k) for k in range(10)])
    assert np.array_equal(pixels(tmp_path / "all.png"), np.asarray(expected))
    # A comma list: the rows of those classes, in that order.
    assert run_cli("generate", conditional_run, "-n", 3, "--seed", 2, "--class", "8,1", "--out", tmp_path / "two.png") == 0
    z, labels = class_grid(sample_z(3, 8, generator=torch.Generator().manual_seed(2)), [8, 1])
    assert np.array_equal(pixels(tmp_path / "two.png"), np.asarray(class_rows_image(generate(G, z, labels), ["8", "1"])))


def test_without_a_class_the_classes_are_balanced_and_said(conditional_run, tmp_path, capsys):
    assert run_cli("generate", conditional_run, "-n", 12, "--out", f"{tmp_path}/bal/") == 0
    assert "class i mod 10" in capsys.readouterr().out
    names = sorted(p.name for p in (tmp_path / "bal").glob("*.png"))
    assert names == [f"sample_0_{i:05d}_{i % 10}.png" for i in range(12)]


def test_class_names_resolve_in_any_case_and_info_lists_them(conditional_run, tmp_path, capsys):
    ckpt, G = G_of(conditional_run)
    named = save_checkpoint(tmp_path / "clothes.safetensors", replace(ckpt.model_config, class_names=CLOTHES), G)
    assert run_cli("generate", named, "-n", 4, "--class", "sneaker", "--out", tmp_path / "by-name.png") == 0
    assert "of class Sneaker (index 7)" in capsys.readouterr().out
    assert run_cli("generate", named, "-n", 4, "--class", "7", "--out", tmp_path / "by-index.png") == 0
    assert np.array_equal(pixels(tmp_path / "by-name.png"), pixels(tmp_path / "by-index.png"))
    assert run_cli("generate", named, "-n", 2, "--class", "ANKLE BOOT,t-shirt", "--out", f"{tmp_path}/named/") == 0
    assert sorted(p.name for p in (tmp_path / "named").glob("*.png"))[-1] == "sample_0_00003_t-shirt.png"
    capsys.readouterr()
    assert run_cli("info", named) == 0
    out = capsys.readouterr().out
    assert "t-shirt, trouser" in out and f"conditioning {ckpt.model_config.conditioning}" in out
    assert run_cli("info", named, "--json") == 0
    classes = json.loads(capsys.readouterr().out)["classes"]
    assert classes["names"] == list(CLOTHES) and classes["num_classes"] == 10
    assert classes["conditioning"] == ckpt.model_config.conditioning


@pytest.mark.parametrize(
    "argv, message",
    [
        (["generate", "{run}", "--class", "sneaker", "--out", "{tmp}/x.png"], "unknown class 'sneaker'"),
        (["generate", "{run}", "--class", "10", "--out", "{tmp}/x.png"], "class 10 is out of range"),
        (["generate", "{run}", "--class", "all", "--nrow", "3", "--out", "{tmp}/x.png"], "--nrow does not apply"),
        (["sheet", "{run}", "--class", "-1", "--out", "{tmp}/x.png"], "class -1 is out of range"),
        (["interpolate", "{run}", "--from-class", "3", "--out", "{tmp}/x.png"], "needs both --from-class and --to-class"),
        (["interpolate", "{run}", "--class", "1", "--from-class", "3", "--to-class", "4", "--out", "{tmp}/x.png"], "one or the other"),
        (["arithmetic", "{run}", "--a", "1", "--b", "2", "--c", "3", "--out", "{tmp}/x.png"], "say which class"),
        (["generate", "{plain}", "--class", "3", "--out", "{tmp}/x.png"], "unconditional"),
        (["sheet", "{plain}", "--class", "3", "--out", "{tmp}/x.png"], "unconditional"),
        (["interpolate", "{plain}", "--from-class", "3", "--to-class", "4", "--out", "{tmp}/x.png"], "unconditional"),
        (["arithmetic", "{plain}", "--class", "3", "--a", "1", "--b", "2", "--c", "3", "--out", "{tmp}/x.png"], "unconditional"),
        (["invert", "{plain}", "{image}", "--class", "3"], "unconditional"),
        (["neighbors", "{plain}", "--class", "3", "--data", "digits"], "unconditional"),
    ],
)
def test_class_mistakes_are_one_line_and_exit_2(argv, message, conditional_run, unconditional_checkpoint, tmp_path, capsys):
    image = tmp_path / "image.png"
    Image.new("L", (16, 16)).save(image)
    argv = [a.format(run=conditional_run, plain=unconditional_checkpoint, tmp=tmp_path, image=image) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "x.png").exists()


# --------------------------------------------------------------------------- #
# dcgan sheet, interpolate, arithmetic
# --------------------------------------------------------------------------- #
def test_sheet_is_drawn_in_the_class(conditional_run, tmp_path, capsys):
    for k in (2, 5):
        assert run_cli("sheet", conditional_run, "-n", 4, "--class", k, "--out", tmp_path / f"s{k}.png") == 0
        assert f"--class {k}" in capsys.readouterr().out
    assert not np.array_equal(pixels(tmp_path / "s2.png"), pixels(tmp_path / "s5.png"))
    assert run_cli("sheet", conditional_run, "-n", 4) == 0  # default place, balanced classes
    assert "class i mod 10" in capsys.readouterr().out
    assert (conditional_run / "explore" / "sheet-seed0.png").is_file()
    mc = load_checkpoint(conditional_run).model_config
    assert sheet_labels(mc, 12).tolist() == [i % 10 for i in range(12)] and sheet_labels(mc, 3, 4).tolist() == [4, 4, 4]


@pytest.mark.kernels  # bit-exact against another run: rerun on the AVX2 paths by make test-avx2
def test_a_walk_across_classes_interpolates_the_class_input_exactly(conditional_run):
    ckpt, G = G_of(conditional_run)
    z = latent_sheet(ckpt.model_config, 0, 3)
    walks = class_walk(G, z, 3, 8, steps=5)
    assert walks.shape == (3, 5, 1, 16, 16)
    assert torch.allclose(walks[:, 0], generate(G, z, 3), atol=1e-6) and torch.allclose(walks[:, -1], generate(G, z, 8), atol=1e-6)
    assert (walks[:, 2] - walks[:, 0]).abs().max() > 1e-4 and (walks[:, 2] - walks[:, -1]).abs().max() > 1e-4
    # Halfway is class 3 with its class parameters averaged with class 8's: a soft one-hot for concat,
    # the averaged batch-norm scale and shift for projection.
    G_mid = copy.deepcopy(G)
    with torch.no_grad():
        if ckpt.model_config.conditioning == "concat":
            w = G_mid.blocks[0][0].weight  # (z_dim + 10, C, k, k): rows z_dim + k take the one-hot of class k
            w[8 + 3] = (w[8 + 3] + w[8 + 8]) / 2
        else:
            norms = [m for m in G_mid.modules() if isinstance(m, ClassConditionalBatchNorm2d)]
            assert norms
            for m in norms:
                for table in (m.scale.weight, m.shift.weight):
                    table[3] = (table[3] + table[8]) / 2
    halfway = generate_between_classes(G, z, 3, 8, 0.5)
    assert torch.allclose(halfway, generate(G_mid, z, 3), atol=1e-5)
    # Within one class, a walk's ends are the class's images of its two z.
    within = interpolate(G, z[:2], z[1:], 4, labels=6)
    assert torch.allclose(within[:, 0], generate(G, z[:2], 6), atol=1e-6) and torch.allclose(within[:, -1], generate(G, z[1:], 6), atol=1e-6)
    with pytest.raises(ConfigError, match="needs the classes it starts in"):
        interpolate(G, z[:1], z[1:2], 4, end_labels=2)


def test_interpolate_commands(conditional_run, tmp_path, capsys):
    argv = ["interpolate", conditional_run, "-n", 10, "--steps", 4]
    assert run_cli(*argv, "--from-class", 3, "--to-class", 8, "--z", "0,5", "--out", tmp_path / "across.png") == 0
    assert "2 walks of 4 steps, class 3 -> 8 at fixed z" in capsys.readouterr().out
    assert run_cli(*argv, "--class", 3, "--pairs", "1:2", "--out", tmp_path / "within.png") == 0
    assert "1->2 (3)" in capsys.readouterr().out
    assert run_cli(*argv, "--random", 2, "--out", tmp_path / "balanced.png") == 0
    for name in ("across", "within", "balanced"):
        assert (tmp_path / f"{name}.png").is_file() and (tmp_path / f"{name}.gif").is_file()
    assert not np.array_equal(pixels(tmp_path / "across.png"), pixels(tmp_path / "within.png"))


def test_arithmetic_is_drawn_in_the_class(conditional_run, tmp_path, capsys):
    ckpt, G = G_of(conditional_run)
    sheet = latent_sheet(ckpt.model_config, 0, 8)
    result = vector_arithmetic(G, sheet[:2], sheet[2:4], sheet[4:6], label=2)
    assert result.label == 2
    assert torch.allclose(result.grid, generate(G, result.z_grid, 2), atol=1e-6)
    assert torch.allclose(result.exemplars[0], generate(G, sheet[:2], 2), atol=1e-6)
    for k in (2, 9):
        assert (
            run_cli("arithmetic", conditional_run, "-n", 8, "--class", k, "--a", "0,1", "--b", "2,3", "--c", "4,5", "--out", tmp_path / f"a{k}.png")
            == 0
        )
        assert f"all in class {k}" in capsys.readouterr().out
    assert not np.array_equal(pixels(tmp_path / "a2.png"), pixels(tmp_path / "a9.png"))


# --------------------------------------------------------------------------- #
# dcgan invert, neighbors, report
# --------------------------------------------------------------------------- #
def test_invert_infers_the_class_or_takes_it(conditional_run, tmp_path, capsys):
    # An image the model made in class 4, at its own size (a folder output: no grid padding).
    assert run_cli("generate", conditional_run, "-n", 1, "--seed", 11, "--class", 4, "--out", f"{tmp_path}/img/") == 0
    image = next((tmp_path / "img").glob("*.png"))
    capsys.readouterr()
    argv = ["invert", conditional_run, image, "--restarts", 2, "--steps", 25]
    assert run_cli(*argv, "--out", tmp_path / "inferred.png") == 0
    out = capsys.readouterr().out
    record = json.loads((tmp_path / "inferred.json").read_text())
    assert record["class_inferred"] and f"inferred class {record['class_name']}" in out
    errors = record["class_mse"]
    assert sorted(errors) == [str(k) for k in range(10)]  # every class was tried
    assert record["class_name"] == min(errors, key=errors.get)  # and the best reconstruction decided
    assert record["mse"] == pytest.approx(errors[record["class_name"]], abs=1e-6)
    # --class: z for that class only, from the same starts: the same error that class had above.
    assert run_cli(*argv, "--class", 4, "--out", tmp_path / "given.png") == 0
    given = json.loads((tmp_path / "given.json").read_text())
    assert given["class"] == 4 and not given["class_inferred"] and "class_mse" not in given
    assert given["mse"] == pytest.approx(errors["4"], rel=1e-3, abs=1e-6)
    # The z file keeps its class: a walk from it starts in that class.
    assert (
        run_cli("interpolate", conditional_run, "-n", 4, "--steps", 3, "--pairs", f"{tmp_path / 'given.json'}:1", "--out", tmp_path / "walk.png") == 0
    )
    assert "given->1 (4->1)" in capsys.readouterr().out  # from class 4 (the file's) to class 1 (sheet index 1's)


def test_invert_with_candidates_screens_every_class(conditional_run):
    ckpt, G = G_of(conditional_run)
    target = generate(G, latent_sheet(ckpt.model_config, 5, 1), 6)[0]
    result = invert(G, target, restarts=2, steps=8, candidates=3)
    assert result.inferred and sorted(result.class_mse) == list(range(10))
    assert result.label == min(result.class_mse, key=result.class_mse.get)
    fixed = invert(G, target, restarts=2, steps=8, label=6)
    assert fixed.label == 6 and not fixed.inferred and fixed.class_mse == {}


def test_neighbors_of_a_class(conditional_run, tmp_path, capsys):
    assert run_cli("neighbors", conditional_run, "-n", 2, "-k", 2, "--class", 5, "--features", "pixels", "--out", tmp_path / "nb.png") == 0
    assert "2 samples of class 5" in capsys.readouterr().out
    assert (tmp_path / "nb.png").is_file()


def test_report_of_a_conditional_run_has_a_class_grid(conditional_run, tmp_path, capsys):
    report = build_report(conditional_run)
    ckpt, G = G_of(conditional_run)
    [grid] = [image for title, image in report.panels if title.startswith("classes: a row per class")]
    z, labels = class_grid(latent_sheet(ckpt.model_config, 0, 10), list(range(10)))
    assert np.array_equal(np.asarray(grid), np.asarray(class_rows_image(generate(G, z, labels), [str(k) for k in range(10)])))
    assert report.summary["classes"].startswith("10 (")
    assert run_cli("report", conditional_run, "--out", tmp_path / "report.png") == 0
    assert "classes" in capsys.readouterr().out and (tmp_path / "report.html").is_file()
