"""``QdrantBackend``: the mirror backend over an embedded qdrant-edge shard or a Qdrant server."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ...muvera import MUVERA_DEFAULTS, Muvera
from ...store import Selection, StoreView
from ...validation import FLOAT_DTYPES, check_dtype, check_optional_count, check_positive
from ..base import SavedState
from ..mirror import Candidate, MirrorBackend
from .edge import EDGE_CONFIG, EdgeTable
from .filtering import PayloadType, indexed_fields, translate
from .legacy import is_local_mode_storage, migration_error, upgrade_options
from .schema import Points, Schema, digest, payload, point_id
from .server import ServerTable, check_caller_url, check_key_transport, import_client
from .table import QdrantTable

__all__ = ["QdrantBackend"]

_CONNECTION_KEYS = frozenset({"url", "path", "location", "client", "prefer_grpc", "timeout"})


def _check_shard_folder(root: Path) -> None:
    if root.exists() and not root.is_dir():
        raise ValueError(f"{root} is not a directory; give a directory for the shard")
    if is_local_mode_storage(root):
        raise migration_error(root)
    if root.is_dir() and any(root.iterdir()) and not (root / EDGE_CONFIG).is_file():
        raise ValueError(f"{root} is neither empty nor a qdrant-edge shard; choose another path")


class QdrantBackend(MirrorBackend):
    """Candidates from Qdrant (MUVERA prefetch, MaxSim in the engine); exact MaxSim scores.

    Parameters
    ----------
    path
        Directory of an embedded qdrant-edge shard (created if empty or
        missing, reopened if it holds one). Default: a temporary directory.
    url, api_key, prefer_grpc, timeout
        A Qdrant server or cluster instead (``api_key`` defaults to
        ``$QDRANT_API_KEY``). The URL is always the caller's: a loaded index
        must be given ``url=`` (or ``client=``) again, and a URL other than
        the saved one is refused, so a saved file never chooses where a key goes.
    allow_insecure_key
        Send an API key over plain ``http://`` to a host that is not the
        loopback interface (refused by default: the key would cross the
        network in clear text).
    client
        A ready ``QdrantClient`` instead (it is not closed by :meth:`close`, nor saved).
    collection_name
        The server collection this index owns (an embedded shard is one collection).
    prefetch
        Points taken by MUVERA similarity (HNSW) and scored by MaxSim in the
        engine, per query. More finds more of the exact top ``k``, at a cost
        linear in it; a collection of at most ``prefetch`` points is scored in
        full. The default comes from the 100k benchmark (docs/benchmarks.md).
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
    payload_indexes
        Payload indexes to keep (``{"metadata.tenant": "keyword"}``; types
        ``"keyword"``, ``"float"``, ``"bool"``): filters create the ones their
        fields need on first use; all are saved with the index and created
        again on load where the engine lacks them.
    take_over
        Load an index into a table another index owns (a copy of it, or another
        index), making it the owner; the other index is refused from then on.
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
    label = "Qdrant collection"
    row_word = "points"
    location_options = "path or collection_name"
    temporary_hint = " (a temporary shard keeps nothing: give path= or url=)"

    def __init__(
        self,
        *,
        path: str | os.PathLike[str] | None = None,
        url: str | None = None,
        api_key: str | None = None,
        allow_insecure_key: bool = False,
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
        payload_indexes: Mapping[str, PayloadType] | None = None,
        recreate: bool = False,
        take_over: bool = False,
        show_progress: bool | None = None,
    ) -> None:
        check_dtype(datatype, "datatype", allowed=FLOAT_DTYPES)
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
        super().__init__(recreate=recreate, take_over=take_over, show_progress=show_progress)
        self._settings = {
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
            "payload_indexes": dict(payload_indexes or {}),
        }
        self._muvera: Muvera | None = None
        self._indexes_restored = False
        self._connection: dict[str, Any]
        if client is not None or url is not None:
            client_class, models = import_client()
            owned = client is None
            if client is None:
                self._connection = {"engine": "server", "url": url, "prefer_grpc": prefer_grpc}
                if timeout is not None:
                    self._connection["timeout"] = timeout
                key = api_key or os.environ.get("QDRANT_API_KEY")
                if key and not allow_insecure_key:
                    check_key_transport(str(url))
                client = client_class(
                    url=url,
                    api_key=key,
                    prefer_grpc=prefer_grpc,
                    timeout=timeout,
                )
            else:
                self._connection = {"engine": "server"}
            self._use_remote_table(ServerTable(client, models, collection_name, owned=owned))
        else:
            root = None if path is None else Path(path).resolve()
            self._connection = {"engine": "edge"}
            if root is not None:
                _check_shard_folder(root)
                self._connection["path"] = str(root)
            self._use_local_table(EdgeTable, root)

    @property
    def options(self) -> dict[str, Any]:
        """Engine, connection (never an API key) and settings, saved with the index."""
        return {**self._connection, **self._settings}

    @property
    def exact_scores(self) -> bool:
        """``rescore``: whether candidates are re-scored exactly (else the engine's scores)."""
        return bool(self._settings["rescore"])

    @property
    def engine(self) -> Literal["edge", "server"]:
        """``"edge"`` (an embedded qdrant-edge shard) or ``"server"`` (qdrant-client)."""
        return "edge" if isinstance(self._engine, EdgeTable) else "server"

    @property
    def shard_path(self) -> Path | None:
        """The embedded shard's directory (``None`` for a server)."""
        return self._engine.root if isinstance(self._engine, EdgeTable) else None

    @property
    def index_directory(self) -> Path | None:
        return self.shard_path

    @property
    def client(self) -> Any:
        """The ``QdrantClient`` of a server engine (``None`` for an embedded shard)."""
        return self._engine.client if isinstance(self._engine, ServerTable) else None

    @property
    def optimizes_on_add(self) -> bool:
        """An embedded shard builds its graph after ``optimize_after`` points; a server itself."""
        return self.engine == "edge"

    @classmethod
    def merge_options(
        cls, saved: Mapping[str, Any], overrides: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Saved options updated by ``overrides``; a new connection replaces the saved one.

        Options saved before qdrant-edge (no ``"engine"`` entry) are converted
        (:mod:`latecore.backends.qdrant.legacy`).

        Examples
        --------
        >>> QdrantBackend.merge_options({"engine": "edge", "path": "/a", "prefetch": 5},
        ...                             {"url": "http://qdrant:6333"})
        {'prefetch': 5, 'url': 'http://qdrant:6333'}
        >>> QdrantBackend.merge_options({"engine": "server", "url": "http://elsewhere:6333"}, {})
        Traceback (most recent call last):
        ...
        ValueError: this index's Qdrant collection is on a server: pass url= (or client=) ...
        """
        options = dict(saved)
        engine = options.pop("engine", None)
        if engine == "server":
            check_caller_url(options.get("url"), overrides)
        if _CONNECTION_KEYS & set(overrides):
            options = {key: value for key, value in options.items() if key not in _CONNECTION_KEYS}
        elif engine is None:
            options = upgrade_options(options)
        options.pop("location", None)
        return {**options, **overrides}

    def __repr__(self) -> str:
        if self._holder.table is None:
            return "QdrantBackend(closed)"
        if isinstance(self._engine, EdgeTable):
            return f"QdrantBackend(edge shard at {self._engine.root})"
        return f"QdrantBackend(server collection {self._settings['collection_name']!r})"

    # --- the mirror hooks -----------------------------------------------------------------

    def _encoder(self, dim: int) -> Muvera:
        if self._muvera is None or self._muvera.dim != dim:
            self._muvera = Muvera(dim, **self._muvera_settings)
        return self._muvera

    def _schema(self, dim: int) -> Schema:
        settings = self._settings
        return Schema(
            dim,
            self._encoder(dim).fde_dim,
            settings["datatype"],
            settings["hnsw_m"],
            settings["hnsw_ef_construct"],
        )

    def _ensure(self, dim: int) -> None:
        table = self._engine
        assert isinstance(table, QdrantTable)
        table.ensure(self._schema(dim))
        self._restore_indexes()

    def attach(self, store: StoreView, saved: SavedState | None) -> None:
        """:meth:`MirrorBackend.attach`, then the saved payload indexes where they are missing."""
        super().attach(store, saved)
        self._restore_indexes()

    def _restore_indexes(self) -> None:
        if self._indexes_restored or not self._engine.exists():
            return
        table = self._engine
        assert isinstance(table, QdrantTable)
        if self._settings["payload_indexes"]:
            table.create_indexes(dict(self._settings["payload_indexes"]))
        self._indexes_restored = True

    def _digest(self, vectors: np.ndarray, text: str, metadata: Mapping[str, Any]) -> str:
        return digest(vectors, text, metadata, self._muvera_settings)

    def _write(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        metadatas: Sequence[Mapping[str, Any]],
        vectors: Sequence[np.ndarray],
        digests: Sequence[str],
    ) -> None:
        table = self._engine
        assert isinstance(table, QdrantTable)
        muvera = self._encoder(int(vectors[0].shape[1]))
        table.upsert(
            Points(
                [point_id(i) for i in ids],
                muvera.encode_documents(vectors),
                list(vectors),
                [
                    payload(i, t, m, d)
                    for i, t, m, d in zip(ids, texts, metadatas, digests, strict=True)
                ],
            )
        )

    def _limit(self, k: int) -> int:
        return int(
            self._settings["n_candidates"] or (max(2 * k, k + 10) if self.exact_scores else k)
        )

    def _query(
        self,
        store: StoreView,
        queries: Sequence[np.ndarray],
        limit: int,
        with_vectors: bool,
        where: Selection | None,
    ) -> list[list[Candidate]]:
        table = self._engine
        assert isinstance(table, QdrantTable)
        prefetch = max(self._settings["prefetch"], limit)
        condition = None
        candidates = len(store)
        if where is not None:
            condition = translate(where.filter, store)
            self._index_fields(indexed_fields(condition))
            candidates = len(where.positions)
        # A collection (or filtered part) no larger than the prefetch is scored in full.
        fdes = None
        if candidates > prefetch:
            fdes = self._encoder(int(queries[0].shape[1])).encode_queries(queries)
        hnsw_ef = self._settings["hnsw_ef"]
        return table.query(fdes, queries, prefetch, limit, hnsw_ef, with_vectors, condition)

    def _index_fields(self, fields: Mapping[str, PayloadType]) -> None:
        """Payload indexes on the fields filters use, created on first use; they are saved
        with the index's settings and created again on load if the engine lacks them."""
        known = self._settings["payload_indexes"]
        new = {f: t for f, t in fields.items() if known.get(f) != t}
        if new and self._engine.exists():
            table = self._engine
            assert isinstance(table, QdrantTable)
            table.create_indexes(new)
            known.update(new)
