"""The backend protocol behind :class:`~latecore.index.LateIndex`.

A :class:`~latecore.index.LateIndex` always keeps the documents itself: ids,
texts, metadata and every token vector, packed (float16 by default). That local
store is the source of truth: :meth:`~latecore.index.LateIndex.get`,
:meth:`~latecore.index.LateIndex.score` and :meth:`~latecore.index.LateIndex.save`
read it, and a backend can always be rebuilt from it. A backend decides which
documents a query is scored against:

- ``exact`` scores every document (no extra state);
- ``plaid`` asks a PLAID index (fast-plaid) for candidates;
- ``qdrant`` asks a Qdrant multivector collection for candidates.

Candidates are re-scored by exact MaxSim over the stored vectors
(:meth:`Corpus.rank`), so every backend returns the scores ``exact`` would give
the same documents; only *which* documents reach the top ``k`` can differ.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np

from ..maxsim import PackedDocuments, top_k

__all__ = ["Backend", "Corpus", "Ranking", "SavedState"]


class Ranking(NamedTuple):
    """A query's result: positions in the :class:`Corpus` and their scores, best first."""

    positions: np.ndarray
    scores: np.ndarray

    @classmethod
    def empty(cls) -> Ranking:
        """A ranking without documents."""
        return cls(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))


@dataclass(frozen=True)
class Corpus:
    """Read-only view of a :class:`~latecore.index.LateIndex`'s documents, for backends.

    Position ``p`` is the ``p``-th document in insertion order; positions change
    when documents are deleted, ids never do.

    Examples
    --------
    >>> vectors = [np.eye(2, dtype=np.float32), np.ones((1, 2), dtype=np.float32)]
    >>> corpus = Corpus.from_vectors(["a", "b"], vectors)
    >>> ranking = corpus.rank(np.array([[1.0, 0.0]], dtype=np.float32), [0, 1], k=2)
    >>> ranking.positions.tolist(), ranking.scores.tolist()
    ([0, 1], [1.0, 1.0])
    """

    ids: Sequence[str]
    positions: Mapping[str, int]
    packed: PackedDocuments
    texts: Sequence[str]
    metadatas: Sequence[Mapping[str, Any]]

    @classmethod
    def from_vectors(
        cls,
        ids: Sequence[str],
        vectors: Sequence[np.ndarray],
        texts: Sequence[str] | None = None,
        dtype: np.dtype[Any] | type = np.float32,
    ) -> Corpus:
        """A corpus built from loose vectors (for tests and benchmarks)."""
        return cls(
            ids=list(ids),
            positions={doc_id: p for p, doc_id in enumerate(ids)},
            packed=PackedDocuments(vectors, dtype=dtype),
            texts=list(texts) if texts is not None else [""] * len(ids),
            metadatas=[{} for _ in ids],
        )

    def __len__(self) -> int:
        return len(self.ids)

    def vectors(self, position: int) -> np.ndarray:
        """The stored token vectors of the document at ``position`` (a view, storage dtype)."""
        return self.packed.document(position)

    def subset(self, positions: np.ndarray) -> PackedDocuments:
        """The documents at ``positions`` packed into a new matrix (storage dtype kept)."""
        return PackedDocuments(
            [self.packed.document(int(p)) for p in positions], dtype=self.packed.dtype
        )

    def rank(self, query: np.ndarray, positions: Sequence[int] | np.ndarray, k: int) -> Ranking:
        """Exact MaxSim of ``query`` over the documents at ``positions``; the best ``k``.

        Duplicates are dropped and ties break by insertion order, as in ``exact``.
        """
        unique = np.unique(np.asarray(positions, dtype=np.int64))
        if not len(unique) or k == 0:
            return Ranking.empty()
        scores = self.subset(unique).score([query])[0]
        order = top_k(scores, k)
        return Ranking(unique[order], scores[order])


def merge_rankings(a: Ranking, b: Ranking, k: int) -> Ranking:
    """The best ``k`` of two rankings over disjoint positions (ties: lower position first)."""
    positions = np.concatenate([a.positions, b.positions])
    scores = np.concatenate([a.scores, b.scores]).astype(np.float32, copy=False)
    order = np.lexsort((positions, -scores))[:k]
    return Ranking(positions[order], scores[order])


@dataclass(frozen=True)
class SavedState:
    """What :meth:`Backend.save` wrote: the index directory and the manifest entry."""

    directory: Path
    state: Mapping[str, Any]


class Backend(ABC):
    """Candidate generation (and any extra storage) behind a LateIndex.

    A LateIndex calls, under its lock: :meth:`attach` once (a new index, or one
    being loaded), :meth:`add` and :meth:`delete` *before* it changes its own
    store (so a backend failure leaves the index unchanged), :meth:`search` with
    encoded queries, :meth:`build` on request, :meth:`save` when it saves, and
    :meth:`close`.
    """

    name: ClassVar[str]
    """The name passed as ``LateIndex(..., backend=name)``."""

    @property
    def options(self) -> dict[str, Any]:
        """Settings worth saving with an index (JSON values; never secrets)."""
        return {}

    @classmethod
    def merge_options(
        cls, saved: Mapping[str, Any], overrides: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Constructor options for loading: the saved :attr:`options`, updated by ``overrides``."""
        return {**saved, **overrides}

    def attach(self, corpus: Corpus, saved: SavedState | None) -> None:  # noqa: B027
        """Take over ``corpus``: empty for a new index, or the documents of a loaded one.

        ``saved`` is this backend's state from :meth:`save` when the index was
        saved with the same backend, else ``None`` (then index ``corpus`` anew).
        """

    @abstractmethod
    def add(
        self,
        ids: Sequence[str],
        vectors: Sequence[np.ndarray],
        texts: Sequence[str],
        metadatas: Sequence[Mapping[str, Any]],
    ) -> None:
        """Index new documents; an id that is already indexed is replaced."""

    @abstractmethod
    def delete(self, ids: Sequence[str]) -> None:
        """Forget documents (every id given is indexed)."""

    @abstractmethod
    def search(self, corpus: Corpus, queries: Sequence[np.ndarray], k: int) -> list[Ranking]:
        """The best ``k`` documents of ``corpus`` for each query (``k >= 1``, corpus not empty)."""

    def build(self, corpus: Corpus) -> None:  # noqa: B027
        """Build any search structure over ``corpus`` now (default: nothing to build)."""

    def save(self, directory: Path) -> dict[str, Any]:
        """Write backend files under ``directory``; return the JSON manifest entry."""
        return {}

    def close(self) -> None:  # noqa: B027
        """Release clients, files and temporary directories (idempotent)."""
