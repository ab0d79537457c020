"""fashion-mosaic: deterministic multi-label mosaics whose splits share no item."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch

from nas.data import ImageData, MosaicConfig, load_data, make_mosaics


def _write_idx(path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def _items(n: int, seed: int) -> np.ndarray:
    """Noise items with no zero pixel, so an item pasted on the black canvas shows its exact extent."""
    return np.random.default_rng(seed).integers(1, 256, (n, 28, 28))


def _fake_fmnist(directory, n_train=300, n_test=100):
    directory.mkdir(parents=True)
    for prefix, items in (("train", _items(n_train, 0)), ("t10k", _items(n_test, 1))):
        _write_idx(directory / f"{prefix}-images-idx3-ubyte.gz", items)
        _write_idx(directory / f"{prefix}-labels-idx1-ubyte.gz", np.arange(len(items)) % 10)
    return directory


def _source(n=50):
    return ImageData(torch.from_numpy(_items(n, 3).astype(np.uint8)).unsqueeze(1), torch.arange(n) % 10,
                     tuple(str(i) for i in range(10)))


def test_mosaics_are_deterministic_and_seeded():
    cfg = MosaicConfig(canvas=48, train=40)
    a = make_mosaics(_source(), 40, cfg, seed=0, split="train")
    b = make_mosaics(_source(), 40, cfg, seed=0, split="train")
    c = make_mosaics(_source(), 40, cfg, seed=1, split="train")
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images)
    assert a.multi_label and a.images.shape == (40, 1, 48, 48) and a.labels.dtype == torch.uint8
    positives = a.labels.sum(1)
    assert int(positives.min()) >= 1 and int(positives.max()) <= 4


def test_labels_are_the_classes_of_the_pasted_items():
    cfg = MosaicConfig(canvas=32, items=(1, 1), scale=(1.0, 1.0), clutter=0, train=30)
    source = _source()
    m = make_mosaics(source, 30, cfg, seed=0, split="train")
    for image, label in zip(m.images[:, 0], m.labels):
        ys, xs = np.nonzero(image.numpy())
        crop = image[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        match = [i for i in range(len(source)) if torch.equal(source.images[i, 0], crop)]
        assert len(match) == 1
        assert label.nonzero().flatten().tolist() == [int(source.labels[match[0]])]


def test_no_item_is_shared_between_splits(tmp_path):
    directory = _fake_fmnist(tmp_path / "fm")
    cfg = MosaicConfig(canvas=32, items=(1, 1), scale=(1.0, 1.0), clutter=0, train=200, val=60, test=60)
    splits = load_data("fashion-mosaic", directory, mosaic=cfg, val_fraction=0.2, seed=0)
    assert splits.multi_label and splits.name == "fashion-mosaic"

    def used(data):
        out = set()
        for image in data.images[:, 0].numpy():
            ys, xs = np.nonzero(image)
            out.add(image[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].tobytes())
        return out

    train, val, test = used(splits.train), used(splits.val), used(splits.test)
    assert train and val and test
    assert not (train & val) and not (train & test) and not (val & test)
    test_items = {item.astype(np.uint8).tobytes() for item in _items(100, 1)}
    assert test <= test_items  # test mosaics only from the test images


def test_bad_settings_name_the_field():
    with pytest.raises(ValueError, match=r"items: \(3, 1\)"):
        MosaicConfig(items=(3, 1))
    with pytest.raises(ValueError, match="scale"):
        MosaicConfig(canvas=20, scale=(0.5, 1.0))
