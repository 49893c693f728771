"""`dcgan train --config FILE`: a TOML file of options, or the `config.json` of an earlier run, as flat options.

Two kinds of file give the same thing, the flat options of `Trainer.from_options` (ModelConfig and
TrainConfig field names, `data` and `recipe` among them):

- a TOML file, written by hand: option names as the flags spell them, with dashes or underscores,
  either at the top level or in `[model]` and `[train]` tables::

      data = "mnist"
      data-dir = "../shared/data/mnist"
      epochs = 5

      [model]
      image-size = 32
      width = 64

      [train]
      batch-size = 64
      lr = 2e-4          # the command line's --lr: both lr_g and lr_d unless they are given

- a run directory's `config.json` (`Trainer._config_record`): every option resolved, so the same
  budget and seed repeat the run. A conditional run's classes are not options: the file asks for
  `conditional` and its `conditioning`, the data gives the classes, and `class_names` is kept so the
  caller can check that the data still has the same ones.

Every mistake is a ConfigError of one line that names the file: an unknown key (with the closest
valid one), a value the configs refuse (their own message), a file that is missing or not TOML/JSON.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, fields
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib

from ..errors import ConfigError
from ..models import ModelConfig
from ..options import POSITIVE_FLOAT, current_value
from .config import EARLIER_RUNS, TrainConfig
from .recipes import get_recipe

__all__ = ["ConfigFile", "read_config_file", "FILE_KEYS"]

# The classes of a conditional model come from the data (`dcgan train --conditional`), never from a file.
FROM_DATA = ("num_classes", "class_names")
MODEL_KEYS = tuple(f.name for f in fields(ModelConfig) if f.name not in FROM_DATA)
TRAIN_KEYS = tuple(f.name for f in fields(TrainConfig)) + ("lr",)  # lr: the command line's shorthand
FILE_KEYS = MODEL_KEYS + TRAIN_KEYS  # every option a TOML file may set
# Each table's keys; `conditional` is a training option that --help lists with the model's, so both take it.
TABLES = {"model": MODEL_KEYS + ("conditional",), "train": TRAIN_KEYS}
# Every bool option has the flags --NAME and --no-NAME; a file may say `no-NAME = true` as well as `NAME = false`.
NEGATED = {"no_" + f.name: f.name for cls in (ModelConfig, TrainConfig) for f in fields(cls) if isinstance(f.default, bool)}
_FIELDS = {f.name: f for cls in (ModelConfig, TrainConfig) for f in fields(cls)}


@dataclass(frozen=True)
class ConfigFile:
    """What a config file asks for."""

    path: Path  # the file read (a run folder's config.json when a folder was given)
    options: dict  # flat option name -> value: ModelConfig and TrainConfig fields, `data`, `recipe`
    run_record: bool = False  # a run's config.json: every option resolved; its recipe is a recorded name only
    class_names: tuple | None = None  # a conditional run's classes, to check the data against
    fingerprint: str | None = None  # sha256 of the run's decoded data, to tell whether the data is the same


def read_config_file(path: str | Path) -> ConfigFile:
    """Read and validate a TOML config or a run's config.json (or the run folder holding it).

    >>> read_config_file("runs/demo/config.json").options["seed"]  # doctest: +SKIP
    1234
    """
    path = Path(path)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConfigError(f"{path} is a folder with no config.json: give a .toml file or a run's config.json")
        path = path / "config.json"
    doc = _parse(path)
    if "dcgan_version" in doc:
        return _from_run_record(path, doc)
    return ConfigFile(path, _validated(path, _from_tables(path, doc)))


def _parse(path: Path) -> dict:
    """The file's top-level table; ConfigError for a file that is missing, unreadable or not TOML / JSON."""
    if path.suffix.lower() not in (".toml", ".json"):
        raise ConfigError(f"{path}: a config file is a .toml file or a run's config.json")
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text") from None
    if path.suffix.lower() == ".toml":
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a JSON object of options, got {type(doc).__name__}")
    return doc


def _from_tables(path: Path, doc: dict) -> dict:
    """Flat options from top-level keys and the [model] / [train] tables, names normalised to field names."""
    options: dict = {}
    for key, value in doc.items():
        if key in TABLES and isinstance(value, dict):
            for inner, inner_value in value.items():
                _put(path, options, *_field_name(path, inner, key), inner_value)
        else:
            _put(path, options, *_field_name(path, key, None), value)
    if "lr" in options:  # as on the command line: --lr sets both rates, --lr-g / --lr-d win over it
        lr = options.pop("lr")
        if not POSITIVE_FLOAT.valid(lr):
            raise ConfigError(f"{path}: lr must be {POSITIVE_FLOAT.wanted}, got {lr!r}")
        options.setdefault("lr_g", lr)
        options.setdefault("lr_d", lr)
    return options


def _put(path: Path, options: dict, name: str, invert: bool, value) -> None:
    if invert:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: no-{name.replace('_', '-')} must be true or false, got {value!r}")
        value = not value
    if name in options:
        raise ConfigError(f"{path}: {name.replace('_', '-')} is given twice")
    options[name] = value


def _field_name(path: Path, key: str, table: str | None) -> tuple[str, bool]:
    """(field name, whether the value is negated) for a key as written; ConfigError for an unknown one."""
    name = key.replace("-", "_")
    allowed = TABLES[table] if table else FILE_KEYS
    where = f"[{table}] " if table else ""
    if name in NEGATED and NEGATED[name] in allowed:
        return NEGATED[name], True
    if name in allowed:
        return name, False
    if name in FROM_DATA:
        raise ConfigError(f"{path}: {key} comes from the data's labels, not from a file: set conditional = true")
    if table and name in FILE_KEYS:
        other = "train" if table == "model" else "model"
        raise ConfigError(f"{path}: [{table}] has no option {key!r}: it belongs in [{other}] (or at the top level)")
    if not table and name in TABLES:
        raise ConfigError(f"{path}: {key} must be a table ([{key}]) of options")
    dashed = "-" in key
    spelled = {(n.replace("_", "-") if dashed else n): n for n in (*allowed, *NEGATED, *(TABLES if not table else ()))}
    close = difflib.get_close_matches(key, list(spelled), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else "; the options are those of dcgan train --help"
    raise ConfigError(f"{path}: unknown option {where}{key!r}{hint}")


def _validated(path: Path, options: dict) -> dict:
    """`options` once both configs accept them (their own one-line messages, naming the file).

    Old spellings of values (`ema = "on"` / `"off"` up to 0.3.0) are read as what they mean now."""
    for name, value in options.items():
        f = _FIELDS[name]
        value = options[name] = current_value(f, value)
        meta = f.metadata.get("option") or {}
        if meta.get("check") is not None or meta.get("choices") is not None:
            continue  # the configs check these below
        if isinstance(f.default, bool) and not isinstance(value, bool):
            raise ConfigError(f"{path}: {name.replace('_', '-')} must be true or false, got {value!r}")
        if (f.default is None or isinstance(f.default, str)) and not isinstance(value, str):
            raise ConfigError(f"{path}: {name.replace('_', '-')} must be a string, got {value!r}")
    try:
        ModelConfig(**{k: v for k, v in options.items() if k in MODEL_KEYS})
        TrainConfig(**{k: v for k, v in options.items() if k in TRAIN_KEYS})
        if options.get("recipe") is not None:
            get_recipe(options["recipe"])
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except TypeError as exc:  # a value of a type no comparison takes (a table where a number belongs)
        raise ConfigError(f"{path}: {exc}") from None
    return options


def _from_run_record(path: Path, doc: dict) -> ConfigFile:
    """A run's config.json: {"dcgan_version", "model": ModelConfig, "train": TrainConfig, "data": {...}}."""
    model, train, data = doc.get("model"), doc.get("train"), doc.get("data") or {}
    if not isinstance(model, dict) or not isinstance(train, dict) or not isinstance(data, dict):
        raise ConfigError(f"{path}: a run's config.json needs the objects model, train and data")
    model = dict(model)
    num_classes, class_names = model.pop("num_classes", 0), model.pop("class_names", [])
    options = {}
    train = {**EARLIER_RUNS, **train}  # a run of an earlier version trained without what it does not record
    for table, values in (("model", model), ("train", train)):
        for key, value in values.items():
            name, _ = _field_name(path, key, table)
            if value is not None:  # None is a default: no budget of this kind, no evaluator file, ...
                options[name] = value
    conditional = bool(options.get("conditional"))
    if bool(num_classes) != conditional:
        raise ConfigError(f"{path}: the model has {num_classes} classes but conditional is {str(conditional).lower()}")
    if not conditional:
        options.pop("conditioning", None)  # recorded for every model; it means something only with conditional
    return ConfigFile(
        path,
        _validated(path, options),
        run_record=True,
        class_names=tuple(str(n) for n in class_names) if conditional else None,
        fingerprint=data.get("fingerprint"),
    )
