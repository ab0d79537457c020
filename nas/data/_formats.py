"""Readers for the on-disk formats: IDX (Fashion-MNIST), CIFAR python batches, image folders.

Files from users are untrusted: CIFAR batches are pickles, so they are read with an unpickler that
only admits the few numpy constructors such a batch needs, never arbitrary globals.
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import torch

from nas.data._types import ImageData
from nas.errors import DataError

__all__ = ["read_idx", "read_idx_pair", "read_cifar_batches", "read_image", "read_image_folder", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _open(path: Path) -> bytes:
    """The bytes of ``path``, gunzipped when it is gzip-compressed.

    Raises:
        DataError: the file cannot be read, or it is a truncated or corrupt gzip file.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(
            f"{path}: truncated or corrupt gzip file ({str(exc) or type(exc).__name__}); download or copy it again"
        ) from None


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed) into a numpy array.

    Raises:
        DataError: unreadable, not IDX, truncated, or a truncated or corrupt gzip file.
    """
    data = _open(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        raise DataError(f"{path}: truncated IDX file (header of {len(data)} bytes for {ndim} dimensions)")
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    count = int(np.prod(dims))
    body = data[4 + 4 * ndim :]
    if len(body) != count * dtype.itemsize:
        raise DataError(f"{path}: truncated IDX file ({len(body)} bytes for shape {dims})")
    return np.frombuffer(body, dtype=dtype).reshape(dims)


def _find(directory: Path, stem: str) -> Path | None:
    for name in (stem, f"{stem}.gz"):
        if (directory / name).is_file():
            return directory / name
    return None


def read_idx_pair(directory: Path, prefix: str, classes: tuple[str, ...]) -> ImageData:
    """``{prefix}-images-idx3-ubyte[.gz]`` + ``{prefix}-labels-idx1-ubyte[.gz]`` -> ImageData."""
    img_path = _find(directory, f"{prefix}-images-idx3-ubyte")
    lbl_path = _find(directory, f"{prefix}-labels-idx1-ubyte")
    if img_path is None or lbl_path is None:
        raise DataError(f"{directory}: missing {prefix}-images-idx3-ubyte[.gz] or {prefix}-labels-idx1-ubyte[.gz]")
    images = read_idx(img_path)
    labels = read_idx(lbl_path)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(f"{directory}: {prefix} images {images.shape} and labels {labels.shape} do not match")
    if images.dtype != np.uint8:
        raise DataError(f"{img_path}: images must be unsigned bytes (IDX type 0x08), got {images.dtype}")
    if labels.dtype.kind not in "iu":
        raise DataError(f"{lbl_path}: labels must be integers, got {labels.dtype}")
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= len(classes)):
        raise DataError(
            f"{lbl_path}: labels must lie in [0, {len(classes)}) for {len(classes)} classes, "
            f"got [{int(labels.min())}, {int(labels.max())}]"
        )
    return ImageData(
        torch.from_numpy(images.copy()).unsqueeze(1),
        torch.from_numpy(labels.astype(np.int64)),
        classes,
    )


class _BatchUnpickler(pickle.Unpickler):
    """Admits only what a CIFAR python batch contains: dicts, lists, bytes and numpy arrays."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):  # noqa: D102
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data batch")


def _load_batch(path: Path) -> dict:
    try:
        obj = _BatchUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise DataError(f"{path}: not a CIFAR python batch ({exc})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: not a CIFAR python batch (expected a dict)")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def read_cifar_batches(directory: Path) -> tuple[ImageData, ImageData | None]:
    """A CIFAR-10/100 "python version" directory -> (train, test).

    Train batches are ``data_batch_*`` (CIFAR-10) or ``train`` (CIFAR-100); the test batch is
    ``test_batch`` or ``test``. Class names come from ``batches.meta`` / ``meta`` when present.
    """
    train_files = sorted(directory.glob("data_batch_*")) or [p for p in [directory / "train"] if p.is_file()]
    test_file = next((p for p in (directory / "test_batch", directory / "test") if p.is_file()), None)
    if not train_files:
        raise DataError(f"{directory}: no CIFAR batches (data_batch_1..5 or train) found")
    label_key = None

    def load(paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
        nonlocal label_key
        xs, ys = [], []
        for p in paths:
            b = _load_batch(p)
            key = "labels" if "labels" in b else "fine_labels" if "fine_labels" in b else None
            if "data" not in b or key is None:
                raise DataError(f"{p}: a CIFAR batch needs 'data' and 'labels' (or 'fine_labels')")
            label_key = key
            data = np.asarray(b["data"], dtype=np.uint8)
            if data.ndim != 2 or data.shape[1] % 3:
                raise DataError(f"{p}: 'data' must be [N, 3*H*W] uint8, got {data.shape}")
            side = int(round((data.shape[1] // 3) ** 0.5))
            xs.append(data.reshape(-1, 3, side, side))
            ys.append(np.asarray(b[key], dtype=np.int64))
        return np.concatenate(xs), np.concatenate(ys)

    x_train, y_train = load(train_files)
    n_classes = int(y_train.max()) + 1
    classes = tuple(str(i) for i in range(n_classes))
    for meta_name in ("batches.meta", "meta"):
        meta = directory / meta_name
        if meta.is_file():
            m = _load_batch(meta)
            names = m.get("label_names") if label_key == "labels" else m.get("fine_label_names")
            if names is not None and len(names) >= n_classes:
                classes = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
            break
    train = ImageData(torch.from_numpy(x_train), torch.from_numpy(y_train), classes)
    test = None
    if test_file is not None:
        x_test, y_test = load([test_file])
        test = ImageData(torch.from_numpy(x_test), torch.from_numpy(y_test), classes)
    return train, test


def read_image(path: Path, image_size: int) -> np.ndarray:
    """One image file -> uint8 ``[3, image_size, image_size]``.

    Images over PIL's decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``; PIL itself only
    warns between one and two times it) are refused before they are decoded; the limit is left as
    it is.

    Raises:
        DataError: unreadable, undecodable, or over the pixel limit; the message names the file.
    """
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                rgb = im.convert("RGB").resize((image_size, image_size), Image.BILINEAR)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataError(
            f"{path}: too many pixels to decode safely ({exc}; images over PIL.Image.MAX_IMAGE_PIXELS = "
            f"{Image.MAX_IMAGE_PIXELS} pixels are refused); shrink it (it is resized to {image_size} px anyway)"
        ) from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read image ({exc})") from None
    return np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1)


def read_image_folder(directory: Path, image_size: int, classes: tuple[str, ...] | None = None) -> ImageData:
    """``directory/<class>/<image>`` -> RGB ImageData resized to ``image_size`` square.

    Raises:
        DataError: no classes or images, a class not among ``classes``, or an image that cannot be
            read or is over PIL's decompression-bomb limit (the message names the file).
    """
    class_dirs = sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))
    if classes is None:
        classes = tuple(p.name for p in class_dirs)
    if not classes:
        raise DataError(f"{directory}: no class sub-folders (expected {directory}/<class>/<image files>)")
    index = {name: i for i, name in enumerate(classes)}
    images, labels = [], []
    for d in class_dirs:
        if d.name not in index:
            raise DataError(f"{d}: class {d.name!r} is not among the training classes {list(classes)}")
        for f in sorted(d.iterdir()):
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            images.append(read_image(f, image_size))
            labels.append(index[d.name])
    if not images:
        raise DataError(f"{directory}: no images with suffix {IMAGE_SUFFIXES} under its class folders")
    return ImageData(torch.from_numpy(np.stack(images)), torch.tensor(labels, dtype=torch.long), classes)
