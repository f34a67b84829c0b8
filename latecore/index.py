"""A searchable collection of documents scored by exact MaxSim: a facade (DESIGN §7) over
a *store* (:mod:`latecore.store`) and a *backend* (:mod:`latecore.backends`), implementing
the :class:`~latecore.searcher.Searcher` protocol."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ._atomic import replace_directory
from ._saved import is_saved_index, opened_index, write_index
from .backends import Backend, SavedState, make_backend
from .base_encoder import BaseEncoder
from .batching import MicroBatcher
from .engine_store import EngineStore
from .filters import FilterSpec, compile_filter
from .index_view import IndexView
from .memory import MemoryReport, memory_report
from .pages import Page, page_documents
from .results import SearchHit
from .searcher import Searcher, check_documents, check_ids, check_queries
from .store import DocumentStore, MemoryStore, StoreView, check_vectors
from .validation import StorageDtype, check_count

__all__ = ["LateIndex"]


class LateIndex(Searcher[SearchHit]):
    """Documents (ids, texts, metadata) searchable by exact MaxSim.

    The ``exact`` backend scores every document; the others pick candidates and
    re-score them exactly, so every backend returns ``exact``'s scores for what it
    returns (docs/backends.md says which to choose).

    Parameters
    ----------
    encoder
        The encoder for documents and queries; its cache (if any) is used.
    dtype
        Storage dtype of the vectors, ``"float16"`` (default), ``"float32"`` or ``"int8"``.
    backend
        ``"exact"`` (default), ``"warp"``, ``"qdrant"``, ``"lancedb"`` or
        ``"plaid"``, or a :class:`~latecore.backends.Backend` instance.
    store
        A :class:`~latecore.store.DocumentStore` (it may hold documents); default a new one.
    vectors
        ``"local"`` (default: in the store) or ``"engine"`` (only in a ``qdrant`` or
        ``lancedb`` engine: :class:`~latecore.engine_store.EngineStore`).
    **backend_options
        Passed to the backend (``WarpBackend``, ``QdrantBackend``,
        ``LanceDBBackend``, ``PlaidBackend`` in :mod:`latecore.backends`).

    Examples
    --------
    >>> from latecore.testing import FakeEncoder
    >>> index = LateIndex(FakeEncoder())
    >>> index.add(["paris is in france", "berlin is in germany"], ids=["p", "b"])
    ['p', 'b']
    >>> [hit.id for hit in index.search("where is berlin", k=1)]
    ['b']
    >>> index.delete(["b"]), len(index)
    (1, 1)
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
        if vectors == "engine" and store is not None:
            chosen.close()
            raise ValueError("pass either store= or vectors='engine', not both")
        if store is None:
            store = EngineStore(dtype) if vectors == "engine" else MemoryStore(dtype)
        self._setup(encoder, store, chosen, None)

    def _setup(
        self, encoder: BaseEncoder, store: DocumentStore, backend: Backend, saved: SavedState | None
    ) -> None:
        if not store.holds_vectors and not backend.serves_vectors:
            backend.close()
            raise ValueError(
                f"the {backend.name!r} backend cannot hold the token vectors; "
                "vectors='engine' needs backend='qdrant' or 'lancedb'"
            )
        self.encoder = encoder
        self._store = store
        self._lock = threading.RLock()
        self._backend = backend
        owned = self._lock._is_owned  # type: ignore[attr-defined]  # in view(): search alone
        self._batch = MicroBatcher(encoder.max_batch, encoder.batch_wait_ms / 1e3, alone_if=owned)
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
        """Build the backend's search structure now (worth it after a bulk :meth:`add`)."""
        with self._lock:
            self._backend.build(self._store)

    def close(self) -> None:
        """Release the backend's clients and temporary files (idempotent; not searchable after)."""
        with self._lock:
            self._backend.close()

    @contextmanager
    def view(self) -> Iterator[IndexView]:
        """The index by position while the ``with`` block runs (:mod:`latecore.index_view`)."""
        with self._lock:
            yield IndexView(self._store, self._backend)

    def get(self, ids: Sequence[str]) -> list[SearchHit]:
        """Stored documents for ``ids`` (unknown ids are skipped), with score 0."""
        with self.view() as view:
            found = [p for i in check_ids(ids, "get") if (p := self._store.find(i)) is not None]
            return view.hits(found, [0.0] * len(found))

    def add(
        self,
        texts: Sequence[str],
        ids: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> list[str]:
        """Encode and add documents (a stored id is replaced); the ids (uuid4 hex if not given)."""
        texts, new, metas = check_documents(texts, ids, metadatas)
        return self._add_encoded(new, texts, metas, lambda: self.encoder.encode_documents(texts))

    def add_pages(self, pages: Sequence[Page]) -> list[str]:
        """Encode and add pages (:func:`~latecore.pages.page_documents`: a PageEncoder's)."""
        return self._add_encoded(*page_documents(self.encoder, pages))

    def _add_encoded(self, ids: list[str], texts: list[str], metas: Any, encode: Any) -> list[str]:
        if not texts:
            return []
        vectors = self._store.as_stored(encode())
        with self._lock:
            check_vectors(vectors, self._store.dim if len(self) else 0)
            # The backend first: if it fails, the store is unchanged.
            self._backend.add(ids, texts, metas, vectors)
            self._store.add(ids, texts, metas, vectors)
        return ids

    def delete(self, ids: Sequence[str]) -> int:
        """Remove documents by id; unknown ids are ignored. Returns how many were removed."""
        with self._lock:
            present = list(dict.fromkeys(i for i in check_ids(ids) if i in self._store))
            if not present:
                return 0
            self._backend.delete(present)
            return self._store.remove(present)

    def search_batch(
        self, queries: Sequence[str], k: int = 10, *, filter: FilterSpec = None, **options: Any
    ) -> list[list[SearchHit]]:
        """The ``k`` best documents of each query by descending MaxSim (ties: insertion
        order), among those ``filter`` holds for (:mod:`latecore.filters`)."""
        if options:
            raise TypeError(f"LateIndex.search takes no options {sorted(options)}")
        check_count(k, "k")
        queries, compiled = check_queries(queries), compile_filter(filter)
        if not queries or not len(self) or k == 0:
            return [[] for _ in queries]
        return self.search_vectors(self.encoder.encode_queries(queries), k, filter=compiled)

    def search_vectors(
        self, queries: Sequence[np.ndarray], k: int = 10, *, filter: FilterSpec = None
    ) -> list[list[SearchHit]]:
        """:meth:`search_batch` for encoded queries; concurrent unfiltered ones share a pass."""
        check_count(k, "k")
        if (group := (k, compile_filter(filter)))[1] is not None:  # filtered: run alone
            return self._search_pass(list(queries), group)
        return self._batch.run(list(queries), group, self._search_pass)

    def _search_pass(self, queries: list[np.ndarray], group: Any) -> list[list[SearchHit]]:
        with self.view() as view:  # group: (k, compiled filter)
            return view.search(queries, *group)

    def memory(self) -> MemoryReport:
        """Bytes per stored token of the store, the engine's index and the cache."""
        with self._lock:
            return memory_report(self._store, self._backend, self.encoder)

    def count(self, filter: FilterSpec = None) -> int:
        """How many documents ``filter`` holds for (all of them without one)."""
        with self.view() as view:
            selection = view.select(compile_filter(filter))
            return len(self) if selection is None else len(selection.positions)

    def score(self, query: str, ids: Sequence[str]) -> np.ndarray:
        """Exact MaxSim (float32) of ``query`` against stored ``ids`` (``KeyError`` if absent)."""
        return self.score_batch([query], [ids])[0]

    def score_batch(self, queries: Sequence[str], ids: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """:meth:`score` for many queries, each against its own ids; one query encode in all."""
        queries = check_queries(queries)
        if len(queries) != len(ids):
            raise ValueError(f"got {len(queries)} queries but {len(ids)} id lists")
        id_lists = [check_ids(i, "score") for i in ids]
        with self._lock:
            [self._store.positions(i) for i in id_lists]  # unknown ids fail before encoding
        wanted = [q for q, i in zip(queries, id_lists, strict=True) if i]
        encoded = iter(self.encoder.encode_queries(wanted) if wanted else [])
        vectors = [next(encoded) if i else np.zeros((0, 0), np.float32) for i in id_lists]
        return self.score_vectors(vectors, id_lists)

    def score_vectors(
        self, queries: Sequence[np.ndarray], ids: Sequence[Sequence[str]]
    ) -> list[np.ndarray]:
        """:meth:`score_batch` for queries already encoded by :attr:`encoder`."""
        with self.view() as view:
            return view.score(queries, [view.positions(i) for i in ids])

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the index to directory ``path``, replacing what a previous save left there.

        Written beside ``path`` and swapped in (a crash leaves the old save or the new one);
        no pickle (docs/guarantees.md). ``FileExistsError`` for a non-empty directory that is
        not a saved LateIndex, ``TypeError`` for metadata that is not JSON-serialisable.
        """
        with self._lock:
            replace_directory(
                path,
                lambda d: write_index(d, self._store, self._backend, self.encoder),
                is_ours=is_saved_index,
            )
            self._backend.saved_to(Path(path).resolve())

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        encoder: BaseEncoder,
        /,
        *,
        backend: str | Backend | None = None,
        mmap: bool = False,
        **backend_options: Any,
    ) -> LateIndex:
        """Read an index written by :meth:`save`, with its backend and settings (updated by
        ``backend_options``, e.g. a Qdrant ``url=``, ``api_key=``); ``mmap=True``: docs/memory.md.

        Raises
        ------
        FingerprintMismatchError
            If ``encoder`` could produce other vectors than the index's (it says what differs).
        IndexFormatError
            If the directory is not a saved LateIndex, or is damaged.
        IndexChangedError
            If another process saved over it while it was being read: load again.
        """
        with opened_index(Path(path), encoder, backend, backend_options, mmap=mmap) as opened:
            index = cls.__new__(cls)
            index._setup(encoder, *opened)
        return index
