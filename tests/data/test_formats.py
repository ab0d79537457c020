from __future__ import annotations

import gzip
import pickle
import struct

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
