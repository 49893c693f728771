"""Class conditioning: how a class label enters G and D, looked up by name.

Two methods, each a set of small modules that the model factory puts in place:

* `concat` (the paper's own conditional MNIST code; carpedm20's `y_dim`): a one-hot
  y joined to z at G's input, and one constant label map per class joined to the
  image at D's input.
* `projection` (Miyato & Koyama 2018, "cGANs with projection discriminator"):
  class-conditional batch norm in G (a per-class scale and shift after a shared
  normalisation) and a projection term <embed(y), sum-pooled features> added to
  D's logit.

An unconditional pair (num_classes 0) gets the `none` parts: modules that pass
their input through, and no parameters, so its weights and checkpoints are those
of the plain DCGAN. Labels are int64 class indices of shape (B,). G needs them;
D takes `None` as "no class information" (zero label maps, no projection term),
which is how the probe and the filter views read a conditional D's features.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError

__all__ = [
    "TakesLabels",
    "LabelledSequential",
    "PassThrough",
    "JoinOneHot",
    "JoinLabelMaps",
    "ClassConditionalBatchNorm2d",
    "ProjectionTerm",
    "NoProjection",
    "ConditioningMethod",
    "CONDITIONING",
    "DEFAULT_CONDITIONING",
    "MAX_CLASSES",
    "conditioning_parts",
    "resolve_class",
    "class_grid",
    "balanced_labels",
    "check_labels",
]

MAX_CLASSES = 1000  # ImageNet's count; beyond it a DCGAN's label maps and embeddings stop making sense


class TakesLabels(nn.Module):
    """A module whose forward is `(x, labels)`: `LabelledSequential` hands it the labels."""


class LabelledSequential(nn.Sequential, TakesLabels):
    """nn.Sequential that passes `labels` to the members that take them (and keeps nn.Sequential's weight names)."""

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        for module in self:
            x = module(x, labels) if isinstance(module, TakesLabels) else module(x)
        return x


class PassThrough(TakesLabels):
    """The unconditional part: the input unchanged, the labels ignored."""

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return x


class JoinOneHot(TakesLabels):
    """concat, G's input: z (B, z_dim) -> [z, one_hot(y)] (B, z_dim + num_classes)."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.num_classes = num_classes

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if labels is None:
            raise ConfigError("this generator is class-conditional: give a class label for every z")
        return torch.cat([z, F.one_hot(labels, self.num_classes).to(z.dtype)], dim=1)


class JoinLabelMaps(TakesLabels):
    """concat, D's input: images (B, C, H, W) -> (B, C + num_classes, H, W), channel C + y set to 1.

    Without labels the maps are all zero: D sees the image and no class."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        b, _, h, w = x.shape
        if labels is None:
            maps = x.new_zeros(b, self.num_classes, h, w)
        else:
            maps = F.one_hot(labels, self.num_classes).to(x.dtype)[:, :, None, None].expand(b, self.num_classes, h, w)
        # channels_last input stays channels_last: the convolution after it is fastest that way
        return torch.cat([x, maps], dim=1)


class ClassConditionalBatchNorm2d(TakesLabels):
    """projection, G's norm: batch statistics shared by all classes, then a scale and shift per class.

    (B, C, H, W) -> (B, C, H, W). The scales start at N(1, 0.02) and the shifts at 0, as the paper's
    batch-norm init, so every class starts where the unconditional G does."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.scale = nn.Embedding(num_classes, channels)  # (num_classes, C)
        self.shift = nn.Embedding(num_classes, channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.scale.weight, 1.0, 0.02)
        nn.init.zeros_(self.shift.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if labels is None:
            raise ConfigError("this generator is class-conditional: give a class label for every z")
        scale = self.scale(labels)[:, :, None, None]  # (B, C, 1, 1)
        shift = self.shift(labels)[:, :, None, None]
        return self.norm(x) * scale + shift


class ProjectionTerm(TakesLabels):
    """projection, D's logit: <embed(y), sum over H, W of the last features>, (B, C, h, w) -> (B,).

    Without labels the term is 0: D's plain logit."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.embed = nn.Embedding(num_classes, channels)  # (num_classes, C)
        nn.init.normal_(self.embed.weight, 0.0, 0.02)

    def forward(self, h: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if labels is None:
            return h.new_zeros(h.shape[0])
        return (self.embed(labels) * h.sum(dim=(2, 3))).sum(dim=1)


class NoProjection(TakesLabels):
    """The unconditional D's logit gets nothing added: (B, C, h, w) -> zeros (B,)."""

    def forward(self, h: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return h.new_zeros(h.shape[0])


@dataclass(frozen=True)
class ConditioningMethod:
    """The parts a method puts into G and D. Each factory takes (size, num_classes)."""

    description: str
    g_input: Callable[[int], nn.Module]  # num_classes -> module (z, y) -> G's input vector
    g_input_extra: Callable[[int], int]  # num_classes -> entries it adds to z
    g_norm: Callable[[int, int], nn.Module]  # (channels, num_classes) -> G's hidden normalisation
    d_input: Callable[[int], nn.Module]  # num_classes -> module (x, y) -> D's input maps
    d_input_extra: Callable[[int], int]  # num_classes -> channels it adds to the image
    d_projection: Callable[[int, int], nn.Module]  # (channels, num_classes) -> module (h, y) -> (B,) added to the logit


CONDITIONING: dict[str, ConditioningMethod] = {
    "concat": ConditioningMethod(
        "one-hot y joined to z in G, label maps joined to D's input (the paper's conditional MNIST code)",
        g_input=JoinOneHot,
        g_input_extra=lambda k: k,
        g_norm=lambda c, k: nn.BatchNorm2d(c),
        d_input=JoinLabelMaps,
        d_input_extra=lambda k: k,
        d_projection=lambda c, k: NoProjection(),
    ),
    "projection": ConditioningMethod(
        "class-conditional batch norm in G, a projection term in D's logit (Miyato & Koyama 2018)",
        g_input=lambda k: PassThrough(),
        g_input_extra=lambda k: 0,
        g_norm=ClassConditionalBatchNorm2d,
        d_input=lambda k: PassThrough(),
        d_input_extra=lambda k: 0,
        d_projection=ProjectionTerm,
    ),
}
DEFAULT_CONDITIONING = "concat"  # learned the class sooner on MNIST and CIFAR-10 (README, "Class-conditional models")

# The unconditional pair: the same slots, filled with pass-throughs and plain batch norm.
_NONE = ConditioningMethod(
    "unconditional",
    g_input=lambda k: PassThrough(),
    g_input_extra=lambda k: 0,
    g_norm=lambda c, k: nn.BatchNorm2d(c),
    d_input=lambda k: PassThrough(),
    d_input_extra=lambda k: 0,
    d_projection=lambda c, k: NoProjection(),
)


def conditioning_parts(name: str, num_classes: int) -> ConditioningMethod:
    """The method `name` for a conditional model, or the unconditional parts when num_classes is 0."""
    return CONDITIONING[name] if num_classes > 0 else _NONE


# --------------------------------------------------------------------------- #
# Labels: from the user's words, for grids, and checked before they reach G
# --------------------------------------------------------------------------- #
def resolve_class(text: str | int, class_names: tuple[str, ...] | list[str] | None, num_classes: int) -> int:
    """A class index from a name ("sneaker"), an index ("7") or an int; ConfigError with the choices otherwise."""
    if num_classes <= 0:
        raise ConfigError("this model is unconditional: it has no classes to choose from (train with --conditional)")
    names = list(class_names or [])
    if isinstance(text, str):
        if text in names:
            return names.index(text)
        lowered = [n.lower() for n in names]
        if text.lower() in lowered and lowered.count(text.lower()) == 1:
            return lowered.index(text.lower())
        try:
            index = int(text)
        except ValueError:
            index = None
        if index is None:
            shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
            raise ConfigError(f"unknown class {text!r}: use a class name ({shown}) or an index from 0 to {num_classes - 1}")
    else:
        index = int(text)
    if not 0 <= index < num_classes:
        raise ConfigError(f"class {index} is out of range: this model has classes 0 to {num_classes - 1}")
    return index


def class_grid(z_columns: torch.Tensor, classes: list[int] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """z and labels of a grid with one row per class and the same z down each column.

    z_columns (cols, z_dim) -> z (rows x cols, z_dim), labels (rows x cols,), row-major."""
    classes = torch.as_tensor(classes, dtype=torch.long, device=z_columns.device)
    cols = z_columns.shape[0]
    return z_columns.repeat(len(classes), 1), classes.repeat_interleave(cols)


def balanced_labels(n: int, num_classes: int, device: torch.device | str | None = None) -> torch.Tensor | None:
    """0, 1, ..., K-1, 0, 1, ... for `n` samples (each class within one of n/K), or None when num_classes is 0."""
    return torch.arange(n, device=device) % num_classes if num_classes > 0 else None


def check_labels(labels: torch.Tensor | int | None, n: int, num_classes: int) -> torch.Tensor | None:
    """Labels for `n` samples of a model with `num_classes` (0: unconditional), checked; ConfigError otherwise.
    One int is the class of all `n`."""
    if num_classes <= 0:
        if labels is not None:
            raise ConfigError("this generator is unconditional: it takes no class labels")
        return None
    if labels is None:
        raise ConfigError(f"this generator is class-conditional ({num_classes} classes): give a class label for every z")
    labels = torch.as_tensor(labels)
    if labels.ndim == 0:
        labels = labels.expand(n)
    if labels.shape != (n,):
        raise ConfigError(f"labels must have shape ({n},) for {n} latent vectors, got {tuple(labels.shape)}")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ConfigError("labels must be whole-number class indices")
    labels = labels.long()
    if n and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ConfigError(f"labels must lie in 0..{num_classes - 1}, got {int(labels.min())}..{int(labels.max())}")
    return labels
