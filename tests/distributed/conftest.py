"""The synthetic latency table of the search tests, for searches on Ray-trained supernets."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest


def _search_conftest():
    # one definition of the fake table (tests/search/conftest.py), loaded by path: test dirs are not packages
    path = Path(__file__).resolve().parents[1] / "search" / "conftest.py"
    spec = importlib.util.spec_from_file_location("_search_conftest_for_distributed", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def fake_table(tmp_path, tiny_space) -> Path:
    return _search_conftest().write_fake_table(tiny_space, tmp_path / "fake_phone.json")
