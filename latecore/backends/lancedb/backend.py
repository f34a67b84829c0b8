"""``LanceDBBackend``: the mirror backend over a LanceDB table."""

from __future__ import annotations

import logging
import math
import os
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ...store import Selection, StoreView
from ...validation import (
    FLOAT_DTYPES,
    check_count,
    check_dtype,
    check_optional_count,
    check_positive,
)
from ..base import document_digest
from ..mirror import Candidate, MirrorBackend
from .table import ID_COLUMN, VECTOR_COLUMN, LanceTable, import_lancedb, metadata_json, utf8

__all__ = ["LanceDBBackend", "public_storage_options"]

logger = logging.getLogger(__name__)

POSTFILTER_SHARE = 0.25
"""A filter holding for this share of the documents or more is applied after LanceDB's
search, which is asked for ``limit / sqrt(share)`` rows (docs/benchmarks.md)."""

_SECRET = re.compile(r"key|secret|token|password|credential|sas|session|signature", re.IGNORECASE)
_TABLE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def public_storage_options(options: Mapping[str, str] | None) -> dict[str, str]:
    """The storage options that may be saved: those whose name does not look like a secret.

    Examples
    --------
    >>> public_storage_options({"region": "eu-west-1", "aws_secret_access_key": "x",
    ...                         "aws_access_key_id": "y", "allow_http": "true"})
    {'region': 'eu-west-1', 'allow_http': 'true'}
    """
    return {k: v for k, v in (options or {}).items() if not _SECRET.search(k)}


def _digest(vectors: np.ndarray, text: str, metadata: Mapping[str, Any]) -> str:
    """:func:`~latecore.backends.base.document_digest`, salted with the vectors' shape."""
    return document_digest(vectors, text, metadata, repr(np.shape(vectors)).encode("ascii"))


class LanceDBBackend(MirrorBackend):
    """Candidates from a LanceDB table's multivector search; exact MaxSim scores.

    Parameters
    ----------
    uri
        A local directory (a LanceDB database; created if missing) or an
        object-store URI passed to ``lancedb.connect``. Default: a temporary
        directory, removed by :meth:`close` (a saved index then re-indexes its
        documents into a new one on load).
    table_name
        The table this index owns in that database.
    storage_options
        Passed to ``lancedb.connect`` (object-store credentials, region,
        endpoint). Saved with the index without any option whose name looks
        like a secret (``key``, ``secret``, ``token``, ...): pass those again
        to :meth:`~latecore.index.LateIndex.load`.
    n_candidates
        Rows LanceDB returns per query (at least ``k``), re-scored exactly.
    nprobes
        IVF partitions probed per query token once the index is built: more
        finds more of the exact top ``k`` and costs time (LanceDB runs one IVF
        search per query token). The defaults of this and ``n_candidates``
        come from the 100k benchmark (docs/benchmarks.md).
    refine_factor
        With an index, LanceDB re-reads the stored vectors of this many times
        ``n_candidates`` rows to order them by their exact distance (``None``:
        no refinement; the approximate PQ distances order them).
    num_partitions, num_sub_vectors, num_bits, max_iterations, sample_rate
        IVF-PQ settings of :meth:`build` (``num_partitions=None``: LanceDB's
        default, about one partition per 8,192 token vectors;
        ``num_sub_vectors=None``: ``dim / 4`` where 4 divides the dimension,
        which recalled far more than LanceDB's ``dim / 16`` here, else
        LanceDB's default); ``num_sub_vectors`` must divide the token
        dimension, ``num_bits`` is 4 or 8.
    build_min
        :meth:`build` trains no IVF-PQ index below this many rows: searches
        scan every row (and LanceDB's order is then exact MaxSim's).
    optimize_after
        :meth:`add` runs LanceDB's ``optimize`` (compaction; new rows into an
        existing index) once this many rows were written since the last one
        (``None``: only :meth:`build` does).
    keep_versions_s
        ``optimize`` removes table versions older than this many seconds
        (readers in other processes may still be using recent ones).
    datatype
        Storage type of the token vectors in the table: ``"float16"`` (default)
        or ``"float32"``.
    batch_size
        Rows per upsert (one LanceDB commit each).
    take_over
        Load an index into a table another index owns (a copy of it, or another
        index), making it the owner; the other index is refused from then on.
    recreate
        A new index whose table already holds rows replaces it when ``True``;
        by default that is an error (it may be another index's).
    show_progress
        A tqdm bar over upsert batches; ``None`` follows ``$LATECORE_PROGRESS``.

    Raises
    ------
    ImportError
        If lancedb is not installed (``pip install 'latecore[lancedb]'``).
    ValueError
        If an option is out of range.

    Examples
    --------
    >>> from latecore import LateIndex
    >>> from latecore.testing import FakeEncoder
    >>> index = LateIndex(FakeEncoder(), backend="lancedb")
    >>> index.add(["paris is in france", "berlin is in germany"], ids=["p", "b"])
    ['p', 'b']
    >>> [hit.id for hit in index.search("where is berlin", k=1)]
    ['b']
    >>> index.backend.table.count_rows()
    2
    >>> index.close()
    """

    name = "lancedb"
    exact_share = 0.25
    """LanceDB's prefilter on ids costs more than exact MaxSim over up to a quarter of
    the documents (docs/benchmarks.md#filtered-search-at-100000-documents)."""
    label = "LanceDB table"
    location_options = "uri or table_name"
    temporary_hint = " (a temporary table keeps nothing: give uri=)"

    def __init__(
        self,
        *,
        uri: str | os.PathLike[str] | None = None,
        table_name: str = "latecore",
        storage_options: Mapping[str, str] | None = None,
        n_candidates: int = 400,
        nprobes: int = 2,
        refine_factor: int | None = None,
        num_partitions: int | None = None,
        num_sub_vectors: int | None = None,
        num_bits: int = 8,
        max_iterations: int = 50,
        sample_rate: int = 256,
        build_min: int = 5_000,
        optimize_after: int | None = 20_000,
        keep_versions_s: int = 3600,
        datatype: Literal["float16", "float32"] = "float16",
        batch_size: int = 10_000,
        recreate: bool = False,
        take_over: bool = False,
        show_progress: bool | None = None,
    ) -> None:
        check_dtype(datatype, "datatype", allowed=FLOAT_DTYPES)
        for name, value in {
            "n_candidates": n_candidates,
            "nprobes": nprobes,
            "max_iterations": max_iterations,
            "sample_rate": sample_rate,
            "batch_size": batch_size,
        }.items():
            check_positive(value, name)
        for name, optional in {
            "refine_factor": refine_factor,
            "num_partitions": num_partitions,
            "num_sub_vectors": num_sub_vectors,
            "optimize_after": optimize_after,
        }.items():
            check_optional_count(optional, name, minimum=1)
        check_count(build_min, "build_min")
        check_count(keep_versions_s, "keep_versions_s")
        if num_bits not in (4, 8):
            raise ValueError(f"num_bits must be 4 or 8, got {num_bits!r}")
        if not isinstance(table_name, str) or not _TABLE_NAME.fullmatch(table_name):
            raise ValueError(
                "table_name must be letters, digits, '_', '-' or '.' (not first), "
                f"got {table_name!r}"
            )
        if storage_options is not None and not (
            isinstance(storage_options, Mapping)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in storage_options.items())
        ):
            raise ValueError("storage_options must map option names to strings")
        lancedb = import_lancedb()
        super().__init__(recreate=recreate, take_over=take_over, show_progress=show_progress)
        self._settings = {
            "n_candidates": n_candidates,
            "nprobes": nprobes,
            "refine_factor": refine_factor,
            "num_partitions": num_partitions,
            "num_sub_vectors": num_sub_vectors,
            "num_bits": num_bits,
            "max_iterations": max_iterations,
            "sample_rate": sample_rate,
            "build_min": build_min,
            "optimize_after": optimize_after,
            "keep_versions_s": keep_versions_s,
            "datatype": datatype,
            "batch_size": batch_size,
        }
        self._connection: dict[str, Any] = {"table_name": table_name}
        self.table_name = table_name
        secrets = dict(storage_options or {})

        def table_at(location: str | Path) -> LanceTable:
            self.uri = str(location)
            db = lancedb.connect(self.uri, storage_options=secrets)
            return LanceTable(db, table_name, datatype)

        location = None if uri is None else os.fspath(uri)
        if location is not None and "://" in location:
            self._use_remote_table(table_at(location))
        else:
            path = None
            if location is not None:
                path = Path(location).expanduser().resolve()
                if path.exists() and not path.is_dir():
                    raise ValueError(f"{path} is not a directory; give a directory for the table")
            self._use_local_table(table_at, path)
        if location is not None:
            self._connection["uri"] = self.uri
        saved_options = public_storage_options(storage_options)
        if saved_options:
            self._connection["storage_options"] = saved_options

    @property
    def options(self) -> dict[str, Any]:
        """Uri (unless temporary), table name, storage options without secrets, settings."""
        return {**self._connection, **self._settings}

    @classmethod
    def merge_options(
        cls, saved: Mapping[str, Any], overrides: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Saved options updated by ``overrides``: a new ``uri`` drops the saved storage
        options; ``storage_options`` given to load are added to the saved ones.

        Examples
        --------
        >>> saved = {"uri": "s3://b/db", "storage_options": {"region": "eu"}, "nprobes": 8}
        >>> LanceDBBackend.merge_options(saved, {"storage_options": {"aws_secret_access_key": "s"}})
        {'uri': 's3://b/db', 'storage_options': {'region': 'eu', 'aws_secret_access_key': 's'}, 'nprobes': 8}
        >>> LanceDBBackend.merge_options(saved, {"uri": "/data/db"})
        {'uri': '/data/db', 'nprobes': 8}
        """  # noqa: E501
        options = dict(saved)
        overrides = dict(overrides)
        if "uri" in overrides:
            options.pop("storage_options", None)
        elif overrides.get("storage_options") is not None:
            merged = {**options.get("storage_options", {}), **overrides["storage_options"]}
            overrides["storage_options"] = merged
        options.update(overrides)
        return options

    def __repr__(self) -> str:
        return f"LanceDBBackend(table {self.table_name!r} at {self.uri})"

    @property
    def index_directory(self) -> Path | None:
        if "://" in self.uri:
            return None
        table = Path(self.uri) / f"{self.table_name}.lance"
        return table if table.is_dir() else Path(self.uri)

    @property
    def table(self) -> Any:
        """The ``lancedb`` table (``None`` until the first document is added)."""
        return self._lance.open()

    @property
    def _lance(self) -> LanceTable:
        table = self._engine
        assert isinstance(table, LanceTable)
        return table

    # --- the mirror hooks -----------------------------------------------------------------

    def _check_documents(
        self, ids: Sequence[str], texts: Sequence[str], metadatas: Sequence[Mapping[str, Any]]
    ) -> None:
        bad = [i for i in ids if utf8(i) != i]
        if bad:
            raise ValueError(
                f"the 'lancedb' backend needs document ids that are valid Unicode text; "
                f"these contain lone surrogates: {bad[:5]!r}"
            )
        for metadata in metadatas:
            metadata_json(metadata)

    def _ensure(self, dim: int) -> None:
        self._lance.ensure(dim, repr(self))

    def _digest(self, vectors: np.ndarray, text: str, metadata: Mapping[str, Any]) -> str:
        return _digest(vectors, text, metadata)

    def _write(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        metadatas: Sequence[Mapping[str, Any]],
        vectors: Sequence[np.ndarray],
        digests: Sequence[str],
    ) -> None:
        import pyarrow as pa

        dim = int(vectors[0].shape[1])
        lengths = np.array([a.shape[0] for a in vectors], dtype=np.int64)
        flat = np.concatenate(vectors).reshape(-1)
        tokens = pa.FixedSizeListArray.from_arrays(pa.array(flat), dim)
        offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
        data = pa.table(
            {
                ID_COLUMN: pa.array(list(ids), pa.string()),
                "text": pa.array([utf8(t) for t in texts], pa.string()),
                "metadata": pa.array([metadata_json(m) for m in metadatas], pa.string()),
                "digest": pa.array(list(digests), pa.string()),
                VECTOR_COLUMN: pa.ListArray.from_arrays(offsets, tokens),
            },
            schema=self._lance.schema(dim),
        )
        self._lance.upsert(data)

    def _limit(self, k: int) -> int:
        return max(int(self._settings["n_candidates"]), k)

    def _query(
        self,
        store: StoreView,
        queries: Sequence[np.ndarray],
        limit: int,
        with_vectors: bool,
        where: Selection | None,
    ) -> list[list[Candidate]]:
        settings = self._settings
        # latecore keeps metadata as JSON text in the table, so a filter reaches LanceDB as
        # a prefilter on the ids of the documents it holds for: a typed expression, into
        # which no filter value is ever written. Its cost grows with the ids; a filter
        # holding for POSTFILTER_SHARE of the documents or more asks for limit / sqrt(share)
        # rows unfiltered instead (the search keeps only the matching ones): at 50%,
        # limit / share cost 1.3x the unfiltered search for 0.988 recall, limit alone
        # 0.9x for 0.965, the square root 1.1x for 0.980 (docs/benchmarks.md).
        ids = None if where is None else [store.ids[p] for p in where.positions.tolist()]
        share = len(ids) / max(len(store), 1) if ids is not None else 1.0
        if ids is not None and share >= POSTFILTER_SHARE:
            ids, limit = None, math.ceil(limit / math.sqrt(share))
        return [
            self._lance.query(
                query, limit, settings["nprobes"], settings["refine_factor"], with_vectors, ids
            )
            for query in queries
        ]

    def _optimize(self) -> None:
        started = time.perf_counter()
        self._lance.optimize(self._settings["keep_versions_s"])
        logger.info("LanceDB optimized in %.1f s", time.perf_counter() - started)
        self._unoptimized = 0

    def build(self, store: StoreView) -> None:
        """Compact the table, then train the IVF-PQ index (at ``build_min`` rows or more)."""
        table = self.table
        if table is None:
            return
        self._optimize()
        rows = int(table.count_rows())
        if rows < self._settings["build_min"]:
            logger.info("LanceDB: %d rows, below build_min: searches scan every row", rows)
            return
        from lancedb.index import BTree, IvfPq

        settings = self._settings
        dim = int(table.schema.field(VECTOR_COLUMN).type.value_type.list_size)
        sub_vectors = settings["num_sub_vectors"]
        if sub_vectors is None and dim % 4 == 0:
            sub_vectors = dim // 4
        if sub_vectors is not None and dim % sub_vectors:
            raise ValueError(f"num_sub_vectors ({sub_vectors}) must divide the dimension ({dim})")
        started = time.perf_counter()
        table.create_index(
            VECTOR_COLUMN,
            config=IvfPq(
                distance_type="cosine",
                num_partitions=settings["num_partitions"],
                num_sub_vectors=sub_vectors,
                num_bits=settings["num_bits"],
                max_iterations=settings["max_iterations"],
                sample_rate=settings["sample_rate"],
            ),
            replace=True,
        )
        table.create_index(ID_COLUMN, config=BTree(), replace=True)
        logger.info(
            "LanceDB: IVF-PQ index over %d rows built in %.1f s",
            rows,
            time.perf_counter() - started,
        )
