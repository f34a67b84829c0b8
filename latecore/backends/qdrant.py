"""The ``qdrant`` backend: Qdrant's engine proposes candidates, MUVERA first, MaxSim second.

Each document is one Qdrant point with two named vectors and a payload:

- ``"muvera"``: the document's MUVERA encoding (:mod:`latecore.muvera`, 5,120
  dimensions by default), dot product, float16, searched through an HNSW graph;
- ``"colbert"``: its token vectors as one multivector (MaxSim comparator, dot
  product, float16 by default) with HNSW *disabled* (``m=0``: a graph under a
  MaxSim distance takes hours to build and is not needed here);
- payload ``latecore_id``, ``text``, ``metadata`` and ``digest`` (a hash of
  vectors, text, metadata and MUVERA settings, used to re-synchronise).

Point ids are ``uuid5(LATECORE_NAMESPACE, id)`` (:func:`point_id`): Qdrant
accepts only integers and UUIDs. A query is one request: the engine takes the
best ``prefetch`` points by the query's MUVERA encoding on ``"muvera"``, scores
those by MaxSim on ``"colbert"`` and returns the best ``n_candidates``; they are
then re-scored by exact MaxSim (:meth:`~latecore.store.StoreView.rank`), so the
scores equal ``exact``'s (``rescore=False`` keeps the engine's float16 MaxSim).
A collection of at most ``prefetch`` points skips the first stage: every point
is scored by MaxSim in the engine, and the result is ``exact``'s top ``k``.

Where the collection lives (one schema for both engines):

- ``path=``: an embedded `qdrant-edge <https://pypi.org/project/qdrant-edge-py/>`_
  shard in that directory, created on the first documents and reopened with
  ``EdgeShard.load`` (one process at a time: the shard locks its write-ahead log);
- nothing: an embedded shard in a temporary directory, removed by
  :meth:`QdrantBackend.close` or at exit (a saved index then re-indexes its
  documents into a new one on load);
- ``url=`` (``api_key=`` or ``$QDRANT_API_KEY``, ``prefer_grpc``, ``timeout``):
  a Qdrant server or cluster through qdrant-client;
- ``client=``: a ``QdrantClient`` of yours (neither saved nor closed).

Indexing. An embedded shard builds its HNSW graph only in
:meth:`QdrantBackend.build` (``LateIndex.build()``), which blocks, and
automatically at the end of an :meth:`~QdrantBackend.add` once
``optimize_after`` points were written since the last build. Points written
since then sit in an unindexed segment that every query scans in full, so
searches are correct at any time, only slower. A server indexes in the
background; ``build`` waits for it.

Saving and loading. :meth:`~latecore.index.LateIndex.save` records the
connection (never an API key) and the settings, MUVERA's included, so a loaded
index encodes queries as its documents were. :meth:`~latecore.index.LateIndex.load`
reopens the collection and re-synchronises it with the saved documents by
digest: missing or changed points are upserted, unknown ones deleted (the
collection belongs to the index). When the index keeps its token vectors only
in the engine (``store.holds_vectors`` is ``False``), only unknown points can
be repaired: a document the engine lost is an
:class:`~latecore.errors.IndexFormatError`.

Indexes saved by latecore before qdrant-edge (qdrant-client's local mode): an
in-memory collection is re-indexed into a temporary shard on load; a local
collection directory cannot be read by qdrant-edge, and loading names the way
out: ``LateIndex.load(saved, encoder, path="<new dir>")`` re-indexes from the
saved vectors.

Requires ``pip install 'latecore[qdrant]'``. Nothing is pickled: the shard is
qdrant-edge's own format (JSON, memory-mapped arrays, its write-ahead log).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
import uuid
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .._validation import check_dtype, check_optional_count, check_positive
from ..encoder import progress_enabled
from ..errors import IndexFormatError
from ..muvera import MUVERA_DEFAULTS, Muvera
from ..store import StoreView
from .base import Backend, Ranking, SavedState, changed_positions, document_digest

__all__ = ["LATECORE_NAMESPACE", "QdrantBackend", "point_id"]

logger = logging.getLogger(__name__)

LATECORE_NAMESPACE = uuid.UUID("5b0f7a4e-3c1d-5e8a-9f60-6c6174656372")
"""UUID namespace of latecore's Qdrant point ids."""

MUVERA_VECTOR = "muvera"
COLBERT_VECTOR = "colbert"
_EDGE_CONFIG = "edge_config.json"
_CONNECTION_KEYS = frozenset({"url", "path", "location", "client", "prefer_grpc", "timeout"})
_EXTRA_HINT = "pip install 'latecore[qdrant]'"
_RETRIEVE_BATCH = 256


def point_id(doc_id: str) -> str:
    """The Qdrant point id (a UUID5) of a latecore document id.

    Examples
    --------
    >>> point_id("doc-1") == point_id("doc-1") != point_id("doc-2")
    True
    >>> len(point_id("doc-1"))
    36
    """
    return str(uuid.uuid5(LATECORE_NAMESPACE, doc_id))


def _digest(
    vectors: np.ndarray, text: str, metadata: Mapping[str, Any], muvera: Mapping[str, int]
) -> str:
    """:func:`~latecore.backends.base.document_digest`, salted with the MUVERA settings."""
    salt = json.dumps(dict(muvera), sort_keys=True).encode("utf-8")
    return document_digest(vectors, text, metadata, salt)


def _import_edge() -> Any:
    try:
        import qdrant_edge
    except ImportError as error:
        raise ImportError(
            "the 'qdrant' backend's embedded engine needs qdrant-edge-py, which is not "
            f"installed: {_EXTRA_HINT}"
        ) from error
    return qdrant_edge


def _import_client() -> tuple[Any, Any]:
    try:
        from qdrant_client import QdrantClient, models
    except ImportError as error:
        raise ImportError(
            "the 'qdrant' backend needs qdrant-client to reach a Qdrant server, which is not "
            f"installed: {_EXTRA_HINT}"
        ) from error
    return QdrantClient, models


def _is_local_mode_storage(path: Path) -> bool:
    """Whether ``path`` holds qdrant-client local-mode storage (which qdrant-edge cannot read)."""
    return (path / "meta.json").is_file() or any(path.glob("collection/*/storage.sqlite"))


def _migration_error(path: Path) -> IndexFormatError:
    return IndexFormatError(
        f"the Qdrant collection in {path} was written by qdrant-client's local mode, which "
        "latecore no longer uses and qdrant-edge cannot read. Re-index it from the vectors "
        "saved with the index (nothing is lost): "
        'LateIndex.load(saved_index, encoder, path="<a new directory>")'
    )


class _Points:
    """One upsert batch: point ids, FDEs, token vectors and payloads."""

    def __init__(
        self,
        ids: list[str],
        fdes: np.ndarray,
        vectors: list[np.ndarray],
        payloads: list[dict[str, Any]],
    ) -> None:
        self.ids, self.fdes, self.vectors, self.payloads = ids, fdes, vectors, payloads


class _Engine:
    """What the backend needs from a Qdrant engine (embedded shard or server)."""

    kind: str

    def exists(self) -> bool:
        raise NotImplementedError

    def count(self) -> int:
        raise NotImplementedError

    def ensure(self, dim: int, fde_dim: int) -> None:
        """Create the collection for these dimensions, or check the existing one's."""
        raise NotImplementedError

    def drop(self) -> None:
        raise NotImplementedError

    def upsert(self, points: _Points) -> None:
        raise NotImplementedError

    def delete(self, point_ids: list[str]) -> None:
        raise NotImplementedError

    def digests(self) -> Iterator[tuple[str, object, object]]:
        """(point id, latecore id, digest) of every point."""
        raise NotImplementedError

    def vectors(self, point_ids: list[str]) -> dict[str, list[list[float]]]:
        """The ``"colbert"`` multivectors of those points that exist."""
        raise NotImplementedError

    def query(
        self,
        fdes: np.ndarray | None,
        queries: Sequence[np.ndarray],
        prefetch: int,
        limit: int,
        hnsw_ef: int | None,
    ) -> list[list[tuple[object, float]]]:
        """(latecore id, engine MaxSim) of the best ``limit`` points per query."""
        raise NotImplementedError

    def optimize(self) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        """Make every acknowledged write durable (nothing to do for a server)."""

    def close(self) -> None:
        raise NotImplementedError


class _EdgeShardHolder:
    """The open shard and the temporary directory, closed by a finalizer if not before."""

    def __init__(self, root: Path, temporary: bool) -> None:
        self.root = root
        self.temporary = temporary
        self.shard: Any = None

    def release(self) -> None:
        if self.shard is not None:
            self.shard.close()
            self.shard = None
        if self.temporary:
            shutil.rmtree(self.root, ignore_errors=True)


class _EdgeEngine(_Engine):
    """An embedded qdrant-edge shard in a directory."""

    kind = "edge"

    def __init__(self, path: Path | None, settings: Mapping[str, Any]) -> None:
        self._qe = _import_edge()
        self._settings = settings
        if path is None:
            root = Path(tempfile.mkdtemp(prefix="latecore-qdrant-"))
        else:
            root = path
            if root.exists() and not root.is_dir():
                raise ValueError(f"{root} is not a directory; give a directory for the shard")
            if _is_local_mode_storage(root):
                raise _migration_error(root)
            if root.is_dir() and any(root.iterdir()) and not (root / _EDGE_CONFIG).is_file():
                raise ValueError(
                    f"{root} is neither empty nor a qdrant-edge shard; choose another path"
                )
        self._holder = _EdgeShardHolder(root, temporary=path is None)
        self._finalizer = weakref.finalize(self, self._holder.release)
        if (root / _EDGE_CONFIG).is_file():
            try:
                self._holder.shard = self._qe.EdgeShard.load(str(root))
            except Exception as error:  # qdrant-edge raises plain Exceptions
                if "WouldBlock" not in str(error):
                    raise
                raise RuntimeError(
                    f"the qdrant-edge shard at {root} is open elsewhere (one index in one "
                    "process at a time); close that index first"
                ) from error

    @property
    def root(self) -> Path:
        return self._holder.root

    @property
    def _shard(self) -> Any:
        return self._holder.shard

    def exists(self) -> bool:
        return self._shard is not None

    def count(self) -> int:
        return int(self._shard.count(self._qe.CountRequest(exact=True))) if self.exists() else 0

    def _config(self, dim: int, fde_dim: int) -> Any:
        qe, settings = self._qe, self._settings
        datatype = (
            qe.VectorStorageDatatype.Float16
            if settings["datatype"] == "float16"
            else qe.VectorStorageDatatype.Float32
        )
        graph = qe.HnswIndexConfig(
            m=settings["hnsw_m"],
            ef_construct=settings["hnsw_ef_construct"],
            full_scan_threshold=10_000,
        )
        return qe.EdgeConfig(
            vectors={
                MUVERA_VECTOR: qe.EdgeVectorParams(
                    size=fde_dim,
                    distance=qe.Distance.Dot,
                    datatype=qe.VectorStorageDatatype.Float16,
                    hnsw_config=graph,
                ),
                COLBERT_VECTOR: qe.EdgeVectorParams(
                    size=dim,
                    distance=qe.Distance.Dot,
                    datatype=datatype,
                    multivector_config=qe.MultiVectorConfig(qe.MultiVectorComparator.MaxSim),
                    hnsw_config=qe.HnswIndexConfig(m=0, ef_construct=4, full_scan_threshold=10_000),
                ),
            },
            # Any segment is worth a graph once build() asks for one.
            optimizers=qe.EdgeOptimizersConfig(indexing_threshold=1),
        )

    def ensure(self, dim: int, fde_dim: int) -> None:
        if self.exists():
            _check_sizes(self.root, _edge_sizes(self.root), dim, fde_dim)
            return
        self._holder.shard = self._qe.EdgeShard.create(str(self.root), self._config(dim, fde_dim))

    def drop(self) -> None:
        if not self.exists():
            return
        self._shard.close()
        self._holder.shard = None
        # Only a directory that is a shard (checked when it was opened) is emptied.
        for child in self.root.iterdir():
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()

    def upsert(self, points: _Points) -> None:
        qe = self._qe
        batch = [
            qe.Point(pid, {MUVERA_VECTOR: fde, COLBERT_VECTOR: vectors}, payload)
            for pid, fde, vectors, payload in zip(
                points.ids, points.fdes, points.vectors, points.payloads, strict=True
            )
        ]
        self._shard.update(qe.UpdateOperation.upsert_points(batch))

    def delete(self, point_ids: list[str]) -> None:
        if point_ids and self.exists():
            self._shard.update(self._qe.UpdateOperation.delete_points(point_ids))

    def digests(self) -> Iterator[tuple[str, object, object]]:
        if not self.exists():
            return
        offset = None
        while True:
            request = self._qe.ScrollRequest(
                offset=offset, limit=1024, with_payload=["latecore_id", "digest"], with_vector=False
            )
            records, offset = self._shard.scroll(request)
            for record in records:
                payload = record.payload or {}
                yield str(record.id), payload.get("latecore_id"), payload.get("digest")
            if offset is None:
                return

    def vectors(self, point_ids: list[str]) -> dict[str, list[list[float]]]:
        # qdrant-edge 0.9's stub names with_payload as a keyword; it is positional.
        records = self._shard.retrieve(point_ids, False, [COLBERT_VECTOR])
        return {
            str(r.id): r.vector[COLBERT_VECTOR]
            for r in records
            if r.vector and COLBERT_VECTOR in r.vector
        }

    def query(
        self,
        fdes: np.ndarray | None,
        queries: Sequence[np.ndarray],
        prefetch: int,
        limit: int,
        hnsw_ef: int | None,
    ) -> list[list[tuple[object, float]]]:
        qe = self._qe
        params = qe.SearchParams(hnsw_ef=hnsw_ef) if hnsw_ef else None
        requests = []
        for i, query in enumerate(queries):
            stages = None
            if fdes is not None:
                first = qe.Query.Nearest(fdes[i], using=MUVERA_VECTOR)
                stages = [qe.Prefetch(limit=prefetch, query=first, params=params)]
            requests.append(
                qe.QueryRequest(
                    limit=limit,
                    query=qe.Query.Nearest(np.asarray(query, np.float32), using=COLBERT_VECTOR),
                    prefetches=stages,
                    with_payload=["latecore_id"],
                )
            )
        responses = self._shard.query_batch(qe.QueryBatchRequest(requests))
        return [[((p.payload or {}).get("latecore_id"), p.score) for p in r] for r in responses]

    def optimize(self) -> None:
        if self.exists():
            self._shard.optimize()

    def flush(self) -> None:
        if self.exists():
            self._shard.flush()

    def close(self) -> None:
        self._finalizer()


def _edge_sizes(root: Path) -> dict[str, int]:
    config = json.loads((root / _EDGE_CONFIG).read_text(encoding="utf-8"))
    return {name: int(params["size"]) for name, params in config.get("vectors", {}).items()}


def _check_sizes(where: object, sizes: Mapping[str, int | None], dim: int, fde_dim: int) -> None:
    wanted = {MUVERA_VECTOR: fde_dim, COLBERT_VECTOR: dim}
    if {name: sizes.get(name) for name in wanted} != wanted:
        raise ValueError(
            f"the Qdrant collection at {where} holds vectors {dict(sizes)}, but this index "
            f"needs {wanted} (token dimension {dim}, MUVERA settings giving {fde_dim}); choose "
            "another path or collection_name, or pass recreate=True to replace it"
        )


class _ServerEngine(_Engine):
    """A collection on a Qdrant server or cluster, through qdrant-client."""

    kind = "server"

    def __init__(self, client: Any, models: Any, settings: Mapping[str, Any], *, owned: bool):
        self.client = client
        self._models = models
        self._settings = settings
        self._owned = owned
        self._closed = False

    @property
    def _name(self) -> str:
        return str(self._settings["collection_name"])

    def exists(self) -> bool:
        return bool(self.client.collection_exists(self._name))

    def count(self) -> int:
        return int(self.client.count(self._name, exact=True).count) if self.exists() else 0

    def ensure(self, dim: int, fde_dim: int) -> None:
        models, settings = self._models, self._settings
        if self.exists():
            params = self.client.get_collection(self._name).config.params.vectors
            sizes = (
                {name: getattr(p, "size", None) for name, p in params.items()}
                if isinstance(params, Mapping)
                else {}
            )
            _check_sizes(f"collection {self._name!r}", sizes, dim, fde_dim)
            return
        datatype = (
            models.Datatype.FLOAT16
            if settings["datatype"] == "float16"
            else models.Datatype.FLOAT32
        )
        self.client.create_collection(
            self._name,
            vectors_config={
                MUVERA_VECTOR: models.VectorParams(
                    size=fde_dim,
                    distance=models.Distance.DOT,
                    datatype=models.Datatype.FLOAT16,
                    hnsw_config=models.HnswConfigDiff(
                        m=settings["hnsw_m"], ef_construct=settings["hnsw_ef_construct"]
                    ),
                ),
                COLBERT_VECTOR: models.VectorParams(
                    size=dim,
                    distance=models.Distance.DOT,
                    datatype=datatype,
                    multivector_config=models.MultiVectorConfig(
                        comparator=models.MultiVectorComparator.MAX_SIM
                    ),
                    hnsw_config=models.HnswConfigDiff(m=0),
                ),
            },
        )

    def drop(self) -> None:
        if self.exists():
            self.client.delete_collection(self._name)

    def upsert(self, points: _Points) -> None:
        models = self._models
        structs = [
            models.PointStruct(
                id=pid,
                vector={
                    MUVERA_VECTOR: np.asarray(fde, dtype=np.float32).tolist(),
                    COLBERT_VECTOR: np.asarray(vectors, dtype=np.float32).tolist(),
                },
                payload=payload,
            )
            for pid, fde, vectors, payload in zip(
                points.ids, points.fdes, points.vectors, points.payloads, strict=True
            )
        ]
        self.client.upsert(self._name, points=structs, wait=True)

    def delete(self, point_ids: list[str]) -> None:
        if point_ids and self.exists():
            selector = self._models.PointIdsList(points=point_ids)
            self.client.delete(self._name, points_selector=selector, wait=True)

    def digests(self) -> Iterator[tuple[str, object, object]]:
        if not self.exists():
            return
        offset = None
        while True:
            records, offset = self.client.scroll(
                self._name,
                limit=1024,
                offset=offset,
                with_payload=["latecore_id", "digest"],
                with_vectors=False,
            )
            for record in records:
                payload = record.payload or {}
                yield str(record.id), payload.get("latecore_id"), payload.get("digest")
            if offset is None:
                return

    def vectors(self, point_ids: list[str]) -> dict[str, list[list[float]]]:
        records = self.client.retrieve(
            self._name, ids=point_ids, with_payload=False, with_vectors=[COLBERT_VECTOR]
        )
        return {
            str(r.id): r.vector[COLBERT_VECTOR]
            for r in records
            if isinstance(r.vector, Mapping) and COLBERT_VECTOR in r.vector
        }

    def query(
        self,
        fdes: np.ndarray | None,
        queries: Sequence[np.ndarray],
        prefetch: int,
        limit: int,
        hnsw_ef: int | None,
    ) -> list[list[tuple[object, float]]]:
        models = self._models
        params = models.SearchParams(hnsw_ef=hnsw_ef) if hnsw_ef else None
        requests = [
            models.QueryRequest(
                query=np.asarray(query, dtype=np.float32).tolist(),
                using=COLBERT_VECTOR,
                prefetch=None
                if fdes is None
                else models.Prefetch(
                    query=fdes[i].tolist(), using=MUVERA_VECTOR, limit=prefetch, params=params
                ),
                limit=limit,
                with_payload=["latecore_id"],
            )
            for i, query in enumerate(queries)
        ]
        responses = self.client.query_batch_points(self._name, requests=requests)
        return [
            [((p.payload or {}).get("latecore_id"), p.score) for p in response.points]
            for response in responses
        ]

    def optimize(self) -> None:
        """Wait (up to ten minutes) until the server has indexed the collection."""
        green = self._models.CollectionStatus.GREEN
        deadline = time.monotonic() + 600
        while self.exists() and self.client.get_collection(self._name).status != green:
            if time.monotonic() > deadline:
                logger.warning("Qdrant collection %r is still being indexed", self._name)
                return
            time.sleep(0.5)

    def close(self) -> None:
        if not self._closed and self._owned:
            self.client.close()
        self._closed = True


class QdrantBackend(Backend):
    """Candidates from Qdrant (MUVERA prefetch, MaxSim in the engine); exact MaxSim scores.

    Parameters
    ----------
    path
        Directory of an embedded qdrant-edge shard (created if empty or
        missing, reopened if it holds one). Default: a temporary directory.
    url, api_key, prefer_grpc, timeout
        A Qdrant server or cluster instead (``api_key`` defaults to ``$QDRANT_API_KEY``).
    client
        A ready ``QdrantClient`` instead (it is not closed by :meth:`close`, nor saved).
    collection_name
        The server collection this index owns (an embedded shard is one collection).
    prefetch
        Points taken by MUVERA similarity (HNSW) and scored by MaxSim in the
        engine, per query. More finds more of the exact top ``k``, at a cost
        linear in it; a collection of at most ``prefetch`` points is scored in full.
        ``benchmarks/bench_backends.py``, 100k documents, 2 CPU cores:
        2,000 -> 82%, 5,000 -> 91%, 10,000 -> 94%, 15,000 -> 96% (the
        default), 20,000 -> 97% of the exact top 10 at 56, 106, 226-249, 372
        and ~540 ms per query, against 425-450 ms for exact MaxSim.
    n_candidates
        Points the engine returns per query; default ``max(2 * k, k + 10)`` when
        re-scoring, else ``k``.
    rescore
        Re-score the candidates by exact MaxSim over the index's vectors
        (default), so scores equal ``exact``'s; ``False`` keeps the engine's.
    hnsw_ef
        Beam width of the HNSW search (``None``: at least ``prefetch``).
    k_sim, dim_proj, r_reps, seed
        MUVERA settings (:class:`~latecore.muvera.Muvera`); saved with the
        index so a loaded one encodes queries as its documents were.
    hnsw_m, hnsw_ef_construct
        HNSW graph settings of the ``"muvera"`` vector.
    datatype
        Storage type of the token vectors in the engine: ``"float16"``
        (default) or ``"float32"``. MUVERA vectors are always float16.
    optimize_after
        An embedded shard builds its HNSW graph at the end of an :meth:`add`
        once this many points were written since the last build (``None``:
        only :meth:`build` does).
    batch_size
        Points per upsert request.
    recreate
        A new index whose collection already holds points replaces it when
        ``True``; by default that is an error (it may be another index's).
    show_progress
        A tqdm bar over upsert batches; ``None`` follows ``$LATECORE_PROGRESS``.

    Examples
    --------
    >>> from latecore import LateIndex
    >>> from latecore.testing import FakeEncoder
    >>> index = LateIndex(FakeEncoder(), backend="qdrant")
    >>> index.add(["paris is in france", "berlin is in germany"], ids=["p", "b"])
    ['p', 'b']
    >>> [hit.id for hit in index.search("where is berlin", k=1)]
    ['b']
    >>> index.build()  # the HNSW graph over the MUVERA vectors
    >>> [hit.id for hit in index.search("paris france", k=1)]
    ['p']
    >>> index.close()
    """

    name = "qdrant"
    serves_vectors = True

    def __init__(
        self,
        *,
        path: str | os.PathLike[str] | None = None,
        url: str | None = None,
        api_key: str | None = None,
        prefer_grpc: bool = False,
        timeout: int | None = None,
        client: Any = None,
        collection_name: str = "latecore",
        prefetch: int = 15_000,
        n_candidates: int | None = None,
        rescore: bool = True,
        hnsw_ef: int | None = None,
        k_sim: int = MUVERA_DEFAULTS["k_sim"],
        dim_proj: int = MUVERA_DEFAULTS["dim_proj"],
        r_reps: int = MUVERA_DEFAULTS["r_reps"],
        seed: int = MUVERA_DEFAULTS["seed"],
        hnsw_m: int = 16,
        hnsw_ef_construct: int = 100,
        datatype: Literal["float16", "float32"] = "float16",
        optimize_after: int | None = 20_000,
        batch_size: int = 128,
        recreate: bool = False,
        show_progress: bool | None = None,
    ) -> None:
        check_dtype(datatype, "datatype")
        for name, value in {
            "prefetch": prefetch,
            "batch_size": batch_size,
            "hnsw_m": hnsw_m,
            "hnsw_ef_construct": hnsw_ef_construct,
        }.items():
            check_positive(value, name)
        check_optional_count(n_candidates, "n_candidates", minimum=1)
        check_optional_count(hnsw_ef, "hnsw_ef", minimum=1)
        check_optional_count(optimize_after, "optimize_after", minimum=1)
        self._muvera_settings = {
            "k_sim": k_sim,
            "dim_proj": dim_proj,
            "r_reps": r_reps,
            "seed": seed,
        }
        Muvera(1, **self._muvera_settings)  # checks the settings now, not at the first add
        self._settings: dict[str, Any] = {
            "collection_name": collection_name,
            "prefetch": prefetch,
            "n_candidates": n_candidates,
            "rescore": rescore,
            "hnsw_ef": hnsw_ef,
            **self._muvera_settings,
            "hnsw_m": hnsw_m,
            "hnsw_ef_construct": hnsw_ef_construct,
            "datatype": datatype,
            "optimize_after": optimize_after,
            "batch_size": batch_size,
        }
        self._connection: dict[str, Any]
        self._engine: _Engine
        if client is not None or url is not None:
            client_class, models = _import_client()
            if client is None:
                self._connection = {"engine": "server", "url": url, "prefer_grpc": prefer_grpc}
                if timeout is not None:
                    self._connection["timeout"] = timeout
                client = client_class(
                    url=url,
                    api_key=api_key or os.environ.get("QDRANT_API_KEY"),
                    prefer_grpc=prefer_grpc,
                    timeout=timeout,
                )
                owned = True
            else:
                self._connection = {"engine": "server"}
                owned = False
            self._engine = _ServerEngine(client, models, self._settings, owned=owned)
        else:
            root = None if path is None else Path(path).resolve()
            self._connection = {"engine": "edge"}
            if root is not None:
                self._connection["path"] = str(root)
            self._engine = _EdgeEngine(root, self._settings)
        self.recreate = recreate
        self.show_progress = progress_enabled(show_progress)
        self._muvera: Muvera | None = None
        self._unindexed = 0

    @property
    def options(self) -> dict[str, Any]:
        """Engine, connection (never an API key) and settings, saved with the index."""
        return {**self._connection, **self._settings}

    @property
    def engine(self) -> Literal["edge", "server"]:
        """``"edge"`` (an embedded qdrant-edge shard) or ``"server"`` (qdrant-client)."""
        return "edge" if isinstance(self._engine, _EdgeEngine) else "server"

    @property
    def shard_path(self) -> Path | None:
        """The embedded shard's directory (``None`` for a server)."""
        return self._engine.root if isinstance(self._engine, _EdgeEngine) else None

    @property
    def client(self) -> Any:
        """The ``QdrantClient`` of a server engine (``None`` for an embedded shard)."""
        return self._engine.client if isinstance(self._engine, _ServerEngine) else None

    @classmethod
    def merge_options(
        cls, saved: Mapping[str, Any], overrides: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Saved options updated by ``overrides``; a new connection replaces the saved one.

        Options saved before qdrant-edge (no ``"engine"`` entry) are converted:
        an in-memory collection becomes a new temporary shard (re-filled from
        the saved documents); a local collection directory raises
        :class:`~latecore.errors.IndexFormatError` naming the migration.

        Examples
        --------
        >>> QdrantBackend.merge_options({"engine": "edge", "path": "/a", "prefetch": 5},
        ...                             {"url": "http://qdrant:6333"})
        {'prefetch': 5, 'url': 'http://qdrant:6333'}
        """
        options = dict(saved)
        engine = options.pop("engine", None)
        if _CONNECTION_KEYS & set(overrides):
            options = {key: value for key, value in options.items() if key not in _CONNECTION_KEYS}
        elif engine is None and "location" in options:
            logger.info(
                "this index was saved with an in-memory Qdrant collection (qdrant-client's "
                "local mode); its documents are indexed anew in an embedded qdrant-edge shard"
            )
        elif engine is None and "path" in options:
            path = Path(options["path"])
            if not (path / _EDGE_CONFIG).is_file():
                raise _migration_error(path)
        elif engine == "server" and "url" not in options:
            raise ValueError(
                "this index was saved with a QdrantClient given at run time; pass "
                "client= (or url=) to LateIndex.load"
            )
        options.pop("location", None)
        return {**options, **overrides}

    def __repr__(self) -> str:
        if isinstance(self._engine, _EdgeEngine):
            where = f"edge shard at {self._engine.root}"
        else:
            where = f"server collection {self._settings['collection_name']!r}"
        return f"QdrantBackend({where})"

    def _encoder(self, dim: int) -> Muvera:
        if self._muvera is None or self._muvera.dim != dim:
            self._muvera = Muvera(dim, **self._muvera_settings)
        return self._muvera

    def attach(self, store: StoreView, saved: SavedState | None) -> None:
        """A new index claims its collection; a loaded one re-synchronises it."""
        if saved is None and not len(store):
            count = self._engine.count()
            if count and not self.recreate:
                raise ValueError(
                    f"the Qdrant collection ({self!r}) already holds {count} points. Load the "
                    "index it belongs to with LateIndex.load, choose another path or "
                    "collection_name, or pass recreate=True to replace it."
                )
            self._engine.drop()
            return
        self.sync(store)

    def add(
        self,
        ids: Sequence[str],
        vectors: Sequence[np.ndarray],
        texts: Sequence[str],
        metadatas: Sequence[Mapping[str, Any]],
    ) -> None:
        """Upsert points in batches of ``batch_size``; maybe build the graph afterwards.

        An embedded shard runs its optimizer (HNSW) at the end once
        ``optimize_after`` points were written since the last build.
        """
        if not ids:
            return
        dim = int(vectors[0].shape[1])
        muvera = self._encoder(dim)
        self._engine.ensure(dim, muvera.fde_dim)
        batch = self._settings["batch_size"]
        storage = np.float16 if self._settings["datatype"] == "float16" else np.float32
        starts: Iterable[int] = range(0, len(ids), batch)
        if self.show_progress and len(ids) > batch:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc="Qdrant upsert", unit="batch")
        for start in starts:
            end = start + batch
            chunk = [np.asarray(v, dtype=storage) for v in vectors[start:end]]
            payloads = [
                {
                    "latecore_id": doc_id,
                    "text": text,
                    "metadata": dict(meta),
                    "digest": _digest(v, text, meta, self._muvera_settings),
                }
                for doc_id, v, text, meta in zip(
                    ids[start:end], chunk, texts[start:end], metadatas[start:end], strict=True
                )
            ]
            self._engine.upsert(
                _Points(
                    [point_id(i) for i in ids[start:end]],
                    muvera.encode_documents(chunk),
                    chunk,
                    payloads,
                )
            )
        self._unindexed += len(ids)
        limit = self._settings["optimize_after"]
        if self.engine == "edge" and limit is not None and self._unindexed >= limit:
            self._optimize()

    def delete(self, ids: Sequence[str]) -> None:
        """Delete the points of ``ids``."""
        self._engine.delete([point_id(i) for i in ids])

    def build(self, store: StoreView) -> None:
        """Build the HNSW graph now (embedded: blocks; server: waits for its indexing)."""
        self._optimize()

    def _optimize(self) -> None:
        started = time.perf_counter()
        self._engine.optimize()
        logger.info("Qdrant %s optimized in %.1f s", self.engine, time.perf_counter() - started)
        self._unindexed = 0

    def sync(self, store: StoreView) -> tuple[int, int]:
        """Make the collection hold exactly ``store``; returns (points upserted, deleted).

        Raises
        ------
        IndexFormatError
            If the store keeps no vectors (they live in the engine) and the
            engine lacks some of its documents.
        """
        if len(store) and store.holds_vectors:
            # A collection of other dimensions fails here, before anything is changed.
            self._engine.ensure(store.dim, self._encoder(store.dim).fde_dim)
        remote: dict[str, object] = {}
        extra = []
        for pid, doc_id, digest in self._engine.digests():
            if isinstance(doc_id, str) and doc_id in store and pid == point_id(doc_id):
                remote[doc_id] = digest
            else:
                extra.append(pid)
        if not store.holds_vectors:
            missing = [doc_id for doc_id in store.ids if doc_id not in remote]
            if missing:
                temporary = self.engine == "edge" and "path" not in self._connection
                hint = " (a temporary shard keeps nothing: give path= or url=)" if temporary else ""
                raise IndexFormatError(
                    f"the Qdrant collection ({self!r}) lacks {len(missing)} of the index's "
                    f"documents, e.g. {missing[:5]}; their vectors were kept only there, so "
                    f"those documents must be added again{hint}"
                )
            changed: list[int] = []
        else:
            changed = changed_positions(
                store, remote, lambda v, t, m: _digest(v, t, m, self._muvera_settings)
            )
        if extra or changed:
            logger.info(
                "re-synchronising Qdrant (%r): upserting %d points, deleting %d",
                self,
                len(changed),
                len(extra),
            )
        self._engine.delete(extra)
        if changed:
            self.add_stored(store, changed)
        return len(changed), len(extra)

    def search(self, store: StoreView, queries: Sequence[np.ndarray], k: int) -> list[Ranking]:
        """MUVERA prefetch and MaxSim in the engine; the best re-scored exactly (``rescore``)."""
        rescore = self._settings["rescore"]
        limit = self._settings["n_candidates"] or (max(2 * k, k + 10) if rescore else k)
        prefetch = max(self._settings["prefetch"], limit)
        # A collection no larger than the prefetch is scored in full by MaxSim.
        fdes = None
        if len(store) > prefetch:
            fdes = self._encoder(int(queries[0].shape[1])).encode_queries(queries)
        results = self._engine.query(fdes, queries, prefetch, limit, self._settings["hnsw_ef"])
        rankings = []
        for query, found in zip(queries, results, strict=True):
            pairs = [
                (position, score)
                for doc_id, score in found
                if isinstance(doc_id, str) and (position := store.find(doc_id)) is not None
            ]
            positions = np.array([p for p, _ in pairs], dtype=np.int64)
            if rescore:
                rankings.append(store.rank(query, positions, k))
            else:
                scores = np.array([s for _, s in pairs], dtype=np.float32)
                rankings.append(Ranking.merge(Ranking(positions, scores), Ranking.empty(), k))
        return rankings

    def fetch_vectors(self, ids: Sequence[str]) -> list[np.ndarray]:
        """The ``"colbert"`` multivectors the engine holds for ``ids``, in that order.

        Arrays are ``(n_tokens, dim)`` in the engine's storage type (``datatype``).

        Raises
        ------
        KeyError
            Naming up to five ids the engine does not hold.
        """
        storage = np.float16 if self._settings["datatype"] == "float16" else np.float32
        wanted = [point_id(i) for i in ids]
        found: dict[str, list[list[float]]] = {}
        for start in range(0, len(wanted), _RETRIEVE_BATCH):
            found.update(self._engine.vectors(wanted[start : start + _RETRIEVE_BATCH]))
        missing = [i for i, pid in zip(ids, wanted, strict=True) if pid not in found]
        if missing:
            raise KeyError(f"the Qdrant collection holds no vectors for ids {missing[:5]}")
        return [np.asarray(found[pid], dtype=storage) for pid in wanted]

    def save(self, directory: Path) -> dict[str, Any]:
        """Flush the engine; nothing is written into ``directory`` (the collection stays put)."""
        self._engine.flush()
        if isinstance(self._engine, _EdgeEngine) and "path" not in self._connection:
            logger.info(
                "the temporary Qdrant shard is not saved; loading re-indexes the saved documents"
            )
        return {}

    def close(self) -> None:
        """Close the shard (removing a temporary one) or the client (unless passed in)."""
        self._engine.close()
