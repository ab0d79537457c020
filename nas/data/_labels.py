"""Multi-label user data: a ``labels.csv`` next to the images, or COCO ``instances_*.json`` files.

Both give :class:`ImageData` with uint8 multi-hot labels ``[N, len(classes)]``.

* **Labels CSV**: ``DIR/labels.csv`` (all training data), or ``DIR/train/labels.csv`` plus
  ``DIR/test/labels.csv`` (or ``DIR/val/labels.csv``) as the test split. Each line is
  ``file,label1 label2 ...``: an image path relative to the CSV's directory, a comma, and its labels
  separated by spaces (none for an image with no positive class); an optional header ``file,labels``.
  The classes are the sorted union of the training labels.
* **COCO**: ``DIR/annotations/instances_<split>.json`` with the images in ``DIR/<split>/`` or
  ``DIR/images/<split>/``; the ``instances_train*`` file is the training data, ``instances_val*``
  the test split. The classes are the categories ordered by id; an image is positive for every
  category it has an annotation of.

The files are untrusted: every line or JSON entry is checked before any image is read, paths must
stay inside the data directory, and a JSON file over :data:`MAX_JSON_BYTES` is refused unparsed.
Each problem is one :class:`DataError` naming the file and the line or entry (``images[3]``).
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np
import torch

from nas.data._formats import IMAGE_SUFFIXES, read_image
from nas.data._types import ImageData
from nas.errors import DataError

__all__ = [
    "LABELS_CSV",
    "MAX_JSON_BYTES",
    "LabelFile",
    "CocoSplit",
    "find_labels_csv",
    "find_coco",
    "parse_labels_csv",
    "read_labels_csv",
    "load_labels_csv",
    "parse_coco",
    "load_coco",
]

#: Name of the label file of the labels-CSV format.
LABELS_CSV = "labels.csv"
#: COCO annotation files larger than this are refused before parsing (``json.load`` needs several
#: times the file size in memory).
MAX_JSON_BYTES = 2 * 1024**3
#: Fewer images than this are read without a progress bar.
_PROGRESS_MIN_IMAGES = 500
_HEADER = ("file", "labels")
_ROW_FORM = (
    "each line must be 'file,labels': an image path relative to the CSV's folder, one comma, then the "
    "image's labels separated by spaces (e.g. 'img/0001.jpg,cat dog'; 'img/0002.jpg,' for no label)"
)


# ----------------------------------------------------------------------------------------- shared


def _abbreviate(names: Sequence[str], limit: int = 10) -> str:
    """``['a', 'b', ...]`` with at most ``limit`` names and a count of the rest."""
    shown = ", ".join(repr(n) for n in names[:limit])
    rest = len(names) - limit
    return f"[{shown}, ... ({rest} more)]" if rest > 0 else f"[{shown}]"


def _relative_path(name: str, where: str, root: Path) -> str:
    """``name`` as a normalised POSIX path relative to ``root`` (``./a//b.png`` -> ``a/b.png``).

    Raises:
        DataError: ``name`` is empty, absolute (``/x``, ``C:\\x``, ``\\\\server\\x``) or has a ``..``
            part (it would leave ``root``); the message starts with ``where``.
    """
    if not name:
        raise DataError(f"{where}: empty image path; {_ROW_FORM}")
    if PurePosixPath(name).is_absolute() or PureWindowsPath(name).anchor:
        raise DataError(f"{where}: {name!r} is an absolute path; image paths must be relative to {root}")
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if ".." in parts:
        raise DataError(f"{where}: {name!r} leaves the data directory ('..'); image paths must stay inside {root}")
    if not parts:
        raise DataError(f"{where}: {name!r} is a folder, not an image path; {_ROW_FORM}")
    return PurePosixPath(*parts).as_posix()


def _progress(items: Sequence, desc: str):
    """``items`` wrapped in a tqdm bar on stderr, or as they are when few or stderr is not a terminal."""
    if len(items) < _PROGRESS_MIN_IMAGES or not sys.stderr.isatty():
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="img", dynamic_ncols=True, file=sys.stderr)


def _read_images(files: Sequence[tuple[Path, str]], image_size: int, desc: str) -> torch.Tensor:
    """Images ``[(path, where it is listed), ...]`` -> uint8 ``[N, 3, image_size, image_size]``.

    Raises:
        DataError: an image cannot be read or is over PIL's decompression-bomb limit; the message
            names the image and where it is listed.
    """
    out = np.empty((len(files), 3, image_size, image_size), dtype=np.uint8)
    for i, (path, where) in enumerate(_progress(files, desc)):
        try:
            out[i] = read_image(path, image_size)
        except DataError as exc:
            raise DataError(f"{exc} (listed at {where})") from None
    return torch.from_numpy(out)


def _multi_hot(label_sets: Iterable[Iterable[int]], n: int, num_classes: int) -> torch.Tensor:
    """Class-index sets -> uint8 multi-hot ``[n, num_classes]``."""
    hot = np.zeros((n, num_classes), dtype=np.uint8)
    for row, indices in enumerate(label_sets):
        for c in indices:
            hot[row, c] = 1
    return torch.from_numpy(hot)


def _no_label_note(name: str, hot: torch.Tensor, what: str) -> list[str]:
    """A note saying how many images of a split have an all-zero label row (none when there are none)."""
    empty = int((hot.sum(dim=1) == 0).sum())
    return [f"{name}: {empty} of {len(hot)} images have {what} (all-zero label rows)"] if empty else []


# ------------------------------------------------------------------------------------- labels CSV


@dataclass(frozen=True)
class _Row:
    line: int
    file: str
    labels: tuple[str, ...]


@dataclass(frozen=True)
class LabelFile:
    """A parsed ``labels.csv``: its rows in file order (line number, image path, labels)."""

    path: Path
    rows: tuple[_Row, ...]

    @property
    def root(self) -> Path:
        """The folder the image paths are relative to."""
        return self.path.parent

    def where(self, row: _Row) -> str:
        return f"{self.path}, line {row.line}"

    @property
    def labels(self) -> tuple[str, ...]:
        """The sorted union of the labels of all rows."""
        return tuple(sorted({label for r in self.rows for label in r.labels}))


def find_labels_csv(directory: Path) -> tuple[Path, Path | None] | None:
    """The (train, test) label files of a labels-CSV directory, or None when it is not one.

    ``DIR/train/labels.csv`` (+ ``DIR/test/labels.csv`` or ``DIR/val/labels.csv``; test None if
    neither) or ``DIR/labels.csv`` (test None).

    Raises:
        DataError: both ``DIR/labels.csv`` and ``DIR/train/labels.csv`` exist, or a ``DIR/test/``
            (``DIR/val/``) folder next to ``DIR/train/labels.csv`` has no ``labels.csv``.
    """
    flat, train = directory / LABELS_CSV, directory / "train" / LABELS_CSV
    if flat.is_file() and train.is_file():
        raise DataError(
            f"{directory}: both {flat} and {train}; keep {flat} for one training set without a test split, "
            f"or train/{LABELS_CSV} + test/{LABELS_CSV} for a train/test split"
        )
    if flat.is_file():
        return flat, None
    if not train.is_file():
        return None
    tests = [directory / n / LABELS_CSV for n in ("test", "val")]
    test = next((p for p in tests if p.is_file()), None)
    if test is None:
        folder = next((p.parent for p in tests if p.parent.is_dir()), None)
        if folder is not None:
            raise DataError(
                f"{folder}: no {LABELS_CSV}; the test split of a labels-CSV directory needs "
                f"{folder / LABELS_CSV} listing its images (or remove the folder for no test split)"
            )
    return train, test


def _csv_rows(path: Path) -> Iterable[tuple[int, list[str]]]:
    """(line number, fields) of each non-blank CSV record of ``path`` (UTF-8, optional BOM).

    Raises:
        DataError: unreadable, not UTF-8 text, or malformed CSV (e.g. an unclosed quote, a NUL byte).
    """
    reader = None
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, strict=True)
            for fields in reader:
                if any(v.strip() for v in fields):
                    yield reader.line_num, fields
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from None
    except csv.Error as exc:
        line = reader.line_num if reader is not None else 1
        raise DataError(f"{path}, line {line}: malformed CSV ({exc}); {_ROW_FORM}") from None


def _parse_row(label_file: Path, line: int, fields: list[str]) -> _Row:
    """One ``file,labels`` record -> a row.

    Raises:
        DataError: not exactly two fields, or a bad image path (see :func:`_relative_path`).
    """
    where = f"{label_file}, line {line}"
    if len(fields) != 2:
        got = ",".join(fields)
        hint = " (separate labels with spaces, not commas)" if len(fields) > 2 else ""
        raise DataError(f"{where}: {got!r} has {len(fields)} field(s){hint}; {_ROW_FORM}")
    file = _relative_path(fields[0].strip(), where, label_file.parent)
    return _Row(line, file, tuple(dict.fromkeys(fields[1].split())))


def parse_labels_csv(path: Path) -> LabelFile:
    """Parse ``labels.csv`` (no image is opened).

    Raises:
        DataError: unreadable or malformed; no rows (an empty label file); a row that is not
            ``file,labels``; an absolute image path or one leaving the folder (``..``); an image
            listed twice (both lines named). The message names the file and line.
    """
    rows: list[_Row] = []
    seen: dict[str, int] = {}
    first = True
    for line, fields in _csv_rows(path):
        if first and tuple(v.strip().lower() for v in fields) == _HEADER:
            first = False
            continue
        first = False
        row = _parse_row(path, line, fields)
        if row.file in seen:
            raise DataError(
                f"{path}, line {row.line}: {row.file!r} is already listed on line {seen[row.file]}; "
                "list each image once, with all its labels separated by spaces"
            )
        seen[row.file] = row.line
        rows.append(row)
    if not rows:
        raise DataError(f"{path}: empty label file (no image lines); {_ROW_FORM}")
    return LabelFile(path, tuple(rows))


def _images_on_disk(root: Path) -> set[str]:
    """Relative POSIX paths of the image files (by suffix) under ``root``, hidden files and folders
    skipped, symlinked folders not followed."""
    found = set()
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        rel = Path(folder).relative_to(root)
        for name in files:
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES:
                found.add((rel / name).as_posix())
    return found


def _check_files(table: LabelFile) -> None:
    """Every listed image exists, and every image in the folder is listed.

    Raises:
        DataError: a listed image is missing (its line named), or images in the folder are not
            listed (how many, and a few of them).
    """
    for row in table.rows:
        if not (table.root / row.file).is_file():
            raise DataError(f"{table.where(row)}: image {row.file!r} not found in {table.root}")
    unlisted = sorted(_images_on_disk(table.root) - {r.file for r in table.rows})
    if unlisted:
        raise DataError(
            f"{table.path}: a label file that does not match the folder: {len(unlisted)} image(s) in "
            f"{table.root} are not listed, e.g. {_abbreviate(unlisted, 5)}; add a line for each "
            f"('file,' for an image with no label) or move them out of {table.root}"
        )


def _check_known(table: LabelFile, classes: tuple[str, ...]) -> None:
    """Every label of ``table`` is one of ``classes`` (the training classes).

    Raises:
        DataError: an unknown label; the message names its line and lists the known classes.
    """
    known = set(classes)
    for row in table.rows:
        unknown = [label for label in row.labels if label not in known]
        if unknown:
            raise DataError(
                f"{table.where(row)}: unknown class {unknown[0]!r}; the classes are the training labels, "
                f"{len(classes)} of them: {_abbreviate(classes, 20)}"
            )


def _checked(path: Path, classes: tuple[str, ...] | None) -> LabelFile:
    """:func:`parse_labels_csv` + the file and class checks.

    Raises:
        DataError: see :func:`parse_labels_csv`, :func:`_check_files` and :func:`_check_known`;
            also a training file with no label at all.
    """
    table = parse_labels_csv(path)
    if classes is None and not table.labels:
        raise DataError(f"{path}: no image has a label, so there are no classes; {_ROW_FORM}")
    if classes is not None:
        _check_known(table, classes)
    _check_files(table)
    return table


def _read_table(table: LabelFile, classes: tuple[str, ...], image_size: int) -> ImageData:
    """Read the images of a checked label file.

    Raises:
        DataError: an image cannot be read (the message names it and its line).
    """
    index = {c: i for i, c in enumerate(classes)}
    files = [(table.root / r.file, table.where(r)) for r in table.rows]
    images = _read_images(files, image_size, f"reading {table.path}")
    labels = _multi_hot(([index[label] for label in r.labels] for r in table.rows), len(table.rows), len(classes))
    return ImageData(images, labels, classes)


def read_labels_csv(path: Path, image_size: int, classes: tuple[str, ...] | None = None) -> ImageData:
    """One ``labels.csv`` and its images -> multi-label ImageData resized to ``image_size`` square.

    Args:
        path: the label file; image paths are relative to its folder.
        image_size: side the images are resized to.
        classes: the known classes (a test file); None: the sorted union of the file's labels.

    Raises:
        DataError: a malformed or empty file, a bad or duplicate path, a missing, unlisted or
            unreadable image, an unknown class; the message names the file and line.
    """
    table = _checked(path, classes)
    return _read_table(table, classes if classes is not None else table.labels, image_size)


def load_labels_csv(directory: Path, image_size: int) -> tuple[ImageData, ImageData | None, list[str]]:
    """A labels-CSV directory -> (train, test or None, notes). Both label files are checked before
    any image is read.

    Raises:
        DataError: no label file where expected, or any problem of :func:`read_labels_csv`.
    """
    found = find_labels_csv(directory)
    if found is None:
        raise DataError(
            f"{directory}: no {LABELS_CSV}; expected {directory / LABELS_CSV} or "
            f"{directory / 'train' / LABELS_CSV} (+ test/{LABELS_CSV}), {_ROW_FORM}"
        )
    train_path, test_path = found
    train_table = _checked(train_path, None)
    classes = train_table.labels
    test_table = _checked(test_path, classes) if test_path is not None else None
    train = _read_table(train_table, classes, image_size)
    test = _read_table(test_table, classes, image_size) if test_table is not None else None
    notes = _no_label_note(str(train_path), train.labels, "no label")
    if test is not None:
        notes += _no_label_note(str(test_path), test.labels, "no label")
    elif train_path.parent == directory:
        notes.append(f"{LABELS_CSV} at the top: all of it is training data and there is no test split")
    else:
        notes.append(f"no test/{LABELS_CSV} or val/{LABELS_CSV}: no test split")
    return train, test, notes


# ------------------------------------------------------------------------------------------- COCO


@dataclass(frozen=True)
class CocoSplit:
    """A parsed COCO instances file: categories by id, image files and their multi-hot labels."""

    path: Path
    image_dir: Path
    categories: tuple[tuple[int, str], ...]
    files: tuple[str, ...]
    labels: torch.Tensor

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(name for _, name in self.categories)


def _coco_image_dir(directory: Path, json_path: Path) -> Path:
    """``DIR/<split>/`` or ``DIR/images/<split>/`` for ``DIR/annotations/instances_<split>.json``.

    Raises:
        DataError: neither folder exists.
    """
    split = json_path.stem.removeprefix("instances_")
    candidates = [directory / split, directory / "images" / split]
    found = next((p for p in candidates if p.is_dir()), None)
    if found is None:
        raise DataError(f"{json_path}: no image folder for it; expected {candidates[0]} or {candidates[1]}")
    return found


def find_coco(directory: Path) -> tuple[Path, Path | None] | None:
    """The (train, test) instances files of a COCO directory, or None when it is not one.

    Train is ``DIR/annotations/instances_train*.json``, test ``instances_val*.json`` (None if absent).

    Raises:
        DataError: more than one train (or val) instances file.
    """
    ann = directory / "annotations"
    if not ann.is_dir():
        return None
    found = []
    for kind in ("train", "val"):
        files = sorted(p for p in ann.glob(f"instances_{kind}*.json") if p.is_file())
        if len(files) > 1:
            raise DataError(
                f"{ann}: {len(files)} {kind} instances files {[p.name for p in files]}; keep one "
                f"(instances_{kind}<split>.json with its images in {directory}/{kind}<split>/)"
            )
        found.append(files[0] if files else None)
    return (found[0], found[1]) if found[0] is not None else None


def _read_json(path: Path) -> dict:
    """A JSON object from ``path``, refused unparsed when over :data:`MAX_JSON_BYTES`.

    Raises:
        DataError: unreadable, too large, not UTF-8 JSON, or not a JSON object.
    """
    try:
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise DataError(
                f"{path}: {size} bytes is over the {MAX_JSON_BYTES}-byte limit on annotation files "
                "(nas.data._labels.MAX_JSON_BYTES); split it, or drop the 'segmentation' fields"
            )
        with path.open("rb") as f:
            doc = json.load(f)
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 JSON ({exc.reason} at byte {exc.start})") from None
    except RecursionError:
        raise DataError(f"{path}: JSON nested too deeply to be a COCO annotation file") from None
    if not isinstance(doc, dict):
        raise DataError(
            f"{path}: not a JSON object (got a {type(doc).__name__}); a COCO instances file is an object "
            "with 'images', 'annotations' and 'categories' lists"
        )
    return doc


def _entries(doc: dict, key: str, path: Path) -> list:
    """``doc[key]``, which must be a list.

    Raises:
        DataError: the key is missing or not a list.
    """
    if key not in doc:
        raise DataError(
            f"{path}: missing key {key!r}; a COCO instances file has 'images', 'annotations' and 'categories'"
        )
    if not isinstance(doc[key], list):
        raise DataError(f"{path}: {key!r} must be a list, got a {type(doc[key]).__name__}")
    return doc[key]


def _field(entry: object, key: str, kind: type, where: str) -> int | str:
    """``entry[key]``, an int (not a bool) or a non-empty str as ``kind`` says.

    Raises:
        DataError: the entry is not an object, or the key is missing or of the wrong type.
    """
    if not isinstance(entry, dict):
        raise DataError(f"{where}: must be a JSON object, got a {type(entry).__name__}")
    if key not in entry:
        raise DataError(f"{where}: missing key {key!r}")
    value = entry[key]
    if kind is int and (not isinstance(value, int) or isinstance(value, bool)):
        raise DataError(f"{where}: {key!r} must be an integer, got {value!r}")
    if kind is str and (not isinstance(value, str) or not value.strip()):
        raise DataError(f"{where}: {key!r} must be a non-empty string, got {value!r}")
    return value


def _coco_categories(doc: dict, path: Path) -> tuple[tuple[int, str], ...]:
    """(id, name) of each category, ordered by id.

    Raises:
        DataError: a malformed entry, a repeated id or name, or no category at all.
    """
    by_id: dict[int, tuple[int, str]] = {}
    names: dict[str, int] = {}
    for i, entry in enumerate(_entries(doc, "categories", path)):
        where = f"{path}: categories[{i}]"
        cid, name = _field(entry, "id", int, where), _field(entry, "name", str, where)
        if cid in by_id:
            raise DataError(f"{where}: category id {cid} is already used by categories[{by_id[cid][0]}]")
        if name in names:
            raise DataError(f"{where}: category name {name!r} is already used by categories[{names[name]}]")
        by_id[cid], names[name] = (i, name), i
    if not by_id:
        raise DataError(f"{path}: 'categories' is empty; at least one category is needed")
    return tuple((cid, by_id[cid][1]) for cid in sorted(by_id))


def _coco_images(doc: dict, path: Path, image_dir: Path) -> tuple[dict[int, int], list[str]]:
    """(image id -> row, file name of each row) of the ``images`` entries.

    Raises:
        DataError: a malformed entry, a repeated id or file, a bad path, or no image at all.
    """
    rows: dict[int, int] = {}
    files: list[str] = []
    seen: dict[str, int] = {}
    for i, entry in enumerate(_entries(doc, "images", path)):
        where = f"{path}: images[{i}]"
        iid, name = _field(entry, "id", int, where), _field(entry, "file_name", str, where)
        if iid in rows:
            raise DataError(f"{where}: image id {iid} is already used by images[{rows[iid]}]")
        file = _relative_path(name, where, image_dir)
        if file in seen:
            raise DataError(f"{where}: file {file!r} is already listed as images[{seen[file]}]; list each image once")
        rows[iid], seen[file] = i, i
        files.append(file)
    if not files:
        raise DataError(f"{path}: 'images' is empty; at least one image is needed")
    return rows, files


def _coco_labels(doc: dict, path: Path, rows: dict[int, int], categories: dict[int, int]) -> list[set[int]]:
    """The class indices of each image row, from the ``annotations`` entries.

    Raises:
        DataError: a malformed annotation, or one whose image_id or category_id is unknown.
    """
    labels: list[set[int]] = [set() for _ in rows]
    for i, entry in enumerate(_entries(doc, "annotations", path)):
        where = f"{path}: annotations[{i}]"
        iid, cid = _field(entry, "image_id", int, where), _field(entry, "category_id", int, where)
        if iid not in rows:
            raise DataError(f"{where}: image_id {iid} is not the id of any entry of 'images'")
        if cid not in categories:
            raise DataError(
                f"{where}: category_id {cid} is not the id of any entry of 'categories' "
                f"(ids: {_abbreviate([str(c) for c in categories], 20)})"
            )
        labels[rows[iid]].add(categories[cid])
    return labels


def parse_coco(path: Path, image_dir: Path) -> CocoSplit:
    """Parse a COCO instances file (no image is opened; the files are checked to exist).

    Raises:
        DataError: too large, not a JSON object, a missing key, a malformed entry, an annotation
            whose image_id or category_id is unknown, a missing image file; the message names the
            file and entry (``annotations[12]``).
    """
    doc = _read_json(path)
    categories = _coco_categories(doc, path)
    rows, files = _coco_images(doc, path, image_dir)
    index = {cid: k for k, (cid, _) in enumerate(categories)}
    labels = _coco_labels(doc, path, rows, index)
    for i, file in enumerate(files):
        if not (image_dir / file).is_file():
            raise DataError(f"{path}: images[{i}]: file_name {file!r} not found in {image_dir}")
    return CocoSplit(path, image_dir, categories, tuple(files), _multi_hot(labels, len(files), len(categories)))


def _check_same_categories(train: CocoSplit, test: CocoSplit) -> None:
    """The test file has the training categories (same ids, same names).

    Raises:
        DataError: they differ; the message says the first difference.
    """
    if test.categories == train.categories:
        return
    a, b = dict(train.categories), dict(test.categories)
    c = next(c for c in sorted(a.keys() | b.keys()) if a.get(c) != b.get(c))
    diff = f"category id {c}: " + (f"{a[c]!r}" if c in a else "none") + " in the training file"
    diff += f", {b[c]!r} here" if c in b else ", none here"
    raise DataError(
        f"{test.path}: its categories differ from those of {train.path} ({diff}); "
        "both files need the same categories (ids and names)"
    )


def _read_split(split: CocoSplit, image_size: int) -> ImageData:
    """Read the images of a parsed split.

    Raises:
        DataError: an image cannot be read (the message names it and its entry).
    """
    files = [(split.image_dir / f, f"{split.path}: images[{i}]") for i, f in enumerate(split.files)]
    images = _read_images(files, image_size, f"reading {split.image_dir}")
    return ImageData(images, split.labels, split.classes)


def load_coco(directory: Path, image_size: int) -> tuple[ImageData, ImageData | None, list[str]]:
    """A COCO directory -> (train, test or None, notes). Both files are checked before any image
    is read.

    Raises:
        DataError: no instances file where expected, or any problem of :func:`parse_coco`; test
            categories that differ from the training ones.
    """
    found = find_coco(directory)
    if found is None:
        raise DataError(
            f"{directory}: no COCO annotations; expected {directory}/annotations/instances_train<split>.json "
            f"(e.g. instances_train2017.json) with its images in {directory}/train<split>/ or "
            f"{directory}/images/train<split>/"
        )
    train_path, test_path = found
    train_split = parse_coco(train_path, _coco_image_dir(directory, train_path))
    test_split = parse_coco(test_path, _coco_image_dir(directory, test_path)) if test_path is not None else None
    if test_split is not None:
        _check_same_categories(train_split, test_split)
    train = _read_split(train_split, image_size)
    test = _read_split(test_split, image_size) if test_split is not None else None
    notes = _no_label_note(str(train_path), train.labels, "no annotation")
    if test is not None:
        notes += _no_label_note(str(test_path), test.labels, "no annotation")
    else:
        notes.append("no annotations/instances_val*.json: no test split")
    return train, test, notes
