"""LSUN lmdb databases as a data source: `--data path/to/bedroom_train_lmdb`.

The official LSUN downloads are one lmdb per category and split: a directory holding
`data.mdb` (and `lock.mdb`), whose keys are image ids (bytes) and whose values are the
encoded image bytes (WebP in the 2015 release, JPEG in others). An lmdb is unlabelled:
the category is the whole database.

`open_lmdb` lists the keys once (a cursor pass over the keys and value lengths; no
image is read) and returns an `LmdbSource`, an `ImageSource` whose members are the
keys, so everything that reads folders and zips reads it too: `decode_image` (same
resize, crop and channel rules), the streamed `StreamDataset` fed in (seed, epoch)
order by the DataFeed's DataLoader, and `dcgan data check`. The lmdb environment is
opened lazily in each process, since lmdb handles must not cross a fork into the
DataLoader workers.

Needs the `lmdb` package: pip install 'dcgan[lsun]'.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DataError, first_line
from .imagefiles import ImageSource

__all__ = ["LmdbSource", "looks_like_lmdb", "open_lmdb", "environment", "close_environments", "LMDB_INSTALL_HINT"]

LMDB_INSTALL_HINT = "pip install 'dcgan[lsun]'"
LMDB_NAME_SUFFIXES = ("_lmdb", ".lmdb")  # how LSUN names its databases: bedroom_train_lmdb
FINGERPRINT_VALUES = 16  # values hashed into the fingerprint, evenly spaced over the keys
PROBE_VALUES = 8  # leading values looked at to tell an lmdb of images from any other lmdb


def looks_like_lmdb(path: str | os.PathLike) -> bool:
    """True for a directory holding data.mdb, a data.mdb file, or a path named like LSUN's (`*_lmdb`, `*.lmdb`).

    The last case also catches a wrong path meant as an lmdb, so `open_lmdb` can say what is missing.
    """
    p = Path(path)
    if p.name == "data.mdb" or (p.is_dir() and (p / "data.mdb").is_file()):
        return True
    return str(path).rstrip("/\\").lower().endswith(LMDB_NAME_SUFFIXES)


def _import_lmdb():
    try:
        import lmdb
    except ImportError:
        raise DataError(f"reading an LSUN lmdb needs the lmdb package: {LMDB_INSTALL_HINT}") from None
    return lmdb


def _open_env(root: Path):
    # As the PyTorch example reads LSUN: read-only, no lock file (the database may sit on a
    # read-only disk), no readahead (random access over a file far larger than memory).
    return _import_lmdb().open(str(root), max_readers=1, readonly=True, lock=False, readahead=False, meminit=False)


# One environment per lmdb per process, shared by every source reading it: py-lmdb refuses to open
# the same files twice in a process. root -> (pid that opened it, environment, data.mdb identity);
# the environment is an lmdb.Environment, Any as py-lmdb ships no types.
_ENVIRONMENTS: dict[str, tuple[int, Any, tuple]] = {}


def _identity(root: Path) -> tuple:
    st = os.stat(root / "data.mdb")
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def environment(root: Path):
    """This process's read-only environment of the lmdb at `root`, opened on first use.

    DataLoader workers are forked, and an lmdb handle must not be used across a fork: a handle
    inherited from the parent is closed (the child's copy only) and the child opens its own. A
    database changed on disk since it was opened is reopened.
    """
    key, pid, identity = os.path.realpath(root), os.getpid(), _identity(root)
    entry = _ENVIRONMENTS.get(key)
    if entry is not None:
        if entry[0] == pid and entry[2] == identity:
            return entry[1]
        del _ENVIRONMENTS[key]
        entry[1].close()
    env = _open_env(root)
    _ENVIRONMENTS[key] = (pid, env, identity)
    return env


def close_environments() -> None:
    """Close this process's lmdb handles (they reopen on the next read), e.g. before writing to a database."""
    pid = os.getpid()
    for key, (owner, env, _) in list(_ENVIRONMENTS.items()):
        del _ENVIRONMENTS[key]
        if owner == pid:
            env.close()


@dataclass
class LmdbSource(ImageSource):
    """The entries of an lmdb as an `ImageSource`: names are the keys (decoded as Latin-1, which round-trips
    every byte and keeps lmdb's byte order), sizes the value lengths; no labels. It holds no handle, so it
    pickles (spawned DataLoader workers) and forks (each process opens its own, see `environment`)."""

    def read(self, name: str) -> bytes:
        lmdb = _import_lmdb()
        try:
            with environment(self.path).begin(write=False) as txn:
                value = txn.get(name.encode("latin-1"))
        except lmdb.Error as exc:  # as OSError: a read that failed, which the readers skip and count
            raise OSError(f"cannot read key {name!r}: {first_line(exc)}") from None
        if value is None:
            raise OSError(f"key {name!r} is no longer in the lmdb")
        return value

    def iter_bytes(self) -> Iterator[tuple[int, bytes | Exception]]:
        """Every entry in one cursor pass (key order), the fastest way through an lmdb."""
        index = {n: i for i, n in enumerate(self.names)}
        with environment(self.path).begin(write=False) as txn:
            for key, value in txn.cursor():
                i = index.get(bytes(key).decode("latin-1"))
                if i is not None:
                    yield i, bytes(value)


def _root_of(path: Path) -> Path:
    """The lmdb directory for a path given as the directory or its data.mdb; DataError when it is neither."""
    if path.name == "data.mdb" and path.is_file():
        return path.parent
    if not path.exists():
        raise DataError(f"{path} does not exist")
    if not path.is_dir() or not (path / "data.mdb").is_file():
        raise DataError(f"{path} is not an lmdb: an LSUN lmdb is a directory holding data.mdb (e.g. bedroom_train_lmdb/)")
    return path


def _probe_images(txn, keys: list[bytes], root: Path) -> None:
    """Raise DataError when none of the first values opens as an image: an lmdb, but not of images."""
    from PIL import Image

    reason = ""
    for key in keys[:PROBE_VALUES]:
        value = txn.get(key)
        try:
            with Image.open(io.BytesIO(bytes(value or b""))):
                return  # one readable header is enough here; undecodable entries are counted later
        except Exception:
            reason = reason or f"the value of key {key.decode('latin-1')!r} is not an image Pillow can read"
    raise DataError(f"{root} is an lmdb but not of images ({reason}); LSUN lmdbs hold WebP or JPEG bytes")


def open_lmdb(path: str | os.PathLike) -> LmdbSource:
    """List an LSUN-style lmdb: its keys, value lengths and a fingerprint. DataError in one line when it cannot.

    The fingerprint covers every key and value length, the number of entries, and the bytes of
    `FINGERPRINT_VALUES` values spread evenly over the keys; it does not depend on file times, so a
    copied database still resumes its runs.

    >>> source = open_lmdb("data/bedroom_train_lmdb")   # doctest: +SKIP
    >>> len(source)                                     # doctest: +SKIP
    3033042
    """
    lmdb = _import_lmdb()
    root = _root_of(Path(path))
    h = hashlib.sha256(b"lmdb-v1")
    try:
        env = environment(root)
    except lmdb.Error as exc:
        raise DataError(f"cannot open {root} as an lmdb: {first_line(exc)}") from None
    try:
        # buffers=True: values come as views of the memory map, so their lengths cost no read of the images.
        with env.begin(write=False, buffers=True) as txn:
            keys, sizes = [], []
            for key, value in txn.cursor():
                keys.append(bytes(key))
                sizes.append(len(value))
            for start in range(0, len(keys), 65536):  # hashed in chunks: one update per entry is slow
                h.update(b"".join(b"%s\0%d\n" % pair for pair in zip(keys[start : start + 65536], sizes[start : start + 65536])))
            if not keys:
                raise DataError(f"{root} is an empty lmdb (no entries)")
            _probe_images(txn, keys, root)
            step = max(1, len(keys) // FINGERPRINT_VALUES)
            for key in keys[::step][:FINGERPRINT_VALUES]:
                h.update(hashlib.sha256(bytes(txn.get(key))).digest())
    except lmdb.Error as exc:
        raise DataError(f"cannot read {root} as an lmdb: {first_line(exc)}") from None
    h.update(str(len(keys)).encode())
    names = [k.decode("latin-1") for k in keys]
    return LmdbSource(root, "lmdb", names, sizes, None, None, None, h.hexdigest())
