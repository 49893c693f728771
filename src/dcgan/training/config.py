"""TrainConfig: how to train. Every field is an `option`: its help, its values and its resume rule are here alone."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from ..errors import ConfigError
from ..metrics.evaluate import TRACKED_METRICS
from ..metrics.extractors import FEATURE_EXTRACTORS
from ..options import FRACTION, NONNEGATIVE_INT, POSITIVE_FLOAT, POSITIVE_INT, SEED, UNIT_FLOAT, Check, option, validate_options
from ..sampling import STANDING_BATCHES
from .augment import parse_policy
from .health import ON_FAILURE
from .losses import DEFAULT_LOSS, LOSSES

__all__ = ["TrainConfig", "AUTO_EVAL_EVERY", "PRECISIONS", "ADAM_IMPLEMENTATIONS", "DEVICE"]

PRECISIONS = ("auto", "fp32", "bf16")
AUTO_EVAL_EVERY = 500  # --eval-every's default: a few seconds of scoring per 500 iterations, and a best checkpoint
ADAM_IMPLEMENTATIONS = ("auto", "fused", "foreach", "loop")
NONNEGATIVE_FLOAT = Check(float, lambda v: math.isfinite(v) and v >= 0, "a number >= 0", (int, float))
AUGMENT_POLICY = Check(str, lambda v: parse_policy(v) is not None, "none or a comma-separated list of translation, cutout, color", (str,))
DEVICE = Check(str, lambda v: v in ("auto", "cpu", "cuda") or (v.startswith("cuda:") and v[5:].isdigit()), "auto, cpu, cuda or cuda:N", (str,))


# Fields added after 0.3.0 whose default is not what earlier versions trained with: a record of an earlier run (a
# checkpoint, a run's config.json) that lacks one trained without it, and resuming or repeating it must too.
# (Every other field added since defaults to the earlier behaviour; batch size, learning rates and betas were always recorded.)
EARLIER_RUNS = {"r1_gamma": 0.0}


# What --eval-features takes: auto or any registered extractor but `discriminator`, which needs a finished checkpoint's D.
EVAL_FEATURES = ("auto", *(name for name in FEATURE_EXTRACTORS if name != "discriminator"))


@dataclass(frozen=True)
class TrainConfig:
    """How to train. Model shape lives in ModelConfig; this holds the optimisation and the bookkeeping.

    `resume=True` marks what `--resume` may change: the budget and the bookkeeping, never the optimisation.
    """

    # -- data
    data: str = option(
        "digits", "dataset name from the registry, a folder / .zip / .tar(.gz) of images, an LSUN lmdb, or WebDataset shards", group="data", cli=False
    )
    recipe: str | None = option(None, "the named configuration this run started from (dcgan train --recipe)", group="data", cli=False)
    data_dir: str | None = option(
        None, "folder holding the dataset's files (mnist: the four IDX .gz files)", group="data", metavar="DIR", resume=True
    )
    conditional: bool = option(
        False,
        "a class-conditional pair, trained on the data's class labels (MNIST, CIFAR-10, or a folder / archive with one sub-folder per class)",
        group="model",
    )
    # -- optimisation (section 4 of the paper)
    # -- the defaults are the best DCGAN measured here (docs/quality.md, "The default recipe"); --recipe paper restores the paper's
    batch_size: int = option(64, "images per batch", group="training", check=POSITIVE_INT, default_text="default 64; the paper's 128")
    lr_g: float = option(
        8e-4,
        "G's Adam learning rate (overrides --lr)",
        group="training",
        check=POSITIVE_FLOAT,
        metavar="LR",
        default_text="default 8e-4; the paper's 2e-4",
    )
    lr_d: float = option(
        8e-4,
        "D's Adam learning rate (overrides --lr)",
        group="training",
        check=POSITIVE_FLOAT,
        metavar="LR",
        default_text="default 8e-4; the paper's 2e-4",
    )
    beta1: float = option(
        0.0,
        "Adam beta1 (of 0.9 the paper says it 'resulted in training oscillation and instability')",
        group="training",
        check=UNIT_FLOAT,
        metavar="B",
        default_text="default 0; the paper's 0.5",
    )
    beta2: float = option(0.99, "Adam beta2", group="training", check=UNIT_FLOAT, metavar="B", default_text="default 0.99; the paper's 0.999")
    label_smoothing: float = option(
        0.0, "one-sided: D's real targets are 1-S", group="training", check=UNIT_FLOAT, metavar="S", default_text="default 0, off"
    )
    loss: str = option(
        DEFAULT_LOSS,
        "the adversarial loss (training/losses.py)",
        group="training",
        choices=tuple(LOSSES),
        default_text="default non-saturating, paper",
    )
    r1_gamma: float = option(
        1.0,
        "R1 penalty on real images, gamma/2 * |grad D(x)|^2 (Mescheder et al. 2018); 0: off",
        group="training",
        check=NONNEGATIVE_FLOAT,
        metavar="G",
        default_text="default 1; the paper has none",
    )
    r1_every: int = option(
        16, "D updates between R1 penalties (lazy, StyleGAN2's 16; the penalty is scaled to match)", group="training", check=POSITIVE_INT
    )
    augment: str = option(
        "none",
        "differentiable augmentation of every image D sees, real and fake (DiffAugment): none or a comma-separated list "
        "of translation, cutout, color",
        group="training",
        check=AUGMENT_POLICY,
        metavar="POLICY",
    )
    augment_p: float = option(1.0, "--augment: each transform's probability per image", group="training", check=FRACTION, metavar="P")
    augment_target: float | None = option(
        None,
        "--augment: adapt the probability (ADA) so that E[sign D(x)] on real images stays near T; 0.6 is ADA's",
        group="training",
        check=UNIT_FLOAT,
        metavar="T",
        default_text="default off: a fixed --augment-p",
    )
    augment_kimg: float = option(
        100.0, "--augment-target: thousands of images for the probability to move from 0 to 1", group="training", check=POSITIVE_FLOAT, metavar="KIMG"
    )
    d_steps: int = option(1, "D updates per iteration, each with fresh fakes on the same real batch", group="training", check=POSITIVE_INT)
    g_steps: int = option(1, "G updates per iteration, each with fresh z", group="training", check=POSITIVE_INT)
    # -- the averaged generator that every sampling path uses (an EMA of G's weights)
    ema: bool = option(
        True,
        "sample and save an exponential moving average of G's weights, with batch-norm statistics "
        "recomputed from fresh z; --no-ema samples the trained G",
        group="quality",
        legacy={"on": True, "off": False},
    )  # "on" / "off" up to 0.3.0: old runs and files still say so
    ema_half_life: float = option(
        10.0, "the average's half-life in thousands of images (StyleGAN2-ADA's ema_kimg)", group="quality", check=POSITIVE_FLOAT, metavar="KIMG"
    )
    ema_rampup: float = option(
        0.05,
        "early on, the half-life is at most this fraction of the images seen (0: no ramp-up)",
        group="quality",
        check=Check(float, lambda v: 0 <= v <= 1, "a number in [0, 1]", (int, float)),
        metavar="R",
    )
    standing_batches: int = option(
        STANDING_BATCHES, "batches of fresh z whose batch-norm statistics the averaged G samples with", group="quality", check=POSITIVE_INT
    )
    # -- budget: steps and epochs exclude each other. Neither: `Trainer.from_options` and `dcgan train` take the
    # dataset's default (training/resolve.py: digits 25 epochs, others 1); a TrainConfig given to Trainer trains 1 epoch
    steps: int | None = option(None, "total iterations (one real batch each)", group="training", check=POSITIVE_INT, resume=True, exclusive="budget")
    epochs: int | None = option(
        None,
        "total passes over the data",
        group="training",
        check=POSITIVE_INT,
        resume=True,
        exclusive="budget",
        default_text="digits default 25, others 1",
    )
    # None: the Trainer draws a random seed (rank 0's, for every process) and records it in the run, so
    # `dcgan train --config RUN/config.json` and `seed=trainer.config.seed` repeat it; the same in Python and the CLI
    seed: int | None = option(
        None,
        "seeds model init, data order and noise: makes CPU runs repeatable",
        group="training",
        check=SEED,
        default_text="default: a random seed, recorded in the run",
    )
    device: str = option(
        "auto",
        "training device: auto, cpu, cuda or cuda:N",
        group="training",
        check=DEVICE,
        resume=True,
        metavar="DEVICE",
        default_text="default auto: cuda when present",
    )
    workers: int | None = option(
        None,
        "DataLoader workers when data streams from disk",
        group="training",
        check=NONNEGATIVE_INT,
        resume=True,
        default_text="default min(8, cores)",
    )
    # -- speed and scale
    precision: str = option(
        "auto",
        "bf16 autocast or fp32",
        group="speed",
        choices=PRECISIONS,
        default_text="default auto: bf16 on CUDA and on CPUs with bf16 instructions, else fp32; see BENCHMARKS.md",
    )
    channels_last: bool = option(True, "the channels_last memory layout, else NCHW", group="speed")
    adam: str = option("auto", "Adam implementation", group="speed", choices=ADAM_IMPLEMENTATIONS, default_text="default auto: fused")
    compile: bool = option(False, "torch.compile G and D (slow first steps)", group="speed")
    sync_bn: bool = option(False, "with several processes: batch-norm statistics over all of them", group="speed")
    # -- outputs
    log_every: int = option(20, "iterations between progress/log updates (the one host sync)", group="outputs", check=POSITIVE_INT, resume=True)
    sample_every: int | None = option(
        None, "iterations between sample grids", group="outputs", check=POSITIVE_INT, resume=True, default_text="default: every epoch"
    )
    checkpoint_every: int | None = option(
        None, "iterations between checkpoints", group="outputs", check=POSITIVE_INT, resume=True, default_text="default: every epoch"
    )
    num_samples: int = option(64, "images in the fixed-noise grid", group="outputs", check=POSITIVE_INT)
    eval_every: int | None = option(
        None,
        "iterations between FID evaluations; the best is kept as checkpoints/best.safetensors, because DCGAN runs "
        "often get worse after their best point; 0: off",
        group="outputs",
        check=NONNEGATIVE_INT,
        resume=True,
        default_text=f"default auto: every {AUTO_EVAL_EVERY} in runs of at least {AUTO_EVAL_EVERY} iterations",
    )
    eval_samples: int = option(2000, "samples per evaluation", group="outputs", check=POSITIVE_INT)
    eval_metric: str = option(
        "fid",
        "what --eval-every tracks and keeps the best of: fid (lowest), and for a --conditional "
        "model intra_fid (lowest mean per-class FID) or conditional_accuracy (highest share of samples "
        "the evaluation classifier sees as their class)",
        group="outputs",
        choices=TRACKED_METRICS,
    )
    eval_features: str = option(
        "auto",
        "features of that FID",
        group="outputs",
        choices=EVAL_FEATURES,
        default_text="default auto: as dcgan evaluate picks, the dataset's classifier when trained, else pixels",
    )
    evaluator: str | None = option(
        None, "evaluation classifier file", group="outputs", metavar="FILE", default_text="default: the one trained for --data"
    )
    tensorboard: bool = option(False, "also log to RUN_DIR/tensorboard (needs tensorboard)", group="outputs", resume=True)
    # -- training health
    on_failure: str = option(
        "warn",
        "on NaNs, D saturation, mode collapse or G-loss blow-up: warn and go on, stop, or roll back to the last checkpoint with a fresh noise stream (a winning D, d_winning, only ever warns)",
        group="health",
        choices=ON_FAILURE,
        resume=True,
    )
    max_rollbacks: int = option(3, "rollbacks before stopping", group="health", check=NONNEGATIVE_INT, resume=True)
    rollback_lr_factor: float = option(
        1.0,
        "multiply both learning rates by F at each rollback",
        group="health",
        check=FRACTION,
        resume=True,
        metavar="F",
        default_text="default 1: unchanged",
    )

    def __post_init__(self) -> None:
        validate_options(self)
        if self.steps is not None and self.epochs is not None:
            raise ConfigError("give either steps or epochs as the budget, not both")
        if self.label_smoothing and self.loss != "non-saturating":
            raise ConfigError(f"--label-smoothing smooths the targets of the non-saturating loss; the {self.loss} loss has none")
        if self.augment_target is not None and not parse_policy(self.augment):
            raise ConfigError("--augment-target adapts the probability of the --augment transforms: give them too, e.g. --augment translation,cutout")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_record(cls, data: dict) -> TrainConfig:
        """The config of a recorded run (a checkpoint's or a run's config.json), from any version: see EARLIER_RUNS."""
        return cls.from_dict({**EARLIER_RUNS, **data})

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
