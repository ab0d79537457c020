"""Table format: overhead correction, missing keys, unknown devices, bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nas.latency import (
    Entry,
    LatencyTable,
    LatencyTableError,
    MissingKeyError,
    SpaceRef,
    UnknownDeviceError,
    load_table,
    predict_latency,
)
from nas.shapes import walk
from nas.space import Arch


@pytest.fixture
def table_for(header_factory):
    """A synthetic table covering a space, every key ``ms`` long."""

    def make(space, ms: float = 0.1, **header) -> LatencyTable:
        from nas.latency import space_layers

        keys = space_layers(space, (10,))
        h = header_factory(spaces=(SpaceRef(space.name, space.digest),), n_entries=len(keys), **header)
        return LatencyTable(h, {k: Entry(ms) for k in keys})

    return make


ARCH = "micro r32 w1 | k3e1r | k5e3r k3e3r | k3e3sh"


def test_prediction_counts_the_per_call_overhead_once(table_for, micro_space):
    table = table_for(micro_space, ms=0.1, overhead_ms=0.005)
    arch = Arch.from_string(ARCH)
    layers = walk(micro_space.resolve(arch, num_classes=10))
    assert len(layers) == 7
    # 7 layers timed alone = 7 calls; the network is one call: 6 overheads too many
    expected = 7 * 0.1 - 6 * 0.005
    assert predict_latency(table, arch, space=micro_space, num_classes=10) == pytest.approx(expected)
    no_overhead = table_for(micro_space, ms=0.1, overhead_ms=0.0)
    assert predict_latency(no_overhead, arch, space=micro_space, num_classes=10) == pytest.approx(0.7)


def test_walker_keys_are_the_table_keys(table_for, micro_space):
    arch = Arch.from_string(ARCH)
    keys = [l.key for l in walk(micro_space.resolve(arch, num_classes=10))]
    assert keys == [
        "stem-i3x32x32-o8x16x16-k3-s2-hswish",
        "bneck-i8x16x16-o8x16x16-e8-k3-s1-se0-relu-r1",
        "bneck-i8x16x16-o16x8x8-e24-k5-s2-se0-relu-r0",
        "bneck-i16x8x8-o16x8x8-e48-k3-s1-se0-relu-r1",
        "bneck-i16x8x8-o24x4x4-e48-k3-s2-se16-hswish-r0",
        "final_conv-i24x4x4-o32x4x4-hswish",
        "classifier-i32x4x4-o10x1x1-h48-hswish",
    ]
    table = table_for(micro_space)
    assert all(k in table for k in keys)


def test_missing_key_shows_the_key_and_the_command(table_for, micro_space):
    table = table_for(micro_space)
    arch = Arch.from_string(ARCH)
    with pytest.raises(MissingKeyError) as info:
        predict_latency(table, arch, space=micro_space, num_classes=1000)  # only 10 classes measured
    msg = str(info.value)
    assert "classifier-i32x4x4-o1000x1x1-h48-hswish" in msg
    assert "python -m nas.latency build --device fake_dev --num-classes 1000" in msg


def test_a_classifier_for_another_class_count_is_estimated_from_the_measured_counts(table_for, micro_space):
    table = table_for(micro_space)
    key = "classifier-i32x4x4-o{}x1x1-h48-hswish"
    entries = dict(table.entries) | {key.format(10): Entry(0.10), key.format(1000): Entry(0.40)}
    two = LatencyTable(table.header, entries)
    assert two.classifier_estimate(key.format(37)) == pytest.approx(0.10 + 27 * 0.30 / 990)
    assert two.classifier_estimate(key.format(2)) == pytest.approx(0.10 - 8 * 0.30 / 990)
    arch = Arch.from_string(ARCH)
    assert predict_latency(two, arch, space=micro_space, num_classes=37) > predict_latency(
        two, arch, space=micro_space, num_classes=10)
    assert two.missing(walk(micro_space.resolve(arch, num_classes=37))) == []
    # one measured count (10): fewer outputs at its time, more are not guessed
    assert table.classifier_estimate(key.format(2)) == pytest.approx(0.1)
    assert table.classifier_estimate(key.format(11)) is None
    assert table.classifier_estimate("final_conv-i24x4x4-o32x4x4-hswish") is None


def test_missing_block_key_message(table_for, micro_space):
    table = table_for(micro_space)
    with pytest.raises(MissingKeyError, match=r"(?s)bneck-i1x1x1.*python -m nas.latency build --device fake_dev"):
        table.lookup("bneck-i1x1x1-o1x1x1-e1-k3-s1-se0-relu-r1")


def test_save_and_load_round_trip(table_for, tmp_path, micro_space):
    table = table_for(micro_space)
    table.save(tmp_path / "fake_dev.json")
    back = load_table("fake_dev", space=micro_space, tables_dir=tmp_path)
    assert back.header == table.header.__class__(**{**table.header.__dict__, "n_entries": len(table)})
    assert dict(back.entries) == dict(table.entries)
    assert load_table(tmp_path / "fake_dev.json").device == "fake_dev"


def test_unknown_device_lists_available_tables(table_for, tmp_path, micro_space):
    table_for(micro_space).save(tmp_path / "fake_dev.json")
    with pytest.raises(UnknownDeviceError, match=r"'nope'.*available: fake_dev"):
        load_table("nope", tables_dir=tmp_path)
    with pytest.raises(UnknownDeviceError):
        load_table("../etc/passwd", tables_dir=tmp_path)


def test_table_for_another_space_is_rejected_before_search(table_for, tmp_path, micro_space, tiny_space):
    table_for(micro_space).save(tmp_path / "fake_dev.json")
    with pytest.raises(LatencyTableError, match=r"(?s)built for micro .*not for search space 'tiny'.*--space"):
        load_table("fake_dev", space=tiny_space, tables_dir=tmp_path)


def test_truncated_file_is_a_clear_error(table_for, tmp_path, micro_space):
    path = table_for(micro_space).save(tmp_path / "fake_dev.json")
    text = path.read_text()
    path.write_text(text[: len(text) // 2])
    with pytest.raises(LatencyTableError, match="corrupted or truncated"):
        load_table("fake_dev", tables_dir=tmp_path)


def test_dropped_entries_are_detected(table_for, tmp_path, micro_space):
    path = table_for(micro_space).save(tmp_path / "fake_dev.json")
    data = json.loads(path.read_text())
    data["entries"].pop(next(iter(data["entries"])))
    path.write_text(json.dumps(data))
    with pytest.raises(LatencyTableError, match="truncated or edited"):
        load_table("fake_dev", tables_dir=tmp_path)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda d: d["entries"].__setitem__(next(iter(d["entries"])), {"ms": -1}), "corrupted entries"),
        (lambda d: d["entries"].__setitem__(next(iter(d["entries"])), {"ms": "fast"}), "corrupted entries"),
        (lambda d: d["header"].pop("overhead_ms"), r"missing \['overhead_ms'\]"),
        (lambda d: d["header"].__setitem__("method", "guessed"), "method"),
        (lambda d: d["header"].__setitem__("intra_op_threads", 0), "intra_op_threads"),
        (lambda d: d["header"].__setitem__("spinning", "no"), "spinning: must be true or false"),
        (lambda d: d.__setitem__("format", "other/2"), "format"),
        (lambda d: d["header"].__setitem__("spaces", [{"name": "x", "digest": "zz"}]), "digest"),
    ],
)
def test_corrupted_content_is_a_clear_error(table_for, tmp_path, micro_space, edit, match):
    path = table_for(micro_space).save(tmp_path / "fake_dev.json")
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    with pytest.raises(LatencyTableError, match=match):
        load_table(path)


@pytest.mark.parametrize(("threads", "spinning"), [(1, False), (2, True)])
def test_a_header_written_before_spinning_was_recorded_says_what_was_done(table_for, tmp_path, micro_space, threads,
                                                                            spinning):
    path = table_for(micro_space, intra_op_threads=threads).save(tmp_path / "fake_dev.json")
    data = json.loads(path.read_text())
    del data["header"]["spinning"]
    path.write_text(json.dumps(data))
    header = load_table(path).header
    assert header.spinning is spinning
    assert header.same_protocol(table_for(micro_space, intra_op_threads=threads, spinning=not spinning).header) == [
        "spinning"]


def test_not_json_at_all(tmp_path: Path):
    (tmp_path / "bad.json").write_bytes(b"\x00\x01garbage")
    with pytest.raises(LatencyTableError, match="bad.json"):
        load_table("bad", tables_dir=tmp_path)


# -- header terms that would make predictions negative ----------------------------------------------
@pytest.mark.parametrize(
    ("header", "blamed"),
    [
        ({"layer_correction_ms": -5.0}, "header.layer_correction_ms"),
        ({"overhead_ms": 1.0}, "header.overhead_ms"),  # above every entry (0.1 ms)
        ({"overhead_ms": 0.005, "layer_correction_ms": -0.0951}, "header.layer_correction_ms"),  # just too low
    ],
    ids=["negative-correction", "overhead-above-entries", "correction-just-too-low"],
)
def test_table_whose_terms_make_predictions_negative_is_refused(table_for, tmp_path, micro_space, header, blamed):
    path = table_for(micro_space, ms=0.1, **header).save(tmp_path / "fake_dev.json")
    with pytest.raises(LatencyTableError) as info:
        load_table(path)
    msg = str(info.value)
    assert msg.startswith(str(path)) and blamed in msg and "negative" in msg


def test_negative_correction_within_the_model_is_accepted(table_for, tmp_path, micro_space):
    # every layer still costs 0.1 - 0.005 - 0.09 = 0.005 ms inside a network
    path = table_for(micro_space, ms=0.1, overhead_ms=0.005, layer_correction_ms=-0.09).save(tmp_path / "fake_dev.json")
    table = load_table(path)
    assert predict_latency(table, Arch.from_string(ARCH), space=micro_space, num_classes=10) == pytest.approx(0.005 + 7 * 0.005)


@pytest.mark.parametrize(
    ("ms", "header"),
    [(0.1, {"layer_correction_ms": -5.0}), (0.1, {"overhead_ms": 1.0}), (1e308, {})],
    ids=["negative-correction", "overhead-above-entries", "overflow-to-inf"],
)
def test_prediction_must_be_positive_and_finite(table_for, tmp_path, micro_space, ms, header):
    # a table built in memory (not read, so not checked on load) still never predicts <= 0 or inf
    made = table_for(micro_space, ms=ms, **header)
    table = LatencyTable(made.header, made.entries, tmp_path / "fake_dev.json")
    with pytest.raises(LatencyTableError, match=r"fake_dev\.json.*not a positive finite number.*layer_correction_ms"):
        predict_latency(table, Arch.from_string(ARCH), space=micro_space, num_classes=10)


def test_min_latency_must_be_positive(table_for, micro_space):
    from nas.latency import min_latency

    table = table_for(micro_space, ms=0.1, layer_correction_ms=-5.0)
    with pytest.raises(LatencyTableError, match="fastest member of space 'micro'"):
        min_latency(table, micro_space, num_classes=10)
