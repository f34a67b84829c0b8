"""The ``lancedb`` backend: a LanceDB table proposes candidates by its multivector search.

Each document is one row of a LanceDB table (``table_name``, default
``"latecore"``) with five columns:

- ``latecore_id`` (string): the document id, the key of every upsert and delete;
- ``text`` and ``metadata`` (the metadata as a JSON string): copies for
  anyone reading the table directly (latecore reads them from its store);
- ``digest``: a hash of the vectors, text and metadata, used to re-synchronise;
- ``vectors``: the token vectors, ``list<fixed_size_list<float16, dim>>``
  (``datatype="float32"`` for float32): LanceDB's multivector type.

A query is one LanceDB multivector search: the engine sums, over the query's
tokens, each token's best cosine similarity to the row's tokens (MaxSim) and
returns the best ``n_candidates`` rows, which are then re-scored by exact
MaxSim (:meth:`~latecore.store.StoreView.rank`), so the scores equal
``exact``'s. LanceDB supports only the cosine metric for multivectors; latecore's
token vectors are unit length, so cosine is their dot product and LanceDB's
``_distance`` of a row scanned in full is ``n_query_tokens - MaxSim`` (to
float16 rounding of the stored vectors; checked in the tests).

Indexing. Below ``build_min`` rows, or until :meth:`LanceDBBackend.build`
(``LateIndex.build()``), every search scans every row: LanceDB's ordering is
then exact MaxSim's. :meth:`~LanceDBBackend.build` trains an IVF-PQ index over
every token vector of the ``vectors`` column (``num_partitions``,
``num_sub_vectors``, ``num_bits``, ``max_iterations``, ``sample_rate``) and a
B-tree over ``latecore_id``; a search then probes ``nprobes`` partitions per
query token, with approximate distances (``refine_factor`` re-reads the stored
vectors of ``refine_factor * n_candidates`` rows to order them exactly).
Rows written after the build are scanned in full by every search until the
next optimisation: :meth:`~LanceDBBackend.add` runs LanceDB's ``optimize``
(compaction, old versions older than ``keep_versions_s`` removed, new rows
added to the index without retraining it) once ``optimize_after`` rows were
written since the last one.

Where the table lives: ``uri`` is a local directory (a LanceDB database: the
table is ``<uri>/<table_name>.lance``), by default a temporary one removed by
:meth:`LanceDBBackend.close` or at exit; or an object-store URI (``s3://``,
``gs://``, ``az://``) passed through to ``lancedb.connect`` with
``storage_options``.

Saving and loading. :meth:`~latecore.index.LateIndex.save` records the uri, the
table name and the settings (storage options only without anything that looks
like a secret: pass those again to :meth:`~latecore.index.LateIndex.load`); the
table stays where it is. :meth:`~latecore.index.LateIndex.load` re-synchronises
the table with the saved documents by digest: missing or changed rows are
upserted, unknown ones deleted (the table belongs to the index). When the index
keeps its token vectors only in the table (``vectors="engine"``), only unknown
rows can be repaired: a document the table lost is an
:class:`~latecore.errors.IndexFormatError`.

Requires ``pip install 'latecore[lancedb]'``. Nothing is pickled: the table is
Lance's own format (Arrow-based data files, protobuf manifests).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import time
import warnings
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .._validation import check_count, check_dtype, check_optional_count, check_positive
from ..encoder import progress_enabled
from ..errors import IndexFormatError
from ..store import StoreView
from .base import Backend, Ranking, SavedState, changed_positions, document_digest

__all__ = ["LanceDBBackend", "public_storage_options"]

logger = logging.getLogger(__name__)

ID_COLUMN = "latecore_id"
VECTOR_COLUMN = "vectors"
_COLUMNS = (ID_COLUMN, "text", "metadata", "digest", VECTOR_COLUMN)
_EXTRA_HINT = "pip install 'latecore[lancedb]'"
_FILTER_BATCH = 1024
"""Ids per ``latecore_id IN (...)`` filter."""
_SECRET = re.compile(r"key|secret|token|password|credential|sas|session|signature", re.IGNORECASE)
_TABLE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def _import_lancedb() -> Any:
    try:
        import lancedb
        import pyarrow  # noqa: F401  (lancedb's own dependency; named if it is missing)
    except ImportError as error:
        raise ImportError(
            f"the 'lancedb' backend needs lancedb, which is not installed: {_EXTRA_HINT}"
        ) from error
    return lancedb


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


def _utf8(text: str) -> str:
    """``text`` if it is valid Unicode text, else with lone surrogates escaped (for Arrow)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _metadata_json(metadata: Mapping[str, Any]) -> str:
    try:
        encoded = json.dumps(dict(metadata), sort_keys=True, ensure_ascii=False)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"the 'lancedb' backend stores metadata as JSON; this metadata is not "
            f"JSON-serialisable: {error}"
        ) from error
    return encoded if _utf8(encoded) == encoded else json.dumps(dict(metadata), sort_keys=True)


def _check_ids(ids: Sequence[str]) -> None:
    bad = [i for i in ids if _utf8(i) != i]
    if bad:
        raise ValueError(
            f"the 'lancedb' backend needs document ids that are valid Unicode text; "
            f"these contain lone surrogates: {bad[:5]!r}"
        )


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class _TableDirectory:
    """A temporary database directory, removed by a finalizer if not before."""

    def __init__(self, root: Path | None) -> None:
        self.root = root

    def release(self) -> None:
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None


class LanceDBBackend(Backend):
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
        finds more of the exact top ``k`` and costs time. The defaults come from
        ``benchmarks/bench_backends.py`` (100k documents, 4.55M token vectors,
        2 CPU cores, 400 candidates): ``nprobes`` 2 -> recall@10 0.969 at
        228 ms per query (exact MaxSim: 403 ms), 5 -> 0.987 at 454 ms, 20 ->
        0.989 at 1.2 s; with ``nprobes=20``, 100 candidates -> 0.83, 200 -> 0.94.
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
    serves_vectors = True

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
        show_progress: bool | None = None,
    ) -> None:
        check_dtype(datatype, "datatype")
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
        lancedb = _import_lancedb()
        self._settings: dict[str, Any] = {
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
        if uri is None:
            location = tempfile.mkdtemp(prefix="latecore-lancedb-")
            self._temporary = _TableDirectory(Path(location))
        else:
            self._temporary = _TableDirectory(None)
            location = os.fspath(uri)
            if "://" not in location:
                path = Path(location).expanduser().resolve()
                if path.exists() and not path.is_dir():
                    raise ValueError(f"{path} is not a directory; give a directory for the table")
                path.mkdir(parents=True, exist_ok=True)
                location = str(path)
            self._connection["uri"] = location
        self._finalizer = weakref.finalize(self, self._temporary.release)
        saved_options = public_storage_options(storage_options)
        if saved_options:
            self._connection["storage_options"] = saved_options
        self.uri = location
        self.table_name = table_name
        self.recreate = recreate
        self.show_progress = progress_enabled(show_progress)
        self._db: Any = lancedb.connect(location, storage_options=dict(storage_options or {}))
        self._table: Any = None
        self._written = 0

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
    def table(self) -> Any:
        """The ``lancedb`` table (``None`` until the first document is added)."""
        return self._open()

    # --- the table ---------------------------------------------------------------------------

    def _open(self) -> Any:
        if self._db is None:
            raise RuntimeError(f"{self!r} is closed")
        if self._table is None:
            try:
                self._table = self._db.open_table(self.table_name)
            except ValueError as error:
                if "not found" not in str(error):
                    raise
        return self._table

    def _schema(self, dim: int) -> Any:
        import pyarrow as pa

        value = pa.float16() if self._settings["datatype"] == "float16" else pa.float32()
        return pa.schema(
            [
                pa.field(ID_COLUMN, pa.string(), nullable=False),
                pa.field("text", pa.string()),
                pa.field("metadata", pa.string()),
                pa.field("digest", pa.string()),
                pa.field(VECTOR_COLUMN, pa.list_(pa.list_(value, dim))),
            ]
        )

    def _ensure(self, dim: int) -> Any:
        """The table (created for ``dim``-dimensional vectors if missing; else checked)."""
        table = self._open()
        wanted = self._schema(dim)
        if table is None:
            self._table = self._db.create_table(self.table_name, schema=wanted)
            return self._table
        have = table.schema
        fields = {name: have.field(name).type for name in have.names}
        if any(fields.get(f.name) != f.type for f in wanted):
            raise ValueError(
                f"the LanceDB table ({self!r}) has columns {fields}, but this index needs "
                f"{ {f.name: f.type for f in wanted} } (token dimension {dim}, datatype "
                f"{self._settings['datatype']!r}); choose another uri or table_name (a saved "
                "index is then re-indexed from its saved vectors), or give a new index "
                "recreate=True to replace it"
            )
        return table

    def _drop(self) -> None:
        if self._open() is not None:
            self._db.drop_table(self.table_name)
            self._table = None

    def _rows(self, ids: Iterable[str]) -> Any:
        """Where ``latecore_id`` is one of ``ids`` (a typed expression: nothing is quoted)."""
        from lancedb.expr import col

        return col(ID_COLUMN).isin(list(ids))

    def _scan(self, columns: list[str], ids: Sequence[str] | None = None) -> Iterator[Any]:
        """Arrow tables of ``columns`` of every row, or of the rows of ``ids``."""
        table = self._open()
        if table is None:
            return
        chunks: Iterable[Sequence[str] | None] = (
            [None] if ids is None else _batches(ids, _FILTER_BATCH)
        )
        for chunk in chunks:
            query = table.search().select(columns).limit(None)
            if chunk is not None:
                query = query.where(self._rows(chunk))
            yield query.to_arrow()

    # --- the protocol ------------------------------------------------------------------------

    def attach(self, store: StoreView, saved: SavedState | None) -> None:
        """A new index claims its table (empty); a loaded one re-synchronises it."""
        if saved is None and not len(store):
            table = self._open()
            count = 0 if table is None else int(table.count_rows())
            if count and not self.recreate:
                raise ValueError(
                    f"the LanceDB table ({self!r}) already holds {count} rows. Load the index "
                    "it belongs to with LateIndex.load, choose another uri or table_name, or "
                    "pass recreate=True to replace it."
                )
            self._drop()
            return
        self.sync(store)

    def add(
        self,
        ids: Sequence[str],
        vectors: Sequence[np.ndarray],
        texts: Sequence[str],
        metadatas: Sequence[Mapping[str, Any]],
    ) -> None:
        """Upsert rows by ``latecore_id`` (``merge_insert``), ``batch_size`` per commit.

        Runs LanceDB's ``optimize`` at the end once ``optimize_after`` rows were
        written since the last one.

        Raises
        ------
        TypeError
            If a metadata value is not JSON-serialisable (nothing is written).
        ValueError
            If the table holds vectors of another dimension or type, or an id is
            not valid Unicode text (nothing is written).
        """
        if not ids:
            return
        _check_ids(ids)
        metadata = [_metadata_json(m) for m in metadatas]
        dim = int(vectors[0].shape[1])
        table = self._ensure(dim)
        batch = self._settings["batch_size"]
        starts: Iterable[int] = range(0, len(ids), batch)
        if self.show_progress and len(ids) > batch:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc="LanceDB upsert", unit="batch")
        for start in starts:
            end = start + batch
            data = self._arrow_rows(
                ids[start:end],
                vectors[start:end],
                texts[start:end],
                metadatas[start:end],
                metadata[start:end],
                dim,
            )
            (
                table.merge_insert(ID_COLUMN)
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .execute(data)
            )
        self._written += len(ids)
        limit = self._settings["optimize_after"]
        if limit is not None and self._written >= limit:
            self._optimize()

    def _arrow_rows(
        self,
        ids: Sequence[str],
        vectors: Sequence[np.ndarray],
        texts: Sequence[str],
        metadatas: Sequence[Mapping[str, Any]],
        metadata_json: Sequence[str],
        dim: int,
    ) -> Any:
        import pyarrow as pa

        storage = np.float16 if self._settings["datatype"] == "float16" else np.float32
        arrays = [np.asarray(v, dtype=storage) for v in vectors]
        lengths = np.array([a.shape[0] for a in arrays], dtype=np.int64)
        flat = np.concatenate(arrays).reshape(-1)
        tokens = pa.FixedSizeListArray.from_arrays(pa.array(flat), dim)
        offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
        return pa.table(
            {
                ID_COLUMN: pa.array(list(ids), pa.string()),
                "text": pa.array([_utf8(t) for t in texts], pa.string()),
                "metadata": pa.array(list(metadata_json), pa.string()),
                "digest": pa.array(
                    [_digest(a, t, m) for a, t, m in zip(arrays, texts, metadatas, strict=True)],
                    pa.string(),
                ),
                VECTOR_COLUMN: pa.ListArray.from_arrays(offsets, tokens),
            },
            schema=self._schema(dim),
        )

    def delete(self, ids: Sequence[str]) -> None:
        """Delete the rows of ``ids``."""
        self._delete(ids)

    def _delete(self, ids: Sequence[str]) -> None:
        table = self._open()
        if table is None:
            return
        for chunk in _batches(list(ids), _FILTER_BATCH):
            table.delete(self._rows(chunk))

    def build(self, store: StoreView) -> None:
        """Compact the table, then train the IVF-PQ index (at ``build_min`` rows or more)."""
        table = self._open()
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

    def _optimize(self) -> None:
        table = self._open()
        if table is not None:
            started = time.perf_counter()
            with warnings.catch_warnings():
                # keep_versions_s=0 is a choice made knowingly (no other reader).
                warnings.filterwarnings("ignore", message=r"optimize\(cleanup_older_than=0\)")
                table.optimize(
                    cleanup_older_than=timedelta(seconds=self._settings["keep_versions_s"])
                )
            logger.info("LanceDB optimized in %.1f s", time.perf_counter() - started)
        self._written = 0

    def sync(self, store: StoreView) -> tuple[int, int]:
        """Make the table hold exactly ``store``; returns (rows upserted, rows deleted).

        Raises
        ------
        IndexFormatError
            If the store keeps no vectors (they live in the table) and the table
            lacks some of its documents.
        ValueError
            If the table holds vectors of another dimension or type.
        """
        if len(store) and self._open() is not None:
            self._ensure(store.dim)  # another dimension fails here, before anything changes
        remote: dict[str, object] = {}
        extra: list[str] = []
        for chunk in self._scan([ID_COLUMN, "digest"]):
            for doc_id, digest in zip(
                chunk[ID_COLUMN].to_pylist(), chunk["digest"].to_pylist(), strict=True
            ):
                if doc_id in remote:
                    remote[doc_id] = None  # twice: rewritten (or, engine-held, left as is)
                elif isinstance(doc_id, str) and doc_id in store:
                    remote[doc_id] = digest
                else:
                    extra.append(doc_id)
        if not store.holds_vectors:
            missing = [doc_id for doc_id in store.ids if doc_id not in remote]
            if missing:
                hint = (
                    " (a temporary table keeps nothing: give uri=)" if self._temporary.root else ""
                )
                raise IndexFormatError(
                    f"the LanceDB table ({self!r}) lacks {len(missing)} of the index's "
                    f"documents, e.g. {missing[:5]}; their vectors were kept only there, so "
                    f"those documents must be added again{hint}"
                )
            changed: list[int] = []
        else:
            changed = changed_positions(store, remote, _digest)
        if extra or changed:
            logger.info(
                "re-synchronising LanceDB (%r): upserting %d rows, deleting %d",
                self,
                len(changed),
                len(extra),
            )
        self._delete([i for i in extra if i is not None])
        if any(i is None for i in extra):
            self._open().delete(f"{ID_COLUMN} IS NULL")
        if changed:
            documents = store.documents(changed)
            twice = [doc.id for doc in documents if doc.id in remote and remote[doc.id] is None]
            self._delete(twice)
            self.add_stored(store, changed)
        return len(changed), len(extra)

    def search(self, store: StoreView, queries: Sequence[np.ndarray], k: int) -> list[Ranking]:
        """LanceDB's multivector search for the best ``n_candidates``; those re-scored exactly."""
        table = self._open()
        settings = self._settings
        limit = max(settings["n_candidates"], k)
        rankings = []
        for query in queries:
            if table is None:
                rankings.append(Ranking.empty())
                continue
            request = (
                table.search(np.asarray(query, dtype=np.float32), vector_column_name=VECTOR_COLUMN)
                .distance_type("cosine")
                .select([ID_COLUMN, "_distance"])
                .limit(limit)
                .nprobes(settings["nprobes"])
            )
            if settings["refine_factor"] is not None:
                request = request.refine_factor(settings["refine_factor"])
            found = request.to_arrow()[ID_COLUMN].to_pylist()
            positions = [p for doc_id in found if (p := store.find(doc_id)) is not None]
            rankings.append(store.rank(query, np.array(positions, dtype=np.int64), k))
        return rankings

    def fetch_vectors(self, ids: Sequence[str]) -> list[np.ndarray]:
        """The token vectors the table holds for ``ids``, in that order.

        Arrays are ``(n_tokens, dim)`` in the table's storage type (``datatype``).

        Raises
        ------
        KeyError
            Naming up to five ids the table does not hold.
        """
        found: dict[str, np.ndarray] = {}
        for chunk in self._scan([ID_COLUMN, VECTOR_COLUMN], list(dict.fromkeys(ids))):
            column = chunk[VECTOR_COLUMN].combine_chunks()
            for doc_id, array in zip(chunk[ID_COLUMN].to_pylist(), _arrays(column), strict=True):
                if array is not None:
                    found.setdefault(doc_id, array)
        missing = [i for i in ids if i not in found]
        if missing:
            raise KeyError(f"the LanceDB table holds no vectors for ids {missing[:5]}")
        return [found[i] for i in ids]

    def save(self, directory: Path) -> dict[str, Any]:
        """Nothing to write: the table stays where it is (its uri is in :attr:`options`)."""
        if self._temporary.root is not None:
            logger.info(
                "the temporary LanceDB table is not saved; loading re-indexes the saved documents"
            )
        return {}

    def close(self) -> None:
        """Drop the connection; remove a temporary directory (idempotent)."""
        self._table = None
        self._db = None
        self._finalizer()


def _arrays(column: Any) -> list[np.ndarray | None]:
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
