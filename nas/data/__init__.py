"""Datasets: Fashion-MNIST (default, Debian package), fashion-mosaic (multi-label), CIFAR batches, image
folders, multi-label user data (labels CSV, COCO instances), synthetic."""

from nas.data._batches import MAX_RESOLUTION, check_resolution, iterate_batches, to_float
from nas.data._mosaic import MosaicConfig, make_mosaics
from nas.data._formats import read_cifar_batches, read_idx, read_image_folder
from nas.data._labels import MAX_JSON_BYTES, load_coco, load_labels_csv, read_labels_csv
from nas.data._load import (
    DATASETS,
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_DIR,
    detect_format,
    load_data,
    synthetic_data,
)
from nas.data._types import DataSplits, ImageData, split_train_val

__all__ = [
    "DATASETS",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DIR",
    "MAX_JSON_BYTES",
    "MAX_RESOLUTION",
    "MosaicConfig",
    "DataSplits",
    "ImageData",
    "check_resolution",
    "detect_format",
    "iterate_batches",
    "load_coco",
    "load_data",
    "load_labels_csv",
    "make_mosaics",
    "read_cifar_batches",
    "read_idx",
    "read_image_folder",
    "read_labels_csv",
    "split_train_val",
    "synthetic_data",
    "to_float",
]
