"""The calls to a collection on a Qdrant server or cluster, through qdrant-client."""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from ..mirror import Candidate
from .edge import EXTRA_HINT
from .filtering import Condition, PayloadType
from .schema import (
    COLBERT_VECTOR,
    MUVERA_VECTOR,
    OWNER_KEY,
    OWNER_POINT,
    PAYLOAD_ID,
    Points,
    Schema,
    check_sizes,
    point_id,
)
from .schema import latecore_id as point_latecore_id
from .table import QdrantTable

__all__ = ["ServerTable", "check_caller_url", "check_key_transport", "import_client"]

logger = logging.getLogger(__name__)


def import_client() -> tuple[Any, Any]:
    """``QdrantClient`` and qdrant-client's ``models``, or an ``ImportError`` naming the extra."""
    try:
        from qdrant_client import QdrantClient, models
    except ImportError as error:
        raise ImportError(
            "the 'qdrant' backend needs qdrant-client to reach a Qdrant server, which is not "
            f"installed: {EXTRA_HINT}"
        ) from error
    return QdrantClient, models


def _server(url: str) -> tuple[str, str, int, str]:
    """Scheme, host, port (qdrant-client's default 6333) and path of a server URL."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    port = parts.port or 6333
    return parts.scheme.lower(), (parts.hostname or "").lower(), port, parts.path.rstrip("/")


def check_caller_url(saved_url: object, overrides: Mapping[str, Any]) -> None:
    """Refuse to load a server-backed index unless the caller names the server, and names
    the one its manifest names (the caller's own ``client=``, or ``path=`` for a local
    shard to re-index into, are the caller's choice too).

    Examples
    --------
    >>> check_caller_url("http://q:6333", {"url": "http://Q:6333/"})  # the same server
    >>> check_caller_url("http://q:6333", {"url": "http://r:6333"})
    Traceback (most recent call last):
    ...
    ValueError: this index's Qdrant collection is on 'http://q:6333', but url='http://r:6333' was given; a saved index never chooses which server it connects to. Load it with url='http://q:6333', or re-index it into the other server from the saved vectors (backend='exact' then a new index).
    """  # noqa: E501
    url = overrides.get("url")
    if overrides.get("client") is not None or (url is None and "path" in overrides):
        return  # the caller's client, or a local shard: no key goes anywhere
    if url is None:
        raise ValueError(
            "this index's Qdrant collection is on a server: pass url= (or client=) to "
            "LateIndex.load; a saved index never chooses which server it connects to "
            f"(its manifest names {saved_url!r})"
        )
    if isinstance(saved_url, str) and _server(saved_url) != _server(str(url)):
        raise ValueError(
            f"this index's Qdrant collection is on {saved_url!r}, but url={url!r} was "
            "given; a saved index never chooses which server it connects to. Load it with "
            f"url={saved_url!r}, or re-index it into the other server from the saved "
            "vectors (backend='exact' then a new index)."
        )


def check_key_transport(url: str) -> None:
    """Refuse to send an API key over plain http to a host that is not loopback.

    Examples
    --------
    >>> check_key_transport("https://cluster.example:6333")
    >>> check_key_transport("http://localhost:6333")
    >>> check_key_transport("http://10.0.0.7:6333")
    Traceback (most recent call last):
    ...
    ValueError: refusing to send a Qdrant API key over plain http to '10.0.0.7' (it would cross the network unencrypted): use an https:// URL, or pass allow_insecure_key=True
    """  # noqa: E501
    scheme, host, _, _ = _server(url)
    if scheme != "http":
        return
    try:
        loopback = ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise ValueError(
            f"refusing to send a Qdrant API key over plain http to {host!r} (it would cross "
            "the network unencrypted): use an https:// URL, or pass allow_insecure_key=True"
        )


class ServerTable(QdrantTable):
    """Collection ``name`` on the server ``client`` talks to (closed on :meth:`close` only if
    ``owned``)."""

    def __init__(self, client: Any, models: Any, name: str, *, owned: bool) -> None:
        self.client = client
        self._models = models
        self._name = name
        self._owned = owned
        self._closed = False

    def exists(self) -> bool:
        return bool(self.client.collection_exists(self._name))

    def count(self) -> int:
        if not self.exists():
            return 0
        return int(self.client.count(self._name, exact=True).count) - (self.owner() is not None)

    def owner(self) -> dict[str, Any] | None:
        if not self.exists():
            return None
        records = self.client.retrieve(self._name, ids=[OWNER_POINT], with_payload=[OWNER_KEY])
        found = (records[0].payload or {}).get(OWNER_KEY) if records else None
        return dict(found) if isinstance(found, dict) else None

    def set_owner(self, owner: dict[str, Any]) -> None:
        point = self._models.PointStruct(id=OWNER_POINT, vector={}, payload={OWNER_KEY: owner})
        self.client.upsert(self._name, points=[point], wait=True)

    def ensure(self, schema: Schema) -> None:
        models = self._models
        if self.exists():
            params = self.client.get_collection(self._name).config.params.vectors
            sizes = (
                {name: getattr(p, "size", None) for name, p in params.items()}
                if isinstance(params, Mapping)
                else {}
            )
            check_sizes(f"collection {self._name!r}", sizes, schema)
            return
        datatype = (
            models.Datatype.FLOAT16 if schema.datatype == "float16" else models.Datatype.FLOAT32
        )
        self.client.create_collection(
            self._name,
            vectors_config={
                MUVERA_VECTOR: models.VectorParams(
                    size=schema.fde_dim,
                    distance=models.Distance.DOT,
                    datatype=models.Datatype.FLOAT16,
                    hnsw_config=models.HnswConfigDiff(
                        m=schema.hnsw_m, ef_construct=schema.hnsw_ef_construct
                    ),
                ),
                COLBERT_VECTOR: models.VectorParams(
                    size=schema.dim,
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

    def upsert(self, points: Points) -> None:
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

    def delete(self, keys: Sequence[object]) -> None:
        if keys and self.exists():
            selector = self._models.PointIdsList(points=list(keys))
            self.client.delete(self._name, points_selector=selector, wait=True)

    def digests(self) -> Iterator[tuple[object, str | None, object]]:
        if not self.exists():
            return
        offset = None
        while True:
            records, offset = self.client.scroll(
                self._name,
                limit=1024,
                offset=offset,
                with_payload=[PAYLOAD_ID, "digest"],
                with_vectors=False,
            )
            for record in records:
                if str(record.id) == OWNER_POINT:
                    continue
                payload = record.payload or {}
                yield str(record.id), point_latecore_id(record.id, payload), payload.get("digest")
            if offset is None:
                return

    def vectors(self, ids: Sequence[str]) -> dict[str, Any]:
        wanted = {point_id(i): i for i in ids}
        records = self.client.retrieve(
            self._name, ids=list(wanted), with_payload=False, with_vectors=[COLBERT_VECTOR]
        )
        return {
            wanted[str(r.id)]: r.vector[COLBERT_VECTOR]
            for r in records
            if isinstance(r.vector, Mapping) and COLBERT_VECTOR in r.vector and str(r.id) in wanted
        }

    @property
    def filter_class(self) -> type:
        return self._models.Filter

    def condition(self, node: Condition) -> Any:
        models = self._models
        if node.kind in ("must", "should", "must_not"):
            return models.Filter(**{node.kind: [self.condition(c) for c in node.children]})
        if node.kind == "match":
            return models.FieldCondition(key=node.key, match=models.MatchValue(value=node.value))
        if node.kind == "match_any":
            return models.FieldCondition(key=node.key, match=models.MatchAny(any=list(node.values)))
        if node.kind == "range":
            return models.FieldCondition(key=node.key, range=models.Range(**dict(node.bounds)))
        if node.kind == "is_null":
            return models.IsNullCondition(is_null=models.PayloadField(key=node.key))
        if node.kind == "is_empty":
            return models.IsEmptyCondition(is_empty=models.PayloadField(key=node.key))
        return models.HasIdCondition(has_id=list(node.values))

    def create_indexes(self, fields: dict[str, PayloadType]) -> None:
        """Payload indexes on ``fields`` (field -> type); existing ones are kept."""
        types = {
            "keyword": self._models.PayloadSchemaType.KEYWORD,
            "float": self._models.PayloadSchemaType.FLOAT,
            "bool": self._models.PayloadSchemaType.BOOL,
        }
        for field, kind in fields.items():
            self.client.create_payload_index(
                self._name, field_name=field, field_schema=types[kind], wait=True
            )

    def query(
        self,
        fdes: np.ndarray | None,
        queries: Sequence[np.ndarray],
        prefetch: int,
        limit: int,
        hnsw_ef: int | None,
        with_vectors: bool,
        condition: Condition | None = None,
    ) -> list[list[Candidate]]:
        models = self._models
        params = models.SearchParams(hnsw_ef=hnsw_ef) if hnsw_ef else None
        where = None if condition is None else self.filter(condition)
        requests = [
            models.QueryRequest(
                query=np.asarray(query, dtype=np.float32).tolist(),
                using=COLBERT_VECTOR,
                prefetch=None
                if fdes is None
                else models.Prefetch(
                    query=fdes[i].tolist(),
                    using=MUVERA_VECTOR,
                    limit=prefetch,
                    params=params,
                    filter=where,
                ),
                filter=where,
                limit=limit,
                with_payload=[PAYLOAD_ID],
                with_vector=[COLBERT_VECTOR] if with_vectors else False,
            )
            for i, query in enumerate(queries)
        ]
        responses = self.client.query_batch_points(self._name, requests=requests)
        return [
            [
                Candidate(
                    (p.payload or {}).get(PAYLOAD_ID),
                    p.score,
                    p.vector.get(COLBERT_VECTOR)
                    if with_vectors and isinstance(p.vector, Mapping)
                    else None,
                )
                for p in response.points
            ]
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
