"""Building a table on this machine: coverage, resume after interruption, protocol checks."""

from __future__ import annotations

import numpy as np
import pytest

from nas.latency import LatencyTable, LatencyTableError, MeasureSettings, Timer, load_table, min_latency, predict_latency, space_layers
from nas.latency._build import build_table
from nas.shapes import walk


def test_space_keys_cover_every_member(micro_space, tiny_space):
    for space in (micro_space, tiny_space):
        keys = space_layers(space, (10,))
        rng = np.random.default_rng(0)
        for _ in range(30):
            spec = space.resolve(space.sample(rng), num_classes=10)
            assert {l.key for l in walk(spec)} <= set(keys)


def test_built_table_covers_the_space(micro_table, micro_space):
    h = micro_table.header
    assert h.method == "measured" and h.complete and h.covers(micro_space.digest)
    assert h.intra_op_threads == 1 and h.statistic == "median" and h.units == "ms"
    assert 0 < h.overhead_ms < 0.2  # a few microseconds per call
    assert h.composition is not None and h.composition["subnets_per_space"] == 4
    assert set(micro_table.entries) == set(space_layers(micro_space, (10,)))
    assert all(e.ms > h.overhead_ms * 0.5 for e in micro_table.entries.values())
    arch = micro_space.largest()
    assert predict_latency(micro_table, arch, space=micro_space, num_classes=10) > 0


def test_min_latency_is_a_lower_bound_reached_by_its_arch(micro_table, micro_space):
    floor, fastest = min_latency(micro_table, micro_space, num_classes=10)
    assert fastest in micro_space
    assert predict_latency(micro_table, fastest, space=micro_space, num_classes=10) == pytest.approx(floor)
    rng = np.random.default_rng(1)
    for _ in range(20):
        arch = micro_space.sample(rng)
        assert predict_latency(micro_table, arch, space=micro_space, num_classes=10) >= floor - 1e-9


class _InterruptAfter(Timer):
    """A timer whose second chunk is interrupted (Ctrl-C in the middle of a build)."""

    calls = 0

    def time_models(self, models):
        type(self).calls += 1
        if type(self).calls == 2:
            raise KeyboardInterrupt
        return super().time_models(models)


def test_interrupted_build_keeps_measured_keys_and_resumes(tmp_path, micro_space, fast_settings):
    path = tmp_path / "dev.json"
    with pytest.raises(KeyboardInterrupt):
        build_table(
            "dev", path, spaces=[micro_space], num_classes=(10,), references=False,
            settings=fast_settings, chunk_size=5, composition_subnets=0, progress=False,
            timer_factory=_InterruptAfter,
        )  # fmt: skip
    partial = load_table(path)
    assert len(partial) == 5 and not partial.header.complete
    with pytest.raises(LatencyTableError, match="interrupted"):
        load_table(path, space=micro_space)  # not usable for a search yet
    kept = dict(partial.entries)
    table = build_table(
        "dev", path, spaces=[micro_space], num_classes=(10,), references=False,
        settings=fast_settings, chunk_size=5, composition_subnets=0, progress=False,
    )  # fmt: skip
    assert table.header.complete and len(table) == len(space_layers(micro_space, (10,)))
    assert all(table.entries[k] == e for k, e in kept.items())  # not measured again
    assert load_table(path, space=micro_space).device == "dev"


def test_extending_with_other_settings_is_refused(tmp_path, micro_table, micro_space, fast_settings):
    path = tmp_path / "dev.json"
    micro_table.save(path)
    other = MeasureSettings(warmup=1, rounds=2, repeats=3, intra_op_threads=2, max_retries=0)
    with pytest.raises(LatencyTableError, match="intra_op_threads"):
        build_table("dev", path, spaces=[micro_space], num_classes=(10,), references=False, settings=other, progress=False)
    # same settings, nothing left to measure: the table is reused as it is
    again = build_table(
        "dev", path, spaces=[micro_space], num_classes=(10,), references=False, settings=fast_settings, progress=False
    )
    assert dict(again.entries) == dict(micro_table.entries)
    assert again.header.overhead_ms == micro_table.header.overhead_ms
    assert again.header.composition == micro_table.header.composition  # fitted on this space already


def test_host_device_name_is_a_valid_table_name():
    from nas.latency import host_device_name
    from nas.latency._table import check_device_name

    name = host_device_name()
    assert check_device_name(name) == name and name.endswith("c")


def test_timer_accepts_chw_and_batch_one_shapes(fast_settings):
    from nas.latency._modules import onnx_bytes, overhead_module

    module, shape = overhead_module()
    model = onnx_bytes(module, shape)
    timer = Timer(fast_settings)
    a, b = timer.time_models([(model, shape), (model, (1, *shape))])
    assert a.ms > 0 and b.ms > 0
    with pytest.raises(ValueError, match="input_shape"):
        timer.time_models([(model, (2, 1, 1, 1))])


def test_an_int8_table_times_quantized_models_and_validates_them(tmp_path, micro_space, fast_settings):
    from dataclasses import replace

    from nas.latency import validate_table
    from nas.latency._build import build_table

    settings = replace(fast_settings, precision="int8")
    table = build_table("micro_int8", tmp_path / "t.json", spaces=[micro_space], num_classes=(10,),
                        references=False, settings=settings, composition_subnets=0, progress=False)
    assert table.header.precision == "int8"
    assert all(e.ms > 0 for e in table.entries.values())
    report = validate_table(table, micro_space, 2, num_classes=10, progress=False)
    assert report.settings["precision"] == "int8"
    # a float build cannot resume into the int8 file: another protocol
    from nas.latency import LatencyTableError

    with pytest.raises(LatencyTableError, match="precision: 'int8' vs 'fp32'"):
        build_table("micro_int8", tmp_path / "t.json", spaces=[micro_space], num_classes=(10,),
                    references=False, settings=fast_settings, composition_subnets=0, progress=False)


def test_a_table_extended_with_a_space_refits_its_composition_on_both(tmp_path, micro_table, micro_space, tiny_space,
                                                                        fast_settings):
    path = tmp_path / "dev.json"
    micro_table.save(path)
    # the micro space is not a shipped one: refused up front unless given again
    with pytest.raises(LatencyTableError, match=r"covers micro .* not a shipped space.*--space"):
        build_table("micro_dev", path, spaces=[tiny_space], num_classes=(10,), references=False,
                    settings=fast_settings, composition_subnets=4, progress=False)
    assert dict(LatencyTable.read(path).entries) == dict(micro_table.entries)  # nothing measured
    table = build_table("micro_dev", path, spaces=[tiny_space, micro_space], num_classes=(10,), references=False,
                        settings=fast_settings, composition_subnets=4, progress=False)
    comp = table.header.composition
    assert {s["digest"] for s in comp["spaces"]} == {micro_space.digest, tiny_space.digest}
    assert set(comp["per_space"]) == {micro_space.name, tiny_space.name}
    assert load_table(path, space=tiny_space).header.composition == comp


@pytest.mark.parametrize("spinning", [False, True])
def test_sessions_spin_only_when_the_settings_say(spinning):
    from nas.latency._modules import onnx_bytes, overhead_module
    from nas.latency._runner import make_session

    module, shape = overhead_module()
    settings = MeasureSettings(intra_op_threads=2, spinning=spinning)
    options = make_session(onnx_bytes(module, shape), settings).get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == ("1" if spinning else "0")
    with pytest.raises(ValueError, match="spinning must be true or false"):
        MeasureSettings(spinning="no")
