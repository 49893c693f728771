"""WebDataset shards: naming, counting, the epoch plan (disjoint, complete, worker-independent, resumable),
`dcgan data shard`, `dcgan data check`, training and exact resume (also after kill -9), and DDP over shards."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from dcgan.checkpoint import load_checkpoint
from dcgan.data import Storage, load_dataset
from dcgan.data.shard_writer import shard_pattern, write_shards
from dcgan.data.shards import EpochPlan, buffer_permutation, looks_like_shards, open_shards, read_samples, stream_batches
from dcgan.errors import DataError

from conftest import one_line_error, run_cli

# Four DataLoader workers on a 2-core machine are the point of some tests here: PyTorch's advice is not.
pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")

SIZES = (70, 50, 90, 40, 50)  # uneven shards, as other tools write them: 300 samples
TOTAL = sum(SIZES)


def _png(i: int) -> bytes:
    """A 16x16 grey image whose first two pixels spell its id, the rest fixed noise."""
    pixels = np.random.default_rng(i).integers(0, 256, (16, 16), dtype=np.uint8)
    pixels[0, 0], pixels[0, 1] = i % 256, i // 256
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def _ids(images: torch.Tensor) -> list[int]:
    """The ids spelt by a batch (B, 1, 16, 16) of decoded images."""
    return (images[:, 0, 0, 0].long() + 256 * images[:, 0, 0, 1].long()).tolist()


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory):
    """Five shards written with webdataset's TarWriter (no index): ids 0..299 with classes id % 3, and a
    non-image member that must be passed over."""
    import webdataset as wds

    root = tmp_path_factory.mktemp("shards")
    i = 0
    for n, size in enumerate(SIZES):
        with wds.TarWriter(str(root / f"part-{n:03d}.tar"), encoder=False) as writer:
            for _ in range(size):
                writer.write({"__key__": f"s{i:05d}", "png": _png(i), "cls": str(i % 3).encode(), "json": b"{}"})
                i += 1
            writer.write({"__key__": f"meta{n}", "txt": b"not an image"})
    return root


@pytest.fixture()
def pattern(shard_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("DCGAN_CACHE_DIR", str(tmp_path / "cache"))
    return str(shard_dir / "part-{000..004}.tar")


def _epoch_ids(shards, epoch: int, batch: int, world: int, rank: int, workers: int, start: int = 0, seed: int = 0):
    plan = EpochPlan(shards.counts, seed, epoch, batch, world, rank)
    return [_ids(images) for images, _, _ in stream_batches(shards, plan, start, workers)]


# --------------------------------------------------------------------------- #
# The plan
# --------------------------------------------------------------------------- #
def test_buffer_permutation_is_a_seeded_permutation_that_never_looks_far_ahead():
    order = buffer_permutation(1000, 64, seed=5)
    assert sorted(order) == list(range(1000))
    assert all(stored < j + 64 for j, stored in enumerate(order))  # a reader holds at most a buffer
    assert order == buffer_permutation(1000, 64, seed=5) and order != buffer_permutation(1000, 64, seed=6)
    assert order != list(range(1000))
    assert sorted(buffer_permutation(10, 64, seed=1)) == list(range(10))  # shard smaller than the buffer


@settings(max_examples=60, deadline=None)
@given(counts=st.lists(st.integers(0, 40), min_size=1, max_size=9), batch=st.integers(1, 7), world=st.integers(1, 3), epoch=st.integers(0, 3))
def test_plan_gives_every_sample_to_exactly_one_process_and_part(counts, batch, world, epoch):
    """All processes' parts together cover steps x batch x world distinct positions; only the tail is left out."""
    taken = []
    for rank in range(world):
        plan = EpochPlan(tuple(counts), 7, epoch, batch, world, rank)
        for part in range(plan.parts):
            first, n = plan.part_batches(part)
            segs = plan.segments(part)
            assert sum(hi - lo for _, lo, hi in segs) == n * batch
            taken.extend((shard, k) for shard, lo, hi in segs for k in range(lo, hi))
    steps = sum(counts) // (batch * world)
    assert len(taken) == len(set(taken)) == steps * batch * world
    assert sum(counts) - len(taken) < batch * world  # drop_last: fewer than one global step left out


def test_the_order_changes_with_the_epoch_and_the_seed():
    plan = EpochPlan(SIZES, 0, 0, 10)
    assert plan.shard_order() != EpochPlan(SIZES, 0, 1, 10).shard_order() or plan.shard_permutation(0) != EpochPlan(
        SIZES, 0, 1, 10
    ).shard_permutation(0)
    assert plan.shard_permutation(2) != EpochPlan(SIZES, 1, 0, 10).shard_permutation(2)


# --------------------------------------------------------------------------- #
# Reading
# --------------------------------------------------------------------------- #
def test_a_pattern_a_pipe_and_an_index_name_the_same_samples(pattern, shard_dir, tmp_path):
    shards = open_shards(pattern, 16, 1)
    assert shards.counts == SIZES and len(shards) == TOTAL  # the txt-only sample is passed over
    assert shards.classes == ["0", "1", "2"] and shards.label_counts() == {0: 100, 1: 100, 2: 100}
    assert looks_like_shards(pattern) and looks_like_shards("pipe:cat x.tar") and not looks_like_shards(str(shard_dir / "part-000.tar"))
    piped = open_shards(f"pipe:cat {pattern}", 16, 1)
    assert piped.counts == SIZES
    assert _epoch_ids(piped, 0, 16, 1, 0, 0) == _epoch_ids(shards, 0, 16, 1, 0, 0)
    import gzip

    for n in range(5):  # gzipped shards have no random access: they stream, in the same order
        (tmp_path / f"z-{n}.tar.gz").write_bytes(gzip.compress((shard_dir / f"part-{n:03d}.tar").read_bytes()))
    assert _epoch_ids(open_shards(str(tmp_path / "z-{0..4}.tar.gz"), 16, 1), 0, 16, 1, 0, 1) == _epoch_ids(shards, 0, 16, 1, 0, 0)
    listed = "::".join(str(shard_dir / f"part-{n:03d}.tar") for n in range(5))
    assert open_shards(listed, 16, 1).fingerprint == shards.fingerprint
    # Counting happened once: the second open reads the cache, not the shards.
    cached = sorted(p.suffix for p in (tmp_path / "cache" / "shard-counts").iterdir())
    assert cached == [".json"] * 10 + [".npz"] * 5  # member tables of the tars; counts of the pipe: commands and .tar.gz
    images = read_samples(shards, [299, 0, 71])
    assert _ids(images) == [299, 0, 71]
    data = load_dataset(pattern, image_size=16, channels=1)  # shards as an ImageData: their storage, read by index
    assert data.storage is Storage.SHARDS and not data.in_memory and len(data) == TOTAL
    assert torch.equal(data.images_at(torch.tensor([299, 0, 71])), images) and torch.equal(shards.read([299, 0, 71]), images)


def test_every_sample_is_seen_once_per_epoch_across_processes_whatever_the_workers(pattern):
    shards = open_shards(pattern, 16, 1)
    B, W = 16, 2
    by_workers = {}
    for workers in (0, 1, 2, 4):
        ranks = [_epoch_ids(shards, 0, B, W, rank, workers) for rank in range(W)]
        by_workers[workers] = ranks
        flat = [i for rank in ranks for batch in rank for i in batch]
        assert len(flat) == len(set(flat)) == (TOTAL // (B * W)) * B * W
        assert all(len(rank) == TOTAL // (B * W) for rank in ranks)
    assert by_workers[0] == by_workers[1] == by_workers[2] == by_workers[4]  # the order is the plan's, not the workers'
    assert _epoch_ids(shards, 1, B, W, 0, 2) != by_workers[2][0]
    batch = by_workers[0][0][0]
    assert sorted(batch) != batch  # shuffled within the shard


def test_resuming_mid_epoch_continues_with_the_next_unseen_samples(pattern):
    """'Exact' for a stream: from step k on, a resumed epoch gives the same batches, in the same order, as an
    uninterrupted one, whatever the number of workers before and after."""
    shards = open_shards(pattern, 16, 1)  # local tars: read by their member tables
    piped = open_shards(f"pipe:cat {pattern}", 16, 1)  # streams: read through, each part's samples held until their turn
    full = _epoch_ids(shards, 2, 8, 1, 0, workers=2)
    for start in (1, 5, 13, len(full) - 1):
        assert _epoch_ids(shards, 2, 8, 1, 0, workers=4, start=start) == full[start:]
        assert _epoch_ids(shards, 2, 8, 1, 0, workers=0, start=start) == full[start:]
        assert _epoch_ids(piped, 2, 8, 1, 0, workers=2, start=start) == full[start:]


def test_labels_travel_with_their_images(pattern):
    shards = open_shards(pattern, 16, 1)
    plan = EpochPlan(shards.counts, 0, 0, 16)
    for images, labels, _ in stream_batches(shards, plan, 0, 2):
        assert [i % 3 for i in _ids(images)] == labels.tolist()


@pytest.mark.parametrize("case", ["missing", "not a tar", "changed", "failing pipe"])
def test_bad_shards_stop_in_one_line(shard_dir, tmp_path, monkeypatch, case):
    monkeypatch.setenv("DCGAN_CACHE_DIR", str(tmp_path / "cache"))
    if case == "missing":
        with pytest.raises(DataError, match="1 of the 6 shards .* do not exist"):
            open_shards(str(shard_dir / "part-{000..005}.tar"), 16, 1)
    elif case == "not a tar":
        (tmp_path / "bad-0.tar").write_bytes(b"this is not a tar archive" * 40)
        with pytest.raises(DataError, match="cannot read shard .*bad-0.tar"):
            open_shards(str(tmp_path / "bad-{0..0}.tar"), 16, 1)
    elif case == "changed":
        copy = tmp_path / "copy"
        copy.mkdir()
        for n in range(2):
            (copy / f"p-{n}.tar").write_bytes((shard_dir / f"part-{n:03d}.tar").read_bytes())
        shards = open_shards(str(copy / "p-{0..1}.tar"), 16, 1)
        shards.shards[1] = type(shards.shards[1])(shards.shards[1].url, 60, shards.shards[1].labels)  # counted 60, holds 50
        plan = EpochPlan(shards.counts, 0, 0, 10)
        with pytest.raises(DataError, match="holds 50 samples, but 60 were counted"):
            list(stream_batches(shards, plan, 0, 1))
    else:
        with pytest.raises(DataError, match="cannot read shard pipe:"):
            open_shards("pipe:cat /nonexistent/{0..1}.tar", 16, 1)


# --------------------------------------------------------------------------- #
# The command line
# --------------------------------------------------------------------------- #
@pytest.fixture(scope="module")
def class_folder(tmp_path_factory):
    """A folder of 3 classes x 40 PNGs (ids 0..119), in class order, plus one file that is not an image."""
    root = tmp_path_factory.mktemp("folder")
    for i in range(120):
        (root / f"c{i // 40}").mkdir(exist_ok=True)
        (root / f"c{i // 40}" / f"{i:03d}.png").write_bytes(_png(i))
    (root / "c0" / "broken.png").write_bytes(b"not a png")
    return root


def test_data_shard_writes_shuffled_shards_with_an_index_and_keeps_file_bytes(class_folder, tmp_path, capsys):
    out = tmp_path / "shards"
    assert run_cli("data", "shard", class_folder, out, "--shard-size", "50") == 0
    printed = capsys.readouterr().out
    assert "wrote 120 images in 3 shard(s)" in printed and "left out 1 file(s)" in printed
    index = json.loads((out / "shards.json").read_text())
    assert index["__kind__"] == "wids-shard-index-v1"
    assert [s["nsamples"] for s in index["shardlist"]] == [50, 50, 20]
    assert index["dcgan"]["classes"] == ["c0", "c1", "c2"]
    assert sorted(os.listdir(out)) == ["shards.json", "train-000000.tar", "train-000001.tar", "train-000002.tar"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left
    with tarfile.open(out / "train-000000.tar") as tar:
        names = tar.getnames()
        png = next(n for n in names if n.endswith(".png"))
        first = tar.extractfile(png).read()
    pixels = np.asarray(Image.open(io.BytesIO(first)))
    assert first == _png(int(pixels[0, 0]) + 256 * int(pixels[0, 1]))  # the file's own bytes
    shards = open_shards(str(out), 16, 1)
    assert shards.classes == ["c0", "c1", "c2"] and len(shards) == 120
    ids = [i for b in _epoch_ids(shards, 0, 10, 1, 0, 0) for i in b]
    assert sorted(ids) == list(range(120))
    # The first shard holds all three classes: the data was shuffled before it was cut.
    with tarfile.open(out / "train-000000.tar") as tar:
        assert {tar.extractfile(n).read() for n in names if n.endswith(".cls")} == {b"0", b"1", b"2"}
    assert shard_pattern(out, index).endswith("train-{000000..000002}.tar")


def test_data_shard_takes_pixel_datasets_and_compressed_archives(class_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("DCGAN_CACHE_DIR", str(tmp_path / "cache"))
    digits = load_dataset("digits")
    index = write_shards("digits", tmp_path / "digits", shard_size=500)
    assert [s["nsamples"] for s in index["shardlist"]] == [500, 500, 437]
    shards = open_shards(str(tmp_path / "digits"), 8, 1)
    assert shards.classes == digits.classes
    # Lossless: the digits come back with their exact pixels, each once (in the shuffled order).
    everything = read_samples(shards, list(range(len(shards))))
    assert sorted(t.numpy().tobytes() for t in everything) == sorted(t.numpy().tobytes() for t in digits.images)
    assert not torch.equal(everything, digits.images)
    archive = tmp_path / "folder.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(class_folder, arcname="folder")
    for shuffle in (True, False):  # a .tar.gz reads front to back: in memory to shuffle, straight through if not
        out = tmp_path / f"gz-{shuffle}"
        index = write_shards(str(archive), out, shard_size=1000, shuffle=shuffle)
        assert index["shardlist"][0]["nsamples"] == 120 and index["dcgan"]["skipped"] == 1
        ids = _ids(read_samples(open_shards(str(out), 16, 1), list(range(120))))
        assert sorted(ids) == list(range(120)) and (ids == sorted(ids)) != shuffle


def test_data_shard_refuses_a_folder_in_use_and_leaves_it_alone(class_folder, tmp_path, capsys):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert run_cli("data", "shard", class_folder, out) == 2
    assert "already exists and is not empty" in one_line_error(capsys.readouterr().err)
    assert os.listdir(out) == ["keep.txt"] and (out / "keep.txt").read_text() == "mine"


def test_data_check_reads_every_shard_and_spots_shards_sorted_by_class(class_folder, tmp_path, capsys):
    out = tmp_path / "sorted"
    assert run_cli("data", "shard", class_folder, out, "--shard-size", "40", "--no-shuffle") == 0
    capsys.readouterr()
    assert run_cli("data", "check", out, "--image-size", "16", "--channels", "1") == 0
    report = capsys.readouterr().out
    assert "images       120" in report and "shards       3, 40..40 samples each" in report
    assert "classes      3: c0 40, c1 40, c2 40" in report
    assert "look sorted by class" in report
    assert run_cli("data", "check", str(out / "train-{000000..000003}.tar")) == 2
    assert "do not exist" in one_line_error(capsys.readouterr().err)


TRAIN = [
    "--image-size",
    "16",
    "--channels",
    "1",
    "--z-dim",
    "8",
    "--width",
    "8",
    "--batch-size",
    "16",
    "--log-every",
    "2",
    "--checkpoint-every",
    "3",
    "--workers",
    "1",
    "--seed",
    "0",
    "--quiet",
]


def _same_weights(a, b) -> None:
    for key in a.tensors:
        if key.startswith(("G.", "D.", "G_ema.")):
            assert torch.equal(a.tensors[key], b.tensors[key]), key


def test_shards_of_mostly_undecodable_samples_stop_training_in_one_line(tmp_path, capsys, monkeypatch):
    import webdataset as wds

    monkeypatch.setenv("DCGAN_CACHE_DIR", str(tmp_path / "cache"))
    with wds.TarWriter(str(tmp_path / "bad-0.tar"), encoder=False) as writer:
        for i in range(300):
            writer.write({"__key__": f"{i:04d}", "png": _png(i) if i % 4 == 0 else b"not a png"})
    code = run_cli("train", "--data", str(tmp_path / "bad-{0..0}.tar"), *TRAIN, "--steps", "30", "--out", tmp_path / "run")
    assert code == 2
    assert "could not be decoded (more than 10%)" in one_line_error(capsys.readouterr().err)


def _dcgan(*args):
    return [sys.executable, "-m", "dcgan", *map(str, args)]


def test_kill_9_mid_epoch_then_resume_equals_an_uninterrupted_run(pattern, tmp_path):
    """A conditional run on shards, killed with SIGKILL after its first checkpoints, resumed past the end of
    the first epoch (300 // 16 = 18 steps): the same weights as a run never interrupted."""
    env = {**os.environ, "DCGAN_CACHE_DIR": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    run = tmp_path / "killed"
    train = ["train", "--data", pattern, *TRAIN, "--conditional"]
    proc = subprocess.Popen(_dcgan(*train, "--steps", "100000", "--out", run), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    latest = run / "checkpoints" / "latest.safetensors"
    try:
        deadline = time.monotonic() + 120
        while not latest.exists():
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            assert time.monotonic() < deadline, "no checkpoint in 120 s"
            time.sleep(0.02)
        time.sleep(0.3)  # mid-epoch, often mid-checkpoint
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    k = load_checkpoint(run).step
    total = max(24, k + 4)
    resumed = subprocess.run(_dcgan("train", "--resume", run, "--steps", total, "--quiet"), capture_output=True, text=True, env=env)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    straight = subprocess.run(_dcgan(*train, "--steps", total, "--out", tmp_path / "straight"), capture_output=True, text=True, env=env)
    assert straight.returncode == 0, straight.stderr[-2000:]
    assert "streaming 300 images from 5 shard(s)" in straight.stdout
    a, b = load_checkpoint(tmp_path / "straight"), load_checkpoint(run)
    assert a.state["steps_per_epoch"] == 18 and b.step == total
    assert a.model_config.num_classes == 3 and a.model_config.class_names == ("0", "1", "2")
    _same_weights(a, b)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
def test_two_processes_over_shards_resume_exactly(pattern, tmp_path):
    env = {**os.environ, "DCGAN_CACHE_DIR": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    common = ["train", "--data", pattern, *TRAIN, "--nproc", "2"]

    def dcgan(*args):
        out = subprocess.run(_dcgan(*args), capture_output=True, text=True, env=env, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        return out

    dcgan(*common, "--steps", "12", "--out", tmp_path / "straight")
    dcgan(*common, "--steps", "6", "--out", tmp_path / "resumed")
    dcgan("train", "--resume", tmp_path / "resumed", "--steps", "12", "--nproc", "2", "--quiet")
    a, b = load_checkpoint(tmp_path / "straight"), load_checkpoint(tmp_path / "resumed")
    assert b.step == 12 and a.state["steps_per_epoch"] == TOTAL // (16 * 2) == 9  # the epoch (9 steps) is crossed
    _same_weights(a, b)


def test_load_dataset_and_evaluation_read_shards(pattern):
    data = load_dataset(pattern, image_size=16, channels=1)
    assert data.images is None and len(data) == TOTAL and data.image_size == 16 and data.channels == 1
    assert data.classes == ["0", "1", "2"]
    from dcgan.metrics.evaluate import real_images

    assert _ids(real_images(data, torch.tensor([5, 250]))) == [5, 250]
