"""The model-independent half of every encoder: :class:`BaseEncoder`.

:class:`BaseEncoder` holds everything that does not depend on the model: input
checks, the document cache (hits are never re-encoded, misses are encoded in one
batched call and written back), the fingerprint, thread safety and the encode
counters (:class:`EncodeStats`). Its :meth:`~BaseEncoder.encode_with_tokens`
gives the token-level view behind :func:`latecore.explain`. Subclasses run a
model: :class:`latecore.encoder.Encoder` (pylate) and
``latecore.testing.FakeEncoder`` (a deterministic hash model for tests).
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import os
import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .batching import DEFAULT_MAX_BATCH, BatchStats, MicroBatcher, check_batch_wait_ms
from .cache import cache_key
from .caches import CacheLocation, DocumentCache, open_cache
from .pooling import check_pool_factor, pool_tokenized, pool_vectors
from .quantize import as_stored
from .tokens import Span, TokenizedText
from .validation import check_positive, check_texts

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["BaseEncoder", "EncodeStats", "Role", "clean_text", "progress_enabled"]

FINGERPRINT_VERSION = 1

Role = Literal["query", "document"]


@dataclass(frozen=True)
class EncodeStats:
    """How many texts an encoder ran through its model, and the seconds that took.

    Cumulative since the encoder was created (copies made by
    :meth:`BaseEncoder.with_cache` share the count); subtract two snapshots for
    one job. Cache hits are not counted: they never reach the model.

    Examples
    --------
    >>> from latecore.testing import FakeEncoder
    >>> encoder = FakeEncoder()
    >>> before = encoder.encode_stats()
    >>> _ = encoder.encode_documents(["one", "two"])
    >>> (encoder.encode_stats() - before).documents
    2
    """

    documents: int = 0
    document_seconds: float = 0.0
    queries: int = 0
    query_seconds: float = 0.0

    @property
    def documents_per_second(self) -> float:
        """Documents encoded per second of model time (``0.0`` before the first)."""
        return self.documents / self.document_seconds if self.document_seconds > 0 else 0.0

    def __sub__(self, other: EncodeStats) -> EncodeStats:
        return EncodeStats(
            self.documents - other.documents,
            self.document_seconds - other.document_seconds,
            self.queries - other.queries,
            self.query_seconds - other.query_seconds,
        )


def progress_enabled(show_progress: bool | None) -> bool:
    """``show_progress``, or when ``None`` whether ``$LATECORE_PROGRESS`` is not ``0``.

    The one rule for every progress bar latecore shows.

    Examples
    --------
    >>> progress_enabled(False)
    False
    """
    if show_progress is None:
        return os.environ.get("LATECORE_PROGRESS", "1") != "0"
    return show_progress


_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """Replace lone surrogates (which tokenizers cannot encode) with U+FFFD.

    The cleaned text is what is both encoded and used in the cache key.

    Examples
    --------
    >>> clean_text("ok") == "ok"
    True
    >>> clean_text("bad \\ud800 half")
    'bad \\ufffd half'
    >>> clean_text("\\ufffd\\ufffd\\ufffd \\udc00") == "\\ufffd\\ufffd\\ufffd \\ufffd"
    True
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


def _opened(cache: DocumentCache | CacheLocation | None) -> DocumentCache | None:
    """``cache``, or the cache at a location given as a path or URL."""
    if isinstance(cache, str | os.PathLike):
        return open_cache(cache)
    return cache


class BaseEncoder(ABC):
    """Shared machinery of every encoder; subclasses implement :meth:`_encode`.

    Parameters
    ----------
    cache
        Optional cache of document multivectors: a
        :class:`~latecore.cache.MultivectorCache`, a
        :class:`~latecore.redis_cache.RedisCache`, or where one lives (a directory
        or a ``redis://`` URL, opened with :func:`~latecore.caches.open_cache`).
        With a cache, returned document arrays are rounded to the cache's storage
        dtype, so a hit and a miss return identical values.
    batch_size
        Texts per forward pass.
    show_progress
        Show a tqdm bar when encoding more than one batch; ``None`` follows the
        ``LATECORE_PROGRESS`` environment variable (on unless it is ``0``).
    max_batch
        Concurrent encode calls (from other threads, ``asearch``, ``arerank``,
        concurrent ``add``) are coalesced into one model pass of at most this
        many texts (:mod:`latecore.batching`); ``1`` turns coalescing off. A
        lone call runs at once. Not part of the fingerprint: queries get the same
        vectors bit for bit, documents up to the kernels' rounding (``docs/batching.md``).
    batch_wait_ms
        How long a pass that already has company waits for more callers before
        it starts (a lone call never waits). ``0`` (default): take what queued
        while the previous pass ran.
    pool_factor
        Token pooling of documents (:mod:`latecore.pooling`): keep about
        ``1/pool_factor`` of each document's vectors, as cluster means. ``1``
        (default) keeps every vector. Queries are never pooled. Part of the
        fingerprint (and so of the cache key) when above 1.
    """

    def __init__(
        self,
        *,
        cache: DocumentCache | CacheLocation | None = None,
        batch_size: int = 32,
        show_progress: bool | None = None,
        max_batch: int = DEFAULT_MAX_BATCH,
        batch_wait_ms: float = 0.0,
        pool_factor: int = 1,
    ) -> None:
        self._cache = _opened(cache)
        self.pool_factor = check_pool_factor(pool_factor)
        self.batch_size = check_positive(batch_size, "batch_size")
        self.show_progress = progress_enabled(show_progress)
        self._model_lock = threading.RLock()
        wait_ms = check_batch_wait_ms(batch_wait_ms)
        self._batcher = MicroBatcher(max_batch=max_batch, wait_s=wait_ms / 1000)
        self._stats = [EncodeStats()]  # one shared, replaceable cell (see with_cache)

    @property
    def cache(self) -> DocumentCache | None:
        """The document cache, if any (fixed at construction: it is part of the fingerprint)."""
        return self._cache

    def with_cache(self, cache: DocumentCache | CacheLocation | None) -> Self:
        """A copy of this encoder that shares its model but uses ``cache`` (or the one there).

        The copy has its own fingerprint (the storage dtype is part of it) and
        shares the model lock and the micro-batcher, so calls stay serialised
        across copies and concurrent ones are coalesced across copies too.
        """
        clone = copy.copy(self)
        clone._cache = _opened(cache)
        clone.__dict__.pop("fingerprint", None)
        return clone

    @property
    def model_name(self) -> str:
        """A readable name of the model, for logs, events and ``repr``."""
        return type(self).__name__

    @property
    def storage_dtype(self) -> str:
        """Precision of returned document vectors: the cache's dtype, else float32."""
        return self._cache.dtype if self._cache is not None else "float32"

    @abstractmethod
    def _model_fingerprint_fields(self) -> dict[str, Any]:
        """Every model-side setting that can change the vectors."""

    @abstractmethod
    def _encode(self, texts: list[str], *, is_query: bool) -> list[np.ndarray]:
        """Run the model on non-empty ``texts``; called with the model lock held."""

    @property
    def fingerprint_fields(self) -> dict[str, Any]:
        """What :attr:`fingerprint` is computed from."""
        fields = dict(self._model_fingerprint_fields())
        fields["storage_dtype"] = self.storage_dtype
        if self.pool_factor > 1:  # only when set: unpooled fingerprints stay as they were
            fields["pool_factor"] = self.pool_factor
        fields["fingerprint_version"] = FINGERPRINT_VERSION
        return fields

    @cached_property
    def fingerprint(self) -> str:
        """SHA-256 of every setting that can change the vectors (see DESIGN §4).

        Two encoders that could produce different vectors never share a fingerprint.
        """
        canonical = json.dumps(self.fingerprint_fields, sort_keys=True, ensure_ascii=True)
        return hashlib.sha256(canonical.encode("ascii")).hexdigest()

    @property
    def max_batch(self) -> int:
        """Texts one coalesced model pass takes at most (see :mod:`latecore.batching`)."""
        return self._batcher.max_batch

    @property
    def batch_wait_ms(self) -> float:
        """How long a pass with company waits for more callers, in milliseconds."""
        return self._batcher.wait_s * 1000

    def batch_stats(self) -> BatchStats:
        """Passes, requests and texts the micro-batcher ran (see :class:`BatchStats`)."""
        return self._batcher.stats

    def encode_stats(self) -> EncodeStats:
        """Texts run through the model so far and the time spent (see :class:`EncodeStats`)."""
        with self._model_lock:
            return self._stats[0]

    def _run_model(self, texts: list[str], *, is_query: bool) -> list[np.ndarray]:
        """The model's arrays for ``texts``, in a pass shared with concurrent callers."""
        if not texts:
            return []
        return self._batcher.run(texts, is_query, self._run_pass)

    def _run_pass(self, texts: list[str], is_query: bool) -> list[np.ndarray]:
        """One model call on ``texts``, counted in :meth:`encode_stats`."""
        with self._model_lock:
            start = time.perf_counter()
            arrays = self._encode(texts, is_query=is_query)
            seconds = time.perf_counter() - start
            done = self._stats[0]
            self._stats[0] = (
                replace(
                    done,
                    queries=done.queries + len(texts),
                    query_seconds=done.query_seconds + seconds,
                )
                if is_query
                else replace(
                    done,
                    documents=done.documents + len(texts),
                    document_seconds=done.document_seconds + seconds,
                )
            )
        result = [np.ascontiguousarray(a, dtype=np.float32) for a in arrays]
        if is_query or self.pool_factor == 1:
            return result
        return [pool_vectors(a, self.pool_factor)[0] for a in result]

    def encode_queries(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Multivectors of queries, float32 ``(n_tokens, dim)`` each. Queries are not cached."""
        cleaned = [clean_text(t) for t in check_texts(texts, "encode_queries")]
        return self._run_model(cleaned, is_query=True)

    def encode_documents(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Multivectors of documents, float32 ``(n_tokens, dim)`` each, through the cache.

        Cache hits are not re-encoded; all misses (each distinct text once) are
        encoded in one batched model call and written back.
        """
        cleaned = [clean_text(t) for t in check_texts(texts, "encode_documents")]
        if self._cache is None:
            unique = list(dict.fromkeys(cleaned))
            encoded = dict(zip(unique, self._run_model(unique, is_query=False), strict=True))
            return [encoded[t] for t in cleaned]
        fingerprint = self.fingerprint
        keys = [cache_key(fingerprint, "document", t) for t in cleaned]
        stored = self._cache.get_many(keys)
        result: list[np.ndarray | None] = [
            None if a is None else a.astype(np.float32) for a in stored
        ]
        missing: dict[str, bytes] = {}
        for text, key, array in zip(cleaned, keys, result, strict=True):
            if array is None:
                missing.setdefault(text, key)
        if missing:
            fresh = self._run_model(list(missing), is_query=False)
            self._cache.put_many(list(missing.values()), fresh)
            rounded = {
                text: as_stored(a, self._cache.dtype)
                for text, a in zip(missing, fresh, strict=True)
            }
            result = [rounded[t] if a is None else a for t, a in zip(cleaned, result, strict=True)]
        return [a for a in result if a is not None]

    def model_text(self, text: str) -> str:
        """The exact string the model sees for ``text``: here, lone surrogates replaced.

        Offsets into it are offsets into ``text`` (the replacement keeps the length).
        """
        return clean_text(text)

    def token_spans(self, text: str, *, is_query: bool) -> list[tuple[str, Span | None]]:
        """Each of ``text``'s vectors as ``(token, (start, end) or None)``, in order.

        The hook behind the default :meth:`encode_with_tokens`: an encoder whose
        ``_encode`` returns one vector per token it can name implements this for a
        ``text`` already passed through :meth:`model_text`; a token without a span
        counts as special.

        Raises
        ------
        TypeError
            Unless a subclass implements it: this encoder cannot say which token each
            of its vectors stands for.
        """
        raise TypeError(
            f"{type(self).__name__} cannot say which token each of its vectors stands for: "
            "give it a token_spans(text, *, is_query) method returning one (token, (start, "
            "end) or None) per vector, or override _encode_with_tokens"
        )

    def encode_with_tokens(self, texts: Sequence[str], *, is_query: bool) -> list[TokenizedText]:
        """The token-level view of ``texts`` that MaxSim scores: vectors, tokens, spans, flags.

        Parameters
        ----------
        texts
            Queries (``is_query=True``) or documents.
        is_query
            Encode as queries (marker, query length, expansion) or as documents.

        Returns
        -------
        list of TokenizedText
            One per text. ``vectors`` are those :meth:`encode_queries` or
            :meth:`encode_documents` return for the text with this encoder's
            settings (document vectors rounded to :attr:`storage_dtype`, as a cached
            encoder returns them; the cache itself is neither read nor written).
            Spans are offsets into the text.

        Raises
        ------
        TypeError
            If the encoder cannot say which token each vector stands for (see
            :meth:`token_spans`).

        Examples
        --------
        >>> from latecore.testing import FakeEncoder
        >>> (doc,) = FakeEncoder(dim=8).encode_with_tokens(["Hi, you"], is_query=False)
        >>> doc.vectors.shape, doc.tokens
        ((4, 8), ('[D]', 'hi', ',', 'you'))
        >>> [doc.text[slice(*span)] for span in doc.spans if span is not None]
        ['Hi', ',', 'you']
        >>> doc.special
        (True, False, False, False)
        """
        cleaned = [self.model_text(t) for t in check_texts(texts, "encode_with_tokens")]
        if not cleaned:
            return []
        with self._model_lock:
            encoded = self._encode_with_tokens(cleaned, is_query=is_query)
        if not is_query and self.pool_factor > 1:
            encoded = [pool_tokenized(item, self.pool_factor) for item in encoded]
        result = []
        for item in encoded:
            vectors = np.ascontiguousarray(item.vectors, dtype=np.float32)
            if not is_query:
                vectors = as_stored(vectors, self.storage_dtype)
            result.append(replace(item, vectors=vectors))
        return result

    def _encode_with_tokens(self, texts: list[str], *, is_query: bool) -> list[TokenizedText]:
        """:meth:`encode_with_tokens` of non-empty model texts; called with the model lock held.

        This default labels the vectors of :meth:`_encode` with :meth:`token_spans`.
        """
        labels = [self.token_spans(text, is_query=is_query) for text in texts]
        arrays = self._encode(texts, is_query=is_query)
        result = []
        for text, label, vectors in zip(texts, labels, arrays, strict=True):
            if len(label) != len(vectors):
                raise ValueError(
                    f"{type(self).__name__}.token_spans gave {len(label)} tokens for "
                    f"{len(vectors)} vectors; it must label every vector of the text"
                )
            result.append(
                TokenizedText(
                    text=text,
                    vectors=vectors,
                    tokens=tuple(token for token, _ in label),
                    spans=tuple(span for _, span in label),
                    special=tuple(span is None for _, span in label),
                    expansion=(False,) * len(label),
                )
            )
        return result

    async def aencode_queries(self, texts: Sequence[str]) -> list[np.ndarray]:
        """:meth:`encode_queries` in a worker thread, so the event loop is not blocked."""
        return await asyncio.to_thread(self.encode_queries, texts)

    async def aencode_documents(self, texts: Sequence[str]) -> list[np.ndarray]:
        """:meth:`encode_documents` in a worker thread, so the event loop is not blocked."""
        return await asyncio.to_thread(self.encode_documents, texts)
