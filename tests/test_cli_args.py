"""The values the ``python -m nas.*`` commands share: ``--arch`` (a space member or any network),
``--torch-device`` and its deprecated ``--device`` alias, bounded numbers."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from nas.cli_args import (
    MEMBER_FORMS,
    NETWORK_FORMS,
    add_torch_device_argument,
    arch_help,
    float_arg,
    int_arg,
    parse_arch,
    parse_device,
    resolve_network,
)
from nas.errors import ArchError
from nas.export import export_network
from nas.nn import build_network, get_preset
from nas.space import load_space


# -- --arch: a member of a space (nas.evaluate) -------------------------------------------------------
def test_parse_arch_forms(tiny_space, tmp_path):
    arch = tiny_space.sample(4)
    assert parse_arch("largest", tiny_space) == tiny_space.largest()
    assert parse_arch(" smallest ", tiny_space) == tiny_space.smallest()
    assert parse_arch("random:4", tiny_space) == arch
    assert parse_arch("random", tiny_space) == tiny_space.sample(0)
    assert parse_arch(arch.to_json(), tiny_space) == arch
    assert parse_arch(arch.to_string(), tiny_space) == arch
    (tmp_path / "a.json").write_text(arch.to_json())
    assert parse_arch(str(tmp_path / "a.json"), tiny_space) == arch


@pytest.fixture
def exported(tiny_space, tmp_path):
    """``(arch, network spec, arch.json)`` of an export by :func:`nas.export.export_network`."""
    arch = tiny_space.sample(5)
    model = build_network(tiny_space.resolve(arch, 4))
    return arch, model.spec, export_network(model, tmp_path / "best", arch=arch).arch_path


def test_parse_arch_reads_the_arch_json_of_an_export(tiny_space, exported):
    arch, _, arch_json = exported
    assert parse_arch(str(arch_json), tiny_space) == arch


@pytest.mark.parametrize("text, message", [
    ("biggest", "'biggest': not a form this command accepts"),
    ("randomly", "'randomly': not a form this command accepts"),
    ("random:x", "random:SEED needs an integer seed >= 0 (e.g. random:3), got 'x'"),
    ("random:-1", "random:SEED needs an integer seed >= 0"),
    ("mobilenetv3_large", "a preset is a fixed network, not a member of a search space"),
    ("missing.json", "'missing.json': arch file not found"),
    ("{not json", "--arch (inline JSON): not valid JSON"),
    ("tiny r16 w1 | k9", "bad block token 'k9'"),
    ('{"space": "tiny"}', "arch keys: missing"),
])
def test_parse_arch_errors_name_the_flag_and_what_is_allowed(tiny_space, text, message):
    with pytest.raises(ArchError) as info:
        parse_arch(text, tiny_space)
    assert message in str(info.value) and str(info.value).startswith("--arch")


def test_parse_arch_lists_every_form_it_accepts(tiny_space):
    with pytest.raises(ArchError) as info:
        parse_arch("biggest", tiny_space, flag="--subnet")
    text = str(info.value)
    assert text.startswith("--subnet 'biggest'") and "allowed: " + "; ".join(MEMBER_FORMS) in text
    assert "preset" not in text  # a member of a space is asked for: presets are not offered


def test_parse_arch_refuses_networks_and_members_of_other_spaces(tiny_space, tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text(tiny_space.resolve(tiny_space.largest(), 10).to_json())
    with pytest.raises(ArchError, match="holds a network spec, not an arch of the space 'tiny'"):
        parse_arch(str(spec), tiny_space)
    with pytest.raises(ArchError, match="not in space 'tiny'"):
        parse_arch(load_space("mobilenetv3_small32").largest().to_json(), tiny_space)


# -- --arch: any network (nas.summary, nas.latency predict) -------------------------------------------
def test_resolve_network_forms(tiny_space, tiny_space_file, tmp_path):
    space = str(tiny_space_file)
    largest = tiny_space.resolve(tiny_space.largest(), 10)
    assert resolve_network("largest", space=space, resolution=None, num_classes=10) == largest
    assert resolve_network("random:2", space=space, resolution=12, num_classes=10) == tiny_space.resolve(
        tiny_space.sample(2), 10, 12)
    assert resolve_network("mobilenetv3_small_0.75", space=None, resolution=None, num_classes=10) == get_preset(
        "mobilenetv3_small_0.75", num_classes=10, resolution=224)
    arch = tiny_space.sample(3)
    for text in (arch.to_json(), arch.to_string()):
        assert resolve_network(text, space=space, resolution=None, num_classes=10) == tiny_space.resolve(arch, 10)
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(largest.to_json())
    got = resolve_network(str(spec_file), space=None, resolution=16, num_classes=7)
    assert got == largest.replace(num_classes=7, resolution=16)
    assert resolve_network(largest.to_json(), space=None, resolution=None, num_classes=10) == largest


def test_resolve_network_reads_the_arch_json_of_an_export(tiny_space_file, exported, tmp_path):
    _, spec, arch_json = exported
    assert resolve_network(str(arch_json), space=str(tiny_space_file), resolution=None, num_classes=4) == spec
    doc = json.loads(arch_json.read_text())
    assert doc["arch"] is not None
    (tmp_path / "no_arch.json").write_text(json.dumps(doc | {"arch": None}))  # an export given no arch
    assert resolve_network(str(tmp_path / "no_arch.json"), space=None, resolution=None, num_classes=4) == spec


def test_resolve_network_errors_list_what_is_allowed():
    with pytest.raises(ArchError) as info:
        resolve_network("resnet50", space=None, resolution=None, num_classes=10)
    text = str(info.value)
    assert text.startswith("--arch 'resnet50': not a form this command accepts")
    assert "allowed: " + "; ".join(NETWORK_FORMS) in text and "mobilenetv3_large" in text
    with pytest.raises(ValueError, match="--arch largest needs --space"):
        resolve_network("largest", space=None, resolution=None, num_classes=10)
    with pytest.raises(ArchError, match="random:SEED needs an integer seed"):
        resolve_network("random:abc", space="mobilenetv3_large", resolution=None, num_classes=10)


def test_help_lists_the_same_forms_as_the_errors():
    assert all(form in arch_help(networks=True) for form in NETWORK_FORMS)
    assert all(form in arch_help(networks=False) for form in MEMBER_FORMS)
    assert "preset" not in arch_help(networks=False)


# -- --torch-device -----------------------------------------------------------------------------------
def _device_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nas.tool")
    add_torch_device_argument(p)
    return p


def test_torch_device_flag_and_its_deprecated_alias(capsys):
    p = _device_parser()
    assert p.parse_args([]).torch_device == "auto"
    assert p.parse_args(["--torch-device", "cpu"]).torch_device == "cpu"
    assert capsys.readouterr().err == ""
    assert p.parse_args(["--device", "cuda:1"]).torch_device == "cuda:1"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(
        "python -m nas.tool: warning: --device is deprecated and will be removed in the next release; "
        "use --torch-device")
    assert "deprecated alias of --torch-device" in p.format_help()


def test_parse_device_forms(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert parse_device("auto") == torch.device("cpu") and parse_device("cpu") == torch.device("cpu")
    for bad in ("bogus", "cuda:x", "cuda:", "GPU", " cpu"):
        with pytest.raises(ValueError, match=r"--torch-device '.*': unknown device \(allowed: auto, cpu, cuda, cuda:N"):
            parse_device(bad)
    with pytest.raises(ValueError, match="--torch-device cuda:1: CUDA is not available.*use --torch-device cpu or"):
        parse_device("cuda:1")
    assert parse_device("cuda:1", check_available=False) == torch.device("cuda", 1)  # e.g. for Ray workers
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert parse_device("auto") == torch.device("cuda") and parse_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ValueError, match=r"--gpu cuda:2: this machine has 2 CUDA device\(s\) \(allowed: cuda:0\.\."):
        parse_device("cuda:2", flag="--gpu")


# -- bounded numbers ------------------------------------------------------------------------------------
def test_int_arg_and_float_arg():
    assert int_arg(1)("3") == 3 and int_arg(0, 5)("5") == 5
    for parse, text, message in [(int_arg(1), "0", "0 (allowed: integer >= 1)"),
                                 (int_arg(0, 5), "6", "6 (allowed: integer 0..5)"),
                                 (int_arg(1), "x", "'x' (allowed: integer >= 1)"),
                                 (float_arg, "inf", "'inf' (allowed: a finite number)"),
                                 (float_arg, "x", "'x' (allowed: a finite number)")]:
        with pytest.raises(argparse.ArgumentTypeError) as info:
            parse(text)
        assert str(info.value) == message
    assert float_arg("0.5") == 0.5


def test_summary_evaluate_and_latency_share_one_parser():
    import nas.evaluate
    import nas.latency.__main__
    import nas.summary
    import nas.train._cli

    assert nas.summary.resolve_network is nas.latency.__main__.resolve_network is resolve_network
    assert nas.evaluate.parse_arch is parse_arch and nas.train._cli.parse_device is nas.evaluate.parse_device
