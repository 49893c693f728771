"""Inversion: the z (and, for a class-conditional G, the class) whose image is closest to a target.

Adam on the pixel MSE from several random starts at once, with the prior's penalty and
projection keeping z where G was trained (`models.priors`). Pure: tensors in, an
`InversionResult` out. Its names are importable from `dcgan.explore.latent` too.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..models import Generator, ModelConfig, eval_mode
from ..models.conditioning import check_labels
from ..models.priors import get_prior
from ..sampling import sample_z

__all__ = ["InversionResult", "invert", "INVERT_CHUNK"]


@dataclass
class InversionResult:
    """The z (and, for a conditional G, the class) found for a target image and how well G(z) reconstructs it."""

    z: torch.Tensor  # (D,)
    image: torch.Tensor  # G(z), (C, H, W) in [-1, 1]
    mse: float  # mean squared error in [-1, 1] units
    psnr: float  # dB, with a peak-to-peak range of 2
    restart_mse: list[float] = field(default_factory=list)  # final error of each restart (of the chosen class)
    label: int | None = None  # the class of G(z, label): given, or inferred; None for an unconditional G
    class_mse: dict[int, float] = field(default_factory=dict)  # when inferred: the best error under each class tried
    inferred: bool = False  # whether `label` was inferred (the best reconstruction over the classes tried)


INVERT_CHUNK = 256  # latent vectors optimised at once; rows are independent (eval-mode G), so chunks change nothing


def _descend(
    G: Generator, goal: torch.Tensor, z0: torch.Tensor, labels: torch.Tensor | None, steps: int, lr: float, prior_weight: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Adam on the pixel MSE of G(z, labels) against `goal` (C, H, W) from each row of z0 (B, D).

    Returns (z (B, D), images (B, C, H, W), errors (B,)), on G's device. Every row has its own loss
    term and Adam is elementwise, so optimising rows in chunks gives what one batch would."""
    config = G.config
    prior = get_prior(config.prior)
    device = goal.device
    zs, images, errors = [], [], []
    for rows in torch.arange(z0.shape[0]).split(INVERT_CHUNK):
        z = z0[rows].to(device).clone().requires_grad_(True)
        y = None if labels is None else labels[rows].to(device)
        target = goal.unsqueeze(0).expand(len(rows), -1, -1, -1)
        opt = torch.optim.Adam([z], lr=lr)
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            per_row = F.mse_loss(G(z, y), target, reduction="none").flatten(1).mean(1)  # (rows,)
            loss = per_row.sum()
            penalty = prior.penalty(z) if prior_weight > 0 else None  # (rows,), or None: the prior needs none
            if penalty is not None:
                loss = loss + prior_weight * penalty.sum()
            loss.backward()
            opt.step()
            with torch.no_grad():
                prior.project_(z)
        with torch.no_grad():
            out = G(z, y)
            errors.append(F.mse_loss(out, target, reduction="none").flatten(1).mean(1))
        zs.append(z.detach())
        images.append(out)
    return torch.cat(zs), torch.cat(images), torch.cat(errors)


def _checked_label(config: ModelConfig, target: torch.Tensor, label: int | None, candidates: int | None) -> int | None:
    """`label` as an int (None stays None), after the one-line errors: a target of the wrong shape, `candidates`
    below 1, a label for an unconditional G or outside its classes."""
    if tuple(target.shape) != (config.channels, config.image_size, config.image_size):
        raise ConfigError(f"the image is {tuple(target.shape)} but the generator makes ({config.channels}, {config.image_size}, {config.image_size})")
    if candidates is not None and candidates < 1:
        raise ConfigError(f"candidates must be at least 1, got {candidates}")
    if label is not None:
        checked = check_labels(torch.tensor(label), 1, config.num_classes)  # one-line errors: unconditional G, out of range
        assert checked is not None  # a label for an unconditional G has raised above
        label = int(checked[0])
    return label


@contextmanager
def _frozen(G: nn.Module) -> Iterator[None]:
    """G's parameters without gradients inside (only z is optimised), each given back its own flag after."""
    requires = [p.requires_grad for p in G.parameters()]
    G.requires_grad_(False)
    try:
        yield
    finally:
        for p, r in zip(G.parameters(), requires):
            p.requires_grad_(r)


def _classes_to_run(
    G: Generator, goal: torch.Tensor, z0: torch.Tensor, label: int | None, candidates: int | None, steps: int, lr: float, prior_weight: float
) -> tuple[list[int | None], dict[int, float]]:
    """(the classes the full run optimises under, the short run's best error per class, empty without one).

    [label] when it is given or G is unconditional ([None]); else every class, or with `candidates` = k below
    the number of classes, the k best after a short run (a quarter of the steps) under every class."""
    config = G.config
    if not config.conditional or label is not None:
        return [label], {}
    num_classes, restarts = config.num_classes, z0.shape[0]
    classes: list[int | None] = list(range(num_classes))
    if candidates is None or candidates >= num_classes:
        return classes, {}
    y = torch.tensor(classes).repeat_interleave(restarts)  # (K * R,)
    _, _, errors = _descend(G, goal, z0.repeat(num_classes, 1), y, max(1, steps // 4), lr, prior_weight)
    per_class = errors.view(num_classes, restarts).min(1).values.cpu()  # (K,)
    return [int(k) for k in per_class.argsort()[:candidates]], {k: float(e) for k, e in enumerate(per_class)}


def _best(
    z: torch.Tensor, images: torch.Tensor, errors: torch.Tensor, classes: list[int | None], restarts: int, class_mse: dict[int, float], inferred: bool
) -> InversionResult:
    """The result of the lowest error over every class and restart of the full run; `class_mse` gains each
    class's best error (kept in the result only when the class was `inferred`)."""
    errors = errors.cpu().view(len(classes), restarts)  # (k, R)
    for k, row in zip(classes, errors):
        if k is not None:
            class_mse[k] = float(row.min())
    best = int(errors.flatten().argmin())
    chosen, restart = divmod(best, restarts)
    mse = float(errors[chosen, restart])
    psnr = 10 * math.log10(4.0 / max(mse, 1e-12))
    return InversionResult(
        z[best].detach().cpu(),
        images[best].cpu(),
        mse,
        psnr,
        [float(e) for e in errors[chosen]],
        classes[chosen],
        class_mse if inferred else {},
        inferred,
    )


def invert(
    G: Generator,
    target: torch.Tensor,
    restarts: int = 4,
    steps: int = 300,
    lr: float = 0.05,
    seed: int = 0,
    prior_weight: float = 1e-3,
    label: int | None = None,
    candidates: int | None = None,
) -> InversionResult:
    """Find z with G(z) close to `target` (C, H, W) in [-1, 1]: Adam on the pixel MSE from `restarts`
    random starts, run together as one batch; the best is returned.

    The prior keeps z where G was trained, so walks and arithmetic from the answer
    behave: `prior_weight` times its penalty joins the loss (a normal prior keeps |z|^2
    near its typical value D), and after each step z is projected into its support
    (a uniform one clamps z to [-1, 1]); see `models.priors`.

    A class-conditional G optimises z for class `label`; without one the class is inferred: the
    same starts are optimised under every class and the best reconstruction decides
    (`result.label`, with each class's best error in `result.class_mse`). With `candidates` = k
    below the number of classes, every class first gets a quarter of the steps and only the k
    best go on to the full run (cheaper when there are many classes).
    """
    config = G.config
    label = _checked_label(config, target, label, candidates)
    device = next(G.parameters()).device
    z0 = sample_z(restarts, config.z_dim, config.prior, torch.Generator().manual_seed(seed))  # (R, D), the same for every class
    goal = target.to(device).float()
    with _frozen(G), eval_mode(G):  # gradients flow to z through G's eval-mode batch norm
        classes, class_mse = _classes_to_run(G, goal, z0, label, candidates, steps, lr, prior_weight)
        y = None if classes == [None] else torch.tensor(classes).repeat_interleave(restarts)  # (k * R,)
        z, images, errors = _descend(G, goal, z0.repeat(len(classes), 1), y, steps, lr, prior_weight)
    return _best(z, images, errors, classes, restarts, class_mse, inferred=config.conditional and label is None)
