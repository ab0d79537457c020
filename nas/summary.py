"""``python -m nas.summary``: parameters, multiply-adds and activation memory of a network.

Examples::

    python -m nas.summary --arch mobilenetv3_large --resolution 224 --num-classes 1000
    python -m nas.summary --arch mobilenetv3_small_0.75 --json
    python -m nas.summary --space mobilenetv3_large --arch largest
    python -m nas.summary --arch runs/demo/best/arch.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nas.cost import NetworkCost, network_cost
from nas.data import MAX_RESOLUTION
from nas.errors import ArchError, ConfigError
from nas.netspec import NetworkSpec
from nas.nn import get_preset, is_preset, preset_names
from nas.space import Arch, load_space

__all__ = ["resolve_network", "format_table", "main"]


def resolve_network(
    arch: str, *, space: str | None, resolution: int | None, num_classes: int
) -> NetworkSpec:
    """Turn an ``--arch`` value into a :class:`NetworkSpec`.

    ``arch`` is a preset name (``mobilenetv3_large_0.75``), ``largest``/``smallest``/``random:SEED``
    of ``space``, an arch string (``mobilenetv3_large r224 w1 | ...``), or a JSON file holding an
    :class:`Arch` or a :class:`NetworkSpec`.
    """
    if is_preset(arch):
        return get_preset(arch, num_classes=num_classes, resolution=resolution or 224)
    if arch in ("largest", "smallest") or arch.startswith("random:"):
        if space is None:
            raise ValueError(f"--arch {arch} needs --space (a shipped space name or a YAML file)")
        s = load_space(space)
        if arch == "largest":
            a = s.largest()
        elif arch == "smallest":
            a = s.smallest()
        else:
            a = s.sample(int(arch.split(":", 1)[1]))
        return s.resolve(a, num_classes, resolution)
    if "|" in arch:
        a = Arch.from_string(arch)
        return load_space(space or a.space).resolve(a, num_classes, resolution)
    path = Path(arch)
    if not path.is_file():
        raise ValueError(
            f"--arch {arch!r} is not a preset ({', '.join(preset_names())}), not largest/smallest/"
            f"random:SEED, not an arch string, and not an existing JSON file"
        )
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON: {exc}") from None
    if isinstance(data, dict) and "blocks" in data:
        spec = NetworkSpec.from_dict(data)
        spec = spec.replace(num_classes=num_classes) if num_classes != spec.num_classes else spec
        return spec.replace(resolution=resolution) if resolution else spec
    a = Arch.from_dict(data.get("arch", data) if isinstance(data, dict) else data)
    return load_space(space or a.space).resolve(a, num_classes, resolution)


def _shape(s: tuple[int, int, int]) -> str:
    return f"{s[0]}x{s[1]}x{s[2]}"


def format_table(cost: NetworkCost) -> str:
    head = f"{'#':>3} {'layer':<10} {'input':>12} {'output':>12} {'k':>2} {'s':>2} {'exp':>5} {'se':>4} {'act':<6} {'params':>10} {'MAdds':>13} {'act.KiB':>9}"
    lines = [f"{cost.name} @ {cost.resolution}px, {cost.num_classes} classes", head, "-" * len(head)]
    for i, lc in enumerate(cost.layers):
        l = lc.layer
        exp = str(l.mid_channels) if l.kind == "bneck" else (str(l.hidden) if l.hidden else "")
        se = str(l.se_channels) if l.se_channels else ""
        k = str(l.kernel) if l.kind in ("stem", "bneck") else ""
        s = str(l.stride) if l.kind in ("stem", "bneck") else ""
        act = l.act or l.hidden_act
        lines.append(
            f"{i:>3} {l.kind:<10} {_shape(l.in_shape):>12} {_shape(l.out_shape):>12} {k:>2} {s:>2} "
            f"{exp:>5} {se:>4} {act:<6} {lc.params:>10,} {lc.madds:>13,} {lc.activation_bytes / 1024:>9.1f}"
        )
    lines.append("-" * len(head))
    lines.append(
        f"total: {cost.params:,} params ({cost.params / 1e6:.2f} M), {cost.madds:,} MAdds "
        f"({cost.madds / 1e6:.1f} M), activations written {cost.activation_bytes / 2**20:.2f} MiB, "
        f"peak live {cost.peak_bytes / 2**20:.2f} MiB (float32)"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nas.summary",
        description="Print params, multiply-adds and activation memory per block and in total.",
    )
    parser.add_argument(
        "--arch",
        required=True,
        help="preset name (" + ", ".join(preset_names()) + ", optional _WIDTH suffix), "
        "largest|smallest|random:SEED of --space, an arch string, or a JSON file",
    )
    parser.add_argument("--space", help="search space name or YAML file (for largest/smallest/random)")
    parser.add_argument("--resolution", type=int,
                        help=f"input resolution, 1..{MAX_RESOLUTION} (default: the arch's own)")
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.resolution is not None and not 1 <= args.resolution <= MAX_RESOLUTION:
        # the cost is analytic (nothing is allocated), but a side training and evaluation refuse is a typo
        parser.error(f"--resolution must be in 1..{MAX_RESOLUTION} px, got {args.resolution}")
    if args.num_classes <= 0:
        parser.error(f"--num-classes must be positive, got {args.num_classes}")
    try:
        spec = resolve_network(
            args.arch, space=args.space, resolution=args.resolution, num_classes=args.num_classes
        )
    except (ValueError, ArchError, ConfigError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cost = network_cost(spec)
    if args.json:
        print(json.dumps(cost.to_dict()))
    else:
        print(format_table(cost))
    return 0


if __name__ == "__main__":
    sys.exit(main())
