"""``build``: measure every key of a space (and the reference networks) on this machine.

The table is written after every chunk of keys (atomically), so an interrupted build keeps what it
measured and the same command resumes it. A table that already exists for the device is extended:
keys it holds are not measured again, provided it was measured with the same protocol.
"""

from __future__ import annotations

import datetime as _dt
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime as ort

from nas.latency._composition import EXTRA_SUBNETS, composition_features, fit_terms
from nas.latency._coverage import DEFAULT_NUM_CLASSES, reference_layers, space_layers
from nas.latency._measure import MeasureSettings, Timer, cpu_model, measure_networks
from nas.export import ONNX_OPSET
from nas.latency._modules import canary_layer, layer_module, model_bytes
from nas.latency._table import Entry, LatencyTable, LatencyTableError, SpaceRef, TableHeader, check_device_name
from nas.shapes import LayerSpec, walk
from nas.space import SearchSpace, load_space

__all__ = ["COMPOSITION_SEED", "measured_header", "build_table", "required_layers", "fit_composition",
           "composition_inputs", "composition_spaces"]


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def measured_header(
    device: str, settings: MeasureSettings, *, description: str = "", overhead_ms: float = 0.0
) -> TableHeader:
    """Header of a table measured here with ``settings`` (entries and coverage filled in later)."""
    return TableHeader(
        device=check_device_name(device),
        description=description or f"measured on this machine ({cpu_model()})",
        method="measured",
        runtime="onnxruntime",
        runtime_version=ort.__version__,
        execution_provider=settings.provider,
        intra_op_threads=settings.intra_op_threads,
        inter_op_threads=settings.inter_op_threads,
        execution_mode="sequential",
        graph_optimization=settings.graph_optimization,
        opset=ONNX_OPSET,
        batch=1,
        warmup=settings.warmup,
        rounds=settings.rounds,
        repeats=settings.repeats,
        statistic=settings.statistic,
        spread="iqr",
        overhead_ms=overhead_ms,
        cpu=cpu_model(),
        date=_now(),
        complete=False,
        canary_key=canary_layer().key,
        precision=settings.precision,
        spinning=settings.spinning,
    )


def required_layers(
    spaces: Sequence[SearchSpace], num_classes: Sequence[int] = DEFAULT_NUM_CLASSES, references: bool = True
) -> dict[str, LayerSpec]:
    layers: dict[str, LayerSpec] = {}
    for space in spaces:
        layers.update(space_layers(space, num_classes))
    if references:
        layers.update(reference_layers())
    return layers


#: Seed of the subnets timed whole to fit the composition correction; ``validate`` samples with
#: other seeds (default 0), so its subnets are not the ones the correction was fitted on.
COMPOSITION_SEED = 1_000_003


def fit_composition(
    table: LatencyTable, spaces: Sequence[SearchSpace], timer: Timer, subnets: int, *, num_classes: int = 1000,
    progress: bool = False,
) -> dict:
    """Time ``subnets`` random members of each space whole and fit the table's composition model
    on them (:func:`nas.latency._composition.fit_terms`): inside a network a layer finds
    colder caches, and skips the allocation of its input and output that it pays when timed alone;
    this measures the difference instead of guessing it. Returns the header's ``composition``."""
    specs, groups = [], []
    for space in spaces:
        rng = np.random.default_rng(COMPOSITION_SEED)
        specs += [space.resolve(space.sample(rng), num_classes=num_classes) for _ in range(subnets)]
        groups += [space.name] * subnets
    rows, uncorrected = composition_inputs(table, [walk(spec) for spec in specs])
    measured = np.array([t.ms for t in measure_networks(specs, timer, progress=progress, desc="composition")])
    fit = fit_terms(rows, uncorrected, measured, groups)
    return {"spaces": [{"name": s.name, "digest": s.digest} for s in spaces], "subnets_per_space": subnets,
            "seed": COMPOSITION_SEED, "num_classes": num_classes} | fit


def composition_inputs(table: LatencyTable, nets: Sequence[Sequence[LayerSpec]]) -> tuple[np.ndarray, np.ndarray]:
    """Per network (its walker layers), the sum of its layers' composition features and its
    prediction without composition, from ``table``'s entries (its own composition left out)."""
    raw = LatencyTable(replace(table.header, layer_correction_ms=0.0, composition=None), table.entries)
    overhead = raw.header.overhead_ms
    rows = np.array([sum(composition_features(l, raw.lookup(l.key) - overhead) for l in layers) for layers in nets])
    return rows, np.array([raw.predict_layers(layers) for layers in nets])


def composition_spaces(
    spaces: Sequence[SearchSpace], refs: Sequence[SpaceRef]
) -> tuple[list[SearchSpace], list[SpaceRef]]:
    """The spaces a table's composition is fitted on: those being built, and those the table
    already covers that can be loaded by name with the same digest (shipped spaces); and the
    covered ones that cannot (a custom space not given again)."""
    out = {s.digest: s for s in spaces}
    missing = []
    for ref in refs:
        if ref.digest in out:
            continue
        try:
            space = load_space(ref.name)
        except Exception:  # noqa: BLE001 - a custom space: it must be given again
            space = None
        if space is not None and space.digest == ref.digest:
            out[space.digest] = space
        else:
            missing.append(ref)
    return list(out.values()), missing


def _fitted_on(header: TableHeader) -> set[str]:
    comp = header.composition or {}
    return {s.get("digest") for s in comp.get("spaces", ()) if isinstance(s, Mapping)}


def _progress(total: int, initial: int, enabled: bool, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="key", desc=desc, disable=not enabled, file=sys.stderr)


def build_table(
    device: str,
    path: str | Path,
    *,
    spaces: Sequence[SearchSpace] = (),
    num_classes: Sequence[int] = DEFAULT_NUM_CLASSES,
    references: bool = True,
    extra_layers: Mapping[str, LayerSpec] | None = None,
    settings: MeasureSettings | None = None,
    description: str = "",
    chunk_size: int = 48,
    composition_subnets: int = 16,
    progress: bool = True,
    timer_factory: Callable[[MeasureSettings], Timer] = Timer,
) -> LatencyTable:
    """Measure the keys of ``spaces`` (+ reference networks) and write the table to ``path``.

    Args:
        device: table name (the header's ``device``).
        path: the JSON file; if it exists it is resumed/extended (same protocol required).
        spaces: search spaces to cover completely; recorded in the header with their digests.
        num_classes: classifier widths to measure for each space.
        references: also measure the reference presets (:data:`REFERENCE_NETWORKS`) and the
            ProxylessNAS block-table layers the phone calibration needs.
        extra_layers: more layers to measure (tests, custom networks).
        settings: the timing protocol.
        chunk_size: keys exported, timed together (interleaved) and saved at a time.
        composition_subnets: random subnets of each covered space timed whole to fit the
            composition correction (0: none; otherwise at least 4). Fitted once, and again (on
            every space given or shipped) when the table comes to cover a space it was not fitted on.

    Raises:
        LatencyTableError: the existing file is corrupted, or was measured with another protocol.
    """
    if isinstance(composition_subnets, bool) or not isinstance(composition_subnets, int) or (
        composition_subnets != 0 and composition_subnets < 1 + EXTRA_SUBNETS
    ):
        raise ValueError(f"composition_subnets must be 0 (no composition fit) or an integer >= {1 + EXTRA_SUBNETS}, "
                         f"got {composition_subnets!r}")
    settings = settings or MeasureSettings()
    path = Path(path)
    layers = required_layers(spaces, num_classes, references)
    if extra_layers:
        layers.update(extra_layers)

    header = measured_header(device, settings, description=description)
    entries: dict[str, Entry] = {}
    old_spaces: tuple[SpaceRef, ...] = ()
    old_classes: tuple[int, ...] = ()
    old_refs: tuple[str, ...] = ()
    if path.exists():
        old = LatencyTable.read(path)
        if old.header.method != "measured":
            raise LatencyTableError(
                f"{path} holds an {old.header.method} table; refusing to mix measurements into it "
                f"(choose another --device name)"
            )
        diff = old.header.same_protocol(header)
        if diff:
            detail = ", ".join(f"{n}: {getattr(old.header, n)!r} vs {getattr(header, n)!r}" for n in diff)
            raise LatencyTableError(
                f"{path} was measured with other settings ({detail}); keys measured differently cannot "
                f"be mixed. Use another --device name, or delete the file to start over."
            )
        entries = dict(old.entries)
        old_spaces, old_classes, old_refs = old.header.spaces, old.header.num_classes, old.header.references
        header = replace(old.header, description=description or old.header.description)

    todo = sorted(k for k in layers if k not in entries)
    # a fixed shuffle: every chunk mixes big and small layers, so a disturbance hits no stage alone
    todo = [todo[i] for i in np.random.default_rng(0).permutation(len(todo))]
    new_spaces = tuple({s.digest: s for s in [*old_spaces, *(SpaceRef(sp.name, sp.digest) for sp in spaces)]}.values())
    covered = dict(
        num_classes=tuple(sorted(set(old_classes) | (set(num_classes) if spaces else set()))),
        references=tuple(sorted(set(old_refs) | ({"presets", "proxyless_lut"} if references else set()))),
    )

    fit_spaces, unloadable = composition_spaces(spaces, new_spaces)
    refit = bool(composition_subnets and fit_spaces) and not {sp.digest for sp in fit_spaces} <= _fitted_on(header)
    if refit and unloadable:  # refused before measuring anything
        names = ", ".join(f"{r.name} ({r.digest})" for r in unloadable)
        raise LatencyTableError(
            f"{path} covers {names}, which is not a shipped space: its composition is fitted on whole subnets of "
            f"every space it covers, so give that space's YAML file again with --space (or --composition-subnets 0)"
        )
    timer = timer_factory(settings) if todo else None
    bar = _progress(len(layers), len(layers) - len(todo), progress, f"build {device}")
    table = LatencyTable(replace(header, spaces=old_spaces, complete=not todo), entries, path)
    try:
        for start in range(0, len(todo), chunk_size):
            keys = todo[start : start + chunk_size]
            models = [(model_bytes(layer_module(layers[k]), layers[k].in_shape, settings.precision), layers[k].in_shape)
                      for k in keys]
            assert timer is not None
            timings = timer.time_models(models)
            table = table.with_entries(
                {k: Entry(round(t.ms, 6), round(t.iqr_ms, 6)) for k, t in zip(keys, timings)},
                overhead_ms=round(timer.overhead_ms, 6),
                canary_ms=round(timer.canary_ms, 6),
                retried_chunks=timer.retried_chunks,
                disturbed_chunks=timer.disturbed_chunks,
                date=_now(),
            )
            table.save(path)
            bar.update(len(keys))
    except KeyboardInterrupt:
        bar.close()
        print(
            f"\ninterrupted: {len(table)} keys kept in {path}; run the same command to resume",
            file=sys.stderr,
        )
        raise
    bar.close()
    if refit:
        timer = timer or timer_factory(settings)
        details = fit_composition(
            table, fit_spaces, timer, composition_subnets, num_classes=max(num_classes), progress=progress
        )
        per_layer = details["terms"].pop("layer")  # the header's layer_correction_ms
        table = LatencyTable(
            replace(table.header, layer_correction_ms=per_layer, composition=details), table.entries, path
        )
        problems = table.term_problems()
        if problems:  # not saved: the file keeps the keys, and the same command fits again
            raise LatencyTableError(
                f"{path}: the composition fit would make predictions negative ({'; '.join(problems)}); "
                f"the machine was probably disturbed while the subnets were timed - run the same command "
                f"again to refit"
            )
    final_header = replace(table.header, spaces=new_spaces, complete=True, **covered)
    table = LatencyTable(replace(final_header, n_entries=len(table.entries)), table.entries, path)
    table.save(path)
    return table
