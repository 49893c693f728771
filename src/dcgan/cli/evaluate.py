"""`dcgan evaluate`: scores of a generator, the real-data floors and the sanity ladder (its classifiers: `evaluator`)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..checkpoint import load_checkpoint
from ..data import DATASETS, default_cache_dir, load_dataset
from ..errors import ConfigError, DCGANError
from ..fileio import atomic_write_bytes
from ..metrics.evaluate import LADDER_SIGMAS, EvalReport, _fmt, evaluate, report_json, text_table
from ..metrics.extractors import DEFAULT_FEATURES, FEATURE_EXTRACTORS, build_extractor, load_dataset_classifier, resolve_features
from ..metrics.sanity import FLOOR_SUBJECT, floor_ratio, sanity
from ..metrics.scores import METRICS, parse_metrics
from ..rundir import RunDir
from .common import Command, _add_device, _add_raw_g, _data_source, _device, _positive_int, add_data, add_data_dir, add_seed

EVALUATE_EXAMPLES = """examples:
  dcgan evaluate runs/mnist --num-samples 10000                 # every metric, the best features available
  dcgan evaluate runs/mnist --metrics fid,kid --features pixels
  dcgan evaluate runs/mnist --floors                            # also real-vs-real and the noise ladder
  dcgan evaluate runs/mnist --sanity                            # the generator beside the whole degradation ladder
  dcgan evaluate runs/mnist-conditional                         # a --conditional run: also conditional accuracy and intra-FID per class
  dcgan evaluate --data mnist --data-dir ../shared/data/mnist --sanity --num-samples 5000   # the ladder alone: what a number means
"""


def _add_evaluate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "checkpoint", nargs="?", default=None, metavar="CKPT", help="a run directory or checkpoint file (omit to score only the floors or the ladder)"
    )
    add_data(p, "real data to compare with")
    add_data_dir(p)
    p.add_argument("--split", choices=("train", "test"), default="train", help="real split of the reference (default train)")
    p.add_argument("--metrics", default="all", metavar="LIST", help=f"comma-separated: {', '.join(METRICS)}, or all (default)")
    p.add_argument(
        "--features",
        default="auto",
        choices=("auto", *FEATURE_EXTRACTORS),
        help=f"feature extractor (default auto: {DEFAULT_FEATURES} when the dataset's evaluation classifier exists, else pixels)",
    )
    p.add_argument("--evaluator", default=None, metavar="FILE", help="evaluation classifier file (default: the one trained for --data)")
    p.add_argument("--num-samples", type=_positive_int, default=10_000, metavar="N", help="generated samples (default 10000)")
    p.add_argument("--num-real", type=_positive_int, default=None, metavar="N", help="real images (default: as many as --num-samples)")
    p.add_argument("--floors", action="store_true", help="also score real test images (the floor) and test images with noise sigma 0.1, 0.2, 0.5")
    p.add_argument(
        "--sanity",
        action="store_true",
        help="also score the sanity ladder: the floor and known degradations of test images (noise, blur, grid dots, "
        "shift, a dropped and a doubled class, memorised copies), with FID as a multiple of the floor's",
    )
    add_seed(p, "the noise of the generated samples")
    p.add_argument("--image-size", type=int, default=None, metavar="N", help="without CKPT: size to score the floors at (default: the dataset's)")
    p.add_argument("--json", default=None, metavar="FILE", help="where to write the JSON report (default RUN_DIR/eval/step_N-FEATURES.json)")
    p.add_argument("--no-cache", action="store_true", help="recompute the real reference features")
    _add_device(p)
    _add_raw_g(p)


MAX_EVAL_SAMPLES = 200_000


def _classifier_for_probs(metrics: list[str], explicit: bool, extractor, data_name: str, evaluator, device: str):
    """(metrics, classifier): the classifier the probability metrics need. With --metrics all they are
    skipped, with a note, when there is none; asked for by name, its absence is an error."""
    classifier = extractor.classifier
    probs = [m for m in metrics if METRICS[m].needs_classifier]
    if classifier is not None or not probs:
        return metrics, classifier
    if explicit:
        return metrics, load_dataset_classifier(data_name, evaluator, device)  # one-line error when missing
    try:
        return metrics, load_dataset_classifier(data_name, evaluator, device)
    except DCGANError:
        print(
            f"skipped {', '.join(probs)}: they need the evaluation classifier's class probabilities "
            f"(train it with: dcgan evaluator train --data {data_name})"
        )
        return [m for m in metrics if m not in probs], None


def _conditional_metrics(metrics: list[str], explicit: bool, ckpt) -> list[str]:
    """The metrics without the conditional ones unless the checkpoint is class-conditional: left out of
    --metrics all, a one-line error when named."""
    cond = [m for m in metrics if METRICS[m].conditional]
    if not cond or (ckpt is not None and ckpt.model_config.conditional):
        return metrics
    if explicit:
        what = "this checkpoint is unconditional" if ckpt is not None else "give the checkpoint of a --conditional run"
        raise ConfigError(f"{', '.join(cond)} score a class-conditional generator: {what}")
    return [m for m in metrics if m not in cond]


def _held_out(data_name: str, data_dir, size: int, channels: int, real, test):
    """(the test split, or None, and why not): the real held-out images the per-class floor is read from."""
    if test is None:
        try:
            test = load_dataset(data_name, data_dir, image_size=size, channels=channels, split="test")
        except DCGANError as exc:
            return None, f"no test split to score the per-class floor with ({exc})"
    if test.fingerprint() == real.fingerprint():
        return None, "the reference is the test split, or the data has no separate test split: intra-FID has no floor here"
    if test.labels is None:
        return None, "the test split has no class labels: intra-FID has no floor here"
    return test, None


def _percent(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def _class_table(report: EvalReport) -> str | None:
    """Per class: the generator's sample count, conditional accuracy and intra-FID, beside the floor's (real test
    images of the class, scored the same way) and the count of real reference images."""
    gen = next((r for r in report.rows if r["subject"] == "generator"), None)
    if gen is None or not ("class_accuracy" in gen or "class_fid" in gen):
        return None
    floor = next((r for r in report.rows if r["subject"] == FLOOR_SUBJECT and "class_counts" in r), {})
    names = list(gen["class_counts"])
    real_n = report.protocol.get("num_real_per_class") or {}
    columns = [("class", lambda n: n)]
    columns.append(("samples", lambda n: str(gen["class_counts"][n])))
    if "class_accuracy" in gen:
        columns.append(("accuracy", lambda n: _percent(gen["class_accuracy"].get(n))))
    if "class_fid" in gen:
        columns.append(("intra-FID", lambda n: _fmt(gen["class_fid"].get(n))))
    if real_n:
        columns.append(("real images", lambda n: str(real_n.get(n, "-"))))
    if floor:
        columns.append(("test images", lambda n: str(floor["class_counts"].get(n, "-"))))
        if "class_accuracy" in floor:
            columns.append(("floor accuracy", lambda n: _percent(floor["class_accuracy"].get(n))))
        if "class_fid" in floor:
            columns.append(("floor intra-FID", lambda n: _fmt(floor["class_fid"].get(n))))
    mean = {
        "class": "all",
        "samples": str(gen["n"]),
        "accuracy": _percent(gen.get("conditional_accuracy")),
        "intra-FID": _fmt(gen.get("intra_fid")),
        "real images": str(sum(real_n.values())) if real_n else "-",
        "test images": str(sum(floor.get("class_counts", {}).values())) if floor else "-",
        "floor accuracy": _percent(floor.get("conditional_accuracy")),
        "floor intra-FID": _fmt(floor.get("intra_fid")),
    }
    rows = [[fn(n) for _, fn in columns] for n in names] + [[mean[h] for h, _ in columns]]
    return text_table([h for h, _ in columns], rows)


def _reading(report: EvalReport) -> str | None:
    """One line placing the generator's FID on the ladder: which rungs it lies between."""
    gen = next((r for r in report.rows if r["subject"] == "generator"), None)
    rungs = sorted((r for r in report.rows if r["subject"] != "generator" and isinstance(r.get("fid"), float)), key=lambda r: r["fid"])
    if gen is None or not isinstance(gen.get("fid"), float) or not rungs:
        return None
    below = [r for r in rungs if r["fid"] <= gen["fid"]]
    above = [r for r in rungs if r["fid"] > gen["fid"]]
    ratio = f" ({gen['fid_x_floor']:.1f}x the floor)" if "fid_x_floor" in gen else ""
    where = (
        f"between {below[-1]['subject']!r} ({below[-1]['fid']:.4g}) and {above[0]['subject']!r} ({above[0]['fid']:.4g})"
        if below and above
        else f"below every rung (lowest: {above[0]['subject']!r}, {above[0]['fid']:.4g})"
        if above
        else f"above every rung (highest: {below[-1]['subject']!r}, {below[-1]['fid']:.4g})"
    )
    return f"reading: the generator's FID {gen['fid']:.4g}{ratio} lies {where}"


def _check_request(args: argparse.Namespace) -> None:
    """The one-line errors of an evaluation that cannot run: too many samples, nothing to score, no data named."""
    if max(args.num_samples, args.num_real or 0) > MAX_EVAL_SAMPLES:
        raise ConfigError(f"at most {MAX_EVAL_SAMPLES:,} samples per evaluation")
    if args.checkpoint is None and not (args.floors or args.sanity):
        raise ConfigError("give a checkpoint to evaluate, or --floors or --sanity to score only the real-data ladder")
    if args.checkpoint is None and args.data is None:
        raise ConfigError("without a checkpoint, say which data with --data")


def _image_shape(ckpt, data_name: str, image_size: int | None) -> tuple[int, int]:
    """(size, channels) the images are scored at: the checkpoint's; without one, --image-size or the
    dataset's own size and channels (64 and RGB for data the registry does not know)."""
    if ckpt:
        return ckpt.model_config.image_size, ckpt.model_config.channels
    spec = DATASETS.get(data_name)
    return image_size or (spec.default_size if spec else 64), spec.native_channels if spec else 3


def _join_ladder(report: EvalReport, ladder_report: EvalReport) -> EvalReport:
    """The generator's report with the sanity ladder's rows after its own; a per-class floor row of the
    report joins the ladder's floor row (the same test images), and the ladder's test count, rungs and
    skipped metrics join the protocol."""
    class_floor = next((r for r in report.rows if r["subject"] == FLOOR_SUBJECT), None)
    if class_floor is not None:
        report.rows.remove(class_floor)
        ladder_floor = next(r for r in ladder_report.rows if r["subject"] == FLOOR_SUBJECT)
        ladder_floor.update({k: v for k, v in class_floor.items() if k not in ("subject", "n")})
    report.rows.extend(ladder_report.rows)
    report.protocol.update({k: v for k, v in ladder_report.protocol.items() if k in ("num_test", "sanity", "skipped")})
    return report


def _score(args: argparse.Namespace, G, real, test, floor_test, extractor, metrics: list[str], classifier, full_floors: bool) -> EvalReport:
    """The report: `evaluate` scores the generator (with --floors alone also the floor and the noise ladder,
    else a conditional model's per-class floor from `floor_test`), and --sanity adds the sanity ladder."""
    cond = [m for m in metrics if METRICS[m].conditional]
    cache_dir = None if args.no_cache else default_cache_dir() / "reference"
    report: EvalReport | None = None
    if G is not None or not args.sanity:  # --sanity scores the floor and the noise rungs itself
        report = evaluate(
            G,
            real,
            extractor,
            metrics,
            num_samples=args.num_samples,
            num_real=args.num_real,
            classifier=classifier,
            seed=args.seed,
            test=test if full_floors else floor_test,
            ladder=LADDER_SIGMAS if full_floors else (),
            real_split=args.split,
            cache_dir=cache_dir,
            test_metrics=None if full_floors else cond,
        )
    if args.sanity:
        plain = [m for m in metrics if not METRICS[m].conditional]  # the degradations mix classes: no per-class scores
        ladder_report = sanity(
            real,
            test,
            extractor,
            plain,
            num=args.num_samples,
            num_real=args.num_real,
            classifier=classifier,
            seed=args.seed,
            real_split=args.split,
            cache_dir=cache_dir,
        )
        report = ladder_report if report is None else _join_ladder(report, ladder_report)
    assert report is not None  # evaluate ran, or --sanity did
    return report


def _print_per_class(report: EvalReport) -> None:
    """The class shares of each row that has them, and the per-class table with its notes."""
    for row in report.rows:
        if "class_shares" in row:
            shares = ", ".join(f"{k} {100 * v:.0f}%" for k, v in row["class_shares"].items())
            print(f"class shares ({row['subject']}): {shares}")
    classes = _class_table(report)
    if not classes:
        return
    per_class = report.protocol.get("num_real_per_class")
    print(
        "per class (samples asked for each class; accuracy: the evaluation classifier sees that class"
        + (
            "; the floor: real test images of the class, scored the same way"
            if any("class_counts" in r and r["subject"] == FLOOR_SUBJECT for r in report.rows)
            else ""
        )
        + "):"
    )
    print(classes)
    if per_class:
        low, high = min(per_class.values()), max(per_class.values())
        print(
            f"note: intra-FID compares each class's samples with that class's real images alone ({low if low == high else f'{low}-{high}'} "
            f"per class here); FID reads higher at such counts, so read it against the floor's"
        )


def _print_report(report: EvalReport, scored_generator: bool) -> None:
    """The report on screen: protocol, table (with FID as a multiple of the floor's), per-class scores,
    what was skipped, where the generator lies on the ladder, and a note when the test images are fewer."""
    print(report.protocol_line())
    shown = EvalReport(report.protocol, [dict(r) for r in report.rows])
    floor_ratio(shown.rows)  # on screen only: the JSON's generator row keeps the metrics alone
    print(shown.table())
    _print_per_class(report)
    for name, why in (report.protocol.get("skipped") or {}).items():
        print(f"skipped {name}: {why}")
    reading = _reading(shown)
    if reading:
        print(reading)
    num_test = report.protocol.get("num_test")
    if num_test is not None and scored_generator and num_test < report.protocol["num_generated"]:
        print(
            f"note: the floor and the rungs use the {num_test} test images there are, against {report.protocol['num_generated']} "
            f"samples; FID and KID read higher at smaller counts, so compare the generator with them at --num-samples {num_test}"
        )


def _write_report(report: EvalReport, json_path: str | None, ckpt, features: str) -> None:
    """The JSON report to --json, else (with a checkpoint) to RUN_DIR/eval/step_N-FEATURES.json; without
    either, nothing is written."""
    out = Path(json_path) if json_path else None
    if out is None and ckpt is not None:
        out = RunDir.of_checkpoint(ckpt.path).evaluation(ckpt.step, features)
    if out is not None:
        atomic_write_bytes(out, report_json(report).encode())
        print(f"report: {out}")


def _run_evaluate(args: argparse.Namespace) -> int:
    metrics = parse_metrics(args.metrics)
    explicit = args.metrics.strip() != "all"
    _check_request(args)
    device = str(_device(args.device))
    ckpt = load_checkpoint(args.checkpoint, device) if args.checkpoint else None
    metrics = _conditional_metrics(metrics, explicit, ckpt)
    data_name, data_dir = _data_source(ckpt, args)
    size, channels = _image_shape(ckpt, data_name, args.image_size)
    real = load_dataset(data_name, data_dir, image_size=size, channels=channels, split=args.split)
    ladder = args.floors or args.sanity
    test = load_dataset(data_name, data_dir, image_size=size, channels=channels, split="test") if ladder else None
    features, note = resolve_features(args.features, data_name, args.evaluator)
    if note:
        print(note)
    extractor = build_extractor(features, dataset=data_name, evaluator=args.evaluator, checkpoint=ckpt, device=device)
    metrics, classifier = _classifier_for_probs(metrics, explicit, extractor, data_name, args.evaluator, device)
    G = ckpt.build_generator(device, raw=args.raw_g) if ckpt else None
    full_floors = args.floors and not args.sanity  # evaluate scores the floor and the noise ladder (else sanity does)
    floor_test = None  # a conditional model's per-class floor: real test images of each class
    if any(METRICS[m].conditional for m in metrics) and not full_floors:
        floor_test, why = _held_out(data_name, data_dir, size, channels, real, test)
        if why:
            print(f"note: {why}")
    subjects = (["generator"] if G is not None else []) + (
        ["the sanity ladder"] if args.sanity else ["the floor", "the noise ladder"] if args.floors else []
    )
    print(f"scoring {' and '.join(subjects)} with {extractor.name} features against {data_name} {args.split} ...", flush=True)
    start = time.perf_counter()
    report = _score(args, G, real, test, floor_test, extractor, metrics, classifier, full_floors)
    if ckpt:
        report.protocol["checkpoint"] = str(ckpt.path)
        report.protocol["step"] = ckpt.step
    report.protocol["seconds"] = round(time.perf_counter() - start, 1)
    _print_report(report, G is not None)
    _write_report(report, args.json, ckpt, extractor.name)
    return 0


COMMANDS = {
    "evaluate": Command(
        "score a generator: FID, KID, precision/recall, density/coverage, classifier scores", EVALUATE_EXAMPLES, _add_evaluate_args, _run_evaluate
    )
}
