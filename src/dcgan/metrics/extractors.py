"""Feature extractors, looked up by name in FEATURE_EXTRACTORS.

- `classifier`: the project's evaluation classifier for the dataset (trained by
  `dcgan evaluator train`); also gives class probabilities.
- `inception`: the standard FID Inception-v3 (pool3, 2048 features) through the
  optional `pytorch-fid` package, when it imports.
- `discriminator`: a trained D's last convolutional block, averaged over space.
- `pixels`: the image itself, area-resized to at most 16x16, flattened.

Every extractor maps float images in [-1, 1] (N, C, H, W) to features (N, F)
and has an `id` that changes whenever its output would, for caching.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .classifier import TrainedClassifier, adapt_images, default_evaluator_path, describe, load_classifier

__all__ = ["Extractor", "FEATURE_EXTRACTORS", "register_extractor", "build_extractor", "load_dataset_classifier"]


@dataclass
class Extractor:
    """A named feature function with what is needed to state the protocol and key a cache."""

    name: str  # registry name
    id: str  # changes whenever the features would change (weights hash, package version, ...)
    description: str  # one line for the protocol
    fn: Callable[[torch.Tensor], torch.Tensor]  # (N, C, H, W) in [-1, 1] -> (N, F) for one batch
    classifier: TrainedClassifier | None = None  # set for `classifier`: also gives class probabilities

    @torch.no_grad()
    def features(self, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        """Features (N, F) as float32 on the CPU, computed in batches."""
        return torch.cat([self.fn(chunk).float().cpu() for chunk in images.split(batch_size)])


@dataclass(frozen=True)
class ExtractorContext:
    """What a builder may use: the dataset's name (to find its classifier), an explicit classifier
    file, a checkpoint (for D) and the device."""

    dataset: str = ""
    evaluator: str | Path | None = None
    checkpoint: object | None = None  # a dcgan Checkpoint
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
        from ..errors import CheckpointError

        if evaluator:
            raise CheckpointError(f"evaluation classifier {path} does not exist")
        raise CheckpointError(
            f"no evaluation classifier for {dataset!r} (looked for {path}); "
            f"train one with: dcgan evaluator train --data {dataset}"
        )
    return load_classifier(path, device)


@register_extractor("classifier")
def _classifier(ctx: ExtractorContext) -> Extractor:
    clf = load_dataset_classifier(ctx.dataset, ctx.evaluator, ctx.device)
    c = clf.config

    def fn(x: torch.Tensor) -> torch.Tensor:
        clf.model.eval()
        x = adapt_images(x.to(ctx.device).float(), c.image_size, c.channels)
        return clf.model.features(x)

    return Extractor("classifier", f"classifier-{clf.weights_id()}", describe(clf) + f", {c.feature_dim} features", fn, clf)


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
        "discriminator", f"discriminator-{h.hexdigest()[:16]}",
        f"D of {ckpt.path} (step {ckpt.step}), last block averaged over space", fn,
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
