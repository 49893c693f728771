"""dcgan.download against a local HTTP server on 127.0.0.1 (never the internet).

The server serves the real MNIST files from the shared data folder and can drop
a connection part-way, ignore Range, corrupt a file or answer 404, so resume,
verification and error messages are tested on real bytes.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import os
import re
import shutil
import socket
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from dcgan.data import DATASETS, download
from dcgan.data.download import DOWNLOADS, download_dataset, extract_tar, file_checksum, missing_files_message, verify_files
from dcgan.errors import DataError

SHARED_DATA = Path(os.environ.get("DCGAN_SHARED_DATA", Path(__file__).resolve().parents[2].parent / "shared" / "data"))
MNIST_FILES = [file.name for file in DOWNLOADS["mnist"].files]


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    """Retry at once: the waits are for real servers, and the tests must stay fast."""
    monkeypatch.setattr(download, "_backoff", lambda attempt: 0.0)


@pytest.fixture(scope="module")
def shared_mnist() -> Path:
    path = SHARED_DATA / "mnist"
    if not all((path / name).is_file() for name in MNIST_FILES):
        pytest.skip(f"MNIST not found in {path}")
    return path


class Server:
    """State of the test server: what it serves, what it saw, which faults to inject."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.requests: list[tuple[str, str | None]] = []  # (file name, Range header)
        self.drop_after: dict[str, int] = {}  # name -> bytes sent before dropping, first request only
        self.ignore_range: set[str] = set()  # answer 200 with the whole file even to a Range request
        self.corrupt: set[str] = set()  # serve with one byte flipped
        self.missing: set[str] = set()  # answer 404
        self.url = ""
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def requests_for(self, name: str) -> list[str | None]:
        return [rng for requested, rng in self.requests if requested == name]

    def handler(self) -> type[BaseHTTPRequestHandler]:
        state = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                name = unquote(urlsplit(self.path).path).lstrip("/")
                rng = self.headers.get("Range")
                with state._lock:
                    state.requests.append((name, rng))
                    first = name not in state._seen
                    state._seen.add(name)
                path = state.folder / name
                if name in state.missing or "/" in name or not path.is_file():
                    self.send_error(404)
                    return
                data = bytearray(path.read_bytes())
                if name in state.corrupt:
                    data[len(data) // 2] ^= 0xFF
                start = 0
                if rng and name not in state.ignore_range:
                    match = re.fullmatch(r"bytes=(\d+)-", rng)
                    assert match, f"unexpected Range {rng!r}"
                    start = int(match.group(1))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = bytes(data[start:])
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                cut = state.drop_after.get(name) if first else None
                if cut is not None:
                    # Promise the whole body, send part of it, hang up: a dropped connection.
                    self.wfile.write(body[:cut])
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, format, *args):  # keep pytest output clean
                pass

        return Handler


@pytest.fixture
def server(tmp_path):
    """A ThreadingHTTPServer on 127.0.0.1:<free port> serving tmp_path/'served'."""
    folder = tmp_path / "served"
    folder.mkdir()
    state = Server(folder)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), state.handler())
    httpd.daemon_threads = True
    # A short poll interval so that shutdown() returns at once rather than after 0.5 s.
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="test-http", daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def mnist_server(server, shared_mnist):
    for name in MNIST_FILES:
        try:
            os.symlink(shared_mnist / name, server.folder / name)
        except OSError:  # no symlinks here (some Windows set-ups): copy instead
            shutil.copyfile(shared_mnist / name, server.folder / name)
    return server


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part") or p.name.startswith(".extract-"))


# --------------------------------------------------------------------------- #
# The registry and the checksums themselves
# --------------------------------------------------------------------------- #
def test_registry_is_well_formed():
    assert set(DOWNLOADS) == {"mnist", "fashion-mnist", "cifar10"}
    mnist = DOWNLOADS["mnist"].files
    assert [f.name for f in mnist] == [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ]
    assert mnist[0].urls[0].startswith("https://ossci-datasets.s3.amazonaws.com/mnist/")
    assert mnist[0].urls[1].startswith("http://yann.lecun.com/exdb/mnist/")
    assert {f.checksum[0] for f in mnist} == {"sha256-uncompressed"}
    assert {f.checksum[0] for f in DOWNLOADS["fashion-mnist"].files} == {"md5"}
    (cifar,) = DOWNLOADS["cifar10"].files
    assert cifar.checksum == ("md5", "c58f30108f718f92721af3b95e74349a")
    assert "cifar-10-batches-py/data_batch_1" in [e.path for e in cifar.extracts]
    for spec in DOWNLOADS.values():
        for file in spec.files:
            assert all(url.endswith("/" + file.name) for url in file.urls)
            assert len(file.checksum[1]) in (32, 64) and int(file.checksum[1], 16) >= 0


def test_mnist_checksums_match_the_real_files(shared_mnist):
    """The uncompressed sha256 values in the registry are those of the real MNIST."""
    assert verify_files("mnist", shared_mnist) == []
    # Cross-check with the value published in the shared data README.
    assert file_checksum(shared_mnist / "train-images-idx3-ubyte.gz", "sha256-uncompressed") == (
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"
    )


def test_unknown_dataset_and_checksum_kind(tmp_path):
    with pytest.raises(DataError, match="no download for 'imagenet'"):
        download_dataset("imagenet", tmp_path)
    with pytest.raises(ValueError, match="unknown checksum kind"):
        file_checksum(__file__, "crc32")


# --------------------------------------------------------------------------- #
# Downloads from the local server
# --------------------------------------------------------------------------- #
def test_full_download_then_second_call_skips(mnist_server, shared_mnist, tmp_path, capsys):
    out = tmp_path / "new" / "mnist"  # created on the way
    assert verify_files("mnist", out) == MNIST_FILES
    assert download_dataset("mnist", out, base_url=mnist_server.url + "/", progress=False) == out
    for name in MNIST_FILES:
        assert (out / name).read_bytes() == (shared_mnist / name).read_bytes()
    assert sorted(p.name for p in out.iterdir()) == sorted(MNIST_FILES)  # no .part left
    assert verify_files("mnist", out) == []
    assert [name for name, _ in mnist_server.requests] == MNIST_FILES

    capsys.readouterr()
    download_dataset("mnist", out, base_url=mnist_server.url, progress=False)
    assert len(mnist_server.requests) == len(MNIST_FILES)  # nothing requested the second time
    assert capsys.readouterr().out.count("already present and verified") == len(MNIST_FILES)


def test_resume_after_dropped_connection(mnist_server, shared_mnist, tmp_path):
    name = "train-images-idx3-ubyte.gz"
    mnist_server.drop_after[name] = 1_000_000
    download_dataset("mnist", tmp_path / "out", base_url=mnist_server.url, progress=True)  # the bar copes with resuming
    assert mnist_server.requests_for(name) == [None, "bytes=1000000-"]
    assert (tmp_path / "out" / name).read_bytes() == (shared_mnist / name).read_bytes()
    assert _leftovers(tmp_path / "out") == []


def test_server_without_ranges_starts_over(mnist_server, shared_mnist, tmp_path):
    name = "t10k-images-idx3-ubyte.gz"
    mnist_server.drop_after[name] = 300_000
    mnist_server.ignore_range.add(name)  # answers 200 with the whole file: appending would corrupt it
    download_dataset("mnist", tmp_path / "out", base_url=mnist_server.url, progress=False)
    assert mnist_server.requests_for(name) == [None, "bytes=300000-"]
    assert (tmp_path / "out" / name).read_bytes() == (shared_mnist / name).read_bytes()


def test_stale_part_file_is_resumed(mnist_server, shared_mnist, tmp_path):
    """A .part left by an interrupted earlier run is continued, not thrown away."""
    name = "train-labels-idx1-ubyte.gz"
    out = tmp_path / "out"
    out.mkdir()
    (out / (name + ".part")).write_bytes((shared_mnist / name).read_bytes()[:10_000])
    download_dataset("mnist", out, base_url=mnist_server.url, progress=False)
    assert mnist_server.requests_for(name) == ["bytes=10000-"]
    assert verify_files("mnist", out) == [] and _leftovers(out) == []


def test_mirrors_are_tried_in_order(mnist_server, shared_mnist, tmp_path, monkeypatch):
    spec = DOWNLOADS["mnist"]
    files = tuple(dataclasses.replace(f, urls=(f"{mnist_server.url}/gone/{f.name}", f"{mnist_server.url}/{f.name}")) for f in spec.files)
    monkeypatch.setitem(DATASETS, "mnist", dataclasses.replace(DATASETS["mnist"], download=dataclasses.replace(spec, files=files)))
    download_dataset("mnist", tmp_path / "out", progress=False)  # no base_url: the spec's mirrors
    assert [name for name, _ in mnist_server.requests][:2] == ["gone/train-images-idx3-ubyte.gz", "train-images-idx3-ubyte.gz"]
    assert verify_files("mnist", tmp_path / "out") == []


def test_corrupted_download_is_rejected_and_nothing_is_kept(mnist_server, tmp_path):
    name = "train-labels-idx1-ubyte.gz"
    mnist_server.corrupt.add(name)
    out = tmp_path / "out"
    with pytest.raises(DataError, match="does not match its checksum") as err:
        download_dataset("mnist", out, base_url=mnist_server.url, progress=False)
    assert name in str(err.value) and "\n" not in str(err.value)
    assert not (out / name).exists() and not (out / (name + ".part")).exists()
    assert (out / "train-images-idx3-ubyte.gz").exists()  # the file before it was fine and is kept
    assert _leftovers(out) == []


def test_invalid_existing_file_is_replaced(mnist_server, shared_mnist, tmp_path):
    name = "t10k-labels-idx1-ubyte.gz"
    out = tmp_path / "out"
    out.mkdir()
    (out / name).write_bytes(gzip.compress(b"not the labels"))
    assert verify_files("mnist", out) == MNIST_FILES
    download_dataset("mnist", out, base_url=mnist_server.url, progress=False)
    assert (out / name).read_bytes() == (shared_mnist / name).read_bytes()


def test_valid_existing_file_is_kept(mnist_server, shared_mnist, tmp_path):
    name = "train-labels-idx1-ubyte.gz"
    out = tmp_path / "out"
    out.mkdir()
    shutil.copyfile(shared_mnist / name, out / name)
    before = (out / name).stat()
    download_dataset("mnist", out, base_url=mnist_server.url, progress=False)
    after = (out / name).stat()
    assert mnist_server.requests_for(name) == []
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert verify_files("mnist", out) == []


def test_404_is_one_clear_line(mnist_server, tmp_path):
    name = "t10k-labels-idx1-ubyte.gz"
    mnist_server.missing.add(name)
    out = tmp_path / "out"
    with pytest.raises(DataError) as err:
        download_dataset("mnist", out, base_url=mnist_server.url, progress=False)
    message = str(err.value)
    assert "HTTP 404" in message and f"needs {name} in {out}" in message
    assert f"dcgan data download mnist --root {out}" in message and "\n" not in message
    assert mnist_server.requests_for(name) == [None]  # a 404 is not retried
    assert not (out / name).exists() and _leftovers(out) == []


def test_connection_refused_says_what_to_do(tmp_path):
    with socket.socket() as sock:  # a port that was free a moment ago and is closed now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = tmp_path / "offline"
    with pytest.raises(DataError) as err:
        download_dataset("mnist", out, base_url=f"http://127.0.0.1:{port}", progress=False, retries=2, timeout=5)
    message = str(err.value)
    assert "\n" not in message
    assert all(name in message for name in MNIST_FILES)
    assert f"dcgan data download mnist --root {out}" in message
    assert missing_files_message("mnist", out) in message
    assert list(out.iterdir()) == []


def test_missing_files_message_lists_only_what_is_missing(shared_mnist, tmp_path):
    shutil.copyfile(shared_mnist / "t10k-labels-idx1-ubyte.gz", tmp_path / "t10k-labels-idx1-ubyte.gz")
    message = missing_files_message("mnist", tmp_path)
    assert "train-images-idx3-ubyte.gz" in message and "t10k-labels-idx1-ubyte.gz" not in message
    assert "https://ossci-datasets.s3.amazonaws.com/mnist/" in message and "\n" not in message


# --------------------------------------------------------------------------- #
# Archives
# --------------------------------------------------------------------------- #
def _tar_with(path: Path, member: tarfile.TarInfo, data: bytes = b"") -> Path:
    with tarfile.open(path, "w") as tar:
        ok = tarfile.TarInfo("fine/ok.txt")
        ok.size = 2
        tar.addfile(ok, io.BytesIO(b"ok"))
        member.size = len(data) if member.isfile() else 0
        tar.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return path


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "hardlink"])
def test_extract_refuses_unsafe_members(tmp_path, kind):
    dest = tmp_path / "dest"
    evil = tmp_path / "evil"
    member = {"dotdot": lambda: tarfile.TarInfo("../evil"), "absolute": lambda: tarfile.TarInfo(str(evil))}.get(
        kind, lambda: tarfile.TarInfo("fine/link")
    )()
    if kind == "symlink":
        member.type, member.linkname = tarfile.SYMTYPE, str(evil)
    if kind == "hardlink":
        member.type, member.linkname = tarfile.LNKTYPE, "../evil"
    archive = _tar_with(tmp_path / f"{kind}.tar", member, b"pwned")
    with pytest.raises(DataError, match="refusing to extract"):
        extract_tar(archive, dest)
    assert not evil.exists()
    assert list(dest.rglob("*")) == []  # the whole archive is refused, not just the bad member


def _fake_cifar(folder: Path) -> tuple[Path, dict[str, bytes]]:
    contents = {
        name: f"fake {name}".encode() * 10
        for name in ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch", "batches.meta", "readme.html"]
    }
    archive = folder / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        top = tarfile.TarInfo("cifar-10-batches-py")
        top.type = tarfile.DIRTYPE
        tar.addfile(top)
        for name, data in contents.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return archive, contents


def test_fake_cifar_download_extracts(server, tmp_path, monkeypatch):
    archive, contents = _fake_cifar(server.folder)
    spec = DOWNLOADS["cifar10"]
    (real,) = spec.files
    md5 = lambda data: hashlib.md5(data).hexdigest()  # noqa: E731
    fake = dataclasses.replace(
        real,
        checksum=("md5", md5(archive.read_bytes())),
        extracts=tuple(dataclasses.replace(e, checksum=("md5", md5(contents[e.path.split("/")[-1]]))) for e in real.extracts),
    )
    monkeypatch.setitem(DATASETS, "cifar10", dataclasses.replace(DATASETS["cifar10"], download=dataclasses.replace(spec, files=(fake,))))

    out = tmp_path / "cifar"
    assert verify_files("cifar10", out)[0] == "cifar-10-python.tar.gz"
    download_dataset("cifar10", out, base_url=server.url, progress=False)
    for name, data in contents.items():
        assert (out / "cifar-10-batches-py" / name).read_bytes() == data
    assert verify_files("cifar10", out) == [] and _leftovers(out) == []
    assert len(server.requests) == 1

    # A lost extracted file comes back from the kept archive, without the network.
    (out / "cifar-10-batches-py" / "data_batch_3").unlink()
    assert verify_files("cifar10", out) == ["cifar-10-batches-py/data_batch_3"]
    download_dataset("cifar10", out, base_url=server.url, progress=False)
    assert (out / "cifar-10-batches-py" / "data_batch_3").read_bytes() == contents["data_batch_3"]
    assert len(server.requests) == 1

    # Once extracted, the archive may be deleted: still complete, nothing fetched.
    (out / "cifar-10-python.tar.gz").unlink()
    assert verify_files("cifar10", out) == []
    download_dataset("cifar10", out, base_url=server.url, progress=False)
    assert len(server.requests) == 1
