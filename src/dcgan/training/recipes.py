"""Named, tested training configurations: `dcgan train --recipe NAME`.

A recipe is a set of option values for ModelConfig and TrainConfig, chosen and
measured for one kind of data (README: "Recipes"); options given on the command
line override it. Recipes are looked up by name in RECIPES.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ConfigError

__all__ = ["Recipe", "RECIPES", "register_recipe", "get_recipe"]


@dataclass(frozen=True)
class Recipe:
    """One named configuration."""

    name: str  # what --recipe takes
    description: str  # one line for --help and the README
    options: dict = field(default_factory=dict)  # ModelConfig and TrainConfig fields -> values
    needs_data: bool = False  # True when the user must say which files with --data (a folder or archive)


RECIPES: dict[str, Recipe] = {}


def register_recipe(recipe: Recipe) -> Recipe:
    RECIPES[recipe.name] = recipe
    return recipe


def get_recipe(name: str) -> Recipe:
    """The recipe called `name`; ConfigError names the choices when there is none."""
    recipe = RECIPES.get(name)
    if recipe is None:
        raise ConfigError(f"unknown recipe {name!r}: use one of {', '.join(RECIPES)}")
    return recipe


# The paper's settings (section 4), exactly: the defaults up to 0.3.0 (issue 25), and the
# baseline of every ablation. The averaged G is off too: the paper samples the trained G.
PAPER = dict(
    loss="non-saturating",
    lr_g=2e-4,
    lr_d=2e-4,
    beta1=0.5,
    beta2=0.999,
    batch_size=128,
    d_steps=1,
    g_steps=1,
    label_smoothing=0.0,
    r1_gamma=0.0,
    augment="none",
    d_norm="batch",
    g_block="transposed",
    d_block="strided",
    ema=False,
    width=64,  # the PyTorch example's ngf/ndf, as up to 0.3.0 (the paper's 64x64 G is width 128), on every dataset
)
register_recipe(
    Recipe("paper", "the paper's settings exactly: its G and D, the non-saturating loss, Adam 2e-4 / 0.5, batch 128, no averaged G", dict(PAPER))
)
register_recipe(
    Recipe(
        "mnist",
        "MNIST digits at 32x32 with the defaults (width 48, batch 64, Adam 8e-4 / (0, 0.99), R1 1, the averaged G), 5 epochs, FID every 500 iterations",
        dict(data="mnist", image_size=32, channels=1, width=48, epochs=5, eval_every=500),
    )
)
register_recipe(
    Recipe(
        "cifar10",
        "CIFAR-10 at 32x32 RGB with the defaults but a 10x lighter R1 (gamma 0.1: measured 1.7x lower FID) and width 32 (measured 1.4-2.1x lower FID in 6 minutes than width 48 and 64), 30 epochs, FID every 1000 iterations",
        dict(data="cifar10", image_size=32, channels=3, width=32, epochs=30, eval_every=1000, r1_gamma=0.1),
    )
)
register_recipe(
    Recipe(
        "photos64",
        "a folder or archive of photos at 64x64 RGB (e.g. the clothing set) with the defaults but R1 gamma 0.1 (measured 2.1x "
        "lower FID than the paper's settings there after 30 minutes), 150 epochs, FID every 500 iterations",
        dict(image_size=64, channels=3, epochs=150, eval_every=500, r1_gamma=0.1),
        needs_data=True,
    )
)
