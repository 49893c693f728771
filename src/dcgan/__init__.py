"""dcgan: Deep Convolutional GANs (Radford, Metz, Chintala 2015) that work for real.

Three lines to train on the digits bundled with scikit-learn:

>>> import dcgan
>>> trainer = dcgan.Trainer.from_options(data="digits", image_size=32, steps=200, run_dir="runs/demo")
>>> trainer.train()
"""

from . import _moved, metrics
from ._moved import forwarder
from ._version import __version__
from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .data import DATASETS, ImageData, load_dataset
from .errors import CheckpointError, ConfigError, DataError, DCGANError
from .explore.latent import (
    PrincipalDirections,
    interpolate,
    invert,
    latent_sheet,
    move_along,
    nearest_neighbors,
    principal_directions,
    slerp,
    vector_arithmetic,
)
from .explore.probe import run_probe
from .export import EXPORT_FORMATS, export_files, model_card
from .metrics import build_extractor, evaluate, train_classifier
from .models import Discriminator, Generator, ModelConfig, format_summary, model_summary
from .models.conditioning import CONDITIONING, class_grid, resolve_class
from .sampling import generate, sample_labels, sample_z
from .training import TrainConfig, Trainer

__all__ = [
    "__version__",
    # errors: every user mistake is one of these, with a one-line message
    "DCGANError",
    "ConfigError",
    "DataError",
    "CheckpointError",
    # data
    "DATASETS",
    "ImageData",
    "load_dataset",
    # models
    "ModelConfig",
    "Generator",
    "Discriminator",
    "model_summary",
    "format_summary",
    "CONDITIONING",
    "class_grid",
    "resolve_class",
    # training and checkpoints
    "TrainConfig",
    "Trainer",
    "Checkpoint",
    "load_checkpoint",
    "save_checkpoint",
    # sampling
    "generate",
    "sample_z",
    "sample_labels",
    # evaluation
    "metrics",
    "evaluate",
    "build_extractor",
    "train_classifier",
    # the paper's uses of a trained pair
    "latent_sheet",
    "interpolate",
    "slerp",
    "vector_arithmetic",
    "invert",
    "nearest_neighbors",
    "principal_directions",
    "PrincipalDirections",
    "move_along",
    "run_probe",
    # export
    "EXPORT_FORMATS",
    "export_files",
    "model_card",
]

# The explorer's classes stood here in 0.3.0; they belong to the server (`dcgan.server.Explorer`, `ServeLimits`)
# and resolve from the top for one version, with a DeprecationWarning.
_FROM_SERVER = forwarder("dcgan", "dcgan.server")


def __getattr__(name: str):
    if name in ("Explorer", "ServeLimits"):
        return _FROM_SERVER(name)
    raise AttributeError(f"module 'dcgan' has no attribute {name!r}")


_moved.install()  # the module paths of 0.3.0 (dcgan.latent, dcgan.shards, ...) import for one version
