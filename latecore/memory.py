"""Where an index's token vectors take memory and disk: :class:`MemoryReport`.

:meth:`LateIndex.memory() <latecore.index.LateIndex.memory>` reports, separately,
the bytes per stored token of

- the **store** in process memory (``store_bytes``; for a memory-mapped store,
  :mod:`latecore.mapped_store`, only its in-memory tail, the mapped file being
  ``mapped_bytes``: resident only where queries touch it);
- the **engine**'s own index files (``engine_bytes``: the files in the backend's
  directory, such as WARP's compressed residuals; ``None`` where the engine keeps
  them elsewhere, a Qdrant server say, or there is no engine);
- the encoder's **cache** on disk (``cache_bytes``, the whole cache database,
  which may hold other indexes' documents too; ``None`` without a cache).

Figures for each configuration: ``docs/benchmarks.md#token-pooling``; the
options: ``docs/memory.md``.

Examples
--------
>>> from latecore import LateIndex
>>> from latecore.testing import FakeEncoder
>>> index = LateIndex(FakeEncoder(dim=32), dtype="int8")
>>> _ = index.add(["one two three"])
>>> report = index.memory()
>>> report.tokens, report.store_per_token, report.engine_bytes
(4, 36.0, None)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .backends import Backend
    from .base_encoder import BaseEncoder
    from .store import StoreView

__all__ = ["MemoryReport", "memory_report"]


@dataclass(frozen=True)
class MemoryReport:
    """Bytes an index's vectors take, by place (see the module docstring)."""

    tokens: int
    """Stored token vectors."""
    dtype: str
    """Storage dtype of the store."""
    store_bytes: int
    """Vector bytes held in process memory by the store (int8: with the scales)."""
    mapped_bytes: int
    """Vector bytes in a memory-mapped file (0 unless loaded with ``mmap=True``)."""
    engine_bytes: int | None
    """Bytes of the engine's index files in its directory (``None``: not known here)."""
    cache_bytes: int | None
    """Bytes of the encoder cache's database (``None``: no cache)."""

    @staticmethod
    def _per(value: int | None, tokens: int) -> float | None:
        return None if value is None else (value / tokens if tokens else 0.0)

    @property
    def store_per_token(self) -> float:
        """Store bytes (in memory and mapped) per stored token."""
        return self._per(self.store_bytes + self.mapped_bytes, self.tokens) or 0.0

    @property
    def engine_per_token(self) -> float | None:
        """Engine index bytes per stored token."""
        return self._per(self.engine_bytes, self.tokens)

    @property
    def cache_per_token(self) -> float | None:
        """Cache bytes per stored token (an upper bound when the cache is shared)."""
        return self._per(self.cache_bytes, self.tokens)

    def as_dict(self) -> dict[str, Any]:
        """Every field and per-token figure, as plain values."""
        return {
            **asdict(self),
            "store_per_token": self.store_per_token,
            "engine_per_token": self.engine_per_token,
            "cache_per_token": self.cache_per_token,
        }


def _directory_bytes(directory: object) -> int | None:
    if not isinstance(directory, Path) or not directory.is_dir():
        return None
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def memory_report(store: StoreView, backend: Backend, encoder: BaseEncoder) -> MemoryReport:
    """The :class:`MemoryReport` of a store, its backend and its encoder."""
    held = int(getattr(store, "nbytes", 0)) if store.holds_vectors else 0
    cache = encoder.cache
    return MemoryReport(
        tokens=store.n_tokens,
        dtype=store.dtype.name,
        store_bytes=held,
        mapped_bytes=int(getattr(store, "mapped_bytes", 0)),
        engine_bytes=_directory_bytes(backend.index_directory),
        cache_bytes=None if cache is None else cache.stats().bytes,
    )
