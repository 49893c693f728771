"""Sample quality: feature extractors, scores and evaluation protocols (see `dcgan evaluate`)."""

from .classifier import (
    Classifier,
    ClassifierConfig,
    TrainedClassifier,
    default_evaluator_path,
    load_classifier,
    save_classifier,
    train_classifier,
)
from .evaluate import LADDER_SIGMAS, EvalReport, TrackedMetric, evaluate, reference_features, score
from .extractors import FEATURE_EXTRACTORS, Extractor, build_extractor, load_dataset_classifier, register_extractor
from .scores import (
    METRICS,
    class_coverage,
    density_coverage,
    fid_from_features,
    frechet_distance,
    inception_score,
    kid_from_features,
    mean_confidence,
    parse_metrics,
    precision_recall,
    register_metric,
)

__all__ = [
    "Classifier",
    "ClassifierConfig",
    "EvalReport",
    "Extractor",
    "FEATURE_EXTRACTORS",
    "LADDER_SIGMAS",
    "METRICS",
    "TrackedMetric",
    "TrainedClassifier",
    "build_extractor",
    "class_coverage",
    "default_evaluator_path",
    "density_coverage",
    "evaluate",
    "fid_from_features",
    "frechet_distance",
    "inception_score",
    "kid_from_features",
    "load_classifier",
    "load_dataset_classifier",
    "mean_confidence",
    "parse_metrics",
    "precision_recall",
    "reference_features",
    "register_extractor",
    "register_metric",
    "save_classifier",
    "score",
    "train_classifier",
]
