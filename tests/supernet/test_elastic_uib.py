"""ElasticUIB: every member equals its static UniversalInvertedBottleneck once copied into it, and
channel re-ordering keeps the largest member's function.

Tiny blocks (6 -> 12 -> 6 channels, 4 SE units) with stride 1 and 2, start and mid depthwise
kernel ladders (one of them empty in two blocks), the largest, the smallest and 24 random members
each, on maps from 1x1 (most taps see only padding) to 8x8.
"""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F

from tests.supernet.conftest import _randomize
from nas.blocks import UIBSpec, UniversalInvertedBottleneck
from nas.supernet import ElasticBatchNorm2d, ElasticSqueezeExcite, ElasticUIB, importance_order

MAX_IN, MAX_MID, MAX_OUT, MAX_SE = 6, 12, 6, 4
RESOLUTIONS = (1, 2, 3, 5, 8)

#: name -> (start_kernels, mid_kernels, stride)
BLOCKS = {
    "both-s1": ((3, 5, 7), (3, 5), 1),
    "both-s2": ((3, 5), (3, 5, 7), 2),
    "mid-only-s2": ((), (3, 5), 2),
    "start-only-s2": ((3, 5, 7), (), 2),
}


def _block(name: str, *, kernel_transform: bool = False, skip_padding_taps: bool = True, seed: int = 0,
           dtype: torch.dtype = torch.float32) -> ElasticUIB:
    """An ElasticUIB initialised as the supernet does, then with non-trivial BN statistics,
    affine parameters, biases and kernel transforms."""
    start, mid, stride = BLOCKS[name]
    block = ElasticUIB(max_in=MAX_IN, max_mid=MAX_MID, max_out=MAX_OUT, max_se=MAX_SE, start_kernels=start,
                       mid_kernels=mid, stride=stride, kernel_transform=kernel_transform,
                       skip_padding_taps=skip_padding_taps)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in block.modules():
            if isinstance(module, ElasticBatchNorm2d):
                module.reset_parameters()
            elif module is not block and hasattr(module, "reset_parameters") and not isinstance(
                module, ElasticSqueezeExcite
            ):
                module.reset_parameters(g)
    _randomize(block, seed)  # non-trivial BN statistics, affine parameters, biases, transforms
    return block.to(dtype)


def _largest(name: str) -> UIBSpec:
    start, mid, stride = BLOCKS[name]
    return UIBSpec(MAX_IN, MAX_MID, MAX_OUT, max(start, default=0), max(mid, default=0), stride, MAX_SE, "hswish")


def _smallest(name: str) -> UIBSpec:
    start, mid, stride = BLOCKS[name]
    km = min(mid) if stride == 2 and mid else 0
    ks = min(start) if stride == 2 and not km else 0
    return UIBSpec(1, 1, 1, ks, km, stride, 0, "relu")


def _specs(name: str, n: int = 24, seed: int = 0) -> list[UIBSpec]:
    start, mid, stride = BLOCKS[name]
    rng = random.Random(seed)
    specs = [_largest(name), _smallest(name)]
    while len(specs) < n + 2:
        ks, km = rng.choice((0, *start)), rng.choice((0, *mid))
        if stride == 2 and not (ks or km):
            continue  # an FFN has no stride 2
        ci = rng.randint(1, MAX_IN)
        co = ci if rng.random() < 0.4 else rng.randint(1, MAX_OUT)
        se = rng.choice((0, rng.randint(1, MAX_SE)))
        specs.append(UIBSpec(ci, rng.randint(1, MAX_MID), co, ks, km, stride, se, rng.choice(("relu", "hswish"))))
    return specs


def _static(block: ElasticUIB, spec: UIBSpec) -> UniversalInvertedBottleneck:
    ref = next(block.parameters())
    dst = UniversalInvertedBottleneck(spec).to(device=ref.device, dtype=ref.dtype).train(block.training)
    block.copy_into(dst)
    return dst


def _conformance(name: str, *, kernel_transform: bool, skip_padding_taps: bool, dtype: torch.dtype) -> None:
    block = _block(name, kernel_transform=kernel_transform, skip_padding_taps=skip_padding_taps, dtype=dtype).eval()
    g = torch.Generator().manual_seed(1)
    rng = random.Random(2)
    atol = 1e-5 if dtype == torch.float32 else 1e-10
    for spec in _specs(name):
        res = rng.choice(RESOLUTIONS)
        x = torch.randn(2, spec.in_channels, res, res + 1, generator=g, dtype=dtype)
        static = _static(block, spec)
        with torch.no_grad():
            expected, got = static(x), block(x, spec)
        assert got.shape == expected.shape
        torch.testing.assert_close(got, expected, rtol=0, atol=atol, msg=lambda m: f"{spec} at {res}px: {m}")


# -- the members the tests run ------------------------------------------------------------------------

@pytest.mark.parametrize("name", BLOCKS)
def test_the_members_cover_every_variant_se_and_residual(name):
    start, mid, stride = BLOCKS[name]
    specs = _specs(name)
    variants = {(bool(s.start_kernel), bool(s.mid_kernel)) for s in specs}
    possible = {(a, b) for a in (False, bool(start)) for b in (False, bool(mid)) if stride == 1 or a or b}
    assert variants == possible
    assert {s.has_se for s in specs} == {False, True}
    assert {s.residual for s in specs} == ({False, True} if stride == 1 else {False})
    # every kernel of each ladder, and 0 (no depthwise conv) unless the stride needs the other one absent
    assert {s.start_kernel for s in specs} == {*start} | ({0} if stride == 1 or mid else set())
    assert {s.mid_kernel for s in specs} == {*mid} | ({0} if stride == 1 or start else set())
    # the four instances of the paper over the blocks: ExtraDW, IB, ConvNext-like, FFN
    assert set().union(*({(bool(s.start_kernel), bool(s.mid_kernel)) for s in _specs(b)} for b in BLOCKS)) == {
        (True, True), (False, True), (True, False), (False, False)
    }


# -- conformance -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("skip_padding_taps", [False, True])
@pytest.mark.parametrize("kernel_transform", [False, True])
@pytest.mark.parametrize("name", BLOCKS)
def test_every_member_equals_its_static_block(name, kernel_transform, skip_padding_taps):
    # not always bit-identical: a cropped (non-contiguous) one-channel kernel may take another conv
    # path than the static block's contiguous copy (a few ulps)
    _conformance(name, kernel_transform=kernel_transform, skip_padding_taps=skip_padding_taps, dtype=torch.float32)


@pytest.mark.parametrize("kernel_transform", [False, True])
@pytest.mark.parametrize("name", BLOCKS)
def test_every_member_equals_its_static_block_in_float64(name, kernel_transform):
    _conformance(name, kernel_transform=kernel_transform, skip_padding_taps=True, dtype=torch.float64)


@pytest.mark.parametrize("name", ["both-s1", "start-only-s2"])
def test_train_mode_matches_and_updates_the_active_statistics(name):
    block = _block(name, kernel_transform=True, seed=3).train()
    g = torch.Generator().manual_seed(4)
    for spec in _specs(name, n=6, seed=5):
        static = _static(block, spec)
        x = torch.randn(4, spec.in_channels, 5, 5, generator=g)
        with torch.no_grad():
            torch.testing.assert_close(block(x, spec), static(x), rtol=1e-5, atol=1e-5)
        pairs = [(block.expand.bn, static.expand[1])]
        if spec.start_kernel:
            pairs.append((block.start.bn, static.start[1]))
        if spec.mid_kernel:
            pairs.append((block.mid.bn, static.mid[1]))
        for elastic, bn in pairs:
            c = bn.num_features
            torch.testing.assert_close(elastic.running_mean[:c], bn.running_mean, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(elastic.running_var[:c], bn.running_var, rtol=1e-5, atol=1e-6)


def test_forward_is_stateless():
    block = _block("both-s1", kernel_transform=True).eval()
    g = torch.Generator().manual_seed(6)
    a, b = _largest("both-s1"), UIBSpec(4, 5, 3, 3, 0, 1, 2, "relu")
    xa, xb = torch.randn(2, a.in_channels, 6, 6, generator=g), torch.randn(2, b.in_channels, 6, 6, generator=g)
    with torch.no_grad():
        first = block(xa, a)
        block(xb, b)
        assert torch.equal(block(xa, a), first)


@pytest.mark.parametrize("name", ["both-s1", "start-only-s2"])
def test_channels_last_inputs_give_the_same_output(name):
    # training runs channels-last: the start depthwise conv at the member's stride takes that path too
    block = _block(name, kernel_transform=True, seed=11).eval()
    g = torch.Generator().manual_seed(12)
    for spec in _specs(name, n=6, seed=13):
        x = torch.randn(2, spec.in_channels, 6, 6, generator=g)
        with torch.no_grad():
            got = block(x.contiguous(memory_format=torch.channels_last), spec)
            torch.testing.assert_close(got, block(x, spec), rtol=1e-5, atol=1e-6)


def test_copies_are_independent_of_the_block():
    block = _block("both-s1")  # largest kernels, no transform: the active weights are views of the stored ones
    spec = _largest("both-s1")
    stored = {k: v.clone() for k, v in block.state_dict().items()}
    static = _static(block, spec)
    with torch.no_grad():
        for t in list(static.parameters()) + [b for b in static.buffers() if b.is_floating_point()]:
            t.add_(1.0)
    for k, v in block.state_dict().items():
        assert torch.equal(v, stored[k]), k
    copied = {k: v.clone() for k, v in static.state_dict().items()}
    with torch.no_grad():
        for p in block.parameters():
            p.mul_(2.0)
    for k, v in static.state_dict().items():
        assert torch.equal(v, copied[k]), k


def test_optional_parts_are_not_stored():
    block = ElasticUIB(max_in=4, max_mid=8, max_out=4, max_se=0, start_kernels=(), mid_kernels=(3,), stride=1)
    assert block.start is None and block.se is None and block.mid is not None
    block = ElasticUIB(max_in=4, max_mid=8, max_out=4, max_se=2, start_kernels=(5, 3), mid_kernels=(), stride=2)
    assert block.mid is None and block.start.conv.kernels == (3, 5) and block.start.conv.stride == 1


def test_bad_blocks_and_members_are_rejected():
    with pytest.raises(ValueError, match="start_kernels must hold odd positive kernels"):
        ElasticUIB(max_in=4, max_mid=8, max_out=4, max_se=0, start_kernels=(0, 3), mid_kernels=(3,), stride=1)
    with pytest.raises(ValueError, match="stride-2 UIB needs a depthwise conv"):
        ElasticUIB(max_in=4, max_mid=8, max_out=4, max_se=0, start_kernels=(), mid_kernels=(), stride=2)
    block = _block("mid-only-s2")
    x = torch.randn(1, 4, 4, 4)
    bad = {
        "start_kernel must be 0 or one of": UIBSpec(4, 8, 4, 3, 3, 2, 0, "relu"),
        "mid_kernel must be 0 or one of": UIBSpec(4, 8, 4, 0, 7, 2, 0, "relu"),
        "this block's stride is 2": UIBSpec(4, 8, 4, 0, 3, 1, 0, "relu"),
        r"exceed this block's \(6, 12, 6\)": UIBSpec(4, 13, 4, 0, 3, 2, 0, "relu"),
        "se_channels is 5, this block stores 4": UIBSpec(4, 8, 4, 0, 3, 2, 5, "relu"),
    }
    for message, spec in bad.items():
        with pytest.raises(ValueError, match=message):
            block(x, spec)
        with pytest.raises(ValueError, match=message):
            block.copy_into(UniversalInvertedBottleneck(spec))
    with pytest.raises(ValueError, match="x has 4 channels, spec.in_channels is 5"):
        block(x, UIBSpec(5, 8, 4, 0, 3, 2, 0, "relu"))


# -- channel re-ordering ---------------------------------------------------------------------------------

def _start_state(block: ElasticUIB) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in block.state_dict().items() if k.startswith("start.") or "transforms" in k}


@pytest.mark.parametrize("name", BLOCKS)
def test_reorder_keeps_the_largest_member_and_sorts_the_mid_channels(name):
    block = _block(name, kernel_transform=True, seed=7).eval()
    largest = _largest(name)
    start, mid, stride = BLOCKS[name]
    smaller = UIBSpec(MAX_IN, 5, MAX_OUT, max(start, default=0), max(mid, default=0), stride, 2, "hswish")
    x = torch.randn(3, MAX_IN, 8, 8, generator=torch.Generator().manual_seed(8))
    old = {k: v.clone() for k, v in block.state_dict().items()}
    mid_order = importance_order(block.project.conv.weight, 1)
    hidden_order = importance_order(block.se.expand.weight, 1)
    assert not torch.equal(mid_order, torch.arange(MAX_MID)) and not torch.equal(hidden_order, torch.arange(MAX_SE))
    untouched = _start_state(block)
    with torch.no_grad():
        before, smaller_before = block(x, largest), block(x, smaller)
        block.reorder()
        torch.testing.assert_close(block(x, largest), before, rtol=1e-5, atol=1e-5)
        # a member with fewer mid channels now inherits the most important ones: its output changes
        assert not torch.allclose(block(x, smaller), smaller_before, rtol=1e-3, atol=1e-3)
    norms = block.project.conv.weight.abs().sum((0, 2, 3))
    assert torch.all(norms[:-1] >= norms[1:])
    se_norms = block.se.expand.weight.abs().sum((0, 2, 3))
    assert torch.all(se_norms[:-1] >= se_norms[1:])
    # every tensor indexed by the mid channels moved alike
    new = block.state_dict()
    mid_indexed = ["expand.conv.weight", "expand.bn.weight", "expand.bn.bias", "expand.bn.running_mean",
                   "expand.bn.running_var", "se.expand.bias"]
    if mid:
        mid_indexed += ["mid.conv.weight", "mid.bn.weight", "mid.bn.bias", "mid.bn.running_mean", "mid.bn.running_var"]
    for k in mid_indexed:
        assert torch.equal(new[k], old[k][mid_order]), k
    assert torch.equal(new["project.conv.weight"], old["project.conv.weight"][:, mid_order])
    assert torch.equal(new["se.reduce.weight"], old["se.reduce.weight"][hidden_order][:, mid_order])
    assert torch.equal(new["se.reduce.bias"], old["se.reduce.bias"][hidden_order])
    assert torch.equal(new["se.expand.weight"], old["se.expand.weight"][mid_order][:, hidden_order])
    for k, v in untouched.items():  # the start depthwise conv (input channels) and the transforms stay
        assert torch.equal(new[k], v), k
    assert untouched or not start
    sorted_state = {k: v.clone() for k, v in new.items()}
    block.reorder()  # already sorted: a second pass changes nothing
    for k, v in block.state_dict().items():
        assert torch.equal(v, sorted_state[k]), k


def test_reorder_moves_the_momentum_with_the_weights():
    block = _block("both-s1", kernel_transform=True, seed=9).train()
    opt = torch.optim.SGD(block.parameters(), lr=0.1, momentum=0.9)
    largest = _largest("both-s1")
    x = torch.randn(4, MAX_IN, 6, 6, generator=torch.Generator().manual_seed(10))
    F.mse_loss(block(x, largest), torch.zeros(4, MAX_OUT, 6, 6)).backward()
    opt.step()
    mid = importance_order(block.project.conv.weight, 1)
    hidden = importance_order(block.se.expand.weight, 1)
    assert not torch.equal(mid, torch.arange(MAX_MID))

    def momentum() -> dict[str, torch.Tensor]:  # the transforms of the smaller kernels got no gradient
        return {k: opt.state[p]["momentum_buffer"].clone() for k, p in block.named_parameters() if opt.state[p]}

    m = momentum()
    block.reorder(opt)
    after = momentum()
    for name in ("expand.conv.weight", "expand.bn.weight", "mid.conv.weight", "mid.bn.bias", "se.expand.bias"):
        torch.testing.assert_close(after[name], m[name][mid], msg=name)
    torch.testing.assert_close(after["project.conv.weight"], m["project.conv.weight"][:, mid])
    torch.testing.assert_close(after["se.reduce.weight"], m["se.reduce.weight"][hidden][:, mid])
    torch.testing.assert_close(after["se.expand.weight"], m["se.expand.weight"][mid][:, hidden])
    for name in ("start.conv.weight", "start.bn.weight", "project.bn.weight"):  # not indexed by mid channels
        assert torch.equal(after[name], m[name]), name
