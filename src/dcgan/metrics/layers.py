"""The evaluation classifier's layer features: every stage's activations averaged over the image and a
coarse spatial grid, each block scaled by a calibration measured on the training data (LAYER_BLOCKS says why).

Pure functions of a `classifier.Classifier` (and a `TrainedClassifier`'s stored calibration); `classifier.py`
re-exports them, so `from dcgan.metrics.classifier import layer_features` works as before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from ..data import unit_batches
from ..models import evaluating

if TYPE_CHECKING:
    from .classifier import Classifier, ClassifierConfig, TrainedClassifier

__all__ = ["LayerBlock", "LAYER_BLOCKS", "LAYER_RECIPE", "calibrate_layers", "layer_features", "layer_features_and_penultimate", "layer_feature_dim"]


# --------------------------------------------------------------------------- #
# Layer features
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class LayerBlock:
    """One block of the layer features: stage `stage`'s activations average-pooled to grid x grid,
    scaled so that its share of the total variance on the training data is `weight` (others: 1)."""

    stage: int  # 0, 1 or 2 (Classifier.stages)
    grid: int  # 1 = the average over the image; 2 = a 2x2 grid that keeps coarse layout
    weight: float = 1.0

    def key(self) -> str:
        return f"s{self.stage}g{self.grid}w{self.weight:g}"


# Why these blocks (measured on MNIST, benchmarks in the README's "Measuring quality"):
# - the averages of stages 0 and 1 respond to low-level changes the penultimate layer is trained to ignore
#   (faint dots on a stride-2 grid, blur, noise);
# - stage 1 on a 2x2 grid keeps where things are (a 2-pixel shift);
# - the penultimate layer (stage 2's average) keeps the classes; it gets 3 shares, as much as the other
#   blocks together, so that a dropped or doubled class still stands well above the floor.
# Each block is divided by its own spread on the training data (sqrt of the trace of its covariance):
# without it the early stages, whose averages barely vary between real images, would count for nothing
# (or, scaled by their raw size, swamp the rest). About 15 * width features: 240 for width 16, so
# covariances from 2,000 samples are well estimated.
LAYER_BLOCKS: tuple[LayerBlock, ...] = (LayerBlock(0, 1), LayerBlock(1, 1), LayerBlock(1, 2), LayerBlock(2, 1, 3.0))
LAYER_RECIPE = "v1:" + ",".join(b.key() for b in LAYER_BLOCKS)  # part of the calibration and of the extractor id


def _raw_blocks(model: Classifier, x: torch.Tensor, blocks: tuple[LayerBlock, ...], stages: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
    stages = model.stages(x) if stages is None else stages
    return [F.adaptive_avg_pool2d(stages[b.stage], b.grid).flatten(1).float() for b in blocks]


@torch.no_grad()
def calibrate_layers(model: Classifier, images: torch.Tensor, batch_size: int = 500) -> list[float]:
    """Spread of each LAYER_BLOCKS block on uint8 images at the model's size: sqrt(trace of its covariance)."""
    device = next(model.parameters()).device
    parts: list[list[torch.Tensor]] = [[] for _ in LAYER_BLOCKS]
    with evaluating(model):
        for x in unit_batches(images, batch_size, device):
            for acc, block in zip(parts, _raw_blocks(model, x, LAYER_BLOCKS)):
                acc.append(block.double().cpu())
    spreads = []
    for acc in parts:
        block = torch.cat(acc)
        spreads.append(float((block - block.mean(0)).square().sum(1).mean().sqrt().clamp_min(1e-12)))
    return spreads


def layer_feature_dim(config: ClassifierConfig) -> int:
    """How many layer features a classifier of this shape gives: stage s has width * 2^s channels."""
    return sum(config.width * 2**b.stage * b.grid**2 for b in LAYER_BLOCKS)


def layer_features(classifier: TrainedClassifier, x: torch.Tensor) -> torch.Tensor:
    """The layer features (B, F) of images already at the classifier's input size (see LAYER_BLOCKS)."""
    return layer_features_and_penultimate(classifier, x)[0]


def layer_features_and_penultimate(classifier: TrainedClassifier, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The layer features (B, F) and the penultimate features (B, 4 * width) that the class head reads,
    from one pass of the network."""
    scales = classifier.require_layer_scales()
    stages = classifier.model.stages(x)
    blocks = _raw_blocks(classifier.model, x, LAYER_BLOCKS, stages)
    features = torch.cat([b * (math.sqrt(spec.weight) / s) for b, spec, s in zip(blocks, LAYER_BLOCKS, scales)], 1)
    return features, F.adaptive_avg_pool2d(stages[-1], 1).flatten(1)  # = Classifier.features(x)
