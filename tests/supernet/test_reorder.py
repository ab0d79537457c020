"""Channel-importance re-ordering: the largest subnet's function is kept, channels end up sorted,
and the optimizer's momentum follows its weights."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from nas.supernet import Supernet, importance_order


def _reorderable(supernet):
    return [b for stage in supernet.stages for b in stage if b.reorderable]


def test_only_blocks_whose_every_member_expands_are_reorderable(tiny_space):
    supernet = Supernet(tiny_space, 4)
    flags = [[b.reorderable for b in stage] for stage in supernet.stages]
    # first: no expand conv; s1 has expansion 1 (mid == in: no expand conv); s2 always expands
    assert flags == [[False], [False, False], [True, True, True]]


def test_reorder_keeps_the_largest_subnet_and_sorts_mid_channels(tiny_space, randomize):
    supernet = Supernet(tiny_space, 4, seed=3)
    randomize(supernet)
    supernet.eval()
    largest, smallest = tiny_space.largest(), tiny_space.smallest()
    x = torch.randn(3, 3, largest.resolution, largest.resolution, generator=torch.Generator().manual_seed(0))
    before, small_before = supernet(x, largest), supernet(x, smallest)
    untouched = {k: v.clone() for k, v in supernet.state_dict().items() if not k.startswith("stages.2.")}
    assert supernet.reorder_channels() == 3
    torch.testing.assert_close(supernet(x, largest), before, rtol=1e-5, atol=1e-5)
    # a smaller expansion now inherits the most important channels: its output changes
    assert not torch.allclose(supernet(x, smallest), small_before, rtol=1e-3, atol=1e-3)
    for block in _reorderable(supernet):
        norms = block.project.conv.weight.abs().sum((0, 2, 3))
        assert torch.all(norms[:-1] >= norms[1:])
        se_norms = block.se.expand.weight.abs().sum((0, 2, 3))
        assert torch.all(se_norms[:-1] >= se_norms[1:])
    for k, v in untouched.items():  # blocks that are not re-orderable, stem and head are untouched
        assert torch.equal(supernet.state_dict()[k], v), k
    sorted_state = {k: v.clone() for k, v in supernet.state_dict().items()}
    supernet.reorder_channels()  # already sorted: a second pass changes nothing
    for k, v in sorted_state.items():
        assert torch.equal(supernet.state_dict()[k], v), k


def test_reorder_moves_the_momentum_with_the_weights(tiny_space):
    supernet = Supernet(tiny_space, 4, seed=1).train()
    opt = torch.optim.SGD(supernet.parameters(), lr=0.1, momentum=0.9)
    largest = tiny_space.largest()
    x = torch.randn(4, 3, largest.resolution, largest.resolution, generator=torch.Generator().manual_seed(1))
    F.cross_entropy(supernet(x, largest), torch.tensor([0, 1, 2, 3])).backward()
    opt.step()
    block = _reorderable(supernet)[0]
    w = block.project.conv.weight
    order = importance_order(w, 1)
    assert not torch.equal(order, torch.arange(len(order)))  # the test permutes something
    momentum = opt.state[w]["momentum_buffer"].clone()
    expand_momentum = opt.state[block.expand.conv.weight]["momentum_buffer"].clone()
    supernet.reorder_channels(opt)
    torch.testing.assert_close(opt.state[w]["momentum_buffer"], momentum[:, order])
    torch.testing.assert_close(opt.state[block.expand.conv.weight]["momentum_buffer"], expand_momentum[order])


def test_importance_order_is_by_decreasing_l1_norm_and_stable():
    w = torch.tensor([[1.0, -3.0, 2.0, 3.0], [0.0, 0.0, -1.0, 0.0]])
    assert importance_order(w, 1).tolist() == [1, 2, 3, 0]
    assert importance_order(w, 0).tolist() == [0, 1]
