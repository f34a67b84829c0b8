"""The core stays in small modules: none over 600 lines, the LateIndex facade at most 300."""

from __future__ import annotations

from pathlib import Path

import latecore

PACKAGE_DIR = Path(latecore.__file__).parent


def _lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def test_no_core_module_is_over_600_lines() -> None:
    sizes = {str(p.relative_to(PACKAGE_DIR)): _lines(p) for p in PACKAGE_DIR.rglob("*.py")}
    assert len(sizes) > 40
    assert {name: n for name, n in sizes.items() if n > 600} == {}


def test_the_index_facade_is_at_most_300_lines() -> None:
    assert _lines(PACKAGE_DIR / "index.py") <= 300
