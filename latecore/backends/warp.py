"""The ``warp`` backend: WARP candidates (xtr-warp-rs), exact MaxSim re-scoring.

WARP (Scheerer et al., 2025) is a PLAID-style engine for late interaction:
k-means centroids over the token vectors, each token stored as a centroid id
plus a few-bit residual, and queries answered from the clusters nearest to
their tokens. Its own scores are approximate (not MaxSim), so latecore uses it
only to pick candidates: the best ``n_candidates`` WARP results of a query are
re-scored by exact MaxSim over the vectors the LateIndex stores, and the
returned scores equal ``exact``'s for those documents.

Life cycle:

- below ``build_min`` documents (or 1,024 token vectors) nothing is built:
  every search is exact;
- the first search at or past ``build_min`` documents (or
  :meth:`~latecore.index.LateIndex.build`) builds a WARP index of every stored
  document (k-means dominates the time: see ``num_partitions``);
- after that, new documents go to WARP's incremental ``add`` (they keep the
  centroids of the build), replaced ones to its in-place ``update`` and deleted
  ones become tombstones (WARP compacts itself past ``compact_threshold``);
- documents WARP does not hold (before the first build, or after a failed
  ``add``) are *pending*: each query scores them exactly and merges them in,
  so none is ever missing from results;
- once the index holds ``rebuild_growth`` times the documents of the last
  build, or more than ``build_min`` are pending, the next search rebuilds.

The index lives in ``index_folder`` (default: a temporary directory removed by
:meth:`WarpBackend.close` or at exit). :meth:`~latecore.index.LateIndex.save`
copies it to ``warp/`` in the saved directory, with the passage-id -> latecore-id
mapping as JSON; :meth:`~latecore.index.LateIndex.load` checks those files
against the saved manifest (sizes, ``.npy`` headers, digests: a damaged or
tampered file makes it rebuild WARP from the stored vectors, never crash),
hard-links them into ``index_folder`` (copies them across file systems), searches
them there, and copies them before its first change, so a saved directory is
never modified.

xtr-warp-rs' searcher belongs to the thread that loaded it (a pyo3 ``unsendable``
class: it panics when used from another thread), so every call that creates,
uses or frees it runs on one engine thread the backend owns
(:mod:`latecore.backends._engine_thread`); any thread may search the index.
xtr-warp-rs writes ``.npy`` arrays and JSON;
latecore gives it no metadata (so no ``metadata.duckdb``) and pickles nothing.

Requires ``pip install 'latecore[warp]'`` (xtr-warp-rs; imported only when the
backend is chosen).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import threading
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..base_encoder import progress_enabled
from ..store import StoreView
from ..validation import check_count, check_optional_count, check_positive
from ._engine_thread import EngineThread, on_engine_thread
from .snapshot import SnapshotBackend

if TYPE_CHECKING:
    import torch
    from xtr_warp.search import XTRWarp

__all__ = ["WarpBackend", "default_partitions"]

logger = logging.getLogger(__name__)

_POINTS_PER_CENTROID = 64
"""Token vectors per centroid that the default k-means document sample aims at."""
_NO_CENTROID_GROWTH = 2**62
"""``min_outliers`` for WARP's ``add``: its centroid expansion leaves an index that
finds nothing until compacted (xtr-warp-rs 2.1.0.2110), so it is never triggered."""
_MIN_BUILD_TOKENS = 1024
"""No WARP index over fewer token vectors: xtr-warp-rs' residual codec training
panics on a handful, and scoring so few exactly takes microseconds."""
_WARP_LOGGERS = ("search", "kmeans", "index_maintenance", "device_planner", "filtering")


def _import_xtr_warp() -> type[XTRWarp]:
    """``XTRWarp``, without the root logging handler ``xtr_warp.search`` installs on import."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        import xtr_warp  # noqa: F401  (a missing package fails here, even if .search was cached)
        from xtr_warp.search import XTRWarp
    except ImportError as error:
        raise ImportError(
            "the 'warp' backend needs xtr-warp-rs, which is not installed: "
            "pip install 'latecore[warp]'"
        ) from error
    finally:
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)
        root.setLevel(level)
    return XTRWarp


class _WarpChatter(logging.Filter):
    """One thread's xtr-warp notes (k-means plan, compaction) to latecore's log at DEBUG."""

    def __init__(self) -> None:
        super().__init__()
        self.thread = threading.get_ident()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.thread != self.thread or record.levelno >= logging.ERROR:
            return True
        logger.debug("%s: %s", record.name, record.getMessage())
        return False


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    chatter = _WarpChatter()
    loggers = [logging.getLogger(f"xtr_warp.{name}") for name in _WARP_LOGGERS]
    for each in loggers:
        each.addFilter(chatter)
    try:
        yield
    finally:
        for each in loggers:
            each.removeFilter(chatter)


def default_partitions(n_tokens: int) -> int:
    """The default number of WARP centroids for ``n_tokens`` token vectors.

    ``2 ** floor(log2(4 * sqrt(n_tokens)))``: a quarter of xtr-warp-rs' own
    default, which builds about four times faster at a small cost in recall
    (8,192 centroids for 8M tokens, about 100k passages).

    Examples
    --------
    >>> default_partitions(8_000_000), default_partitions(8_000), default_partitions(1)
    (8192, 256, 4)
    """
    return 2 ** math.floor(math.log2(4 * math.sqrt(max(n_tokens, 1))))


def _kmeans_plan(
    lengths: np.ndarray, num_partitions: int | None, n_samples: int | None
) -> tuple[int, int]:
    """``(num_partitions, n_samples_kmeans)`` for documents of ``lengths`` tokens.

    The document sample defaults to about :data:`_POINTS_PER_CENTROID` tokens per
    centroid; the centroids never outnumber the tokens of the shortest documents
    the sample could draw.
    """
    partitions = num_partitions or default_partitions(int(lengths.sum()))
    if n_samples is None:
        wanted = _POINTS_PER_CENTROID * partitions / float(lengths.mean())
        n_samples = math.ceil(wanted)
    n_samples = min(n_samples, len(lengths))
    fewest_tokens = int(np.sort(lengths)[:n_samples].sum())
    return max(1, min(partitions, fewest_tokens)), n_samples


def _free(warp: XTRWarp) -> None:
    warp.free()


def _tensors(vectors: Sequence[np.ndarray]) -> list[torch.Tensor]:
    """Token vectors as torch tensors (float16 or float32; no copy where possible)."""
    import torch

    tensors = []
    for v in vectors:
        dtype = v.dtype if v.dtype in (np.float16, np.float32) else np.float32
        tensors.append(torch.from_numpy(np.require(v, dtype=dtype, requirements=("C", "W"))))
    return tensors


class WarpBackend(SnapshotBackend):
    """WARP candidate generation (xtr-warp-rs) over a LateIndex; exact MaxSim final scores.

    Parameters
    ----------
    index_folder
        Where WARP indexes are built; default a temporary directory.
    n_candidates
        WARP results re-scored exactly per query (at least ``k``). WARP's own
        ranking is approximate: re-scoring more of it is the cheap way to
        recall.
    nprobe
        Centroids probed per query token: more finds more of the exact top 10
        and costs time. The defaults of both come from the 100k benchmark, whose
        recall and latency curve is in docs/benchmarks.md.
    num_threads
        Threads of one WARP search on a CPU.
    t_prime, bound, max_candidates
        WARP search settings; ``None`` lets xtr-warp-rs derive them from the
        index density.
    num_partitions
        Number of centroids; default :func:`default_partitions` of the stored
        token count, never more than the k-means sample's tokens.
    kmeans_niters, nbits, n_samples_kmeans, seed
        Build settings: k-means iterations, residual bits (2 or 4), documents
        sampled for k-means (default: about 64 tokens per centroid) and the seed.
    build_min
        Below this many documents nothing is built and search is exact; also the
        most pending documents tolerated before the next search rebuilds.
    rebuild_growth
        Rebuild at the next search once the index holds this many times the
        documents of the last build (the centroids were chosen for that size);
        ``None``: never.
    compact_threshold
        Fraction of tombstoned passages at which WARP compacts itself; ``None``: never.
    device
        ``"cpu"`` (default) or ``"cuda"`` (``"cuda:1"``, ...).

    Raises
    ------
    ImportError
        If xtr-warp-rs is not installed (``pip install 'latecore[warp]'``).
    ValueError
        If an option is out of range.

    Examples
    --------
    >>> from latecore import LateIndex
    >>> from latecore.testing import FakeEncoder
    >>> index = LateIndex(FakeEncoder(), backend="warp")
    >>> index.add(["paris is in france", "berlin is in germany"], ids=["p", "b"])
    ['p', 'b']
    >>> [hit.id for hit in index.search("where is berlin", k=1)]  # below build_min: exact
    ['b']
    >>> index.close()
    """

    name = "warp"
    incremental = True
    min_build_tokens = _MIN_BUILD_TOKENS
    link_saved = True  # xtr-warp-rs writes new files (add, compaction), never in place

    def __init__(
        self,
        *,
        index_folder: str | Path | None = None,
        n_candidates: int = 400,
        nprobe: int = 8,
        num_threads: int = 1,
        t_prime: int | None = None,
        bound: int | None = None,
        max_candidates: int | None = None,
        num_partitions: int | None = None,
        kmeans_niters: int = 4,
        nbits: int = 4,
        n_samples_kmeans: int | None = None,
        seed: int = 42,
        build_min: int = 1000,
        rebuild_growth: float | None = 2.0,
        compact_threshold: float | None = 0.2,
        device: str = "cpu",
    ) -> None:
        counts = {
            "n_candidates": n_candidates,
            "nprobe": nprobe,
            "num_threads": num_threads,
            "kmeans_niters": kmeans_niters,
        }
        for name, count in counts.items():
            check_positive(count, name)
        optional = {
            "t_prime": t_prime,
            "bound": bound,
            "max_candidates": max_candidates,
            "num_partitions": num_partitions,
            "n_samples_kmeans": n_samples_kmeans,
        }
        for name, value in optional.items():
            check_optional_count(value, name, minimum=1)
        check_count(seed, "seed")
        check_count(build_min, "build_min")
        if nbits not in (2, 4):
            raise ValueError(f"nbits must be 2 or 4, got {nbits!r}")
        if rebuild_growth is not None and not rebuild_growth > 1:
            raise ValueError(f"rebuild_growth must be above 1 or None, got {rebuild_growth!r}")
        if compact_threshold is not None and not 0 < compact_threshold <= 1:
            raise ValueError(
                f"compact_threshold must be in (0, 1] or None, got {compact_threshold!r}"
            )
        if not isinstance(device, str) or device.split(":")[0] not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda' ('cuda:N'), got {device!r}")
        self._warp_class = _import_xtr_warp()
        self._engine_thread: EngineThread[XTRWarp] = EngineThread("latecore-warp", _free)
        weakref.finalize(self, self._engine_thread.close)
        super().__init__(index_folder)
        self._settings: dict[str, Any] = {
            "n_candidates": n_candidates,
            "nprobe": nprobe,
            "num_threads": num_threads,
            "t_prime": t_prime,
            "bound": bound,
            "max_candidates": max_candidates,
            "num_partitions": num_partitions,
            "kmeans_niters": kmeans_niters,
            "nbits": nbits,
            "n_samples_kmeans": n_samples_kmeans,
            "seed": seed,
            "build_min": build_min,
            "rebuild_growth": rebuild_growth,
            "compact_threshold": compact_threshold,
        }
        self.device = device

    @property
    def options(self) -> dict[str, Any]:
        """The search and build settings (saved with the index; not the folder or device)."""
        return dict(self._settings)

    def __repr__(self) -> str:
        return f"WarpBackend(indexed={self.indexed}, pending={self.pending})"

    @property
    def _handle(self) -> XTRWarp | None:
        """The loaded WARP index, held by the engine thread (only it may use or free it)."""
        return self._engine_thread.handle

    @_handle.setter
    def _handle(self, warp: XTRWarp | None) -> None:
        self._engine_thread.handle = warp

    def close(self) -> None:
        """Free the WARP index, stop its thread, remove the temporary folder (if made)."""
        super().close()
        self._engine_thread.close()

    def needs_build(self, store: StoreView) -> bool:
        """Whether the next search (re)builds: see the module's life cycle."""
        settings = self._settings
        if not self.built:
            return len(store) >= settings["build_min"] and store.n_tokens >= _MIN_BUILD_TOKENS
        growth = settings["rebuild_growth"]
        grown = growth is not None and len(store) >= growth * max(self._built_size, 1)
        return grown or len(self._pending) > settings["build_min"]

    # --- the engine calls -----------------------------------------------------------------

    @on_engine_thread
    def _create(self, directory: Path, vectors: list[np.ndarray]) -> XTRWarp:
        lengths = np.array([v.shape[0] for v in vectors], dtype=np.int64)
        settings = self._settings
        partitions, samples = _kmeans_plan(
            lengths, settings["num_partitions"], settings["n_samples_kmeans"]
        )
        logger.info("WARP: %d centroids, k-means on %d documents", partitions, samples)
        warp = self._warp_class(str(directory), device=self.device)
        try:
            with _quiet():
                warp.create(
                    _tensors(vectors),
                    device=self.device,
                    kmeans_niters=settings["kmeans_niters"],
                    nbits=settings["nbits"],
                    n_samples_kmeans=samples,
                    seed=settings["seed"],
                    num_partitions=partitions,
                    show_progress=progress_enabled(None),
                )
                self._load(warp)
        except BaseException:
            warp.free()
            raise
        return warp

    @on_engine_thread
    def _open(self, directory: Path) -> XTRWarp:
        warp = self._warp_class(str(directory), device=self.device)
        with _quiet():
            self._load(warp)
        return warp

    def _load(self, warp: XTRWarp) -> None:
        warp.load(device=self.device, mmap=self.device == "cpu")

    @on_engine_thread
    def _free(self, engine: XTRWarp) -> None:
        engine.free()

    def _check_saved(self, directory: Path, store: StoreView) -> None:
        metadata = json.loads((directory / "metadata.json").read_text(encoding="utf-8"))
        if len(store) and metadata.get("dim") != store.dim:
            raise ValueError(f"dimension {metadata.get('dim')} is not {store.dim}")

    @on_engine_thread
    def _insert(self, engine: XTRWarp, vectors: list[np.ndarray]) -> list[int]:
        with _quiet():
            pids = engine.add(
                _tensors(vectors),
                min_outliers=_NO_CENTROID_GROWTH,
                show_progress=progress_enabled(None),
            )
        return [int(p) for p in pids]

    @on_engine_thread
    def _replace(self, engine: XTRWarp, pids: list[int], vectors: list[np.ndarray]) -> None:
        with _quiet():
            engine.update(pids, _tensors(vectors), show_progress=progress_enabled(None))

    @on_engine_thread
    def _remove(self, engine: XTRWarp, pids: list[int]) -> None:
        with _quiet():
            engine.delete(pids, self._settings["compact_threshold"])

    @on_engine_thread
    def _query(
        self, engine: XTRWarp, queries: Sequence[np.ndarray], k: int, subset: np.ndarray | None
    ) -> list[list[int]]:
        """WARP's best ``max(n_candidates, k)`` passage ids for each query (within ``subset``:
        xtr-warp-rs's own restriction of the search to those passages).

        Queries of one length are searched together (a batch pads shorter
        queries with zero vectors, which would change WARP's estimates).
        """
        import torch

        settings = self._settings
        by_length: dict[int, list[int]] = {}
        for n, query in enumerate(queries):
            by_length.setdefault(int(query.shape[0]), []).append(n)
        candidates: list[list[int]] = [[] for _ in queries]
        for members in by_length.values():
            batch = np.stack([np.asarray(queries[n], dtype=np.float32) for n in members])
            with _quiet():
                results = engine.search(
                    torch.from_numpy(batch),
                    top_k=max(settings["n_candidates"], k),
                    num_threads=settings["num_threads"],
                    nprobe=settings["nprobe"],
                    t_prime=settings["t_prime"],
                    bound=settings["bound"],
                    max_candidates=settings["max_candidates"],
                    subset=None if subset is None else subset.tolist(),
                    show_progress=False,
                )
            for n, result in zip(members, results, strict=True):
                candidates[n] = [int(pid) for pid, _ in result]
        return candidates
