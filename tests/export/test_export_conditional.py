"""`dcgan export` of a class-conditional generator: the class as a second input in every format, checked
against PyTorch on labels that cover every class, and a model card that lists the classes."""

import copy
import io
import json
import warnings

import numpy as np
import pytest
import torch
from safetensors import safe_open

from dcgan.checkpoint import GENERATOR_FORMAT, load_checkpoint
from dcgan.cli import main
from dcgan.errors import ConfigError
from dcgan.export import (
    CARD_JSON,
    CARD_MARKDOWN,
    EXPORT_FORMATS,
    LABELS_INPUT,
    check_inputs,
    check_onnx,
    check_safetensors,
    check_torchscript,
    export_files,
    model_card_markdown,
)
from dcgan.models.conditioning import ClassConditionalBatchNorm2d
from dcgan.sampling import generate, sample_z

pytestmark = pytest.mark.kernels  # depends on the CPU's kernels: make test-avx2 reruns it (pyproject's markers)

ONNX_TOLERANCE = 1e-4
TORCHSCRIPT_TOLERANCE = 1e-6
NUM_CLASSES = 10  # digits: classes "0".."9"


@pytest.fixture(scope="module")
def exported(conditional_run):
    """(checkpoint, G, {format name or card file: ExportedFile}) of every format, for each conditioning method."""
    ckpt = load_checkpoint(conditional_run)
    files = export_files(ckpt, list(EXPORT_FORMATS), [])
    return ckpt, ckpt.build_generator(), {f.format if f.format != "card" else f.name: f for f in files}


def _inputs(G, n, seed=1):
    """n draws from G's prior and labels 0, 1, ..., 9, 0, ... (n,) int64."""
    c = G.config
    return sample_z(n, c.z_dim, c.prior, torch.Generator().manual_seed(seed)), torch.arange(n) % c.num_classes


def _onnx_session(data):
    import onnxruntime as ort

    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def _torchscript(data):
    with warnings.catch_warnings():  # PyTorch has deprecated TorchScript, and says so on every load
        warnings.simplefilter("ignore")
        return torch.jit.load(io.BytesIO(data), map_location="cpu").eval()


def _moved_class(G, label, by=0.05):
    """A copy of G whose class `label` alone draws differently: its conditional weights moved by `by`."""
    other = copy.deepcopy(G)
    with torch.no_grad():
        if other.config.conditioning == "projection":
            for m in other.modules():
                if isinstance(m, ClassConditionalBatchNorm2d):
                    m.shift.weight[label] += by  # (num_classes, C): this class's shift only
        else:  # concat: the first layer's weights that read one_hot(label); (z_dim + num_classes, C, k, k)
            first = next(m for m in other.modules() if isinstance(m, torch.nn.ConvTranspose2d))
            first.weight[other.config.z_dim + label] += by
    return other


# --------------------------------------------------------------------------- #
# The checks
# --------------------------------------------------------------------------- #
def test_every_file_passes_its_check_on_labels(exported):
    ckpt, G, files = exported
    assert ckpt.model_config.conditional and ckpt.model_config.num_classes == NUM_CLASSES
    for name in EXPORT_FORMATS:
        assert files[name].passed, (name, files[name].max_diff)
    assert files["safetensors"].max_diff == 0.0


def test_check_inputs_cover_every_class_and_repeat(exported):
    _, G, _ = exported
    z, labels = check_inputs(G, num=4, seed=0)  # fewer samples than classes: the check takes one per class at least
    assert z.shape == (NUM_CLASSES, G.config.z_dim) and labels.dtype == torch.int64
    assert sorted(labels.tolist()) == list(range(NUM_CLASSES))
    z16, labels16 = check_inputs(G, num=16, seed=0)
    assert set(labels16.tolist()) == set(range(NUM_CLASSES)) and torch.bincount(labels16).tolist() == [2] * 6 + [1] * 4
    again = check_inputs(G, num=16, seed=0)
    assert torch.equal(again[0], z16) and torch.equal(again[1], labels16)
    assert not torch.equal(check_inputs(G, num=16, seed=1)[1], labels16)  # the labels are seeded too


def test_unconditional_check_inputs_are_unchanged():
    from dcgan.models import ModelConfig, build_generator

    G = build_generator(ModelConfig(image_size=16, channels=1, z_dim=8, width=8))
    z, labels = check_inputs(G, num=16, seed=3)
    assert labels is None and torch.equal(z, sample_z(16, 8, "normal", torch.Generator().manual_seed(3)))


@pytest.mark.parametrize("check", [check_onnx, check_torchscript, check_safetensors], ids=["onnx", "torchscript", "safetensors"])
def test_a_check_catches_a_generator_that_differs_in_one_class(exported, check):
    """Only the last class's weights differ: the check must feed that class to notice."""
    _, G, files = exported
    name = {check_onnx: "onnx", check_torchscript: "torchscript", check_safetensors: "safetensors"}[check]
    assert check(files[name].data, G) <= EXPORT_FORMATS[name].tolerance
    other = _moved_class(G, NUM_CLASSES - 1)
    z, labels = _inputs(G, 2 * NUM_CLASSES)
    keep = labels != NUM_CLASSES - 1
    with torch.no_grad():
        assert torch.equal(other(z[keep], labels[keep]), G(z[keep], labels[keep]))  # the other classes draw as before
    assert check(files[name].data, other) > 10 * ONNX_TOLERANCE


# --------------------------------------------------------------------------- #
# The formats: the class as a second input
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("batch", [1, 7])
def test_onnx_takes_labels_as_a_second_graph_input(exported, batch):
    import onnx

    ckpt, G, files = exported
    mc = ckpt.model_config
    model = onnx.load_from_string(files["onnx"].data)
    z_in, labels_in = model.graph.input
    assert (z_in.name, labels_in.name, model.graph.output[0].name) == ("z", LABELS_INPUT, "images")
    assert labels_in.type.tensor_type.elem_type == onnx.TensorProto.INT64
    (labels_batch,) = labels_in.type.tensor_type.shape.dim
    assert labels_batch.dim_param and labels_batch.dim_param == z_in.type.tensor_type.shape.dim[0].dim_param  # one dynamic batch
    props = {p.key: p.value for p in model.metadata_props}
    assert props["dcgan.num_classes"] == str(NUM_CLASSES) and props["dcgan.conditioning"] == mc.conditioning
    assert json.loads(props["dcgan.class_names"]) == [str(i) for i in range(NUM_CLASSES)]

    session = _onnx_session(files["onnx"].data)
    z, labels = _inputs(G, batch)
    images = session.run(["images"], {"z": z.numpy(), "labels": labels.numpy()})[0]
    assert images.shape == (batch, mc.channels, mc.image_size, mc.image_size) and images.dtype == np.float32
    with torch.no_grad():
        assert np.abs(images - G(z, labels).numpy()).max() <= ONNX_TOLERANCE


def test_the_class_changes_the_images_through_each_file(exported):
    """The same z with class 1 and with class 2: different images, and each as PyTorch draws it."""
    _, G, files = exported
    session, module = _onnx_session(files["onnx"].data), _torchscript(files["torchscript"].data)
    z, _ = _inputs(G, 6)
    drawn = {}
    for label in (1, 2):
        labels = torch.full((6,), label)
        with torch.no_grad():
            want = G(z, labels)
            drawn[("torchscript", label)] = module(z, labels)
        drawn[("onnx", label)] = torch.from_numpy(session.run(["images"], {"z": z.numpy(), "labels": labels.numpy()})[0])
        assert (drawn[("onnx", label)] - want).abs().max() <= ONNX_TOLERANCE
        assert (drawn[("torchscript", label)] - want).abs().max() <= TORCHSCRIPT_TOLERANCE
    for runner in ("onnx", "torchscript"):
        change = (drawn[(runner, 1)] - drawn[(runner, 2)]).abs().amax(dim=(1, 2, 3))  # (6,): per image
        assert (change > 10 * ONNX_TOLERANCE).all(), (runner, change)  # tiny models: ~1e-2 after 40 steps


def test_torchscript_takes_labels_as_a_second_argument(exported):
    ckpt, G, files = exported
    extra = {CARD_JSON: ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = torch.jit.load(io.BytesIO(files["torchscript"].data), map_location="cpu", _extra_files=extra)
    assert [c["name"] for c in json.loads(extra[CARD_JSON])["model"]["classes"]] == [str(i) for i in range(NUM_CLASSES)]
    z, labels = _inputs(G, 5)
    with torch.no_grad():
        assert torch.allclose(module(z, labels), G(z, labels), rtol=0, atol=TORCHSCRIPT_TOLERANCE)
        with pytest.raises(Exception):  # noqa: B017  (TorchScript's own error type: the class is not optional in the traced graph)
            module(z)


def test_safetensors_keeps_the_classes_and_loads_back_for_generating(exported, tmp_path):
    ckpt, G, files = exported
    path = tmp_path / "generator.safetensors"
    path.write_bytes(files["safetensors"].data)
    loaded = load_checkpoint(path)
    assert loaded.format == GENERATOR_FORMAT and not loaded.resumable
    mc = loaded.model_config
    assert mc == ckpt.model_config and mc.conditioning == ckpt.model_config.conditioning
    assert mc.num_classes == NUM_CLASSES and mc.class_names == tuple(str(i) for i in range(NUM_CLASSES))
    loaded_G = loaded.build_generator()
    z, labels = _inputs(G, 12)
    assert torch.equal(generate(loaded_G, z, labels), generate(G, z, labels))
    assert torch.equal(generate(loaded_G, z[:3], 7), generate(G, z[:3], torch.full((3,), 7)))
    with pytest.raises(ConfigError, match="class-conditional"):
        generate(loaded_G, z)
    with safe_open(str(path), "pt") as f:
        card = json.loads(f.metadata()["model_card"])
    assert card["model"]["num_classes"] == NUM_CLASSES and "files" not in card


# --------------------------------------------------------------------------- #
# The model card
# --------------------------------------------------------------------------- #
def test_card_lists_the_classes_and_the_method(exported):
    ckpt, G, files = exported
    mc = ckpt.model_config
    card = json.loads(files[CARD_JSON].data)
    model = card["model"]
    assert model["num_classes"] == NUM_CLASSES
    assert model["classes"] == [{"label": i, "name": str(i)} for i in range(NUM_CLASSES)]
    assert model["conditioning"] == mc.conditioning and model["conditioning_means"]
    assert model["labels_input"] == {"name": "labels", "shape": ["batch"], "dtype": "int64", "range": [0, NUM_CLASSES - 1]}
    assert model["config"]["class_names"] == [str(i) for i in range(NUM_CLASSES)]
    assert model["parameters"] == sum(p.numel() for p in G.parameters())
    assert card["title"].startswith("Class-conditional") and "one of 10 classes" in card["summary"]
    assert mc.conditioning in model["architecture"]
    markdown = files[CARD_MARKDOWN].data.decode()
    assert markdown == model_card_markdown(card)
    assert "## Classes" in markdown and all(f"| {i} | {i} |" in markdown for i in range(NUM_CLASSES))
    assert f"| conditioning | {mc.conditioning}: " in markdown and "`labels`, shape (batch,), int64" in markdown
    usage = card["usage"]
    assert "generate(G, z, labels)" in usage["safetensors"] and "--class 1" in usage["safetensors"]
    assert '{"z": z, "labels": labels}' in usage["onnx"] and "np.int64" in usage["onnx"]
    assert "G(z, labels)" in usage["torchscript"]


def test_the_usage_snippets_run_and_draw_the_class_they_name(exported, tmp_path, monkeypatch):
    """Each card snippet, run as written next to its file, draws class 1 as PyTorch does."""
    _, G, files = exported
    for name, fmt in EXPORT_FORMATS.items():
        (tmp_path / fmt.filename()).write_bytes(files[name].data)
    monkeypatch.chdir(tmp_path)
    usage = json.loads(files[CARD_JSON].data)["usage"]
    for name, tolerance in (("safetensors", 0.0), ("onnx", ONNX_TOLERANCE), ("torchscript", TORCHSCRIPT_TOLERANCE)):
        scope: dict = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exec(usage[name], scope)
        z = torch.as_tensor(scope["z"])
        assert scope["labels"].tolist() == [1] * 16
        images = torch.as_tensor(scope["images"])
        assert (images - generate(G, z, 1)).abs().max() <= tolerance, name
    assert scope["images"].shape[0] == 16


# --------------------------------------------------------------------------- #
# The command line
# --------------------------------------------------------------------------- #
def test_cli_export_of_a_conditional_run(conditional_run, tmp_path, capsys):
    out = tmp_path / "release"
    assert main(["export", str(conditional_run), "--format", "all", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    mc = load_checkpoint(conditional_run).model_config
    assert f"10 classes ({mc.conditioning})" in captured.out and captured.err == ""
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["generator.safetensors", "generator.onnx", "generator.torchscript.pt", CARD_JSON, CARD_MARKDOWN]
    )
    card = json.loads((out / CARD_JSON).read_text())
    assert [c["name"] for c in card["model"]["classes"]] == [str(i) for i in range(NUM_CLASSES)]
    assert all(f["max_diff"] <= f["tolerance"] for f in card["files"])
    # The exported file draws a class from the shell as the run does.
    exported_file = out / "generator.safetensors"
    assert main(["generate", str(exported_file), "-n", "4", "--class", "3", "--seed", "2", "--out", str(tmp_path / "a.png")]) == 0
    assert main(["generate", str(conditional_run), "-n", "4", "--class", "3", "--seed", "2", "--out", str(tmp_path / "b.png")]) == 0
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
