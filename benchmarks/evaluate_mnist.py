"""Benchmark: train the default MNIST configuration on CPU and score it under a stated protocol.

Prints the classifier's accuracy, the training time, and a table of classifier
FID (10k generated vs 10k real train images), KID, precision, recall,
density, coverage, classifier IS, class coverage and confidence, for the final
and the best checkpoint, beside the real-vs-real floor (10k test images) and
the Gaussian-noise ladder. A figure-printing script, run by hand:

    .venv/bin/python benchmarks/evaluate_mnist.py --data-dir ../shared/data/mnist --epochs 3
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from dcgan.checkpoint import load_checkpoint
from dcgan.data import default_cache_dir, load_dataset
from dcgan.metrics import build_extractor, default_evaluator_path, evaluate, load_classifier, save_classifier, train_classifier
from dcgan.metrics.evaluate import LADDER_SIGMAS
from dcgan.training import Trainer


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default="../shared/data/mnist")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--num-samples", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/bench-evaluate-mnist")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")

    # 1. The evaluation classifier (trained once, then reused from the evaluator folder).
    path = default_evaluator_path("mnist")
    if path.is_file():
        clf = load_classifier(path)
        print(f"classifier: {path} ({100 * clf.info['test_accuracy']:.2f}% test accuracy, trained in {clf.info['seconds']} s)")
    else:
        train = load_dataset("mnist", args.data_dir, image_size=32, split="train")
        test = load_dataset("mnist", args.data_dir, image_size=32, split="test")
        clf = train_classifier(train, test, epochs=3, width=16, seed=0, progress=True)
        save_classifier(path, clf)
        print(f"classifier: trained in {clf.info['seconds']} s, {100 * clf.info['test_accuracy']:.2f}% test accuracy -> {path}")

    # 2. The default MNIST configuration (32x32, paper hyper-parameters), FID tracked every half epoch.
    out = Path(args.out)
    if (out / "checkpoints").exists():
        print(f"{out} exists: scoring its checkpoints without retraining")
    else:
        trainer = Trainer.from_options(
            run_dir=out, data="mnist", data_dir=args.data_dir, epochs=args.epochs, seed=args.seed, eval_every=234, eval_samples=2000
        )
        result = trainer.train()
        print(
            f"training: {result.step} iterations ({result.epoch:.2f} epochs) in {result.seconds:.1f} s "
            f"(including {result.step // 234} tracked evaluations); best tracked FID {result.best}"
        )

    # 3. The full protocol on the final and the best checkpoint, with the floors.
    real = load_dataset("mnist", args.data_dir, image_size=32, split="train")
    test = load_dataset("mnist", args.data_dir, image_size=32, split="test")
    extractor = build_extractor("classifier", dataset="mnist")
    metrics = ["fid", "kid", "pr", "dc", "is", "coverage", "confidence"]
    rows = []
    for name in ("latest", "best"):
        ckpt = load_checkpoint(out / "checkpoints" / f"{name}.safetensors")
        start = time.perf_counter()
        report = evaluate(
            ckpt.build_generator(),
            real,
            extractor,
            metrics,
            num_samples=args.num_samples,
            classifier=extractor.classifier,
            test=test if name == "latest" else None,
            ladder=LADDER_SIGMAS,
            cache_dir=default_cache_dir() / "reference",
        )
        print(f"{name} (step {ckpt.step}): scored in {time.perf_counter() - start:.1f} s")
        for row in report.rows:
            label = (
                f"DCGAN {name} (step {ckpt.step}, epoch {ckpt.state['epoch'] + ckpt.state['batch_in_epoch'] / ckpt.state['steps_per_epoch']:.2f})"
                if row["subject"] == "generator"
                else row["subject"]
            )
            rows.append({**row, "subject": label})
    print(report.protocol_line())
    keys = ["fid", "kid", "precision", "recall", "density", "coverage", "is", "class_entropy", "classes_covered", "confidence"]
    print("| subject | n | " + " | ".join(keys) + " |")
    print("| --- | ---: | " + " | ".join("---:" for _ in keys) + " |")
    for row in rows:
        cells = [f"{row[k]:.4f}" if k == "kid" else (str(row[k]) if isinstance(row[k], int) else f"{row[k]:.3f}") for k in keys]
        print(f"| {row['subject']} | {row['n']} | " + " | ".join(cells) + " |")
    (out / "benchmark.json").write_text(json.dumps({"protocol": report.protocol, "rows": rows}, indent=2) + "\n")
    print(f"written: {out / 'benchmark.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
