"""Cost model: parameters, multiply-adds and activation memory from the shape walker.

Multiply-adds follow the depthwise-separable formulas of the MobileNet papers: a k x k standard
conv costs ``k*k*M*N*H*W``, a depthwise conv ``k*k*M*H*W``, a 1x1 conv ``M*N*H*W``; SE and
classifier layers count their matrix products. BatchNorm (foldable), activations, pooling, the SE
scale and residual additions are not counted, as in the papers' tables.

Activation memory is float32: ``activation_bytes`` is every tensor a layer writes;
``peak_bytes`` is the most that is alive at once inside the layer (inputs kept for a residual).
"""

from __future__ import annotations

from dataclasses import dataclass

from nas.blocks import kind_named
from nas.netspec import NetworkSpec
from nas.shapes import LayerSpec, walk

__all__ = ["LayerCost", "NetworkCost", "layer_cost", "network_cost"]

BYTES = 4  # float32


@dataclass(frozen=True)
class LayerCost:
    layer: LayerSpec
    params: int
    madds: int
    activation_bytes: int
    peak_bytes: int


@dataclass(frozen=True)
class NetworkCost:
    name: str
    resolution: int
    num_classes: int
    layers: tuple[LayerCost, ...]

    @property
    def params(self) -> int:
        return sum(lc.params for lc in self.layers)

    @property
    def madds(self) -> int:
        return sum(lc.madds for lc in self.layers)

    @property
    def activation_bytes(self) -> int:
        return sum(lc.activation_bytes for lc in self.layers)

    @property
    def peak_bytes(self) -> int:
        return max(lc.peak_bytes for lc in self.layers)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "resolution": self.resolution,
            "num_classes": self.num_classes,
            "params": self.params,
            "madds": self.madds,
            "activation_bytes": self.activation_bytes,
            "peak_activation_bytes": self.peak_bytes,
            "layers": [
                {
                    "kind": lc.layer.kind,
                    "key": lc.layer.key,
                    "in_shape": list(lc.layer.in_shape),
                    "out_shape": list(lc.layer.out_shape),
                    "params": lc.params,
                    "madds": lc.madds,
                    "activation_bytes": lc.activation_bytes,
                    "peak_bytes": lc.peak_bytes,
                }
                for lc in self.layers
            ],
        }


def _bn(c: int) -> int:
    return 2 * c  # gamma, beta (running stats are buffers, not parameters)


def layer_cost(layer: LayerSpec) -> LayerCost:
    ci, hi, wi = layer.in_shape
    co, ho, wo = layer.out_shape
    k = layer.kernel
    n_in, n_out = ci * hi * wi, co * ho * wo
    if layer.kind == "stem":
        params = k * k * ci * co + _bn(co)
        madds = k * k * ci * co * ho * wo
        return LayerCost(layer, params, madds, BYTES * n_out, BYTES * (n_in + n_out))
    if layer.kind == "final_conv":
        params = ci * co + _bn(co)
        madds = ci * co * ho * wo
        return LayerCost(layer, params, madds, BYTES * n_out, BYTES * (n_in + n_out))
    if layer.kind == "classifier":
        h = layer.hidden
        if h:
            params = ci * h + h + h * co + co
            madds = ci * h + h * co
            written = ci + h + co
        else:
            params = ci * co + co
            madds = ci * co
            written = ci + co
        return LayerCost(layer, params, madds, BYTES * written, BYTES * (n_in + written))
    params, madds, written, peak = kind_named(layer.kind).cost(layer)  # a block: its kind's formula
    return LayerCost(layer, params, madds, BYTES * written, BYTES * peak)


def network_cost(spec: NetworkSpec, resolution: int | None = None) -> NetworkCost:
    """Per-layer and total cost of ``spec`` at ``resolution`` (default: the spec's own)."""
    res = spec.resolution if resolution is None else resolution
    return NetworkCost(spec.name, res, spec.num_classes, tuple(layer_cost(l) for l in walk(spec, res)))
