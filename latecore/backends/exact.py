"""The ``exact`` backend: every query is scored against every stored document."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..maxsim import top_k
from ..store import StoreView
from .base import Backend, Ranking, Selection

__all__ = ["ExactBackend"]


class ExactBackend(Backend):
    """Brute-force MaxSim over every stored document: exact, no state, no build step.

    One pass of GEMM blocks over all stored vectors per batch of queries; best
    up to a few hundred thousand documents on a CPU (see "Scaling out" in the README).

    Examples
    --------
    >>> from latecore.store import MemoryStore
    >>> store = MemoryStore()
    >>> store.add(["a", "b"], ["", ""], [{}, {}], [np.eye(2), np.ones((1, 2))])
    >>> query = np.array([[0.0, 1.0]], dtype=np.float32)
    >>> ExactBackend().search(store, [query], k=1)[0].positions.tolist()
    [0]
    """

    name = "exact"

    def add(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        metadatas: Sequence[Mapping[str, Any]],
        vectors: Sequence[np.ndarray],
    ) -> None:
        """Nothing to do: the LateIndex stores the vectors."""

    def delete(self, ids: Sequence[str]) -> None:
        """Nothing to do: the LateIndex stores the vectors."""

    def search(
        self,
        store: StoreView,
        queries: Sequence[np.ndarray],
        k: int,
        where: Selection | None = None,
    ) -> list[Ranking]:
        """Score all documents (or only ``where``'s), keep the best ``k`` (ties: insertion order).

        A selection of more than half the documents is scored in place with the
        rest masked out; a smaller one is packed and scored alone.
        """
        if where is None:
            return [
                Ranking(order, row[order])
                for row in store.score(queries)
                for order in [top_k(row, k)]
            ]
        positions = where.positions
        if 2 * len(positions) > len(store):
            rankings = []
            for row in store.score(queries):
                masked = np.where(where.mask, row, -np.inf)
                order = top_k(masked, min(k, len(positions)))
                rankings.append(Ranking(order, row[order]))
            return rankings
        scores = store.score(queries, positions)
        return [
            Ranking(positions[order], row[order]) for row in scores for order in [top_k(row, k)]
        ]
