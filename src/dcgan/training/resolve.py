"""The options of a new run, resolved in one place for `Trainer.from_options` and `dcgan train`.

    defaults < recipe < config file < the options given

- the recipe is the one given (`recipe="mnist"`, `--recipe mnist`), else the config file's;
- a run's config.json already holds every option resolved, so its recipe is only a recorded name;
- a layer that sets a budget (steps or epochs) replaces the budget of the layers below;
- the data defaults to "digits", and with no budget anywhere a run trains `default_epochs(data)`:
  25 epochs of the digits (the demo), one epoch of anything else.

The seed is not drawn here: a run with no seed given gets a random one from the Trainer (rank 0's,
shared by every process), recorded in `trainer.config.seed`, the run's config.json and every
checkpoint, so the CLI and Python agree, and `--config RUN/config.json` (or `seed=...`) repeats a run.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..errors import ConfigError
from .config import TrainConfig
from .configfile import ConfigFile, read_config_file
from .recipes import get_recipe

__all__ = ["resolve_options", "default_epochs", "DEFAULT_DATA", "DEFAULT_EPOCHS"]

# TrainConfig.data's own default (scikit-learn's digits: no download, a short CPU run), read from its declaration
DEFAULT_DATA = str(next(f.default for f in dataclasses.fields(TrainConfig) if f.name == "data"))
DEFAULT_EPOCHS = {"digits": 25}  # the demo's budget; other datasets default to one epoch


def default_epochs(data: str) -> int:
    """The epochs a run of `data` trains when no layer sets a budget."""
    return DEFAULT_EPOCHS.get(data, 1)


def resolve_options(given: dict, config_file: ConfigFile | str | Path | None = None) -> dict:
    """The flat options of a new run (ModelConfig and TrainConfig fields), layered and defaulted.

    `given`: the options asked for (None values count as not given), `recipe` and `data` among them;
    `config_file`: a TOML file or a run's config.json (a path, or what `read_config_file` returned).

    >>> resolve_options({"data": "digits"})["epochs"]
    25
    """
    given = {k: v for k, v in given.items() if v is not None}
    file = read_config_file(config_file) if isinstance(config_file, (str, Path)) else config_file
    layers = []
    recipe_name = given.get("recipe") or (file.options.get("recipe") if file is not None else None)
    if file is not None and file.run_record and given.get("recipe") is not None:
        raise ConfigError(f"{file.path} is a run's config.json and holds every option already; drop --recipe")
    if recipe_name is not None and not (file is not None and file.run_record):
        recipe = get_recipe(recipe_name)
        if recipe.needs_data and "data" not in given and (file is None or "data" not in file.options):
            raise ConfigError(f"--recipe {recipe.name} is for your own images: give them with --data FOLDER_OR_ARCHIVE")
        layers.append(recipe.options)
    if file is not None:
        file_options = dict(file.options)
        if "data" in given and given["data"] != file_options.get("data"):
            file_options.pop("data_dir", None)  # the file's folder belongs to the file's dataset, not to the given data's
        layers.append(file_options)
    layers.append(given)
    options: dict = {}
    for layer in layers:
        if "steps" in layer or "epochs" in layer:
            options.pop("steps", None)
            options.pop("epochs", None)
        options.update(layer)
    if recipe_name is not None:
        options["recipe"] = recipe_name
    options.setdefault("data", DEFAULT_DATA)
    if options.get("steps") is None and options.get("epochs") is None:
        options["epochs"] = default_epochs(options["data"])
    return options
