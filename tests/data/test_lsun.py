"""LSUN lmdb databases as data: a small lmdb in the official layout (a directory with data.mdb and
lock.mdb; keys are image ids, values WebP or JPEG bytes), read through `--data`, streamed, checked."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import re
import sys

import pytest
import torch
from PIL import Image

from dcgan.data import load_dataset
from dcgan.data.check import check_dataset
from dcgan.data.lsun import close_environments, looks_like_lmdb, open_lmdb
from dcgan.errors import DataError
from dcgan.training.distributed import DistInfo
from dcgan.training.feed import DataFeed

from conftest import run_cli

lmdb = pytest.importorskip("lmdb")

TINY_ARGS = ["--image-size", "16", "--z-dim", "8", "--width", "8", "--batch-size", "8", "--seed", "1", "--quiet", "--device", "cpu"]
NUM_EACH = 20  # WebP and JPEG images each
CORRUPT_KEY = "corrupt-entry"


def colour(i: int) -> tuple[int, int, int]:
    """A distinct, saturated-enough colour per image, far from its neighbours."""
    return (40 + (i * 53) % 180, 40 + (i * 97) % 180, 40 + (i * 29) % 180)


def encode(rgb, fmt: str, size=(24, 20)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, rgb).save(buf, format=fmt, quality=95)
    return buf.getvalue()


def write_lmdb(path, entries: dict[bytes, bytes]) -> None:
    env = lmdb.open(str(path), map_size=1 << 26)
    with env.begin(write=True) as txn:
        for key, value in entries.items():
            txn.put(key, value)
    env.close()


def lsun_key(i: int) -> bytes:
    return hashlib.sha1(str(i).encode()).hexdigest().encode()  # LSUN's ids are 40 hex digits


@pytest.fixture(scope="module")
def lsun(tmp_path_factory):
    """(path, {key: expected RGB}) of an lmdb with 20 WebP, 20 JPEG images and one corrupt value."""
    path = tmp_path_factory.mktemp("lsun") / "bedroom_train_lmdb"
    entries, expected = {}, {}
    for i in range(2 * NUM_EACH):
        key = lsun_key(i)
        entries[key] = encode(colour(i), "WEBP" if i < NUM_EACH else "JPEG")
        expected[key.decode()] = colour(i)
    entries[CORRUPT_KEY.encode()] = b"\xff\xd8\xff not really a jpeg"
    write_lmdb(path, entries)
    assert (path / "data.mdb").is_file() and (path / "lock.mdb").is_file()
    return path, expected


def test_loads_as_a_stream_with_the_right_pixels(lsun):
    path, expected = lsun
    assert looks_like_lmdb(path) and looks_like_lmdb(f"{path}/")
    data = load_dataset(str(path), image_size=16)
    assert data.images is None and data.stream is not None  # never decoded whole
    assert len(data) == 2 * NUM_EACH + 1 and data.image_size == 16 and data.channels == 3
    assert data.labels is None and data.classes is None
    assert [name for name, _ in data.skipped] == [CORRUPT_KEY]  # the pre-flight found the corrupt value
    names = data.stream.source.names
    assert names == sorted(names)  # lmdb key order
    for i, name in enumerate(names):
        image = data.stream[i]
        assert image.shape == (3, 16, 16) and image.dtype == torch.uint8
        if name == CORRUPT_KEY:  # replaced by the next decodable entry
            name = names[(i + 1) % len(names)]
        want = torch.tensor(expected[name], dtype=torch.float32).view(3, 1, 1)
        assert (image.float() - want).abs().max() <= 8, name  # lossy WebP/JPEG of a flat colour


def test_grey_and_size_follow_the_folder_rules(lsun):
    path, expected = lsun
    data = load_dataset(str(path / "data.mdb"), image_size=8, channels=1)  # the data.mdb file names its directory too
    name = data.stream.source.names[0]
    r, g, b = expected[name]
    grey = data.stream[0]
    assert grey.shape == (1, 8, 8)
    assert abs(grey.float().mean().item() - (0.299 * r + 0.587 * g + 0.114 * b)) <= 8


def test_fingerprint_is_stable_and_the_source_pickles(lsun):
    path, _ = lsun
    a, b = open_lmdb(path), open_lmdb(path)
    assert a.fingerprint == b.fingerprint and a.kind == "lmdb"
    a.read(a.names[0])  # opens this process's environment
    copy = pickle.loads(pickle.dumps(a))  # what a spawned DataLoader worker gets: no handle, opens its own
    assert copy.read(copy.names[3]) == a.read(a.names[3])


def test_streamed_batches_follow_seed_and_epoch_with_workers(lsun):
    path, _ = lsun
    data = load_dataset(str(path), image_size=16)
    feeds = [DataFeed(data, 8, seed=5, device=torch.device("cpu"), dist=DistInfo(), workers=w) for w in (0, 2)]
    serial, forked = (list(f.epoch_batches(epoch=1, start=1)) for f in feeds)
    assert len(serial) == len(forked) == len(data) // 8 - 1
    order = feeds[0].epoch_order(1)
    for index, ((a, _), (b, _)) in enumerate(zip(serial, forked), start=1):
        rows = feeds[0].batch_indices(order, index)
        want = torch.stack([data.stream[int(r)] for r in rows]).float().div(127.5).sub(1)
        assert torch.equal(a, b) and torch.equal(a, want)


def test_data_check_reports_counts_formats_and_the_corrupt_entry(lsun, capsys):
    path, _ = lsun
    report = check_dataset(str(path), image_size=16)
    assert report.total == report.checked == 2 * NUM_EACH + 1
    assert report.formats == {"WEBP": NUM_EACH, "JPEG": NUM_EACH}
    assert [name for name, _ in report.failures] == [CORRUPT_KEY]
    assert report.usable and report.widths == [24] * (2 * NUM_EACH)
    assert run_cli("data", "check", path, "--image-size", "16") == 0
    out = capsys.readouterr().out
    assert f"images       {2 * NUM_EACH + 1}\n" in out
    assert "formats      WEBP 20, JPEG 20" in out or "formats      JPEG 20, WEBP 20" in out
    assert f"undecodable  1:\n  {CORRUPT_KEY}:" in out
    assert "classes      none (an lmdb is one category)" in out
    assert run_cli("data", "check", path, "--image-size", "16", "--sample", "10") == 0
    assert "(10 checked as a sample)" in capsys.readouterr().out


def test_train_end_to_end_then_resume_refuses_changed_data(lsun, tmp_path, capsys):
    path, _ = lsun
    data = tmp_path / "church_outdoor_train_lmdb"
    data.mkdir()
    for name in ("data.mdb", "lock.mdb"):
        (data / name).write_bytes((path / name).read_bytes())
    run = tmp_path / "run"
    assert run_cli("train", "--data", data, "--steps", "3", "--out", run, "--workers", "2", *TINY_ARGS) == 0
    out = capsys.readouterr().out
    assert "streaming 41 images" in out and "skipped 1 file(s)" in out
    assert json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 3
    assert (run / "checkpoints" / "latest.safetensors").exists()
    # The same data resumes; a changed lmdb (one more entry) is refused in one line.
    assert run_cli("train", "--resume", run, "--steps", "4", "--quiet") == 0
    capsys.readouterr()
    close_environments()  # py-lmdb opens a database once per process: let go of the reading handle first
    env = lmdb.open(str(data), map_size=1 << 26)
    with env.begin(write=True) as txn:
        txn.put(lsun_key(999), encode((1, 2, 3), "JPEG"))
    env.close()
    assert run_cli("train", "--resume", run, "--steps", "5", "--quiet") == 2
    assert "differs from the data this run was trained on" in capsys.readouterr().err


def test_conditional_needs_labels(lsun, tmp_path, capsys):
    path, _ = lsun
    assert run_cli("train", "--data", path, "--conditional", "--steps", "1", "--out", tmp_path / "r", *TINY_ARGS) == 2
    assert "--conditional needs class labels" in capsys.readouterr().err


@pytest.fixture
def bad_sources(tmp_path):
    (tmp_path / "empty_dir_lmdb").mkdir()
    write_lmdb(tmp_path / "text_lmdb", {f"{i:04d}".encode(): b"just some words %d" % i for i in range(12)})
    write_lmdb(tmp_path / "empty_lmdb", {})
    (tmp_path / "garbage_lmdb").mkdir()
    (tmp_path / "garbage_lmdb" / "data.mdb").write_bytes(b"\x00not an lmdb" * 500)
    return tmp_path


@pytest.mark.parametrize(
    "name, message",
    [
        ("empty_dir_lmdb", "is not an lmdb: an LSUN lmdb is a directory holding data.mdb"),
        ("missing_lmdb", "does not exist"),
        ("text_lmdb", "is an lmdb but not of images (the value of key '0000' is not an image"),
        ("empty_lmdb", "is an empty lmdb"),
        ("garbage_lmdb", "as an lmdb:"),
    ],
)
def test_one_line_errors(bad_sources, name, message, capsys):
    path = str(bad_sources / name)
    with pytest.raises(DataError, match=re.escape(message)):
        load_dataset(path)
    with pytest.raises(DataError, match=re.escape(message)):
        check_dataset(path)
    for argv in (["data", "check", path], ["train", "--data", path, "--out", bad_sources / "run", *TINY_ARGS]):
        assert run_cli(*argv) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    assert not (bad_sources / "run").exists()


def test_a_bare_lmdb_name_that_is_not_there_is_a_path_not_an_unknown_dataset(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match="bedroom_val_lmdb does not exist"):
        load_dataset("bedroom_val_lmdb")


def test_missing_lmdb_package_gives_the_install_hint(lsun, monkeypatch):
    path, _ = lsun
    monkeypatch.setitem(sys.modules, "lmdb", None)  # `import lmdb` now raises ImportError
    with pytest.raises(DataError, match=r"needs the lmdb package: pip install 'dcgan\[lsun\]'"):
        load_dataset(str(path))
