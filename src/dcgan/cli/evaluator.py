"""`dcgan evaluator`: train, calibrate or list the evaluation classifiers whose features `dcgan evaluate` uses."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..data import DATASETS, load_dataset
from ..errors import ConfigError, DCGANError
from ..metrics.classifier import (
    NOISE_AUGMENTATION,
    calibrate_classifier,
    default_evaluator_dir,
    default_evaluator_path,
    describe,
    load_classifier,
    save_classifier,
    train_classifier,
)
from ..metrics.extractors import DEFAULT_FEATURES, load_dataset_classifier
from .common import Command, _add_device, _device, _help_formatter, _Parser, _positive_int, _unit_float, add_data, add_data_dir, add_seed

# --------------------------------------------------------------------------- #
# dcgan evaluator train | list
# --------------------------------------------------------------------------- #
EVALUATOR_EXAMPLES = """examples:
  dcgan evaluator train --data mnist --data-dir ../shared/data/mnist     # about 1.5 minutes on 2 CPU cores
  dcgan evaluator train --data digits
  dcgan evaluator calibrate --data mnist --data-dir ../shared/data/mnist # a classifier trained before classifier-layers
  dcgan evaluator list
"""

EVALUATOR_EPOCHS = {"mnist": 3, "fashion-mnist": 6, "cifar10": 15, "digits": 30}  # others: 10


def _add_evaluator_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="evaluator_command", metavar="ACTION", parser_class=_Parser, required=True)
    train = sub.add_parser(
        "train",
        help="train the evaluation classifier of a labelled dataset",
        epilog=EVALUATOR_EXAMPLES,
        description="Train the small CNN whose features and class probabilities `dcgan evaluate` uses.",
        formatter_class=_help_formatter,
    )
    add_data(train, "a labelled dataset (a folder: one sub-folder per class)", required=True)
    add_data_dir(train)
    train.add_argument("--image-size", type=int, default=None, metavar="N", help="input size (default: the dataset's, 32 for the named ones)")
    train.add_argument("--channels", type=int, choices=(1, 3), default=None)
    train.add_argument("--epochs", type=_positive_int, default=None, help="default: mnist 3, fashion-mnist 6, cifar10 15, digits 30, others 10")
    train.add_argument("--width", type=_positive_int, default=None, help="first-stage channels (default 16 for grey, 32 for RGB)")
    train.add_argument("--batch-size", type=_positive_int, default=128)
    add_seed(train, "the classifier's initial weights and data order")
    train.add_argument(
        "--noise",
        type=_unit_float,
        default=NOISE_AUGMENTATION,
        metavar="SIGMA",
        help=f"Gaussian noise added in training, sigma drawn per image up to this ([-1, 1] units; default "
        f"{NOISE_AUGMENTATION:g}): the features then weigh shapes over faint noise; 0 turns it off",
    )
    _add_device(train)
    train.add_argument(
        "--out", default=None, metavar="FILE", help="where to save it (default: the evaluator folder, where the classifier features look)"
    )
    train.add_argument("--force", action="store_true", help="replace an existing classifier")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    calibrate = sub.add_parser(
        "calibrate",
        help="add the layer calibration to a classifier trained before the classifier-layers features",
        epilog=EVALUATOR_EXAMPLES,
        formatter_class=_help_formatter,
        description="Measure the scales of the classifier-layers features on the classifier's own training "
        "data (seconds) and store them in its file; the weights are not changed.",
    )
    add_data(calibrate, "the dataset the classifier was trained on", required=True)
    add_data_dir(calibrate)
    calibrate.add_argument("--evaluator", default=None, metavar="FILE", help="the classifier file (default: the one trained for --data)")
    sub.add_parser("list", help="list the trained evaluation classifiers", formatter_class=_help_formatter)


def _run_evaluator(args: argparse.Namespace) -> int:
    if args.evaluator_command == "list":
        return _list_evaluators()
    if args.evaluator_command == "calibrate":
        return _calibrate_evaluator(args)
    return _train_evaluator(args)


def _list_evaluators() -> int:
    """`dcgan evaluator list`: every saved evaluation classifier, with what it was trained on."""
    folder = default_evaluator_dir()
    files = sorted(folder.glob("*.safetensors")) if folder.is_dir() else []
    if not files:
        print(f"no evaluation classifiers in {folder}; train one with: dcgan evaluator train --data mnist")
        return 0
    for f in files:
        try:
            clf = load_classifier(f)
            layers = (
                ""
                if clf.layer_scales() is not None
                else f" (no layer calibration: dcgan evaluator calibrate --data {clf.info.get('dataset') or f.stem})"
            )
            print(f"{f.stem:16s} {describe(clf)}{layers}  {f}")
        except DCGANError as exc:
            print(f"{f.stem:16s} unreadable: {exc}")
    return 0


def _calibrate_evaluator(args: argparse.Namespace) -> int:
    """`dcgan evaluator calibrate`: add the layer calibration to a classifier trained before it."""
    path = Path(args.evaluator) if args.evaluator else default_evaluator_path(args.data)
    clf = load_dataset_classifier(args.data, args.evaluator)
    c = clf.config
    train = load_dataset(args.data, args.data_dir, image_size=c.image_size, channels=c.channels, split="train")
    calibrated = calibrate_classifier(clf, train)
    save_classifier(path, calibrated)
    cal = calibrated.info["layer_calibration"]
    print(
        f"layer calibration measured on {cal['images']} training images and saved to {path}; "
        f"dcgan evaluate now uses {DEFAULT_FEATURES} features for {args.data}"
    )
    return 0


def _train_evaluator(args: argparse.Namespace) -> int:
    """`dcgan evaluator train`: train the evaluation classifier of a labelled dataset and save it."""
    out = Path(args.out) if args.out else default_evaluator_path(args.data)
    if out.exists() and not args.force:
        raise ConfigError(f"{out} already exists; pass --force to replace it (reference features made with it are then recomputed)")
    spec = DATASETS.get(args.data)
    size = args.image_size or (spec.default_size if spec else None)
    train = load_dataset(args.data, args.data_dir, image_size=size, channels=args.channels, split="train", progress=not args.quiet)
    test = load_dataset(args.data, args.data_dir, image_size=train.image_size, channels=train.channels, split="test")
    epochs = args.epochs or EVALUATOR_EPOCHS.get(args.data, 10)
    width = args.width or (16 if train.channels == 1 else 32)
    device = _device(args.device)
    print(
        f"training the evaluation classifier on {args.data} ({len(train)} images {train.image_size}x{train.image_size}x{train.channels}, "
        f"{len(test)} test) for {epochs} epochs on {device}"
    )
    clf = train_classifier(
        train,
        test,
        epochs=epochs,
        batch_size=args.batch_size,
        width=width,
        seed=args.seed,
        noise=args.noise,
        device=device,
        progress=not args.quiet,
        on_epoch=None if not args.quiet else (lambda e, loss, acc: print(f"epoch {e}: loss {loss:.3f}, test accuracy {100 * acc:.2f}%")),
    )
    save_classifier(out, clf)
    print(f"test accuracy {100 * clf.info['test_accuracy']:.2f}% after {epochs} epochs in {clf.info['seconds']:.0f} s; saved to {out}")
    print(f"dcgan evaluate (and dcgan train --eval-every) now use its {DEFAULT_FEATURES} features for {args.data}")
    return 0


COMMANDS = {
    "evaluator": Command(
        "train, calibrate or list the evaluation classifiers that `evaluate` uses for features",
        EVALUATOR_EXAMPLES,
        _add_evaluator_args,
        _run_evaluator,
    )
}
