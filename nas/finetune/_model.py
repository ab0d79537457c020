"""Where a fine-tuning run starts from, and what of it trains: the source model, a new head,
stages and their freezing."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nas.errors import load_failure
from nas.nn import MobileNet, build_network, get_preset, is_preset, preset_names

__all__ = ["Source", "load_source", "with_classes", "stages", "freeze_early", "train_mode", "param_groups"]

MAX_ARCH_JSON_BYTES = 16 << 20


@dataclass(frozen=True)
class Source:
    """The network a fine-tuning run starts from and what its export recorded about it."""

    model: MobileNet
    kind: str  # "export" (a search's best/ or any export folder) or "preset" (fresh initialisation)
    path: str
    arch: Any  # nas.space.Arch or None
    record: dict[str, Any]  # the source's arch.json ({} for a preset)


def load_source(model: str, *, num_classes: int, resolution: int | None = None) -> Source:
    """``model``: an export folder (``weights.pt`` + ``arch.json``, e.g. a search's ``best/``) or a
    preset name (``mobilenetv3_small``: freshly initialised; nothing is downloaded).

    Raises:
        ValueError: neither an export folder nor a preset, or a broken export (named).
    """
    from nas.export import load_weights
    from nas.space import Arch

    path = Path(model)
    if path.is_dir():
        weights, arch_json = path / "weights.pt", path / "arch.json"
        missing = [p.name for p in (weights, arch_json) if not p.is_file()]
        if missing:
            raise ValueError(f"--model {model}: an export folder needs weights.pt and arch.json; missing {missing}")
        if arch_json.stat().st_size > MAX_ARCH_JSON_BYTES:
            raise ValueError(f"{arch_json}: larger than {MAX_ARCH_JSON_BYTES >> 20} MiB; not an arch.json of an export")
        try:
            record = json.loads(arch_json.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{arch_json}: not valid JSON ({e})") from e
        if not isinstance(record, dict):
            raise ValueError(f"{arch_json}: expected a JSON object, got {type(record).__name__}")
        try:
            net = load_weights(weights)
        except Exception as e:  # noqa: BLE001 - a corrupt or foreign file: one message, whatever broke
            raise ValueError(f"{weights}: cannot be loaded as weights written by nas.export ({load_failure(e)})") from None
        arch = Arch.from_dict(record["arch"]) if isinstance(record.get("arch"), dict) else None
        return Source(net, "export", str(path), arch, record)
    if is_preset(model):
        return Source(build_network(get_preset(model, num_classes=num_classes, resolution=resolution)),
                      "preset", model, None, {})
    raise ValueError(f"--model {model!r}: neither an export folder (weights.pt + arch.json, e.g. runs/NAME/best) "
                     f"nor a preset name ({', '.join(preset_names())})")


def with_classes(model: MobileNet, num_classes: int) -> tuple[MobileNet, bool]:
    """``model`` with a classifier for ``num_classes`` (a fresh last Linear when the count
    differs; every other weight kept); and whether the head was replaced."""
    if model.spec.num_classes == num_classes:
        return model, False
    new = build_network(dataclasses.replace(model.spec, num_classes=num_classes))
    kept = {k: v for k, v in model.state_dict().items() if not k.startswith("classifier.fc.")}
    missing, unexpected = new.load_state_dict(kept, strict=False)
    assert not unexpected and all(k.startswith("classifier.fc.") for k in missing), (missing, unexpected)
    return new, True


def stages(model: MobileNet) -> list[list[int]]:
    """The block indices of each stage: a stage starts at a block that strides or changes the
    channel count (MobileNet's stages: constant output channels, the first block may stride)."""
    out: list[list[int]] = []
    prev = model.spec.stem.out_channels
    for i, block in enumerate(model.spec.blocks):
        if not out or block.stride != 1 or block.out_channels != prev:
            out.append([])
        out[-1].append(i)
        prev = block.out_channels
    return out


def freeze_early(model: MobileNet, k: int) -> list[nn.Module]:
    """Freeze the stem and the first ``k`` stages (``requires_grad=False``); the frozen modules
    (keep them in eval mode with :func:`train_mode`).

    Raises:
        ValueError: ``k`` exceeds the network's number of stages.
    """
    groups = stages(model)
    if k > len(groups):
        raise ValueError(f"--freeze-stages {k}: the network has {len(groups)} stages (allowed: 0-{len(groups)})")
    if k == 0:
        return []
    frozen = [model.stem, *(model.blocks[i] for g in groups[:k] for i in g)]
    for m in frozen:
        for p in m.parameters():
            p.requires_grad_(False)
    return frozen


def train_mode(model: nn.Module, frozen: list[nn.Module]) -> None:
    """Training mode except the frozen modules, whose BatchNorm statistics must not move."""
    model.train()
    for m in frozen:
        m.eval()


def param_groups(model: MobileNet, lr: float, backbone_lr_scale: float, weight_decay: float) -> list[dict[str, Any]]:
    """Trainable parameters in four groups: backbone / head x decay / no decay (BN and biases);
    each group's ``base_lr`` is what the schedule scales."""
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        head = name.startswith(("final_conv.", "classifier."))
        groups.setdefault((head, p.dim() > 1), []).append(p)
    return [{"params": ps, "base_lr": lr * (1.0 if head else backbone_lr_scale),
             "weight_decay": weight_decay if decay else 0.0, "name": f"{'head' if head else 'backbone'}"}
            for (head, decay), ps in sorted(groups.items())]
