"""A document store whose token vectors live only in the search engine.

``LateIndex(encoder, backend="qdrant", vectors="engine")`` keeps ids, texts,
metadata and each document's token count locally, and no token vector: the
engine (a Qdrant edge shard or cluster, a LanceDB table) holds them. The store
never reaches the engine itself. A mirror backend's search returns its
candidates' vectors from the same engine request and re-scores them exactly;
:meth:`~latecore.index.LateIndex.score` and the candidates only a hybrid
searcher's BM25 stage nominates are fetched through the backend's
:meth:`~latecore.backends.base.Backend.fetch_vectors` by the index
(:class:`~latecore.index_view.IndexView`). Either way the vectors are checked
against the token counts stored here (:meth:`~latecore.store.StoreView.checked_vectors`).
A saved index then holds ``documents.jsonl`` and ``lengths.npy`` only.

Examples
--------
>>> import numpy as np
>>> store = EngineStore()
>>> engine = {"a": np.eye(2, dtype=np.float16), "b": np.ones((1, 2), dtype=np.float16)}
>>> store.add(["a", "b"], ["first", "second"], [{}, {}], [engine["a"], engine["b"]])
>>> store.holds_vectors, store.n_tokens, store.nbytes, store.token_counts([1, 0]).tolist()
(False, 3, 0, [1, 2])
>>> [v.shape for v in store.checked_vectors([0], [engine["a"]])]
[(2, 2)]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import IndexFormatError
from .records import DOCUMENTS_FILE, LENGTHS_FILE, load_records
from .store import RecordedStore
from .validation import StorageDtype

__all__ = ["EngineStore"]


class EngineStore(RecordedStore):
    """Ids, texts, metadata and token counts locally; token vectors fetched from an engine.

    Parameters
    ----------
    dtype
        The dtype the engine's vectors are checked into (scoring computes in float32).
    """

    name = "engine"
    holds_vectors = False

    def __init__(self, dtype: StorageDtype = "float16") -> None:
        if dtype == "int8":
            raise ValueError(
                "vectors='engine' keeps the vectors in the engine, as float16 or float32; "
                "int8 storage needs vectors='local' (the engine then gets float vectors)"
            )
        super().__init__(dtype)
        self._lengths = np.zeros(0, dtype=np.int64)
        self._dim = 0

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

    def token_counts(self, positions: Sequence[int] | np.ndarray) -> np.ndarray:
        """Token count of each document at ``positions`` (the engine holds the vectors)."""
        return self._lengths[np.asarray(positions, dtype=np.int64)]

    def vectors(self, positions: Sequence[int] | np.ndarray) -> list[np.ndarray]:
        """Refused: the vectors live in the engine (its backend returns or fetches them)."""
        raise LookupError(
            "this store keeps no token vectors (vectors='engine'): the index's backend "
            "returns them with its candidates or fetches them (LateIndex.score)"
        )

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
        """Read what :meth:`save` wrote."""
        store = cls(entry.get("dtype", "float16"))
        store._records, store._lengths = load_records(directory, entry)
        store._dim = int(entry.get("dim", 0))
        if len(store) and not store._dim:
            raise IndexFormatError(f"{directory} is damaged: the vector dimension is missing")
        return store
