"""The activations have one home: names, searchable ones, token codes, module and functional forms agree."""

from __future__ import annotations

import pytest
import torch

from nas.activations import (
    ACTIVATIONS,
    CODE_ACTIVATIONS,
    SEARCH_ACTIVATIONS,
    TOKEN_CODES,
    apply_activation,
    make_activation,
)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_module_and_functional_forms_agree(name):
    x = torch.linspace(-8, 8, 101)
    assert torch.equal(make_activation(name)(x.clone()), apply_activation(x.clone(), name))


def test_searchable_activations_have_one_letter_codes_both_ways():
    assert set(SEARCH_ACTIVATIONS) == set(TOKEN_CODES) <= set(ACTIVATIONS)
    assert all(len(code) == 1 for code in TOKEN_CODES.values())
    assert {CODE_ACTIVATIONS[code] for code in TOKEN_CODES.values()} == set(TOKEN_CODES)


def test_unknown_names_are_refused_with_the_allowed_ones():
    with pytest.raises(ValueError, match="relu, relu6, hswish; got 'gelu'"):
        make_activation("gelu")
    with pytest.raises(ValueError, match="or None; got 'swish'"):
        apply_activation(torch.zeros(1), "swish")
    assert apply_activation(x := torch.ones(2), None) is x


def test_the_arch_token_and_the_space_schema_use_them():
    from nas.space import BlockArch
    from nas.space._schema import ALLOWED_SEARCH_ACTS

    assert ALLOWED_SEARCH_ACTS == SEARCH_ACTIVATIONS
    for name, code in TOKEN_CODES.items():
        assert BlockArch.from_string(f"k3e4{code}").act == name
