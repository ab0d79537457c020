from __future__ import annotations

import json
import subprocess
import sys

import pytest

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
    (["--arch", "resnet50"], "not a preset"),
    (["--arch", "largest"], "needs --space"),
])
def test_errors(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err
