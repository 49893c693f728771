"""DCGAN generator and discriminator, following Radford et al. (2015), section 3.

One parametrised pair of models serves every size: the depth is derived from
`image_size`. The paper's guidelines, as built here:

* no pooling: D downsamples with strided convolutions, G upsamples with
  transposed convolutions (the two alternative blocks exist to test that claim);
* batch norm in every layer except G's output layer and D's input layer;
* ReLU in G with tanh at the output, LeakyReLU(0.2) everywhere in D;
* no fully connected hidden layers: z is projected to the first 4x4 (or 7x7)
  feature map by a transposed convolution, and D ends in a convolution that
  covers its last feature map and gives one logit;
* weights from N(0, 0.02), batch-norm scales from N(1, 0.02).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from ..errors import ConfigError
from ..options import POSITIVE_INT, Check, option
from .conditioning import (
    CONDITIONING,
    DEFAULT_CONDITIONING,
    MAX_CLASSES,
    ClassConditionalBatchNorm2d,
    LabelledSequential,
    ProjectionTerm,
    conditioning_parts,
)
from .priors import PRIORS  # the names of the prior registry, the choices of --prior

__all__ = [
    "ModelConfig",
    "SUPPORTED_SIZES",
    "Generator",
    "Discriminator",
    "init_weights",
    "UPSAMPLE_BLOCKS",
    "DOWNSAMPLE_BLOCKS",
    "D_NORMS",
    "PRIORS",
    "model_summary",
    "format_summary",
    "check_models",
    "build_generator",
    "build_discriminator",
    "build_models",
    "eval_mode",
    "evaluating",
]

SUPPORTED_SIZES = (16, 28, 32, 64, 128, 256)


# --------------------------------------------------------------------------- #
# Resampling blocks, looked up by name. Each maps (B, c_in, H, W) to
# (B, c_out, 2H, 2W) (upsampling) or (B, c_out, H/2, W/2) (downsampling).
# --------------------------------------------------------------------------- #
def _transposed_up(c_in: int, c_out: int, bias: bool) -> nn.Module:
    # The paper's "fractionally-strided convolution": kernel 4, stride 2, pad 1 doubles H and W.
    return nn.ConvTranspose2d(c_in, c_out, kernel_size=4, stride=2, padding=1, bias=bias)


def _nearest_up(c_in: int, c_out: int, bias: bool) -> nn.Module:
    # The seeds' Keras variant: a fixed nearest-neighbour resize, then a 3x3 convolution.
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, kernel_size=3, stride=1, padding=1, bias=bias))


def _strided_down(c_in: int, c_out: int, bias: bool) -> nn.Module:
    # The paper's learned downsampling: kernel 4, stride 2, pad 1 halves H and W.
    return nn.Conv2d(c_in, c_out, kernel_size=4, stride=2, padding=1, bias=bias)


def _maxpool_down(c_in: int, c_out: int, bias: bool) -> nn.Module:
    # What the paper replaced: a stride-1 convolution followed by a fixed 2x2 max-pool.
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel_size=3, stride=1, padding=1, bias=bias), nn.MaxPool2d(2))


UPSAMPLE_BLOCKS: dict[str, Callable[[int, int, bool], nn.Module]] = {"transposed": _transposed_up, "nearest": _nearest_up}
DOWNSAMPLE_BLOCKS: dict[str, Callable[[int, int, bool], nn.Module]] = {"strided": _strided_down, "maxpool": _maxpool_down}


# --------------------------------------------------------------------------- #
# How D's hidden layers are normalised, looked up by name (--d-norm).
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class DNorm:
    """One way to normalise D: a layer after each hidden convolution, and what is done to every convolution."""

    layer: Callable[[int], nn.Module]  # channels -> the layer after each hidden conv (batch norm, or nothing)
    conv_bias: bool  # whether the hidden convs keep a bias (batch norm's shift replaces it)
    wrap_convs: Callable[[nn.Module], nn.Module] | None  # applied to every conv of D after initialisation
    description: str


def _spectral(conv: nn.Module) -> nn.Module:
    # the weight divided by its largest singular value, estimated by one power iteration per training forward
    return nn.utils.parametrizations.spectral_norm(conv)


D_NORMS: dict[str, DNorm] = {
    "batch": DNorm(nn.BatchNorm2d, False, None, "batch norm in every hidden layer (the paper's)"),
    # SNDCGAN (Miyato et al. 2018; Kurach et al. 2019): every conv spectrally normalised, no batch norm
    "spectral": DNorm(lambda c: nn.Identity(), True, _spectral, "spectral normalisation of every convolution, no batch norm (SNDCGAN)"),
}


MAX_Z_DIM = 4096  # far above any DCGAN's; a larger value in a damaged header would exhaust memory
MAX_WIDTH = 8192


@dataclass(frozen=True)
class ModelConfig:
    """Shape and architecture of a DCGAN pair. Validated on construction; fixed for the life of a run."""

    # side of the square images: 16, 32, 64, 128, 256 (2^k), or 28 (MNIST native)
    image_size: int = option(
        64,
        f"{', '.join(map(str, SUPPORTED_SIZES))}",
        group="model",
        metavar="N",
        check=Check(int, lambda v: True, "a whole number"),
        default_text="default: the dataset's: 32 for the named ones, 64 for folders",
    )
    # image channels: 1 (grey) or 3 (RGB)
    channels: int = option(
        3, "1 grey or 3 RGB", group="model", choices=(1, 3), check=Check(int, lambda v: True, "1 or 3"), default_text="default: the dataset's"
    )
    # length of the latent vector z (the paper's `nz`)
    z_dim: int = option(100, "latent size, the paper's nz", group="model", check=POSITIVE_INT)
    # channels of G's last hidden layer and D's first layer (the PyTorch example's ngf/ndf); each step
    # towards 4x4 doubles it: 512 at 4x4 for 64x64; the paper's 1024 is width=128
    width: int = option(
        64,
        "G's last / D's first hidden channels, doubling towards 4x4",
        group="model",
        check=POSITIVE_INT,
        default_text="default 64, 48 for MNIST (measured: docs/recipe.md); the paper's 64x64 model is 128",
    )
    # cap on any layer's channels, so that 128 and 256 models stay a sensible size
    max_channels: int = option(1024, "cap on channels per layer", group="model", check=POSITIVE_INT)
    # distribution of z: "normal" N(0, I) (the paper's code) or "uniform" U(-1, 1) (its text)
    prior: str = option("normal", "distribution of z", group="model", choices=PRIORS)
    # G upsampling: "transposed" (paper) or "nearest" (resize + conv)
    g_block: str = option(
        "transposed", "G upsampling", group="model", choices=tuple(UPSAMPLE_BLOCKS), default_text="default transposed, as in the paper"
    )
    # D downsampling: "strided" (paper) or "maxpool" (conv + max-pool)
    d_block: str = option(
        "strided", "D downsampling", group="model", choices=tuple(DOWNSAMPLE_BLOCKS), default_text="default strided, as in the paper"
    )
    # how D's hidden layers are normalised: "batch" (paper) or "spectral" (SNDCGAN)
    d_norm: str = option(
        "batch", "D's normalisation", group="model", choices=tuple(D_NORMS), default_text="default batch, as in the paper; spectral: SNDCGAN"
    )
    # classes of a conditional pair; 0 = unconditional. Set from the data by `dcgan train --conditional`
    num_classes: int = option(0, "classes of a conditional model", group="model", cli=False)
    # the class names, indexed by label (folder names, "0".."9" for MNIST); empty for an unconditional pair
    class_names: tuple = option((), "class names by label", group="model", cli=False)
    # how a conditional pair takes its class (dcgan.models.conditioning.CONDITIONING); unused when num_classes is 0
    conditioning: str = option(
        DEFAULT_CONDITIONING,
        "how G and D take the class with --conditional",
        group="model",
        choices=tuple(CONDITIONING),
        default_text=f"default {DEFAULT_CONDITIONING}: {CONDITIONING[DEFAULT_CONDITIONING].description}",
    )

    def __post_init__(self) -> None:
        if self.image_size not in SUPPORTED_SIZES:
            raise ConfigError(f"unsupported image size {self.image_size}: use one of {', '.join(map(str, SUPPORTED_SIZES))}")
        if self.channels not in (1, 3):
            raise ConfigError(f"unsupported channel count {self.channels}: use 1 (grey) or 3 (RGB)")
        for name, limit in (("z_dim", MAX_Z_DIM), ("width", MAX_WIDTH), ("max_channels", MAX_WIDTH)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= limit:
                raise ConfigError(f"{name.replace('_', '-')} must be a whole number from 1 to {limit}, got {value!r}")
        if self.prior not in PRIORS:
            raise ConfigError(f"unknown prior {self.prior!r}: use one of {', '.join(PRIORS)}")
        if self.g_block not in UPSAMPLE_BLOCKS:
            raise ConfigError(f"unknown G block {self.g_block!r}: use one of {', '.join(UPSAMPLE_BLOCKS)}")
        if self.d_block not in DOWNSAMPLE_BLOCKS:
            raise ConfigError(f"unknown D block {self.d_block!r}: use one of {', '.join(DOWNSAMPLE_BLOCKS)}")
        if self.d_norm not in D_NORMS:
            raise ConfigError(f"unknown D normalisation {self.d_norm!r}: use one of {', '.join(D_NORMS)}")
        if self.conditioning not in CONDITIONING:
            raise ConfigError(f"unknown conditioning {self.conditioning!r}: use one of {', '.join(CONDITIONING)}")
        if not isinstance(self.num_classes, int) or isinstance(self.num_classes, bool) or not 0 <= self.num_classes <= MAX_CLASSES:
            raise ConfigError(f"a conditional model takes 2 to {MAX_CLASSES} classes, got {self.num_classes!r}")
        if self.num_classes == 1:
            raise ConfigError("one class is nothing to condition on: a conditional model needs at least 2 classes")
        object.__setattr__(self, "class_names", tuple(str(n) for n in (self.class_names or ())))
        if self.class_names and len(self.class_names) != self.num_classes:
            raise ConfigError(f"{len(self.class_names)} class names for {self.num_classes} classes")

    # Derived geometry -------------------------------------------------------
    @property
    def base_size(self) -> int:
        """Side of the smallest feature map: 4, or 7 for 28x28 (7 -> 14 -> 28)."""
        return 7 if self.image_size == 28 else 4

    @property
    def num_resamplings(self) -> int:
        """How many x2 up- (G) or down-samplings (D) lie between the base map and the image."""
        return int(math.log2(self.image_size // self.base_size))

    def hidden_widths(self) -> list[int]:
        """Channels of the hidden feature maps from the image side inwards.

        Entry i is the width at resolution image_size / 2^(i+1): D's i-th block
        output and G's matching input. For 64x64 with width 64: [64, 128, 256, 512].
        """
        return [min(self.width * 2**i, self.max_channels) for i in range(self.num_resamplings)]

    @property
    def conditional(self) -> bool:
        """Whether G and D take a class label."""
        return self.num_classes > 0

    def class_name(self, label: int) -> str:
        """The name of class `label` (its index when the model has no names)."""
        return self.class_names[label] if self.class_names else str(label)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["class_names"] = list(self.class_names)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def init_weights(module: nn.Module) -> None:
    """The paper's initialisation: conv weights ~ N(0, 0.02), BN scale ~ N(1, 0.02), biases 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d) and module.affine:
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)
    elif isinstance(module, ClassConditionalBatchNorm2d):
        module.reset_parameters()  # per-class scales ~ N(1, 0.02), shifts 0: batch norm's init for every class
    elif isinstance(module, ProjectionTerm):
        nn.init.normal_(module.embed.weight, 0.0, 0.02)


class Generator(nn.Module):
    """Maps z of shape (B, z_dim), with class labels (B,) when conditional, to images (B, channels, size, size) in [-1, 1]."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        widths = config.hidden_widths()[::-1]  # from the base map outwards: 64x64 -> [512, 256, 128, 64]
        base = config.base_size
        up = UPSAMPLE_BLOCKS[config.g_block]
        cond = conditioning_parts(config.conditioning, config.num_classes)
        self.join = cond.g_input(config.num_classes)  # (B, z_dim) -> (B, z_dim [+ num_classes for concat])
        z_in = config.z_dim + cond.g_input_extra(config.num_classes)

        blocks: list[nn.Module] = [
            # Projection of z, a transposed conv over a 1x1 map: (B, z_in, 1, 1) -> (B, widths[0], base, base)
            LabelledSequential(
                nn.ConvTranspose2d(z_in, widths[0], kernel_size=base, stride=1, padding=0, bias=False),
                cond.g_norm(widths[0], config.num_classes),
                nn.ReLU(inplace=True),
            )
        ]
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            # (B, c_in, s, s) -> (B, c_out, 2s, 2s); no bias because batch norm's shift replaces it
            blocks.append(LabelledSequential(up(c_in, c_out, False), cond.g_norm(c_out, config.num_classes), nn.ReLU(inplace=True)))
        # Output layer, no batch norm: (B, widths[-1], size/2, size/2) -> (B, channels, size, size)
        blocks.append(nn.Sequential(up(widths[-1], config.channels, True), nn.Tanh()))
        self.blocks = LabelledSequential(*blocks)
        self.apply(init_weights)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        # Accept (B, z_dim) or (B, z_dim, 1, 1); labels (B,) int64 for a conditional G, ignored otherwise.
        z = self.join(z.reshape(z.shape[0], self.config.z_dim), labels)  # (B, z_in)
        return self.blocks(z[:, :, None, None], labels)


class Discriminator(nn.Module):
    """Maps images (B, channels, size, size) in [-1, 1], with class labels (B,) when conditional, to logits (B,).

    A conditional D also takes labels=None: no class information (zero label maps, no projection term)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        widths = config.hidden_widths()  # from the image inwards: 64x64 -> [64, 128, 256, 512]
        down = DOWNSAMPLE_BLOCKS[config.d_block]
        norm = D_NORMS[config.d_norm]
        cond = conditioning_parts(config.conditioning, config.num_classes)
        self.join = cond.d_input(config.num_classes)  # (B, C, H, W) -> (B, C [+ num_classes for concat], H, W)
        c_in0 = config.channels + cond.d_input_extra(config.num_classes)

        blocks: list[nn.Module] = [
            # Input layer, no batch norm: (B, c_in0, size, size) -> (B, widths[0], size/2, size/2)
            nn.Sequential(down(c_in0, widths[0], True), nn.LeakyReLU(0.2, inplace=True))
        ]
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            # (B, c_in, s, s) -> (B, c_out, s/2, s/2)
            blocks.append(nn.Sequential(down(c_in, c_out, norm.conv_bias), norm.layer(c_out), nn.LeakyReLU(0.2, inplace=True)))
        self.blocks = nn.Sequential(*blocks)
        # A convolution that covers the whole base map: (B, widths[-1], base, base) -> (B, 1, 1, 1).
        self.head = nn.Conv2d(widths[-1], 1, kernel_size=config.base_size, stride=1, padding=0, bias=True)
        # The class's share of the logit: (B, widths[-1], base, base) -> (B,) (zeros unless projection)
        self.projection = cond.d_projection(widths[-1], config.num_classes)
        self.apply(init_weights)
        if norm.wrap_convs is not None:  # after init: a parametrised weight is computed, not assigned
            for module in list(self.modules()):
                if isinstance(module, nn.Conv2d):
                    norm.wrap_convs(module)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.blocks(self.join(x, labels))  # (B, widths[-1], base, base)
        return self.head(h).flatten() + self.projection(h, labels)  # (B,) logits; the loss applies the sigmoid

    def features(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Each hidden block's output, image side first: the paper's section 5.1 features."""
        out = []
        x = self.join(x, labels)
        for block in self.blocks:
            x = block(x)
            out.append(x)
        return out


# --------------------------------------------------------------------------- #
# The model factory: the one place that turns a ModelConfig into modules. The
# trainer, checkpoints, export and the explorer all build their models here.
# --------------------------------------------------------------------------- #
def build_generator(config: ModelConfig) -> Generator:
    """A freshly initialised generator for `config` (weights drawn from the global RNG)."""
    return Generator(config)


def build_discriminator(config: ModelConfig) -> Discriminator:
    """A freshly initialised discriminator for `config` (weights drawn from the global RNG)."""
    return Discriminator(config)


def build_models(config: ModelConfig, seed: int | None = None) -> tuple[Generator, Discriminator]:
    """G and D for `config`; with `seed`, initialised from it without disturbing the caller's RNG stream."""
    if seed is None:
        return build_generator(config), build_discriminator(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        G = build_generator(config)
        D = build_discriminator(config)
    return G, D


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """`module` in eval mode for the block (gradients still flow); its previous mode is restored afterwards."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


@contextmanager
def evaluating(module: nn.Module) -> Iterator[nn.Module]:
    """`module` in eval mode without gradients for the block; its previous mode is restored afterwards."""
    with eval_mode(module), torch.no_grad():
        yield module


def check_models(config: ModelConfig) -> None:
    """Build G and D for `config` and check every shape on a batch of two; raise ConfigError if anything is off."""
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            G, D = build_generator(config).eval(), build_discriminator(config).eval()
            labels = torch.zeros(2, dtype=torch.long) if config.conditional else None
            images = G(torch.zeros(2, config.z_dim), labels)
            logits = D(images, labels)
    except RuntimeError as exc:  # pragma: no cover - a bug, reported in words rather than a trace
        raise ConfigError(f"the {config.image_size}x{config.image_size}x{config.channels} model does not build: {exc}") from None
    expected = (2, config.channels, config.image_size, config.image_size)
    if tuple(images.shape) != expected or tuple(logits.shape) != (2,):
        raise ConfigError(f"G makes {tuple(images.shape)} (expected {expected}) and D gives {tuple(logits.shape)} (expected (2,))")


# --------------------------------------------------------------------------- #
# Summary: layer shapes, parameter counts and multiply-accumulates per image.
# --------------------------------------------------------------------------- #
def _macs(module: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> int:
    """Multiply-accumulates of one conv layer for one image."""
    if isinstance(module, nn.ConvTranspose2d):
        # Every input pixel scatters a (c_out x k x k) patch.
        k = module.kernel_size[0] * module.kernel_size[1]
        return inp[0].numel() * (module.out_channels // module.groups) * k
    if isinstance(module, nn.Conv2d):
        # Every output pixel gathers a (c_in x k x k) patch.
        k = module.kernel_size[0] * module.kernel_size[1]
        return out[0].numel() * (module.in_channels // module.groups) * k
    return 0


def model_summary(model: nn.Module, example: torch.Tensor) -> list[dict]:
    """Run `example` (a batch of one or more) through `model` and describe each leaf layer.

    A conditional model is run with class 0 for every example.

    Returns rows of {"name", "type", "output_shape", "params", "macs"}, where
    output_shape leaves out the batch dimension and macs are per image.
    """
    rows: list[dict] = []
    hooks = []
    for name, module in model.named_modules():
        if len(list(module.children())) > 0:
            continue

        def hook(mod, inputs, output, name=name):
            rows.append(
                {
                    "name": name,
                    "type": type(mod).__name__,
                    "output_shape": tuple(output.shape[1:]),
                    "params": sum(p.numel() for p in mod.parameters(recurse=False)),
                    "macs": _macs(mod, inputs[0], output),
                }
            )

        hooks.append(module.register_forward_hook(hook))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            labels = (
                torch.zeros(example.shape[0], dtype=torch.long, device=example.device)
                if getattr(getattr(model, "config", None), "conditional", False)
                else None
            )
            model(example) if labels is None else model(example, labels)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return rows


def format_summary(title: str, rows: list[dict]) -> str:
    """A fixed-width table of `model_summary` rows with totals."""
    lines = [title, f"  {'layer':<18} {'type':<16} {'output':<18} {'params':>12} {'MACs/image':>14}"]
    for r in rows:
        shape = "x".join(map(str, r["output_shape"]))
        lines.append(f"  {r['name']:<18} {r['type']:<16} {shape:<18} {r['params']:>12,} {r['macs']:>14,}")
    total_p = sum(r["params"] for r in rows)
    total_m = sum(r["macs"] for r in rows)
    lines.append(f"  {'total':<18} {'':<16} {'':<18} {total_p:>12,} {total_m:>14,}")
    return "\n".join(lines)
