"""Test tiers: ``pytest -m "not engines"`` works where the engine extras are not installed.

The check hides xtr-warp-rs, qdrant-edge-py, qdrant-client and lancedb from a child
pytest (a ``sitecustomize`` on its ``PYTHONPATH`` replaces the path finder with one
that does not see them, in the child and in every process it starts), then collects
the whole suite and runs the modules that mix engine and engine-free tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HIDDEN = ("xtr_warp", "qdrant_edge", "qdrant_client", "lancedb")

_HIDE_ENGINES = textwrap.dedent(
    f"""
    import sys
    from importlib.machinery import PathFinder

    HIDDEN = {set(HIDDEN)!r}


    class WithoutEngines(PathFinder):
        @classmethod
        def find_spec(cls, fullname, path=None, target=None):
            if fullname.partition(".")[0] in HIDDEN:
                return None
            return super().find_spec(fullname, path, target)


    sys.meta_path[:] = [WithoutEngines if f is PathFinder else f for f in sys.meta_path]
    """
)


def _without_engines(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "sitecustomize.py").write_text(_HIDE_ENGINES, encoding="utf-8")
    path = os.pathsep.join([str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")])])
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": path},
        timeout=600,
    )


def test_the_engines_are_hidden_from_the_child(tmp_path: Path) -> None:
    probe = f"import importlib.util as u; print([u.find_spec(n) is None for n in {HIDDEN!r}])"
    out = _without_engines(tmp_path, "-c", probe + "; import lancedb")
    assert out.stdout.strip() == str([True] * len(HIDDEN))
    assert "ModuleNotFoundError: No module named 'lancedb'" in out.stderr


@pytest.mark.slow
def test_the_suite_collects_without_the_engine_extras(tmp_path: Path) -> None:
    out = _without_engines(tmp_path, "-m", "pytest", "--collect-only", "-q", "-m", "not engines")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    collected = out.stdout.splitlines()
    summary = next(line for line in reversed(collected) if "tests collected" in line)
    assert "error" not in summary and "deselected" in summary, summary
    assert any(line.startswith("tests/test_counts.py::") for line in collected)
    for engine_module in ("test_backend_qdrant", "test_backend_lancedb", "test_backend_warp"):
        assert not any(f"{engine_module}.py::" in line for line in collected), engine_module


@pytest.mark.slow
def test_mixed_modules_pass_without_the_engine_extras(tmp_path: Path) -> None:
    """Modules holding engine and engine-free tests: only the engine ones are deselected."""
    modules = [
        "tests/test_counts.py",
        "tests/test_backends.py",
        "tests/test_engine_store.py",
        "latecore/backends",
    ]
    out = _without_engines(tmp_path, "-m", "pytest", "-q", "-m", "not engines", *modules)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert " passed" in out.stdout and "deselected" in out.stdout
