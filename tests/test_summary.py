from __future__ import annotations

import json
import subprocess
import sys

import pytest

from nas.data import MAX_RESOLUTION
from nas.summary import main

PAPER = {"mobilenetv3_large": (219e6, 5.4e6), "mobilenetv3_small": (56e6, 2.5e6)}


@pytest.mark.parametrize("name", sorted(PAPER))
def test_cli_json_matches_paper(name):
    out = subprocess.run(
        [sys.executable, "-m", "nas.summary", "--arch", name, "--resolution", "224", "--num-classes", "1000", "--json"],
        capture_output=True, text=True, check=True,
    ).stdout
    data = json.loads(out)
    assert isinstance(data["params"], int) and isinstance(data["madds"], int)
    madds, params = PAPER[name]
    assert abs(data["madds"] - madds) / madds < 0.02
    assert abs(data["params"] - params) / params < 0.02
    assert len(data["layers"]) == len(json.loads(out)["layers"]) > 10


def test_table_output(capsys):
    assert main(["--arch", "mobilenetv3_small"]) == 0
    text = capsys.readouterr().out
    assert "bneck" in text and "total: 2,542,856 params" in text


def test_space_members_and_json_files(tmp_path, capsys, tiny_space_file, tiny_space):
    assert main(["--space", str(tiny_space_file), "--arch", "largest", "--num-classes", "10", "--json"]) == 0
    largest = json.loads(capsys.readouterr().out)
    path = tmp_path / "arch.json"
    path.write_text(tiny_space.largest().to_json())
    assert main(["--space", str(tiny_space_file), "--arch", str(path), "--num-classes", "10", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["madds"] == largest["madds"]
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(tiny_space.resolve(tiny_space.largest(), 10).to_json())
    assert main(["--arch", str(spec_path), "--num-classes", "10", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["params"] == largest["params"]


@pytest.mark.parametrize("argv, message", [
    (["--arch", "resnet50"], "error: --arch 'resnet50': not a form this command accepts (allowed: a preset ("),
    (["--arch", "largest"], "error: --arch largest needs --space"),
    (["--arch", "random:x", "--space", "mobilenetv3_large"], "random:SEED needs an integer seed >= 0"),
])
def test_errors(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--resolution", "0"], f"argument --resolution: 0 (allowed: integer 1..{MAX_RESOLUTION})"),
    (["--num-classes", "0"], "argument --num-classes: 0 (allowed: integer >= 1)"),
])
def test_numeric_flags_out_of_range_name_the_flag(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        main(["--arch", "mobilenetv3_small", *argv])
    assert info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"python -m nas.summary: error: {message}"


def test_inline_arch_json_and_presets_share_the_cli_parser(tiny_space_file, tiny_space, capsys):
    arch = tiny_space.sample(1)
    assert main(["--space", str(tiny_space_file), "--arch", arch.to_json(indent=None), "--num-classes", "10",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == arch.to_string()
