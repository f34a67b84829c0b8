"""The calls to an embedded qdrant-edge shard (one collection in one directory)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..mirror import Candidate
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

__all__ = ["EDGE_CONFIG", "EdgeTable", "import_edge"]

EDGE_CONFIG = "edge_config.json"
EXTRA_HINT = "pip install 'latecore[qdrant]'"


def import_edge() -> Any:
    """The ``qdrant_edge`` module, or an ``ImportError`` naming the extra."""
    try:
        import qdrant_edge
    except ImportError as error:
        raise ImportError(
            "the 'qdrant' backend's embedded engine needs qdrant-edge-py, which is not "
            f"installed: {EXTRA_HINT}"
        ) from error
    return qdrant_edge


class EdgeTable(QdrantTable):
    """An embedded qdrant-edge shard in ``root`` (created on the first :meth:`ensure`)."""

    def __init__(self, root: Path) -> None:
        self._qe = import_edge()
        self.root = root
        self._shard: Any = None
        if (root / EDGE_CONFIG).is_file():
            try:
                self._shard = self._qe.EdgeShard.load(str(root))
            except Exception as error:  # qdrant-edge raises plain Exceptions
                if "WouldBlock" not in str(error):
                    raise
                raise RuntimeError(
                    f"the qdrant-edge shard at {root} is open elsewhere (one index in one "
                    "process at a time); close that index first"
                ) from error

    def exists(self) -> bool:
        return self._shard is not None

    def count(self) -> int:
        if not self.exists():
            return 0
        points = int(self._shard.count(self._qe.CountRequest(exact=True)))
        return points - (self.owner() is not None)

    def owner(self) -> dict[str, Any] | None:
        if not self.exists():
            return None
        records = self._shard.retrieve([OWNER_POINT], True, False)
        payload = (records[0].payload or {}) if records else {}
        found = payload.get(OWNER_KEY)
        return dict(found) if isinstance(found, dict) else None

    def set_owner(self, owner: dict[str, Any]) -> None:
        point = self._qe.Point(OWNER_POINT, {}, {OWNER_KEY: dict(owner)})
        self._shard.update(self._qe.UpdateOperation.upsert_points([point]))

    def _config(self, schema: Schema) -> Any:
        qe = self._qe
        datatype = (
            qe.VectorStorageDatatype.Float16
            if schema.datatype == "float16"
            else qe.VectorStorageDatatype.Float32
        )
        graph = qe.HnswIndexConfig(
            m=schema.hnsw_m, ef_construct=schema.hnsw_ef_construct, full_scan_threshold=10_000
        )
        return qe.EdgeConfig(
            vectors={
                MUVERA_VECTOR: qe.EdgeVectorParams(
                    size=schema.fde_dim,
                    distance=qe.Distance.Dot,
                    datatype=qe.VectorStorageDatatype.Float16,
                    hnsw_config=graph,
                ),
                COLBERT_VECTOR: qe.EdgeVectorParams(
                    size=schema.dim,
                    distance=qe.Distance.Dot,
                    datatype=datatype,
                    multivector_config=qe.MultiVectorConfig(qe.MultiVectorComparator.MaxSim),
                    hnsw_config=qe.HnswIndexConfig(m=0, ef_construct=4, full_scan_threshold=10_000),
                ),
            },
            # Any segment is worth a graph once build() asks for one.
            optimizers=qe.EdgeOptimizersConfig(indexing_threshold=1),
        )

    def ensure(self, schema: Schema) -> None:
        if self.exists():
            config = json.loads((self.root / EDGE_CONFIG).read_text(encoding="utf-8"))
            sizes = {name: int(p["size"]) for name, p in config.get("vectors", {}).items()}
            check_sizes(self.root, sizes, schema)
            return
        self._shard = self._qe.EdgeShard.create(str(self.root), self._config(schema))

    def drop(self) -> None:
        if not self.exists():
            return
        self._shard.close()
        self._shard = None
        # Only a directory that is a shard (checked when it was opened) is emptied.
        for child in self.root.iterdir():
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()

    def upsert(self, points: Points) -> None:
        qe = self._qe
        batch = [
            qe.Point(pid, {MUVERA_VECTOR: fde, COLBERT_VECTOR: vectors}, payload)
            for pid, fde, vectors, payload in zip(
                points.ids, points.fdes, points.vectors, points.payloads, strict=True
            )
        ]
        self._shard.update(qe.UpdateOperation.upsert_points(batch))

    def delete(self, keys: Sequence[object]) -> None:
        if keys and self.exists():
            self._shard.update(self._qe.UpdateOperation.delete_points(list(keys)))

    def digests(self) -> Iterator[tuple[object, str | None, object]]:
        if not self.exists():
            return
        offset = None
        while True:
            request = self._qe.ScrollRequest(
                offset=offset, limit=1024, with_payload=[PAYLOAD_ID, "digest"], with_vector=False
            )
            records, offset = self._shard.scroll(request)
            for record in records:
                if str(record.id) == OWNER_POINT:
                    continue
                payload = record.payload or {}
                yield str(record.id), point_latecore_id(record.id, payload), payload.get("digest")
            if offset is None:
                return

    def vectors(self, ids: Sequence[str]) -> dict[str, Any]:
        wanted = {point_id(i): i for i in ids}
        # qdrant-edge 0.9's stub names with_payload as a keyword; it is positional.
        records = self._shard.retrieve(list(wanted), False, [COLBERT_VECTOR])
        return {
            wanted[str(r.id)]: r.vector[COLBERT_VECTOR]
            for r in records
            if r.vector and COLBERT_VECTOR in r.vector and str(r.id) in wanted
        }

    @property
    def filter_class(self) -> type:
        return self._qe.Filter

    def condition(self, node: Condition) -> Any:
        qe = self._qe
        if node.kind in ("must", "should", "must_not"):
            return qe.Filter(**{node.kind: [self.condition(c) for c in node.children]})
        if node.kind == "match":
            return qe.FieldCondition(node.key, match=qe.MatchValue(node.value))
        if node.kind == "match_any":
            return qe.FieldCondition(node.key, match=qe.MatchAny(list(node.values)))
        if node.kind == "range":
            return qe.FieldCondition(node.key, range=qe.RangeFloat(**dict(node.bounds)))
        if node.kind == "is_null":
            return qe.IsNullCondition(node.key)
        if node.kind == "is_empty":
            return qe.IsEmptyCondition(node.key)
        return qe.HasIdCondition(set(node.values))

    def create_indexes(self, fields: dict[str, PayloadType]) -> None:
        """Payload indexes on ``fields`` (field -> type); existing ones are kept."""
        types = {
            "keyword": self._qe.PayloadSchemaType.Keyword,
            "float": self._qe.PayloadSchemaType.Float,
            "bool": self._qe.PayloadSchemaType.Bool,
        }
        for field, kind in fields.items():
            self._shard.update(self._qe.UpdateOperation.create_field_index(field, types[kind]))

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
        qe = self._qe
        params = qe.SearchParams(hnsw_ef=hnsw_ef) if hnsw_ef else None
        where = None if condition is None else self.filter(condition)
        requests = []
        for i, query in enumerate(queries):
            stages = None
            if fdes is not None:
                first = qe.Query.Nearest(fdes[i], using=MUVERA_VECTOR)
                stages = [qe.Prefetch(limit=prefetch, query=first, params=params, filter=where)]
            requests.append(
                qe.QueryRequest(
                    limit=limit,
                    query=qe.Query.Nearest(np.asarray(query, np.float32), using=COLBERT_VECTOR),
                    prefetches=stages,
                    with_payload=[PAYLOAD_ID],
                    with_vector=[COLBERT_VECTOR] if with_vectors else None,
                    filter=where,
                )
            )
        responses = self._shard.query_batch(qe.QueryBatchRequest(requests))
        return [
            [
                Candidate(
                    (p.payload or {}).get(PAYLOAD_ID),
                    p.score,
                    (p.vector or {}).get(COLBERT_VECTOR) if with_vectors else None,
                )
                for p in response
            ]
            for response in responses
        ]

    def optimize(self) -> None:
        if self.exists():
            self._shard.optimize()

    def flush(self) -> None:
        if self.exists():
            self._shard.flush()

    def close(self) -> None:
        if self._shard is not None:
            self._shard.close()
            self._shard = None
