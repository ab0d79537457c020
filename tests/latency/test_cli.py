"""The command line: predict (units, JSON), unknown devices, list."""

from __future__ import annotations

import json

import pytest

from nas.latency.__main__ import main


@pytest.fixture
def tables_dir(tmp_path, micro_table):
    micro_table.save(tmp_path / "micro_dev.json")
    return tmp_path


def test_predict_json(tables_dir, micro_space_file, capsys):
    rc = main(["--tables-dir", str(tables_dir), "predict", "--device", "micro_dev", "--arch", "largest",
               "--space", str(micro_space_file), "--num-classes", "10", "--json", "--budget", "0.02s"])  # fmt: skip
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["latency_ms"] > 0 and out["budget_ms"] == 20.0 and out["within_budget"] is True


def test_predict_missing_key_names_key_and_command(tables_dir, micro_space_file, capsys):
    rc = main(["--tables-dir", str(tables_dir), "predict", "--device", "micro_dev", "--arch", "largest",
               "--space", str(micro_space_file), "--num-classes", "1000"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2
    assert "classifier-i32x4x4-o1000x1x1-h48-hswish" in err and "python -m nas.latency build" in err


def test_unknown_device_lists_tables(tables_dir, capsys):
    rc = main(["--tables-dir", str(tables_dir), "predict", "--device", "pixel_99", "--arch", "mobilenetv2"])
    assert rc == 2
    assert "available: micro_dev" in capsys.readouterr().err


def test_bad_budget_is_rejected(tables_dir, capsys):
    with pytest.raises(SystemExit):
        main(["--tables-dir", str(tables_dir), "predict", "--device", "micro_dev", "--arch", "mobilenetv2",
              "--budget", "fast"])  # fmt: skip
    assert "budget" in capsys.readouterr().err


def test_list(tables_dir, capsys):
    (tables_dir / "broken.json").write_text("{")
    assert main(["--tables-dir", str(tables_dir), "list"]) == 0
    out = capsys.readouterr().out
    assert "micro_dev" in out and "measured" in out and "broken" in out and "INVALID" in out
