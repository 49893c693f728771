"""dcgan: Deep Convolutional GANs (Radford, Metz, Chintala 2015) that work for real.

Three lines to train on the digits bundled with scikit-learn:

>>> import dcgan
>>> trainer = dcgan.Trainer.from_options(data="digits", image_size=32, steps=200, run_dir="runs/demo")
>>> trainer.train()
"""

from ._version import __version__
from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .data import DATASETS, ImageData, load_dataset
from .errors import CheckpointError, ConfigError, DataError, DCGANError
from .models import Discriminator, Generator, ModelConfig, format_summary, model_summary
from .sampling import generate, sample_labels, sample_z
from .models.conditioning import CONDITIONING, class_grid, resolve_class
from .training import TrainConfig, Trainer
from . import metrics
from .metrics import build_extractor, evaluate, train_classifier
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
from .export import EXPORT_FORMATS, export_files, model_card
from .server import Explorer, ServeLimits  # FastAPI is imported only by create_app
from .explore.probe import run_probe

__all__ = [
    "__version__",
    "CONDITIONING",
    "class_grid",
    "resolve_class",
    "sample_labels",
    "Checkpoint",
    "CheckpointError",
    "ConfigError",
    "DATASETS",
    "DCGANError",
    "DataError",
    "Discriminator",
    "EXPORT_FORMATS",
    "Explorer",
    "Generator",
    "ImageData",
    "ModelConfig",
    "PrincipalDirections",
    "ServeLimits",
    "TrainConfig",
    "Trainer",
    "build_extractor",
    "export_files",
    "interpolate",
    "invert",
    "latent_sheet",
    "model_card",
    "move_along",
    "nearest_neighbors",
    "principal_directions",
    "run_probe",
    "slerp",
    "vector_arithmetic",
    "evaluate",
    "metrics",
    "train_classifier",
    "format_summary",
    "generate",
    "load_checkpoint",
    "load_dataset",
    "model_summary",
    "sample_z",
    "save_checkpoint",
]
