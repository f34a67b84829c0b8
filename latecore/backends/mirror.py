"""The mirror family of backends: an engine that holds a copy of every document.

``qdrant`` (a qdrant-edge shard or a Qdrant server) and ``lancedb`` (a LanceDB
table) keep one row (point) per document: its id, text, metadata, token
vectors and a digest of them. :class:`MirrorBackend` owns everything around
the engine, once for both:

- owning the table: a new index refuses a table that already holds rows or
  belongs to another index unless ``recreate=True``; the table records its
  owner (the index's id and the directory it was last saved to), and loading
  an index into a table another index owns (a ``cp -r`` copy of a saved index,
  or another index) is an :class:`~latecore.errors.EngineOwnershipError`
  unless ``take_over=True``, so two indexes never silently re-synchronise one
  table against each other;
- re-synchronising it with the store on load, by digest: missing or changed
  rows are written again, unknown ones deleted; when the engine is the only
  holder of the vectors (``vectors="engine"``), a document it lost is an
  :class:`~latecore.errors.IndexFormatError`;
- batched upserts with a progress bar, and the engine's optimisation after
  ``optimize_after`` rows;
- candidates: the engine's best rows for each query, re-scored by exact MaxSim
  over the store's vectors or, when the store keeps none, over the vectors the
  engine returned with them in the same request;
- :meth:`MirrorBackend.fetch_vectors` in batches;
- its working folder (a temporary one removed on close, or the caller's).

An engine supplies a :class:`MirrorTable` (the calls to its engine) and the
backend's hooks: the table's schema (``_ensure``), how a batch of rows is
written (``_write``), how queries are asked (``_query``) and the digest salt.
"""

from __future__ import annotations

import logging
import time
import uuid
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np

from ..base_encoder import progress_enabled
from ..errors import EngineOwnershipError, IndexFormatError
from ..store import Selection, StoreView, rank_vectors
from .base import Backend, Ranking, SavedState, changed_positions, working_folder

Owner = dict[str, Any]
"""A table's owner record: ``{"index": id, "path": saved directory or None}``."""

__all__ = ["Candidate", "MirrorBackend", "MirrorTable", "batches"]

logger = logging.getLogger(__name__)


class Candidate(NamedTuple):
    """One row an engine returned for a query: document id, engine score, and its token
    vectors when they were asked for (else ``None``)."""

    id: object
    score: float
    vectors: Any = None


def batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """``items`` in consecutive slices of at most ``size``.

    Examples
    --------
    >>> [list(b) for b in batches([1, 2, 3, 4, 5], 2)]
    [[1, 2], [3, 4], [5]]
    """
    for start in range(0, len(items), size):
        yield items[start : start + size]


class MirrorTable(ABC):
    """The calls a mirror backend makes to its engine: one table, one row per document.

    The schema-specific calls (creating the table, writing rows, queries) are
    the backend's (its ``_ensure``, ``_write`` and ``_query`` hooks).
    """

    @abstractmethod
    def exists(self) -> bool:
        """Whether the table has been created."""

    @abstractmethod
    def count(self) -> int:
        """Document rows in the table (0 if it does not exist; the owner record is none)."""

    @abstractmethod
    def owner(self) -> Owner | None:
        """The owner record (``None``: the table does not exist or has none)."""

    @abstractmethod
    def set_owner(self, owner: Owner) -> None:
        """Record the owner (the table exists)."""

    @abstractmethod
    def drop(self) -> None:
        """Remove the table and every row (nothing if it does not exist)."""

    @abstractmethod
    def key(self, doc_id: str) -> object:
        """The engine's key of a document's row (what :meth:`delete` takes)."""

    @abstractmethod
    def delete(self, keys: Sequence[object]) -> None:
        """Delete the rows of these keys (:meth:`key`, or as :meth:`digests` yields them)."""

    @abstractmethod
    def digests(self) -> Iterator[tuple[object, str | None, object]]:
        """``(key, document id, digest)`` of every row; the id is ``None`` for a row that
        is not a well-formed latecore row (it is deleted on re-synchronisation)."""

    @abstractmethod
    def vectors(self, ids: Sequence[str]) -> dict[str, Any]:
        """The token vectors of those ``ids`` that have a row (``(n_tokens, dim)`` each)."""

    @abstractmethod
    def optimize(self) -> None:
        """Run the engine's optimisation (index building, compaction)."""

    def flush(self) -> None:  # noqa: B027
        """Make every acknowledged write durable (nothing to do by default)."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection or the open files (idempotent)."""


class _TableHolder:
    """The open table, closed by the backend's finalizer (it must not refer to the backend)."""

    def __init__(self) -> None:
        self.table: MirrorTable | None = None

    def close(self) -> None:
        if self.table is not None:
            self.table.close()
            self.table = None


class MirrorBackend(Backend):
    """A backend whose engine mirrors every document; see the module docstring.

    Subclasses call :meth:`_use_local_table` or :meth:`_use_remote_table` in
    their constructor, keep their settings in ``self._settings`` (with at least
    ``datatype``, ``batch_size`` and ``optimize_after``), and implement
    :meth:`_ensure`, :meth:`_write`, :meth:`_query`, :meth:`_limit` and :meth:`_digest`.
    """

    serves_vectors = True
    label: ClassVar[str]
    """What the table is called in messages (``"Qdrant collection"``)."""
    row_word: ClassVar[str] = "rows"
    location_options: ClassVar[str]
    """The options that choose another table, for messages (``"uri or table_name"``)."""
    temporary_hint: ClassVar[str] = ""
    """Said when a temporary table lost documents whose vectors it alone held."""

    _settings: dict[str, Any]

    def __init__(self, *, recreate: bool, take_over: bool, show_progress: bool | None) -> None:
        self.recreate = recreate
        self.take_over = take_over
        self.show_progress = progress_enabled(show_progress)
        self._unoptimized = 0
        self._temporary = False
        self._owner: Owner = {"index": uuid.uuid4().hex, "path": None}
        self._owner_recorded = True  # nothing to record until an index attaches

    def _use_local_table(
        self, make: Callable[[Path], MirrorTable], folder: str | Path | None
    ) -> None:
        """Open the table ``make`` builds in ``folder`` (created if missing, never removed),
        or in a temporary folder removed on :meth:`close` (or at exit)."""
        holder = _TableHolder()
        prefix = f"latecore-{self.name}-"
        root, self._finalizer = working_folder(self, folder, prefix, release=holder.close)
        self._temporary = folder is None
        self._holder = holder
        try:
            holder.table = make(root)
        except BaseException:
            self._finalizer()
            raise

    def _use_remote_table(self, table: MirrorTable) -> None:
        """Use ``table``, which keeps no local folder (a server, object storage)."""
        self._holder = _TableHolder()
        self._holder.table = table
        self._finalizer = weakref.finalize(self, self._holder.close)

    @property
    def _engine(self) -> MirrorTable:
        """The open table (``RuntimeError`` once closed)."""
        table = self._holder.table
        if table is None:
            raise RuntimeError(f"the {self.label} of this {self.name!r} backend is closed")
        return table

    # --- hooks ----------------------------------------------------------------------------

    @abstractmethod
    def _ensure(self, dim: int) -> None:
        """Create the table for ``dim``-dimensional token vectors, or check the existing
        one's schema (``ValueError`` naming the remedy if it does not fit)."""

    @abstractmethod
    def _write(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        metadatas: Sequence[Mapping[str, Any]],
        vectors: Sequence[np.ndarray],
        digests: Sequence[str],
    ) -> None:
        """Upsert one batch of rows (vectors already in the storage dtype)."""

    @abstractmethod
    def _query(
        self,
        store: StoreView,
        queries: Sequence[np.ndarray],
        limit: int,
        with_vectors: bool,
        where: Selection | None,
    ) -> list[list[Candidate]]:
        """The engine's best ``limit`` rows for each query (their vectors too if asked),
        among those of ``where`` when it is given (the engine filters while it searches)."""

    @abstractmethod
    def _limit(self, k: int) -> int:
        """How many rows to ask the engine for, for the best ``k``."""

    def _digest(self, vectors: np.ndarray, text: str, metadata: Mapping[str, Any]) -> str:
        """The digest a row carries (see :func:`~latecore.backends.base.document_digest`)."""
        raise NotImplementedError

    def _check_documents(
        self, ids: Sequence[str], texts: Sequence[str], metadatas: Sequence[Mapping[str, Any]]
    ) -> None:
        """Refuse documents the engine cannot store, before anything is written."""

    @property
    def optimizes_on_add(self) -> bool:
        """Whether :meth:`add` runs the engine's optimisation after ``optimize_after`` rows."""
        return True

    @property
    def storage_dtype(self) -> type[np.floating[Any]]:
        """The dtype the engine stores token vectors in (``datatype``)."""
        return np.float16 if self._settings["datatype"] == "float16" else np.float32

    # --- the protocol ---------------------------------------------------------------------

    def attach(self, store: StoreView, saved: SavedState | None) -> None:
        """A new index claims its table (empty); a loaded one checks that it owns the table,
        then re-synchronises it.

        Raises
        ------
        ValueError
            A new index whose table holds rows or has an owner (without ``recreate``).
        EngineOwnershipError
            A loaded index whose table another index owns (without ``take_over``).
        """
        if saved is None and not len(store):
            count, owner = self._engine.count(), self._engine.owner()
            if (count or owner) and not self.recreate:
                held = f"already holds {count} {self.row_word}" if count else "has an owner"
                raise ValueError(
                    f"the {self.label} ({self!r}) {held}. Load the index it belongs to with "
                    f"LateIndex.load, choose another {self.location_options}, or pass "
                    "recreate=True to replace it."
                )
            self._engine.drop()
            self._owner_recorded = False  # recorded with the first rows
            return
        if saved is not None:
            self._check_owner(saved)
        self.sync(store)
        self._owner_recorded = False
        self._record_owner()

    def _check_owner(self, saved: SavedState) -> None:
        """Take the saved index's identity; refuse a table another index owns."""
        saved_id = saved.state.get("owner")
        here = None if saved.location is None else str(saved.location)
        self._owner = {"index": saved_id or self._owner["index"], "path": here}
        if self._temporary:
            return
        owner = self._engine.owner()
        if owner is None or self.take_over:
            return  # a table from before owner records, or taken over on purpose
        same_path = here is None or owner.get("path") in (None, here)
        if owner.get("index") == saved_id and same_path:
            return
        if saved_id is None and here is not None and owner.get("path") == here:
            return  # saved before owner records, at the path the table names
        where = owner.get("path") or "a path not yet saved"
        raise EngineOwnershipError(
            f"the {self.label} ({self!r}) belongs to another index, saved at {where} "
            f"(this one is saved at {here}; a copy of a saved index is another index). "
            "Loading this one would re-synchronise the table and delete the other's "
            f"documents. Load the index saved at {where}, give this one its own "
            f"{self.location_options}, or pass take_over=True to make this index the "
            "owner (the other one is refused from then on)."
        )

    def _record_owner(self) -> None:
        if self._temporary or self._owner_recorded or not self._engine.exists():
            return
        if self._engine.owner() != self._owner:
            self._engine.set_owner(self._owner)
        self._owner_recorded = True

    def add(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        metadatas: Sequence[Mapping[str, Any]],
        vectors: Sequence[np.ndarray],
    ) -> None:
        """Upsert rows in batches of ``batch_size``; maybe optimise afterwards.

        Raises
        ------
        TypeError, ValueError
            If the engine cannot store these documents, or its table holds
            vectors of another dimension or type (nothing is written then).
        """
        if not ids:
            return
        self._check_documents(ids, texts, metadatas)
        self._ensure(int(vectors[0].shape[1]))
        self._record_owner()
        size = self._settings["batch_size"]
        starts: Iterable[int] = range(0, len(ids), size)
        if self.show_progress and len(ids) > size:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc=f"{self.label} upsert", unit="batch")
        for start in starts:
            end = start + size
            chunk = [np.asarray(v, dtype=self.storage_dtype) for v in vectors[start:end]]
            some_texts, some_metas = texts[start:end], metadatas[start:end]
            digests = [
                self._digest(v, t, m) for v, t, m in zip(chunk, some_texts, some_metas, strict=True)
            ]
            self._write(ids[start:end], some_texts, some_metas, chunk, digests)
        self._unoptimized += len(ids)
        limit = self._settings["optimize_after"]
        if self.optimizes_on_add and limit is not None and self._unoptimized >= limit:
            self._optimize()

    def delete(self, ids: Sequence[str]) -> None:
        """Delete the rows of ``ids``."""
        self._engine.delete([self._engine.key(i) for i in ids])

    def build(self, store: StoreView) -> None:
        """Run the engine's optimisation now (index building; blocks)."""
        self._optimize()

    def _optimize(self) -> None:
        started = time.perf_counter()
        self._engine.optimize()
        logger.info("%s optimized in %.1f s", self.label, time.perf_counter() - started)
        self._unoptimized = 0

    def sync(self, store: StoreView) -> tuple[int, int]:
        """Make the table hold exactly ``store``; returns (rows upserted, rows deleted).

        Raises
        ------
        IndexFormatError
            If the store keeps no vectors (they live in the engine) and the
            engine lacks some of its documents.
        ValueError
            If the table holds vectors of another dimension or type.
        """
        if len(store) and store.holds_vectors and self._engine.exists():
            self._ensure(store.dim)  # another dimension fails here, before anything changes
        remote: dict[str, object] = {}
        twice: list[str] = []
        extra: list[object] = []
        for key, doc_id, digest in self._engine.digests():
            if doc_id is None or doc_id not in store:
                extra.append(key)
            elif doc_id in remote:
                remote[doc_id] = None  # two rows: both are rewritten (engine-held: left as is)
                twice.append(doc_id)
            else:
                remote[doc_id] = digest
        changed: list[int] = []
        if not store.holds_vectors:
            missing = [doc_id for doc_id in store.ids if doc_id not in remote]
            if missing:
                hint = self.temporary_hint if self._temporary else ""
                raise IndexFormatError(
                    f"the {self.label} ({self!r}) lacks {len(missing)} of the index's "
                    f"documents, e.g. {missing[:5]}; their vectors were kept only there, so "
                    f"those documents must be added again{hint}"
                )
        else:
            changed = changed_positions(store, remote, self._digest)
        if extra or changed:
            logger.info(
                "re-synchronising the %s (%r): upserting %d rows, deleting %d",
                self.label,
                self,
                len(changed),
                len(extra),
            )
        self._engine.delete(extra)
        if changed:
            rewritten = {doc.id for doc in store.documents(changed)}
            self.delete([doc_id for doc_id in dict.fromkeys(twice) if doc_id in rewritten])
            self.add_stored(store, changed)
        return len(changed), len(extra)

    def search(
        self,
        store: StoreView,
        queries: Sequence[np.ndarray],
        k: int,
        where: Selection | None = None,
    ) -> list[Ranking]:
        """The engine's best rows (within ``where``), re-scored exactly (from the store, or
        from the vectors the engine returned with them when the store keeps none); the
        best ``k``."""
        exact = self.exact_scores
        with_vectors = exact and not store.holds_vectors
        results = self._query(store, queries, self._limit(k), with_vectors, where)
        rankings = []
        for query, found in zip(queries, results, strict=True):
            rows: dict[int, Candidate] = {}
            for candidate in found:
                position = store.find(candidate.id) if isinstance(candidate.id, str) else None
                if position is not None and (where is None or where.mask[position]):
                    rows.setdefault(position, candidate)
            positions = np.array(sorted(rows), dtype=np.int64)
            if not exact:
                scores = np.array([rows[p].score for p in positions.tolist()], dtype=np.float32)
                rankings.append(Ranking.merge(Ranking(positions, scores), Ranking.empty(), k))
            elif store.holds_vectors:
                rankings.append(store.rank(query, positions, k))
            else:
                found_vectors = [rows[p].vectors for p in positions.tolist()]
                vectors = store.checked_vectors(positions, found_vectors)
                rankings.append(rank_vectors(query, positions, vectors, k, store.vector_dtype))
        return rankings

    def fetch_vectors(self, ids: Sequence[str]) -> list[np.ndarray]:
        """The token vectors the engine holds for ``ids``, in that order.

        Arrays are ``(n_tokens, dim)`` in the engine's storage type (``datatype``).

        Raises
        ------
        KeyError
            Naming up to five ids the engine does not hold.
        """
        found: dict[str, Any] = {}
        for chunk in batches(list(dict.fromkeys(ids)), self.fetch_batch):
            found.update(self._engine.vectors(chunk))
        missing = [i for i in ids if i not in found]
        if missing:
            raise KeyError(f"the {self.label} holds no vectors for ids {missing[:5]}")
        return [np.asarray(found[i], dtype=self.storage_dtype) for i in ids]

    fetch_batch: ClassVar[int] = 256
    """Ids per engine request of :meth:`fetch_vectors`."""

    def save(self, directory: Path) -> dict[str, Any]:
        """Flush the engine; nothing is written into ``directory`` (the table stays put).

        The manifest entry names the index's owner id (see :meth:`attach`).
        """
        self._engine.flush()
        if self._temporary:
            logger.info(
                "the temporary %s is not saved; loading re-indexes the saved documents", self.label
            )
        return {"owner": self._owner["index"]}

    def saved_to(self, location: Path) -> None:
        """Record in the table that its owner is now saved at ``location``."""
        self._owner = {**self._owner, "path": str(location)}
        self._owner_recorded = False
        self._record_owner()

    def close(self) -> None:
        """Close the table (and remove a temporary folder); idempotent."""
        self._finalizer()
