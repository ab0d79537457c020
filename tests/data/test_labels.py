"""Multi-label user data: labels CSV and COCO instances (tiny PNGs made here)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import nas.data._labels as labels_mod
from nas.data import DATASETS, detect_format, load_data, read_labels_csv
from nas.errors import DataError


def _png(path, seed=0, size=6):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size, size + 2, 3)).astype(np.uint8)).save(path)


def _csv_dir(root, rows, header=False):
    """``root/labels.csv`` with ``rows`` [(file, labels)] and a PNG for each file."""
    for i, (file, _) in enumerate(rows):
        _png(root / file, seed=i)
    lines = (["file,labels"] if header else []) + [f"{f},{lab}" for f, lab in rows]
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root / "labels.csv"


TRAIN_ROWS = [
    ("a.png", "dog cat"),
    ("sub/b.png", "cat"),
    ("sub/deep/c.png", ""),
    ("d.png", "bird"),
    ("e.png", "dog"),
    ("f.png", "cat bird"),
]


def _hot(labels, classes):
    return [[int(c in labels.split()) for c in classes] for labels in labels]


# ------------------------------------------------------------------------------------- labels CSV


def test_flat_labels_csv(tmp_path):
    _csv_dir(tmp_path, TRAIN_ROWS, header=True)
    (tmp_path / "sub" / "readme.txt").write_text("not an image")  # non-images are ignored
    assert detect_format(tmp_path) == "labels-csv"
    for data, data_dir in (("labels-csv", tmp_path), (str(tmp_path), None)):
        splits = load_data(data, data_dir, val_fraction=0.34, image_size=8)
        assert splits.name == "labels-csv" and splits.multi_label and splits.test is None
        assert splits.classes == ("bird", "cat", "dog")
        assert splits.train.images.shape[1:] == (3, 8, 8)
        assert splits.train.labels.dtype == torch.uint8
        assert len(splits.train) + len(splits.val) == 6
        assert any("no test split" in n for n in splits.notes)
        assert any("1 of 6 images have no label" in n for n in splits.notes)


def test_read_labels_csv_rows_in_file_order(tmp_path):
    path = _csv_dir(tmp_path, TRAIN_ROWS)
    data = read_labels_csv(path, 4)
    classes = ("bird", "cat", "dog")
    assert data.classes == classes
    assert data.labels.tolist() == _hot([lab for _, lab in TRAIN_ROWS], classes)
    first = np.asarray(Image.open(tmp_path / "a.png").convert("RGB").resize((4, 4), Image.BILINEAR))
    assert torch.equal(data.images[0], torch.from_numpy(first.transpose(2, 0, 1).copy()))


@pytest.mark.parametrize("test_name", ["test", "val"])
def test_train_and_test_labels_csv(tmp_path, test_name):
    _csv_dir(tmp_path / "train", TRAIN_ROWS)
    _csv_dir(tmp_path / test_name, [("x.png", "cat"), ("y.png", ""), ("z/w.png", "dog bird")])
    assert detect_format(tmp_path) == "labels-csv"
    splits = load_data(str(tmp_path), val_fraction=0.34, image_size=8)
    assert splits.name == "labels-csv" and splits.classes == ("bird", "cat", "dog")
    assert splits.test.labels.tolist() == [[0, 1, 0], [0, 0, 0], [1, 0, 1]]
    assert splits.test.classes == splits.classes


def test_train_without_test_csv_has_no_test_split(tmp_path):
    _csv_dir(tmp_path / "train", TRAIN_ROWS)
    splits = load_data("labels-csv", tmp_path, val_fraction=0.34, image_size=8)
    assert splits.test is None and any("no test split" in n for n in splits.notes)


def test_labels_csv_wins_over_image_folder_detection(tmp_path):
    _csv_dir(tmp_path, TRAIN_ROWS)  # has sub-folders, like an image folder
    assert detect_format(tmp_path) == "labels-csv"


def _expect(tmp_path, rows_text, match, files=("a.png", "b.png"), subdir=""):
    root = tmp_path / subdir if subdir else tmp_path
    for i, f in enumerate(files):
        _png(root / f, seed=i)
    (root / "labels.csv").write_bytes(rows_text.encode() if isinstance(rows_text, str) else rows_text)
    with pytest.raises(DataError, match=match) as info:
        load_data("labels-csv", tmp_path, image_size=8)
    assert "labels.csv" in str(info.value)
    return str(info.value)


@pytest.mark.parametrize(
    "text, match",
    [
        ("", r"labels\.csv: empty label file"),
        ("file,labels\n\n", r"labels\.csv: empty label file"),
        ("a.png,cat\nb.png\n", r"labels\.csv, line 2: .*1 field.*file,labels"),
        ("a.png,cat\nb.png,cat,dog\n", r"labels\.csv, line 2: .*3 field.*spaces, not commas"),
        ("a.png,cat\n,dog\n", r"labels\.csv, line 2: empty image path"),
        ("a.png,cat\n/etc/b.png,dog\n", r"labels\.csv, line 2: '/etc/b.png' is an absolute path"),
        ("a.png,cat\nC:\\b.png,dog\n", r"labels\.csv, line 2: .* is an absolute path"),
        ("a.png,cat\n../b.png,dog\n", r"labels\.csv, line 2: '../b.png' leaves the data directory"),
        ("a.png,cat\nsub/../../b.png,dog\n", r"labels\.csv, line 2: .*leaves the data directory"),
        ("a.png,cat\nb.png,dog\nmissing.png,dog\n", r"labels\.csv, line 3: image 'missing.png' not found"),
        ("a.png,cat\nb.png,dog\n./a.png,cat\n", r"labels\.csv, line 3: 'a.png' is already listed on line 1"),
        ('a.png,cat\n"b.png,dog\n', r"labels\.csv, line \d: malformed CSV"),
        (b"a.png,cat\nb.png,\xff\n", r"labels\.csv: not UTF-8"),
        ("a.png,\nb.png,\n", r"labels\.csv: no image has a label"),
    ],
)
def test_bad_labels_csv(tmp_path, text, match):
    _expect(tmp_path, text, match)


def test_unlisted_images_are_counted_and_named(tmp_path):
    message = _expect(tmp_path, "a.png,cat\n", r"label file that does not match the folder",
                      files=("a.png", "b.png", "sub/c.png", "d.jpg"))
    assert "3 image(s)" in message and "'b.png'" in message and "'sub/c.png'" in message


def test_unreadable_image_names_file_and_line(tmp_path):
    _png(tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes(b"not a png")
    (tmp_path / "labels.csv").write_text("a.png,cat\nb.png,dog\n")
    with pytest.raises(DataError, match=r"b\.png: cannot read image .*labels\.csv, line 2"):
        load_data("labels-csv", tmp_path, image_size=8)


def test_unknown_test_class_lists_known_ones(tmp_path):
    _csv_dir(tmp_path / "train", TRAIN_ROWS)
    _csv_dir(tmp_path / "test", [("x.png", "cat"), ("y.png", "cat horse")])
    with pytest.raises(DataError, match=r"test/labels\.csv, line 2: unknown class 'horse'.*'bird', 'cat', 'dog'"):
        load_data(str(tmp_path), image_size=8)


def test_unknown_class_list_is_abbreviated(tmp_path):
    rows = [(f"{i}.png", f"c{i:02d}") for i in range(30)]
    _csv_dir(tmp_path / "train", rows)
    _csv_dir(tmp_path / "test", [("x.png", "nope")])
    with pytest.raises(DataError, match=r"line 1: unknown class 'nope'.*30 of them.*\(10 more\)"):
        load_data("labels-csv", tmp_path, image_size=8)


def test_ambiguous_and_incomplete_layouts(tmp_path):
    _csv_dir(tmp_path / "train", TRAIN_ROWS)
    (tmp_path / "test").mkdir()
    with pytest.raises(DataError, match=r"test: no labels\.csv"):
        load_data("labels-csv", tmp_path, image_size=8)
    (tmp_path / "test").rmdir()
    (tmp_path / "labels.csv").write_text("train/a.png,cat\n")
    with pytest.raises(DataError, match="both"):
        detect_format(tmp_path)
    with pytest.raises(DataError, match=r"no labels\.csv"):
        load_data("labels-csv", tmp_path / "train" / "sub", image_size=8)


# ------------------------------------------------------------------------------------------- COCO


def _coco_doc(files, annotations, categories=((3, "person"), (1, "bicycle"), (7, "dog"))):
    return {
        "info": {"year": 2017},
        "images": [{"id": 100 + i, "file_name": f, "width": 8, "height": 6} for i, f in enumerate(files)],
        "annotations": [{"id": k, "image_id": 100 + i, "category_id": c, "bbox": [0, 0, 1, 1]}
                        for k, (i, c) in enumerate(annotations)],
        "categories": [{"id": cid, "name": name, "supercategory": "x"} for cid, name in categories],
    }


def _coco_dir(root, images_sub=False, val=True, train_doc=None, val_doc=None):
    train_files = [f"{i:012d}.jpg" for i in range(6)]
    val_files = ["v0.png", "v1.png", "v2.png"]
    base = root / "images" if images_sub else root
    for i, f in enumerate(train_files):
        _png(base / "train2017" / f, seed=i)
    ann = root / "annotations"
    ann.mkdir(parents=True)
    train_doc = train_doc or _coco_doc(train_files, [(0, 3), (0, 3), (0, 7), (1, 1), (3, 7), (4, 3), (5, 1)])
    (ann / "instances_train2017.json").write_text(json.dumps(train_doc))
    if val:
        for i, f in enumerate(val_files):
            _png(base / "val2017" / f, seed=10 + i)
        val_doc = val_doc or _coco_doc(val_files, [(0, 1), (2, 7), (2, 3)])
        (ann / "instances_val2017.json").write_text(json.dumps(val_doc))
    return root


@pytest.mark.parametrize("images_sub", [False, True])
def test_coco_train_and_val(tmp_path, images_sub):
    _coco_dir(tmp_path, images_sub=images_sub)
    assert detect_format(tmp_path) == "coco"
    splits = load_data(str(tmp_path), val_fraction=0.34, image_size=8)
    assert splits.name == "coco" and splits.multi_label
    assert splits.classes == ("bicycle", "person", "dog")  # ordered by category id 1, 3, 7
    assert splits.test.labels.tolist() == [[1, 0, 0], [0, 0, 0], [0, 1, 1]]
    assert splits.test.images.shape == (3, 3, 8, 8)
    assert any("instances_train2017.json: 1 of 6 images have no annotation" in n for n in splits.notes)
    assert any("instances_val2017.json: 1 of 3 images have no annotation" in n for n in splits.notes)


def test_coco_train_labels(tmp_path):
    _coco_dir(tmp_path, val=False)
    train, test, notes = labels_mod.load_coco(tmp_path, 4)
    assert test is None and any("no test split" in n for n in notes)
    assert train.labels.tolist() == [[0, 1, 1], [1, 0, 0], [0, 0, 0], [0, 0, 1], [0, 1, 0], [1, 0, 0]]
    splits = load_data("coco", tmp_path, val_fraction=0.34, image_size=4)
    assert splits.test is None and len(splits.train) + len(splits.val) == 6


def _train_doc(**change):
    doc = _coco_doc([f"{i:012d}.jpg" for i in range(6)], [(0, 3), (1, 1)])
    doc.update(change)
    return doc


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda d: d.pop("annotations"), r"missing key 'annotations'"),
        (lambda d: d.update(images={}), r"'images' must be a list"),
        (lambda d: d["images"][3].pop("file_name"), r"images\[3\]: missing key 'file_name'"),
        (lambda d: d["images"][2].update(id="7"), r"images\[2\]: 'id' must be an integer"),
        (lambda d: d["images"][4].update(id=101), r"images\[4\]: image id 101 is already used by images\[1\]"),
        (lambda d: d["images"][4].update(file_name="000000000001.jpg"), r"images\[4\]: file .* already listed"),
        (lambda d: d["images"][1].update(file_name="../x.jpg"), r"images\[1\]: .*leaves the data directory"),
        (lambda d: d["images"][1].update(file_name="/x.jpg"), r"images\[1\]: .*absolute path"),
        (lambda d: d["images"][5].update(file_name="gone.jpg"), r"images\[5\]: file_name 'gone.jpg' not found"),
        (lambda d: d["annotations"].__setitem__(1, 5), r"annotations\[1\]: must be a JSON object"),
        (lambda d: d["annotations"][1].pop("category_id"), r"annotations\[1\]: missing key 'category_id'"),
        (lambda d: d["annotations"][1].update(image_id=999), r"annotations\[1\]: image_id 999 is not"),
        (lambda d: d["annotations"][0].update(category_id=2), r"annotations\[0\]: category_id 2 is not"),
        (lambda d: d["categories"][2].update(id=3), r"categories\[2\]: category id 3 is already used"),
        (lambda d: d["categories"][2].update(name="person"), r"categories\[2\]: category name 'person'"),
        (lambda d: d.update(categories=[]), r"'categories' is empty"),
        (lambda d: d.update(images=[], annotations=[]), r"'images' is empty"),
    ],
)
def test_bad_coco_entries(tmp_path, mutate, match):
    doc = _train_doc()
    mutate(doc)
    _coco_dir(tmp_path, val=False, train_doc=doc)
    with pytest.raises(DataError, match=r"instances_train2017\.json: " + match):
        load_data("coco", tmp_path, image_size=4)


@pytest.mark.parametrize(
    "content, match",
    [
        ("[1, 2]", r"not a JSON object \(got a list\)"),
        ('{"images": [', r"not valid JSON .* line 1"),
        ("[" * 100000 + "]" * 100000, r"JSON nested too deeply"),
    ],
)
def test_coco_not_an_object(tmp_path, content, match):
    _coco_dir(tmp_path, val=False)
    (tmp_path / "annotations" / "instances_train2017.json").write_text(content)
    with pytest.raises(DataError, match=r"instances_train2017\.json: " + match):
        load_data("coco", tmp_path, image_size=4)


def test_coco_too_large_is_refused_before_parsing(tmp_path, monkeypatch):
    _coco_dir(tmp_path, val=False)
    monkeypatch.setattr(labels_mod, "MAX_JSON_BYTES", 100)
    monkeypatch.setattr(labels_mod.json, "load", lambda f: pytest.fail("parsed a file over the limit"))
    with pytest.raises(DataError, match=r"instances_train2017\.json: \d+ bytes is over the 100-byte limit"):
        load_data(str(tmp_path), image_size=4)


def test_coco_val_categories_must_match(tmp_path):
    val_doc = _coco_doc(["v0.png", "v1.png", "v2.png"], [(0, 1)], categories=((1, "bicycle"), (3, "human"), (7, "dog")))
    _coco_dir(tmp_path, val_doc=val_doc)
    with pytest.raises(DataError, match=r"instances_val2017\.json: its categories differ .*id 3: 'person' .* 'human'"):
        load_data("coco", tmp_path, image_size=4)


def test_coco_val_entry_errors_name_the_val_file(tmp_path):
    val_doc = _coco_doc(["v0.png", "v1.png", "v2.png"], [(0, 1), (2, 9)])
    _coco_dir(tmp_path, val_doc=val_doc)
    with pytest.raises(DataError, match=r"instances_val2017\.json: annotations\[1\]: category_id 9"):
        load_data("coco", tmp_path, image_size=4)


def test_coco_unreadable_image_names_entry(tmp_path):
    _coco_dir(tmp_path, val=False)
    (tmp_path / "train2017" / "000000000002.jpg").write_bytes(b"garbage")
    match = r"000000000002\.jpg: cannot read image .*instances_train2017\.json: images\[2\]"
    with pytest.raises(DataError, match=match):
        load_data("coco", tmp_path, image_size=4)


def test_coco_layout_errors(tmp_path):
    _coco_dir(tmp_path, val=False)
    (tmp_path / "train2017").rename(tmp_path / "elsewhere")
    with pytest.raises(DataError, match=r"instances_train2017\.json: no image folder .*train2017"):
        load_data("coco", tmp_path, image_size=4)
    (tmp_path / "annotations" / "instances_train2014.json").write_text("{}")
    with pytest.raises(DataError, match=r"2 train instances files"):
        detect_format(tmp_path)
    with pytest.raises(DataError, match=r"no COCO annotations"):
        load_data("coco", tmp_path / "elsewhere", image_size=4)


def test_new_formats_are_datasets():
    assert {"labels-csv", "coco"} <= set(DATASETS)
    with pytest.raises(DataError, match="needs --data-dir"):
        load_data("coco")
