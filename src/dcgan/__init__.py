"""dcgan: Deep Convolutional GANs (Radford, Metz, Chintala 2015) that work for real.

Three lines to train on the digits bundled with scikit-learn:

>>> import dcgan
>>> trainer = dcgan.Trainer.from_options(data="digits", image_size=32, steps=200, run_dir="runs/demo")
>>> trainer.train()
"""

__version__ = "0.3.0"

from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint  # noqa: E402
from .data import DATASETS, ImageData, load_dataset  # noqa: E402
from .errors import CheckpointError, ConfigError, DataError, DCGANError  # noqa: E402
from .models import Discriminator, Generator, ModelConfig, format_summary, model_summary  # noqa: E402
from .sampling import generate, sample_labels, sample_z  # noqa: E402
from .models.conditioning import CONDITIONING, class_grid, resolve_class  # noqa: E402
from .training import TrainConfig, Trainer  # noqa: E402
from . import metrics  # noqa: E402
from .metrics import build_extractor, evaluate, train_classifier  # noqa: E402
from .explore.latent import (  # noqa: E402
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
from .export import EXPORT_FORMATS, export_files, model_card  # noqa: E402
from .server import Explorer, ServeLimits  # noqa: E402  (FastAPI is imported only by create_app)
from .explore.probe import run_probe  # noqa: E402

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
