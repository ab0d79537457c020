"""``python -m nas.summary``: parameters, multiply-adds and activation memory of a network.

Examples::

    python -m nas.summary --arch mobilenetv3_large --resolution 224 --num-classes 1000
    python -m nas.summary --arch mobilenetv3_small_0.75 --json
    python -m nas.summary --space mobilenetv3_large --arch largest
    python -m nas.summary --arch runs/demo/best/arch.json

``--arch`` takes any network (a preset, a member of ``--space``, an arch, a network spec); see
:mod:`nas.cli_args`.
"""

from __future__ import annotations

import argparse
import json
import sys

from nas.cli_args import arch_help, int_arg, resolve_network
from nas.cost import NetworkCost, network_cost
from nas.data import MAX_RESOLUTION
from nas.errors import ArchError, ConfigError

__all__ = ["format_table", "main"]


def _shape(s: tuple[int, int, int]) -> str:
    return f"{s[0]}x{s[1]}x{s[2]}"


def format_table(cost: NetworkCost) -> str:
    head = f"{'#':>3} {'layer':<10} {'input':>12} {'output':>12} {'k':>2} {'s':>2} {'exp':>5} {'se':>4} {'act':<6} {'params':>10} {'MAdds':>13} {'act.KiB':>9}"
    lines = [f"{cost.name} @ {cost.resolution}px, {cost.num_classes} classes", head, "-" * len(head)]
    for i, lc in enumerate(cost.layers):
        l = lc.layer
        exp = str(l.mid_channels) if l.mid_channels else (str(l.hidden) if l.hidden else "")
        se = str(l.se_channels) if l.se_channels else ""
        conv = l.kind not in ("final_conv", "classifier")  # the stem and every block kind
        # a UIB's depthwise kernels: start+mid (0: none)
        k = (f"{l.start_kernel}+{l.kernel}" if l.start_kernel else str(l.kernel)) if conv else ""
        s = str(l.stride) if conv else ""
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
    parser.add_argument("--arch", required=True, help=arch_help(networks=True))
    parser.add_argument("--space", help="search space name or YAML file (for largest/smallest/random)")
    # the cost is analytic (nothing is allocated), but a side training and evaluation refuse is a typo
    parser.add_argument("--resolution", type=int_arg(1, MAX_RESOLUTION),
                        help=f"input resolution, 1..{MAX_RESOLUTION} (default: the arch's own)")
    parser.add_argument("--num-classes", type=int_arg(1), default=1000, help="classifier width (>= 1) [1000]")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
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
