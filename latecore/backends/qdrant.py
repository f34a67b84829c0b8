"""The ``qdrant`` backend: a Qdrant multivector collection generates candidates.

Each document is one Qdrant point: its token vectors as one multivector
(``MultiVectorConfig(comparator=MAX_SIM)``, dot product, stored as float16 by
default), and a payload with the latecore id, text, metadata and a digest of
all three. Qdrant point ids must be integers or UUIDs, so a latecore id ``i``
becomes ``uuid5(LATECORE_NAMESPACE, i)``; the original id is the payload's
``latecore_id``. Since MaxSim over dot products is what latecore computes too,
Qdrant's own scores agree with ``exact`` to ~1e-3 (float16 storage; float32
sums). By default (``rescore=True``) the best ``n_candidates`` points are
re-scored exactly from the vectors the LateIndex stores, so the returned
scores *equal* ``exact``'s; ``rescore=False`` returns Qdrant's scores.

Where the collection lives:

- nothing given: Qdrant's embedded local mode in memory (``location=":memory:"``);
- ``path=``: embedded local mode persisted in that directory (one client per
  directory at a time: close an index before loading it again in one process);
- ``url=`` (and ``api_key=``, or ``$QDRANT_API_KEY``): a Qdrant server or cluster;
- ``client=``: a ``QdrantClient`` you configured yourself (not saved).

Embedded mode scores every point (exact, but brute force in Python: for
development and tests); a server answers from an HNSW graph once a segment is
large enough to be indexed. :meth:`~latecore.index.LateIndex.save` records the
connection (never the API key); :meth:`~latecore.index.LateIndex.load`
reconnects and re-synchronises the collection with the saved documents by
digest (missing or changed points are upserted, unknown ones deleted): the
collection belongs to the index.

Requires ``pip install 'latecore[qdrant]'``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .._validation import check_dtype, check_optional_count, check_positive
from ..encoder import progress_enabled
from ..store import StoreView
from .base import Backend, Ranking, SavedState

__all__ = ["LATECORE_NAMESPACE", "QdrantBackend", "point_id"]

logger = logging.getLogger(__name__)

LATECORE_NAMESPACE = uuid.UUID("5b0f7a4e-3c1d-5e8a-9f60-6c6174656372")
"""UUID namespace of latecore's Qdrant point ids."""


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


def _digest(vectors: np.ndarray, text: str, metadata: Mapping[str, Any]) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(np.ascontiguousarray(vectors, dtype=np.float16).tobytes())
    h.update(text.encode("utf-8", "surrogatepass"))
    h.update(json.dumps(metadata, sort_keys=True, default=repr).encode("utf-8"))
    return h.hexdigest()


def _import_qdrant() -> tuple[Any, Any]:
    try:
        from qdrant_client import QdrantClient, models
    except ImportError as error:
        raise ImportError(
            "the 'qdrant' backend needs qdrant-client, which is not installed: "
            "pip install 'latecore[qdrant]'"
        ) from error
    return QdrantClient, models


class QdrantBackend(Backend):
    """Candidates from a Qdrant multivector collection; exact MaxSim final scores.

    Parameters
    ----------
    collection_name
        The collection this index owns.
    url, api_key, prefer_grpc, timeout
        A Qdrant server or cluster (``api_key`` defaults to ``$QDRANT_API_KEY``).
    path
        Embedded local mode, persisted in this directory.
    location
        Embedded local mode location, ``":memory:"`` (the default when no
        ``url``, ``path`` or ``client`` is given).
    client
        A ready ``QdrantClient`` (it is not closed by :meth:`close`, nor saved).
    rescore
        Re-score candidates by exact MaxSim over the LateIndex's vectors
        (default); ``False`` returns Qdrant's scores.
    n_candidates
        Points fetched per query; default ``max(2 * k, k + 10)`` when
        re-scoring, else ``k``.
    hnsw_ef
        Qdrant's search-time beam width (server only; ``None``: its default).
    datatype
        Storage type of the vectors in Qdrant: ``"float16"`` (default) or ``"float32"``.
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
    >>> index = LateIndex(FakeEncoder(), backend="qdrant", collection_name="demo")
    >>> index.add(["paris is in france", "berlin is in germany"], ids=["p", "b"])
    ['p', 'b']
    >>> [hit.id for hit in index.search("where is berlin", k=1)]
    ['b']
    >>> index.close()
    """

    name = "qdrant"

    def __init__(
        self,
        *,
        collection_name: str = "latecore",
        url: str | None = None,
        api_key: str | None = None,
        prefer_grpc: bool = False,
        timeout: int | None = None,
        path: str | os.PathLike[str] | None = None,
        location: str | None = None,
        client: Any = None,
        rescore: bool = True,
        n_candidates: int | None = None,
        hnsw_ef: int | None = None,
        datatype: Literal["float16", "float32"] = "float16",
        batch_size: int = 64,
        recreate: bool = False,
        show_progress: bool | None = None,
    ) -> None:
        client_class, self._models = _import_qdrant()
        check_dtype(datatype, "datatype")
        check_positive(batch_size, "batch_size")
        check_optional_count(n_candidates, "n_candidates", minimum=1)
        check_optional_count(hnsw_ef, "hnsw_ef", minimum=1)
        self.collection_name = collection_name
        self._connection: dict[str, Any] = {}
        self._owns_client = client is None
        if client is not None:
            self.client = client
        elif url is not None:
            self._connection = {"url": url, "prefer_grpc": prefer_grpc}
            if timeout is not None:
                self._connection["timeout"] = timeout
            self.client = client_class(
                url=url,
                api_key=api_key or os.environ.get("QDRANT_API_KEY"),
                prefer_grpc=prefer_grpc,
                timeout=timeout,
            )
        elif path is not None:
            self._connection = {"path": str(Path(path).resolve())}
            self.client = client_class(path=self._connection["path"])
        else:
            self._connection = {"location": location or ":memory:"}
            self.client = client_class(location=self._connection["location"])
        self._settings: dict[str, Any] = {
            "collection_name": collection_name,
            "rescore": rescore,
            "n_candidates": n_candidates,
            "hnsw_ef": hnsw_ef,
            "datatype": datatype,
            "batch_size": batch_size,
        }
        self.recreate = recreate
        self.show_progress = progress_enabled(show_progress)
        self._ready = False
        self._closed = False

    @property
    def options(self) -> dict[str, Any]:
        """Connection (without the API key) and search settings, saved with the index."""
        return {**self._connection, **self._settings}

    @classmethod
    def merge_options(
        cls, saved: Mapping[str, Any], overrides: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Saved options updated by ``overrides``; a new connection replaces the saved one."""
        connection = {"url", "path", "location", "client", "prefer_grpc", "timeout"}
        if connection & set(overrides):
            saved = {key: value for key, value in saved.items() if key not in connection}
        return {**saved, **overrides}

    def __repr__(self) -> str:
        where = self._connection or {"client": "external"}
        return f"QdrantBackend(collection={self.collection_name!r}, {where})"

    def _count(self) -> int:
        return int(self.client.count(self.collection_name, exact=True).count)

    def attach(self, store: StoreView, saved: SavedState | None) -> None:
        """A new index claims its collection; a loaded one re-synchronises it by digest."""
        exists = self.client.collection_exists(self.collection_name)
        if saved is None and not len(store):
            if exists and self._count() and not self.recreate:
                raise ValueError(
                    f"Qdrant collection {self.collection_name!r} already holds {self._count()} "
                    "points. Load the index it belongs to with LateIndex.load, choose another "
                    "collection_name, or pass recreate=True to replace it."
                )
            if exists:
                self.client.delete_collection(self.collection_name)
            return
        self.sync(store)

    def _ensure_collection(self, dim: int) -> None:
        if self._ready:
            return
        models = self._models
        if not self.client.collection_exists(self.collection_name):
            datatype = (
                models.Datatype.FLOAT16
                if self._settings["datatype"] == "float16"
                else models.Datatype.FLOAT32
            )
            self.client.create_collection(
                self.collection_name,
                vectors_config=models.VectorParams(
                    size=dim,
                    distance=models.Distance.DOT,
                    datatype=datatype,
                    multivector_config=models.MultiVectorConfig(
                        comparator=models.MultiVectorComparator.MAX_SIM
                    ),
                ),
            )
        else:
            params = self.client.get_collection(self.collection_name).config.params.vectors
            size = getattr(params, "size", None)
            if size != dim or getattr(params, "multivector_config", None) is None:
                raise ValueError(
                    f"Qdrant collection {self.collection_name!r} is not a {dim}-dimensional "
                    "multivector collection; choose another collection_name or pass recreate=True"
                )
        self._ready = True

    def add(
        self,
        ids: Sequence[str],
        vectors: Sequence[np.ndarray],
        texts: Sequence[str],
        metadatas: Sequence[Mapping[str, Any]],
    ) -> None:
        """Upsert points in batches of ``batch_size`` (a tqdm bar when there are several)."""
        if not ids:
            return
        self._ensure_collection(int(vectors[0].shape[1]))
        models = self._models
        batch = self._settings["batch_size"]
        starts: Iterable[int] = range(0, len(ids), batch)
        if self.show_progress and len(ids) > batch:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc="Qdrant upsert", unit="batch")
        for start in starts:
            points = [
                models.PointStruct(
                    id=point_id(doc_id),
                    vector=np.asarray(v, dtype=np.float16).tolist(),
                    payload={
                        "latecore_id": doc_id,
                        "text": text,
                        "metadata": dict(meta),
                        "digest": _digest(v, text, meta),
                    },
                )
                for doc_id, v, text, meta in zip(
                    ids[start : start + batch],
                    vectors[start : start + batch],
                    texts[start : start + batch],
                    metadatas[start : start + batch],
                    strict=True,
                )
            ]
            self.client.upsert(self.collection_name, points=points, wait=True)

    def delete(self, ids: Sequence[str]) -> None:
        """Delete the points of ``ids``."""
        if not ids or not self.client.collection_exists(self.collection_name):
            return
        selector = self._models.PointIdsList(points=[point_id(i) for i in ids])
        self.client.delete(self.collection_name, points_selector=selector, wait=True)

    def _remote_digests(self) -> Iterator[tuple[Any, str | None, str | None]]:
        offset = None
        while True:
            points, offset = self.client.scroll(
                self.collection_name,
                limit=1024,
                offset=offset,
                with_payload=["latecore_id", "digest"],
                with_vectors=False,
            )
            for point in points:
                payload = point.payload or {}
                yield point.id, payload.get("latecore_id"), payload.get("digest")
            if offset is None:
                return

    def sync(self, store: StoreView) -> tuple[int, int]:
        """Make the collection hold exactly ``store``; returns (points upserted, deleted)."""
        if not len(store):
            if self.client.collection_exists(self.collection_name):
                self.client.delete_collection(self.collection_name)
            self._ready = False
            return 0, 0
        self._ensure_collection(store.dim)
        remote: dict[str, str | None] = {}
        extra = []
        for pid, doc_id, digest in self._remote_digests():
            if isinstance(doc_id, str) and doc_id in store and pid == point_id(doc_id):
                remote[doc_id] = digest
            else:
                extra.append(pid)
        everything = np.arange(len(store))
        changed = [
            p
            for p, doc, vectors in zip(
                everything.tolist(),
                store.documents(everything),
                store.vectors(everything),
                strict=True,
            )
            if remote.get(doc.id) != _digest(vectors, doc.text, doc.metadata)
        ]
        if extra:
            selector = self._models.PointIdsList(points=extra)
            self.client.delete(self.collection_name, points_selector=selector, wait=True)
        if changed:
            logger.info(
                "Qdrant collection %r: upserting %d points, deleting %d",
                self.collection_name,
                len(changed),
                len(extra),
            )
            documents = store.documents(changed)
            self.add(
                [doc.id for doc in documents],
                store.vectors(changed),
                [doc.text for doc in documents],
                [doc.metadata for doc in documents],
            )
        return len(changed), len(extra)

    def search(self, store: StoreView, queries: Sequence[np.ndarray], k: int) -> list[Ranking]:
        """Qdrant's MaxSim top ``n_candidates``, re-scored exactly unless ``rescore=False``."""
        models = self._models
        rescore = self._settings["rescore"]
        limit = self._settings["n_candidates"] or (max(2 * k, k + 10) if rescore else k)
        params = (
            models.SearchParams(hnsw_ef=self._settings["hnsw_ef"])
            if self._settings["hnsw_ef"]
            else None
        )
        requests = [
            models.QueryRequest(
                query=np.asarray(q, dtype=np.float32).tolist(),
                limit=limit,
                params=params,
                with_payload=["latecore_id"],
            )
            for q in queries
        ]
        responses = self.client.query_batch_points(self.collection_name, requests=requests)
        rankings = []
        for query, response in zip(queries, responses, strict=True):
            found = [
                (position, point.score)
                for point in response.points
                if isinstance(doc_id := (point.payload or {}).get("latecore_id"), str)
                and (position := store.find(doc_id)) is not None
            ]
            positions = np.array([p for p, _ in found], dtype=np.int64)
            if rescore:
                rankings.append(store.rank(query, positions, k))
            else:
                scores = np.array([s for _, s in found], dtype=np.float32)
                rankings.append(Ranking.merge(Ranking(positions, scores), Ranking.empty(), k))
        return rankings

    def save(self, directory: Path) -> dict[str, Any]:
        """Nothing to write: the collection is where :attr:`options` say it is."""
        if "location" in self._connection:
            logger.info(
                "the in-memory Qdrant collection is not saved; load re-creates it from the index"
            )
        return {}

    def close(self) -> None:
        """Close the client (unless it was passed in)."""
        if not self._closed and self._owns_client:
            self.client.close()
        self._closed = True
