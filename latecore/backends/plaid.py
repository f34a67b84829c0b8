"""The ``plaid`` backend: PLAID candidates (fast-plaid), exact MaxSim re-scoring.

PLAID (Santhanam et al., 2022) clusters all token vectors, stores each one as a
centroid id plus a few-bit residual, and answers a query from the clusters
nearest to its tokens. latecore uses it only to pick candidates: the best
``n_candidates`` PLAID results are re-scored by exact MaxSim over the vectors the
LateIndex stores, so returned scores equal ``exact``'s for those documents.

Life cycle. A PLAID *snapshot* is built from every stored document and never
modified afterwards (fast-plaid's own ``update`` keeps the old centroids and
its ``delete`` renumbers documents; neither is used):

- documents added after the snapshot are *pending*: each query scores them
  exactly, in full, and merges them with the PLAID candidates;
- deleted or replaced documents are *stale*: filtered out of PLAID's results;
- once pending + stale documents exceed ``max(rebuild_min, rebuild_fraction x
  snapshot size)``, the next search rebuilds the snapshot (k-means included).
  Call :meth:`PlaidBackend.build` after a bulk load to pay that up front.

An index smaller than ``rebuild_min`` is therefore searched exactly, without
any PLAID build. Snapshots live in ``index_folder`` (default: a temporary
directory removed by :meth:`PlaidBackend.close` or at exit);
:meth:`~latecore.index.LateIndex.save` copies the current one next to the
index, and :meth:`~latecore.index.LateIndex.load` checks it against the saved
manifest (sizes, ``.npy`` headers, digests: a damaged or tampered file makes it
rebuild the snapshot, never crash) and searches a copy of it in
``index_folder``, never the saved directory itself.

fast-plaid is a dependency of pylate, so this backend needs no extra install;
it is imported only when the backend is chosen. fast-plaid's index files are
its own format (``.npy`` arrays and JSON); latecore writes no pickles.
"""

from __future__ import annotations

import functools
import logging
import shutil
import threading
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._validation import check_count, check_optional_count, check_positive
from ..store import StoreView
from .base import Backend, Ranking, SavedState, engine_failed, working_folder

if TYPE_CHECKING:
    from fast_plaid.search import FastPlaid

__all__ = ["PlaidBackend"]

logger = logging.getLogger(__name__)

_SNAPSHOT_DIR = "plaid"
_IDS_FILE = "plaid-ids.json"
_KMEANS_PATCH_LOCK = threading.Lock()


def _import_fast_plaid() -> Any:
    try:
        from fast_plaid import search
    except ImportError as error:  # pragma: no cover - fast-plaid comes with pylate
        raise ImportError(
            "the 'plaid' backend needs fast-plaid (a dependency of pylate): "
            "pip install 'latecore' or pip install fast-plaid"
        ) from error
    return search


class PlaidBackend(Backend):
    """PLAID candidate generation over a LateIndex; exact MaxSim final scores.

    Parameters
    ----------
    index_folder
        Where snapshots are built; default a temporary directory.
    n_candidates
        PLAID results re-scored exactly per query; default ``max(4 * k, 100)``.
    n_ivf_probe, n_full_scores
        fast-plaid search settings: clusters probed per query token, and
        documents whose approximate score is computed in full.
    nbits, kmeans_niters, num_partitions, n_samples_kmeans, max_points_per_centroid, seed
        fast-plaid build settings. ``num_partitions`` (the number of centroids)
        defaults to fast-plaid's ``2**floor(log2(16 * sqrt(n_tokens)))``, which
        is what dominates build time on a CPU; a quarter of that builds about
        four times faster at a small cost in recall (see ``benchmarks/``).
    rebuild_min, rebuild_fraction
        Pending + stale documents tolerated before the next search rebuilds.
    device
        fast-plaid's device (``"cpu"``, ``"cuda"``); default CUDA when available.

    Examples
    --------
    >>> from latecore import LateIndex
    >>> from latecore.testing import FakeEncoder
    >>> index = LateIndex(FakeEncoder(), backend="plaid")
    >>> index.add(["paris is in france", "berlin is in germany"], ids=["p", "b"])
    ['p', 'b']
    >>> [hit.id for hit in index.search("where is berlin", k=1)]  # below rebuild_min: exact
    ['b']
    >>> index.close()
    """

    name = "plaid"

    def __init__(
        self,
        *,
        index_folder: str | Path | None = None,
        n_candidates: int | None = None,
        n_ivf_probe: int = 8,
        n_full_scores: int = 4096,
        nbits: int = 4,
        kmeans_niters: int = 4,
        num_partitions: int | None = None,
        n_samples_kmeans: int | None = None,
        max_points_per_centroid: int = 256,
        seed: int = 42,
        rebuild_min: int = 1000,
        rebuild_fraction: float = 0.1,
        device: str | None = None,
    ) -> None:
        check_optional_count(n_candidates, "n_candidates", minimum=1)
        for name, value in {"n_ivf_probe": n_ivf_probe, "n_full_scores": n_full_scores}.items():
            check_positive(value, name)
        check_count(rebuild_min, "rebuild_min")
        if rebuild_fraction < 0:
            raise ValueError(f"rebuild_fraction must not be negative, got {rebuild_fraction!r}")
        self._search_module = _import_fast_plaid()
        self._settings: dict[str, Any] = {
            "n_candidates": n_candidates,
            "n_ivf_probe": n_ivf_probe,
            "n_full_scores": n_full_scores,
            "nbits": nbits,
            "kmeans_niters": kmeans_niters,
            "num_partitions": num_partitions,
            "n_samples_kmeans": n_samples_kmeans,
            "max_points_per_centroid": max_points_per_centroid,
            "seed": seed,
            "rebuild_min": rebuild_min,
            "rebuild_fraction": rebuild_fraction,
        }
        self.device = device
        self._root, self._cleanup = working_folder(self, index_folder, "latecore-plaid-")
        self._plaid: FastPlaid | None = None
        self._snapshot_dir: Path | None = None
        self._owns_snapshot = False
        self._snapshot_ids: list[str] = []
        self._in_snapshot: set[str] = set()
        self._stale: set[str] = set()
        self._pending: dict[str, None] = {}

    @property
    def options(self) -> dict[str, Any]:
        """The search and build settings (saved with the index)."""
        return dict(self._settings)

    @property
    def snapshot_size(self) -> int:
        """Documents in the current PLAID snapshot (stale ones included)."""
        return len(self._snapshot_ids)

    @property
    def pending(self) -> int:
        """Documents added since the snapshot was built (scored exactly until a rebuild)."""
        return len(self._pending)

    def __repr__(self) -> str:
        return (
            f"PlaidBackend(snapshot={self.snapshot_size}, pending={self.pending}, "
            f"stale={len(self._stale)})"
        )

    def attach(self, store: StoreView, saved: SavedState | None) -> None:
        """Open the saved snapshot if there is one, else treat every document as pending.

        The saved snapshot is checked against the manifest and copied into
        ``index_folder`` first (fast-plaid writes into the directory it loads):
        fast-plaid opens only that copy. If any file differs, the snapshot is
        rebuilt from the stored vectors (nothing is lost).
        """
        self._pending = dict.fromkeys(store.ids)
        if saved is None or not saved.state.get("snapshot"):
            return
        import json

        try:
            ids = [str(i) for i in json.loads((saved.directory / _IDS_FILE).read_text("utf-8"))]
            directory = saved.checked_copy(_SNAPSHOT_DIR, self._root, link=False)
        except (OSError, ValueError, TypeError) as error:
            saved.raise_if_replaced(error)
            logger.warning("saved PLAID snapshot is unusable (%s); it will be rebuilt", error)
            return
        try:
            self._open_snapshot(directory, ids, owned=True)
        except BaseException as error:
            shutil.rmtree(directory, ignore_errors=True)
            if not engine_failed(error):
                raise
            logger.warning("saved PLAID snapshot does not load (%s); it will be rebuilt", error)
            return
        self._stale = {str(i) for i in saved.state.get("stale", [])} & self._in_snapshot
        live = set(store.ids)
        self._stale |= self._in_snapshot - live
        self._pending = {
            i: None for i in store.ids if i not in self._in_snapshot or i in self._stale
        }

    def add(
        self,
        ids: Sequence[str],
        vectors: Sequence[np.ndarray],
        texts: Sequence[str],
        metadatas: Sequence[Mapping[str, Any]],
    ) -> None:
        """Mark documents pending (a replaced one's snapshot entry becomes stale)."""
        for doc_id in ids:
            if doc_id in self._in_snapshot:
                self._stale.add(doc_id)
            self._pending[doc_id] = None

    def delete(self, ids: Sequence[str]) -> None:
        """Drop pending documents; mark snapshot entries stale (filtered until a rebuild)."""
        for doc_id in ids:
            self._pending.pop(doc_id, None)
            if doc_id in self._in_snapshot:
                self._stale.add(doc_id)

    def needs_rebuild(self) -> bool:
        """Whether pending + stale documents exceed the rebuild threshold."""
        threshold = max(
            self._settings["rebuild_min"],
            self._settings["rebuild_fraction"] * len(self._snapshot_ids),
        )
        return len(self._pending) + len(self._stale) > threshold

    def build(self, store: StoreView) -> None:
        """Build a new snapshot of every document in ``store`` (replacing the current one).

        Through a LateIndex: ``index.build()``; otherwise the next search
        does it when :meth:`needs_rebuild`.
        """
        if not len(store):
            self._drop_snapshot()
            self._pending = {}
            self._stale = set()
            return
        import torch
        from fast_plaid.search import fast_plaid as fast_plaid_module

        documents = [
            torch.from_numpy(np.ascontiguousarray(v, dtype=np.float16))
            for v in store.vectors(np.arange(len(store)))
        ]
        directory = self._root / f"snapshot-{uuid.uuid4().hex[:12]}"
        plaid = self._search_module.FastPlaid(
            index=str(directory), device=self.device, low_memory=False
        )
        settings = self._settings
        logger.info("building a PLAID snapshot of %d documents in %s", len(documents), directory)
        with _KMEANS_PATCH_LOCK, torch.random.fork_rng(devices=[]):
            # fast-plaid samples k-means points with torch's global generator:
            # seed it so that the same corpus always gives the same snapshot.
            torch.manual_seed(settings["seed"])
            original = fast_plaid_module.compute_kmeans
            if settings["num_partitions"] is not None:
                # create() takes no centroid count; its k-means helper does.
                fast_plaid_module.compute_kmeans = functools.partial(
                    original, num_partitions=settings["num_partitions"]
                )
            try:
                plaid.create(
                    documents_embeddings=documents,
                    kmeans_niters=settings["kmeans_niters"],
                    max_points_per_centroid=settings["max_points_per_centroid"],
                    nbits=settings["nbits"],
                    n_samples_kmeans=settings["n_samples_kmeans"],
                    seed=settings["seed"],
                    use_triton_kmeans=False,
                    start_from_scratch=0,
                )
            finally:
                fast_plaid_module.compute_kmeans = original
        self._drop_snapshot()
        self._plaid = plaid
        self._snapshot_dir = directory
        self._owns_snapshot = True
        self._snapshot_ids = list(store.ids)
        self._in_snapshot = set(self._snapshot_ids)
        self._stale = set()
        self._pending = {}

    def search(self, store: StoreView, queries: Sequence[np.ndarray], k: int) -> list[Ranking]:
        """PLAID candidates plus pending documents, re-scored exactly; the best ``k``."""
        if self.needs_rebuild():
            self.build(store)
        pending = np.sort(store.positions(list(self._pending)))
        # Pending documents are the same for every query: score them once, in full.
        pending_scores = store.score(queries, pending)
        if self._plaid is None:
            candidates: list[list[int]] = [[] for _ in queries]
        else:
            candidates = self._candidates(store, queries, k)
        return [
            Ranking.merge(store.rank(query, positions, k), Ranking(pending, scores), k)
            for query, positions, scores in zip(queries, candidates, pending_scores, strict=True)
        ]

    def _candidates(
        self, store: StoreView, queries: Sequence[np.ndarray], k: int
    ) -> list[list[int]]:
        import torch

        assert self._plaid is not None
        wanted = self._settings["n_candidates"] or max(4 * k, 100)
        wanted += min(len(self._stale), wanted)
        results = self._plaid.search(
            queries_embeddings=[torch.from_numpy(np.asarray(q, dtype=np.float32)) for q in queries],
            top_k=min(wanted, len(self._snapshot_ids)),
            n_ivf_probe=self._settings["n_ivf_probe"],
            n_full_scores=max(self._settings["n_full_scores"], wanted),
            show_progress=False,
            n_processes=1,
        )
        candidates = []
        for result in results:
            ids = (self._snapshot_ids[plaid_id] for plaid_id, _ in result)
            candidates.append([store.position(i) for i in ids if i not in self._stale])
        return candidates

    def save(self, directory: Path) -> dict[str, Any]:
        """Copy the snapshot into ``directory/plaid``; stale ids go to the manifest."""
        import json

        target = directory / _SNAPSHOT_DIR
        if self._snapshot_dir is None:
            shutil.rmtree(target, ignore_errors=True)
            (directory / _IDS_FILE).unlink(missing_ok=True)
            return {"snapshot": False}
        if self._snapshot_dir.resolve() != target.resolve():
            partial = directory / f".{_SNAPSHOT_DIR}.partial"
            shutil.rmtree(partial, ignore_errors=True)
            shutil.copytree(
                self._snapshot_dir, partial, ignore=shutil.ignore_patterns("plaid.lock")
            )
            shutil.rmtree(target, ignore_errors=True)
            partial.replace(target)
        ids_partial = directory / f".{_IDS_FILE}.partial"
        ids_partial.write_text(json.dumps(self._snapshot_ids), encoding="utf-8")
        ids_partial.replace(directory / _IDS_FILE)
        return {"snapshot": True, "stale": sorted(self._stale)}

    def close(self) -> None:
        """Release the snapshot and remove the temporary folder (if latecore made it)."""
        self._drop_snapshot()
        self._cleanup()

    def _open_snapshot(self, directory: Path, ids: list[str], *, owned: bool) -> None:
        plaid = self._search_module.FastPlaid(
            index=str(directory), device=self.device, low_memory=False
        )
        self._drop_snapshot()
        self._plaid = plaid
        self._snapshot_dir = directory
        self._owns_snapshot = owned
        self._snapshot_ids = ids
        self._in_snapshot = set(ids)

    def _drop_snapshot(self) -> None:
        if self._plaid is not None:
            self._plaid.close()
        if self._owns_snapshot and self._snapshot_dir is not None:
            shutil.rmtree(self._snapshot_dir, ignore_errors=True)
        self._plaid = None
        self._snapshot_dir = None
        self._owns_snapshot = False
        self._snapshot_ids = []
        self._in_snapshot = set()
