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
``index_folder`` (fast-plaid writes into the directory it loads), never the
saved directory itself.

fast-plaid is a dependency of pylate, so this backend needs no extra install;
it is imported only when the backend is chosen. fast-plaid's index files are
its own format (``.npy`` arrays and JSON); latecore writes no pickles.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..store import StoreView
from ..validation import check_count, check_optional_count, check_positive
from .snapshot import SnapshotBackend

if TYPE_CHECKING:
    from fast_plaid.search import FastPlaid

__all__ = ["PlaidBackend"]

logger = logging.getLogger(__name__)

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


class PlaidBackend(SnapshotBackend):
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
        four times faster at a small cost in recall (docs/benchmarks.md).
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
    saved_ignore = ("plaid.lock",)

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
        super().__init__(index_folder)
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

    @property
    def options(self) -> dict[str, Any]:
        """The search and build settings (saved with the index)."""
        return dict(self._settings)

    @property
    def snapshot_size(self) -> int:
        """Documents in the current PLAID snapshot (stale ones included)."""
        return self._passage_count

    def __repr__(self) -> str:
        return (
            f"PlaidBackend(snapshot={self.snapshot_size}, pending={self.pending}, "
            f"stale={self.stale})"
        )

    def needs_rebuild(self) -> bool:
        """Whether pending + stale documents exceed the rebuild threshold."""
        threshold = max(
            self._settings["rebuild_min"],
            self._settings["rebuild_fraction"] * self._passage_count,
        )
        return len(self._pending) + self.stale > threshold

    def needs_build(self, store: StoreView) -> bool:
        """:meth:`needs_rebuild` (also before the first snapshot: every document is pending)."""
        return self.needs_rebuild()

    # --- the engine calls -----------------------------------------------------------------

    def _create(self, directory: Path, vectors: list[np.ndarray]) -> FastPlaid:
        import torch
        from fast_plaid.search import fast_plaid as fast_plaid_module

        documents = [torch.from_numpy(np.ascontiguousarray(v, dtype=np.float16)) for v in vectors]
        plaid = self._search_module.FastPlaid(
            index=str(directory), device=self.device, low_memory=False
        )
        settings = self._settings
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
        return plaid

    def _open(self, directory: Path) -> FastPlaid:
        return self._search_module.FastPlaid(
            index=str(directory), device=self.device, low_memory=False
        )

    def _free(self, engine: FastPlaid) -> None:
        engine.close()

    def _check_saved(self, directory: Path, store: StoreView) -> None:
        if not (directory / "metadata.json").is_file():
            raise OSError("metadata.json is missing")

    def _query(
        self, engine: FastPlaid, queries: Sequence[np.ndarray], k: int, subset: np.ndarray | None
    ) -> list[list[int]]:
        import torch

        wanted = self._settings["n_candidates"] or max(4 * k, 100)
        wanted += min(self.stale, wanted)
        available = self._passage_count if subset is None else len(subset)
        results = engine.search(
            queries_embeddings=[torch.from_numpy(np.asarray(q, dtype=np.float32)) for q in queries],
            top_k=min(wanted, available),
            subset=None if subset is None else subset.tolist(),
            n_ivf_probe=self._settings["n_ivf_probe"],
            n_full_scores=max(self._settings["n_full_scores"], wanted),
            show_progress=False,
            n_processes=1,
        )
        return [[int(plaid_id) for plaid_id, _ in result] for result in results]
