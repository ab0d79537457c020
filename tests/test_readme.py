"""The README's layout section lists every package and public top-level module of nas/."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_layout_lists_every_package_and_module():
    text = (ROOT / "README.md").read_text()
    layout = text[text.index("## Layout"):]
    layout = layout[: layout.index("```", layout.index("```") + 3)]
    listed = set(re.findall(r"nas/[A-Za-z0-9_]+(?:/|\.py)", layout))
    packages = {f"nas/{p.name}/" for p in (ROOT / "nas").iterdir() if (p / "__init__.py").is_file()}
    modules = {f"nas/{p.name}" for p in (ROOT / "nas").glob("*.py") if not p.name.startswith("__")}
    missing = sorted((packages | modules) - listed)
    assert not missing, f"README layout does not list: {missing}"
