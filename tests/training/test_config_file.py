"""`dcgan train --config FILE`: a run's config.json repeats it bit for bit; TOML files, their precedence and their errors."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from dcgan.errors import ConfigError
from dcgan.training.configfile import read_config_file
from dcgan.training.resolve import resolve_options

from conftest import run_cli

pytestmark = pytest.mark.kernels  # depends on the CPU's kernels: make test-avx2 reruns it (pyproject's markers)

TINY_ARGS = ["--image-size", "16", "--z-dim", "8", "--width", "8", "--batch-size", "64", "--quiet", "--device", "cpu"]


def weights(run, prefixes=("G.", "G_ema.", "D.")) -> dict[str, torch.Tensor]:
    tensors = load_file(str(run / "checkpoints" / "latest.safetensors"))
    return {k: v for k, v in tensors.items() if k.startswith(prefixes)}


def assert_same_weights(a, b):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys() and any(k.startswith("G.") for k in wa)
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("dcgan train: error: ") and "\n" not in err, err
    return err


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    run = tmp_path_factory.mktemp("config") / "run"
    assert run_cli("train", "--steps", "3", "--seed", "11", "--ema-half-life", "0.5", "--out", run, *TINY_ARGS) == 0
    return run


def test_config_json_repeats_the_run_bit_for_bit(original, tmp_path, capsys):
    again = tmp_path / "again"
    assert run_cli("train", "--config", original / "config.json", "--out", again, "--quiet") == 0
    assert f"options from {original / 'config.json'}" in capsys.readouterr().out
    first, second = (json.loads((r / "config.json").read_text()) for r in (original, again))
    assert first["model"] == second["model"] and first["train"] == second["train"]
    assert first["data"]["fingerprint"] == second["data"]["fingerprint"]
    assert_same_weights(original, again)
    # The run folder itself names its config.json.
    assert read_config_file(original).options == read_config_file(original / "config.json").options


def test_command_line_overrides_a_config_json(original, tmp_path):
    longer = tmp_path / "longer"
    assert run_cli("train", "--config", original / "config.json", "--out", longer, "--steps", "4", "--seed", "12", "--quiet") == 0
    config = json.loads((longer / "config.json").read_text())
    assert config["train"]["steps"] == 4 and config["train"]["seed"] == 12
    assert config["train"]["ema_half_life"] == 0.5 and config["model"]["width"] == 8  # the rest from the file


def test_conditional_run_takes_its_classes_from_the_data(tmp_path, capsys):
    run, again = tmp_path / "cond", tmp_path / "again"
    assert run_cli("train", "--conditional", "--conditioning", "projection", "--steps", "2", "--seed", "3", "--out", run, *TINY_ARGS) == 0
    assert run_cli("train", "--config", run / "config.json", "--out", again, "--quiet") == 0
    config = json.loads((again / "config.json").read_text())
    assert config["model"]["num_classes"] == 10 and config["model"]["conditioning"] == "projection"
    assert_same_weights(run, again)
    # A config.json whose classes the data no longer has is refused before anything is written.
    record = json.loads((run / "config.json").read_text())
    record["model"]["class_names"] = [f"c{i}" for i in range(10)]
    (tmp_path / "renamed.json").write_text(json.dumps(record))
    capsys.readouterr()
    assert run_cli("train", "--config", tmp_path / "renamed.json", "--out", tmp_path / "never", "--quiet") == 2
    assert "differ from those of" in one_line_error(capsys)
    assert not (tmp_path / "never").exists()


TOML = """
data = "digits"
seed = 5
epochs = 1
lr = 1e-3
no-channels-last = true

[model]
image-size = 16
z_dim = 8
width = 8

[train]
batch-size = 32
ema = "off"
"""


def test_toml_with_overrides_from_the_command_line(tmp_path, capsys):
    toml = tmp_path / "run.toml"
    toml.write_text(TOML)
    run = tmp_path / "run"
    assert run_cli("train", "--config", toml, "--out", run, "--steps", "2", "--seed", "7", "--lr-d", "5e-4", "--device", "cpu", "--quiet") == 0
    assert "with --device, --lr-d, --seed, --steps from the command line" in capsys.readouterr().out
    config = json.loads((run / "config.json").read_text())
    model, train = config["model"], config["train"]
    assert (model["image_size"], model["z_dim"], model["width"], model["channels"]) == (16, 8, 8, 1)  # channels: digits'
    assert train["batch_size"] == 32 and train["ema"] is False and train["channels_last"] is False  # from the file
    assert train["lr_g"] == 1e-3 and train["lr_d"] == 5e-4  # --lr-d wins over the file's lr
    assert train["seed"] == 7 and train["steps"] == 2 and train["epochs"] is None  # the command line's budget replaces it


def test_precedence_defaults_recipe_file_command_line(tmp_path):
    toml = tmp_path / "r.toml"
    toml.write_text('recipe = "mnist"\nsteps = 4\nbatch-size = 32\nwidth = 16\n')
    file = read_config_file(toml)
    options = resolve_options({"batch_size": 16}, file)
    assert options["recipe"] == "mnist" and options["data"] == "mnist" and options["image_size"] == 32  # the recipe
    assert options["steps"] == 4 and "epochs" not in options and options["width"] == 16  # the file over the recipe
    assert options["batch_size"] == 16  # the command line over both
    # --recipe on the command line replaces the file's recipe; --data drops the file's data folder.
    record = tmp_path / "config.json"
    record.write_text(
        json.dumps(
            {
                "dcgan_version": "0",
                "model": {"image_size": 32, "channels": 1},
                "train": {"data": "mnist", "data_dir": "/somewhere/mnist", "steps": 9},
                "data": {},
            }
        )
    )
    options = resolve_options({"data": "digits"}, read_config_file(record))
    assert options["data"] == "digits" and "data_dir" not in options and options["steps"] == 9
    with pytest.raises(ConfigError, match="drop --recipe"):
        resolve_options({"recipe": "cifar10"}, read_config_file(record))
    assert resolve_options({"seed": 3}, toml)["seed"] == 3  # a path works as well as what read_config_file returned


UNKNOWN_KEYS = [  # (file text, what its one line says)
    ("bach-size = 3\n", "unknown option 'bach-size'; did you mean 'batch-size'?"),
    ("[train]\nlearning_rate = 1e-3\n", "unknown option [train] 'learning_rate'"),
    ("[model]\nbatch_size = 3\n", "[model] has no option 'batch_size': it belongs in [train]"),
    ("[modle]\nwidth = 8\n", "unknown option 'modle'; did you mean 'model'?"),
    ("num-classes = 3\n", "comes from the data's labels"),
    ("width = 8\nwidth = 9\n", "is not valid TOML"),
    ("width = 8\n[model]\nwidth = 9\n", "width is given twice"),
]
BAD_VALUES = [
    ("batch-size = 0\n", "batch-size must be a positive whole number, got 0"),
    ("steps = 2.5\n", "steps must be a positive whole number, got 2.5"),
    ('prior = "cauchy"\n', "unknown prior 'cauchy'"),
    ("image-size = 20\n", "unsupported image size 20"),
    ('lr = "fast"\n', "lr must be a positive number, got 'fast'"),
    ('compile = "yes"\n', "compile must be true or false, got 'yes'"),
    ("data = 3\n", "data must be a string, got 3"),
    ("steps = 2\nepochs = 1\n", "either steps or epochs"),
    ('recipe = "bedrooms"\n', "unknown recipe 'bedrooms'"),
    ('ema = "sometimes"\n', "ema must be true or false, got 'sometimes'"),
]


@pytest.mark.parametrize("text, message", UNKNOWN_KEYS + BAD_VALUES)
def test_unknown_keys_and_bad_values_are_one_line(tmp_path, capsys, text, message):
    toml = tmp_path / "bad.toml"
    toml.write_text(text)
    assert run_cli("train", "--config", toml, "--out", tmp_path / "run") == 2
    err = one_line_error(capsys)
    assert message in err and str(toml) in err
    assert not (tmp_path / "run").exists()


def test_bad_value_in_a_config_json(original, tmp_path, capsys):
    record = json.loads((original / "config.json").read_text())
    record["train"]["beta1"] = 1.5
    (tmp_path / "config.json").write_text(json.dumps(record))
    assert run_cli("train", "--config", tmp_path / "config.json", "--out", tmp_path / "run") == 2
    assert "beta1 must be a number in [0, 1), got 1.5" in one_line_error(capsys)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("broken.toml", "width = \n", "is not valid TOML"),
        ("broken.json", '{"model": {', "is not valid JSON"),
        ("list.json", "[1, 2]", "expected a JSON object"),
        ("latin.toml", b'data = "caf\xe9"\n', "is not UTF-8 text"),
        ("options.yaml", "width: 8\n", "a config file is a .toml file or a run's config.json"),
        ("missing.toml", None, "not found"),
    ],
)
def test_malformed_or_missing_files_are_one_line(tmp_path, capsys, name, content, message):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    assert run_cli("train", "--config", path, "--out", tmp_path / "run") == 2
    assert message in one_line_error(capsys)
    assert not (tmp_path / "run").exists()


def test_a_folder_without_config_json(tmp_path, capsys):
    assert run_cli("train", "--config", tmp_path, "--out", tmp_path / "run") == 2
    assert "is a folder with no config.json" in one_line_error(capsys)


def test_config_with_resume_is_refused(original, tmp_path, capsys):
    before = weights(original)
    assert run_cli("train", "--config", original / "config.json", "--resume", original, "--steps", "5") == 2
    assert "--config starts a new run and --resume continues one" in one_line_error(capsys)
    after = weights(original)
    assert all(torch.equal(before[k], after[k]) for k in before)  # the run is untouched


def test_a_bool_the_file_sets_is_undone_on_the_command_line(tmp_path, capsys):
    """`compile = true` in a file, `--no-compile` on the command line: compile is off (every bool has its --no- form)."""
    toml = tmp_path / "fast.toml"
    toml.write_text("compile = true\nsteps = 1\n[model]\nimage-size = 16\nz-dim = 8\nwidth = 8\n")
    run = tmp_path / "run"
    assert run_cli("train", "--config", toml, "--no-compile", "--seed", "1", "--batch-size", "64", "--device", "cpu", "--quiet", "--out", run) == 0
    assert "with --batch-size, --device, --no-compile, --seed from the command line" in capsys.readouterr().out
    assert json.loads((run / "config.json").read_text())["train"]["compile"] is False
    assert read_config_file(toml).options["compile"] is True


@pytest.mark.parametrize("text, ema", [('ema = "on"\n', True), ('ema = "off"\n', False), ("no-ema = true\n", False), ("ema = false\n", False)])
def test_ema_as_a_bool_and_its_old_spelling(tmp_path, text, ema):
    """`ema` is a bool; files written for 0.3.0 say "on" / "off", which still read as what they meant."""
    toml = tmp_path / "ema.toml"
    toml.write_text(text)
    assert read_config_file(toml).options["ema"] is ema


def test_a_run_record_that_says_ema_off(original, tmp_path):
    """A 0.3.0 run's config.json ("ema": "off") still repeats: the repeat trains without the average."""
    record = json.loads((original / "config.json").read_text())
    record["train"]["ema"] = "off"
    (tmp_path / "config.json").write_text(json.dumps(record))
    assert read_config_file(tmp_path / "config.json").options["ema"] is False
    run = tmp_path / "run"
    assert run_cli("train", "--config", tmp_path / "config.json", "--out", run, "--quiet") == 0
    assert json.loads((run / "config.json").read_text())["train"]["ema"] is False
    assert not any(k.startswith("G_ema.") for k in load_file(str(run / "checkpoints" / "latest.safetensors")))
