"""The evaluation classifier: a small CNN trained on a labelled real dataset.

Its features feed FID, KID and the k-NN scores, and its softmax the class
probabilities for the classifier Inception Score, class coverage and
confidence. It plays the part Inception plays for ImageNet-like data, but is
trained on the same domain (digits, clothes, CIFAR), which is what makes its
features meaningful there, and it needs no download.

Two feature views: `Classifier.features`, the global-average-pooled last
convolution (the penultimate layer), and `layer_features`, which adds every
stage's activations averaged over the image and a coarse spatial grid, each
block scaled by a calibration measured on the training data (LAYER_BLOCKS says
why). The penultimate layer is trained to ignore what does not change the class
(stroke texture, faint dots, position); the earlier stages do not.

Saved like a checkpoint: one safetensors file whose metadata holds the config,
the training data's fingerprint, the measured test accuracy and the layer
calibration.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save as safetensors_save
from torch import nn

from .._version import __version__
from ..data import ImageData, dataset_stem, unit_batches
from ..errors import CheckpointError, ConfigError, DataError
from ..fileio import atomic_write_bytes
from ..imaging import to_unit_range
from ..models import evaluating
from .layers import (  # the layer features live in layers.py; importable from here
    LAYER_BLOCKS,
    LAYER_RECIPE,
    LayerBlock,
    calibrate_layers,
    layer_feature_dim,
    layer_features,
    layer_features_and_penultimate,
)

__all__ = [
    "ClassifierConfig",
    "Classifier",
    "TrainedClassifier",
    "train_classifier",
    "save_classifier",
    "load_classifier",
    "default_evaluator_dir",
    "default_evaluator_path",
    "adapt_images",
    "LayerBlock",
    "LAYER_BLOCKS",
    "LAYER_RECIPE",
    "calibrate_layers",
    "layer_features",
    "layer_features_and_penultimate",
    "layer_feature_dim",
    "layer_calibration",
    "calibrate_classifier",
    "NOISE_AUGMENTATION",
]

FORMAT = "dcgan-evaluator"
CALIBRATION_IMAGES = 5000  # training images the layer features' scales are measured on
# Training adds Gaussian noise of a sigma drawn per image from [0, NOISE_AUGMENTATION] ([-1, 1] units). Without it
# the features react to faint pixel noise (sigma 0.1, which a person barely sees) as much as to a generator's
# broken strokes, and the ladder put a clearly worse 3-epoch MNIST generator beside that rung; with it,
# noise still ranks in order (0.1 < 0.2 < 0.5) but the shapes dominate (README: "Measuring quality", the ladder).
NOISE_AUGMENTATION = 0.3


@dataclass(frozen=True)
class ClassifierConfig:
    """Shape of the evaluation classifier."""

    image_size: int  # input height = width; other sizes are resized to this
    channels: int  # 1 or 3; other channel counts are converted
    num_classes: int  # output classes
    width: int = 32  # channels of the first stage; stages use width, 2*width, 4*width
    classes: tuple[str, ...] = ()  # class names, index = label

    @property
    def feature_dim(self) -> int:
        return 4 * self.width


def _conv(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class Classifier(nn.Module):
    """Three stages of 3x3 convolutions with batch norm, each halving the size, then global average pooling."""

    def __init__(self, config: ClassifierConfig):
        super().__init__()
        self.config = config
        w = config.width
        self.blocks = nn.Sequential(
            *_conv(config.channels, w),
            *_conv(w, w),
            nn.MaxPool2d(2),  # (B, w, S/2, S/2)
            *_conv(w, 2 * w),
            *_conv(2 * w, 2 * w),
            nn.MaxPool2d(2),  # (B, 2w, S/4, S/4)
            *_conv(2 * w, 4 * w),
            *_conv(4 * w, 4 * w),  # (B, 4w, S/4, S/4)
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),  # (B, 4w): the features
        )
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(4 * w, config.num_classes)  # (B, K) logits

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (B, 4*width) of images in [-1, 1] at the configured size."""
        return self.blocks(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x)))

    def stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each stage's output: (B, w, S/2, S/2) and (B, 2w, S/4, S/4) after their max pooling, and the
        last convolution's (B, 4w, S/4, S/4) before the global average that makes the penultimate features."""
        outs = []
        for module in self.blocks:
            if isinstance(module, nn.AdaptiveAvgPool2d):
                outs.append(x)
                break
            x = module(x)
            if isinstance(module, nn.MaxPool2d):
                outs.append(x)
        return outs


def adapt_images(x: torch.Tensor, size: int, channels: int) -> torch.Tensor:
    """Float images in [-1, 1] (N, C, H, W) -> (N, channels, size, size), by luma / repetition and
    antialiased bilinear resizing, so that any generator can be scored by any extractor."""
    if x.shape[1] != channels:
        if x.shape[1] == 3 and channels == 1:
            x = (x * x.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
        elif x.shape[1] == 1 and channels == 3:
            x = x.expand(-1, 3, -1, -1)
        else:
            raise ConfigError(f"cannot convert {x.shape[1]}-channel images to {channels} channels")
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=x.shape[-1] > size)
    return x


@dataclass
class TrainedClassifier:
    """A classifier with what is known about it."""

    model: Classifier
    info: dict = field(default_factory=dict)  # dataset, fingerprint, test_accuracy, epochs, seconds, ...

    @property
    def config(self) -> ClassifierConfig:
        return self.model.config

    def weights_id(self) -> str:
        """sha256 of the weights: part of the cache key of reference features."""
        h = hashlib.sha256()
        for k, v in sorted(self.model.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:16]

    def layer_scales(self) -> list[float] | None:
        """The calibration of LAYER_BLOCKS stored at training time; None for classifiers trained before it
        (or with other blocks)."""
        cal = self.info.get("layer_calibration") or {}
        scales = cal.get("scales")
        if cal.get("recipe") != LAYER_RECIPE or not isinstance(scales, list) or len(scales) != len(LAYER_BLOCKS):
            return None
        return [float(v) for v in scales]

    def require_layer_scales(self) -> list[float]:
        """layer_scales(), or a one-line ConfigError saying how to get them."""
        scales = self.layer_scales()
        if scales is None:
            dataset = self.info.get("dataset") or "NAME"
            raise ConfigError(
                f"the evaluation classifier trained on {dataset} has no layer calibration (it predates the "
                f"classifier-layers features); add it in seconds with: dcgan evaluator calibrate --data {dataset}"
            )
        return scales

    def run(self, images: torch.Tensor, batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
        """(features (N, F), softmax probabilities (N, K)) of float images in [-1, 1], in eval mode."""
        model = self.model
        device = next(model.parameters()).device
        feats, probs = [], []
        with evaluating(model):
            for chunk in images.split(batch_size):
                x = adapt_images(chunk.to(device).float(), self.config.image_size, self.config.channels)
                f = model.features(x)
                feats.append(f.float().cpu())
                probs.append(model.head(f).float().softmax(1).cpu())
        return torch.cat(feats), torch.cat(probs)


def _augment(x: torch.Tensor, generator: torch.Generator, hflip: bool, shift: int = 2, noise: float = 0.0) -> torch.Tensor:
    """Random translations by up to `shift` pixels (and horizontal flips) per image, on the device; with
    `noise` > 0, Gaussian noise of a sigma drawn per image from [0, noise] ([-1, 1] units, clipped)."""
    n, _, h, w = x.shape
    padded = F.pad(x, (shift, shift, shift, shift), value=-1.0)
    dx = torch.randint(0, 2 * shift + 1, (n,), generator=generator, device=generator.device).to(x.device)
    dy = torch.randint(0, 2 * shift + 1, (n,), generator=generator, device=generator.device).to(x.device)
    rows = dy.view(n, 1) + torch.arange(h, device=x.device).view(1, h)  # (N, H)
    cols = dx.view(n, 1) + torch.arange(w, device=x.device).view(1, w)  # (N, W)
    idx_rows = rows.view(n, 1, h, 1).expand(n, x.shape[1], h, w + 2 * shift)
    out = padded.gather(2, idx_rows)
    out = out.gather(3, cols.view(n, 1, 1, w).expand(n, x.shape[1], h, w))
    if hflip:
        flip = torch.rand(n, generator=generator, device=generator.device).to(x.device) < 0.5
        out = torch.where(flip.view(n, 1, 1, 1), out.flip(3), out)
    if noise > 0:
        sigma = noise * torch.rand(n, 1, 1, 1, generator=generator, device=generator.device).to(x.device)
        out = (out + sigma * torch.randn(out.shape, generator=generator, device=generator.device).to(x.device)).clamp_(-1, 1)
    return out


def accuracy(model: Classifier, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500) -> float:
    """Top-1 accuracy on uint8 images (N, C, H, W) at the model's size."""
    device = next(model.parameters()).device
    correct = 0
    with evaluating(model):
        for x, yb in zip(unit_batches(images, batch_size, device), labels.split(batch_size)):
            correct += int((model(x).argmax(1).cpu() == yb).sum())
    return correct / max(len(labels), 1)


def _labelled_config(train: ImageData, test: ImageData, width: int) -> ClassifierConfig:
    """The classifier's shape for labelled in-memory data (a one-line error for data that streams or has
    no labels): the training data's size, channels and classes (numbered when unnamed)."""
    for part, name in ((train, "training"), (test, "test")):
        if not part.in_memory:
            raise DataError(f"the {name} data must fit in memory to train the evaluation classifier")
        if part.labels is None:
            raise DataError(f"{train.name or 'this dataset'} has no labels: the evaluation classifier needs labelled data")
    assert train.labels is not None  # just checked
    classes = tuple(train.classes or [str(i) for i in range(int(train.labels.max()) + 1)])
    num_classes = max(len(classes), int(train.labels.max()) + 1)
    return ClassifierConfig(train.image_size, train.channels, num_classes, width, classes)


def _progress_bar(total: int):
    """The tqdm bar of the training iterations."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="classifier", unit="it", dynamic_ncols=True, mininterval=0.5)


def _fit(
    model: Classifier,
    train: ImageData,
    test: ImageData,
    device: torch.device,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    hflip: bool,
    noise: float,
    on_epoch: Callable[[int, float, float], None] | None,
    progress: bool,
) -> tuple[list[dict], float]:
    """`train_classifier`'s optimisation: (each epoch's training loss and test accuracy, the seconds the epochs took).
    One generator, seeded with `seed` on `device`, draws each epoch's order and then its batches' augmentations."""
    assert train.images is not None and train.labels is not None  # in memory and labelled: checked by _labelled_config
    assert test.images is not None and test.labels is not None
    test_images, test_labels = test.images, test.labels
    images = train.images.to(device)
    labels = train.labels.to(device)
    steps_per_epoch = max(1, len(images) // batch_size)
    total = steps_per_epoch * epochs
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total, pct_start=0.2)
    g = torch.Generator(device=device).manual_seed(seed)
    start = time.perf_counter()
    history = []
    bar = _progress_bar(total) if progress else None
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(images), generator=g, device=device)
        loss_sum = torch.zeros((), device=device)
        for i in range(steps_per_epoch):
            idx = order[i * batch_size : (i + 1) * batch_size]
            x = _augment(to_unit_range(images[idx]), g, hflip, noise=noise)
            loss = F.cross_entropy(model(x), labels[idx], label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            schedule.step()
            loss_sum += loss.detach()
            if bar is not None:
                bar.update(1)
        train_loss = float(loss_sum) / steps_per_epoch
        test_acc = accuracy(model, test_images, test_labels)
        history.append({"epoch": epoch + 1, "train_loss": round(train_loss, 4), "test_accuracy": test_acc})
        if bar is not None:
            bar.set_postfix_str(f"loss {train_loss:.3f} test acc {test_acc:.4f}")
        if on_epoch is not None:
            on_epoch(epoch + 1, train_loss, test_acc)
    if bar is not None:
        bar.close()
    return history, time.perf_counter() - start


def train_classifier(
    train: ImageData,
    test: ImageData,
    epochs: int = 3,
    batch_size: int = 128,
    lr: float = 2e-3,
    width: int = 32,
    seed: int = 0,
    device: torch.device | str = "cpu",
    hflip: bool | None = None,
    noise: float = NOISE_AUGMENTATION,
    on_epoch: Callable[[int, float, float], None] | None = None,
    progress: bool = False,
) -> TrainedClassifier:
    """Train the evaluation classifier on labelled uint8 data; report test accuracy.

    AdamW with a one-cycle learning rate, random shifts of up to 2 pixels (and
    horizontal flips for RGB data unless `hflip` says otherwise), and Gaussian
    noise of a sigma drawn per image from [0, `noise`] (NOISE_AUGMENTATION says
    why). `on_epoch` receives (epoch, train loss, test accuracy).
    """
    config = _labelled_config(train, test, width)
    hflip = config.channels == 3 if hflip is None else hflip
    device = torch.device(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Classifier(config).to(device)
    history, seconds = _fit(model, train, test, device, epochs, batch_size, lr, seed, hflip, noise, on_epoch, progress)
    assert train.images is not None  # in memory: checked by _labelled_config
    model.eval()
    info = {
        "dataset": train.name,
        "fingerprint": train.fingerprint(),
        "test_fingerprint": test.fingerprint(),
        "train_images": len(train),
        "test_images": len(test),
        "test_accuracy": history[-1]["test_accuracy"] if history else 0.0,
        "epochs": epochs,
        "seconds": round(seconds, 1),
        "seed": seed,
        "noise_augmentation": noise,
        "history": history,
        "device": str(device),
        "layer_calibration": layer_calibration(model, train.images, seed),
    }
    return TrainedClassifier(model, info)


def layer_calibration(model: Classifier, images: torch.Tensor, seed: int = 0) -> dict:
    """The record `layer_features` needs: LAYER_BLOCKS' spreads on up to CALIBRATION_IMAGES of the uint8
    training images, chosen by `seed` (the same choice whether made at training time or later)."""
    chosen = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:CALIBRATION_IMAGES].sort().values
    return {"recipe": LAYER_RECIPE, "images": len(chosen), "seed": seed, "scales": calibrate_layers(model, images[chosen])}


def calibrate_classifier(classifier: TrainedClassifier, train: ImageData) -> TrainedClassifier:
    """The classifier with the layer calibration measured on `train`, which must be the data it was
    trained on (same fingerprint when the classifier recorded one): for classifiers trained before
    the layer features, so that they need not be retrained."""
    if not train.in_memory:
        raise DataError("the training data must fit in memory to calibrate the evaluation classifier")
    expected = classifier.info.get("fingerprint")
    if expected and expected != train.fingerprint():
        raise ConfigError(
            f"these are not the images the evaluation classifier was trained on ({train.name}, "
            f"{train.image_size}x{train.image_size}x{train.channels}); give the same data, size and channels"
        )
    assert train.images is not None  # in memory: checked above
    info = dict(classifier.info)
    info["layer_calibration"] = layer_calibration(classifier.model, train.images, int(info.get("seed", 0)))
    return TrainedClassifier(classifier.model, info)


def default_evaluator_dir() -> Path:
    """Where trained evaluation classifiers live: $DCGAN_EVALUATOR_DIR or ~/.cache/dcgan/evaluators."""
    return Path(os.environ.get("DCGAN_EVALUATOR_DIR", Path.home() / ".cache" / "dcgan" / "evaluators"))


def default_evaluator_path(dataset: str) -> Path:
    """The classifier `dcgan evaluator train --data NAME` writes and the classifier features (and `auto`) read."""
    return default_evaluator_dir() / f"{dataset_stem(dataset)}.safetensors"


def save_classifier(path: str | os.PathLike, classifier: TrainedClassifier) -> Path:
    """Write the classifier atomically as safetensors with its config and info as metadata."""
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in classifier.model.state_dict().items()}
    config = asdict(classifier.config)
    config["classes"] = list(config["classes"])
    metadata = {"format": FORMAT, "dcgan_version": __version__, "config": json.dumps(config), "info": json.dumps(classifier.info)}
    return atomic_write_bytes(path, safetensors_save(tensors, metadata=metadata))


def load_classifier(path: str | os.PathLike, device: torch.device | str = "cpu") -> TrainedClassifier:
    """Read a classifier written by `save_classifier`; one-line CheckpointError for anything else."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"evaluation classifier {path} does not exist")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            if metadata.get("format") != FORMAT:
                raise CheckpointError(f"{path} is not a dcgan evaluation classifier")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        raw = json.loads(metadata["config"])
        raw["classes"] = tuple(raw.get("classes", ()))
        config = ClassifierConfig(**raw)
        info = json.loads(metadata.get("info", "{}"))
        model = Classifier(config)
        model.load_state_dict(tensors)
    except CheckpointError:
        raise
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path} is not a readable evaluation classifier ({reason})") from None
    return TrainedClassifier(model.to(device).eval(), info)


def describe(classifier: TrainedClassifier) -> str:
    """One line: what the classifier was trained on and how good it is."""
    info = classifier.info
    acc = info.get("test_accuracy")
    acc_text = f"{100 * acc:.2f}% test accuracy" if isinstance(acc, (int, float)) and not math.isnan(acc) else "accuracy unknown"
    c = classifier.config
    noise = info.get("noise_augmentation")
    noise_text = f", noise-augmented to sigma {noise:g}" if noise else ""
    return f"classifier trained on {info.get('dataset', '?')} ({c.image_size}x{c.image_size}x{c.channels}, {acc_text}{noise_text})"
