"""Feature extractors, looked up by name in FEATURE_EXTRACTORS.

- `classifier-layers` (the default when the dataset's classifier exists): the
  evaluation classifier's stages averaged over the image and on a 2x2 grid, each
  scaled by its spread on the training data, with the penultimate layer (see
  `classifier.LAYER_BLOCKS`); also gives class probabilities.
- `classifier`: the project's evaluation classifier for the dataset (trained by
  `dcgan evaluator train`), its penultimate layer only; also gives class probabilities.
- `inception`: the standard FID Inception-v3 (pool3, 2048 features) through the
  optional `pytorch-fid` package, when it imports.
- `discriminator`: a trained D's last convolutional block, averaged over space.
- `pixels`: the image itself, area-resized to at most 16x16, flattened.

Every extractor maps float images in [-1, 1] (N, C, H, W) to features (N, F)
and has an `id` that changes whenever its output would, for caching.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from ..errors import CheckpointError, ConfigError
from .classifier import (
    LAYER_RECIPE,
    TrainedClassifier,
    adapt_images,
    default_evaluator_path,
    describe,
    layer_feature_dim,
    layer_features_and_penultimate,
    load_classifier,
)

__all__ = [
    "Extractor",
    "FEATURE_EXTRACTORS",
    "register_extractor",
    "build_extractor",
    "load_dataset_classifier",
    "resolve_features",
    "DEFAULT_FEATURES",
]

DEFAULT_FEATURES = "classifier-layers"  # what `auto` picks when the dataset's evaluation classifier exists


@dataclass
class Extractor:
    """A named feature function with what is needed to state the protocol and key a cache."""

    name: str  # registry name
    id: str  # changes whenever the features would change (weights hash, package version, ...)
    description: str  # one line for the protocol
    fn: Callable[[torch.Tensor], torch.Tensor]  # (N, C, H, W) in [-1, 1] -> (N, F) for one batch
    classifier: TrainedClassifier | None = None  # set for the classifier extractors: also gives class probabilities
    # (features, probabilities) of one batch in one pass, for extractors built on `classifier`
    fn_with_probs: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None

    @torch.no_grad()
    def features(self, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        """Features (N, F) as float32 on the CPU, computed in batches."""
        return torch.cat([self.fn(chunk).float().cpu() for chunk in images.split(batch_size)])

    @torch.no_grad()
    def features_and_probs(self, images: torch.Tensor, batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
        """Features (N, F) and class probabilities (N, K), in one pass where the extractor allows it."""
        if self.fn_with_probs is None:
            if self.classifier is None:
                raise ConfigError(f"{self.name} features give no class probabilities")
            return self.features(images, batch_size), self.classifier.run(images, batch_size)[1]
        feats, probs = [], []
        for chunk in images.split(batch_size):
            f, p = self.fn_with_probs(chunk)
            feats.append(f.float().cpu())
            probs.append(p.float().cpu())
        return torch.cat(feats), torch.cat(probs)


if TYPE_CHECKING:
    from ..checkpoint import Checkpoint


@dataclass(frozen=True)
class ExtractorContext:
    """What a builder may use: the dataset's name (to find its classifier), an explicit classifier
    file, a checkpoint (for D) and the device."""

    dataset: str = ""
    evaluator: str | Path | None = None
    checkpoint: Checkpoint | None = None  # for the discriminator's features
    device: str = "cpu"


FEATURE_EXTRACTORS: dict[str, Callable[[ExtractorContext], Extractor]] = {}


def register_extractor(name: str):
    """Decorator adding an extractor builder to FEATURE_EXTRACTORS under `name`."""

    def wrap(fn):
        FEATURE_EXTRACTORS[name] = fn
        return fn

    return wrap


def build_extractor(name: str, **context) -> Extractor:
    """Build the extractor called `name`; ConfigError names the choices when it is unknown."""
    builder = FEATURE_EXTRACTORS.get(name)
    if builder is None:
        raise ConfigError(f"unknown feature extractor {name!r}: use one of {', '.join(FEATURE_EXTRACTORS)}")
    return builder(ExtractorContext(**context))


def load_dataset_classifier(dataset: str, evaluator: str | Path | None = None, device: str = "cpu") -> TrainedClassifier:
    """The evaluation classifier for `dataset` (or the file `evaluator`), with a one-line hint when missing."""
    path = Path(evaluator) if evaluator else default_evaluator_path(dataset)
    if not path.is_file():
        if evaluator:
            raise CheckpointError(f"evaluation classifier {path} does not exist")
        raise CheckpointError(f"no evaluation classifier for {dataset!r} (looked for {path}); train one with: dcgan evaluator train --data {dataset}")
    return load_classifier(path, device)


def resolve_features(name: str, dataset: str, evaluator: str | Path | None = None) -> tuple[str, str]:
    """The extractor that `name` means for `dataset`, and one line saying why (empty unless `name` is auto).

    auto: `classifier-layers` when the dataset's evaluation classifier (or the file `evaluator`) exists
    and carries the layer calibration; `classifier` when it predates that calibration; `pixels` when
    there is none. A missing explicit `evaluator` file is left to `build_extractor` to report.
    """
    if name != "auto":
        return name, ""
    path = Path(evaluator) if evaluator else default_evaluator_path(dataset)
    train_hint = f"dcgan evaluator train --data {dataset or 'NAME'}"
    if evaluator and not path.is_file():
        return DEFAULT_FEATURES, ""
    if not path.is_file():
        return "pixels", (
            f"features: pixels (no evaluation classifier for {dataset!r} at {path}); "
            f"for numbers that see more than pixels, train one with: {train_hint}"
        )
    try:
        classifier = load_classifier(path)
    except CheckpointError:
        return DEFAULT_FEATURES, ""  # unreadable: building the extractor says so in one line
    calibrated = classifier.layer_scales() is not None
    if not calibrated:
        return "classifier", (
            f"features: classifier (the evaluation classifier {path} predates the sharper "
            f"{DEFAULT_FEATURES} features; add their calibration in seconds with: "
            f"dcgan evaluator calibrate --data {dataset or 'NAME'})"
        )
    if not classifier.info.get("noise_augmentation"):
        return DEFAULT_FEATURES, (
            f"features: {DEFAULT_FEATURES} (the evaluation classifier {path} was trained without noise "
            f"augmentation, so faint noise weighs as much as broken shapes; retrain it with: "
            f"{train_hint} --force)"
        )
    return DEFAULT_FEATURES, f"features: {DEFAULT_FEATURES} (the evaluation classifier {path})"


def _classifier_pass(clf: TrainedClassifier, device: str, features_and_penultimate: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]):
    """fn and fn_with_probs of an extractor built on `clf`: `features_and_penultimate` maps input-sized
    images to (features, penultimate features), so the class probabilities cost no second pass."""
    c = clf.config

    def inputs(x: torch.Tensor) -> torch.Tensor:
        clf.model.eval()
        return adapt_images(x.to(device).float(), c.image_size, c.channels)

    def fn(x: torch.Tensor) -> torch.Tensor:
        return features_and_penultimate(inputs(x))[0]

    def fn_with_probs(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features, penultimate = features_and_penultimate(inputs(x))
        return features, clf.model.head(penultimate).float().softmax(1)

    return fn, fn_with_probs


@register_extractor("classifier-layers")
def _classifier_layers(ctx: ExtractorContext) -> Extractor:
    clf = load_dataset_classifier(ctx.dataset, ctx.evaluator, ctx.device)
    scales = clf.require_layer_scales()
    fn, fn_with_probs = _classifier_pass(clf, ctx.device, lambda x: layer_features_and_penultimate(clf, x))
    dim = layer_feature_dim(clf.config)
    scale_id = hashlib.sha256(repr(scales).encode()).hexdigest()[:8]
    return Extractor(
        "classifier-layers",
        f"classifier-layers-{LAYER_RECIPE}-{clf.weights_id()}-{scale_id}",
        describe(clf) + f", its stages averaged and on a 2x2 grid with the penultimate layer, {dim} features",
        fn,
        clf,
        fn_with_probs,
    )


@register_extractor("classifier")
def _classifier(ctx: ExtractorContext) -> Extractor:
    clf = load_dataset_classifier(ctx.dataset, ctx.evaluator, ctx.device)
    c = clf.config

    def penultimate_twice(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = clf.model.features(x)
        return f, f  # the features are the penultimate layer

    fn, fn_with_probs = _classifier_pass(clf, ctx.device, penultimate_twice)
    return Extractor(
        "classifier", f"classifier-{clf.weights_id()}", describe(clf) + f", penultimate layer, {c.feature_dim} features", fn, clf, fn_with_probs
    )


PIXEL_SIZE = 16  # pixel features are area-averaged to at most 16x16 so covariances stay well estimated


@register_extractor("pixels")
def _pixels(ctx: ExtractorContext) -> Extractor:
    def fn(x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        if x.shape[-1] > PIXEL_SIZE:
            x = F.adaptive_avg_pool2d(x, PIXEL_SIZE)
        return x.flatten(1)

    return Extractor("pixels", f"pixels-{PIXEL_SIZE}", f"raw pixels, area-resized to at most {PIXEL_SIZE}x{PIXEL_SIZE}", fn)


@register_extractor("discriminator")
def _discriminator(ctx: ExtractorContext) -> Extractor:
    if ctx.checkpoint is None:
        raise ConfigError("--features discriminator needs a checkpoint whose D gives the features")
    ckpt = ctx.checkpoint
    D = ckpt.build_discriminator(ctx.device)
    mc = ckpt.model_config
    h = hashlib.sha256()
    for k, v in sorted(D.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())

    def fn(x: torch.Tensor) -> torch.Tensor:
        x = adapt_images(x.to(ctx.device).float(), mc.image_size, mc.channels)
        return D.features(x)[-1].mean(dim=(2, 3))  # (B, channels of D's last block)

    return Extractor(
        "discriminator", f"discriminator-{h.hexdigest()[:16]}", f"D of {ckpt.path} (step {ckpt.step}), last block averaged over space", fn
    )


@register_extractor("inception")
def _inception(ctx: ExtractorContext) -> Extractor:
    try:
        import pytorch_fid
        from pytorch_fid.inception import InceptionV3
    except Exception as exc:  # ImportError, or torchvision failing to import with a CPU torch
        raise ConfigError(
            "--features inception needs the optional package pytorch-fid, which needs torchvision and downloads "
            f"the FID Inception weights once (import failed: {type(exc).__name__}); "
            "install them with: pip install pytorch-fid (or use --features classifier)"
        ) from None
    try:
        model = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).to(ctx.device).eval()
    except Exception as exc:
        raise ConfigError(f"the FID Inception weights could not be loaded ({exc}); they are downloaded once on first use") from None

    def fn(x: torch.Tensor) -> torch.Tensor:
        x = adapt_images(x.to(ctx.device).float(), x.shape[-1], 3)
        # pytorch-fid takes [0, 1] and resizes to 299x299 itself.
        return model((x + 1) / 2)[0].flatten(1)

    version = getattr(pytorch_fid, "__version__", "?")
    return Extractor("inception", f"inception-pytorch-fid-{version}", f"FID Inception-v3 pool3 (pytorch-fid {version}), 2048 features", fn)
