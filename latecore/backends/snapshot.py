"""The snapshot family of backends: a built engine index plus the documents it does not hold.

``warp`` (xtr-warp-rs) and ``plaid`` (fast-plaid) build an index of every
stored document once (k-means over the token vectors, then compressed codes)
and answer queries with approximate candidates. :class:`SnapshotBackend` owns
everything around the engine, once for both:

- the map between the engine's passage ids and document ids (only *live*
  passages: a deleted or replaced document's old passage is dropped from it, so
  the engine may still return it but it is never a candidate);
- the *pending* documents, which the engine does not hold (before the first
  build, documents added to an engine that cannot add incrementally, documents
  an engine failed to take): every query scores them exactly, in full, and
  merges them with the engine's candidates, so none is ever missing;
- when to (re)build (each engine's rule, :meth:`SnapshotBackend.needs_build`);
- candidates re-scored exactly, merged with the pending documents' scores;
- saving a copy of the engine index (``<name>/`` in the saved directory, the
  id map as JSON), searching a loaded copy in place, and copying it to the
  working folder before the first change (a saved directory is never modified).

An engine module supplies only the calls to its engine: create, open, free,
query, and for engines that change an index in place (``incremental``)
insert, replace and remove.
"""

from __future__ import annotations

import json
import logging
import shutil
import uuid
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..store import Selection, StoreView
from .base import Backend, Ranking, SavedState, engine_failed, working_folder
from .exact import ExactBackend

__all__ = ["SnapshotBackend"]

logger = logging.getLogger(__name__)


class SnapshotBackend(Backend):
    """A built engine index of the stored documents, plus pending documents scored exactly.

    Subclasses implement the engine calls (:meth:`_create`, :meth:`_open`,
    :meth:`_free`, :meth:`_query`, and with ``incremental`` :meth:`_insert`,
    :meth:`_replace`, :meth:`_remove`) and the rebuild rule :meth:`needs_build`.

    Parameters
    ----------
    index_folder
        Where engine indexes are built; default a temporary directory removed
        by :meth:`close` (or at exit).
    """

    incremental: ClassVar[bool] = False
    """Whether the engine adds, updates and deletes passages of a built index in place;
    otherwise new and replaced documents stay pending until the next build."""

    min_build_tokens: ClassVar[int] = 1
    """Below this many stored token vectors nothing is built (every search is exact)."""

    saved_ignore: ClassVar[tuple[str, ...]] = ()
    """File name patterns of the engine's index not copied into a saved index."""

    link_saved: ClassVar[bool] = False
    """Whether a loaded index may hard-link the saved engine files (an engine that never
    writes its files in place); otherwise they are copied."""

    def __init__(self, index_folder: str | Path | None) -> None:
        self._root, self._cleanup = working_folder(self, index_folder, f"latecore-{self.name}-")
        self._handle: Any = None
        self._dir: Path | None = None
        self._owned = False
        self._linked = False
        self._passages: dict[int, str] = {}
        self._pids: dict[str, int] = {}
        self._pending: dict[str, None] = {}
        self._built_size = 0
        self._passage_count = 0
        self._changes = 0
        self._pid_cache: tuple[object, int, np.ndarray] | None = None

    # --- engine calls ---------------------------------------------------------------------

    @abstractmethod
    def _create(self, directory: Path, vectors: list[np.ndarray]) -> Any:
        """Build an engine index of ``vectors`` (passage ``i`` is ``vectors[i]``) in the new
        ``directory``; return the open engine."""

    @abstractmethod
    def _open(self, directory: Path) -> Any:
        """Open the engine index in ``directory``."""

    @abstractmethod
    def _free(self, engine: Any) -> None:
        """Release an open engine (its files stay)."""

    @abstractmethod
    def _query(
        self, engine: Any, queries: Sequence[np.ndarray], k: int, subset: np.ndarray | None
    ) -> list[list[int]]:
        """The engine's candidate passage ids for each query, best first (enough for ``k``);
        only among the passages ``subset`` when it is given (never empty)."""

    def _insert(self, engine: Any, vectors: list[np.ndarray]) -> list[int]:
        """Add passages to a built index; their new passage ids (``incremental`` engines)."""
        raise NotImplementedError

    def _replace(self, engine: Any, pids: list[int], vectors: list[np.ndarray]) -> None:
        """Replace the vectors of passages in place (``incremental`` engines)."""
        raise NotImplementedError

    def _remove(self, engine: Any, pids: list[int]) -> None:
        """Tombstone passages (``incremental`` engines)."""
        raise NotImplementedError

    def _check_saved(self, directory: Path, store: StoreView) -> None:
        """Raise ``ValueError``/``OSError`` if the saved engine index in ``directory`` cannot
        belong to ``store`` (default: its directory must exist)."""
        if not directory.is_dir():
            raise OSError(f"{directory} is missing")

    @abstractmethod
    def needs_build(self, store: StoreView) -> bool:
        """Whether the next search (re)builds the engine index."""

    # --- state ----------------------------------------------------------------------------

    @property
    def built(self) -> bool:
        """Whether an engine index is open."""
        return self._handle is not None

    @property
    def indexed(self) -> int:
        """Documents the engine holds (live passages)."""
        return len(self._pids)

    @property
    def pending(self) -> int:
        """Documents the engine does not hold, scored exactly at every search."""
        return len(self._pending)

    @property
    def stale(self) -> int:
        """Passages of the engine index that no longer belong to a document."""
        return self._passage_count - len(self._passages)

    @property
    def index_directory(self) -> Path | None:
        """The engine index directory searched now (``None`` before the first build)."""
        return self._dir

    def _forget(self, doc_id: str) -> None:
        pid = self._pids.pop(doc_id, None)
        if pid is not None:
            del self._passages[pid]
            self._changes += 1

    def _map(self, pids: Sequence[int], ids: Sequence[str]) -> None:
        for pid, doc_id in zip(pids, ids, strict=True):
            self._passages[int(pid)] = doc_id
            self._pids[doc_id] = int(pid)
        self._changes += 1

    def _passages_of(self, store: StoreView, positions: np.ndarray) -> np.ndarray:
        """The live passage ids of the documents at ``positions`` (those the engine holds).

        The position -> passage table is built once per change of the store or the map.
        """
        cached = self._pid_cache
        if cached is None or cached[0] is not store.ids or cached[1] != self._changes:
            table = np.full(len(store), -1, dtype=np.int64)
            for doc_id, pid in self._pids.items():
                table[store.position(doc_id)] = pid
            cached = self._pid_cache = (store.ids, self._changes, table)
        passages = cached[2][positions]
        return passages[passages >= 0]

    # --- the protocol ---------------------------------------------------------------------

    def attach(self, store: StoreView, saved: SavedState | None) -> None:
        """Open the saved engine index if there is one and it fits ``store``; else every
        document is pending (and the next search past the build rule builds).

        The saved engine files are checked against the manifest (sizes, ``.npy``
        headers, digests) and hard-linked (:attr:`link_saved`) or copied into the
        working folder first: the engine opens only that checked copy. A damaged
        or tampered file makes the next search rebuild from the store (which
        holds every vector: nothing is lost), never reaches the engine.
        """
        self._pending = dict.fromkeys(store.ids)
        if saved is None or not (saved.state.get("built") or saved.state.get("snapshot")):
            return
        try:
            passages, count = _read_id_map(saved.directory / f"{self.name}-ids.json", saved.state)
            directory = saved.checked_copy(self.name, self._root, link=self.link_saved)
        except (OSError, ValueError, KeyError, TypeError) as error:
            saved.raise_if_replaced(error)
            logger.warning(
                "the saved %s index is unusable (%s); it will be rebuilt", self.name, error
            )
            return
        try:
            self._check_saved(directory, store)
            unknown = [i for i in passages.values() if i not in store]
            if unknown:
                raise ValueError(f"it holds {len(unknown)} unknown documents {unknown[:5]}")
            engine = self._open(directory)
        except BaseException as error:
            shutil.rmtree(directory, ignore_errors=True)
            if not engine_failed(error):
                raise
            logger.warning(
                "the saved %s index is unusable (%s); it will be rebuilt", self.name, error
            )
            return
        self._release()
        self._handle, self._dir = engine, directory
        self._owned, self._linked = not self.link_saved, self.link_saved
        self._passages, self._pids = {}, {}
        self._map(list(passages), list(passages.values()))
        self._pending = {i: None for i in store.ids if i not in self._pids}
        self._built_size = int(saved.state.get("built_size") or len(passages))
        self._passage_count = count

    def add(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        metadatas: Sequence[Mapping[str, Any]],
        vectors: Sequence[np.ndarray],
    ) -> None:
        """New documents into the engine (``incremental``) or pending; replaced ones updated
        in place (``incremental``) or pending with their old passage dropped.

        If the engine fails, the documents become pending (logged), so they are still found.
        """
        if not self.built:
            self._pending.update(dict.fromkeys(ids))
            return
        new = [n for n, i in enumerate(ids) if i not in self._pids and i not in self._pending]
        replaced = [n for n, i in enumerate(ids) if i in self._pids]
        if not self.incremental:
            for n in replaced:
                self._forget(ids[n])
            self._pending.update(dict.fromkeys(ids))
            return
        try:
            if replaced:
                pids = [self._pids[ids[n]] for n in replaced]
                self._replace(self._writable(), pids, [vectors[n] for n in replaced])
            if new:
                added = self._insert(self._writable(), [vectors[n] for n in new])
                if len(added) != len(new):
                    raise RuntimeError(
                        f"{self.name} returned {len(added)} passage ids for {len(new)} documents"
                    )
                self._map(added, [ids[n] for n in new])
                self._passage_count += len(new)
        except BaseException as error:
            if not engine_failed(error):
                raise
            logger.warning(
                "%s could not index %d documents (%s); they are scored exactly until the "
                "next build",
                self.name,
                len(new) + len(replaced),
                error,
            )
            for n in [*new, *replaced]:
                self._forget(ids[n])
                self._pending[ids[n]] = None

    def delete(self, ids: Sequence[str]) -> None:
        """Forget documents (never returned again); an ``incremental`` engine tombstones them."""
        pids = []
        for doc_id in ids:
            self._pending.pop(doc_id, None)
            if doc_id in self._pids:
                pids.append(self._pids[doc_id])
                self._forget(doc_id)
        if not pids or not self.incremental:
            return
        try:
            self._remove(self._writable(), pids)
        except BaseException as error:
            if not engine_failed(error):
                raise
            logger.warning("%s could not delete %d passages (%s)", self.name, len(pids), error)

    def build(self, store: StoreView) -> None:
        """Build an engine index of every document in ``store`` (replacing the current one).

        Through a LateIndex: ``index.build()``; otherwise the first search that
        :meth:`needs_build` does it. Below :attr:`min_build_tokens` token vectors
        nothing is built (search stays exact).
        """
        if not len(store) or store.n_tokens < self.min_build_tokens:
            self._release()
            self._passages, self._pids, self._pending = {}, {}, dict.fromkeys(store.ids)
            self._built_size = self._passage_count = 0
            return
        directory = self._root / f"{self.name}-{uuid.uuid4().hex[:12]}"
        logger.info("building a %s index of %d documents in %s", self.name, len(store), directory)
        try:
            engine = self._create(directory, store.vectors(np.arange(len(store))))
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        self._release()
        self._handle, self._dir, self._owned = engine, directory, True
        self._passages, self._pids = {}, {}
        self._map(range(len(store)), store.ids)
        self._pending = {}
        self._built_size = self._passage_count = len(store)

    def search(
        self,
        store: StoreView,
        queries: Sequence[np.ndarray],
        k: int,
        where: Selection | None = None,
    ) -> list[Ranking]:
        """The engine's candidates plus the pending documents, re-scored exactly; the best
        ``k``. With ``where``, the engine searches only its passages (its ``subset``) and
        only its pending documents are scored."""
        if self.needs_build(store):
            self.build(store)
        if len(self._pending) == len(store):
            return ExactBackend().search(store, queries, k, where)
        pending = np.sort(store.positions(list(self._pending)))
        subset = None
        if where is not None:
            pending = pending[where.mask[pending]]
            subset = self._passages_of(store, where.positions)
        # Pending documents are the same for every query: score them once, in full.
        pending_scores = store.score(queries, pending)
        if subset is not None and not len(subset):
            candidates: list[list[int]] = [[] for _ in queries]
        else:
            candidates = self._query(self._handle, queries, k, subset)
        return [
            Ranking.merge(
                store.rank(
                    query,
                    [store.position(self._passages[p]) for p in pids if p in self._passages],
                    k,
                ),
                Ranking(pending, scores),
                k,
            )
            for query, pids, scores in zip(queries, candidates, pending_scores, strict=True)
        ]

    def save(self, directory: Path) -> dict[str, Any]:
        """Copy the engine index into ``directory/<name>``; the id map goes to JSON."""
        if self._dir is None:
            return {"built": False}
        shutil.copytree(
            self._dir, directory / self.name, ignore=shutil.ignore_patterns(*self.saved_ignore)
        )
        mapping = {"passage_ids": list(self._passages), "ids": list(self._passages.values())}
        (directory / f"{self.name}-ids.json").write_text(json.dumps(mapping), encoding="utf-8")
        return {"built": True, "built_size": self._built_size, "passages": self._passage_count}

    def close(self) -> None:
        """Free the engine index and remove the temporary folder (if latecore made it)."""
        self._release()
        self._passages, self._pids, self._pending = {}, {}, {}
        self._cleanup()

    def _writable(self) -> Any:
        """The engine, first copied (within the working folder) if it links a saved index."""
        if not self._owned:
            assert self._dir is not None
            copy = self._root / f"{self.name}-{uuid.uuid4().hex[:12]}"
            try:
                shutil.copytree(self._dir, copy)
                engine = self._open(copy)
            except BaseException:
                shutil.rmtree(copy, ignore_errors=True)
                raise
            self._release()
            self._handle, self._dir, self._owned = engine, copy, True
        return self._handle

    def _release(self) -> None:
        """Free the engine, and remove its directory (ours, or links to a saved one)."""
        if self._handle is not None:
            self._free(self._handle)
        if (self._owned or self._linked) and self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
        self._handle, self._dir, self._owned, self._linked = None, None, False, False


def _read_id_map(path: Path, state: Mapping[str, Any]) -> tuple[dict[int, str], int]:
    """Live passage id -> document id from a saved id map, and the passages the engine
    holds (also read: the list format PLAID indexes were saved with, one id per passage
    and the stale ones named in the state)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(data, list):
        stale = {str(i) for i in state.get("stale", [])}
        count = len(data)
        data = {
            "passage_ids": [p for p, i in enumerate(data) if str(i) not in stale],
            "ids": [str(i) for i in data if str(i) not in stale],
        }
    else:
        count = int(state.get("passages") or len(data["ids"]))
    pids, ids = data["passage_ids"], data["ids"]
    if len(pids) != len(ids) or len(set(pids)) != len(pids) or len(set(ids)) != len(ids):
        raise ValueError("passage ids and document ids do not pair up one to one")
    if not all(isinstance(p, int) for p in pids) or not all(isinstance(i, str) for i in ids):
        raise ValueError("passage ids must be integers and document ids strings")
    return dict(zip(pids, ids, strict=True)), count
