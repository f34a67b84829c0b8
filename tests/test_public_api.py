"""The public namespace: ``__all__`` is honest."""

from __future__ import annotations

import inspect

import latecore


def test_all_lists_exactly_the_public_names() -> None:
    exported = set(latecore.__all__)
    assert all(hasattr(latecore, name) for name in exported)
    public = {
        name
        for name, value in vars(latecore).items()
        if not name.startswith("_") and not inspect.ismodule(value) and name not in {"annotations"}
    }
    assert public | {"__version__"} == exported


def test_import_is_light() -> None:
    """``import latecore`` pulls in neither torch nor pylate (nor any backend client)."""
    import subprocess
    import sys

    code = (
        "import sys, latecore; "
        "print(sorted(m for m in ('torch', 'pylate', 'qdrant_client', 'langchain_core',"
        " 'llama_index') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
