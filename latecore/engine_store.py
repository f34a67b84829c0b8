"""A document store whose token vectors live only in the search engine.

``LateIndex(encoder, backend="qdrant", vectors="engine")`` keeps ids, texts,
metadata and each document's token count locally, and no token vector: the
engine (a Qdrant edge shard or cluster) holds them. Exact re-scoring,
:meth:`~latecore.index.LateIndex.score` (and so
:class:`~latecore.hybrid.HybridSearcher`) fetch the vectors of the few
documents they need from the engine through the backend's
:meth:`~latecore.backends.base.Backend.fetch_vectors`. A saved index then holds
``documents.jsonl`` and ``lengths.npy`` only.

Examples
--------
>>> import numpy as np
>>> engine = {"a": np.eye(2, dtype=np.float16), "b": np.ones((1, 2), dtype=np.float16)}
>>> store = EngineStore(fetch=lambda ids: [engine[i] for i in ids])
>>> store.add(["a", "b"], ["first", "second"], [{}, {}], [engine["a"], engine["b"]])
>>> store.holds_vectors, store.n_tokens, store.nbytes
(False, 3, 0)
>>> store.rank(np.array([[0.0, 1.0]], dtype=np.float32), [0, 1], k=1).positions.tolist()
[0]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._validation import StorageDtype
from .errors import IndexFormatError
from .store import DOCUMENTS_FILE, LENGTHS_FILE, RecordedStore, load_records

__all__ = ["EngineStore", "VectorSource"]

VectorSource = Callable[[Sequence[str]], list[np.ndarray]]
"""Token vectors of the given document ids, in that order (a backend's ``fetch_vectors``)."""


class EngineStore(RecordedStore):
    """Ids, texts, metadata and token counts locally; token vectors fetched from an engine.

    Parameters
    ----------
    dtype
        The dtype vectors are handed out in (scoring computes in float32).
    fetch
        Where vectors come from; a loaded store gets it from :meth:`connect`.
    """

    name = "engine"
    holds_vectors = False

    def __init__(self, dtype: StorageDtype = "float16", fetch: VectorSource | None = None) -> None:
        super().__init__(dtype)
        self._lengths = np.zeros(0, dtype=np.int64)
        self._dim = 0
        self._fetch = fetch

    def connect(self, fetch: VectorSource) -> None:
        """Fetch vectors through ``fetch`` from now on."""
        self._fetch = fetch

    def __repr__(self) -> str:
        return f"EngineStore({len(self)} documents, {self.n_tokens} token vectors in the engine)"

    @property
    def dim(self) -> int:
        """Dimension of the token vectors (0 while empty)."""
        return self._dim if len(self) else 0

    @property
    def n_tokens(self) -> int:
        """Total number of token vectors the engine holds for these documents."""
        return int(self._lengths.sum())

    @property
    def nbytes(self) -> int:
        """Bytes of token vectors held locally: none."""
        return 0

    def vectors(self, positions: Sequence[int] | np.ndarray) -> list[np.ndarray]:
        """The engine's vectors for the documents at ``positions`` (one fetch).

        Raises
        ------
        IndexFormatError
            If the engine's vectors disagree with the token counts stored here.
        """
        positions = np.asarray(positions, dtype=np.int64)
        if not len(positions):
            return []
        if self._fetch is None:
            raise RuntimeError("this EngineStore is not connected to an engine")
        ids = [self._records.ids[p] for p in positions.tolist()]
        fetched = [np.asarray(v, dtype=self._dtype) for v in self._fetch(ids)]
        got = [v.shape for v in fetched]
        expected = [(int(n), self._dim) for n in self._lengths[positions]]
        if got != expected:
            wrong = [i for i, g, e in zip(ids, got, expected, strict=False) if g != e] or ids
            raise IndexFormatError(
                f"the engine's vectors disagree with the index for {wrong[:5]}: "
                "was the collection changed by another program? Add those documents again."
            )
        return fetched

    def add(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        metadatas: Sequence[Mapping[str, Any]],
        vectors: Sequence[np.ndarray],
    ) -> None:
        """Record documents (the backend has already put their vectors in the engine)."""
        if not ids:
            return
        dim = self._check_added(ids, texts, metadatas, vectors)
        self.remove(ids)
        lengths = np.array([np.shape(v)[0] for v in vectors], dtype=np.int64)
        self._lengths = np.concatenate([self._lengths, lengths])
        self._records.append(ids, texts, metadatas)
        self._dim = dim

    def remove(self, ids: Sequence[str]) -> int:
        """Forget documents; returns how many were removed."""
        keep = self._kept(ids)
        if keep is None:
            return 0
        self._lengths = self._lengths[keep]
        self._records.keep(keep)
        return int(len(keep) - keep.sum())

    def save(self, directory: Path) -> dict[str, Any]:
        """Write ``documents.jsonl`` and ``lengths.npy``; the vectors stay in the engine."""
        self._records.save(directory / DOCUMENTS_FILE)
        np.save(directory / LENGTHS_FILE, self._lengths, allow_pickle=False)
        return {"name": self.name, "dtype": self._dtype.name, "count": len(self), "dim": self.dim}

    @classmethod
    def load(cls, directory: Path, entry: Mapping[str, Any]) -> EngineStore:
        """Read what :meth:`save` wrote; :meth:`connect` it to the engine before use."""
        store = cls(entry.get("dtype", "float16"))
        store._records, store._lengths = load_records(directory, entry)
        store._dim = int(entry.get("dim", 0))
        if len(store) and not store._dim:
            raise IndexFormatError(f"{directory} is damaged: the vector dimension is missing")
        return store
