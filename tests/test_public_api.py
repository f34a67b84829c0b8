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
