"""Pre-flight checks, training from folders (in memory and streamed), and the data CLI."""

import gzip
import io
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from dcgan.cli import main
from dcgan.data import load_dataset, load_image_files
from dcgan.data.check import check_files
from dcgan.models import ModelConfig
from dcgan.training import TrainConfig, Trainer

from conftest import TINY


def _png(value, size=(12, 10), mode="L"):
    buf = io.BytesIO()
    Image.new(mode, size, value).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def small_folder(tmp_path):
    root = tmp_path / "imgs"
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(40):
            arr = rng.integers(0, 256, (16, 16), dtype=np.uint8)
            Image.fromarray(arr).save(root / cls / f"{i}.png")
    return root


def test_check_report_counts_everything(small_folder):
    (small_folder / "a" / "dup.png").write_bytes((small_folder / "a" / "0.png").read_bytes())
    (small_folder / "b" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    (small_folder / "b" / "wide.png").write_bytes(_png(7, (40, 8)))
    report = check_files(small_folder, image_size=32, channels=1)
    assert report.total == 83 and report.checked == 83
    assert report.formats == {"PNG": 82}
    assert report.duplicates == [["a/0.png", "a/dup.png"]]
    assert [name for name, _ in report.failures] == ["b/broken.jpg"]
    assert report.non_square == 1 and report.smaller_than_target == 82
    assert report.usable and "skip the 1 undecodable" in report.verdict()
    text = report.text()
    for word in ("formats", "duplicates", "undecodable", "b/broken.jpg", "classes      2", "verdict"):
        assert word in text


@pytest.mark.kernels  # bit-exact against another run: rerun on the AVX2 paths by make test-avx2
def test_stream_and_memory_training_are_identical(small_folder):
    memory = load_image_files(small_folder, 16, 1, cache=False)
    streamed = load_image_files(small_folder, 16, 1, stream=True)
    runs = []
    for data, workers in ((memory, None), (streamed, 2)):
        cfg = TrainConfig(batch_size=16, steps=6, seed=3, device="cpu", workers=workers)  # 5 batches/epoch: crosses an epoch
        trainer = Trainer(ModelConfig(**TINY), cfg, data, progress=False)
        trainer.train()
        runs.append(trainer)
    for a, b in zip(runs[0].G.state_dict().values(), runs[1].G.state_dict().values()):
        assert torch.equal(a, b)


def test_cli_train_on_a_folder_and_data_check(small_folder, tmp_path, capsys):
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--data",
                str(small_folder),
                "--image-size",
                "16",
                "--channels",
                "1",
                "--z-dim",
                "8",
                "--width",
                "8",
                "--batch-size",
                "16",
                "--steps",
                "3",
                "--out",
                str(run),
                "--quiet",
                "--seed",
                "0",
            ]
        )
        == 0
    )
    assert (run / "checkpoints" / "latest.safetensors").exists()
    assert main(["data", "check", str(small_folder), "--image-size", "16"]) == 0
    assert "verdict      training will use all 80 images" in capsys.readouterr().out
    (tmp_path / "empty").mkdir()
    assert main(["data", "check", str(tmp_path / "empty")]) == 2
    assert "holds no images" in capsys.readouterr().out


def test_cli_refuses_unusable_folder_in_one_line(tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    for i in range(5):
        (bad / f"{i}.png").write_text("text")
    assert main(["train", "--data", str(bad), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "none of the 5 files" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run" / "checkpoints").exists()


def _idx(array: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def test_fashion_mnist_idx_files(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (7, 28, 28), dtype=np.uint8)
    labels = np.arange(7, dtype=np.uint8)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(images)))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx(labels))  # uncompressed works too
    data = load_dataset("fashion-mnist", tmp_path)
    assert data.images.shape == (7, 1, 28, 28)
    assert torch.equal(data.images[:, 0], torch.from_numpy(images)) and data.classes[9] == "Ankle boot"
