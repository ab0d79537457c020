"""The real default dataset, from Debian's dataset-fashion-mnist package (installed by CI)."""

from __future__ import annotations

import pytest

from nas.data import FASHION_MNIST_DIR, load_data

pytestmark = pytest.mark.skipif(
    not FASHION_MNIST_DIR.is_dir(),
    reason="Debian package dataset-fashion-mnist not installed (scripts/install.sh installs it)",
)


def test_fashion_mnist_from_debian():
    splits = load_data("fashion-mnist", seed=0)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (50000, 10000, 10000)
    assert splits.native_resolution == 28 and splits.channels == 1
    assert sorted(set(splits.test.labels.tolist())) == list(range(10))
    assert 0.2 < splits.mean[0] < 0.4


def test_a_data_dir_that_does_not_exist_is_named(tmp_path):
    from nas.errors import DataError

    with pytest.raises(DataError, match="--data-dir .*nowhere: no such directory"):
        load_data("fashion-mnist", tmp_path / "nowhere")
    with pytest.raises(DataError, match="Fashion-MNIST not found in"):  # a folder without the files
        load_data("fashion-mnist", tmp_path)
