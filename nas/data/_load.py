"""Choosing and loading a dataset: Fashion-MNIST (default), fashion-mosaic (multi-label), CIFAR batches,
image folders, multi-label user data (labels CSV, COCO instances), synthetic."""

from __future__ import annotations

from pathlib import Path

import torch

from nas.data._formats import read_cifar_batches, read_idx_pair, read_image_folder
from nas.data._labels import find_coco, find_labels_csv, load_coco, load_labels_csv
from nas.data._mosaic import MosaicConfig, make_mosaics
from nas.data._types import DataSplits, ImageData, channel_stats, split_train_val
from nas.errors import DataError

__all__ = [
    "FASHION_MNIST_DIR",
    "FASHION_MNIST_CLASSES",
    "DATASETS",
    "load_data",
    "detect_format",
    "synthetic_data",
]

#: Where Debian's ``dataset-fashion-mnist`` package puts the gzip IDX files.
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
DATASETS = ("fashion-mnist", "fashion-mosaic", "cifar", "image-folder", "labels-csv", "coco", "synthetic")

_HOW_TO_GET_FMNIST = (
    "Fashion-MNIST not found in {where}. Install it with\n"
    "    sudo apt-get update && sudo apt-get install -y dataset-fashion-mnist\n"
    "or pass --data-dir DIR pointing to a directory holding train-images-idx3-ubyte.gz,\n"
    "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz."
)


def detect_format(directory: Path) -> str:
    """Guess the format of a data directory: ``fashion-mnist`` (IDX), ``cifar``, ``labels-csv``
    (``labels.csv`` or ``train/labels.csv``), ``coco`` (``annotations/instances_train*.json``) or
    ``image-folder`` (sub-folders; checked last, since the other layouts have sub-folders too).

    Raises:
        DataError: not a directory, an ambiguous labels-CSV or COCO layout, or no known format.
    """
    if not directory.is_dir():
        raise DataError(f"data directory not found: {directory}")
    names = {p.name for p in directory.iterdir()}
    if any(n.startswith("train-images-idx3-ubyte") for n in names):
        return "fashion-mnist"
    if any(n.startswith("data_batch_") for n in names) or {"train", "meta"} <= names and (directory / "train").is_file():
        return "cifar"
    if find_labels_csv(directory) is not None:
        return "labels-csv"
    if find_coco(directory) is not None:
        return "coco"
    if any(p.is_dir() for p in directory.iterdir()):
        return "image-folder"
    raise DataError(
        f"{directory}: cannot tell the data format. Expected IDX files (train-images-idx3-ubyte[.gz]), "
        f"CIFAR python batches (data_batch_1..5, test_batch), a labels.csv (or train/labels.csv), "
        f"COCO annotations (annotations/instances_train2017.json) or an image folder ({directory}/<class>/<image>)"
    )


def synthetic_data(
    n: int = 256, *, num_classes: int = 4, size: int = 16, channels: int = 3, seed: int = 0,
    multi_label: bool = False,
) -> ImageData:
    """Random images whose class shifts the mean brightness (learnable). For unit tests only.

    ``multi_label``: multi-hot labels instead (each class present with probability 1/2, never
    none); class ``c`` brightens its own horizontal band of the image, so every label is learnable.
    """
    g = torch.Generator().manual_seed(seed)
    noise = torch.randint(0, 96, (n, channels, size, size), generator=g)
    classes = tuple(f"class{i}" for i in range(num_classes))
    if multi_label:
        multi_hot = torch.rand((n, num_classes), generator=g) < 0.5
        multi_hot[torch.arange(n), torch.randint(0, num_classes, (n,), generator=g)] = True
        bands = torch.zeros((n, 1, size, 1))
        rows = torch.arange(size) * num_classes // size  # row -> the class whose band it is in
        bands[:, 0, :, 0] = multi_hot[:, rows].float() * 150
        images = (noise + bands).clamp(0, 255).to(torch.uint8)
        return ImageData(images, multi_hot.to(torch.uint8), classes)
    labels = torch.randint(0, num_classes, (n,), generator=g)
    offset = (labels * (128 // max(1, num_classes - 1))).view(-1, 1, 1, 1)
    images = (noise + offset).clamp(0, 255).to(torch.uint8)
    return ImageData(images, labels, classes)


def _fashion_mnist(data_dir: Path | None) -> tuple[ImageData, ImageData, str]:
    directory = data_dir if data_dir is not None else FASHION_MNIST_DIR
    if data_dir is not None and not directory.is_dir():
        raise DataError(f"--data-dir {directory}: no such directory (for Fashion-MNIST: the folder holding "
                        "train-images-idx3-ubyte.gz and the other three files; or leave --data-dir out and install "
                        f"Debian's copy into {FASHION_MNIST_DIR}: sudo apt-get update && sudo apt-get install -y "
                        "dataset-fashion-mnist)")
    if not directory.is_dir() or not any(directory.glob("train-images-idx3-ubyte*")):
        raise DataError(_HOW_TO_GET_FMNIST.format(where=directory))
    train = read_idx_pair(directory, "train", FASHION_MNIST_CLASSES)
    test = read_idx_pair(directory, "t10k", FASHION_MNIST_CLASSES)
    return train, test, str(directory)


def _image_folder(directory: Path, image_size: int, seed: int) -> tuple[ImageData, ImageData | None, list[str]]:
    notes = []
    train_dir = directory / "train"
    if train_dir.is_dir():
        train = read_image_folder(train_dir, image_size)
        test_dir = next((directory / n for n in ("test", "val") if (directory / n).is_dir()), None)
        test = read_image_folder(test_dir, image_size, train.classes) if test_dir else None
        if test is None:
            notes.append("no test/ or val/ folder: no test split")
    else:
        train = read_image_folder(directory, image_size)
        test = None
        notes.append("no train/ folder: the whole tree is training data and there is no test split")
    return train, test, notes


def _fashion_mosaic(
    path: Path | None, cfg: MosaicConfig, val_fraction: float, seed: int, channels: int | None
) -> DataSplits:
    """Mosaics from disjoint item pools: train and val from two parts of Fashion-MNIST's training
    images (split by ``val_fraction`` and ``seed``), test from its test images."""
    items, test_items, source = _fashion_mnist(path)
    train_pool, val_pool = split_train_val(items, val_fraction, seed)
    train = make_mosaics(train_pool, cfg.train, cfg, seed=seed, split="train")
    val = make_mosaics(val_pool, cfg.val, cfg, seed=seed, split="val")
    test = make_mosaics(test_items, cfg.test, cfg, seed=seed, split="test")
    if channels is not None:
        train, val, test = (d.with_channels(channels) for d in (train, val, test))
    mean, std = channel_stats(train)
    settings = ", ".join(f"{k} {v}" for k, v in cfg.to_dict().items())
    note = (f"mosaics of Fashion-MNIST items ({settings}; seed {seed}): train and val items from disjoint parts "
            "of the training images, test items from the test images")
    return DataSplits("fashion-mosaic", train, val, test, mean, std, f"{source} ({note})", (note,))


def load_data(
    data: str = "fashion-mnist",
    data_dir: str | Path | None = None,
    *,
    val_fraction: float = 1 / 6,
    seed: int = 0,
    channels: int | None = None,
    image_size: int = 64,
    synthetic_size: int = 512,
    mosaic: MosaicConfig | None = None,
) -> DataSplits:
    """Load a dataset and split its training part into train/validation (fixed by ``seed``).

    Args:
        data: ``fashion-mnist`` (default; Debian's package or ``data_dir``), ``fashion-mosaic``
            (multi-label mosaics of Fashion-MNIST items, :mod:`nas.data._mosaic`), ``cifar``
            (python-batch directory), ``image-folder`` (``data_dir/<class>/<image>``, or
            ``data_dir/train/...`` + ``data_dir/test/...``), ``labels-csv`` (multi-label:
            ``data_dir/labels.csv``, or ``train/labels.csv`` + ``test/labels.csv``, lines
            ``file,label1 label2``), ``coco`` (multi-label: ``data_dir/annotations/instances_train*.json``
            + ``instances_val*.json``, images in ``data_dir/<split>/`` or ``data_dir/images/<split>/``),
            ``synthetic`` (unit tests only), or a directory path whose format is detected.
        data_dir: directory for the formats that read files.
        val_fraction: share of the training set held out for validation (drives search).
        seed: seed of the split.
        channels: convert to this many channels (grayscale is repeated to 3 for RGB networks).
        image_size: side that image-folder, labels-csv and coco images are resized to when loaded.
        synthetic_size: number of synthetic training images.
        mosaic: how ``fashion-mosaic`` images are built (default :class:`MosaicConfig`).

    Raises:
        DataError: data missing or malformed; the message says how to get or fix it.
    """
    path = Path(data_dir) if data_dir is not None else None
    if data not in DATASETS:
        candidate = Path(data)
        if candidate.is_dir():
            path, data = candidate, detect_format(candidate)
        else:
            raise DataError(f"unknown dataset {data!r}: choose one of {DATASETS} or give a directory")
    notes: list[str] = []
    if data == "fashion-mosaic":
        return _fashion_mosaic(path, mosaic or MosaicConfig(), val_fraction, seed, channels)
    if data == "fashion-mnist":
        train, test, source = _fashion_mnist(path)
    elif data == "synthetic":
        train = synthetic_data(synthetic_size, seed=seed)
        test = synthetic_data(max(32, synthetic_size // 4), seed=seed + 1)
        source = "synthetic (unit tests only; never for reported results)"
        notes.append(source)
    else:
        if path is None:
            raise DataError(f"--data {data} needs --data-dir DIR")
        if not path.is_dir():
            raise DataError(f"data directory not found: {path}")
        if data == "cifar":
            train, test = read_cifar_batches(path)
        else:
            read = {"labels-csv": load_labels_csv, "coco": load_coco}.get(data)
            if read is not None:
                train, test, more = read(path, image_size)
            else:
                train, test, more = _image_folder(path, image_size, seed)
            notes.extend(more)
        source = str(path)
    if channels is not None:
        train = train.with_channels(channels)
        test = test.with_channels(channels) if test is not None else None
    train, val = split_train_val(train, val_fraction, seed)
    mean, std = channel_stats(train)
    return DataSplits(data, train, val, test, mean, std, source, tuple(notes))


