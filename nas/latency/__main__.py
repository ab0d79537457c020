"""``python -m nas.latency``: build, predict, validate, probe, calibrate, bundle, import, list.

Examples::

    python -m nas.latency build --device host                      # this machine, default space
    python -m nas.latency build --device host --space mobilenetv3_small32
    python -m nas.latency build --device host --precision int8     # -> latency_tables/HOST_int8.json
    python -m nas.latency predict --device pixel_cpu --arch mobilenetv3_large --resolution 224
    python -m nas.latency predict --device host --arch random:3 --space mobilenetv3_large --json
    python -m nas.latency validate --device host --samples 60
    python -m nas.latency calibrate --device pixel_cpu --host-table latency_tables/HOST.json
    python -m nas.latency probe --space mobilenetv3_large --networks 40 --out probe.tar
    python -m nas.latency calibrate --base-table intel_xeon_avx512_2c --measurements probe/results.json --name my_board
    python -m nas.latency calibrate --base-table intel_xeon_avx512_2c --here --name this_vm
    python -m nas.latency bundle --device my_phone --out bundle_dir
    python -m nas.latency import bundle_dir --device my_phone
    python -m nas.latency list

``--device`` is always the latency table (a device name, ``host``, or a table file); ``--arch`` of
``predict`` takes any network (a preset, a member of ``--space``, an arch, a network spec): see
:mod:`nas.cli_args`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nas.cli_args import arch_help, int_arg, resolve_network
from nas.errors import ArchError, ConfigError
from nas.latency._budget import parse_budget
from nas.latency._coverage import DEFAULT_NUM_CLASSES
from nas.latency._table import LatencyTable, LatencyTableError, available_devices, table_path

__all__ = ["main"]

DEFAULT_SPACE = "mobilenetv3_large"


def _composition_subnets(text: str) -> int:
    from nas.latency._composition import EXTRA_SUBNETS

    least = 1 + EXTRA_SUBNETS  # the simplest model's one term, plus the spare subnets every fit needs
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n != 0 and n < least:
        raise argparse.ArgumentTypeError(f"--composition-subnets must be 0 (no composition fit) or an integer >= "
                                         f"{least}, got {text!r}")
    return n


def _num_classes(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--num-classes must be comma-separated integers, got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"--num-classes values must be positive, got {text!r}")
    return values


def _budget(text: str) -> float:
    try:
        return parse_budget(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _settings(args: argparse.Namespace):
    from nas.latency._measure import MeasureSettings

    return MeasureSettings(
        warmup=args.warmup, rounds=args.rounds, repeats=args.repeats, intra_op_threads=args.threads,
        precision=args.precision, spinning=args.spinning,
    )


def _add_protocol(p: argparse.ArgumentParser) -> None:
    from nas.latency._measure import MeasureSettings

    d = MeasureSettings()
    g = p.add_argument_group("timing protocol (recorded in the table header)")
    g.add_argument("--threads", type=int_arg(1), default=d.intra_op_threads, help="ORT intra-op threads (default 1)")
    g.add_argument("--warmup", type=int, default=d.warmup, help=f"untimed warm-up runs per model at the start of every round (default {d.warmup})")
    g.add_argument("--rounds", type=int_arg(1), default=d.rounds, help=f"interleaved rounds (default {d.rounds})")
    g.add_argument("--repeats", type=int_arg(1), default=d.repeats, help=f"timed runs per round (default {d.repeats})")
    g.add_argument("--spinning", action="store_true",
                   help="let ONNX Runtime's idle intra-op threads busy-wait (session.intra_op.allow_spinning=1; "
                        "only matters with --threads > 1). Off by default: spinning threads on a machine "
                        "whose cores they share make timings drift between passes")
    g.add_argument("--precision", choices=("fp32", "int8"), default="fp32",
                   help="models timed in float, or int8 (ONNX Runtime static quantization, QDQ, per-channel "
                        "weights); default fp32")


def _table_file(device: str, tables_dir: str | None) -> Path:
    from nas.latency._predict import resolve_device

    return table_path(resolve_device(device), tables_dir)


def _check_overwrite(path: Path, force: bool, *, estimated_ok: str | None = None) -> None:
    """Refuse to replace an existing table unless ``--force`` (or it is the estimated table being
    re-derived, ``estimated_ok`` naming its device): a measured table holds hours of timing."""
    if force or not path.exists():
        return
    try:
        header = LatencyTable.read(path).header
        what = f"a {header.method} table of {header.device!r}"
        if estimated_ok and header.method == "estimated" and header.device == estimated_ok:
            return
    except LatencyTableError:
        what = "a file that is not a valid table"
    raise LatencyTableError(f"{path} exists ({what}); choose another --name / --out, or pass --force to replace it")


def _device_arg(name: str, path: Path) -> str:
    """What to pass as ``--device`` to reach the table at ``path``: its name where it lives with the
    named tables, else its path."""
    try:
        if path.resolve() == table_path(name).resolve():
            return name
    except ValueError:
        pass
    return str(path)


def _not_host(name: str, flag: str) -> None:
    """'host' names this machine's own table (``--device host``); a new table needs its device's name."""
    if name == "host":
        raise ValueError(f"{flag} host: 'host' stands for this machine's own table name (--device host finds "
                         "latency_tables/<this machine>.json); name the new table after its device")


def _probe_manifest(path: str) -> dict:
    """``--probe``: the manifest of a probe archive or folder, or one error naming the file."""
    import tarfile

    from nas.latency._probe_bundle import PROBE_FORMAT, read_probe_manifest

    hint = "give --probe the probe.tar (or its extracted folder) written by python -m nas.latency probe"
    if not Path(path).exists():
        raise LatencyTableError(f"--probe {path}: no such file or folder ({hint})")
    try:
        manifest = read_probe_manifest(path)
    except (tarfile.TarError, EOFError) as exc:
        why = str(exc).splitlines()[-1].removeprefix("- method tar: ")
        raise LatencyTableError(f"--probe {path}: not a readable tar archive ({why}); {hint}") from None
    except OSError as exc:
        raise LatencyTableError(f"--probe {path}: cannot read it ({exc.strerror or exc}); {hint}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LatencyTableError(f"--probe {path}: its manifest.json is not valid JSON ({exc}); {hint}") from None
    meta = manifest.get("probe") if isinstance(manifest, dict) else None
    if not isinstance(meta, dict) or meta.get("format") != PROBE_FORMAT:
        raise LatencyTableError(f"--probe {path}: its manifest.json is not a probe's (a per-key bundle, or another "
                                f"format than {PROBE_FORMAT!r}); {hint}")
    return manifest


# -- subcommands -----------------------------------------------------------------------------------
def cmd_build(args: argparse.Namespace) -> int:
    from nas.latency._build import build_table
    from nas.latency._predict import resolve_device
    from nas.space import load_space

    spaces = [load_space(s) for s in (args.space or [DEFAULT_SPACE])]
    device = resolve_device(args.device)
    if args.device == "host" and args.precision != "fp32":
        device = f"{device}_{args.precision}"  # beside this machine's float table, not over it
    path = Path(args.out) if args.out else table_path(device, args.tables_dir)
    if args.device == "host":
        print(f"host device: {device} -> {path}", file=sys.stderr)
    table = build_table(
        device,
        path,
        spaces=spaces,
        num_classes=args.num_classes,
        references=not args.no_references,
        settings=_settings(args),
        description=args.description or "",
        chunk_size=args.chunk_size,
        composition_subnets=args.composition_subnets,
        progress=not args.quiet,
    )
    h = table.header
    terms = h.composition_terms
    comp = h.composition or {}
    fit = ""
    if "per_space" in comp:
        fit = "; whole subnets, median |error| before -> after: " + ", ".join(
            f"{name} {v['median_abs_error_pct_before']:.1f}% -> {v['median_abs_error_pct_after']:.1f}%"
            for name, v in comp["per_space"].items())
    print(
        f"{path}: {len(table)} keys, overhead {h.overhead_ms * 1000:.1f} us/call, spaces "
        f"{', '.join(s.name for s in h.spaces)}\ncomposition ({comp.get('model', 'constant')}): "
        f"{terms.get('layer', 0.0) * 1000:+.2f} us per layer, {100 * terms.get('host_ms', 0.0):+.1f}% of its own time, "
        f"{terms.get('written_melems', 0.0):.4f} ms per written Melement{fit}"
    )
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from nas.latency._predict import load_table, predict_latency

    table = load_table(args.device, tables_dir=args.tables_dir)
    spec = resolve_network(args.arch, space=args.space, resolution=args.resolution, num_classes=args.num_classes)
    ms = predict_latency(table, spec)
    within = None if args.budget is None else ms <= args.budget
    if args.json:
        out = {"latency_ms": round(ms, 4), "device": table.device, "method": table.header.method,
               "network": spec.name, "resolution": spec.resolution}  # fmt: skip
        if args.budget is not None:
            out |= {"budget_ms": args.budget, "within_budget": within}
        print(json.dumps(out))
    else:
        note = " (estimate)" if table.header.method == "estimated" else ""
        line = f"{spec.name} @ {spec.resolution}px on {table.device}{note}: {ms:.2f} ms"
        if args.budget is not None:
            line += f"  ({'within' if within else 'over'} budget {args.budget:g} ms)"
        print(line)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from nas.latency._predict import load_table
    from nas.latency._validate import validate_table
    from nas.space import load_space

    space = load_space(args.space or DEFAULT_SPACE)
    table = load_table(args.device, space=space, tables_dir=args.tables_dir)
    report = validate_table(
        table, space, args.samples, seed=args.seed, num_classes=args.num_classes, progress=not args.quiet
    )
    if args.report:
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(json.dumps(report.to_dict(), indent=1) + "\n")
    if args.json:
        print(json.dumps({k: v for k, v in report.to_dict().items() if k != "subnets"}))
    else:
        print(report.summary())
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    from nas.latency._probe_bundle import write_probe
    from nas.space import load_space

    space = load_space(args.space or DEFAULT_SPACE)
    manifest = write_probe(args.out, space=space, networks=args.networks, num_classes=args.num_classes,
                           seed=args.seed, settings=_settings(args), chunk_size=args.chunk_size,
                           progress=not args.quiet)  # fmt: skip
    size = Path(args.out).stat().st_size / 1e6
    folder = Path(args.out).name.split(".tar")[0].removesuffix(".tgz")
    print(f"wrote {args.out}: {len(manifest['models'])} networks of {space.name}, {size:.1f} MB "
          f"(probe {manifest['probe']['id']}); on the device:\n"
          f"  tar xf {Path(args.out).name} && cd {folder} && python3 run_bundle.py   (needs numpy, onnxruntime)\n"
          f"  (Android without Python: ./run_perf_test_adb.sh /path/to/onnxruntime_perf_test, see {folder}/README.md)\n"
          f"then here:\n  python -m nas.latency calibrate --base-table TABLE --measurements {folder}/results.json "
          f"--name NEW_DEVICE   (or --measurements {folder}/ for the perf_test logs)")
    return 0


def _measure_probe_here(args: argparse.Namespace, tmp: Path) -> Path:
    """``calibrate --here``: write a probe, time it on this machine, return its results.json."""
    from nas.latency._probe_bundle import write_probe
    from nas.latency._runner import run_bundle
    from nas.space import load_space

    space = load_space(args.space[0] if args.space else DEFAULT_SPACE)
    write_probe(tmp / "probe.tar", space=space, networks=args.networks, num_classes=args.num_classes,
                seed=args.seed, settings=_settings(args), progress=not args.quiet)  # fmt: skip
    import tarfile

    with tarfile.open(tmp / "probe.tar") as tar:
        tar.extractall(tmp, filter="data")
    return Path(run_bundle(str(tmp / "probe"), progress=not args.quiet))


#: calibrate flags that only shape --here's probe and timing.
_HERE_ONLY = (("--networks", "networks"), ("--num-classes", "num_classes"), ("--seed", "seed"),
              ("--threads", "threads"), ("--warmup", "warmup"), ("--rounds", "rounds"), ("--repeats", "repeats"),
              ("--spinning", "spinning"), ("--precision", "precision"))


def _parser_defaults() -> dict:
    return vars(_parser().parse_args(["calibrate"]))


def _check_here(args: argparse.Namespace, base, *, min_networks: int) -> None:
    """What ``--here`` would only find out after timing its networks: refused before."""
    from nas.shapes import walk
    from nas.space import load_space

    space = load_space(args.space[0] if args.space else DEFAULT_SPACE)
    if not base.header.covers(space.digest):
        covered = ", ".join(s.name for s in base.header.spaces) or "no space"
        raise LatencyTableError(f"the base table {base.device!r} covers {covered}, not {space.name!r}: probe a space "
                                "it covers (--space), or build the base table for this one")
    ends = [l for a in (space.largest(), space.smallest()) for l in walk(space.resolve(a, num_classes=args.num_classes))]
    if missing := base.missing(ends):
        raise LatencyTableError(f"the base table {base.device!r} lacks layers of {space.name!r} networks with "
                                f"{args.num_classes} classes ({missing[0]}, ...): give --num-classes a "
                                "classifier width the table was built with")
    if args.networks < min_networks:
        raise ValueError(f"--networks {args.networks} is too few for --model {args.model}: it needs at least "
                         f"{min_networks} measured networks")


def cmd_calibrate(args: argparse.Namespace) -> int:
    if args.measurements or args.here:
        return _calibrate_fewshot(args)
    if args.base_table or args.name:
        raise ValueError("--base-table and --name calibrate from measured networks: give --measurements "
                         "(a probe's results.json or a validate --report) or --here")
    if not args.device:
        raise ValueError("calibrate what? a new device from measured networks: --base-table TABLE --name NEW "
                         "with --measurements FILE (or --here); the phone estimate from published Pixel-1 data: "
                         "--device pixel_cpu (see python -m nas.latency calibrate --help)")
    from nas.latency._calibrate import calibrate_pixel, default_reference_dir

    ref = Path(args.reference) if args.reference else default_reference_dir()
    host = LatencyTable.read(args.host_table) if args.host_table else None
    path = Path(args.out) if args.out else table_path(args.device, args.tables_dir)
    _check_overwrite(path, args.force, estimated_ok=args.device)
    table, report = calibrate_pixel(ref, host=host, device=args.device)
    table.save(path)
    if args.report:
        Path(args.report).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report["holdout"], indent=1))
    print(f"wrote {path} ({len(table)} keys, estimated)")
    return 0


def _calibrate_fewshot(args: argparse.Namespace) -> int:
    import tempfile

    from nas.latency._fewshot import (
        calibrate_table, combine_measurements, fit_warning, min_networks, precision_warning, read_measurements,
        write_report)
    from nas.latency._predict import load_table
    from nas.space import load_space

    if not args.base_table or not args.name:
        raise ValueError("calibrate --measurements/--here needs --base-table (the table to map) and --name (the "
                         "new table's device name)")
    if args.measurements and args.here:
        raise ValueError("give either --measurements (networks timed elsewhere) or --here (time them now), not both")
    from nas.latency._table import check_device_name

    check_device_name(args.name)  # before any measuring
    _not_host(args.name, "--name")
    if not args.here:
        defaults = _parser_defaults()
        ignored = [flag for flag, dest in _HERE_ONLY if getattr(args, dest) != defaults[dest]]
        if ignored:
            raise ValueError(f"{', '.join(ignored)} only apply to --here (how this machine times a new probe); with "
                             "--measurements the file records how its networks were timed")
    elif args.probe:
        raise ValueError("--probe checks --measurements against a probe; --here writes and times its own")
    base = load_table(args.base_table, tables_dir=args.tables_dir)
    spaces = [load_space(s) for s in (args.space or [])]
    path = Path(args.out) if args.out else table_path(args.name, args.tables_dir)
    if base.path is not None and path.resolve() == Path(base.path).resolve():
        raise LatencyTableError(f"--name {args.name} would overwrite the base table {base.path}: the new table "
                                "needs a name of its own")
    _check_overwrite(path, args.force)
    if args.here:
        _check_here(args, base, min_networks=min_networks(args.model))
        if warning := precision_warning(base.device, base.header.precision, args.precision):
            print(warning, file=sys.stderr)  # before the minute of measuring
    with tempfile.TemporaryDirectory() as tmp:
        if args.here:
            results = _measure_probe_here(args, Path(tmp))
            meas = read_measurements(results)
        else:
            probe = _probe_manifest(args.probe) if args.probe else None
            meas = combine_measurements([read_measurements(m, probe=probe) for m in args.measurements])
            if meas.kind == "validation" and meas.device != base.device:
                raise LatencyTableError(
                    f"{meas.path}: a validate report of {meas.device!r}, but the base table is {base.device!r}: a "
                    "residual correction learns from the base table's own errors on its own device; validate "
                    f"{base.device!r} (python -m nas.latency validate --device {base.device} --report FILE) "
                    "or give a probe's results")
            warning = precision_warning(base.device, base.header.precision, meas.settings.get("precision", "fp32"))
            if warning:
                print(warning, file=sys.stderr)
    table, fit = calibrate_table(base, meas, name=args.name, model=args.model, spaces=spaces,
                                 description=args.description or "")
    table.save(path)
    if args.report:
        write_report(args.report, fit, meas)
    cv, b = fit.cv, fit.base_cv
    print(f"model {fit.model} on {fit.networks} networks: leave-one-out median |error| {cv['median_abs_error_pct']:.1f}%, "
          f"{100 * cv['within_10pct']:.0f}% within +-10% (the base table {base.device} as it is: "
          f"{b['median_abs_error_pct']:.1f}%, {100 * b['within_10pct']:.0f}%)")
    print("coefficients: " + ", ".join(f"{k} {v:.4g}" for k, v in fit.coefficients().items()))
    if meas.kind == "probe" and (warning := fit_warning(fit)):
        print(warning, file=sys.stderr)
    print(f"wrote {path} ({len(table)} keys, calibrated); search with --device {_device_arg(args.name, path)}")
    return 0


def cmd_bundle(args: argparse.Namespace) -> int:
    from nas.latency._bundle import write_bundle
    from nas.space import load_space

    spaces = [load_space(s) for s in (args.space or [DEFAULT_SPACE])]
    manifest = write_bundle(
        args.out, device=args.device, spaces=spaces, num_classes=args.num_classes,
        references=not args.no_references, settings=_settings(args), progress=not args.quiet,
    )  # fmt: skip
    print(
        f"wrote {len(manifest['models'])} models to {args.out}; on the device run:\n"
        f"  python run_bundle.py            (in {args.out}; needs python3, numpy, onnxruntime)\n"
        f"then here:\n  python -m nas.latency import {args.out} --device {args.device}"
    )
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from nas.latency._bundle import import_bundle
    from nas.latency._problems import read_json

    path = Path(args.out) if args.out else table_path(args.device, args.tables_dir)
    manifest = Path(args.bundle) / "manifest.json"
    if manifest.is_file() and isinstance(m := read_json(manifest, "a bundle written by python -m nas.latency bundle"),
                                         dict) and "probe" in m:
        raise LatencyTableError(f"{args.bundle} is a probe (whole networks), not a per-key bundle: turn its results "
                                "into a table with python -m nas.latency calibrate --base-table TABLE --measurements "
                                f"{args.bundle} --name {args.device}")
    _not_host(args.device, "--device")
    _check_overwrite(path, args.force)
    table = import_bundle(args.bundle, device=args.device, description=args.description or "")
    try:
        table.save(path)
    except OSError as exc:
        raise LatencyTableError(f"cannot write the table {path}: {exc.strerror or exc}") from None
    print(f"wrote {path}: {len(table)} keys, overhead {table.header.overhead_ms * 1000:.1f} us/call")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    rows = []
    for name in available_devices(args.tables_dir):
        try:
            t = LatencyTable.read(table_path(name, args.tables_dir))
        except LatencyTableError as exc:
            rows.append(f"{name:<28} INVALID: {str(exc).splitlines()[0]}")
            continue
        h = t.header
        spaces = ",".join(s.name for s in h.spaces) or "-"
        rows.append(f"{name:<28} {h.method:<9} {len(t):>6} keys  spaces: {spaces:<36} {h.description}")
    print("\n".join(rows) if rows else "(no tables)")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m nas.latency", description=__doc__.split("\n")[0])
    parser.add_argument("--tables-dir", help="where named tables live (default: latency_tables/)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("build", help="measure a table on this machine (resumable)")
    p.add_argument("--device", required=True, help="table name; 'host' = this machine's CPU name")
    p.add_argument("--space", action="append", help=f"space name or YAML (repeatable; default {DEFAULT_SPACE})")
    p.add_argument("--num-classes", type=_num_classes, default=DEFAULT_NUM_CLASSES, help="classifier widths, e.g. 10,1000")
    p.add_argument("--no-references", action="store_true", help="skip the reference presets' keys")
    p.add_argument("--description", help="free text stored in the header")
    p.add_argument("--out", help="write here instead of latency_tables/DEVICE.json")
    p.add_argument("--chunk-size", type=int_arg(1), default=48)
    p.add_argument("--composition-subnets", type=_composition_subnets, default=16,
                   help="random subnets of each space timed whole to fit the composition correction "
                        "(0: none, else >= 4; default 16)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_protocol(p)
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("predict", help="predicted latency of a network on a device")
    p.add_argument("--device", required=True, help="table name, 'host', or a table file")
    p.add_argument("--arch", required=True, help=arch_help(networks=True))
    p.add_argument("--space", help="search space for largest/smallest/random")
    p.add_argument("--resolution", type=int_arg(1))
    p.add_argument("--num-classes", type=int_arg(1), default=1000)
    p.add_argument("--budget", type=_budget, help="also say whether it fits: 20ms, 0.02s, 20 (= ms)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("validate", help="predicted vs measured latency of random subnets, on this machine")
    p.add_argument("--device", required=True)
    p.add_argument("--samples", type=int_arg(1), required=True)
    p.add_argument("--space", help=f"default {DEFAULT_SPACE}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-classes", type=int_arg(1), default=1000)
    p.add_argument("--report", help="write the full report (every subnet) as JSON here")
    p.add_argument("--json", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("probe", help="write N whole networks of a space + the runner, to measure on a new device")
    p.add_argument("--space", help=f"space name or YAML (default {DEFAULT_SPACE})")
    p.add_argument("--networks", type=int_arg(4), default=40,
                   help="networks in the probe (default 40; the simplest model needs 4, 'per-op' 10)")
    p.add_argument("--out", required=True, help="the probe archive: probe.tar (or .tar.gz)")
    p.add_argument("--num-classes", type=int_arg(1), default=1000,
                   help="classifier width of the networks (default 1000); must be a width the base table you will "
                        "calibrate from was built with (the shipped tables: 10, 100, 1000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chunk-size", type=int_arg(1), default=10, help="networks timed interleaved on the device")
    p.add_argument("--quiet", action="store_true")
    _add_protocol(p)
    p.set_defaults(func=cmd_probe)

    p = sub.add_parser("calibrate", help="a table for a new device from N measured networks (few-shot), or the "
                                         "pixel_cpu estimate from published Pixel-1 data")
    g = p.add_argument_group("few-shot: an existing table mapped onto the device that measured a probe")
    g.add_argument("--base-table", help="the table to map (a device name, 'host', or a table file)")
    g.add_argument("--measurements", nargs="+",
                   help="a probe's results.json, or its folder (results.json or the perf_test/ logs of "
                        "run_perf_test_adb.sh), or a validate --report of the base table (a residual correction); "
                        "several runs of one probe (minutes apart, each in its own extraction of the archive) are combined: each "
                        "network's median over the runs, steadier where the device's speed drifts")
    g.add_argument("--here", action="store_true", help="write a probe and time it on this machine now (~1 min)")
    g.add_argument("--probe", help="the probe archive the measurements must come from (checked)")
    g.add_argument("--name", help="device name of the new table (written to latency_tables/NAME.json, or to "
                                  "--tables-dir given before the subcommand)")
    g.add_argument("--model", choices=("auto", "scale", "affine", "per-op"), default="auto",
                   help="auto (default): the lowest leave-one-out error among the models the networks allow")
    g.add_argument("--space", action="append",
                   help="--here: the space to probe (a name or YAML; default mobilenetv3_large); with "
                        "--measurements: the YAML of a custom space the base table or probe uses")
    g.add_argument("--networks", type=int_arg(4), default=40, help="--here: networks to time (default 40)")
    g.add_argument("--num-classes", type=int_arg(1), default=1000, help="--here: classifier width")
    g.add_argument("--seed", type=int, default=0, help="--here: probe seed")
    g.add_argument("--description")
    g.add_argument("--quiet", action="store_true")
    _add_protocol(p)
    g = p.add_argument_group("pixel_cpu: host keys + published Pixel-1 data")
    g.add_argument("--device", help="the estimated table to derive: pixel_cpu")
    g.add_argument("--host-table", help="measured host table to transform (default: this machine's)")
    g.add_argument("--reference", help="folder with the published data (default: the copy shipped in nas/latency/reference)")
    p.add_argument("--out", help="write the table here instead of latency_tables/NAME.json (DEVICE.json)")
    p.add_argument("--report", help="write the fit report (coefficients, cross-validated errors) as JSON here")
    p.add_argument("--force", action="store_true", help="replace an existing table of that name")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("bundle", help="write ONNX models + a standalone runner to measure on a target device")
    p.add_argument("--device", required=True, help="name of the target device's table")
    p.add_argument("--out", required=True, help="bundle folder")
    p.add_argument("--space", action="append", help=f"default {DEFAULT_SPACE}")
    p.add_argument("--num-classes", type=_num_classes, default=DEFAULT_NUM_CLASSES)
    p.add_argument("--no-references", action="store_true")
    p.add_argument("--quiet", action="store_true")
    _add_protocol(p)
    p.set_defaults(func=cmd_bundle)

    p = sub.add_parser("import", help="turn a bundle's results into a table")
    p.add_argument("bundle", help="bundle folder holding results.json (or perf_test/ logs)")
    p.add_argument("--device", required=True)
    p.add_argument("--description")
    p.add_argument("--out")
    p.add_argument("--force", action="store_true", help="replace an existing table of that name")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("list", help="tables available")
    p.set_defaults(func=cmd_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (LatencyTableError, ValueError, ArchError, ConfigError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
