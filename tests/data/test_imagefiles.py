"""Folders and archives of images: every format and mode, broken files, labels, splits, caching, streaming."""

import io
import os
import pickle
import tarfile
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from dcgan.data import ImageData, Storage, load_dataset, load_image_files
from dcgan.data.imagefiles import DecodeError, decode_image, open_source
from dcgan.errors import DataError


def _img(mode, size=(20, 12), color=None):
    if mode == "I;16":
        arr = np.full(size[::-1], 65535, dtype=np.uint16)
        arr[:, : size[0] // 2] = 0
        return Image.fromarray(arr)
    if mode == "P":
        return Image.new("RGB", size, (200, 30, 30)).convert("P", palette=Image.Palette.ADAPTIVE)
    return Image.new(
        mode,
        size,
        color
        if color is not None
        else {"1": 1, "L": 128, "LA": (128, 255), "RGB": (10, 200, 30), "RGBA": (10, 200, 30, 255), "CMYK": (0, 0, 0, 0)}[mode],
    )


def _bytes(im, fmt, **kw):
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize(
    "fmt,mode",
    [
        ("JPEG", "RGB"),
        ("JPEG", "L"),
        ("JPEG", "CMYK"),
        ("PNG", "RGB"),
        ("PNG", "RGBA"),
        ("PNG", "LA"),
        ("PNG", "P"),
        ("PNG", "I;16"),
        ("PNG", "1"),
        ("BMP", "RGB"),
        ("GIF", "P"),
        ("WEBP", "RGB"),
        ("TIFF", "RGB"),
        ("TIFF", "L"),
    ],
)
@pytest.mark.parametrize("channels", [1, 3])
def test_every_format_and_mode_decodes(fmt, mode, channels):
    arr = decode_image(_bytes(_img(mode), fmt), 16, channels)
    assert arr.shape == (channels, 16, 16) and arr.dtype == np.uint8


def test_transparency_is_white_and_16_bit_is_scaled():
    clear = Image.new("RGBA", (8, 8), (255, 0, 0, 0))  # fully transparent red
    assert decode_image(_bytes(clear, "PNG"), 8, 3).min() == 255
    sixteen = decode_image(_bytes(_img("I;16", (16, 16)), "PNG"), 16, 1)
    assert sixteen[0, :, :6].max() == 0 and sixteen[0, :, 10:].min() == 255


def test_gif_first_frame():
    frames = [Image.new("L", (8, 8), 0).convert("P"), Image.new("L", (8, 8), 255).convert("P")]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    assert decode_image(buf.getvalue(), 8, 1).max() == 0


def test_resize_shorter_side_and_centre_crop():
    im = Image.new("L", (40, 20), 0)
    im.paste(255, (10, 0, 30, 20))  # a white band in the centre 20x20 square
    arr = decode_image(_bytes(im, "PNG"), 10, 1)
    assert arr.shape == (1, 10, 10) and arr.min() >= 200  # the crop kept only the white centre (squashing would show black)
    tiny = decode_image(_bytes(Image.new("RGB", (3, 2), (9, 9, 9)), "PNG"), 32, 3)
    assert tiny.shape == (3, 32, 32)


@pytest.mark.parametrize(
    "data,reason", [(b"", "empty"), (b"this is text, not a png", "cannot identify"), (_bytes(_img("RGB", (64, 64)), "JPEG")[:200], "(?i)truncated")]
)
def test_broken_files_raise_decode_error(data, reason):
    with pytest.raises(DecodeError, match=reason):
        decode_image(data, 16, 3)


def test_decompression_bomb_is_refused_before_decoding():
    huge = _bytes(Image.new("1", (10000, 10000)), "PNG")  # small file, 100 megapixels
    with pytest.raises(DecodeError, match="pixel limit"):
        decode_image(huge, 16, 1)


@pytest.fixture
def folder(tmp_path):
    """A nested, labelled folder with every format, non-square and tiny images, and broken files."""
    root = tmp_path / "pics"
    files = {
        "cats/a.jpg": _bytes(_img("RGB", (50, 30)), "JPEG"),
        "cats/deep/b.PNG": _bytes(_img("RGBA"), "PNG"),
        "cats/c.gif": _bytes(_img("P"), "GIF"),
        "dogs/d.bmp": _bytes(_img("RGB", (2, 2)), "BMP"),
        "dogs/e.webp": _bytes(_img("RGB"), "WEBP"),
        "dogs/f.tiff": _bytes(_img("L"), "TIFF"),
        "dogs/g.jpeg": _bytes(_img("L", (30, 50)), "JPEG"),
        "dogs/h.png": _bytes(_img("I;16"), "PNG"),
        "dogs/notes.txt": b"not an image, not considered",
    }
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def test_folder_nested_labels(folder):
    data = load_image_files(folder, 16, 3, cache=False)
    assert data.images.shape == (8, 3, 16, 16)
    assert data.classes == ["cats", "deep", "dogs"]  # the label is the immediate parent folder
    assert sorted(data.labels.tolist()) == [0, 0, 1, 2, 2, 2, 2, 2]
    assert data.skipped == []


def test_broken_files_are_skipped_and_counted(folder):
    (folder / "dogs" / "truncated.jpg").write_bytes(_bytes(_img("RGB", (64, 64)), "JPEG")[:300])
    (folder / "dogs" / "zero.png").write_bytes(b"")
    (folder / "dogs" / "text.png").write_text("hello")
    os.symlink(folder / "nowhere.png", folder / "dogs" / "unreadable.png")  # reading it fails
    data = load_image_files(folder, 16, 1, cache=False, max_failed_fraction=0.5)
    assert len(data) == 8
    assert sorted(name for name, _ in data.skipped) == ["dogs/text.png", "dogs/truncated.jpg", "dogs/unreadable.png", "dogs/zero.png"]
    with pytest.raises(DataError, match="4 of 12 files .* could not be decoded"):
        load_image_files(folder, 16, 1, cache=False)  # the default threshold is 10%


def test_empty_and_missing_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no images"):
        load_dataset(str(tmp_path / "empty"))
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(str(tmp_path / "missing"))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_text("nope")
    with pytest.raises(DataError, match="none of the 1 files"):
        load_dataset(str(tmp_path / "bad"))


def _archive(folder, path):
    names = sorted(p for p in folder.rglob("*") if p.is_file())
    if path.suffix == ".zip":
        with zipfile.ZipFile(path, "w") as zf:
            for p in names:
                zf.write(p, p.relative_to(folder.parent).as_posix())
    else:
        with tarfile.open(path, "w:gz" if path.name.endswith(".gz") else "w") as tf:
            for p in names:
                tf.add(p, p.relative_to(folder.parent).as_posix())
    return path


@pytest.mark.parametrize("suffix", [".zip", ".tar", ".tar.gz"])
def test_archives_equal_the_folder(folder, tmp_path, suffix):
    archive = _archive(folder, tmp_path / f"pics{suffix}")
    from_folder = load_image_files(folder, 16, 3, cache=False)
    from_archive = load_image_files(archive, 16, 3, cache=False)
    assert torch.equal(from_folder.images, from_archive.images)
    assert from_archive.classes == from_folder.classes and torch.equal(from_archive.labels, from_folder.labels)


def test_archive_names_are_never_paths(tmp_path):
    """Members named with '..' or absolute paths are skipped, and nothing is extracted anywhere."""
    good = _bytes(_img("RGB"), "PNG")
    path = tmp_path / "evil.tar"
    with tarfile.open(path, "w") as tf:
        for name in ("../escape.png", "/abs/root.png", "ok/fine.png"):
            info = tarfile.TarInfo(name)
            info.size = len(good)
            tf.addfile(info, io.BytesIO(good))
    source = open_source(path)
    assert source.names == ["ok/fine.png"]
    assert len(load_image_files(path, 8, 3, cache=False)) == 1
    assert not (tmp_path.parent / "escape.png").exists()


def test_train_test_split_folders(tmp_path):
    for split, n in (("train", 3), ("test", 2)):
        for i in range(n):
            (tmp_path / "d" / split / "cls").mkdir(parents=True, exist_ok=True)
            (tmp_path / "d" / split / "cls" / f"{i}.png").write_bytes(_bytes(_img("L"), "PNG"))
    assert len(load_image_files(tmp_path / "d", 8, 1, cache=False)) == 3
    assert len(load_image_files(tmp_path / "d", 8, 1, split="test", cache=False)) == 2


def test_cache_is_reused_and_invalidated(folder, monkeypatch):
    import dcgan.data.folders as data_module

    first = load_image_files(folder, 16, 3)
    assert not first.from_cache
    calls = []
    real = data_module.decode_source
    monkeypatch.setattr(data_module, "decode_source", lambda *a, **k: calls.append(1) or real(*a, **k))
    second = load_image_files(folder, 16, 3)
    assert second.from_cache and not calls and torch.equal(first.images, second.images)
    load_image_files(folder, 32, 3)  # another size: another cache entry
    assert len(calls) == 1
    (folder / "dogs" / "new.png").write_bytes(_bytes(_img("RGB"), "PNG"))
    third = load_image_files(folder, 16, 3)
    assert not third.from_cache and len(third) == 9 and len(calls) == 2


def test_streaming_gives_the_same_images(folder):
    memory = load_image_files(folder, 16, 3, cache=False)
    streamed = load_image_files(folder, 16, 3, stream=True)
    assert streamed.images is None and len(streamed) == len(memory)
    assert torch.equal(torch.stack([streamed.stream[i] for i in range(len(streamed))]), memory.images)
    auto = load_image_files(folder, 16, 3, max_memory_bytes=100)  # too big for a 100-byte budget: streams
    assert auto.stream is not None


def test_storage_says_where_the_images_are_and_images_at_reads_them_from_either(folder):
    memory = load_image_files(folder, 16, 3, cache=False)
    streamed = load_image_files(folder, 16, 3, stream=True)
    assert memory.storage is Storage.MEMORY and memory.in_memory
    assert streamed.storage is Storage.STREAM and not streamed.in_memory
    picks = torch.tensor([5, 0, 3, 3])
    assert torch.equal(streamed.images_at(picks), memory.images[picks]) and torch.equal(memory.images_at(picks), memory.images[picks])
    assert (streamed.image_size, streamed.channels) == (memory.image_size, memory.channels) == (16, 3)
    empty = ImageData(images=None, name="nothing")
    with pytest.raises(DataError, match="the dataset 'nothing' holds no images"):
        _ = empty.storage


def test_cifar_partial_binary(cifar_partial):
    train = load_dataset("cifar10", cifar_partial)
    test = load_dataset("cifar10", cifar_partial, split="test", channels=1, image_size=16)
    assert train.images.shape == (4000, 3, 32, 32) and train.labels[:5].tolist() == [6, 9, 9, 4, 1]
    assert test.images.shape == (1000, 1, 16, 16) and train.classes[0] == "airplane"


def test_cifar_python_batches_and_a_malicious_pickle(tmp_path, cifar_partial):
    binary = load_dataset("cifar10", cifar_partial)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for i in range(1, 3):
        part = slice((i - 1) * 100, i * 100)
        batch = {b"data": binary.images[part].reshape(100, -1).numpy(), b"labels": binary.labels[part].tolist(), b"batch_label": b"x"}
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(batch, protocol=2))
    data = load_dataset("cifar10", tmp_path)
    assert torch.equal(data.images, binary.images[:200]) and torch.equal(data.labels, binary.labels[:200])

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path}/PWNED",))

    (folder / "data_batch_3").write_bytes(pickle.dumps({b"data": Payload()}))
    with pytest.raises(DataError, match="not allowed"):
        load_dataset("cifar10", tmp_path)
    assert not (tmp_path / "PWNED").exists()


def test_cifar_jpeg_archive_with_splits(cifar_jpg_tar):
    test = load_dataset(str(cifar_jpg_tar), image_size=32, split="test")
    assert test.images.shape == (10000, 3, 32, 32) and len(test.classes) == 10
    assert np.bincount(test.labels.numpy()).tolist() == [1000] * 10


@pytest.mark.parametrize("mode,streams", [("w", True), ("w:gz", False)])
def test_a_plain_tar_streams_like_a_zip_and_a_compressed_one_says_why_not(folder, tmp_path, mode, streams):
    archive = tmp_path / ("pics.tar" if mode == "w" else "pics.tar.gz")
    with tarfile.open(archive, mode) as tar:
        tar.add(folder, arcname="pics")
    memory = load_image_files(archive, 16, 3, cache=False)
    assert open_source(archive).random_access is streams
    if not streams:
        with pytest.raises(DataError, match="compressed tar archive cannot stream.*uncompressed .tar or a .zip"):
            load_image_files(archive, 16, 3, stream=True)
        assert load_image_files(archive, 16, 3, max_memory_bytes=100, cache=False).images is not None  # too big, held anyway
        return
    streamed = load_image_files(archive, 16, 3, stream=True)
    assert streamed.images is None and len(streamed) == len(memory) and streamed.classes == memory.classes
    assert torch.equal(torch.stack([streamed.stream[i] for i in range(len(streamed))]), memory.images)
    # DataLoader workers (forked processes) each open the archive themselves.
    loader = torch.utils.data.DataLoader(streamed.stream, batch_size=4, num_workers=2)
    assert torch.equal(torch.cat(list(loader)), memory.images)
