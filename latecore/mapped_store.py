"""A saved store opened with its vectors memory-mapped: :class:`MappedStore`.

``LateIndex.load(path, encoder, mmap=True)`` opens the ``vectors.npy`` of a saved
:class:`~latecore.store.MemoryStore` as a copy-on-write memory map (the file is
never written): the operating system reads a page when a search touches it, so
the resident memory is what queries touch, not the file. Changes never touch the
map either:

- a deleted document is dropped from the list of live mapped documents (its
  rows stay in the map, unread);
- an added document goes to an in-memory tail (a :class:`~latecore.store.MemoryStore`);
- :meth:`MappedStore.save` writes a new plain ``vectors.npy`` (no pickle) block
  by block, in :class:`~latecore.store.MemoryStore`'s format, so the save stays
  atomic (``LateIndex.save`` writes beside the old index and swaps) and the
  saved index opens either way.

Exact search streams the map block by block (:class:`~latecore.maxsim.PackedDocuments`),
int8 included. Candidates' vectors (re-scoring an engine's candidates, a filtered
subset) are read from the file with ``pread`` instead, into fresh arrays: a read
through the map makes the kernel map the pages around it too, so scattered
candidates would soon make most of the file resident in the process (measured at
1M documents: ``docs/benchmarks.md#a-million-documents``); read this way the
pages stay in the operating system's page cache. Memory figures:
``docs/benchmarks.md#token-pooling`` and ``docs/memory.md``.

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> from latecore.store import MemoryStore
>>> store = MemoryStore()
>>> store.add(["a", "b"], ["x", "y"], [{}, {}], [np.eye(2), np.ones((1, 2))])
>>> directory = Path(tempfile.mkdtemp())
>>> entry = store.save(directory)
>>> mapped = MappedStore.load(directory, entry)
>>> mapped.remove(["a"]), mapped.ids, mapped.n_tokens
(1, ['b'], 1)
>>> mapped.add(["c"], ["z"], [{}], [np.zeros((3, 2))])
>>> mapped.token_counts([0, 1]).tolist(), mapped.score([np.ones((1, 2))]).tolist()
([1, 3], [[2.0, 0.0]])
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import IndexFormatError
from .maxsim import PackedDocuments
from .records import DOCUMENTS_FILE, LENGTHS_FILE, load_records
from .store import SCALES_FILE, VECTORS_FILE, MemoryStore, RecordedStore
from .validation import StorageDtype

__all__ = ["MappedStore"]

COPY_ROWS = 65536
"""Rows copied at a time by :meth:`MappedStore.save` (bounded memory)."""


class _RowReader:
    """Rows of a memory-mapped ``.npy`` matrix read with ``pread`` (not through the map).

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "m.npy"
    >>> np.save(path, np.arange(12, dtype=np.float16).reshape(4, 3))
    >>> _RowReader(path, np.load(path, mmap_mode="r")).rows(1, 3).tolist()
    [[3.0, 4.0, 5.0], [6.0, 7.0, 8.0]]
    """

    def __init__(self, path: Path, matrix: np.memmap) -> None:
        self._fd = os.open(path, os.O_RDONLY)
        weakref.finalize(self, os.close, self._fd)
        self._start, self._dtype = int(matrix.offset), matrix.dtype
        self._dim = int(matrix.shape[1])
        self._row_bytes = self._dim * matrix.dtype.itemsize

    def rows(self, first: int, last: int) -> np.ndarray:
        """Rows ``first..last`` (a new, writable array)."""
        buffer = bytearray((last - first) * self._row_bytes)
        if os.preadv(self._fd, [buffer], self._start + first * self._row_bytes) != len(buffer):
            raise IndexFormatError("vectors.npy is shorter than its header says")
        return np.frombuffer(buffer, dtype=self._dtype).reshape(last - first, self._dim)


class MappedStore(RecordedStore):
    """Documents whose saved vectors are memory-mapped, plus an in-memory tail.

    Positions: the live mapped documents in saved order, then the tail's. Open
    one with :meth:`load` (``LateIndex.load(..., mmap=True)``).
    """

    name = "memory"  # it saves in MemoryStore's format

    def __init__(self, dtype: StorageDtype = "float16") -> None:
        super().__init__(dtype)
        self._base = PackedDocuments([], dtype=self._dtype if dtype != "int8" else np.float32)
        self._reader: _RowReader | None = None
        self._live = np.zeros(0, dtype=np.int64)
        self._live_tokens = 0
        self._tail = MemoryStore(dtype)

    def __repr__(self) -> str:
        return (
            f"MappedStore({len(self)} documents, {self.n_tokens} token vectors, {self.dtype}, "
            f"{len(self._tail)} in memory)"
        )

    @property
    def dim(self) -> int:
        """Dimension of the stored vectors (0 while empty)."""
        return (self._base.dim or self._tail.dim) if len(self) else 0

    @property
    def n_tokens(self) -> int:
        """Total number of stored token vectors (mapped and in memory)."""
        return self._live_tokens + self._tail.n_tokens

    @property
    def mapped_bytes(self) -> int:
        """Bytes of the memory-mapped file's vectors (resident only where touched)."""
        return int(self._base.matrix.nbytes)

    @property
    def nbytes(self) -> int:
        """Bytes of the vectors held in process memory: the tail (and int8 scales)."""
        scales = 0 if self._base.scales is None else self._base.scales.nbytes
        return self._tail.nbytes + scales

    def _split(self, positions: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        array = np.asarray(positions, dtype=np.int64)
        return array, array < len(self._live)

    def token_counts(self, positions: Sequence[int] | np.ndarray) -> np.ndarray:
        """Token count of each document at ``positions``."""
        array, mapped = self._split(positions)
        counts = np.zeros(len(array), dtype=np.int64)
        documents = self._live[array[mapped]]
        counts[mapped] = self._base.offsets[documents + 1] - self._base.offsets[documents]
        counts[~mapped] = self._tail.token_counts(array[~mapped] - len(self._live))
        return counts

    def vectors(self, positions: Sequence[int] | np.ndarray) -> list[np.ndarray]:
        """Copies read from the file (float16/float32; int8 scaled to float32), tail views."""
        n, offsets, int8 = len(self._live), self._base.offsets, self._base.scales is not None
        result = []
        for p in np.asarray(positions, dtype=np.int64).tolist():
            if p < n:
                document = int(self._live[p])
                if self._reader is None:
                    rows = self._base.document(document)
                else:
                    rows = self._reader.rows(int(offsets[document]), int(offsets[document + 1]))
                result.append(self._base.document_float32(document, rows) if int8 else rows)
            else:
                result.extend(self._tail.vectors([p - n]))
        return result

    def score(
        self, queries: Sequence[np.ndarray], positions: Sequence[int] | np.ndarray | None = None
    ) -> np.ndarray:
        """Exact MaxSim; over every document, the map is streamed block by block."""
        if positions is not None:
            return super().score(queries, positions)
        parts = [self._base.score(queries)[:, self._live]] if len(self._live) else []
        if len(self._tail):
            parts.append(self._tail.score(queries))
        if not parts:
            return np.zeros((len(queries), 0), dtype=np.float32)
        return np.concatenate(parts, axis=1)

    def add(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        metadatas: Sequence[Mapping[str, Any]],
        vectors: Sequence[np.ndarray],
    ) -> None:
        """Add documents to the in-memory tail (a stored id is replaced: it moves there)."""
        if not ids:
            return
        self._check_added(ids, texts, metadatas, vectors)
        self.remove(ids)
        self._tail.add(ids, texts, metadatas, vectors)
        self._records.append(ids, texts, metadatas)

    def remove(self, ids: Sequence[str]) -> int:
        """Forget documents (mapped ones are masked out, never rewritten)."""
        keep = self._kept(ids)
        if keep is None:
            return 0
        n = len(self._live)
        tail_ids = list(self._tail.ids)
        self._tail.remove([i for i, kept in zip(tail_ids, keep[n:], strict=True) if not kept])
        self._live = self._live[keep[:n]]
        self._live_tokens = int(self.token_counts(np.arange(len(self._live))).sum())
        self._records.keep(keep)
        return int(len(keep) - keep.sum())

    def save(self, directory: Path) -> dict[str, Any]:
        """Write :class:`~latecore.store.MemoryStore`'s files, copying ``COPY_ROWS`` at a time."""
        self._records.save(directory / DOCUMENTS_FILE)
        int8 = self._base.scales is not None or self._dtype == np.int8
        shape = (self.n_tokens, self.dim)
        out = np.lib.format.open_memmap(directory / VECTORS_FILE, "w+", self._dtype, shape)
        scales = np.zeros(self.n_tokens, dtype=np.float32) if int8 else None
        row = 0
        for source, first, last in self._row_runs():
            for start in range(first, last, COPY_ROWS):
                end = min(start + COPY_ROWS, last)
                out[row : row + end - start] = source.matrix[start:end]
                if scales is not None and source.scales is not None:
                    scales[row : row + end - start] = source.scales[start:end]
                row += end - start
        out.flush()
        del out
        if scales is not None:
            np.save(directory / SCALES_FILE, scales, allow_pickle=False)
        np.save(directory / LENGTHS_FILE, self.token_counts(np.arange(len(self))))
        return {"name": self.name, "dtype": self._dtype.name, "count": len(self)}

    def _row_runs(self) -> list[tuple[PackedDocuments, int, int]]:
        """``(packed, first row, end row)`` runs covering every stored vector in position order."""
        runs: list[tuple[PackedDocuments, int, int]] = []
        offsets = self._base.offsets
        for document in self._live.tolist():
            start, end = int(offsets[document]), int(offsets[document + 1])
            if runs and runs[-1][2] == start:
                runs[-1] = (self._base, runs[-1][1], end)
            else:
                runs.append((self._base, start, end))
        if len(self._tail):
            runs.append((self._tail.packed(), 0, self._tail.n_tokens))
        return runs

    @classmethod
    def load(cls, directory: Path, entry: Mapping[str, Any]) -> MappedStore:
        """Map the ``vectors.npy`` of a saved :class:`~latecore.store.MemoryStore` (read-only)."""
        store = cls(entry.get("dtype", "float16"))
        records, lengths = load_records(directory, entry)
        try:
            matrix = np.load(directory / VECTORS_FILE, mmap_mode="c", allow_pickle=False)
            scales = None
            if store._dtype == np.int8:
                scales = np.load(directory / SCALES_FILE, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise IndexFormatError(f"{directory} is damaged: {error}") from error
        if (
            matrix.ndim != 2
            or matrix.dtype != store._dtype
            or int(lengths.sum()) != matrix.shape[0]
            or (scales is not None and scales.shape != (matrix.shape[0],))
        ):
            raise IndexFormatError(f"{directory} is damaged: vectors and documents disagree")
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        if len(lengths):
            store._base = PackedDocuments.from_parts(matrix, offsets, scales)
            store._reader = _RowReader(directory / VECTORS_FILE, matrix)
        store._live = np.arange(len(lengths), dtype=np.int64)
        store._live_tokens = int(matrix.shape[0])
        store._records = records
        return store
