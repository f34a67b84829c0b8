"""One read path over a :class:`~latecore.index.LateIndex`'s store and backend.

An :class:`IndexView` is what searching needs while the index's lock is held:
positions, rankings from the backend, exact MaxSim over any positions, and the
stored documents as hits. Positions are valid only inside one view (a change
to the index renumbers them); :meth:`LateIndex.view() <latecore.index.LateIndex.view>`
hands one out under the lock, so a searcher built on an index
(:class:`~latecore.hybrid.HybridSearcher`) turns ids into positions once per
query and works on positions from there.

Where the store keeps no token vectors (``vectors="engine"``), the view is the
one place that fetches them from the backend (:meth:`IndexView.vectors`): once
per call, checked against the stored token counts. The store itself never
calls the backend.

Examples
--------
>>> from latecore import LateIndex
>>> from latecore.testing import FakeEncoder
>>> index = LateIndex(FakeEncoder())
>>> _ = index.add(["cats purr", "dogs bark", "cows moo"], ids=["c", "d", "m"])
>>> query = index.encoder.encode_queries(["dogs"])
>>> with index.view() as view:
...     ranking = view.rank(query, k=1)[0]
...     scores = view.score(query, [view.positions(["c", "d"])])[0]
...     hit = view.hits(ranking.positions, ranking.scores.tolist())[0]
>>> hit.id, float(scores[1]) == hit.score
('d', True)
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np

from .backends import Backend, ExactBackend, Ranking
from .filters import Filter
from .maxsim import PackedDocuments
from .results import SearchHit
from .store import Selection, StoreView

__all__ = ["EXACT_SUBSET", "IndexView"]

EXACT_SUBSET = 2048
"""A filter that holds for at most this many documents is searched exactly over them,
whatever the backend (where the store holds the vectors): scoring a few thousand
documents costs less than an engine's search, and is exact (docs/benchmarks.md)."""


class IndexView:
    """A LateIndex's documents by position, with exact MaxSim and the backend's rankings.

    Valid while the index is not changed (its lock held); see the module docstring.
    """

    def __init__(self, store: StoreView, backend: Backend) -> None:
        self.store = store
        self.backend = backend

    def __len__(self) -> int:
        return len(self.store)

    @property
    def ids(self) -> Sequence[str]:
        """Ids in position order (the store's snapshot: replaced, never changed, on a change)."""
        return self.store.ids

    def positions(self, ids: Sequence[str]) -> np.ndarray:
        """Positions of ``ids``; ``KeyError`` naming up to five that are not stored."""
        return self.store.positions(ids)

    def select(self, filter: Filter | None) -> Selection | None:
        """The documents a compiled filter holds for (``None``: no filter)."""
        return None if filter is None else self.store.select(filter)

    def rank(
        self, queries: Sequence[np.ndarray], k: int, where: Selection | None = None
    ) -> list[Ranking]:
        """The backend's best ``k`` positions for each encoded query, among ``where``'s
        documents when given; every position is checked against ``where`` again."""
        if not len(self.store) or k == 0 or (where is not None and not len(where.positions)):
            return [Ranking.empty() for _ in queries]
        if where is None:
            return self.backend.search(self.store, queries, k)
        backend = self.backend
        exact_below = max(EXACT_SUBSET, backend.exact_share * len(self.store))
        if self.store.holds_vectors and len(where.positions) <= exact_below:
            backend = ExactBackend()
        return [where.keep(r) for r in backend.search(self.store, queries, k, where)]

    def search(
        self, queries: Sequence[np.ndarray], k: int, filter: Filter | None = None
    ) -> list[list[SearchHit]]:
        """The best ``k`` hits of each encoded query among the documents ``filter`` holds for."""
        rankings = self.rank(queries, k, self.select(filter))
        return [self.hits(r.positions, r.scores.tolist()) for r in rankings]

    def vectors(self, positions: Sequence[int] | np.ndarray) -> list[np.ndarray]:
        """Token vectors at ``positions``: the store's, or one fetch from the engine."""
        if self.store.holds_vectors:
            return self.store.vectors(positions)
        positions = np.asarray(positions, dtype=np.int64)
        if not len(positions):
            return []
        ids = [doc.id for doc in self.store.documents(positions)]
        return self.store.checked_vectors(positions, self.backend.fetch_vectors(ids))

    def score(
        self, queries: Sequence[np.ndarray], positions: Sequence[Sequence[int] | np.ndarray]
    ) -> list[np.ndarray]:
        """Exact MaxSim (float32) of each query against its own positions, in that order.

        The vectors of every position of every query are read once (one engine
        fetch in all where the engine holds them).
        """
        wanted = [np.asarray(p, dtype=np.int64) for p in positions]
        if len(wanted) != len(queries):
            raise ValueError(f"got {len(queries)} queries but {len(wanted)} position lists")
        union = np.unique(np.concatenate(wanted)) if wanted else np.zeros(0, np.int64)
        vectors = self.vectors(union) if len(union) else []
        dtype = self.store.vector_dtype
        scores = []
        for query, these in zip(queries, wanted, strict=True):
            if not len(these):
                scores.append(np.zeros(0, dtype=np.float32))
                continue
            slots = np.searchsorted(union, these)
            packed = PackedDocuments([vectors[s] for s in slots.tolist()], dtype=dtype)
            scores.append(packed.score([query])[0])
        return scores

    def hits(
        self, positions: Sequence[int] | np.ndarray, scores: Sequence[float]
    ) -> list[SearchHit]:
        """Stored documents at ``positions`` as hits with ``scores`` (metadata deep-copied:
        changing a hit's nested metadata never changes what is stored)."""
        return [
            SearchHit(doc.id, float(score), doc.text, copy.deepcopy(dict(doc.metadata)))
            for doc, score in zip(self.store.documents(positions), scores, strict=True)
        ]
