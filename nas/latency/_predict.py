"""``predict``: a network's latency on a device = table lookups along the shape walker.

Also what a search needs before it starts: :func:`load_table` (by device name, checked against
the search space), and :func:`min_latency` (the fastest member of a space on a table, to reject a
budget no member can meet).
"""

from __future__ import annotations

from pathlib import Path

from nas.latency._coverage import stage_options
from nas.latency._table import (
    LatencyTable,
    LatencyTableError,
    UnknownDeviceError,
    available_devices,
    table_path,
)
from nas.netspec import NetworkSpec
from nas.shapes import walk
from nas.space import Arch, SearchSpace, load_space

__all__ = ["load_table", "resolve_device", "predict_latency", "min_latency"]


def resolve_device(device: str) -> str:
    """``host`` means this machine's table name (e.g. ``intel_xeon_avx512_2c``)."""
    if device == "host":
        from nas.latency._measure import host_device_name

        return host_device_name()
    return device


def load_table(
    device: str | Path,
    *,
    space: SearchSpace | None = None,
    tables_dir: str | Path | None = None,
) -> LatencyTable:
    """Load and validate the table of ``device`` (a name in ``tables_dir`` or a path to a JSON file).

    Args:
        device: device name (``pixel_cpu``, ``host``, ...) or path of a table file.
        space: when given, the table must cover this space completely (its digest is in the header),
            so that a search never meets a missing key halfway through.
        tables_dir: where named tables live (default: ``latency_tables/`` of the repository).

    Raises:
        UnknownDeviceError: no table of that name; the message lists the available ones.
        LatencyTableError: corrupted/truncated file, or a table built for another space.
    """
    text = str(device)
    if text.endswith(".json") or "/" in text or "\\" in text:
        path = Path(text)
        if not path.is_file():
            raise UnknownDeviceError(f"latency table file not found: {path}")
        name = path.stem
    else:
        name = resolve_device(text)
        try:
            path = table_path(name, tables_dir)
        except ValueError as exc:
            raise UnknownDeviceError(str(exc)) from None
        if not path.is_file():
            have = available_devices(tables_dir)
            raise UnknownDeviceError(
                f"no latency table for device {text!r}"
                + (f" (this machine is {name!r})" if text == "host" else "")
                + f" in {path.parent}; available: {', '.join(have) if have else '(none)'}. "
                f"Build one with: python -m nas.latency build --device {text}"
            )
    table = LatencyTable.read(path)
    if space is not None and not table.header.covers(space.digest):
        covered = ", ".join(f"{s.name} ({s.digest})" for s in table.header.spaces) or "no space"
        state = "" if table.header.complete else " Its last build was interrupted."
        raise LatencyTableError(
            f"latency table {table.device!r} ({path}) was built for {covered}, not for search space "
            f"{space.name!r} (digest {space.digest}).{state} Measure the space's keys with:\n"
            f"  python -m nas.latency build --device {table.device} --space SPACE_FILE"
        )
    return table


def predict_latency(
    table: LatencyTable,
    net: NetworkSpec | Arch,
    *,
    space: SearchSpace | None = None,
    resolution: int | None = None,
    num_classes: int = 1000,
) -> float:
    """Predicted latency in milliseconds of ``net`` on ``table``'s device.

    Args:
        net: a resolved :class:`NetworkSpec`, or an :class:`Arch` (resolved with ``space``, default
            the shipped space named in the arch, and ``num_classes``).
        resolution: run at another input side than the network's own.

    Raises:
        MissingKeyError: a layer is not in the table (the message shows the key and the command).
        LatencyTableError: the prediction is not a finite number > 0 (the table's ``overhead_ms`` or
            composition terms are wrong); the message names the table file and the terms.
    """
    if isinstance(net, Arch):
        space = space or load_space(net.space)
        net = space.resolve(net, num_classes=num_classes, resolution=resolution)
        resolution = None
    if not isinstance(net, NetworkSpec):
        raise TypeError(f"net must be a NetworkSpec or an Arch, got {type(net).__name__}")
    return table.predict_layers(walk(net, resolution))


def min_latency(table: LatencyTable, space: SearchSpace, num_classes: int = 1000) -> tuple[float, Arch]:
    """The smallest latency any member of ``space`` reaches on ``table``, and a member reaching it.

    Latency is a sum over independent block choices, so the minimum is exact: per resolution and
    width, each stage takes its cheapest first block, its cheapest later block, and the depth that
    minimises their sum (each layer's cost inside a network, :meth:`LatencyTable.in_network_ms`: net
    of the per-call overhead, which the network pays once, with the table's composition correction).

    Raises:
        LatencyTableError: the minimum is not a finite number > 0 (a wrong header term).
    """
    overhead = table.header.overhead_ms
    cost = table.in_network_ms
    best: tuple[float, Arch] | None = None
    for res in space.config.resolutions:
        for width in space.config.width_multipliers:
            stem, stages, tail = stage_options(space, res, width, num_classes)
            total = overhead + cost(stem) + sum(cost(l) for l in tail)
            chosen = []
            for opt in stages:
                i_first = min(range(len(opt.first)), key=lambda i: cost(opt.first[i]))
                first = cost(opt.first[i_first])
                if opt.later:
                    i_later = min(range(len(opt.later)), key=lambda i: cost(opt.later[i]))
                    later = cost(opt.later[i_later])
                else:
                    i_later, later = i_first, 0.0
                depth = min(opt.depths, key=lambda d: first + (d - 1) * later)
                total += first + (depth - 1) * later
                chosen.append((opt.first_choices[i_first],) + (opt.choices[i_later],) * (depth - 1))
            arch = Arch(space.name, res, width, tuple(chosen))
            if best is None or total < best[0]:
                best = (total, arch)
    assert best is not None
    table.check_prediction(best[0], f"fastest member of space {space.name!r}")
    return best
