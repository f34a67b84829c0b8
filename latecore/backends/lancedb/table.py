"""The calls to one LanceDB table, and the Arrow form of its rows."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import timedelta
from typing import Any

import numpy as np

from ..mirror import Candidate, MirrorTable, batches

__all__ = [
    "ID_COLUMN",
    "VECTOR_COLUMN",
    "LanceTable",
    "arrays",
    "import_lancedb",
    "metadata_json",
    "utf8",
]

ID_COLUMN = "latecore_id"
VECTOR_COLUMN = "vectors"
EXTRA_HINT = "pip install 'latecore[lancedb]'"
OWNER_METADATA = "latecore:owner"
"""The id column's metadata key that holds the table's owner record (JSON)."""
_FILTER_BATCH = 1024
"""Ids per ``latecore_id IN (...)`` filter."""


def import_lancedb() -> Any:
    """The ``lancedb`` module, or an ``ImportError`` naming the extra."""
    try:
        import lancedb
        import pyarrow  # noqa: F401  (lancedb's own dependency; named if it is missing)
    except ImportError as error:
        raise ImportError(
            f"the 'lancedb' backend needs lancedb, which is not installed: {EXTRA_HINT}"
        ) from error
    return lancedb


def utf8(text: str) -> str:
    """``text`` if it is valid Unicode text, else with lone surrogates escaped (for Arrow).

    Examples
    --------
    >>> utf8("ok"), len(utf8(chr(0xD800)))  # the surrogate as the 6 characters \\ud800
    ('ok', 6)
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def metadata_json(metadata: Mapping[str, Any]) -> str:
    """Metadata as the JSON text the ``metadata`` column holds.

    Raises
    ------
    TypeError
        If it is not JSON-serialisable.
    """
    try:
        encoded = json.dumps(dict(metadata), sort_keys=True, ensure_ascii=False)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"the 'lancedb' backend stores metadata as JSON; this metadata is not "
            f"JSON-serialisable: {error}"
        ) from error
    return encoded if utf8(encoded) == encoded else json.dumps(dict(metadata), sort_keys=True)


class LanceTable(MirrorTable):
    """The calls to one LanceDB table (opened lazily, created by :meth:`ensure`)."""

    def __init__(self, db: Any, name: str, datatype: str) -> None:
        self._db = db
        self.name = name
        self._datatype = datatype
        self._table: Any = None

    def open(self) -> Any:
        """The ``lancedb`` table, or ``None`` if it does not exist yet."""
        if self._db is None:
            raise RuntimeError(f"the LanceDB table {self.name!r} is closed")
        if self._table is None:
            try:
                self._table = self._db.open_table(self.name)
            except ValueError as error:
                if "not found" not in str(error):
                    raise
        return self._table

    def schema(self, dim: int) -> Any:
        import pyarrow as pa

        value = pa.float16() if self._datatype == "float16" else pa.float32()
        return pa.schema(
            [
                pa.field(ID_COLUMN, pa.string(), nullable=False),
                pa.field("text", pa.string()),
                pa.field("metadata", pa.string()),
                pa.field("digest", pa.string()),
                pa.field(VECTOR_COLUMN, pa.list_(pa.list_(value, dim))),
            ]
        )

    def ensure(self, dim: int, where: str) -> Any:
        """The table, created for ``dim``-dimensional vectors if missing; else checked."""
        table = self.open()
        wanted = self.schema(dim)
        if table is None:
            self._table = self._db.create_table(self.name, schema=wanted)
            return self._table
        have = table.schema
        fields = {name: have.field(name).type for name in have.names}
        if any(fields.get(f.name) != f.type for f in wanted):
            raise ValueError(
                f"the LanceDB table ({where}) has columns {fields}, but this index needs "
                f"{ {f.name: f.type for f in wanted} } (token dimension {dim}, datatype "
                f"{self._datatype!r}); choose another uri or table_name (a saved "
                "index is then re-indexed from its saved vectors), or give a new index "
                "recreate=True to replace it"
            )
        return table

    def exists(self) -> bool:
        return self.open() is not None

    def count(self) -> int:
        table = self.open()
        return 0 if table is None else int(table.count_rows())

    def owner(self) -> dict[str, Any] | None:
        table = self.open()
        if table is None:
            return None
        metadata = table.schema.field(ID_COLUMN).metadata or {}
        raw = metadata.get(OWNER_METADATA.encode())
        try:
            found = json.loads(raw) if raw is not None else None
        except ValueError:
            return None
        return found if isinstance(found, dict) else None

    def set_owner(self, owner: dict[str, Any]) -> None:
        self.open().update_field_metadata(
            {"path": ID_COLUMN, "metadata": {OWNER_METADATA: json.dumps(owner, sort_keys=True)}}
        )

    def drop(self) -> None:
        if self.open() is not None:
            self._db.drop_table(self.name)
            self._table = None

    def key(self, doc_id: str) -> object:
        return doc_id

    def _rows(self, ids: Iterable[str]) -> Any:
        """Where ``latecore_id`` is one of ``ids`` (a typed expression: nothing is quoted)."""
        from lancedb.expr import col

        return col(ID_COLUMN).isin(list(ids))

    def delete(self, keys: Sequence[object]) -> None:
        table = self.open()
        if table is None:
            return
        for chunk in batches([k for k in keys if isinstance(k, str)], _FILTER_BATCH):
            table.delete(self._rows(chunk))
        if any(k is None for k in keys):
            table.delete(f"{ID_COLUMN} IS NULL")

    def scan(self, columns: list[str], ids: Sequence[str] | None = None) -> Iterator[Any]:
        """Arrow tables of ``columns`` of every row, or of the rows of ``ids``."""
        table = self.open()
        if table is None:
            return
        chunks: Iterable[Sequence[str] | None] = (
            [None] if ids is None else batches(ids, _FILTER_BATCH)
        )
        for chunk in chunks:
            query = table.search().select(columns).limit(None)
            if chunk is not None:
                query = query.where(self._rows(chunk))
            yield query.to_arrow()

    def digests(self) -> Iterator[tuple[object, str | None, object]]:
        for chunk in self.scan([ID_COLUMN, "digest"]):
            for doc_id, digest in zip(
                chunk[ID_COLUMN].to_pylist(), chunk["digest"].to_pylist(), strict=True
            ):
                yield doc_id, doc_id if isinstance(doc_id, str) else None, digest

    def vectors(self, ids: Sequence[str]) -> dict[str, Any]:
        found: dict[str, np.ndarray] = {}
        for chunk in self.scan([ID_COLUMN, VECTOR_COLUMN], list(ids)):
            column = chunk[VECTOR_COLUMN].combine_chunks()
            for doc_id, array in zip(chunk[ID_COLUMN].to_pylist(), arrays(column), strict=True):
                if array is not None:
                    found.setdefault(doc_id, array)
        return found

    def upsert(self, data: Any) -> None:
        table = self.open()
        (
            table.merge_insert(ID_COLUMN)
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute(data)
        )

    def query(
        self,
        query: np.ndarray,
        limit: int,
        nprobes: int,
        refine_factor: int | None,
        with_vectors: bool,
        ids: Sequence[str] | None = None,
    ) -> list[Candidate]:
        table = self.open()
        if table is None:
            return []
        columns = [ID_COLUMN, "_distance", *([VECTOR_COLUMN] if with_vectors else [])]
        request = (
            table.search(np.asarray(query, dtype=np.float32), vector_column_name=VECTOR_COLUMN)
            .distance_type("cosine")
            .select(columns)
            .limit(limit)
            .nprobes(nprobes)
        )
        if refine_factor is not None:
            request = request.refine_factor(refine_factor)
        if ids is not None:
            request = request.where(self._rows(ids), prefilter=True)
        found = request.to_arrow()
        ids = found[ID_COLUMN].to_pylist()
        distances = found["_distance"].to_pylist()
        vectors = (
            arrays(found[VECTOR_COLUMN].combine_chunks()) if with_vectors else [None] * len(ids)
        )
        n_tokens = int(np.shape(query)[0])
        return [
            Candidate(doc_id, n_tokens - float(distance), v)
            for doc_id, distance, v in zip(ids, distances, vectors, strict=True)
        ]

    def optimize(self, keep_versions_s: int = 3600) -> None:
        table = self.open()
        if table is None:
            return
        with warnings.catch_warnings():
            # keep_versions_s=0 is a choice made knowingly (no other reader).
            warnings.filterwarnings("ignore", message=r"optimize\(cleanup_older_than=0\)")
            table.optimize(cleanup_older_than=timedelta(seconds=keep_versions_s))

    def close(self) -> None:
        self._table = None
        self._db = None


def arrays(column: Any) -> list[np.ndarray | None]:
    """Each row of a ``list<fixed_size_list<float, dim>>`` Arrow array as ``(n_tokens, dim)``."""
    dim = column.type.value_type.list_size
    values = column.flatten().flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
    lengths = column.value_lengths().fill_null(0).to_numpy(zero_copy_only=False)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    valid = column.is_valid().to_numpy(zero_copy_only=False)
    return [
        values[offsets[i] : offsets[i + 1]] if valid[i] and lengths[i] else None
        for i in range(len(column))
    ]
