"""Download the public datasets (MNIST, Fashion-MNIST, CIFAR-10) into a folder, verified.

Each downloadable dataset's entry in the dataset registry (`DATASETS`) holds a `DownloadSpec`: its files, the
public mirrors of each (tried in order) and a checksum per file. A download
goes to ``NAME.part`` beside its target, resumes with an HTTP ``Range`` request
after a dropped connection, is checked against its checksum and only then
renamed into place, so a file under its final name is always complete and
verified. Archives (CIFAR-10) are extracted with members checked for absolute
paths, ``..`` and links.

>>> download_dataset("mnist", "data/mnist")                       # doctest: +SKIP
>>> download_dataset("mnist", "data/mnist", base_url="http://mirror.local/mnist")  # doctest: +SKIP

Only the standard library talks HTTP (urllib), so a proxy set in the usual
``https_proxy``/``http_proxy`` variables is honoured.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from tqdm import tqdm

from .._version import __version__
from ..errors import DataError
from .registry import DATASETS

__all__ = [
    "Checksum",
    "ExtractedFile",
    "RemoteFile",
    "DownloadSpec",
    "DOWNLOADS",
    "download_dataset",
    "verify_files",
    "missing_files_message",
    "file_checksum",
    "extract_tar",
]

# (kind, hex digest). Kinds: "md5" and "sha256" of the file as stored,
# "sha256-uncompressed" of a gzip file's decompressed content.
Checksum = tuple[str, str]


@dataclass(frozen=True)
class ExtractedFile:
    """A file an archive is expected to produce, relative to the dataset root."""

    path: str  # POSIX separators, e.g. "cifar-10-batches-py/data_batch_1"
    checksum: Checksum | None = None  # None: its presence is enough


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset: where to get it and how to recognise it."""

    name: str  # file name in the dataset root
    urls: tuple[str, ...]  # mirrors, tried in order
    checksum: Checksum
    extracts: tuple[ExtractedFile, ...] = ()  # non-empty for an archive to unpack into the root

    def source(self) -> str:
        """The folder of the first mirror, for messages."""
        return self.urls[0].rsplit("/", 1)[0] + "/"


@dataclass(frozen=True)
class DownloadSpec:
    """A downloadable dataset: its registry name and files."""

    name: str
    description: str
    files: tuple[RemoteFile, ...]


def _mirrored(name: str, mirrors: tuple[str, ...], checksum: Checksum, extracts: tuple[ExtractedFile, ...] = ()) -> RemoteFile:
    return RemoteFile(name, tuple(mirror + name for mirror in mirrors), checksum, extracts)


def _mnist() -> DownloadSpec:
    # ossci first, as torchvision does now: yann.lecun.com often refuses or asks
    # for a login. The checksums are of the *uncompressed* content, because the
    # same bytes are served gzipped differently by different mirrors (and our
    # own shared copy of train-images was recompressed), while the IDX content
    # is what the loader reads and what must not change.
    mirrors = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
    files = (
        ("train-images-idx3-ubyte.gz", "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
        ("train-labels-idx1-ubyte.gz", "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
        ("t10k-images-idx3-ubyte.gz", "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
        ("t10k-labels-idx1-ubyte.gz", "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
    )
    return DownloadSpec(
        "mnist",
        "MNIST handwritten digits, the four IDX files",
        tuple(_mirrored(name, mirrors, ("sha256-uncompressed", digest)) for name, digest in files),
    )


def _fashion_mnist() -> DownloadSpec:
    # md5 of the .gz files as published by Zalando and listed in torchvision's FashionMNIST.resources.
    mirrors = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
    files = (
        ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
        ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
        ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
        ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
    )
    return DownloadSpec(
        "fashion-mnist", "Fashion-MNIST (Zalando), the four IDX files", tuple(_mirrored(name, mirrors, ("md5", digest)) for name, digest in files)
    )


def _cifar10() -> DownloadSpec:
    # md5s as in torchvision's CIFAR10 (tgz_md5, train_list, test_list, meta).
    # The extracted files carry their own checksums so that the dataset can be
    # verified (and used) after the 170 MB archive has been deleted.
    folder = "cifar-10-batches-py/"
    extracted = (
        ("data_batch_1", "c99cafc152244af753f735de768cd75f"),
        ("data_batch_2", "d4bba439e000b95fd0a9bffe97cbabec"),
        ("data_batch_3", "54ebc095f3ab1f0389bbae665268c751"),
        ("data_batch_4", "634d18415352ddfa80567beed471001a"),
        ("data_batch_5", "482c414d41f54cd18b22e5b47cb7c3cb"),
        ("test_batch", "40351d587109b95175f43aff81a1287e"),
        ("batches.meta", "5ff9c542aee3614f3951f8cda6e48888"),
    )
    archive = _mirrored(
        "cifar-10-python.tar.gz",
        ("https://www.cs.toronto.edu/~kriz/",),
        ("md5", "c58f30108f718f92721af3b95e74349a"),
        tuple(ExtractedFile(folder + name, ("md5", digest)) for name, digest in extracted),
    )
    return DownloadSpec("cifar10", "CIFAR-10, python version, unpacked into cifar-10-batches-py/", (archive,))


MNIST, FASHION_MNIST, CIFAR10 = _mnist(), _fashion_mnist(), _cifar10()  # registered with their datasets in builtin.py


class _Downloads(Mapping):
    """The downloadable datasets by name: a view of the dataset registry, which is the one place they are listed."""

    def _specs(self) -> dict[str, DownloadSpec]:
        return {name: spec.download for name, spec in DATASETS.items() if spec.download is not None}

    def __getitem__(self, name: str) -> DownloadSpec:
        return self._specs()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs())

    def __len__(self) -> int:
        return len(self._specs())


DOWNLOADS: Mapping[str, DownloadSpec] = _Downloads()


# --------------------------------------------------------------------------- #
# Checksums
# --------------------------------------------------------------------------- #
def file_checksum(path: str | os.PathLike, kind: str) -> str:
    """Hex digest of `path` for a checksum `kind` ("md5", "sha256", "sha256-uncompressed").

    Raises OSError, EOFError or zlib.error when the file (or, for
    "sha256-uncompressed", its gzip stream) cannot be read.
    """
    # kind -> (a new hash object, how to open the file for reading bytes)
    readers: dict[str, tuple[Callable[[], Any], Callable[..., Any]]] = {
        # usedforsecurity=False: md5 here identifies files, and FIPS builds refuse plain md5().
        "md5": (lambda: hashlib.md5(usedforsecurity=False), open),
        "sha256": (hashlib.sha256, open),
        "sha256-uncompressed": (hashlib.sha256, gzip.open),
    }
    if kind not in readers:
        raise ValueError(f"unknown checksum kind {kind!r}: use one of {', '.join(readers)}")
    new_hash, opener = readers[kind]
    digest = new_hash()
    with opener(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _checksum_problem(path: Path, checksum: Checksum | None) -> str | None:
    """None when `path` exists and matches `checksum`; otherwise why not, in a few words.

    The one place where files are verified: skipping, accepting a download and
    `verify_files` all go through here.
    """
    if not path.is_file():
        return "missing"
    if checksum is None:
        return None
    kind, expected = checksum
    try:
        actual = file_checksum(path, kind)
    except (OSError, EOFError, zlib.error) as exc:
        return f"unreadable ({_one_line(exc)})"
    if actual != expected.lower():
        return f"{kind} {actual}, expected {expected}"
    return None


def _extract_problems(root: Path, file: RemoteFile) -> list[str]:
    """The extracted outputs of archive `file` that are missing or invalid."""
    return [item.path for item in file.extracts if _checksum_problem(root / item.path, item.checksum) is not None]


def _needs_fetch(root: Path, file: RemoteFile) -> bool:
    """True when `file` must still come from the network (or be put in `root` by hand)."""
    if file.extracts and not _extract_problems(root, file):
        return False  # unpacked and verified: the archive itself is no longer needed
    return _checksum_problem(root / file.name, file.checksum) is not None


# --------------------------------------------------------------------------- #
# Public API
# --------------------------------------------------------------------------- #
def _spec(name: str) -> DownloadSpec:
    spec = DOWNLOADS.get(name)
    if spec is None:
        raise DataError(f"no download for {name!r}: use one of {', '.join(sorted(DOWNLOADS))}")
    return spec


def verify_files(name: str, root: str | os.PathLike) -> list[str]:
    """Names of the files of dataset `name` in `root` that are missing or fail their checksum.

    An empty list means the dataset is complete. For an archive, the extracted
    files are what counts: the archive is listed only when something extracted
    is missing and the archive cannot replace it.
    """
    spec, root = _spec(name), Path(root).expanduser()
    problems: list[str] = []
    for file in spec.files:
        if file.extracts:
            bad = _extract_problems(root, file)
            if bad and _checksum_problem(root / file.name, file.checksum) is not None:
                problems.append(file.name)
            problems.extend(bad)
        elif _checksum_problem(root / file.name, file.checksum) is not None:
            problems.append(file.name)
    return problems


def missing_files_message(name: str, root: str | os.PathLike) -> str:
    """One line for when dataset `name` is not in `root` and cannot be downloaded.

    Says which files are needed, where they come from, where to put them, and
    the command that fetches them where there is internet access.
    """
    spec, root = _spec(name), Path(root).expanduser()
    needed = [file for file in spec.files if _needs_fetch(root, file)] or list(spec.files)
    names = ", ".join(file.name for file in needed)
    them = "them" if len(needed) > 1 else "it"
    return (
        f"{name} needs {names} in {root}: run `dcgan data download {name} --root {root}` "
        f"on a machine with internet access, or download {them} from {needed[0].source()} "
        f"and put them in {root}"
    )


def download_dataset(
    name: str, root: str | os.PathLike, base_url: str | None = None, progress: bool = True, retries: int = 3, timeout: float = 30.0
) -> Path:
    """Download every missing or invalid file of dataset `name` into `root`; return `root`.

    Files already present and valid are skipped. `base_url` replaces the
    public mirrors: each file is fetched from ``base_url + "/" + file_name``
    (a local mirror, or a test server). `retries` attempts are made per mirror,
    each resuming the partial download where the server supports ranges;
    `timeout` is the socket timeout in seconds. `progress` shows a tqdm bar.

    Raises DataError (one line) when a download fails its checksum (nothing is
    kept), when every mirror fails (the message says how to get the files by
    hand), or when an archive holds unsafe members.
    """
    spec = _spec(name)
    if retries < 1:
        raise ValueError(f"retries must be at least 1, got {retries}")
    root = Path(root).expanduser()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create {root}: {_one_line(exc)}") from None
    for file in spec.files:
        target = root / file.name
        if file.extracts and not _extract_problems(root, file):
            print(f"{name}: {file.name} already extracted and verified in {root}, skipped")
            continue
        if _checksum_problem(target, file.checksum) is None:
            print(f"{name}: {file.name} already present and verified, skipped")
        else:
            urls = (base_url.rstrip("/") + "/" + file.name,) if base_url else file.urls
            _fetch(spec, file, urls, root, progress=progress, retries=retries, timeout=timeout)
        if file.extracts:
            _unpack(target, root, file)
    return root


# --------------------------------------------------------------------------- #
# HTTP
# --------------------------------------------------------------------------- #
def _one_line(value: object) -> str:
    return " ".join(str(value).split())


def _describe(exc: BaseException, timeout: float) -> str:
    """A short, one-line reason for a failed attempt."""
    reason = exc.reason if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError) else exc
    if isinstance(reason, TimeoutError):  # socket.timeout is TimeoutError since Python 3.10
        return f"timed out after {timeout:g} s"
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {_one_line(exc.reason)}"
    return _one_line(reason) or type(reason).__name__


def _backoff(attempt: int) -> float:
    """Seconds to wait before attempt `attempt + 1`: short, growing, capped."""
    return min(0.5 * 2 ** (attempt - 1), 8.0)


def _fetch(spec: DownloadSpec, file: RemoteFile, urls: tuple[str, ...], root: Path, *, progress: bool, retries: int, timeout: float) -> None:
    """Download `file` from the first of `urls` that works, verify it, and move it into place."""
    target = root / file.name
    part = target.with_name(target.name + ".part")
    failure = "no mirror"
    mismatch: str | None = None
    for url in urls:
        for attempt in range(1, retries + 1):
            print(f"{spec.name}: downloading {url}" + (f" (attempt {attempt} of {retries})" if attempt > 1 else ""))
            try:
                resumed = _transfer(url, part, label=file.name, progress=progress, timeout=timeout)
            except urllib.error.HTTPError as exc:
                failure = f"{url}: {_describe(exc, timeout)}"
                if exc.code == 416:
                    # Our .part is at least as long as the file: it is stale, start over.
                    part.unlink(missing_ok=True)
                elif 400 <= exc.code < 500 and exc.code not in (408, 429):
                    break  # not found / forbidden does not change on retry: next mirror
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                # URLError covers refused connections and DNS; OSError covers
                # timeouts and resets mid-transfer; HTTPException bad responses.
                failure = f"{url}: {_describe(exc, timeout)}"
            else:
                problem = _checksum_problem(part, file.checksum)
                if problem is None:
                    os.replace(part, target)  # atomic: the final name only ever holds a verified file
                    return
                part.unlink(missing_ok=True)
                if resumed:
                    # The kept .part may have come from another mirror or an older
                    # version of the file: try once more from scratch before blaming the source.
                    failure = f"{url}: checksum mismatch after resuming ({problem})"
                    continue
                mismatch = (
                    f"{file.name} downloaded from {url} does not match its checksum ({problem}); "
                    f"the download was deleted and nothing was kept in {root}"
                )
                break  # a bad file from one mirror: try the next one
            if attempt < retries:
                time.sleep(_backoff(attempt))
    if mismatch is not None:
        raise DataError(mismatch)
    raise DataError(f"could not download {file.name} ({failure}); {missing_files_message(spec.name, root)}")


def _content_range_start(response: http.client.HTTPResponse) -> int | None:
    """First byte of a 206 response ("Content-Range: bytes N-M/T"), or None if unparsable."""
    value = response.headers.get("Content-Range", "")
    unit, _, spec = value.strip().partition(" ")
    start = spec.split("-", 1)[0]
    return int(start) if unit == "bytes" and start.isdigit() else None


def _transfer(url: str, part: Path, *, label: str, progress: bool, timeout: float) -> bool:
    """Fetch `url` into `part`, continuing an existing `part` when the server allows it.

    Returns whether it resumed. Raises on any network problem, including a
    body shorter than its Content-Length (urllib returns that silently).
    """
    offset = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": f"dcgan/{__version__} (+urllib)"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        status = getattr(response, "status", None)
        resumed = bool(offset) and status == 206
        if resumed and _content_range_start(response) != offset:
            part.unlink(missing_ok=True)  # a range we did not ask for: appending would corrupt the file
            raise ConnectionError(f"server answered range {response.headers.get('Content-Range')!r} for bytes={offset}-")
        if not resumed:
            offset = 0  # 200 to a Range request: the server sends the whole file, start over
        length = response.headers.get("Content-Length", "")
        total = offset + int(length) if length.isdigit() else None
        with (
            open(part, "ab" if resumed else "wb") as out,
            tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024, desc=label, disable=not progress, leave=False) as bar,
        ):
            for block in iter(lambda: response.read(1 << 16), b""):
                out.write(block)
                bar.update(len(block))
            out.flush()
            os.fsync(out.fileno())  # the rename that follows must not outrun the data on a crash
        size = part.stat().st_size
        if total is not None and size != total:
            raise ConnectionError(f"connection closed after {size} of {total} bytes")
    return resumed


# --------------------------------------------------------------------------- #
# Archives
# --------------------------------------------------------------------------- #
def _member_problem(member: tarfile.TarInfo) -> str | None:
    """Why extracting `member` would be unsafe, or None."""
    name = member.name
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or name.startswith(("/", "\\")):
        return "has an absolute path"
    if ".." in posix.parts or ".." in windows.parts:
        return "points outside the destination (..)"
    if member.issym() or member.islnk():
        return "is a link"
    if not (member.isfile() or member.isdir()):
        return "is a device or other special file"
    return None


def extract_tar(archive: str | os.PathLike, dest: str | os.PathLike) -> list[Path]:
    """Extract tar `archive` (any compression) into `dest` safely; return the files written.

    Refuses the whole archive (DataError, nothing written) if any member has
    an absolute path, a ``..`` component, or is a link or special file. Files
    are unpacked into a temporary folder inside `dest` and then renamed into
    place one by one, so no half-written file ever appears under its final name.
    """
    archive, dest = Path(archive), Path(dest)
    written: list[Path] = []
    try:
        dest.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                problem = _member_problem(member)
                if problem is not None:
                    raise DataError(f"refusing to extract {archive}: member {member.name!r} {problem}")
            staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest))
            try:
                # Our own check above is the guard on every Python; the "data"
                # filter (3.10.12+, 3.11.4+) adds its checks where it exists.
                if hasattr(tarfile, "data_filter"):
                    tar.extractall(staging, members=members, filter="data")
                else:
                    tar.extractall(staging, members=members)
                files = {PurePosixPath(m.name).parts: m for m in members if m.isfile()}  # later duplicates win, as in tar
                for parts in files:
                    final = dest.joinpath(*parts)
                    final.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(staging.joinpath(*parts), final)
                    written.append(final)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise DataError(f"cannot extract {archive}: {_one_line(exc)}") from None
    return written


def _unpack(archive: Path, root: Path, file: RemoteFile) -> None:
    """Extract a verified archive into `root` unless its outputs are already there and valid."""
    if not _extract_problems(root, file):
        return
    print(f"extracting {archive.name} into {root}")
    extract_tar(archive, root)
    bad = _extract_problems(root, file)
    if bad:
        raise DataError(f"{archive} did not produce valid {', '.join(bad)}; delete it and download again")
