"""Which table keys a search space (or a set of reference networks) needs.

Everything goes through the one shape walker (:func:`nas.shapes.walk`): a handful of *covering*
architectures (:meth:`~nas.space.SearchSpace.covering_archs`: every stage at its maximum depth,
pick ``i`` - mod the position's count, of any block kind the stage offers - in every block) are
resolved and walked at each resolution and width. Block keys depend only on the block's own pick
and its position (first block of a stage, or a later one), so these architectures produce every
key any member of the space can produce.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace

from nas.netspec import BlockSpec, HeadSpec, NetworkSpec, StemSpec
from nas.nn import get_preset
from nas.shapes import LayerSpec, walk
from nas.space import Arch, SearchSpace

__all__ = [
    "DEFAULT_NUM_CLASSES",
    "REFERENCE_NETWORKS",
    "StageOptions",
    "block_choices",
    "covering_archs",
    "space_layers",
    "stage_options",
    "reference_specs",
    "reference_layers",
    "proxyless_lut_specs",
    "minimalistic_spec",
    "layers_of",
]

#: Classifier widths measured by default: Fashion-MNIST/CIFAR-10, CIFAR-100, ImageNet.
DEFAULT_NUM_CLASSES = (10, 100, 1000)

_RES = (96, 128, 160, 192, 224)
#: Reference networks measured into every table (for ``predict --arch PRESET`` and the phone
#: calibration): the widths and resolutions of the published Pixel-1 rows, and a few more.
REFERENCE_NETWORKS: tuple[tuple[str, int], ...] = (
    *((f"mobilenetv2_{w}", r) for w in ("1.0", "0.75", "0.5", "0.35") for r in _RES),
    ("mobilenetv2_1.3", 224),
    ("mobilenetv2_1.4", 224),
    *((f"mnasnet_a1_{w}", r) for w in ("1.4", "1.0", "0.75", "0.5", "0.35") for r in _RES),
    *((f"mobilenetv3_{s}_{w}", r) for s in ("large", "small") for w in ("1.0", "0.75") for r in _RES),
)


def block_choices(space: SearchSpace, stage: int) -> list:
    """Every pick a later block of ``stage`` may take (the first block's: ``space.slot(stage, 0)``)."""
    return list(space.slot(stage, 1).options)


def covering_archs(space: SearchSpace, resolution: int, width: float) -> list[Arch]:
    """See :meth:`nas.space.SearchSpace.covering_archs`."""
    return space.covering_archs(resolution, width)


def layers_of(specs: Iterable[NetworkSpec]) -> dict[str, LayerSpec]:
    out: dict[str, LayerSpec] = {}
    for spec in specs:
        for layer in walk(spec):
            out.setdefault(layer.key, layer)
    return out


def _space_specs(space: SearchSpace, num_classes: Sequence[int]) -> Iterator[NetworkSpec]:
    cfg = space.config
    for res, width in itertools.product(cfg.resolutions, cfg.width_multipliers):
        archs = covering_archs(space, res, width)
        for arch in archs:
            yield space.resolve(arch, num_classes=num_classes[0])
        for nc in num_classes[1:]:  # the classifier is the only layer that depends on it
            yield space.resolve(archs[0], num_classes=nc)


def space_layers(space: SearchSpace, num_classes: Sequence[int] = DEFAULT_NUM_CLASSES) -> dict[str, LayerSpec]:
    """Every distinct key a member of ``space`` can produce (all resolutions, widths, depths)."""
    if not num_classes:
        raise ValueError("num_classes must list at least one class count")
    return layers_of(_space_specs(space, tuple(num_classes)))


@dataclass(frozen=True)
class StageOptions:
    """The keys one stage can contribute at one resolution and width, for every block pick."""

    depths: tuple[int, ...]
    first_choices: tuple  # picks of the stage's first block (strided: may differ from the later ones)
    first: tuple[LayerSpec, ...]  # its layer, per pick
    choices: tuple  # picks of any later block
    later: tuple[LayerSpec, ...]  # its layer, per pick (empty when max depth is 1)


def stage_options(
    space: SearchSpace, resolution: int, width: float, num_classes: int
) -> tuple[LayerSpec, list[StageOptions], list[LayerSpec]]:
    """``(stem, [StageOptions per stage], [final_conv, classifier])`` at one resolution and width."""
    archs = covering_archs(space, resolution, width)
    walks = [walk(space.resolve(a, num_classes=num_classes)) for a in archs]
    options = []
    offset = 1  # after the stem
    for s, st in enumerate(space.stages):
        first_slot, later_slot = space.slots(s)
        n_first, n_later = first_slot.count(), later_slot.count()
        first = tuple(walks[i][offset] for i in range(n_first))
        later = tuple(walks[i][offset + 1] for i in range(n_later)) if st.depths[-1] > 1 else ()
        options.append(StageOptions(tuple(st.depths), first_slot.options, first, later_slot.options, later))
        offset += st.depths[-1]
    return walks[0][0], options, walks[0][-2:]


def reference_specs(num_classes: int = 1000) -> list[NetworkSpec]:
    return [get_preset(name, num_classes=num_classes, resolution=r) for name, r in REFERENCE_NETWORKS]


def proxyless_lut_specs() -> list[NetworkSpec]:
    """Networks whose layers are exactly the keys of the published ProxylessNAS Pixel-1 block table.

    That table (``pixel1_proxylessnas_block_lut.yaml``) has, at 224 px, a 3x3 stem to 32 channels,
    a first block 32 -> 16 without expansion, stages of 24, 40, 80, 96, 192, 320 channels (a first
    block and a repeated block each), expansion 3 or 6, kernel 3/5/7, ReLU6, no SE; then 1x1 to
    1280 and the 1000-way classifier.
    """
    stages = [(24, 2, True), (40, 2, True), (80, 2, True), (96, 1, True), (192, 2, True), (320, 1, False)]
    specs = []
    for k, e in itertools.product((3, 5, 7), (3, 6)):
        blocks = [BlockSpec(32, 32, 16, k, 1, 0, "relu6")]
        c = 16
        for out, stride, repeat in stages:
            blocks.append(BlockSpec(c, c * e, out, k, stride, 0, "relu6"))
            c = out
            if repeat:
                blocks.append(BlockSpec(c, c * e, c, k, 1, 0, "relu6"))
        specs.append(
            NetworkSpec(
                name=f"proxyless_lut_k{k}e{e}",
                in_channels=3,
                resolution=224,
                num_classes=1000,
                stem=StemSpec(32, 3, 2, "relu6"),
                blocks=tuple(blocks),
                head=HeadSpec(1280, "relu6", 0, "relu6", 0.0),
            )
        )
    return specs


def minimalistic_spec(size: str, num_classes: int = 1000, resolution: int = 224) -> NetworkSpec:
    """MobileNetV3-{Large,Small}-minimalistic (published in the TF slim model zoo): the V3 layout
    with every kernel 3x3, no squeeze-excitation and ReLU everywhere."""
    base = get_preset(f"mobilenetv3_{size}", num_classes=num_classes, resolution=resolution)
    blocks = tuple(replace(b, kernel=3, se_channels=0, act="relu") for b in base.blocks)
    return base.replace(
        name=f"mobilenetv3_{size}_minimalistic_1",
        stem=replace(base.stem, act="relu"),
        blocks=blocks,
        head=replace(base.head, final_act="relu", classifier_act="relu"),
    )


def reference_layers(num_classes: int = 1000) -> dict[str, LayerSpec]:
    """Keys of the reference networks and of the ProxylessNAS block table's layers."""
    minimal = [minimalistic_spec(s, num_classes) for s in ("large", "small")]
    return layers_of([*reference_specs(num_classes), *minimal, *proxyless_lut_specs()])
