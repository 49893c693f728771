"""Images from folders and archives: find them, decode them robustly, resize them.

Any folder (searched recursively), `.zip`, `.tar`, `.tar.gz`/`.tgz` of jpg, jpeg,
png, bmp, gif (first frame), webp or tiff files. Every image is converted to the
channel count asked for and resized on its shorter side to the training size,
then centre-cropped (`PIL.ImageOps.fit` with the Lanczos filter, which
antialiases when shrinking and stays sharp when enlarging tiny images):

* grey, 1-bit and 16-bit images become 8-bit grey (16-bit values are divided by 257);
* palette images become RGB (RGBA when they carry transparency);
* transparent images (RGBA, LA, palette with transparency) are composited over white;
* CMYK, YCbCr, LAB and HSV images become RGB; RGB becomes grey with ITU-R 601 luma.

Files that cannot be decoded (truncated, empty, not an image, over the pixel
limit) are skipped and counted, never fatal one by one. Archive member names
are only used as labels, never as paths on disk.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import os
import tarfile
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, ImageFile, ImageOps

__all__ = [
    "IMAGE_EXTENSIONS",
    "MAX_PIXELS",
    "DecodeError",
    "decode_image",
    "ImageSource",
    "open_source",
    "is_archive",
    "DecodedImages",
    "decode_source",
]

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
MAX_PIXELS = 64_000_000  # refuse larger images before decoding them: a decompression-bomb guard
ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is a failure, not a half-grey picture


class DecodeError(Exception):
    """One file could not be turned into an image."""


def is_archive(path: str | os.PathLike) -> bool:
    name = str(path).lower()
    return name.endswith((".zip", ".tar", ".tar.gz", ".tgz"))


def _flatten_alpha(im: Image.Image) -> Image.Image:
    """Composite a transparent image over white: transparent pixels' hidden colours are often garbage."""
    rgba = im.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _to_8bit(im: Image.Image) -> Image.Image:
    """Bring any Pillow mode to L or RGB (8 bits per channel)."""
    mode = im.mode
    if mode in ("L", "RGB"):
        return im
    if mode.startswith("I") or mode == "F":
        arr = np.asarray(im).astype(np.float64)
        if mode.startswith("I;16") or (mode == "I" and arr.max(initial=0) > 255):
            arr = arr / 257.0  # 16-bit 0..65535 -> 0..255
        return Image.fromarray(np.clip(arr.round(), 0, 255).astype(np.uint8), mode="L")
    if mode == "1":
        return im.convert("L")
    if mode == "P":
        return _flatten_alpha(im) if "transparency" in im.info else im.convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        out = _flatten_alpha(im)
        return out.convert("L") if mode in ("LA", "La") else out
    return im.convert("RGB")  # CMYK, YCbCr, LAB, HSV, ...


def decode_image(data: bytes, size: int, channels: int, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode image bytes to a (channels, size, size) uint8 array; raise DecodeError when impossible."""
    if not data:
        raise DecodeError("empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit below decides
            im: Image.Image = Image.open(io.BytesIO(data))
        with im:
            width, height = im.size  # from the header: nothing decoded yet
            if width * height > max_pixels:
                raise DecodeError(f"{width}x{height} is over the {max_pixels:,}-pixel limit")
            if width < 1 or height < 1:
                raise DecodeError("image has no pixels")
            if im.format == "JPEG":
                # Let libjpeg decode at a reduced scale when the image is much larger than needed.
                im.draft("L" if channels == 1 else "RGB", (size, size))
            im.seek(0)  # first frame of a GIF or multi-page TIFF
            im.load()
            im = _to_8bit(im)
            im = im.convert("L" if channels == 1 else "RGB")
            im = ImageOps.fit(im, (size, size), method=Image.Resampling.LANCZOS, centering=(0.5, 0.5))
            arr = np.asarray(im, dtype=np.uint8)
    except DecodeError:
        raise
    except Image.DecompressionBombError as exc:
        raise DecodeError(f"refused as a decompression bomb ({exc})") from None
    except Image.UnidentifiedImageError:  # Pillow's message names its in-memory buffer object
        raise DecodeError("cannot identify the image format (not an image file Pillow can read)") from None
    except Exception as exc:  # Pillow raises many types for broken files; every one means "skip this file"
        raise DecodeError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1).copy()


# --------------------------------------------------------------------------- #
# Sources: a folder or an archive, listed once, read by member name
# --------------------------------------------------------------------------- #
def _has_image_extension(name: str) -> bool:
    return PurePosixPath(name).suffix.lower() in IMAGE_EXTENSIONS


@dataclass
class ImageSource:
    """The image files of a folder or archive, with their labels and the split chosen."""

    path: Path
    kind: str  # "folder", "zip" or "tar"
    names: list[str]  # member names (posix, relative), sorted, after split selection
    sizes: list[int]  # byte size of each member
    labels: list[int] | None  # class index per member, from the parent folder names
    classes: list[str] | None
    split_used: str | None  # "train"/"test" when the source had such top-level folders
    fingerprint: str  # identifies the source's content (archive: sha256 of its bytes; folder: names, sizes, mtimes)
    _reader: Callable[[str], bytes] | None = field(default=None, repr=False)
    random_access: bool = True  # any member read cheaply, so the source can stream; False for a compressed tar

    def __len__(self) -> int:
        return len(self.names)

    def read(self, name: str) -> bytes:
        """The bytes of one member (random access; slow for .tar.gz, fine for folders and zip)."""
        assert self._reader is not None, "a source opened without a reader overrides read (as LmdbSource does)"
        return self._reader(name)

    def iter_bytes(self) -> Iterator[tuple[int, bytes | Exception]]:
        """(index, bytes or the error reading it) for every member, in the fastest order for the format."""
        index = {n: i for i, n in enumerate(self.names)}
        if self.kind == "tar":
            with tarfile.open(self.path) as tar:
                for member in tar:  # one sequential pass: random access in a .tar.gz re-decompresses
                    i = index.get(_norm_member(member.name))
                    if i is None or not member.isfile():
                        continue
                    try:
                        f = tar.extractfile(member)
                        yield i, f.read() if f is not None else b""
                    except (OSError, tarfile.TarError, EOFError, zlib.error) as exc:
                        yield i, exc
            return
        for i, name in enumerate(self.names):
            try:
                yield i, self.read(name)
            except (OSError, zipfile.BadZipFile, zlib.error, EOFError, tarfile.TarError, KeyError) as exc:
                yield i, exc  # one damaged member is a file that failed, not the end of the run


def _split_and_labels(names: list[str], split: str) -> tuple[list[str], str | None, list[int] | None, list[str] | None]:
    """Pick the split's files when the source has top-level train/ and test/ folders; label by parent folder."""
    parts = [PurePosixPath(n).parts for n in names]
    # Allow one wrapping folder (an archive of "cifar/train/..." as well as "train/...").
    tops = {p[0] for p in parts if len(p) > 1}
    offset = 0
    if len(tops) == 1 and not {"train", "test"} & tops:
        offset = 1
    splits = {p[offset] for p in parts if len(p) > offset + 1}
    split_used = None
    if {"train", "test"} <= splits:
        split_used = split
        keep = [i for i, p in enumerate(parts) if len(p) > offset + 1 and p[offset] == split]
        names = [names[i] for i in keep]
        parts = [parts[i] for i in keep]
        offset += 1
    if parts and all(len(p) > offset + 1 for p in parts):
        classes = sorted({p[-2] for p in parts})
        lookup = {c: i for i, c in enumerate(classes)}
        return names, split_used, [lookup[p[-2]] for p in parts], classes
    return names, split_used, None, None


def _hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _norm_member(name: str) -> str:
    return name[2:] if name.startswith("./") else name


def _safe_member(name: str) -> bool:
    """Archive names with absolute paths or '..' are skipped; they are never used as paths anyway."""
    p = PurePosixPath(name)
    return not p.is_absolute() and ".." not in p.parts and not name.startswith("\\")


def _open_folder(path: Path, split: str) -> ImageSource:
    entries = []
    h = hashlib.sha256(b"folder-v1")
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for fname in sorted(files):
            full = Path(root) / fname
            if not _has_image_extension(fname):
                continue
            rel = full.relative_to(path).as_posix()
            try:
                st = full.stat()
                size, mtime = st.st_size, st.st_mtime_ns
            except OSError:
                size, mtime = -1, 0
            entries.append((rel, size))
            h.update(f"{rel}\0{size}\0{mtime}\n".encode())
    names = [e[0] for e in entries]
    sizes = dict(entries)
    names, split_used, labels, classes = _split_and_labels(names, split)

    def read(name: str) -> bytes:
        with open(path / name, "rb") as f:
            return f.read()

    return ImageSource(path, "folder", names, [sizes[n] for n in names], labels, classes, split_used, h.hexdigest(), read)


def _open_zip(path: Path, split: str) -> ImageSource:
    with zipfile.ZipFile(path) as zf:
        # (an empty name is skipped before ZipInfo.is_dir, which fails on it)
        infos = {
            i.filename: i.file_size
            for i in zf.infolist()
            if i.filename and _safe_member(i.filename) and not i.is_dir() and _has_image_extension(i.filename)
        }
    names, split_used, labels, classes = _split_and_labels(sorted(infos), split)
    handle: dict = {}

    def read_zip(name: str) -> bytes:
        # One ZipFile per process (DataLoader workers fork): opened lazily.
        key = os.getpid()
        if key not in handle:
            handle[key] = zipfile.ZipFile(path)
        return handle[key].read(name)

    return ImageSource(path, "zip", names, [infos[n] for n in names], labels, classes, split_used, _hash_file(path), read_zip)


def _open_tar(path: Path, split: str) -> ImageSource:
    # An uncompressed tar stores each member's bytes at a fixed offset: read them directly, like a zip.
    # Mode "r:" opens uncompressed archives only; a compressed one is read through its decompressor.
    try:
        tar, plain = tarfile.open(path, "r:"), True
    except tarfile.ReadError:
        tar, plain = tarfile.open(path), False
    with tar:
        infos, members, offsets = {}, {}, {}
        for m in tar.getmembers():
            name = _norm_member(m.name)
            if not (_safe_member(name) and _has_image_extension(name)):
                continue
            if m.isfile() and not m.issparse():
                infos[name], members[name], offsets[name] = m.size, m.name, m.offset_data
            else:  # a later link or folder of the same name shadows the file: it is not an image file
                infos.pop(name, None)
                members.pop(name, None)
                offsets.pop(name, None)
    names, split_used, labels, classes = _split_and_labels(sorted(infos), split)
    handle: dict = {}

    def read_plain_tar(name: str) -> bytes:
        # One file handle per process (DataLoader workers fork): opened lazily, then a seek and a read.
        key = os.getpid()
        if key not in handle:
            handle[key] = open(path, "rb")
        f = handle[key]
        f.seek(offsets[name])
        data = f.read(infos[name])
        if len(data) != infos[name]:
            raise OSError(f"{name} is cut short in the archive")
        return data

    def read_tar(name: str) -> bytes:
        # Look the member up by its name as stored ("./a.png"), not the normalised one, and never follow links.
        with tarfile.open(path) as tar:
            member = tar.getmember(members[name])
            if not member.isfile():
                raise OSError(f"{name} is not a regular file")
            f = tar.extractfile(member)
            return f.read() if f is not None else b""

    return ImageSource(
        path,
        "tar",
        names,
        [infos[n] for n in names],
        labels,
        classes,
        split_used,
        _hash_file(path),
        read_plain_tar if plain else read_tar,
        random_access=plain,
    )


# Archive readers by file-name ending (a folder is told by being one).
ARCHIVES: dict[tuple[str, ...], Callable[[Path, str], ImageSource]] = {(".zip",): _open_zip, (".tar", ".tar.gz", ".tgz"): _open_tar}


def open_source(path: str | os.PathLike, split: str = "train") -> ImageSource:
    """List the image files of a folder or archive. Raises FileNotFoundError / ValueError for the caller to word."""
    path = Path(path)
    if path.is_dir():
        return _open_folder(path, split)
    if not path.exists():
        raise FileNotFoundError(path)
    for endings, opener in ARCHIVES.items():
        if path.name.lower().endswith(endings):
            return opener(path, split)
    raise ValueError(f"{path} is neither a folder nor a .zip/.tar/.tar.gz archive")


@dataclass
class DecodedImages:
    """The result of decoding a whole source."""

    images: np.ndarray  # (N, C, size, size) uint8, the decodable images in source order
    labels: np.ndarray | None  # (N,) int64
    kept: list[int]  # source indices of the decoded images
    failures: list[tuple[str, str]]  # (member name, reason) of each skipped file
    total: int  # files considered


def decode_source(
    source: ImageSource, size: int, channels: int, workers: int | None = None, progress: Callable[[int], None] | None = None
) -> DecodedImages:
    """Decode every file of `source` with a thread pool (Pillow releases the GIL while decoding)."""
    n = len(source)
    out = np.zeros((n, channels, size, size), dtype=np.uint8)
    ok = np.zeros(n, dtype=bool)
    failures: list[tuple[str, str]] = []
    workers = workers or min(8, os.cpu_count() or 1)

    def work(item: tuple[int, bytes | Exception]) -> tuple[int, str | None]:
        i, data = item
        if isinstance(data, Exception):
            return i, f"cannot read: {data}"
        try:
            out[i] = decode_image(data, size, channels)
            return i, None
        except DecodeError as exc:
            return i, str(exc)

    items = source.iter_bytes()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        while True:
            # Executor.map would read every file up front: feed it bounded chunks instead.
            chunk = list(itertools.islice(items, 256))
            if not chunk:
                break
            for i, error in pool.map(work, chunk):
                if error is None:
                    ok[i] = True
                else:
                    failures.append((source.names[i], error))
            if progress is not None:
                progress(len(chunk))
    kept = np.flatnonzero(ok)
    labels = np.asarray(source.labels, dtype=np.int64)[kept] if source.labels is not None else None
    failures.sort()
    return DecodedImages(out[kept], labels, kept.tolist(), failures, n)
