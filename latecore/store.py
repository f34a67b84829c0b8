"""Document stores: where a :class:`~latecore.index.LateIndex` keeps its documents.

A store holds ids, texts, metadata and, where it can, every document's token
vectors. Two seams:

- :class:`StoreView`, the read-only protocol that backends see: lookups between
  ids and *positions* (insertion order, renumbered when documents are removed),
  the stored documents, their token counts and vectors, and exact MaxSim over
  any of them (:meth:`StoreView.score`, :meth:`StoreView.rank`). Every final
  score in latecore is exact MaxSim through :func:`rank_vectors` (which
  :meth:`StoreView.rank` uses) or :class:`~latecore.maxsim.PackedDocuments`.
- :class:`DocumentStore`, a view that can also change and persist: ``add``
  (an existing id is replaced), ``remove``, ``save`` and ``load``.

:class:`MemoryStore`, the default, keeps the vectors packed end to end in one
matrix in memory (float16 by default), grown in place, so a search is one pass
of GEMM blocks without any copy. A store whose :attr:`~StoreView.holds_vectors`
is ``False`` (:class:`~latecore.engine_store.EngineStore`) keeps none: the
vectors live in the search engine, which returns them with its candidates, and
:meth:`StoreView.checked_vectors` checks what an engine returns against the
token counts stored here. A store never calls a backend.

A view is consistent for as long as the store is not changed; a
:class:`~latecore.index.LateIndex` serialises changes and searches with its lock.

Examples
--------
>>> import numpy as np
>>> store = MemoryStore(dtype="float32")
>>> store.add(["a", "b"], ["first", "second"], [{}, {"n": 2}],
...           [np.eye(2, dtype=np.float32), np.ones((1, 2), dtype=np.float32)])
>>> len(store), store.ids, store.position("b")
(2, ['a', 'b'], 1)
>>> ranking = store.rank(np.array([[0.0, 1.0]], dtype=np.float32), [0, 1], k=2)
>>> ranking.positions.tolist(), ranking.scores.tolist()
([0, 1], [1.0, 1.0])
>>> store.remove(["a"]), store.ids, store.position("b")
(1, ['b'], 0)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np

from .errors import IndexFormatError
from .filters import Filter, MetadataColumns
from .maxsim import PackedDocuments, top_k
from .quantize import as_stored, quantize_int8
from .records import DOCUMENTS_FILE, LENGTHS_FILE, DocumentRecords, StoredDocument, load_records
from .validation import StorageDtype, check_dtype

__all__ = [
    "DocumentRecords",
    "DocumentStore",
    "MemoryStore",
    "Ranking",
    "RecordedStore",
    "Selection",
    "StoreView",
    "StoredDocument",
    "check_vectors",
    "load_records",
    "rank_vectors",
]

VECTORS_FILE = "vectors.npy"
SCALES_FILE = "scales.npy"


class Ranking(NamedTuple):
    """A query's result: positions in a store and their scores, best first."""

    positions: np.ndarray
    scores: np.ndarray

    @classmethod
    def empty(cls) -> Ranking:
        """A ranking without documents."""
        return cls(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))

    @classmethod
    def merge(cls, a: Ranking, b: Ranking, k: int) -> Ranking:
        """The best ``k`` of two rankings over disjoint positions (ties: lower position first).

        Examples
        --------
        >>> a = Ranking(np.array([3]), np.array([0.5], dtype=np.float32))
        >>> b = Ranking(np.array([1, 2]), np.array([0.9, 0.5], dtype=np.float32))
        >>> Ranking.merge(a, b, 2).positions.tolist()
        [1, 2]
        """
        positions = np.concatenate([a.positions, b.positions]).astype(np.int64, copy=False)
        scores = np.concatenate([a.scores, b.scores]).astype(np.float32, copy=False)
        order = np.lexsort((positions, -scores))[:k]
        return cls(positions[order], scores[order])


class Selection(NamedTuple):
    """The documents of a store a filter holds for: the filter, a mask and the positions.

    Backends restrict a search to it (:meth:`~latecore.backends.base.Backend.search`);
    it is valid while the store is not changed.
    """

    filter: Filter
    mask: np.ndarray
    """bool, one per position."""
    positions: np.ndarray
    """int64, the positions where :attr:`mask` is true, ascending."""

    def keep(self, ranking: Ranking) -> Ranking:
        """``ranking`` without any position the filter does not hold for."""
        inside = self.mask[ranking.positions]
        return (
            ranking if inside.all() else Ranking(ranking.positions[inside], ranking.scores[inside])
        )


def rank_vectors(
    query: np.ndarray,
    positions: np.ndarray,
    vectors: Sequence[np.ndarray],
    k: int,
    dtype: np.dtype[Any] | type = np.float32,
) -> Ranking:
    """Exact MaxSim of ``query`` over ``vectors`` (those of the documents at
    ``positions``, sorted and unique); the best ``k``, ties by position.

    Examples
    --------
    >>> query = np.array([[0.0, 1.0]], dtype=np.float32)
    >>> vectors = [np.eye(2, dtype=np.float32), np.zeros((1, 2), dtype=np.float32)]
    >>> rank_vectors(query, np.array([4, 7]), vectors, k=1).positions.tolist()
    [4]
    """
    if not len(positions) or k == 0:
        return Ranking.empty()
    scores = PackedDocuments(vectors, dtype=dtype).score([query])[0]
    order = top_k(scores, k)
    return Ranking(np.asarray(positions, dtype=np.int64)[order], scores[order])


class StoreView(ABC):
    """The read-only protocol over stored documents that backends use.

    Position ``p`` is the ``p``-th document in insertion order; positions change
    when documents are removed, ids never do.
    """

    holds_vectors: ClassVar[bool] = True
    """Whether token vectors are kept locally (else :meth:`vectors` fetches them)."""

    @abstractmethod
    def __len__(self) -> int:
        """Number of stored documents."""

    def __contains__(self, doc_id: object) -> bool:
        return isinstance(doc_id, str) and self.find(doc_id) is not None

    @property
    @abstractmethod
    def ids(self) -> Sequence[str]:
        """Ids in position order (read-only; a snapshot that later changes do not alter)."""

    @property
    @abstractmethod
    def dim(self) -> int:
        """Dimension of the token vectors (0 while the store is empty)."""

    @property
    @abstractmethod
    def dtype(self) -> np.dtype[Any]:
        """Storage dtype of the token vectors."""

    @property
    def vector_dtype(self) -> np.dtype[Any]:
        """dtype of the arrays :meth:`vectors` returns: :attr:`dtype`, float32 for int8."""
        return np.dtype(np.float32) if self.dtype == np.int8 else self.dtype

    def as_stored(self, vectors: Sequence[np.ndarray]) -> list[np.ndarray]:
        """``vectors`` as this store keeps them, in :attr:`vector_dtype` (int8: rounded)."""
        if self.dtype == np.int8:
            return [as_stored(v, self.dtype) for v in vectors]
        return [np.asarray(v, dtype=self.dtype) for v in vectors]

    @property
    @abstractmethod
    def n_tokens(self) -> int:
        """Total number of stored token vectors."""

    @abstractmethod
    def find(self, doc_id: str) -> int | None:
        """Position of ``doc_id``, or ``None`` if it is not stored."""

    def position(self, doc_id: str) -> int:
        """Position of ``doc_id``.

        Raises
        ------
        KeyError
            If the id is not stored.
        """
        found = self.find(doc_id)
        if found is None:
            raise KeyError(doc_id)
        return found

    def positions(self, ids: Sequence[str]) -> np.ndarray:
        """Positions of ``ids`` (int64), in the order given.

        Raises
        ------
        KeyError
            Naming up to five ids that are not stored.
        """
        found = [self.find(i) for i in ids]
        missing = [i for i, p in zip(ids, found, strict=True) if p is None]
        if missing:
            raise KeyError(f"ids not in the index: {missing[:5]}")
        return np.array(found, dtype=np.int64)

    @abstractmethod
    def documents(self, positions: Sequence[int] | np.ndarray) -> list[StoredDocument]:
        """The stored documents at ``positions``, in that order."""

    @abstractmethod
    def metadata_columns(self) -> MetadataColumns:
        """The documents' metadata as columns, in position order (for filters)."""

    def select(self, filter: Filter) -> Selection:
        """The documents ``filter`` holds for."""
        mask = filter.mask(self.metadata_columns())
        return Selection(filter, mask, np.flatnonzero(mask).astype(np.int64))

    @abstractmethod
    def token_counts(self, positions: Sequence[int] | np.ndarray) -> np.ndarray:
        """Number of token vectors (int64) of each document at ``positions``."""

    @abstractmethod
    def vectors(self, positions: Sequence[int] | np.ndarray) -> list[np.ndarray]:
        """Token vectors (storage dtype, read-only views where possible) at ``positions``.

        Raises
        ------
        LookupError
            If the store keeps no vectors (:attr:`holds_vectors` is ``False``).
        """

    def checked_vectors(
        self, positions: Sequence[int] | np.ndarray, vectors: Sequence[Any]
    ) -> list[np.ndarray]:
        """``vectors`` an engine returned for the documents at ``positions``, in the
        storage dtype, once their shapes agree with the stored token counts.

        Raises
        ------
        IndexFormatError
            Naming up to five documents whose vectors disagree with the index.
        """
        arrays = [np.asarray(v, dtype=self.vector_dtype) for v in vectors]
        expected = [(int(n), self.dim) for n in self.token_counts(positions)]
        got = [a.shape for a in arrays]
        if got != expected:
            ids = [doc.id for doc in self.documents(positions)]
            wrong = [i for i, g, e in zip(ids, got, expected, strict=False) if g != e] or ids
            raise IndexFormatError(
                f"the engine's vectors disagree with the index for {wrong[:5]}: "
                "was the collection changed by another program? Add those documents again."
            )
        return arrays

    def packed(self, positions: Sequence[int] | np.ndarray | None = None) -> PackedDocuments:
        """The documents at ``positions`` (default: all) packed for scoring."""
        if positions is None:
            positions = np.arange(len(self))
        return PackedDocuments(self.vectors(positions), dtype=self.vector_dtype)

    def score(
        self, queries: Sequence[np.ndarray], positions: Sequence[int] | np.ndarray | None = None
    ) -> np.ndarray:
        """Exact MaxSim of every query against the documents at ``positions`` (default: all).

        Returns
        -------
        numpy.ndarray
            float32, shape ``(n_queries, n_positions)``.
        """
        if positions is not None and not len(positions):
            return np.zeros((len(queries), 0), dtype=np.float32)
        return self.packed(positions).score(queries)

    def rank(self, query: np.ndarray, positions: Sequence[int] | np.ndarray, k: int) -> Ranking:
        """Exact MaxSim of ``query`` over the documents at ``positions``; the best ``k``.

        Duplicates are dropped and ties break by position (insertion order).
        """
        unique = np.unique(np.asarray(positions, dtype=np.int64))
        if not len(unique) or k == 0:
            return Ranking.empty()
        return rank_vectors(query, unique, self.vectors(unique), k, self.vector_dtype)


class DocumentStore(StoreView):
    """A :class:`StoreView` that can change and persist itself."""

    name: ClassVar[str]
    """The name recorded in a saved index's manifest."""

    @abstractmethod
    def add(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        metadatas: Sequence[Mapping[str, Any]],
        vectors: Sequence[np.ndarray],
    ) -> None:
        """Store documents (unique ``ids``); a stored id is replaced (it moves to the end).

        Raises
        ------
        ValueError
            If the vectors are not 2-D, are empty, or their dimension differs from
            the stored ones'; the store is then unchanged.
        """

    @abstractmethod
    def remove(self, ids: Sequence[str]) -> int:
        """Forget documents; unknown ids are ignored. Returns how many were removed."""

    @abstractmethod
    def save(self, directory: Path) -> dict[str, Any]:
        """Write the store into the (new, empty) ``directory``; returns its manifest entry."""

    @classmethod
    @abstractmethod
    def load(cls, directory: Path, entry: Mapping[str, Any]) -> DocumentStore:
        """Read a store written by :meth:`save` (``entry`` is what it returned).

        Raises
        ------
        IndexFormatError
            If the files are missing, damaged or disagree with each other.
        """


def check_vectors(vectors: Sequence[np.ndarray], dim: int = 0) -> int:
    """The common dimension of ``vectors`` (and of ``dim``, if not 0), else ``ValueError``.

    Examples
    --------
    >>> check_vectors([np.ones((2, 4)), np.ones((1, 4))])
    4
    >>> check_vectors([np.ones((2, 4))], dim=8)
    Traceback (most recent call last):
    ...
    ValueError: vector dimensions differ: [4, 8]
    """
    dims = set()
    for i, v in enumerate(vectors):
        if v.ndim != 2 or v.shape[0] == 0:
            raise ValueError(
                f"document {i} must have a non-empty 2-D (n_tokens, dim) array, got {v.shape}"
            )
        dims.add(int(v.shape[1]))
    if dim:
        dims.add(dim)
    if len(dims) > 1:
        raise ValueError(f"vector dimensions differ: {sorted(dims)}")
    return dims.pop() if dims else dim


class RecordedStore(DocumentStore):
    """A :class:`DocumentStore` whose ids, texts and metadata are :class:`DocumentRecords`.

    Subclasses keep the token vectors (:class:`MemoryStore`) or only their
    counts (:class:`~latecore.engine_store.EngineStore`).
    """

    def __init__(self, dtype: StorageDtype = "float16") -> None:
        self._dtype = np.dtype(check_dtype(dtype))
        self._records = DocumentRecords()

    def __len__(self) -> int:
        return len(self._records)

    @property
    def ids(self) -> Sequence[str]:
        """Ids in position order (a snapshot: the list is replaced, never changed)."""
        return self._records.ids

    @property
    def dtype(self) -> np.dtype[Any]:
        """Storage dtype."""
        return self._dtype

    def find(self, doc_id: str) -> int | None:
        """Position of ``doc_id``, or ``None``."""
        return self._records.find(doc_id)

    def documents(self, positions: Sequence[int] | np.ndarray) -> list[StoredDocument]:
        """The stored documents at ``positions``."""
        return self._records.documents(positions)

    def metadata_columns(self) -> MetadataColumns:
        """The metadata as columns, built once per change of the store."""
        return self._records.columns()

    def _check_added(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        metadatas: Sequence[Mapping[str, Any]],
        vectors: Sequence[np.ndarray],
    ) -> int:
        """The dimension of documents about to be added, else ``ValueError`` (see :meth:`add`)."""
        if not len(ids) == len(texts) == len(metadatas) == len(vectors):
            raise ValueError("ids, texts, metadatas and vectors must have the same length")
        return check_vectors([np.asarray(v) for v in vectors], self.dim if len(self) else 0)

    def _kept(self, ids: Sequence[str]) -> np.ndarray | None:
        """Which positions stay once ``ids`` are removed (``None``: none of them is stored)."""
        doomed = self._records.positions_of(ids)
        if not doomed:
            return None
        keep = np.ones(len(self), dtype=bool)
        keep[list(doomed)] = False
        return keep


class MemoryStore(RecordedStore):
    """Documents and their token vectors in memory, vectors packed in one matrix.

    The matrix grows by doubling, so adding documents copies each vector about
    once on average; removing documents compacts it. Ids, texts and metadata
    lists are replaced, never changed in place, so a :attr:`ids` sequence or a
    :meth:`packed` matrix taken earlier stays what it was.

    Parameters
    ----------
    dtype
        Storage dtype: ``"float16"`` (default, half the memory; scores within
        ~1e-3), ``"float32"`` or ``"int8"`` (one byte per dimension and a float32
        scale per vector, :mod:`latecore.quantize`; :meth:`vectors` returns float32
        copies, whole-store scoring scales block by block). Scoring always
        computes in float32.
    """

    name = "memory"

    def __init__(self, dtype: StorageDtype = "float16") -> None:
        super().__init__(dtype)
        self._offsets = np.zeros(1, dtype=np.int64)
        self._matrix = np.zeros((0, 0), dtype=self._dtype)
        self._scales: np.ndarray | None = (
            np.zeros(0, dtype=np.float32) if self._dtype == np.int8 else None
        )
        self._packed: PackedDocuments | None = None

    def __repr__(self) -> str:
        return f"MemoryStore({len(self)} documents, {self.n_tokens} token vectors, {self.dtype})"

    @property
    def dim(self) -> int:
        """Dimension of the stored vectors (0 while empty)."""
        return int(self._matrix.shape[1])

    @property
    def n_tokens(self) -> int:
        """Total number of stored token vectors."""
        return int(self._offsets[-1])

    @property
    def nbytes(self) -> int:
        """Bytes of the stored token vectors (capacity not yet used excluded)."""
        scales = 4 if self._scales is not None else 0
        return self.n_tokens * (self.dim * self._dtype.itemsize + scales)

    def token_counts(self, positions: Sequence[int] | np.ndarray) -> np.ndarray:
        """Token count of each document at ``positions``."""
        positions = np.asarray(positions, dtype=np.int64)
        return self._offsets[positions + 1] - self._offsets[positions]

    def vectors(self, positions: Sequence[int] | np.ndarray) -> list[np.ndarray]:
        """Views into the packed matrix (storage dtype; int8: float32 copies)."""
        offsets = self._offsets
        if self._scales is not None:
            packed = self.packed()
            return [packed.document_float32(p) for p in np.asarray(positions).tolist()]
        return [
            self._matrix[offsets[p] : offsets[p + 1]]
            for p in np.asarray(positions, dtype=np.int64).tolist()
        ]

    def packed(self, positions: Sequence[int] | np.ndarray | None = None) -> PackedDocuments:
        """All documents as one view of the matrix (no copy), or a packed copy of a subset."""
        if positions is not None:
            return super().packed(positions)
        if self._packed is None:
            scales = None if self._scales is None else self._scales[: self.n_tokens]
            self._packed = PackedDocuments.from_parts(
                self._matrix[: self.n_tokens], self._offsets.copy(), scales
            )
        return self._packed

    def add(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        metadatas: Sequence[Mapping[str, Any]],
        vectors: Sequence[np.ndarray],
    ) -> None:
        """Append documents (replacing stored ids); vectors are copied in the storage dtype."""
        if not ids:
            return
        dim = self._check_added(ids, texts, metadatas, vectors)
        arrays = [np.asarray(v) for v in vectors]
        quantized = [quantize_int8(a) for a in arrays] if self._scales is not None else None
        self.remove(ids)
        lengths = np.array([a.shape[0] for a in arrays], dtype=np.int64)
        start = self.n_tokens
        needed = start + int(lengths.sum())
        if needed > self._matrix.shape[0] or self._matrix.shape[1] != dim:
            capacity = max(needed, 2 * self._matrix.shape[0], 1024)
            grown = np.empty((capacity, dim), dtype=self._dtype)
            if start:
                grown[:start] = self._matrix[:start]
            self._matrix = grown
            if self._scales is not None:
                self._scales = np.concatenate(
                    [self._scales[:start], np.empty(capacity - start, np.float32)]
                )
        row = start
        for i, a in enumerate(arrays):
            if quantized is not None and self._scales is not None:
                a, self._scales[row : row + a.shape[0]] = quantized[i]
            self._matrix[row : row + a.shape[0]] = a
            row += a.shape[0]
        self._offsets = np.concatenate([self._offsets, start + np.cumsum(lengths)])
        self._records.append(ids, texts, metadatas)
        self._packed = None

    def remove(self, ids: Sequence[str]) -> int:
        """Forget documents and compact the matrix; returns how many were removed."""
        keep = self._kept(ids)
        if keep is None:
            return 0
        lengths = np.diff(self._offsets)
        kept_tokens = np.repeat(keep, lengths)
        self._matrix = np.ascontiguousarray(self._matrix[: self.n_tokens][kept_tokens])
        if self._scales is not None:
            self._scales = self._scales[: len(kept_tokens)][kept_tokens]
        self._offsets = np.concatenate([[0], np.cumsum(lengths[keep])]).astype(np.int64)
        self._records.keep(keep)
        self._packed = None
        return int(len(keep) - keep.sum())

    def save(self, directory: Path) -> dict[str, Any]:
        """Write ``vectors.npy``, ``lengths.npy`` and ``documents.jsonl`` (int8: and
        ``scales.npy``, float32): nothing pickled.

        Raises
        ------
        TypeError
            If a metadata value is not JSON-serialisable (nothing is written then).
        """
        self._records.save(directory / DOCUMENTS_FILE)
        np.save(directory / VECTORS_FILE, self._matrix[: self.n_tokens], allow_pickle=False)
        if self._scales is not None:
            np.save(directory / SCALES_FILE, self._scales[: self.n_tokens], allow_pickle=False)
        np.save(directory / LENGTHS_FILE, np.diff(self._offsets), allow_pickle=False)
        return {"name": self.name, "dtype": self._dtype.name, "count": len(self)}

    @classmethod
    def load(cls, directory: Path, entry: Mapping[str, Any]) -> MemoryStore:
        """Read the files :meth:`save` wrote."""
        store = cls(entry.get("dtype", "float16"))
        records, lengths = load_records(directory, entry)
        try:
            matrix = np.load(directory / VECTORS_FILE, allow_pickle=False)
            if store._scales is not None:
                store._scales = np.load(directory / SCALES_FILE, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise IndexFormatError(f"{directory} is damaged: {error}") from error
        int8 = store._scales is not None
        if int(lengths.sum()) != matrix.shape[0] or int8 != (matrix.dtype == np.int8):
            raise IndexFormatError(f"{directory} is damaged: vectors and documents disagree")
        if store._scales is not None and store._scales.shape != (matrix.shape[0],):
            raise IndexFormatError(f"{directory} is damaged: scales and vectors disagree")
        store._matrix = np.ascontiguousarray(matrix, dtype=store._dtype)
        if store._matrix.ndim != 2:
            raise IndexFormatError(f"{directory} is damaged: vectors are not a 2-D matrix")
        store._offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        store._records = records
        return store
