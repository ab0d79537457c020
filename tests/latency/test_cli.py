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


def test_predict_with_a_table_that_would_go_negative_is_an_error(tables_dir, micro_space_file, capsys):
    path = tables_dir / "micro_dev.json"
    data = json.loads(path.read_text())
    data["header"]["layer_correction_ms"] = -5
    path.write_text(json.dumps(data))
    rc = main(["--tables-dir", str(tables_dir), "predict", "--device", "micro_dev", "--arch", "largest",
               "--space", str(micro_space_file), "--num-classes", "10", "--budget", "20ms"])  # fmt: skip
    captured = capsys.readouterr()
    assert rc == 2 and captured.out == ""
    assert str(path) in captured.err and "layer_correction_ms" in captured.err


@pytest.mark.parametrize(
    ("manifest", "results", "blamed"),
    [
        ({"format": "nas-latency-bundle/1", "opset": 17, "spaces": []}, None, "manifest.json: malformed bundle file: models: required key"),
        ([], None, "manifest.json: malformed bundle file: (top level)"),
        ({"format": "nas-latency-bundle/1", "opset": 17, "spaces": [], "models": [{"key": "k", "file": "m"}]},
         {"format": "nas-latency-results/1", "results": {"k": {"ms": 0.1}}}, "results.json: malformed bundle file: settings: required key"),
        ({"format": "nas-latency-bundle/1", "opset": 17, "spaces": [], "models": [{"key": "k", "file": "m"}]},
         {"format": "nas-latency-results/1", "results": {"k": 0.1}, "overhead_ms": 0.001,
          "settings": {"warmup": 1, "rounds": 1, "repeats": 1, "intra_op_threads": 1, "inter_op_threads": 1}},
         "results.json: malformed bundle file: results['k']: must be a JSON object"),
    ],
    ids=["manifest-without-models", "manifest-a-list", "results-without-settings", "result-a-number"],
)
def test_import_of_a_malformed_bundle_is_one_line(tmp_path, capsys, manifest, results, blamed):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    if results is not None:
        (bundle / "results.json").write_text(json.dumps(results))
    rc = main(["import", str(bundle), "--device", "my_board", "--out", str(tmp_path / "t.json")])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert f"{bundle}/{blamed}" in err
    assert not (tmp_path / "t.json").exists()


def test_predict_arch_forms_are_those_of_summary(tables_dir, micro_space, micro_space_file, capsys):
    """``predict --arch`` is read by the parser nas.summary uses: an inline arch works, and a bad
    value gets the same list of accepted forms."""
    base = ["--tables-dir", str(tables_dir), "predict", "--device", "micro_dev", "--space", str(micro_space_file),
            "--num-classes", "10", "--json"]
    assert main([*base, "--arch", "largest"]) == 0
    largest = json.loads(capsys.readouterr().out)
    assert main([*base, "--arch", micro_space.largest().to_json(indent=None)]) == 0
    assert json.loads(capsys.readouterr().out) == largest
    assert main([*base, "--arch", "resnet50"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --arch 'resnet50': not a form this command accepts (allowed: a preset (")
    assert "random (seed 0) or random:SEED (an integer >= 0) of --space" in err


def test_positive_integer_flags_name_the_flag(tables_dir, capsys):
    with pytest.raises(SystemExit) as info:
        main(["--tables-dir", str(tables_dir), "predict", "--device", "micro_dev", "--arch", "mobilenetv2",
              "--resolution", "0"])  # fmt: skip
    assert info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(
        "error: argument --resolution: 0 (allowed: integer >= 1)")


def _fast(*extra):
    return ["--warmup", "1", "--rounds", "2", "--repeats", "3", *extra]


def test_probe_runner_calibrate_validate_from_the_command_line(tables_dir, micro_space_file, tmp_path, capsys):
    import subprocess
    import sys
    import tarfile

    base = ["--tables-dir", str(tables_dir)]
    assert main([*base, "probe", "--space", str(micro_space_file), "--networks", "12", "--num-classes", "10",
                 "--out", str(tmp_path / "p.tar"), "--quiet", *_fast()]) == 0
    assert "tar xf p.tar && cd p && python3 run_bundle.py" in capsys.readouterr().out
    with tarfile.open(tmp_path / "p.tar") as tar:
        tar.extractall(tmp_path, filter="data")
    subprocess.run([sys.executable, "run_bundle.py", "--quiet"], cwd=tmp_path / "p", check=True)
    rc = main([*base, "calibrate", "--base-table", "micro_dev", "--measurements", str(tmp_path / "p"),
               "--probe", str(tmp_path / "p.tar"), "--name", "micro_board", "--space", str(micro_space_file),
               "--report", str(tmp_path / "fit.json")])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "leave-one-out median |error|" in out
    # the table is in --tables-dir, which nas.search does not read: the search is pointed at its file
    assert f"search with --device {tables_dir / 'micro_board.json'}" in out
    assert json.loads((tmp_path / "fit.json").read_text())["networks"] == 12
    # a second run of the same probe (here: a copy of the first, its times 2% slower) is combined with it
    import shutil

    shutil.copytree(tmp_path / "p", tmp_path / "p_again")
    again = json.loads((tmp_path / "p_again" / "results.json").read_text())
    for row in again["results"].values():
        row["ms"] *= 1.02
    (tmp_path / "p_again" / "results.json").write_text(json.dumps(again))
    assert main([*base, "calibrate", "--base-table", "micro_dev", "--measurements", str(tmp_path / "p"),
                 str(tmp_path / "p_again"), "--probe", str(tmp_path / "p.tar"), "--name", "micro_board2",
                 "--space", str(micro_space_file)]) == 0
    capsys.readouterr()
    header = json.loads((tables_dir / "micro_board2.json").read_text())["header"]
    assert header["calibration"]["measurements"]["runs"] == 2
    assert header["calibration"]["measurements"]["file"] == "p/results.json + p_again/results.json"
    assert main([*base, "validate", "--device", "micro_board", "--samples", "3", "--space", str(micro_space_file),
                 "--num-classes", "10", "--quiet", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["device"] == "micro_board"
    assert main([*base, "list"]) == 0
    assert "micro_board" in capsys.readouterr().out


def test_calibrate_here_measures_and_fits_in_one_command(tables_dir, micro_space_file, capsys):
    rc = main(["--tables-dir", str(tables_dir), "calibrate", "--base-table", "micro_dev", "--here", "--networks", "8",
               "--space", str(micro_space_file), "--num-classes", "10", "--name", "micro_here", "--quiet", *_fast()])
    assert rc == 0, capsys.readouterr().err
    assert (tables_dir / "micro_here.json").is_file()


@pytest.mark.parametrize("argv, message", [
    (["calibrate", "--base-table", "micro_dev", "--name", "x"], "give --measurements"),
    (["calibrate", "--here", "--name", "x"], "needs --base-table"),
    (["calibrate", "--base-table", "micro_dev", "--here", "--measurements", "m.json", "--name", "x"], "not both"),
    (["calibrate", "--base-table", "micro_dev", "--here", "--name", "Bad Name"], "device"),
])
def test_calibrate_argument_mistakes_are_one_message(tables_dir, capsys, argv, message):
    assert main(["--tables-dir", str(tables_dir), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.parametrize("value", ["2", "-1", "x"])
def test_build_refuses_too_few_composition_subnets_before_measuring(tmp_path, micro_space_file, capsys, value):
    with pytest.raises(SystemExit) as exc:
        main(["build", "--device", "dev", "--space", str(micro_space_file), "--out", str(tmp_path / "t.json"),
              "--composition-subnets", value])
    assert exc.value.code == 2
    assert "--composition-subnets must be 0 (no composition fit) or an integer >= 4" in capsys.readouterr().err
    assert not (tmp_path / "t.json").exists()


@pytest.mark.parametrize(("flags", "spinning"), [([], False), (["--spinning"], True)])
def test_timing_protocol_flags_reach_the_settings(flags, spinning):
    from nas.latency.__main__ import _parser, _settings

    args = _parser().parse_args(["build", "--device", "dev", "--threads", "2", *flags])
    settings = _settings(args)
    assert (settings.intra_op_threads, settings.spinning) == (2, spinning)



# -- mistakes a user makes while adding a device: each one message, before any work -------------------
@pytest.fixture(scope="module")
def measured_probe(tmp_path_factory, micro_table, micro_space_file):
    """A probe of 8 micro networks timed by its runner: (archive, folder holding results.json)."""
    import subprocess
    import sys
    import tarfile

    root = tmp_path_factory.mktemp("probe")
    micro_table.save(root / "micro_dev.json")
    assert main(["--tables-dir", str(root), "probe", "--space", str(micro_space_file), "--networks", "8",
                 "--num-classes", "10", "--out", str(root / "p.tar"), "--quiet", *_fast()]) == 0
    with tarfile.open(root / "p.tar") as tar:
        tar.extractall(root, filter="data")
    subprocess.run([sys.executable, "run_bundle.py", "--quiet"], cwd=root / "p", check=True, capture_output=True)
    return root / "p.tar", root / "p"


def _calibrate(tables_dir, micro_space_file, *extra, measurements=None):
    return main(["--tables-dir", str(tables_dir), "calibrate", "--base-table", "micro_dev", "--space",
                 str(micro_space_file), "--name", "board", *(["--measurements", *measurements] if measurements else []),
                 *extra])


def _one_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_calibrate_never_replaces_a_table_silently(tables_dir, micro_space_file, measured_probe, capsys):
    results = str(measured_probe[1])
    before = (tables_dir / "micro_dev.json").read_bytes()
    assert main(["--tables-dir", str(tables_dir), "calibrate", "--base-table", "micro_dev", "--measurements", results,
                 "--space", str(micro_space_file), "--name", "micro_dev", "--force"]) == 2
    assert "would overwrite the base table" in _one_error(capsys)
    assert (tables_dir / "micro_dev.json").read_bytes() == before
    assert _calibrate(tables_dir, micro_space_file, measurements=[results]) == 0
    capsys.readouterr()
    assert _calibrate(tables_dir, micro_space_file, measurements=[results]) == 2
    assert "board.json exists (a calibrated table of 'board'); choose another --name" in _one_error(capsys)
    assert _calibrate(tables_dir, micro_space_file, "--force", measurements=[results]) == 0


def test_calibrate_without_a_mode_explains_both(tables_dir, capsys):
    assert main(["--tables-dir", str(tables_dir), "calibrate"]) == 2
    assert "calibrate what?" in _one_error(capsys)
    assert not (tables_dir / "pixel_cpu.json").exists()


def test_calibrate_refuses_here_only_flags_with_measurements(tables_dir, micro_space_file, measured_probe, capsys):
    assert _calibrate(tables_dir, micro_space_file, "--threads", "4", "--precision", "int8",
                      measurements=[str(measured_probe[1])]) == 2
    assert "--threads, --precision only apply to --here" in _one_error(capsys)


def test_calibrate_refuses_one_run_given_twice(tables_dir, micro_space_file, measured_probe, tmp_path, capsys):
    import shutil

    shutil.copytree(measured_probe[1], tmp_path / "copy")
    assert _calibrate(tables_dir, micro_space_file, measurements=[str(measured_probe[1]), str(tmp_path / "copy")]) == 2
    assert "hold the same times, network for network" in _one_error(capsys)
    assert not (tables_dir / "board.json").exists()


@pytest.mark.parametrize("content, message", [
    (b"not a tar at all", "not a readable tar archive"),
    (None, "no such file or folder"),
])
def test_calibrate_probe_that_is_not_a_probe(tables_dir, micro_space_file, measured_probe, tmp_path, capsys,
                                             content, message):
    bad = tmp_path / "bad.tar"
    if content is not None:
        bad.write_bytes(content)
    assert _calibrate(tables_dir, micro_space_file, "--probe", str(bad), measurements=[str(measured_probe[1])]) == 2
    err = _one_error(capsys)
    assert f"--probe {bad}: {message}" in err


def test_calibrate_truncated_probe_archive(tables_dir, micro_space_file, measured_probe, tmp_path, capsys):
    data = measured_probe[0].read_bytes()
    (tmp_path / "cut.tar").write_bytes(data[: len(data) // 3])
    assert _calibrate(tables_dir, micro_space_file, "--probe", str(tmp_path / "cut.tar"),
                      measurements=[str(measured_probe[1])]) == 2
    assert f"--probe {tmp_path / 'cut.tar'}:" in _one_error(capsys)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["settings"].update(intra_op_threads="two"), "settings: intra_op_threads must be a positive integer"),
    (lambda d: d["settings"].update(precision="int4"), "settings: precision must be 'fp32' or 'int8'"),
    (lambda d: d["settings"].update(graph_optimization="turbo"), "settings: graph_optimization must be one of"),
    (lambda d: d.update(overhead_ms=1e6), "at or below the per-call overhead of 1e+06 ms"),
])
def test_calibrate_checks_the_measurements_settings(tables_dir, micro_space_file, measured_probe, tmp_path, capsys,
                                                    edit, message):
    data = json.loads((measured_probe[1] / "results.json").read_text())
    edit(data)
    (tmp_path / "results.json").write_text(json.dumps(data))
    assert _calibrate(tables_dir, micro_space_file, measurements=[str(tmp_path / "results.json")]) == 2
    err = _one_error(capsys)
    assert str(tmp_path / "results.json") in err and message in err


def test_calibrate_refuses_a_validate_report_of_another_table(tables_dir, micro_space_file, micro_table, tmp_path,
                                                              capsys):
    import dataclasses

    other = dataclasses.replace(micro_table, header=dataclasses.replace(micro_table.header, device="other_dev"))
    other.save(tables_dir / "other_dev.json")
    assert main(["--tables-dir", str(tables_dir), "validate", "--device", "other_dev", "--samples", "6",
                 "--space", str(micro_space_file), "--num-classes", "10", "--quiet",
                 "--report", str(tmp_path / "v.json")]) == 0
    capsys.readouterr()
    assert _calibrate(tables_dir, micro_space_file, measurements=[str(tmp_path / "v.json")]) == 2
    assert "a validate report of 'other_dev', but the base table is 'micro_dev'" in _one_error(capsys)


@pytest.mark.parametrize("extra, message", [
    (["--num-classes", "10", "--networks", "4", "--model", "per-op"], "--networks 4 is too few for --model per-op"),
])
def test_calibrate_here_refuses_before_timing(tables_dir, micro_space_file, monkeypatch, capsys, extra, message):
    import nas.latency.__main__ as cli

    monkeypatch.setattr(cli, "_measure_probe_here", lambda *a: pytest.fail("measured before refusing"))
    assert _calibrate(tables_dir, micro_space_file, "--here", *extra) == 2
    assert message in _one_error(capsys)


def test_calibrate_here_refuses_a_space_the_base_table_lacks(tables_dir, monkeypatch, capsys):
    import nas.latency.__main__ as cli

    monkeypatch.setattr(cli, "_measure_probe_here", lambda *a: pytest.fail("measured before refusing"))
    assert main(["--tables-dir", str(tables_dir), "calibrate", "--base-table", "micro_dev", "--here", "--space",
                 "mobilenetv3_small32", "--name", "board"]) == 2
    assert "not 'mobilenetv3_small32': probe a space it covers" in _one_error(capsys)


def test_import_refuses_a_probe_folder(tables_dir, measured_probe, capsys):
    assert main(["--tables-dir", str(tables_dir), "import", str(measured_probe[1]), "--device", "board"]) == 2
    assert "is a probe (whole networks), not a per-key bundle" in _one_error(capsys)
    assert not (tables_dir / "board.json").exists()


def test_oversized_json_is_refused_unread(tables_dir, micro_space_file, measured_probe, tmp_path, monkeypatch,
                                          capsys):
    import nas.latency._problems as problems

    monkeypatch.setattr(problems, "MAX_JSON_BYTES", 100)
    assert _calibrate(tables_dir, micro_space_file, measurements=[str(measured_probe[1])]) == 2
    assert "more than the 0 MiB any file of the latency tools has" in _one_error(capsys)


def test_a_binary_file_as_table_names_the_file(tables_dir, measured_probe, capsys):
    assert main(["--tables-dir", str(tables_dir), "predict", "--device", str(measured_probe[0]),
                 "--arch", "mobilenetv2"]) == 2
    assert f"{measured_probe[0]}: not UTF-8 text" in _one_error(capsys)


def test_host_is_not_a_name_for_a_new_table(tables_dir, micro_space_file, measured_probe, capsys):
    assert main(["--tables-dir", str(tables_dir), "calibrate", "--base-table", "micro_dev", "--measurements",
                 str(measured_probe[1]), "--space", str(micro_space_file), "--name", "host"]) == 2
    assert "--name host: 'host' stands for this machine's own table name" in _one_error(capsys)
