"""Latent-space tools: walks, arithmetic, inversion, neighbours, and their CLI commands."""

import json

import pytest
import torch
from PIL import Image

from dcgan.cli import main
from dcgan.errors import ConfigError
from dcgan.explore.latent import interpolate, interpolation_path, invert, latent_sheet, lerp, nearest_neighbors, pick, slerp, vector_arithmetic
from dcgan.sampling import generate
from dcgan.training import Trainer

from conftest import TINY

pytestmark = pytest.mark.kernels  # depends on the CPU's kernels: make test-avx2 reruns it (pyproject's markers)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A tiny G/D trained for a few steps on 16x16 digits, with its run directory."""
    run = tmp_path_factory.mktemp("latent") / "run"
    trainer = Trainer.from_options(run_dir=run, data="digits", progress=False, steps=40, seed=0, batch_size=64, **TINY)
    trainer.train()
    return trainer, run


def test_lerp_and_slerp_endpoints_and_norm():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(32, generator=g), torch.randn(32, generator=g)
    for fn in (lerp, slerp):
        assert torch.allclose(fn(a, b, 0.0), a, atol=1e-6) and torch.allclose(fn(a, b, 1.0), b, atol=1e-5)
    b_same_norm = b / b.norm() * a.norm()
    path = interpolation_path(a, b_same_norm, 11, "spherical")
    assert torch.allclose(path.norm(dim=1), torch.full((11,), float(a.norm())), rtol=1e-5)  # slerp keeps the norm
    lin = interpolation_path(a, b_same_norm, 11, "linear")
    assert lin.norm(dim=1)[5] < 0.95 * a.norm()  # lerp's midpoint shrinks towards the origin
    assert torch.allclose(slerp(a, 2 * a, 0.5), 1.5 * a, atol=1e-5)  # parallel vectors fall back to lerp
    with pytest.raises(ConfigError):
        interpolation_path(a, b, 1)
    with pytest.raises(ConfigError):
        interpolation_path(a, b, 5, "cubic")


def test_interpolation_endpoints_equal_endpoint_images(tiny_run):
    trainer, _ = tiny_run
    sheet = latent_sheet(trainer.model_config, 0, 8)
    walks = interpolate(trainer.G, sheet[:2], sheet[2:4], steps=6, method="spherical")
    assert walks.shape == (2, 6, 1, 16, 16)
    ends = generate(trainer.G, torch.cat([sheet[:2], sheet[2:4]]))
    assert torch.allclose(walks[:, 0], ends[:2], atol=1e-5) and torch.allclose(walks[:, -1], ends[2:], atol=1e-5)


def test_sheet_matches_generate_and_pick_checks_range(tiny_run):
    trainer, _ = tiny_run
    sheet = latent_sheet(trainer.model_config, 3, 10)
    assert torch.equal(sheet, latent_sheet(trainer.model_config, 3, 10))
    assert torch.equal(pick(sheet, [4, 2]), sheet[[4, 2]])
    with pytest.raises(ConfigError, match="outside the sheet"):
        pick(sheet, [10])


def test_arithmetic_without_noise_is_g_of_a_minus_b_plus_c(tiny_run):
    trainer, _ = tiny_run
    sheet = latent_sheet(trainer.model_config, 0, 12)
    a, b, c = sheet[0:3], sheet[3:6], sheet[6:9]
    result = vector_arithmetic(trainer.G, a, b, c, noise_scale=0.0)
    direct = generate(trainer.G, (a.mean(0) - b.mean(0) + c.mean(0)).unsqueeze(0))[0]
    assert torch.allclose(result.z_result, a.mean(0) - b.mean(0) + c.mean(0))
    assert result.grid.shape == (9, 1, 16, 16)
    for cell in result.grid:  # zero noise: every cell is the direct result
        assert torch.allclose(cell, direct, atol=1e-5)
    noisy = vector_arithmetic(trainer.G, a, b, c, noise_scale=0.5, seed=1)
    assert torch.allclose(noisy.grid[4], direct, atol=1e-5)  # the centre is the direct result
    assert not torch.allclose(noisy.grid[0], direct, atol=1e-3)
    assert torch.allclose((noisy.z_grid - noisy.z_result).norm(dim=1)[4], torch.tensor(0.0))
    with pytest.raises(ConfigError):
        vector_arithmetic(trainer.G, a, b, c, grid_size=2)


def test_inversion_recovers_a_generated_image(tiny_run):
    trainer, _ = tiny_run
    z = latent_sheet(trainer.model_config, 5, 1)
    target = generate(trainer.G, z)[0]
    result = invert(trainer.G, target, restarts=4, steps=300, lr=0.05, seed=0)
    start = generate(trainer.G, latent_sheet(trainer.model_config, 0, 4))
    start_mse = float(((start - target) ** 2).mean(dim=(1, 2, 3)).min())
    assert result.mse < 0.01 and result.mse < start_mse / 5
    assert torch.allclose(generate(trainer.G, result.z.unsqueeze(0))[0], result.image, atol=1e-5)
    with pytest.raises(ConfigError, match="generator makes"):
        invert(trainer.G, torch.zeros(3, 16, 16))


def test_nearest_neighbors_is_exact():
    g = torch.Generator().manual_seed(0)
    data = torch.randn(500, 7, generator=g)
    queries = data[[3, 42]] + 1e-4
    d, i = nearest_neighbors(queries, data, k=3, chunk=64)
    brute = torch.cdist(queries, data).topk(3, largest=False)
    assert torch.equal(i, brute.indices) and torch.allclose(d, brute.values)
    assert i[:, 0].tolist() == [3, 42]


def _cli(*args) -> int:
    try:
        return main([str(a) for a in args])
    except SystemExit as exc:
        return exc.code


def test_latent_commands_write_pictures(tiny_run, tmp_path, capsys):
    _, run = tiny_run
    assert _cli("sheet", run, "--seed", "2", "-n", "16", "--out", tmp_path / "sheet.png") == 0
    assert Image.open(tmp_path / "sheet.png").size[0] > 4 * 64
    assert _cli("interpolate", run, "--pairs", "1:2,3:4", "--steps", "5", "--method", "linear", "--out", tmp_path / "walk.png") == 0
    with Image.open(tmp_path / "walk.gif") as gif:
        assert gif.n_frames == 5 + 3  # forth and back
    assert _cli("interpolate", run, "--random", "2") == 0
    assert (run / "explore" / "interpolate-seed0.png").is_file()
    assert _cli("arithmetic", run, "--a", "0,1,2", "--b", "3,4,5", "--c", "6,7,8", "--out", tmp_path / "arith.png") == 0
    assert (tmp_path / "arith.png").is_file()
    # invert a generated image, then walk from it to a sheet sample
    assert _cli("generate", run, "-n", "1", "--seed", "9", "--out", f"{tmp_path / 'gen'}/") == 0
    target = next((tmp_path / "gen").glob("*.png"))
    assert _cli("invert", run, target, "--steps", "50", "--restarts", "2", "--out", tmp_path / "inv.png") == 0
    z_file = tmp_path / "inv.json"
    assert len(json.loads(z_file.read_text())["z"]) == TINY["z_dim"]
    assert _cli("interpolate", run, "--pairs", f"0:{z_file}", "--steps", "3", "--out", tmp_path / "w2.png") == 0
    assert _cli("arithmetic", run, "--a", f"{z_file}", "--b", "1", "--c", "2", "--out", tmp_path / "a2.png") == 0
    assert _cli("neighbors", run, "-n", "3", "-k", "2", "--features", "discriminator", "--out", tmp_path / "nn.png") == 0
    assert Image.open(tmp_path / "nn.png").size[1] > 2 * 3 * 64


def test_latent_commands_user_errors(tiny_run, tmp_path, capsys):
    _, run = tiny_run
    assert _cli("arithmetic", run, "--a", "0,1,99", "--b", "1", "--c", "2") == 2
    assert "outside the sheet" in capsys.readouterr().err
    assert _cli("interpolate", run, "--pairs", "1-2") == 2
    assert _cli("interpolate", run, "--pairs", "1:nofile.json") == 2
    assert "neither a sheet index" in capsys.readouterr().err
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    assert _cli("invert", run, bad) == 2
    assert "could not be read" in capsys.readouterr().err
    assert _cli("invert", run, tmp_path / "missing.png") == 2
    assert _cli("sheet", run, "--out", tmp_path / "x.txt") == 2
    assert _cli("interpolate", run, "--steps", "1") == 2


def test_probe_filters_and_report_commands(tiny_run, tmp_path, capsys):
    _, run = tiny_run
    assert _cli("probe", run, "--labels-per-class", "10", "--max-test", "200", "--json", tmp_path / "probe.json") == 0
    out = capsys.readouterr().out
    assert "discriminator" in out and "pixels" in out and "random_d" in out
    report = json.loads((tmp_path / "probe.json").read_text())
    assert [r["name"] for r in report["rows"]] == ["discriminator", "pixels", "random_d"]
    assert report["rows"][0]["feature_dim"] == sum([8, 16]) * 16  # TINY 16x16: D blocks of 8 and 16 channels, 4x4 grid
    assert _cli("probe", run, "--labels-per-class", "5000") == 2  # more labels than the classes have
    assert "fewer than the 5000 labels per class" in capsys.readouterr().err
    assert _cli("filters", run, "--layer", "1", "--channels", "0,3", "--top-k", "3", "--num-images", "300", "--out", tmp_path / "f.png") == 0
    assert Image.open(tmp_path / "f.png").size[1] > 100
    assert _cli("filters", run, "--layer", "9") == 2
    assert _cli("filters", run, "--channels", "a,b") == 2
    assert _cli("report", run) == 0
    assert (run / "report.png").is_file() and (run / "report.html").read_text().count("data:image/png;base64,") >= 4
    assert _cli("report", tmp_path) == 2


# --------------------------------------------------------------------------- #
# Principal directions (the explorer's sliders)
# --------------------------------------------------------------------------- #
def test_principal_directions_are_unit_ordered_repeatable_and_move_the_first_layer(tiny_run):
    from dcgan.explore.latent import move_along, principal_directions

    G = tiny_run[0].G.eval()
    found = principal_directions(G, components=4, samples=512, seed=0)
    assert found.directions.shape == (4, TINY["z_dim"])
    assert torch.allclose(found.directions.norm(dim=1), torch.ones(4), atol=1e-5)
    assert torch.all(found.explained[:-1] >= found.explained[1:]) and 0 < found.explained.sum() <= 1
    assert torch.equal(found.directions, principal_directions(G, components=4, samples=512, seed=0).directions)

    # Moving along the first direction changes G's first feature map more than a random unit move does.
    z = latent_sheet(G.config, 1, 64)  # (64, D)
    first = lambda v: G.blocks[0](v.view(v.shape[0], -1, 1, 1)).flatten(1)  # noqa: E731
    rand = torch.randn(TINY["z_dim"], generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        along = (first(z + found.directions[0]) - first(z)).norm(dim=1).mean()
        random = (first(z + rand / rand.norm()) - first(z)).norm(dim=1).mean()
    assert along > random

    moved = move_along(z[0], found.directions, [2.0, 0, 0, -1.0])
    assert torch.allclose(moved - z[0], 2 * found.directions[0] - found.directions[3], atol=1e-6)
    with pytest.raises(ConfigError, match="expected 4 amounts"):
        move_along(z[0], found.directions, [1.0])
    with pytest.raises(ConfigError, match="components must be from 1"):
        principal_directions(G, components=TINY["z_dim"] + 1)


def test_move_along_stays_in_a_uniform_prior_box():
    from dcgan.explore.latent import move_along

    z = torch.full((4,), 0.9)
    moved = move_along(z, torch.eye(4)[:2], [3.0, -3.0], prior="uniform")
    assert moved.max() <= 1 and moved.min() >= -1 and moved[0] == 1 and moved[2] == pytest.approx(0.9)
