"""`dcgan data check` (a pre-flight check of a dataset) and `dcgan data download`."""

from __future__ import annotations

import argparse

from ..datacheck import check_dataset
from ..download import DOWNLOADS, download_dataset
from ..errors import ConfigError
from ..models import SUPPORTED_SIZES
from .common import EXIT_USER_ERROR, Command, _help_formatter, _Parser, _positive_int

DATA_EXAMPLES = """examples:
  dcgan data check ~/photos --image-size 64          # every file: formats, sizes, duplicates, failures
  dcgan data check ../shared/data/cifar10-jpg/CIFAR-10-images-jpg.tar.gz --image-size 32
  dcgan data check mnist --data-dir ../shared/data/mnist
  dcgan data download mnist --root data/mnist        # then: dcgan train --data mnist --data-dir data/mnist
"""


def _add_data_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="data_command", metavar="ACTION", parser_class=_Parser, required=True)
    check = sub.add_parser("check", help="pre-flight check of a dataset (name, folder or archive)", epilog=DATA_EXAMPLES,
                           description="Report what a dataset holds and what training will do with it.", formatter_class=_help_formatter)
    check.add_argument("data", metavar="NAME_OR_PATH")
    check.add_argument("--data-dir", default=None, metavar="DIR", help="folder with a named dataset's files")
    check.add_argument("--image-size", type=int, default=None, metavar="N", help="training size to check for (default: the dataset's, 64 for folders)")
    check.add_argument("--channels", type=int, choices=(1, 3), default=None)
    check.add_argument("--split", choices=("train", "test"), default="train")
    check.add_argument("--sample", type=_positive_int, default=None, metavar="N", help="check a random sample of N files only")
    download = sub.add_parser("download", help="download a dataset from its canonical location, with checksums", epilog=DATA_EXAMPLES,
                              description="Download and verify a dataset's files (resumes partial downloads).", formatter_class=_help_formatter)
    download.add_argument("name", choices=sorted(DOWNLOADS))
    download.add_argument("--root", required=True, metavar="DIR", help="folder to put the files in")
    download.add_argument("--base-url", default=None, metavar="URL", help="fetch from this mirror instead (URL/FILENAME)")


def _run_data(args: argparse.Namespace) -> int:
    if args.data_command == "download":
        root = download_dataset(args.name, args.root, base_url=args.base_url)
        print(f"{args.name} is ready in {root}: dcgan train --data {args.name} --data-dir {root}")
        return 0
    if args.image_size is not None and args.image_size not in SUPPORTED_SIZES:
        raise ConfigError(f"unsupported image size {args.image_size}: use one of {', '.join(map(str, SUPPORTED_SIZES))}")
    report = check_dataset(args.data, args.data_dir, args.image_size, args.channels, args.split, args.sample)
    print(report.text())
    return 0 if report.usable and report.total else EXIT_USER_ERROR


COMMANDS = {
    "data": Command("check a dataset before training, or download one", DATA_EXAMPLES, _add_data_args, _run_data),
}
