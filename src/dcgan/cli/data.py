"""`dcgan data check` (a pre-flight check of a dataset), `dcgan data shard` (write WebDataset shards) and `dcgan data download`."""

from __future__ import annotations

import argparse

from ..data.check import check_dataset
from ..data.download import DOWNLOADS, download_dataset
from ..data.shard_writer import shard_pattern, write_shards
from ..errors import ConfigError
from ..models import SUPPORTED_SIZES
from .common import EXIT_USER_ERROR, Command, _help_formatter, _Parser, _positive_int, add_data_dir, add_seed

DATA_EXAMPLES = """examples:
  dcgan data check ~/photos --image-size 64          # every file: formats, sizes, duplicates, failures
  dcgan data check ../shared/data/cifar10-jpg/CIFAR-10-images-jpg.tar.gz --image-size 32
  dcgan data check mnist --data-dir ../shared/data/mnist
  dcgan data shard ~/photos shards/photos --shard-size 5000   # then: dcgan train --data shards/photos
  dcgan data check 'shards/photos/train-{000000..000039}.tar' # every sample of every shard
  dcgan data download mnist --root data/mnist        # then: dcgan train --data mnist --data-dir data/mnist
"""


def _add_data_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="data_command", metavar="ACTION", parser_class=_Parser, required=True)
    check = sub.add_parser(
        "check",
        help="pre-flight check of a dataset (name, folder, archive, lmdb or shards)",
        epilog=DATA_EXAMPLES,
        description="Report what a dataset holds and what training will do with it.",
        formatter_class=_help_formatter,
    )
    check.add_argument("data", metavar="NAME_OR_PATH")
    add_data_dir(check)
    check.add_argument(
        "--image-size", type=int, default=None, metavar="N", help="training size to check for (default: the dataset's, 64 for folders)"
    )
    check.add_argument("--channels", type=int, choices=(1, 3), default=None)
    check.add_argument("--split", choices=("train", "test"), default="train")
    check.add_argument("--sample", type=_positive_int, default=None, metavar="N", help="check a random sample of N files only")
    shard = sub.add_parser(
        "shard",
        help="write a dataset as WebDataset tar shards with an index (shards.json)",
        epilog=DATA_EXAMPLES,
        description="Write any dataset dcgan reads (a name, folder, archive or LSUN lmdb) as shuffled WebDataset "
        "shards OUT/SPLIT-000000.tar, ... and OUT/shards.json. Files keep their bytes; "
        "pixel datasets (MNIST, CIFAR-10) become lossless PNG.",
        formatter_class=_help_formatter,
    )
    shard.add_argument("src", metavar="SRC", help="dataset name, folder, archive or LSUN lmdb")
    shard.add_argument("out", metavar="OUT", help="new (or empty) folder for the shards")
    shard.add_argument("--shard-size", type=_positive_int, default=10_000, metavar="N", help="samples per shard (default: %(default)s)")
    shard.add_argument("--split", choices=("train", "test"), default="train", help="which split of SRC to write (default: %(default)s)")
    add_data_dir(shard)
    add_seed(shard, "the shuffle before the data is cut into shards")
    shard.add_argument("--no-shuffle", action="store_true", help="keep SRC's order (shards then hold runs of one class)")
    download = sub.add_parser(
        "download",
        help="download a dataset from its canonical location, with checksums",
        epilog=DATA_EXAMPLES,
        description="Download and verify a dataset's files (resumes partial downloads).",
        formatter_class=_help_formatter,
    )
    download.add_argument("name", choices=sorted(DOWNLOADS))
    download.add_argument("--root", required=True, metavar="DIR", help="folder to put the files in")
    download.add_argument("--base-url", default=None, metavar="URL", help="fetch from this mirror instead (URL/FILENAME)")


def _run_shard(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    with tqdm(desc=f"writing shards of {args.src}", unit="img", mininterval=0.5, disable=None) as bar:
        index = write_shards(
            args.src,
            args.out,
            args.shard_size,
            split=args.split,
            data_dir=args.data_dir,
            seed=args.seed,
            shuffle=not args.no_shuffle,
            progress=bar.update,
        )
    total = sum(s["nsamples"] for s in index["shardlist"])
    skipped = index["dcgan"]["skipped"]
    classes = index["dcgan"]["classes"]
    print(
        f"wrote {total} images in {len(index['shardlist'])} shard(s) to {args.out}"
        + (f", with {len(classes)} classes" if classes else "")
        + (f"; left out {skipped} file(s) that are not images" if skipped else "")
    )
    print(f"train on them:  dcgan train --data {args.out}   (or --data '{shard_pattern(args.out, index)}')")
    return 0


def _run_data(args: argparse.Namespace) -> int:
    if args.data_command == "shard":
        return _run_shard(args)
    if args.data_command == "download":
        root = download_dataset(args.name, args.root, base_url=args.base_url)
        print(f"{args.name} is ready in {root}: dcgan train --data {args.name} --data-dir {root}")
        return 0
    if args.image_size is not None and args.image_size not in SUPPORTED_SIZES:
        raise ConfigError(f"unsupported image size {args.image_size}: use one of {', '.join(map(str, SUPPORTED_SIZES))}")
    report = check_dataset(args.data, args.data_dir, args.image_size, args.channels, args.split, args.sample)
    print(report.text())
    return 0 if report.usable and report.total else EXIT_USER_ERROR


COMMANDS = {"data": Command("check a dataset before training, or download one", DATA_EXAMPLES, _add_data_args, _run_data)}
