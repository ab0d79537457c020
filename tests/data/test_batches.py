from __future__ import annotations

import numpy as np
import pytest
import torch

from nas.data import MAX_RESOLUTION, iterate_batches, load_data, to_float


def test_batches_are_normalised_and_resized():
    splits = load_data("synthetic", synthetic_size=64)
    batches = list(iterate_batches(splits.train, splits, batch_size=10, resolution=24))
    assert sum(len(y) for _, y in batches) == len(splits.train)
    x = torch.cat([b for b, _ in batches])
    assert x.shape[1:] == (3, 24, 24)
    assert abs(float(x.mean())) < 0.1 and abs(float(x.std()) - 1) < 0.15


def test_shuffle_needs_a_generator_and_is_reproducible():
    splits = load_data("synthetic", synthetic_size=64)
    with pytest.raises(ValueError, match="rng"):
        next(iterate_batches(splits.train, splits, batch_size=8, shuffle=True))
    a = [y for _, y in iterate_batches(splits.train, splits, batch_size=8, shuffle=True, rng=np.random.default_rng(1))]
    b = [y for _, y in iterate_batches(splits.train, splits, batch_size=8, shuffle=True, rng=np.random.default_rng(1))]
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    limited = list(iterate_batches(splits.train, splits, batch_size=8, limit=20, drop_last=True))
    assert [len(y) for _, y in limited] == [8, 8]


def test_negative_limit_is_refused_not_sliced_from_the_end():
    splits = load_data("synthetic", synthetic_size=64)
    with pytest.raises(ValueError, match="limit must be >= 0 images"):
        next(iterate_batches(splits.val, splits, batch_size=8, limit=-3))


def test_absurd_resolution_is_refused_before_allocating():
    splits = load_data("synthetic", synthetic_size=64)
    images = splits.train.images[:1]
    with pytest.raises(ValueError, match=rf"resolution: 100000 px \(allowed: integer 1..{MAX_RESOLUTION}\)"):
        to_float(images, splits.mean, splits.std, 100_000)  # 1 x 3 x 100000^2 floats: 120 GB
    with pytest.raises(ValueError, match="resolution: 0 px"):
        next(iterate_batches(splits.train, splits, batch_size=8, resolution=0))
    assert to_float(images, splits.mean, splits.std, np.int64(MAX_RESOLUTION)).shape[-1] == MAX_RESOLUTION
