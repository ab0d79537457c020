"""The composition model: fitting its terms on whole networks, the header's terms, predictions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nas.cost import layer_cost
from nas.latency import Entry, LatencyTable, LatencyTableError, SpaceRef, min_latency, predict_latency, space_layers
from nas.latency._build import composition_spaces
from nas.latency._composition import TERMS, composition_features, fit_terms
from nas.shapes import walk


def _networks(space, n, seed=0):
    rng = np.random.default_rng(seed)
    return [walk(space.resolve(space.sample(rng), num_classes=10)) for _ in range(n)]


def _synthetic(space, terms, n=24, overhead=0.004, noise=0.0, seed=0):
    """Networks of ``space`` whose 'measured' time follows ``terms`` exactly (plus relative noise);
    each key's time alone grows with its work, so the terms are identifiable."""
    nets = _networks(space, n, seed)
    raw = {l.key: 0.002 + 1e-8 * layer_cost(l).madds for ls in nets for l in ls}
    rows = np.array([sum(composition_features(l, raw[l.key]) for l in ls) for ls in nets])
    uncorrected = np.array([overhead + sum(raw[l.key] for l in ls) for ls in nets])
    theta = np.array([terms.get(t, 0.0) for t in TERMS])
    rng = np.random.default_rng(seed + 1)
    ms = (uncorrected + rows @ theta) * (1 + noise * rng.standard_normal(n))
    return rows, uncorrected, ms


def test_fit_recovers_the_terms_that_made_the_times(micro_space, tiny_space):
    truth = {"layer": -0.0004, "host_ms": -0.1, "written_melems": 0.3}
    parts = [_synthetic(s, truth, seed=i) for i, s in enumerate((micro_space, tiny_space))]
    rows, unc, ms = (np.concatenate([p[j] for p in parts]) for j in range(3))
    groups = ["micro"] * 24 + ["tiny"] * 24
    fit = fit_terms(rows, unc, ms, groups)
    assert fit["model"] == "traffic"
    for name, value in truth.items():
        assert fit["terms"][name] == pytest.approx(value, rel=1e-3, abs=1e-7)
    assert fit["cv"]["median_abs_error_pct"] < 1e-3
    assert fit["per_space"]["tiny"]["median_abs_error_pct_after"] < 1e-3
    assert fit["per_space"]["micro"]["median_abs_error_pct_before"] > 1  # there was something to correct


def test_a_constant_is_kept_when_more_terms_do_not_help(micro_space):
    rows, unc, ms = _synthetic(micro_space, {"layer": 0.0007}, noise=0.01)
    fit = fit_terms(rows, unc, ms, ["micro"] * len(ms))
    assert fit["model"] == "constant"
    assert fit["terms"]["host_ms"] == 0.0 and fit["terms"]["written_melems"] == 0.0
    assert fit["terms"]["layer"] == pytest.approx(0.0007, rel=0.2)
    assert set(fit["candidates"]) == {"constant", "affine", "traffic"}


def test_terms_stay_in_their_ranges(micro_space):
    # times that would want a layer to run 3x faster in a network and traffic to cost < 0
    rows, unc, ms = _synthetic(micro_space, {"host_ms": -0.9, "written_melems": -0.5})
    ms = np.maximum(ms, 1e-3)
    fit = fit_terms(rows, unc, ms, ["micro"] * len(ms), model="traffic")
    assert fit["terms"]["host_ms"] >= -0.5 - 1e-9 and fit["terms"]["written_melems"] >= 0.0


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda r, u, m: (r[:3], u[:3], m[:3]), "too few to fit"),
        (lambda r, u, m: (r, u, np.where(np.arange(len(m)) == 2, -1.0, m)), "finite number > 0"),
        (lambda r, u, m: (r, u, np.where(np.arange(len(m)) == 2, np.nan, m)), "finite number > 0"),
        (lambda r, u, m: (r[:, :2], u, m), "N x 3"),
    ],
)
def test_bad_fits_are_refused(micro_space, change, message):
    rows, unc, ms = change(*_synthetic(micro_space, {"layer": 0.001}, n=8))
    with pytest.raises(ValueError, match=message):
        fit_terms(rows, unc, ms, ["micro"] * len(ms))
    with pytest.raises(ValueError, match="model must be"):
        fit_terms(*_synthetic(micro_space, {}, n=8), ["m"] * 8, model="cubic")


def _table(header_factory, space, **header):
    keys = space_layers(space, (10,))
    entries = {k: Entry(0.02 + 0.001 * (i % 7)) for i, k in enumerate(sorted(keys))}
    h = header_factory(spaces=(SpaceRef(space.name, space.digest),), n_entries=len(keys), **header)
    return LatencyTable(h, entries)


TERMS_ON = {"layer_correction_ms": -0.001, "composition": {"model": "traffic", "terms": {"host_ms": 0.2, "written_melems": 1.5}}}


def test_prediction_applies_every_term_to_every_layer(header_factory, micro_space):
    table = _table(header_factory, micro_space, overhead_ms=0.005, **TERMS_ON)
    plain = _table(header_factory, micro_space, overhead_ms=0.005)
    for layers in _networks(micro_space, 10):
        raw = [plain.lookup(l.key) - 0.005 for l in layers]
        written = [layer_cost(l).activation_bytes / 4 / 1e6 for l in layers]
        expected = 0.005 + sum(r - 0.001 + 0.2 * r + 1.5 * w for r, w in zip(raw, written))
        assert table.predict_layers(layers) == pytest.approx(expected)
        # without terms: the old formula, sum(ms) - (n - 1) * overhead
        assert plain.predict_layers(layers) == pytest.approx(sum(plain.lookup(l.key) for l in layers) - 0.005 * (len(layers) - 1))


def test_old_tables_with_one_constant_predict_as_before(header_factory, micro_space):
    old = _table(header_factory, micro_space, overhead_ms=0.005, layer_correction_ms=0.002,
                 composition={"space": "micro", "subnets": 24, "per_layer_ms": 0.002})
    for layers in _networks(micro_space, 5):
        total = sum(old.lookup(l.key) for l in layers)
        n = len(layers)
        assert old.predict_layers(layers) == pytest.approx(total - (n - 1) * 0.005 + n * 0.002)


def test_min_latency_stays_exact_with_every_term(header_factory, micro_space):
    table = _table(header_factory, micro_space, overhead_ms=0.005, **TERMS_ON)
    floor, fastest = min_latency(table, micro_space, num_classes=10)
    assert predict_latency(table, fastest, space=micro_space, num_classes=10) == pytest.approx(floor)
    rng = np.random.default_rng(3)
    for _ in range(30):
        assert predict_latency(table, micro_space.sample(rng), space=micro_space, num_classes=10) >= floor - 1e-12


@pytest.mark.parametrize(
    "terms, message",
    [
        ({"host_ms": float("nan")}, "composition.terms.host_ms: must be a finite number"),
        ({"host_ms": -0.7}, r"composition.terms.host_ms: -0.7 is outside its allowed range"),
        ({"written_melems": -1.0}, "composition.terms.written_melems: -1.0 is outside"),
        ({"cubic": 1.0}, r"unknown term\(s\) \['cubic'\]"),
        ({"layer": 0.001}, "the per-layer constant is the header's layer_correction_ms"),
        ([1, 2], "composition.terms: must be a mapping"),
    ],
)
def test_broken_composition_terms_are_refused_on_load(tmp_path, header_factory, micro_space, terms, message):
    table = _table(header_factory, micro_space)
    path = table.save(tmp_path / "dev.json")
    data = json.loads(path.read_text())
    data["header"]["composition"] = {"model": "traffic", "terms": terms}
    path.write_text(json.dumps(data))
    with pytest.raises(LatencyTableError, match=message):
        LatencyTable.read(path)


def test_built_table_fits_its_composition_on_whole_subnets(micro_table, micro_space):
    comp = micro_table.header.composition
    assert comp["spaces"] == [{"name": micro_space.name, "digest": micro_space.digest}]
    assert comp["model"] in ("constant", "affine", "traffic") and set(comp["terms"]) == {"host_ms", "written_melems"}
    assert comp["per_space"][micro_space.name]["subnets"] == 4
    assert micro_table.header.composition_terms["layer"] == micro_table.header.layer_correction_ms


def test_composition_spans_the_built_spaces_and_the_shipped_ones_already_covered(micro_space):
    from nas.space import load_space

    shipped = load_space("mobilenetv3_small32")
    refs = [SpaceRef(shipped.name, shipped.digest), SpaceRef("custom", "0123456789abcdef"),
            SpaceRef(shipped.name, "fedcba9876543210")]  # a custom space not given again; an edited one
    spaces, missing = composition_spaces([micro_space], refs)
    assert [s.name for s in spaces] == [micro_space.name, shipped.name]
    assert missing == refs[1:]


def test_build_refuses_too_few_composition_subnets(tmp_path, micro_space, fast_settings):
    from nas.latency._build import build_table

    with pytest.raises(ValueError, match="composition_subnets must be 0 .* or an integer >= 4"):
        build_table("dev", tmp_path / "t.json", spaces=[micro_space], settings=fast_settings, composition_subnets=2)
    assert not (tmp_path / "t.json").exists()
