"""A searchable collection of documents scored by exact MaxSim: a store and a backend.

:class:`LateIndex` is a facade (DESIGN §7) over a *store* (:mod:`latecore.store`:
ids, texts, metadata and token vectors, over which every final score is exact
MaxSim) and a *backend* (:mod:`latecore.backends`: which documents a query is
scored against). It implements the :class:`~latecore.searcher.Searcher`
protocol; :meth:`LateIndex.save` replaces the saved directory as a whole.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ._atomic import replace_directory
from ._saved import is_saved_index, opened_index, write_index
from ._validation import StorageDtype, check_count
from .backends import Backend, SavedState, make_backend
from .encoder import BaseEncoder
from .engine_store import EngineStore
from .results import SearchHit
from .searcher import Searcher, check_documents, check_ids, check_queries
from .store import DocumentStore, MemoryStore, StoreView, check_vectors

__all__ = ["LateIndex"]


class LateIndex(Searcher[SearchHit]):
    """Documents (ids, texts, metadata) searchable by exact MaxSim.

    By default the token vectors of all documents are kept packed in one
    matrix in memory (float16) and the ``exact`` backend scores a query with one
    pass of GEMM blocks over it. The ``warp``, ``qdrant``, ``lancedb`` and
    ``plaid`` backends pick candidates first; they are re-scored exactly from the store, so every
    backend returns ``exact``'s scores for the documents it returns (see
    "Scaling out" in the README for which to choose).

    Parameters
    ----------
    encoder
        The encoder for documents and queries; its cache (if any) is used.
    dtype
        Storage dtype of the vectors, ``"float16"`` (default) or ``"float32"``.
    backend
        ``"exact"`` (default), ``"warp"``, ``"qdrant"``, ``"lancedb"`` or
        ``"plaid"``, or a :class:`~latecore.backends.Backend` instance.
    store
        The :class:`~latecore.store.DocumentStore` to keep documents in (it may
        already hold documents); default a new :class:`~latecore.store.MemoryStore`.
    vectors
        Where token vectors live: ``"local"`` (default: in the store, fast exact
        re-scoring) or ``"engine"`` (only in the engine of a ``qdrant`` or
        ``lancedb`` backend, e.g. a Qdrant cluster: no local copy; re-scoring
        and :meth:`score` fetch the vectors they need; see
        :class:`~latecore.engine_store.EngineStore`).
    **backend_options
        Passed to the backend: see :class:`~latecore.backends.warp.WarpBackend`,
        :class:`~latecore.backends.qdrant.QdrantBackend`,
        :class:`~latecore.backends.lancedb.LanceDBBackend` and
        :class:`~latecore.backends.plaid.PlaidBackend`.

    Examples
    --------
    >>> from latecore.testing import FakeEncoder
    >>> index = LateIndex(FakeEncoder())
    >>> index.add(["paris is in france", "berlin is in germany"], ids=["p", "b"])
    ['p', 'b']
    >>> [hit.id for hit in index.search("where is berlin", k=1)]
    ['b']
    >>> index.delete(["b"])
    1
    >>> len(index)
    1
    """

    def __init__(
        self,
        encoder: BaseEncoder,
        *,
        dtype: StorageDtype = "float16",
        backend: str | Backend = "exact",
        store: DocumentStore | None = None,
        vectors: Literal["local", "engine"] = "local",
        **backend_options: Any,
    ) -> None:
        if vectors not in ("local", "engine"):
            raise ValueError(f"vectors must be 'local' or 'engine', got {vectors!r}")
        chosen = make_backend(backend, **backend_options)
        if vectors == "engine":
            if store is not None:
                chosen.close()
                raise ValueError("pass either store= or vectors='engine', not both")
            store = EngineStore(dtype)
        store = MemoryStore(dtype) if store is None else store
        self._setup(encoder, store, chosen, None)

    def _setup(
        self,
        encoder: BaseEncoder,
        store: DocumentStore,
        backend: Backend,
        saved: SavedState | None,
    ) -> None:
        if isinstance(store, EngineStore):
            if not backend.serves_vectors:
                backend.close()
                raise ValueError(
                    f"the {backend.name!r} backend cannot hold the token vectors; "
                    "vectors='engine' needs backend='qdrant' or 'lancedb'"
                )
            store.connect(backend.fetch_vectors)
        self.encoder = encoder
        self._store = store
        self._lock = threading.RLock()
        self._backend = backend
        try:
            backend.attach(store, saved)
        except BaseException:
            backend.close()  # release its files, clients and locks now, not at exit
            raise

    def __len__(self) -> int:
        return len(self._store)

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._store

    def __repr__(self) -> str:
        backend = "" if self._backend.name == "exact" else f", backend={self._backend.name!r}"
        return f"LateIndex({len(self)} documents, {self._store.n_tokens} token vectors{backend})"

    @property
    def backend(self) -> Backend:
        """The search backend (``backend.name``: ``"exact"``, ``"warp"``, ``"qdrant"``, ...)."""
        return self._backend

    @property
    def store(self) -> StoreView:
        """The documents and their vectors, read-only (change them through the index)."""
        return self._store

    @property
    def dtype(self) -> np.dtype[Any]:
        """Storage dtype of the token vectors."""
        return self._store.dtype

    @property
    def ids(self) -> list[str]:
        """Document ids in insertion order."""
        return list(self._store.ids)

    def build(self) -> None:
        """Build the backend's search structure now, not at the next search (``plaid``: a
        snapshot of every document, worth it after a bulk :meth:`add`)."""
        with self._lock:
            self._backend.build(self._store)

    def close(self) -> None:
        """Release the backend's clients and temporary files (idempotent); a closed
        ``plaid`` or ``qdrant`` index must not be searched again."""
        with self._lock:
            self._backend.close()

    def get(self, ids: Sequence[str]) -> list[SearchHit]:
        """Stored documents for ``ids`` (unknown ids are skipped), with score 0."""
        wanted = check_ids(ids, "get")
        with self._lock:
            found = [p for i in wanted if (p := self._store.find(i)) is not None]
            return self._hits(found, [0.0] * len(found))

    def add(
        self,
        texts: Sequence[str],
        ids: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> list[str]:
        """Encode and add documents (a stored id is replaced); returns the ids, uuid4 hex
        where none were given."""
        texts, new_ids, metas = check_documents(texts, ids, metadatas)
        if not texts:
            return []
        vectors = [np.asarray(v, dtype=self.dtype) for v in self.encoder.encode_documents(texts)]
        with self._lock:
            check_vectors(vectors, self._store.dim if len(self) else 0)
            # The backend first: if it fails, the store is unchanged.
            self._backend.add(new_ids, vectors, texts, metas)
            self._store.add(new_ids, texts, metas, vectors)
        return new_ids

    def delete(self, ids: Sequence[str]) -> int:
        """Remove documents by id; unknown ids are ignored. Returns how many were removed."""
        wanted = check_ids(ids)
        with self._lock:
            present = list(dict.fromkeys(i for i in wanted if i in self._store))
            if not present:
                return 0
            self._backend.delete(present)
            return self._store.remove(present)

    def search_batch(
        self, queries: Sequence[str], k: int = 10, **options: Any
    ) -> list[list[SearchHit]]:
        """The ``k`` best documents of each query by descending MaxSim (ties: insertion
        order); the queries are encoded in one call."""
        if options:
            raise TypeError(f"LateIndex.search takes no options {sorted(options)}")
        check_count(k, "k")
        queries = check_queries(queries)
        if not queries:
            return []
        if not len(self) or k == 0:
            return [[] for _ in queries]
        return self.search_vectors(self.encoder.encode_queries(queries), k)

    def search_vectors(self, queries: Sequence[np.ndarray], k: int = 10) -> list[list[SearchHit]]:
        """:meth:`search_batch` for queries already encoded by :attr:`encoder`."""
        check_count(k, "k")
        if not len(self) or k == 0:
            return [[] for _ in queries]
        with self._lock:
            rankings = self._backend.search(self._store, queries, k)
            return [self._hits(r.positions, r.scores.tolist()) for r in rankings]

    def _hits(self, positions: Sequence[int] | np.ndarray, scores: list[float]) -> list[SearchHit]:
        documents = self._store.documents(positions)
        return [
            SearchHit(doc.id, float(score), doc.text, dict(doc.metadata))
            for doc, score in zip(documents, scores, strict=True)
        ]

    def score(self, query: str, ids: Sequence[str]) -> np.ndarray:
        """Exact MaxSim (float32) of ``query`` against the stored documents ``ids``, in
        that order, without re-encoding them; ``KeyError`` for an id not in the index."""
        return self.score_batch([query], [ids])[0]

    def score_batch(self, queries: Sequence[str], ids: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """:meth:`score` for many queries, each against its own ids; one query encode in all."""
        queries = check_queries(queries)
        if len(queries) != len(ids):
            raise ValueError(f"got {len(queries)} queries but {len(ids)} id lists")
        id_lists = [check_ids(i, "score") for i in ids]
        with self._lock:
            for doc_ids in id_lists:
                self._store.positions(doc_ids)  # unknown ids fail before any encoding
        wanted = [q for q, i in zip(queries, id_lists, strict=True) if i]
        encoded = iter(self.encoder.encode_queries(wanted) if wanted else [])
        vectors = [next(encoded) if i else np.zeros((0, 0), np.float32) for i in id_lists]
        return self.score_vectors(vectors, id_lists)

    def score_vectors(
        self, queries: Sequence[np.ndarray], ids: Sequence[Sequence[str]]
    ) -> list[np.ndarray]:
        """:meth:`score_batch` for queries already encoded by :attr:`encoder`."""
        empty = np.zeros(0, np.float32)
        with self._lock:
            store = self._store
            pairs = zip(queries, ids, strict=True)
            return [store.score([q], store.positions(i))[0] if i else empty for q, i in pairs]

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the index to directory ``path``, replacing what a previous save left there.

        The new index is written completely beside ``path`` and swapped in, so a
        crash leaves either the previous saved index or the new one, never a mix.
        Vectors go to ``.npy``, documents to JSON lines (metadata must be
        JSON-serialisable), settings to a JSON manifest: nothing is pickled. A
        PLAID snapshot is copied into ``path/plaid``; a Qdrant collection stays
        where it is (no API key is ever written).

        Raises
        ------
        FileExistsError
            If ``path`` is a non-empty directory that is not a saved LateIndex.
        TypeError
            If a metadata value is not JSON-serialisable (nothing is changed).
        """
        with self._lock:
            replace_directory(
                path,
                lambda d: write_index(d, self._store, self._backend, self.encoder),
                is_ours=is_saved_index,
            )

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        encoder: BaseEncoder,
        /,
        *,
        backend: str | Backend | None = None,
        **backend_options: Any,
    ) -> LateIndex:
        """Read an index written by :meth:`save`.

        The index gets the backend it was saved with, its saved settings updated
        by ``backend_options`` (for example ``api_key=`` for a Qdrant server:
        keys are never saved). Another ``backend`` indexes the documents anew.

        Raises
        ------
        FingerprintMismatchError
            If ``encoder`` could produce different vectors than the one the index
            was built with; the message names both fingerprints and what differs.
        IndexFormatError
            If the directory is not a saved LateIndex, or is damaged.
        IndexChangedError
            If another process saved over it while it was being read: load again.
        """
        with opened_index(Path(path), encoder, backend, backend_options) as opened:
            index = cls.__new__(cls)
            index._setup(encoder, *opened)
        return index
