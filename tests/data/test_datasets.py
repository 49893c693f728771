import gzip
import struct

import numpy as np
import pytest
import torch

from dcgan.data import DATASETS, convert_channels, load_dataset, read_idx
from dcgan.errors import DataError


def test_digits_bundled():
    train = load_dataset("digits", image_size=32)
    test = load_dataset("digits", split="test", image_size=16, channels=3)
    assert train.images.shape == (1437, 1, 32, 32) and train.images.dtype == torch.uint8
    assert test.images.shape == (360, 3, 16, 16)
    assert train.labels.shape == (1437,) and set(train.labels.tolist()) == set(range(10))
    assert train.images.max() > 200  # ink is bright, 0..16 scaled to 0..255
    assert train.fingerprint() == load_dataset("digits", image_size=32).fingerprint()
    assert train.fingerprint() != test.fingerprint()


def test_mnist_from_shared_data(mnist_dir):
    data = load_dataset("mnist", mnist_dir)
    assert data.images.shape == (60000, 1, 28, 28)
    assert data.labels[:5].tolist() == [5, 0, 4, 1, 9]  # the well-known first MNIST labels
    test = load_dataset("mnist", mnist_dir, split="test", image_size=32)
    assert test.images.shape == (10000, 1, 32, 32)


def test_mnist_missing_files_say_what_is_needed(tmp_path):
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz"):
        load_dataset("mnist", tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("mnist", tmp_path / "nowhere")


def test_unknown_dataset():
    with pytest.raises(DataError, match="unknown dataset"):
        load_dataset("imagenet")
    assert {"digits", "mnist"} <= set(DATASETS)


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def test_read_idx_round_trip_and_errors(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a.gz").write_bytes(gzip.compress(_idx(arr)))
    assert np.array_equal(read_idx(tmp_path / "a.gz"), arr)
    (tmp_path / "short").write_bytes(_idx(arr)[:-3])
    with pytest.raises(DataError, match="truncated"):
        read_idx(tmp_path / "short")
    (tmp_path / "text").write_bytes(b"hello world")
    with pytest.raises(DataError, match="not an IDX"):
        read_idx(tmp_path / "text")
    (tmp_path / "bad.gz").write_bytes(gzip.compress(_idx(arr))[:20])
    with pytest.raises(DataError):
        read_idx(tmp_path / "bad.gz")


def test_channel_conversion():
    grey = torch.tensor([[[[0, 255]]]], dtype=torch.uint8)
    rgb = convert_channels(grey, 3)
    assert rgb.shape == (1, 3, 1, 2) and torch.equal(rgb[:, 0], grey[:, 0])
    back = convert_channels(rgb, 1)
    assert torch.equal(back, grey)
    red = torch.tensor([255, 0, 0], dtype=torch.uint8).view(1, 3, 1, 1)
    assert convert_channels(red, 1).item() == 76  # ITU-R 601: 0.299 * 255
