"""The latent space as a tool: numbered samples, walks, vector arithmetic, inversion, nearest neighbours.

Pure functions over a generator and tensors; the pictures are made in
`figures.py` and only the CLI writes files. Latent points are addressed the way
`dcgan sheet` numbers them: index i of the `n` vectors drawn with `seed`
(`latent_sheet(config, seed, n)[i]`), the same vectors `dcgan generate --seed
S -n N` draws, so exemplars picked from a sheet can be named by index.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError
from .models import ModelConfig, eval_mode, evaluating
from .sampling import generate, sample_z

__all__ = [
    "latent_sheet",
    "pick",
    "lerp",
    "slerp",
    "interpolation_path",
    "interpolate",
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


def interpolate(G: nn.Module, starts: torch.Tensor, ends: torch.Tensor, steps: int = 10, method: str = "spherical") -> torch.Tensor:
    """Images along walks from each start to each end: (pairs, steps, C, H, W) in [-1, 1]."""
    paths = torch.stack([interpolation_path(a, b, steps, method) for a, b in zip(starts, ends)])  # (P, steps, D)
    images = generate(G, paths.flatten(0, 1))
    return images.view(paths.shape[0], steps, *images.shape[1:])


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

    @property
    def result(self) -> torch.Tensor:
        """The image of the result vector itself (the grid's centre)."""
        return self.grid[(self.grid_size * self.grid_size) // 2]


def vector_arithmetic(
    G: nn.Module,
    a: torch.Tensor,
    b: torch.Tensor,
    c: torch.Tensor,
    noise_scale: float = 0.25,
    seed: int = 0,
    grid_size: int = 3,
) -> ArithmeticResult:
    """z = mean(a) - mean(b) + mean(c) over exemplar groups (k, D) each, as in the paper (k = 3).

    The grid puts the result in the centre and, around it, the result plus
    Gaussian noise of standard deviation `noise_scale` (the paper used 0.25
    with a uniform prior), drawn with `seed`: the paper's check that the
    arithmetic lands in a region, not at a lucky point.
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
    exemplar_images = [generate(G, g) for g in (a, b, c)]
    return ArithmeticResult(
        [a, b, c], means, z, z_grid, exemplar_images, generate(G, means), generate(G, z_grid), noise_scale, grid_size
    )


# --------------------------------------------------------------------------- #
# Inversion
# --------------------------------------------------------------------------- #
@dataclass
class InversionResult:
    """The z found for a target image and how well G(z) reconstructs it."""

    z: torch.Tensor  # (D,)
    image: torch.Tensor  # G(z), (C, H, W) in [-1, 1]
    mse: float  # mean squared error in [-1, 1] units
    psnr: float  # dB, with a peak-to-peak range of 2
    restart_mse: list[float] = field(default_factory=list)  # final error of each restart


def invert(
    G: nn.Module,
    target: torch.Tensor,
    restarts: int = 4,
    steps: int = 300,
    lr: float = 0.05,
    seed: int = 0,
    prior_weight: float = 1e-3,
) -> InversionResult:
    """Find z with G(z) close to `target` (C, H, W) in [-1, 1]: Adam on the pixel MSE from `restarts`
    random starts, run together as one batch; the best is returned.

    A small penalty keeps |z|^2 near its typical value D for a normal prior (and
    z is clamped to [-1, 1] for a uniform one), so the answer stays where G was
    trained and walks and arithmetic from it behave.
    """
    config = G.config
    if tuple(target.shape) != (config.channels, config.image_size, config.image_size):
        raise ConfigError(
            f"the image is {tuple(target.shape)} but the generator makes "
            f"({config.channels}, {config.image_size}, {config.image_size})"
        )
    device = next(G.parameters()).device
    requires = [p.requires_grad for p in G.parameters()]
    G.requires_grad_(False)
    try:
        with eval_mode(G):  # gradients flow to z through G's eval-mode batch norm
            z = sample_z(restarts, config.z_dim, config.prior, torch.Generator().manual_seed(seed)).to(device).requires_grad_(True)
            goal = target.to(device).float().unsqueeze(0).expand(restarts, -1, -1, -1)
            opt = torch.optim.Adam([z], lr=lr)
            for _ in range(steps):
                opt.zero_grad(set_to_none=True)
                per_restart = F.mse_loss(G(z), goal, reduction="none").flatten(1).mean(1)  # (restarts,)
                loss = per_restart.sum()
                if config.prior == "normal" and prior_weight > 0:
                    loss = loss + prior_weight * ((z.square().sum(1) / config.z_dim - 1) ** 2).sum()
                loss.backward()
                opt.step()
                if config.prior == "uniform":
                    with torch.no_grad():
                        z.clamp_(-1, 1)
            with torch.no_grad():
                images = G(z)
                errors = F.mse_loss(images, goal, reduction="none").flatten(1).mean(1)
    finally:
        for p, r in zip(G.parameters(), requires):
            p.requires_grad_(r)
    best = int(errors.argmin())
    mse = float(errors[best])
    psnr = 10 * math.log10(4.0 / max(mse, 1e-12))
    return InversionResult(z[best].detach().cpu(), images[best].cpu(), mse, psnr, [float(e) for e in errors])


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
PRIOR_STD = {"normal": 1.0, "uniform": 1 / math.sqrt(3)}  # standard deviation of one coordinate of z


@dataclass
class PrincipalDirections:
    """Unit directions in z along which G's first feature map varies most, most important first."""

    directions: torch.Tensor  # (k, D) unit vectors in z
    explained: torch.Tensor  # (k,) share of the first feature map's variance each component carries
    samples: int  # how many z the PCA was fitted on
    seed: int  # seed of those z


def principal_directions(G: nn.Module, components: int = 8, samples: int = 2048, seed: int = 0) -> PrincipalDirections:
    """GANSpace for a DCGAN: PCA of G's first feature map, carried back to z by linear regression.

    z itself is isotropic, so principal components of z mean nothing; G's first
    block (z -> (B, C, 4, 4)) is where it starts to give z structure. Draw
    `samples` z from the prior, take the PCA of that block's activations
    (B, C*4*4), then regress z on the PCA coordinates: row k of the solution is
    the direction of z that moves the activations along component k. Rows are
    normalised, so a step of one prior standard deviation along one is a
    typical move. Deterministic for a given `seed`.
    """
    config = G.config
    if not 1 <= components <= config.z_dim:
        raise ConfigError(f"components must be from 1 to z_dim ({config.z_dim}), got {components}")
    if samples <= components:
        raise ConfigError(f"the PCA needs more samples ({samples}) than components ({components})")
    device = next(G.parameters()).device
    z = sample_z(samples, config.z_dim, config.prior, torch.Generator().manual_seed(seed))  # (N, D)
    with evaluating(G):
        first = G.blocks[0](z.to(device).view(samples, config.z_dim, 1, 1))  # (N, C, base, base)
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

    For a uniform prior the result is clamped to [-1, 1], where G was trained.
    """
    amounts = torch.as_tensor(amounts, dtype=z.dtype)
    if amounts.shape != (directions.shape[0],):
        raise ConfigError(f"expected {directions.shape[0]} amounts, one per direction, got {tuple(amounts.shape)}")
    moved = z + PRIOR_STD[prior] * (amounts.unsqueeze(1) * directions.to(z.dtype)).sum(0)
    return moved.clamp(-1, 1) if prior == "uniform" else moved
