"""Shared fixtures: tiny models, small real data, and markers for slow and GPU tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from dcgan.data import load_dataset

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("DCGAN_SHARED_DATA", REPO.parent / "shared" / "data"))


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config, items):
    skip_slow = pytest.mark.skip(reason="slow: pass --runslow to run")
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "slow" in item.keywords and not config.getoption("--runslow"):
            item.add_marker(skip_slow)
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Decoded-data caches and evaluation classifiers go to temporary folders, never the user's home."""
    os.environ["DCGAN_CACHE_DIR"] = str(tmp_path_factory.mktemp("decoded-cache"))
    os.environ["DCGAN_EVALUATOR_DIR"] = str(tmp_path_factory.mktemp("evaluators"))


def _shared(relative: str, probe: str = "") -> Path:
    """A path under ../shared/data; the test is skipped when the file it needs is not there."""
    path = SHARED_DATA / relative
    if not (path / probe).exists():
        pytest.skip(f"{path / probe} not found")
    return path


@pytest.fixture(scope="session")
def cifar_partial() -> Path:
    return _shared("cifar10-partial", "train_first4000.bin")


@pytest.fixture(scope="session")
def cifar_jpg_tar() -> Path:
    return _shared("cifar10-jpg/CIFAR-10-images-jpg.tar.gz")


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    return _shared("mnist", "train-images-idx3-ubyte.gz")


@pytest.fixture(scope="session")
def digits16():
    """scikit-learn's digits at 16x16: real data, no files needed."""
    return load_dataset("digits", image_size=16)


TINY = dict(image_size=16, channels=1, z_dim=8, width=8)  # a model that trains in milliseconds


def run_cli(*argv) -> int:
    """`dcgan ARGV...` in this process (paths and numbers as text); returns the exit status."""
    from dcgan.cli import main

    return main([str(a) for a in argv])


def one_line_error(err: str) -> str:
    """The one line a user mistake prints on stderr (never a traceback)."""
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="session")
def digits_classifier(_private_cache):
    """An evaluation classifier for digits at 16x16, trained in a few seconds and saved where
    `--features classifier` looks for it."""
    from dcgan.metrics import default_evaluator_path, save_classifier, train_classifier

    train = load_dataset("digits", image_size=16, split="train")
    test = load_dataset("digits", image_size=16, split="test")
    clf = train_classifier(train, test, epochs=8, width=8, seed=0)
    save_classifier(default_evaluator_path("digits"), clf)
    return clf


@pytest.fixture(scope="session")
def mnist_evaluation(mnist_dir, tmp_path_factory):
    """MNIST at 32x32 (train, test) and an evaluation classifier trained in a few seconds on 6,000 of its
    training images (2 epochs, width 8), saved to a file of its own rather than where `auto` looks, so
    that other tests' MNIST runs do not pick it up. Returns (train, test, classifier file)."""
    from dcgan.data import ImageData
    from dcgan.metrics import save_classifier, train_classifier

    train = load_dataset("mnist", mnist_dir, image_size=32, split="train")
    test = load_dataset("mnist", mnist_dir, image_size=32, split="test")
    subset = ImageData(train.images[:6000], train.labels[:6000], name="mnist", classes=train.classes)
    check = ImageData(test.images[:2000], test.labels[:2000], name="mnist", classes=test.classes)  # accuracy per epoch
    clf = train_classifier(subset, check, epochs=2, width=8, seed=0)
    path = save_classifier(tmp_path_factory.mktemp("mnist-evaluator") / "mnist.safetensors", clf)
    return train, test, path


@pytest.fixture(scope="session", params=["projection", "concat"])
def conditional_run(request, tmp_path_factory):
    """A run directory of a tiny class-conditional model on digits at 16x16 (10 classes, "0".."9"),
    for each conditioning method: 40 iterations, enough for every tool to have real weights to read."""
    from dcgan.training import Trainer

    run = tmp_path_factory.mktemp(f"conditional-{request.param}") / "run"
    Trainer.from_options(
        run_dir=run, progress=False, data="digits", **TINY, conditional=True, conditioning=request.param, steps=40, batch_size=32, seed=0
    ).train()
    return run
