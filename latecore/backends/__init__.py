"""Search backends of :class:`~latecore.index.LateIndex`: exact, warp, plaid, qdrant, lancedb.

``LateIndex(encoder, backend="warp", **options)`` picks one; the API and the
scores stay those of ``exact`` (see :mod:`latecore.backends.base`). The
``warp``, ``plaid``, ``qdrant`` and ``lancedb`` modules are imported only when
chosen, so ``import latecore`` never loads xtr-warp-rs, fast-plaid, torch,
qdrant-client, lancedb or pyarrow.

Examples
--------
>>> from latecore.backends import make_backend
>>> make_backend("exact").name
'exact'
>>> make_backend("faiss")
Traceback (most recent call last):
...
ValueError: unknown backend 'faiss'; choose one of: exact, lancedb, plaid, qdrant, warp
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .base import Backend, Ranking, SavedState
from .exact import ExactBackend

__all__ = [
    "BACKENDS",
    "Backend",
    "ExactBackend",
    "Ranking",
    "SavedState",
    "backend_class",
    "make_backend",
    "reopen_backend",
]

BACKENDS: dict[str, str] = {
    "exact": "latecore.backends.exact:ExactBackend",
    "lancedb": "latecore.backends.lancedb:LanceDBBackend",
    "plaid": "latecore.backends.plaid:PlaidBackend",
    "qdrant": "latecore.backends.qdrant:QdrantBackend",
    "warp": "latecore.backends.warp:WarpBackend",
}
"""Backend name -> ``module:class``, imported on first use."""


def backend_class(name: str) -> type[Backend]:
    """The backend class registered as ``name`` (its module is imported now).

    Raises
    ------
    ValueError
        If the name is unknown.
    """
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}")
    module_name, class_name = BACKENDS[name].split(":")
    cls: type[Backend] = getattr(importlib.import_module(module_name), class_name)
    return cls


def make_backend(backend: str | Backend, **options: Any) -> Backend:
    """A backend instance from its name and options (an instance is returned as is).

    Raises
    ------
    ValueError
        If the name is unknown, or options are given with an instance.
    ImportError
        If the backend's optional dependency is missing; the message names the
        extra to install (``pip install 'latecore[qdrant]'``).
    """
    if isinstance(backend, Backend):
        if options:
            raise ValueError(
                f"backend options {sorted(options)} were given with a backend instance; "
                "pass them to the backend's constructor instead"
            )
        return backend
    return backend_class(backend)(**options)


def reopen_backend(
    saved: Mapping[str, Any],
    directory: Path,
    backend: str | Backend | None = None,
    *,
    saved_at: Path | None = None,
    **options: Any,
) -> tuple[Backend, SavedState | None]:
    """The backend of an index being loaded, and the saved state it should attach.

    ``saved`` is the manifest entry (``name``, ``options``, ``state``) of the
    backend the index was saved with. With ``backend`` omitted or naming that
    same backend, it is re-created with its saved options updated by
    ``options`` and gets its state back (with ``saved_at``, where the index is
    saved); any other ``backend`` starts anew (``state`` is ``None``).

    Examples
    --------
    >>> chosen, state = reopen_backend({"name": "exact"}, Path("saved-index"))
    >>> chosen.name, state.state
    ('exact', {})
    >>> reopen_backend({"name": "exact"}, Path("saved-index"), backend="exact")[0].name
    'exact'
    """
    name = saved.get("name", "exact")
    if backend is not None and backend != name:
        return make_backend(backend, **options), None
    saved_class = backend_class(name)
    chosen = saved_class(**saved_class.merge_options(saved.get("options", {}), options))
    return chosen, SavedState(directory, saved.get("state") or {}, location=saved_at)
