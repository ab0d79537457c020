from __future__ import annotations

import gzip
import pickle
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from nas.data import detect_format, load_data, read_cifar_batches, read_idx
from nas.errors import DataError


def _write_idx(path, array: np.ndarray, compress: bool = True) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    blob = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(blob) if compress else blob)


def _fake_fmnist(directory, n_train=60, n_test=20, compress=True):
    rng = np.random.default_rng(0)
    directory.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if compress else ""
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        _write_idx(directory / f"{prefix}-images-idx3-ubyte{suffix}", rng.integers(0, 255, (n, 28, 28)), compress)
        _write_idx(directory / f"{prefix}-labels-idx1-ubyte{suffix}", np.arange(n) % 10, compress)
    return directory


@pytest.mark.parametrize("compress", [True, False])
def test_idx_directory(tmp_path, compress):
    directory = _fake_fmnist(tmp_path / "fm", compress=compress)
    assert read_idx(directory / f"train-labels-idx1-ubyte{'.gz' if compress else ''}").shape == (60,)
    splits = load_data("fashion-mnist", directory, val_fraction=0.25, seed=1, channels=3)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (45, 15, 20)
    assert splits.train.images.shape[1:] == (3, 28, 28)
    assert splits.num_classes == 10 and splits.classes[0] == "T-shirt/top"
    assert detect_format(directory) == "fashion-mnist"
    assert load_data(str(directory), val_fraction=0.25).name == "fashion-mnist"


def test_truncated_idx_is_rejected(tmp_path):
    directory = _fake_fmnist(tmp_path / "fm")
    path = directory / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-10]))
    with pytest.raises(DataError, match="truncated"):
        load_data("fashion-mnist", directory)


@pytest.mark.parametrize("damage", ["cut", "flipped", "garbage"])
def test_truncated_or_corrupt_gzip_idx_names_the_file(tmp_path, damage):
    directory = _fake_fmnist(tmp_path / "fm")
    path = directory / "train-images-idx3-ubyte.gz"
    raw = bytearray(path.read_bytes())
    if damage == "cut":  # an interrupted download: EOFError inside gzip
        raw = raw[: len(raw) // 2]
    elif damage == "flipped":  # a bad byte in the deflate stream: zlib.error
        raw[12] ^= 0xFF
    else:  # trailing junk: gzip.BadGzipFile
        raw += b"junk"
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz: truncated or corrupt gzip file"):
        load_data("fashion-mnist", directory)


def test_idx_header_cut_short_is_a_data_error(tmp_path):
    path = tmp_path / "short-idx3-ubyte"
    path.write_bytes(bytes([0, 0, 0x08, 3]) + struct.pack(">I", 5))  # 3 dims announced, 1 given
    with pytest.raises(DataError, match=r"short-idx3-ubyte: truncated IDX file \(header"):
        read_idx(path)


def test_idx_labels_out_of_range_name_the_labels_file(tmp_path):
    directory = _fake_fmnist(tmp_path / "fm")
    _write_idx(directory / "train-labels-idx1-ubyte.gz", np.arange(60) % 12)
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\.gz: labels must lie in \[0, 10\)"):
        load_data("fashion-mnist", directory)


def test_missing_fashion_mnist_says_how_to_get_it(tmp_path):
    with pytest.raises(DataError) as info:
        load_data("fashion-mnist", tmp_path / "nowhere")
    assert "apt-get install -y dataset-fashion-mnist" in str(info.value)
    assert "--data-dir" in str(info.value)


def _write_batch(path, n, seed, key="labels"):
    rng = np.random.default_rng(seed)
    batch = {b"data": rng.integers(0, 255, (n, 3 * 8 * 8)).astype(np.uint8), key.encode(): list(range(n))}
    batch[key.encode()] = [i % 3 for i in range(n)]
    path.write_bytes(pickle.dumps(batch))


def test_cifar_batches(tmp_path):
    for i in (1, 2):
        _write_batch(tmp_path / f"data_batch_{i}", 30, i)
    _write_batch(tmp_path / "test_batch", 12, 9)
    (tmp_path / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"cat", b"dog", b"emu"]}))
    train, test = read_cifar_batches(tmp_path)
    assert train.images.shape == (60, 3, 8, 8) and len(test) == 12
    assert train.classes == ("cat", "dog", "emu")
    splits = load_data("cifar", tmp_path, val_fraction=0.2)
    assert len(splits.train) == 48 and splits.channels == 3
    assert detect_format(tmp_path) == "cifar"


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_cifar_loader_refuses_arbitrary_pickles(tmp_path):
    (tmp_path / "data_batch_1").write_bytes(pickle.dumps({b"data": _Evil(), b"labels": [0]}))
    with pytest.raises(DataError, match="refusing to load builtins.print"):
        read_cifar_batches(tmp_path)


def _write_images(root, classes, per_class, size=10):
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (size, size + 3, 3)).astype(np.uint8)).save(root / c / f"{i}.png")


def test_image_folder_with_train_and_test(tmp_path):
    _write_images(tmp_path / "train", ["ant", "bee"], 6)
    _write_images(tmp_path / "test", ["ant", "bee"], 2)
    (tmp_path / "train" / "ant" / "notes.txt").write_text("not an image")
    splits = load_data("image-folder", tmp_path, val_fraction=0.25, image_size=16)
    assert splits.classes == ("ant", "bee")
    assert splits.train.images.shape[1:] == (3, 16, 16)
    assert len(splits.train) + len(splits.val) == 12 and len(splits.test) == 4
    assert detect_format(tmp_path) == "image-folder"


def test_image_folder_without_test_split(tmp_path):
    _write_images(tmp_path, ["a", "b", "c"], 4)
    splits = load_data(str(tmp_path), val_fraction=0.25, image_size=8)
    assert splits.name == "image-folder" and splits.test is None
    assert any("no test split" in n for n in splits.notes)


def test_split_is_fixed_by_seed():
    a = load_data("synthetic", seed=3, synthetic_size=100, val_fraction=0.2)
    b = load_data("synthetic", seed=3, synthetic_size=100, val_fraction=0.2)
    assert torch.equal(a.val.labels, b.val.labels) and torch.equal(a.val.images, b.val.images)
    c = load_data("synthetic", seed=3, synthetic_size=100, val_fraction=0.3)
    assert len(c.val) == 30
    assert "unit tests only" in a.source


def test_unknown_dataset_and_bad_dirs(tmp_path):
    with pytest.raises(DataError, match="unknown dataset"):
        load_data("imagenet")
    with pytest.raises(DataError, match="needs --data-dir"):
        load_data("cifar")
    (tmp_path / "x.txt").write_text("?")
    with pytest.raises(DataError, match="cannot tell the data format"):
        detect_format(tmp_path)


def _png_header(path, width: int, height: int) -> None:
    """A 45-byte PNG that claims ``width`` x ``height`` pixels (PIL checks the size on open)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


def test_image_over_the_decompression_bomb_limit_names_the_file(tmp_path):
    _write_images(tmp_path, ["a", "b"], 2)
    _png_header(tmp_path / "b" / "huge.png", 200_000, 200_000)  # over twice the limit: PIL raises
    with pytest.raises(DataError, match=r"huge\.png: too many pixels to decode safely") as info:
        load_data("image-folder", tmp_path, image_size=8)
    assert f"MAX_IMAGE_PIXELS = {Image.MAX_IMAGE_PIXELS}" in str(info.value)


def test_image_between_once_and_twice_the_limit_is_refused_too(tmp_path, monkeypatch):
    # PIL only warns between MAX_IMAGE_PIXELS and twice it, then decodes; a lowered limit keeps the fixture tiny
    _write_images(tmp_path, ["a", "b"], 2, size=10)  # 10 x 13 = 130 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(DataError, match=r"0\.png: too many pixels to decode safely"):
        load_data("image-folder", tmp_path, image_size=8)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 130)
    assert len(load_data("image-folder", tmp_path, image_size=8, val_fraction=0.25).train) == 3
