"""The latent space as a tool: numbered samples, walks, vector arithmetic, inversion, nearest neighbours.

Pure functions over a generator and tensors; the pictures are made in
`figures.py` and only the CLI writes files. Latent points are addressed the way
`dcgan sheet` numbers them: index i of the `n` vectors drawn with `seed`
(`latent_sheet(config, seed, n)[i]`), the same vectors `dcgan generate --seed
S -n N` draws, so exemplars picked from a sheet can be named by index.

A class-conditional G also takes class labels: every function that runs G
takes them (`labels`, `label`), as `sampling.generate` does, and a sheet's
samples are drawn in one class or, without one, in balanced classes (sample i
in class i mod K, `sheet_labels`). `generate_between_classes` moves the class
input itself, for walks across classes at a fixed z, and `invert` can infer the
class of an image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError
from ..models import Generator, ModelConfig, evaluating
from ..models.conditioning import LabelledSequential, TakesLabels, balanced_labels, check_labels
from ..models.priors import get_prior
from ..sampling import generate, sample_z
from .inversion import InversionResult, invert  # inversion lives in inversion.py; importable from here

__all__ = [
    "latent_sheet",
    "sheet_labels",
    "pick",
    "lerp",
    "slerp",
    "interpolation_path",
    "interpolate",
    "generate_between_classes",
    "class_walk",
    "ArithmeticResult",
    "vector_arithmetic",
    "InversionResult",
    "invert",
    "nearest_neighbors",
    "PrincipalDirections",
    "principal_directions",
    "move_along",
    "INTERPOLATIONS",
]


def latent_sheet(config: ModelConfig, seed: int, n: int) -> torch.Tensor:
    """The `n` latent vectors (n, z_dim) that `dcgan sheet --seed seed -n n` numbers 0..n-1."""
    return sample_z(n, config.z_dim, config.prior, torch.Generator().manual_seed(seed))


def sheet_labels(config: ModelConfig, n: int, label: int | None = None) -> torch.Tensor | None:
    """The classes of a sheet's `n` samples, (n,) int64: all `label`, or without one balanced (sample i in
    class i mod K); None for an unconditional model (which takes no `label`)."""
    if not config.conditional:
        check_labels(None if label is None else torch.tensor(label), n, 0)  # a label for an unconditional G: one-line error
        return None
    if label is None:
        return balanced_labels(n, config.num_classes)
    labels = check_labels(torch.tensor(label), n, config.num_classes)
    assert labels is not None  # a conditional model: check_labels returns the labels or raises
    return labels.clone()


def pick(sheet: torch.Tensor, indices: list[int], what: str = "index") -> torch.Tensor:
    """Rows of a latent sheet, with a one-line error for indices outside it."""
    bad = [i for i in indices if not 0 <= i < sheet.shape[0]]
    if bad:
        raise ConfigError(f"{what} {bad[0]} is outside the sheet of {sheet.shape[0]} samples (0..{sheet.shape[0] - 1}); pass a larger -n")
    return sheet[torch.tensor(indices, dtype=torch.long)]


# --------------------------------------------------------------------------- #
# Walks
# --------------------------------------------------------------------------- #
def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """Straight line from a to b: (1 - t) a + t b. a, b: (..., D); t broadcasts against the leading dims."""
    return a + (b - a) * t


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """Spherical interpolation (Shoemake 1985; White 2016 for GAN latents).

    Moves along the great circle between the directions of a and b while
    interpolating their norms linearly, so intermediate points keep the norm a
    Gaussian z typically has instead of shrinking towards the origin as lerp's
    do. Falls back to lerp for (nearly) parallel vectors.
    """
    t = torch.as_tensor(t, dtype=a.dtype, device=a.device)
    na, nb = a.norm(dim=-1, keepdim=True), b.norm(dim=-1, keepdim=True)
    ua, ub = a / na.clamp_min(1e-12), b / nb.clamp_min(1e-12)
    cos = (ua * ub).sum(-1, keepdim=True).clamp(-1.0, 1.0)
    omega = torch.arccos(cos)
    so = torch.sin(omega)
    parallel = so.abs() < 1e-6
    safe = torch.where(parallel, torch.ones_like(so), so)
    direction = (torch.sin((1 - t) * omega) * ua + torch.sin(t * omega) * ub) / safe
    direction = torch.where(parallel, lerp(ua, ub, t), direction)
    return direction * lerp(na, nb, t)


INTERPOLATIONS = {"linear": lerp, "spherical": slerp}  # --method names


def interpolation_path(a: torch.Tensor, b: torch.Tensor, steps: int, method: str = "spherical") -> torch.Tensor:
    """`steps` points from a to b inclusive, (steps, D), for one pair of vectors (D,)."""
    if steps < 2:
        raise ConfigError(f"a walk needs at least 2 steps, got {steps}")
    fn = INTERPOLATIONS.get(method)
    if fn is None:
        raise ConfigError(f"unknown interpolation {method!r}: use {' or '.join(INTERPOLATIONS)}")
    t = torch.linspace(0, 1, steps, dtype=a.dtype).unsqueeze(1)  # (steps, 1)
    return fn(a.unsqueeze(0), b.unsqueeze(0), t)


def interpolate(
    G: Generator,
    starts: torch.Tensor,
    ends: torch.Tensor,
    steps: int = 10,
    method: str = "spherical",
    labels: torch.Tensor | int | None = None,
    end_labels: torch.Tensor | int | None = None,
) -> torch.Tensor:
    """Images along walks from each start to each end: (pairs, steps, C, H, W) in [-1, 1].

    For a class-conditional G, `labels` gives each walk's class, (pairs,) int64 or one int. With
    `end_labels` as well, the class input moves from `labels` to `end_labels` along the walk at the
    same pace as z (see `generate_between_classes`); with starts == ends that is a walk across
    classes at a fixed z.
    """
    paths = torch.stack([interpolation_path(a, b, steps, method) for a, b in zip(starts, ends)])  # (P, steps, D)
    pairs = paths.shape[0]
    num_classes = G.config.num_classes
    if labels is None and end_labels is not None and num_classes > 0:
        raise ConfigError("a walk between classes needs the classes it starts in (labels) as well as those it ends in")
    start = check_labels(_as_labels(labels), pairs, num_classes)
    if end_labels is None or start is None:
        if end_labels is not None:
            check_labels(_as_labels(end_labels), pairs, 0)  # an unconditional G: "takes no class labels"
        images = generate(G, paths.flatten(0, 1), None if start is None else start.repeat_interleave(steps))
    else:
        end = check_labels(_as_labels(end_labels), pairs, num_classes)
        assert end is not None  # start is not None, so G is conditional: check_labels returns the labels or raises
        t = torch.linspace(0, 1, steps).repeat(pairs)  # (P * steps,) the share of the way to the end class
        images = generate_between_classes(G, paths.flatten(0, 1), start.repeat_interleave(steps), end.repeat_interleave(steps), t)
    return images.view(pairs, steps, *images.shape[1:])


def _as_labels(labels: torch.Tensor | int | None) -> torch.Tensor | None:
    """Labels given as one int or a tensor, as a tensor for check_labels (which would convert them the same way)."""
    return None if labels is None else torch.as_tensor(labels)


def _label_parts(G: nn.Module) -> list[nn.Module]:
    """The innermost modules of G that take the class (containers that only hand labels on are left out)."""
    return [
        m
        for m in G.modules()
        if isinstance(m, TakesLabels) and not isinstance(m, LabelledSequential) and not any(isinstance(c, TakesLabels) for c in m.children())
    ]


def generate_between_classes(
    G: Generator, z: torch.Tensor, start_labels: torch.Tensor | int, end_labels: torch.Tensor | int, t: torch.Tensor | float, batch_size: int = 256
) -> torch.Tensor:
    """G(z) with its class input a share `t` of the way from `start_labels` to `end_labels`: (n, C, H, W).

    z (n, D); the labels (n,) int64 or one int each; t (n,) or one number, 0 gives G(z, start) and
    1 gives G(z, end) exactly. Every part of G that takes the class is affine in the class's
    encoding (concat joins a one-hot to z; projection scales and shifts each batch norm by a per-class
    vector), so mixing that part's outputs, (1 - t) part(x, a) + t part(x, b), is the same as feeding
    it the interpolated encoding: a soft one-hot, or the interpolated scale and shift. G was trained
    on whole classes only, so the images between are its extrapolation, not a class.
    Eval mode (running statistics), like `generate`.
    """
    config = G.config
    if not config.conditional:
        raise ConfigError("this generator is unconditional: it has no classes to move between")
    n = z.shape[0]
    starts = check_labels(_as_labels(start_labels), n, config.num_classes)
    ends = check_labels(_as_labels(end_labels), n, config.num_classes)
    assert starts is not None and ends is not None  # G is conditional: check_labels returns the labels or raises
    t = torch.as_tensor(t, dtype=torch.float32)
    t = t.expand(n) if t.ndim == 0 else t
    if t.shape != (n,):
        raise ConfigError(f"t must be one number or one per latent vector ({n}), got shape {tuple(t.shape)}")
    device = next(G.parameters()).device
    current: dict[str, torch.Tensor] = {}  # the chunk's end labels and t, for the hooks

    def mix(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        other = module.forward(args[0], current["end"])  # the same part, same input, under the end class (no hooks)
        w = current["t"].view(-1, *([1] * (output.dim() - 1))).to(output.dtype)  # (B, 1, ...) broadcasts over features
        return output + w * (other - output)

    hooks = [m.register_forward_hook(mix) for m in _label_parts(G)]
    try:
        out = []
        with evaluating(G), torch.no_grad():
            for zc, a, b, tc in zip(z.split(batch_size), starts.split(batch_size), ends.split(batch_size), t.split(batch_size)):
                current["end"], current["t"] = b.to(device), tc.to(device)
                out.append(G(zc.to(device), a.to(device)).float())
    finally:
        for h in hooks:
            h.remove()
    return torch.cat(out)


def class_walk(G: Generator, z: torch.Tensor, start_class: int, end_class: int, steps: int = 10) -> torch.Tensor:
    """Walks across classes at a fixed z: each z (P, D) held still while the class input moves from
    `start_class` to `end_class` in `steps` (endpoints included). Returns (P, steps, C, H, W)."""
    if steps < 2:
        raise ConfigError(f"a walk needs at least 2 steps, got {steps}")
    pairs = z.shape[0]
    t = torch.linspace(0, 1, steps).repeat(pairs)  # (P * steps,)
    images = generate_between_classes(G, z.repeat_interleave(steps, dim=0), start_class, end_class, t)
    return images.view(pairs, steps, *images.shape[1:])


# --------------------------------------------------------------------------- #
# Vector arithmetic (the paper's figure 7 and its noise-robustness grid)
# --------------------------------------------------------------------------- #
@dataclass
class ArithmeticResult:
    """mean(a) - mean(b) + mean(c), decoded, with the 3x3 grid around it."""

    z_groups: list[torch.Tensor]  # the exemplars of a, b and c, each (k, D)
    z_means: torch.Tensor  # (3, D) the group means
    z_result: torch.Tensor  # (D,)
    z_grid: torch.Tensor  # (grid*grid, D): the centre is z_result, the others add noise
    exemplars: list[torch.Tensor]  # images of each group, (k, C, H, W)
    means: torch.Tensor  # images of the group means, (3, C, H, W)
    grid: torch.Tensor  # images of z_grid, (grid*grid, C, H, W)
    noise_scale: float = 0.0
    grid_size: int = 3
    label: int | None = None  # the class everything was drawn in (a conditional G)

    @property
    def result(self) -> torch.Tensor:
        """The image of the result vector itself (the grid's centre)."""
        return self.grid[(self.grid_size * self.grid_size) // 2]


def vector_arithmetic(
    G: Generator,
    a: torch.Tensor,
    b: torch.Tensor,
    c: torch.Tensor,
    noise_scale: float = 0.25,
    seed: int = 0,
    grid_size: int = 3,
    label: int | None = None,
) -> ArithmeticResult:
    """z = mean(a) - mean(b) + mean(c) over exemplar groups (k, D) each, as in the paper (k = 3).

    The grid puts the result in the centre and, around it, the result plus
    Gaussian noise of standard deviation `noise_scale` (the paper used 0.25
    with a uniform prior), drawn with `seed`: the paper's check that the
    arithmetic lands in a region, not at a lucky point. A class-conditional G
    draws the exemplars, the means and the grid all in class `label`, so the
    arithmetic moves the style within one class.
    """
    if grid_size < 1 or grid_size % 2 == 0:
        raise ConfigError(f"the grid size must be odd (a centre cell), got {grid_size}")
    if noise_scale < 0 or not math.isfinite(noise_scale):
        raise ConfigError(f"the noise scale must be >= 0, got {noise_scale}")
    means = torch.stack([a.mean(0), b.mean(0), c.mean(0)])  # (3, D)
    z = means[0] - means[1] + means[2]
    cells = grid_size * grid_size
    noise = torch.randn(cells, z.shape[0], generator=torch.Generator().manual_seed(seed), dtype=z.dtype) * noise_scale
    noise[cells // 2] = 0  # the centre is the direct result
    z_grid = z.unsqueeze(0) + noise
    if G.config.conditional and label is None:
        raise ConfigError("this generator is class-conditional: say which class to draw the arithmetic in")
    exemplar_images = [generate(G, g, label) for g in (a, b, c)]
    return ArithmeticResult(
        [a, b, c], means, z, z_grid, exemplar_images, generate(G, means, label), generate(G, z_grid, label), noise_scale, grid_size, label
    )


# --------------------------------------------------------------------------- #
# Nearest neighbours (the memorisation check)
# --------------------------------------------------------------------------- #
def nearest_neighbors(queries: torch.Tensor, data: torch.Tensor, k: int = 5, chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """The k nearest rows of `data` (N, F) to each query (Q, F) in Euclidean distance:
    (distances (Q, k), indices (Q, k)), nearest first, computed over chunks of data."""
    if k < 1 or k > data.shape[0]:
        raise ConfigError(f"k must be in [1, {data.shape[0]}], got {k}")
    q = queries.float().flatten(1)
    best_d = torch.full((q.shape[0], 0), float("inf"))
    best_i = torch.zeros((q.shape[0], 0), dtype=torch.long)
    for start in range(0, data.shape[0], chunk):
        d = torch.cdist(q, data[start : start + chunk].float().flatten(1))  # (Q, chunk)
        cand_d = torch.cat([best_d, d], 1)
        cand_i = torch.cat([best_i, torch.arange(start, start + d.shape[1]).expand(q.shape[0], -1)], 1)
        top = cand_d.topk(min(k, cand_d.shape[1]), dim=1, largest=False)
        best_d, best_i = top.values, cand_i.gather(1, top.indices)
    return best_d, best_i


# --------------------------------------------------------------------------- #
# Principal directions (GANSpace, Haerkoenen et al. 2020, for the explorer's sliders)
# --------------------------------------------------------------------------- #


@dataclass
class PrincipalDirections:
    """Unit directions in z along which G's first feature map varies most, most important first."""

    directions: torch.Tensor  # (k, D) unit vectors in z
    explained: torch.Tensor  # (k,) share of the first feature map's variance each component carries
    samples: int  # how many z the PCA was fitted on
    seed: int  # seed of those z


def principal_directions(G: Generator, components: int = 8, samples: int = 2048, seed: int = 0, label: int | None = None) -> PrincipalDirections:
    """GANSpace for a DCGAN: PCA of G's first feature map, carried back to z by linear regression.

    z itself is isotropic, so principal components of z mean nothing; G's first
    block (z -> (B, C, 4, 4)) is where it starts to give z structure. Draw
    `samples` z from the prior, take the PCA of that block's activations
    (B, C*4*4), then regress z on the PCA coordinates: row k of the solution is
    the direction of z that moves the activations along component k. Rows are
    normalised, so a step of one prior standard deviation along one is a
    typical move. Deterministic for a given `seed`. A class-conditional G is
    read in class `label`, or without one in balanced classes (directions shared
    by all classes).
    """
    config = G.config
    if not 1 <= components <= config.z_dim:
        raise ConfigError(f"components must be from 1 to z_dim ({config.z_dim}), got {components}")
    if samples <= components:
        raise ConfigError(f"the PCA needs more samples ({samples}) than components ({components})")
    device = next(G.parameters()).device
    z = sample_z(samples, config.z_dim, config.prior, torch.Generator().manual_seed(seed))  # (N, D)
    labels = sheet_labels(config, samples, label)  # (N,) or None
    labels = None if labels is None else labels.to(device)
    with evaluating(G), torch.no_grad():
        joined = G.join(z.to(device), labels)  # (N, z_dim [+ K for concat])
        first = G.blocks[0](joined[:, :, None, None], labels)  # (N, C, base, base)
    acts = first.flatten(1).double().cpu()  # (N, F); double: the regression below is ill-conditioned in float32
    centred = acts - acts.mean(0)
    # Randomised SVD of the top components (Halko et al. 2011): 0.5 s where the full SVD of a 64x64 model's
    # (2048, 8192) activations takes 30 s on two cores. Seeded, so the directions repeat.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        _, s, v = torch.svd_lowrank(centred, q=min(components + 16, *centred.shape), niter=4)  # v: (F, q)
    coords = centred @ v[:, :components]  # (N, k) PCA coordinates
    basis = torch.linalg.lstsq(coords, z.double() - z.double().mean(0)).solution  # (k, D)
    basis = basis / basis.norm(dim=1, keepdim=True).clamp_min(1e-12)
    # A principal axis has no sign: point each direction where its largest coordinate is positive, so it repeats.
    signs = torch.sign(basis.gather(1, basis.abs().argmax(1, keepdim=True)))
    explained = s[:components].square() / centred.square().sum()
    return PrincipalDirections((basis * signs).float(), explained.float(), samples, seed)


def move_along(z: torch.Tensor, directions: torch.Tensor, amounts: torch.Tensor | list[float], prior: str = "normal") -> torch.Tensor:
    """z (D,) moved by amounts[k] prior standard deviations along directions[k] (k, D).

    The result is projected into the prior's support, where G was trained (a uniform prior clamps it to [-1, 1]).
    """
    amounts = torch.as_tensor(amounts, dtype=z.dtype)
    if amounts.shape != (directions.shape[0],):
        raise ConfigError(f"expected {directions.shape[0]} amounts, one per direction, got {tuple(amounts.shape)}")
    distribution = get_prior(prior)
    return distribution.project_(z + distribution.std * (amounts.unsqueeze(1) * directions.to(z.dtype)).sum(0))
