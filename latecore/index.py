"""A searchable collection of documents scored by exact MaxSim.

The documents and their token vectors always live in the :class:`LateIndex`;
a backend (:mod:`latecore.backends`) decides which of them a query is scored
against: all of them (``exact``), or candidates from PLAID (``plaid``) or a
Qdrant collection (``qdrant``), re-scored by exact MaxSim.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import numpy as np

from .backends import Backend, Corpus, SavedState, backend_class, make_backend
from .encoder import BaseEncoder
from .errors import FingerprintMismatchError, IndexFormatError
from .maxsim import PackedDocuments, check_k
from .results import SearchHit

__all__ = ["LateIndex"]

_FORMAT = "latecore.LateIndex"
_FORMAT_VERSION = 1
_MANIFEST = "latecore-index.json"
_VECTORS = "vectors.npy"
_LENGTHS = "lengths.npy"
_DOCUMENTS = "documents.jsonl"


class LateIndex:
    """Documents (ids, texts, metadata) searchable by exact MaxSim.

    Token vectors of all documents are kept packed in one matrix (float16 by
    default) between queries. With the default ``exact`` backend a search is one
    pass of GEMM blocks over it, never a rebuild; the ``plaid`` and ``qdrant``
    backends pick candidates first and re-score them exactly from that matrix,
    so every backend returns ``exact``'s scores for the documents it returns
    (see "Scaling out" in the README for which to choose).

    Parameters
    ----------
    encoder
        The encoder for documents and queries; its cache (if any) is used.
    dtype
        Storage dtype of the packed vectors, ``"float16"`` (default) or ``"float32"``.
    backend
        ``"exact"`` (default), ``"plaid"`` or ``"qdrant"``, or a
        :class:`~latecore.backends.Backend` instance.
    **backend_options
        Passed to the backend: see :class:`~latecore.backends.plaid.PlaidBackend`
        and :class:`~latecore.backends.qdrant.QdrantBackend`.

    Examples
    --------
    >>> from latecore.testing import FakeEncoder
    >>> index = LateIndex(FakeEncoder())
    >>> index.add(["paris is in france", "berlin is in germany"], ids=["p", "b"])
    ['p', 'b']
    >>> [hit.id for hit in index.search("where is berlin", k=1)]
    ['b']
    >>> index.delete(["b"])
    1
    >>> len(index)
    1
    """

    def __init__(
        self,
        encoder: BaseEncoder,
        *,
        dtype: Literal["float16", "float32"] = "float16",
        backend: str | Backend = "exact",
        **backend_options: Any,
    ) -> None:
        if dtype not in ("float16", "float32"):
            raise ValueError(f"dtype must be 'float16' or 'float32', got {dtype!r}")
        self.encoder = encoder
        self.dtype = np.dtype(dtype)
        self._ids: list[str] = []
        self._texts: list[str] = []
        self._metadatas: list[dict[str, Any]] = []
        self._positions: dict[str, int] = {}
        self._lengths = np.zeros(0, dtype=np.int64)
        self._matrix = np.zeros((0, 0), dtype=self.dtype)
        self._n_tokens = 0
        self._packed: PackedDocuments | None = None
        self._lock = threading.RLock()
        self._backend = make_backend(backend, **backend_options)
        self._backend.attach(self._corpus(), None)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._positions

    def __repr__(self) -> str:
        backend = "" if self._backend.name == "exact" else f", backend={self._backend.name!r}"
        return f"LateIndex({len(self)} documents, {self._n_tokens} token vectors{backend})"

    def __enter__(self) -> LateIndex:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def backend(self) -> Backend:
        """The search backend (``backend.name`` is ``"exact"``, ``"plaid"`` or ``"qdrant"``)."""
        return self._backend

    def build(self) -> None:
        """Build the backend's search structure now rather than at the next search.

        For ``plaid``: a PLAID snapshot of every document (worth calling after a
        bulk :meth:`add`); ``exact`` and ``qdrant`` have nothing to build.
        """
        with self._lock:
            self._backend.build(self._corpus())

    def close(self) -> None:
        """Release the backend's resources (clients, temporary files); idempotent.

        A closed ``plaid`` or ``qdrant`` index must not be searched again; an
        ``exact`` one has nothing to release. Also called on leaving a ``with`` block.
        """
        with self._lock:
            self._backend.close()

    def _corpus(self) -> Corpus:
        return Corpus(
            ids=self._ids,
            positions=self._positions,
            packed=self._packed_documents(),
            texts=self._texts,
            metadatas=self._metadatas,
        )

    @property
    def ids(self) -> list[str]:
        """Document ids in insertion order."""
        return list(self._ids)

    def get(self, ids: Sequence[str]) -> list[SearchHit]:
        """Stored documents for ``ids`` (unknown ids are skipped), with score 0."""
        with self._lock:
            return [
                SearchHit(i, 0.0, self._texts[p], dict(self._metadatas[p]))
                for i in ids
                if (p := self._positions.get(i)) is not None
            ]

    def add(
        self,
        texts: Sequence[str],
        ids: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> list[str]:
        """Encode and add documents; a document whose id exists replaces it.

        Returns
        -------
        list of str
            The ids, generated (uuid4 hex) where none were given.
        """
        if isinstance(texts, str):
            raise TypeError("add takes a sequence of texts; wrap a single text in a list")
        texts = list(texts)
        new_ids = [uuid.uuid4().hex for _ in texts] if ids is None else [str(i) for i in ids]
        if len(new_ids) != len(texts):
            raise ValueError(f"got {len(new_ids)} ids for {len(texts)} texts")
        if len(set(new_ids)) != len(new_ids):
            raise ValueError("ids must be unique within one add call")
        metas = [None] * len(texts) if metadatas is None else list(metadatas)
        if len(metas) != len(texts):
            raise ValueError(f"got {len(metas)} metadatas for {len(texts)} texts")
        for i, meta in enumerate(metas):
            if meta is not None and not isinstance(meta, Mapping):
                raise TypeError(f"metadata {i} must be a mapping, got {type(meta).__name__}")
        if not texts:
            return []
        vectors = [np.asarray(v, dtype=self.dtype) for v in self.encoder.encode_documents(texts)]
        metadata_dicts = [dict(m or {}) for m in metas]
        with self._lock:
            dims = {v.shape[1] for v in vectors}
            if self._n_tokens:
                dims.add(self._matrix.shape[1])
            if len(dims) != 1:
                raise ValueError(f"vector dimensions differ: {sorted(dims)}")
            # The backend first: if it fails, the index is unchanged.
            self._backend.add(new_ids, vectors, texts, metadata_dicts)
            self._remove([i for i in new_ids if i in self._positions])
            self._append(new_ids, texts, metadata_dicts, vectors)
        return new_ids

    def _append(
        self,
        ids: list[str],
        texts: list[str],
        metadatas: list[dict[str, Any]],
        vectors: Sequence[np.ndarray],
    ) -> None:
        dim = vectors[0].shape[1]
        added = sum(v.shape[0] for v in vectors)
        needed = self._n_tokens + added
        if needed > self._matrix.shape[0] or self._matrix.shape[1] != dim:
            grown = np.empty((max(needed, 2 * self._matrix.shape[0], 1024), dim), self.dtype)
            if self._n_tokens:
                grown[: self._n_tokens] = self._matrix[: self._n_tokens]
            self._matrix = grown
        row = self._n_tokens
        for v in vectors:
            self._matrix[row : row + v.shape[0]] = v
            row += v.shape[0]
        self._n_tokens = needed
        self._lengths = np.concatenate([self._lengths, [v.shape[0] for v in vectors]])
        for doc_id in ids:
            self._positions[doc_id] = len(self._ids)
            self._ids.append(doc_id)
        self._texts.extend(texts)
        self._metadatas.extend(metadatas)
        self._packed = None

    def delete(self, ids: Sequence[str]) -> int:
        """Remove documents by id; unknown ids are ignored. Returns how many were removed."""
        if isinstance(ids, str):
            raise TypeError("delete takes a sequence of ids; wrap a single id in a list")
        with self._lock:
            present = list(dict.fromkeys(i for i in ids if i in self._positions))
            if not present:
                return 0
            self._backend.delete(present)
            return self._remove(present)

    def _remove(self, ids: list[str]) -> int:
        """Remove documents from the local store only (the backend was told already)."""
        with self._lock:
            doomed = {self._positions[i] for i in ids if i in self._positions}
            if not doomed:
                return 0
            keep_docs = np.ones(len(self._ids), dtype=bool)
            keep_docs[list(doomed)] = False
            keep_tokens = np.repeat(keep_docs, self._lengths)
            kept = self._matrix[: self._n_tokens][keep_tokens]
            self._matrix = np.ascontiguousarray(kept)
            self._n_tokens = kept.shape[0]
            self._lengths = self._lengths[keep_docs]
            self._ids = [d for d, keep in zip(self._ids, keep_docs, strict=True) if keep]
            self._texts = [t for t, keep in zip(self._texts, keep_docs, strict=True) if keep]
            self._metadatas = [
                m for m, keep in zip(self._metadatas, keep_docs, strict=True) if keep
            ]
            self._positions = {doc_id: p for p, doc_id in enumerate(self._ids)}
            self._packed = None
            return len(doomed)

    def _packed_documents(self) -> PackedDocuments:
        if self._packed is None:
            offsets = np.zeros(len(self._lengths) + 1, dtype=np.int64)
            np.cumsum(self._lengths, out=offsets[1:])
            self._packed = PackedDocuments.from_parts(self._matrix[: self._n_tokens], offsets)
        return self._packed

    def search(self, query: str, k: int = 10) -> list[SearchHit]:
        """The ``k`` best documents for ``query``, by descending MaxSim (ties: insertion order)."""
        return self.search_batch([query], k)[0]

    def search_batch(self, queries: Sequence[str], k: int = 10) -> list[list[SearchHit]]:
        """:meth:`search` for many queries; queries are encoded in one call."""
        check_k(k)
        if isinstance(queries, str):
            raise TypeError("search_batch takes a sequence of queries; use search for one")
        queries = list(queries)
        if not queries:
            return []
        if not self._ids or k == 0:
            return [[] for _ in queries]
        query_vectors = self.encoder.encode_queries(queries)
        with self._lock:
            rankings = self._backend.search(self._corpus(), query_vectors, k)
            return [
                [
                    SearchHit(self._ids[i], float(s), self._texts[i], dict(self._metadatas[i]))
                    for i, s in zip(
                        ranking.positions.tolist(), ranking.scores.tolist(), strict=True
                    )
                ]
                for ranking in rankings
            ]

    def score(self, query: str, ids: Sequence[str]) -> np.ndarray:
        """Exact MaxSim of ``query`` against the stored documents ``ids`` only.

        Used by a first-stage retriever's candidates (see ``HybridSearcher``);
        the stored vectors are reused, nothing is re-encoded.

        Returns
        -------
        numpy.ndarray
            float32, one score per id, in the order given.

        Raises
        ------
        KeyError
            If an id is not in the index.
        """
        return self.score_batch([query], [ids])[0]

    def score_batch(self, queries: Sequence[str], ids: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """:meth:`score` for many queries, each against its own ids; one query encode in all."""
        if len(queries) != len(ids):
            raise ValueError(f"got {len(queries)} queries but {len(ids)} id lists")
        id_lists = [list(i) for i in ids]
        wanted = [q for q, i in zip(queries, id_lists, strict=True) if i]
        vectors = iter(self.encoder.encode_queries(wanted) if wanted else [])
        with self._lock:
            missing = [i for doc_ids in id_lists for i in doc_ids if i not in self._positions]
            if missing:
                raise KeyError(f"ids not in the index: {missing[:5]}")
            offsets = self._packed_documents().offsets
            results = []
            for doc_ids in id_lists:
                if not doc_ids:
                    results.append(np.zeros(0, dtype=np.float32))
                    continue
                positions = [self._positions[i] for i in doc_ids]
                segments = [self._matrix[offsets[p] : offsets[p + 1]] for p in positions]
                packed = PackedDocuments(segments, dtype=self.dtype)
                results.append(packed.score([next(vectors)])[0])
            return results

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the index to directory ``path`` (created if needed; files replaced).

        Vectors go to ``.npy`` files, documents to JSON lines: nothing is pickled.
        Metadata values must be JSON-serialisable. The backend's name, settings
        and state go into the manifest (a PLAID snapshot is copied into
        ``path/plaid``; a Qdrant collection stays where it is, and no API key
        is ever written).
        """
        directory = Path(path)
        directory.mkdir(parents=True, exist_ok=True)
        with self._lock:
            try:
                lines = [
                    json.dumps({"id": i, "text": t, "metadata": m}, ensure_ascii=False)
                    for i, t, m in zip(self._ids, self._texts, self._metadatas, strict=True)
                ]
            except TypeError as error:
                raise TypeError(f"metadata must be JSON-serialisable to save: {error}") from error
            backend_state = self._backend.save(directory)
            manifest = {
                "format": _FORMAT,
                "version": _FORMAT_VERSION,
                "count": len(self._ids),
                "dtype": self.dtype.name,
                "fingerprint": self.encoder.fingerprint,
                "fingerprint_fields": self.encoder.fingerprint_fields,
                "backend": {
                    "name": self._backend.name,
                    "options": self._backend.options,
                    "state": backend_state,
                },
            }
            files = {
                _VECTORS: lambda f: np.save(f, self._matrix[: self._n_tokens], allow_pickle=False),
                _LENGTHS: lambda f: np.save(f, self._lengths, allow_pickle=False),
                _DOCUMENTS: lambda f: f.write("".join(line + "\n" for line in lines).encode()),
                _MANIFEST: lambda f: f.write(json.dumps(manifest, indent=2).encode()),
            }
            for name, write in files.items():
                partial = directory / f".{name}.partial"
                with open(partial, "wb") as f:
                    write(f)
                os.replace(partial, directory / name)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        encoder: BaseEncoder,
        *,
        backend: str | Backend | None = None,
        **backend_options: Any,
    ) -> LateIndex:
        """Read an index written by :meth:`save`.

        The index gets the backend it was saved with, with its saved settings
        updated by ``backend_options`` (for example ``api_key=`` for a Qdrant
        server: keys are never saved). Another ``backend`` indexes the loaded
        documents anew (``backend="exact"`` needs nothing to be built).

        Raises
        ------
        FingerprintMismatchError
            If ``encoder`` could produce different vectors than the one the index
            was built with; the message names both fingerprints and what differs.
        IndexFormatError
            If the directory is not a saved LateIndex.
        """
        directory = Path(path)
        try:
            manifest = json.loads((directory / _MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise IndexFormatError(f"{directory} is not a saved LateIndex: {error}") from error
        if manifest.get("format") != _FORMAT or manifest.get("version") != _FORMAT_VERSION:
            raise IndexFormatError(f"{directory} has unknown format {manifest.get('format')!r}")
        if manifest["fingerprint"] != encoder.fingerprint:
            theirs = manifest.get("fingerprint_fields", {})
            ours = encoder.fingerprint_fields
            differing = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
            raise FingerprintMismatchError(
                f"index at {directory} was built with encoder fingerprint "
                f"{manifest['fingerprint']}, but this encoder's fingerprint is "
                f"{encoder.fingerprint}; differing settings: {', '.join(differing) or 'unknown'}. "
                "Load it with the encoder it was built with, or rebuild the index."
            )
        index = cls(encoder, dtype=manifest["dtype"])
        try:
            matrix = np.load(directory / _VECTORS, allow_pickle=False)
            lengths = np.load(directory / _LENGTHS, allow_pickle=False)
            with open(directory / _DOCUMENTS, encoding="utf-8") as f:
                records = [json.loads(line) for line in f if line.strip()]
        except (OSError, ValueError) as error:
            raise IndexFormatError(f"{directory} is damaged: {error}") from error
        if len(records) != len(lengths) or int(lengths.sum()) != matrix.shape[0]:
            raise IndexFormatError(f"{directory} is damaged: vectors and documents disagree")
        index._matrix = np.ascontiguousarray(matrix, dtype=index.dtype)
        index._n_tokens = matrix.shape[0]
        index._lengths = lengths.astype(np.int64)
        index._ids = [str(r["id"]) for r in records]
        index._texts = [r["text"] for r in records]
        index._metadatas = [r.get("metadata") or {} for r in records]
        index._positions = {doc_id: p for p, doc_id in enumerate(index._ids)}
        index._packed = None
        saved = manifest.get("backend") or {"name": "exact"}
        if backend is None or backend == saved["name"]:
            saved_class = backend_class(saved["name"])
            options = saved_class.merge_options(saved.get("options", {}), backend_options)
            chosen = saved_class(**options)
            state: SavedState | None = SavedState(directory, saved.get("state") or {})
        else:
            chosen = make_backend(backend, **backend_options)
            state = None
        chosen.attach(index._corpus(), state)
        index._backend = chosen
        return index
