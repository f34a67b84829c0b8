"""The backend protocol behind :class:`~latecore.index.LateIndex`, and what backends share.

A :class:`~latecore.index.LateIndex` keeps its documents in a store
(:mod:`latecore.store`): ids, texts, metadata and, by default, every token
vector. That store is the source of truth: :meth:`~latecore.index.LateIndex.get`,
:meth:`~latecore.index.LateIndex.score` and :meth:`~latecore.index.LateIndex.save`
read it, and a backend can always be rebuilt from it. Backends see it only
through the read-only :class:`~latecore.store.StoreView`, and the store never
calls a backend. A backend decides which documents a query is scored against:

- ``exact`` scores every document (no extra state);
- the *snapshot* family (:mod:`latecore.backends.snapshot`): a built engine
  index plus documents it does not hold yet: ``warp`` (xtr-warp-rs) and
  ``plaid`` (fast-plaid, for GPUs);
- the *mirror* family (:mod:`latecore.backends.mirror`): an engine holding a
  copy of every document: ``qdrant`` (an embedded qdrant-edge shard or a
  server: a MUVERA vector under HNSW prefetches, MaxSim over the multivector
  ranks) and ``lancedb`` (a LanceDB table's multivector search). A mirror
  engine can also be the only holder of the token vectors
  (``LateIndex(..., vectors="engine")``, :attr:`Backend.serves_vectors`).

Candidates are re-scored by exact MaxSim (:meth:`~latecore.store.StoreView.rank`,
or over the vectors a mirror engine returned with them), so every backend
returns the scores ``exact`` would give the same documents; only *which*
documents reach the top ``k`` can differ.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import uuid
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .._atomic import OpenedDirectory
from .._files import FileRecords, check_files, copy_files
from ..errors import IndexFormatError
from ..store import Ranking, Selection, StoreView

__all__ = [
    "Backend",
    "Ranking",
    "SavedState",
    "Selection",
    "changed_positions",
    "document_digest",
    "engine_failed",
    "working_folder",
]


@dataclass(frozen=True)
class SavedState:
    """What :meth:`Backend.save` wrote: the index directory and the manifest entry.

    ``directory`` is valid while :meth:`Backend.attach` runs (the loader reads the
    saved index through one handle): a backend must not keep it. Files an
    engine goes on using come from :meth:`checked_copy`.
    """

    directory: Path
    state: Mapping[str, Any]
    files: FileRecords | None = None
    """The manifest's records of the files :meth:`Backend.save` wrote (``None``: none kept)."""
    opened: OpenedDirectory | None = None
    """The loader's handle on ``directory`` (says whether another save replaced it)."""
    location: Path | None = None
    """Where the index is saved (the path it was loaded from, resolved; ``None``: unknown)."""

    def checked_copy(self, folder: str, into: Path, *, link: bool) -> Path:
        """The saved files under ``folder``, checked against the manifest, in a new directory
        under ``into``: the only files a native engine may be given.

        ``link=True`` hard-links them where the file system allows (only for an
        engine that never writes its files in place), otherwise they are copied.
        Files under ``folder`` that the manifest does not list are left out.

        Raises
        ------
        IndexChangedError
            If they cannot be read because another save replaced the directory
            meanwhile: load the index again.
        IndexFormatError
            If a file is missing, damaged or tampered with (size, ``.npy`` header
            or digest), or the save kept no records of them.
        """
        prefix = f"{folder}/"
        wanted = {
            name.removeprefix(prefix): record
            for name, record in (self.files or {}).items()
            if name.startswith(prefix)
        }
        if not wanted:
            raise IndexFormatError(f"the saved index lists no files in {folder}/ to check")
        target = into / f"{folder}-saved-{uuid.uuid4().hex[:12]}"
        try:
            copy_files(self.directory / folder, wanted, target, link=link)
            check_files(target, wanted)
        except (OSError, IndexFormatError) as error:
            shutil.rmtree(target, ignore_errors=True)
            self.raise_if_replaced(error)
            if isinstance(error, IndexFormatError):
                raise
            raise IndexFormatError(f"{folder}/ cannot be read: {error}") from error
        return target

    def raise_if_replaced(self, error: BaseException) -> None:
        """Raise :class:`~latecore.errors.IndexChangedError` (from ``error``) if another save
        replaced the directory since the loader opened it: ``error`` may come from that."""
        if self.opened is not None and not self.opened.is_current():
            raise self.opened.replaced() from error


class Backend(ABC):
    """Candidate generation (and any extra storage) behind a LateIndex.

    A LateIndex calls, under its lock: :meth:`attach` once (a new index, or one
    being loaded), :meth:`add` and :meth:`delete` *before* it changes its own
    store (so a backend failure leaves the index unchanged), :meth:`search` with
    encoded queries, :meth:`fetch_vectors` (engine-held vectors only),
    :meth:`build` on request, :meth:`save` when it saves, and :meth:`close`.
    """

    name: ClassVar[str]
    """The name passed as ``LateIndex(..., backend=name)``."""

    serves_vectors: ClassVar[bool] = False
    """Whether :meth:`fetch_vectors` works, so the index may keep its token vectors
    in the engine only (``LateIndex(..., vectors="engine")``)."""

    exact_share: ClassVar[float] = 0.0
    """A filter holding for at most this share of the documents is searched exactly
    over them instead (where the store keeps the vectors), besides the
    :data:`~latecore.index_view.EXACT_SUBSET` documents every backend switches at:
    for an engine whose filtered search costs more than exact MaxSim over a subset."""

    @property
    def exact_scores(self) -> bool:
        """Whether :meth:`search` returns exact MaxSim scores (every backend by default)."""
        return True

    @property
    def options(self) -> dict[str, Any]:
        """Settings worth saving with an index (JSON values; never secrets)."""
        return {}

    @property
    def index_directory(self) -> Path | None:
        """The local directory of the engine's index files (``None``: none, or not local);
        :meth:`LateIndex.memory` reports its size as the engine's bytes."""
        return None

    @classmethod
    def merge_options(
        cls, saved: Mapping[str, Any], overrides: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Constructor options for loading: the saved :attr:`options`, updated by ``overrides``."""
        return {**saved, **overrides}

    def attach(self, store: StoreView, saved: SavedState | None) -> None:  # noqa: B027
        """Take over ``store``: empty for a new index, or the documents of a loaded one.

        ``saved`` is this backend's state from :meth:`save` when the index was
        saved with the same backend, else ``None`` (then index ``store`` anew).
        """

    @abstractmethod
    def add(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        metadatas: Sequence[Mapping[str, Any]],
        vectors: Sequence[np.ndarray],
    ) -> None:
        """Index new documents; an id that is already indexed is replaced.

        The arguments come in the order :meth:`~latecore.store.DocumentStore.add` takes them.
        """

    @abstractmethod
    def delete(self, ids: Sequence[str]) -> None:
        """Forget documents (every id given is indexed)."""

    @abstractmethod
    def search(
        self,
        store: StoreView,
        queries: Sequence[np.ndarray],
        k: int,
        where: Selection | None = None,
    ) -> list[Ranking]:
        """The best ``k`` documents of ``store`` for each query (``k >= 1``, store not empty),
        among those of ``where`` when it is given (a filter's documents, never empty).

        Every engine is told the filter (its own translation, or the selected
        documents) so that it searches inside it; the index checks every hit
        against ``where`` again before returning it.

        Scores are exact MaxSim (unless :attr:`exact_scores` is ``False``). When
        the store keeps no vectors (``store.holds_vectors`` is ``False``), a
        backend that :attr:`serves_vectors` scores the vectors its engine
        returns with the candidates (checked by
        :meth:`~latecore.store.StoreView.checked_vectors`), in the same request.
        """

    def fetch_vectors(self, ids: Sequence[str]) -> list[np.ndarray]:
        """The token vectors the engine holds for ``ids`` (every id is indexed), in that order.

        Backends with :attr:`serves_vectors` implement it. With
        ``vectors="engine"`` it is the one way the index reaches vectors outside
        a search (:meth:`~latecore.index.LateIndex.score`, the candidates a
        hybrid searcher's BM25 stage adds); :meth:`attach` must not read vectors
        from such a store to re-synchronise.
        """
        raise NotImplementedError(f"the {self.name!r} backend does not hold token vectors")

    def add_stored(self, store: StoreView, positions: Sequence[int]) -> None:
        """:meth:`add` the documents ``store`` holds at ``positions`` (re-synchronising)."""
        documents = store.documents(positions)
        self.add(
            [doc.id for doc in documents],
            [doc.text for doc in documents],
            [doc.metadata for doc in documents],
            store.vectors(positions),
        )

    def build(self, store: StoreView) -> None:  # noqa: B027
        """Build any search structure over ``store`` now (default: nothing to build)."""

    def save(self, directory: Path) -> dict[str, Any]:
        """Write backend files under ``directory``; return the JSON manifest entry."""
        return {}

    def saved_to(self, location: Path) -> None:  # noqa: B027
        """The index was just saved at ``location`` (resolved; after the atomic swap)."""

    def close(self) -> None:  # noqa: B027
        """Release clients, files and temporary directories (idempotent)."""


def engine_failed(error: BaseException) -> bool:
    """Whether ``error`` is an engine failure, not an interruption (a Rust panic raised
    through pyo3 is a ``BaseException``, so ``except Exception`` would miss it).

    Examples
    --------
    >>> engine_failed(RuntimeError("disk full")), engine_failed(KeyboardInterrupt())
    (True, False)
    """
    return not isinstance(error, KeyboardInterrupt | SystemExit | GeneratorExit)


def working_folder(
    owner: object,
    folder: str | Path | None,
    prefix: str,
    release: Callable[[], object] | None = None,
) -> tuple[Path, weakref.finalize]:
    """A backend's working folder, and the finalizer that removes it if latecore made it.

    ``folder`` is created if missing and never removed; without one a new
    temporary directory is made, removed when the finalizer is called (on
    ``close``) or when ``owner`` is garbage-collected. ``release`` (closing an
    engine that has files open in the folder) runs first, either way; it must
    not refer to ``owner``.

    Examples
    --------
    >>> class Owner: ...
    >>> owner = Owner()
    >>> root, cleanup = working_folder(owner, None, "latecore-doc-")
    >>> root.is_dir()
    True
    >>> del owner  # or cleanup(), as close() does
    >>> root.exists()
    False
    """
    if folder is None:
        root = Path(tempfile.mkdtemp(prefix=prefix))
    else:
        root = Path(folder)
        root.mkdir(parents=True, exist_ok=True)
    return root, weakref.finalize(owner, _release_folder, release, root if folder is None else None)


def _release_folder(release: Callable[[], object] | None, temporary: Path | None) -> None:
    if release is not None:
        release()
    if temporary is not None:
        shutil.rmtree(temporary, ignore_errors=True)


def document_digest(
    vectors: np.ndarray, text: str, metadata: Mapping[str, Any], salt: bytes = b""
) -> str:
    """A hash of a document as an engine holds it: ``salt``, float16 vectors, text, metadata.

    Engines store it beside each document, so that loading an index finds the
    documents that are missing or differ (:func:`changed_positions`).

    Examples
    --------
    >>> v = np.ones((2, 4), dtype=np.float32)
    >>> document_digest(v, "a", {}) == document_digest(v.astype(np.float16), "a", {})
    True
    >>> document_digest(v, "a", {}) == document_digest(v, "a", {"n": 1})
    False
    """
    h = hashlib.blake2b(digest_size=16)
    h.update(salt)
    h.update(np.ascontiguousarray(vectors, dtype=np.float16).tobytes())
    h.update(text.encode("utf-8", "surrogatepass"))
    h.update(json.dumps(metadata, sort_keys=True, default=repr).encode("utf-8"))
    return h.hexdigest()


def changed_positions(
    store: StoreView,
    remote: Mapping[str, object],
    digest: Callable[[np.ndarray, str, Mapping[str, Any]], str],
) -> list[int]:
    """Positions of the stored documents whose digest is not ``remote[id]`` (missing ones too).

    Examples
    --------
    >>> from latecore.store import MemoryStore
    >>> store = MemoryStore()
    >>> store.add(["a", "b"], ["x", "y"], [{}, {}], [np.ones((1, 2)), np.ones((1, 2))])
    >>> changed_positions(store, {"a": document_digest(np.ones((1, 2)), "x", {})}, document_digest)
    [1]
    """
    everything = np.arange(len(store))
    return [
        position
        for position, doc, vectors in zip(
            everything.tolist(), store.documents(everything), store.vectors(everything), strict=True
        )
        if remote.get(doc.id) != digest(vectors, doc.text, doc.metadata)
    ]
