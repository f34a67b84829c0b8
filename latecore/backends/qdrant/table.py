"""What both Qdrant engines (an embedded shard, a server) offer the backend, beyond a mirror table.

:class:`QdrantTable` is the one interface of :mod:`~latecore.backends.qdrant.edge`
and :mod:`~latecore.backends.qdrant.server`: the collection's schema, upserts of
:class:`~latecore.backends.qdrant.schema.Points`, payload indexes, and queries
(MUVERA prefetch, MaxSim over the multivector, an optional filter). Point ids are
the documents' keys. Each engine builds its own filter objects from a translated
:class:`~latecore.backends.qdrant.filtering.Condition`.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..mirror import Candidate, MirrorTable
from .filtering import Condition, PayloadType
from .schema import Points, Schema, point_id

__all__ = ["QdrantTable"]


class QdrantTable(MirrorTable):
    """A latecore collection in one Qdrant engine."""

    def key(self, doc_id: str) -> object:
        return point_id(doc_id)

    @abstractmethod
    def ensure(self, schema: Schema) -> None:
        """Create the collection for ``schema``, or check the existing one's vector sizes."""

    @abstractmethod
    def upsert(self, points: Points) -> None:
        """Write a batch of points."""

    @abstractmethod
    def create_indexes(self, fields: dict[str, PayloadType]) -> None:
        """Payload indexes on ``fields`` (field -> type); existing ones are kept."""

    @abstractmethod
    def condition(self, node: Condition) -> Any:
        """The engine's own object for one node of a translated filter."""

    @property
    @abstractmethod
    def filter_class(self) -> type:
        """The engine's ``Filter`` class."""

    def filter(self, condition: Condition) -> Any:
        """The engine's ``Filter`` of a translated condition."""
        built = self.condition(condition)
        return built if isinstance(built, self.filter_class) else self.filter_class(must=[built])

    @abstractmethod
    def query(
        self,
        fdes: np.ndarray | None,
        queries: Sequence[np.ndarray],
        prefetch: int,
        limit: int,
        hnsw_ef: int | None,
        with_vectors: bool,
        condition: Condition | None = None,
    ) -> list[list[Candidate]]:
        """The best ``limit`` points per query: by MaxSim over ``"colbert"``, among the
        ``prefetch`` best by MUVERA (``fdes``; ``None``: all points), within ``condition``."""
