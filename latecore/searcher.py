"""The searcher seam: what :class:`~latecore.index.LateIndex` and
:class:`~latecore.hybrid.HybridSearcher` share, and all that the adapters consume.

A :class:`Searcher` holds documents (ids, texts, metadata) and answers queries
with :class:`~latecore.results.SearchHit` values, best first. Subclasses
implement :meth:`Searcher.add`, :meth:`Searcher.delete`, :meth:`Searcher.get`,
:meth:`Searcher.search_batch` and :attr:`Searcher.ids`; single-query and async
forms, and the argument rules, are here once. Search options beyond ``k`` (for
example ``fusion=`` of a hybrid searcher) are passed through as keywords.

Examples
--------
>>> from latecore import HybridSearcher, LateIndex
>>> from latecore.testing import FakeEncoder
>>> encoder = FakeEncoder()
>>> searchers = [LateIndex(encoder), HybridSearcher(encoder)]
>>> for searcher in searchers:
...     _ = searcher.add(["cats purr", "dogs bark"], ids=["c", "d"])
>>> [searcher.search("why do dogs bark", k=1)[0].id for searcher in searchers]
['d', 'd']
"""

from __future__ import annotations

import asyncio
import uuid
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .results import SearchHit
from .validation import check_count, check_texts

if TYPE_CHECKING:
    from types import TracebackType

    from typing_extensions import Self

    from .base_encoder import BaseEncoder

__all__ = ["Hit", "Searcher", "check_documents", "check_ids", "check_queries"]

Columns = tuple[list[str], list[str], list[dict[str, Any]]]

Hit = TypeVar("Hit", bound=SearchHit)
"""The hit type of a searcher: :class:`SearchHit`, or a subclass such as ``HybridHit``."""


def check_documents(
    texts: Sequence[str],
    ids: Sequence[str] | None = None,
    metadatas: Sequence[Mapping[str, Any] | None] | None = None,
) -> Columns:
    """The columns an ``add`` call stores: texts, ids (uuid4 hex where none given), metadata.

    Raises
    ------
    TypeError
        If ``texts`` is a single string, a text is not a string, or a metadata
        entry is not a mapping.
    ValueError
        If the lengths differ or an id repeats.

    Examples
    --------
    >>> texts, ids, metas = check_documents(["a", "b"], ids=[1, 2], metadatas=[None, {"x": 1}])
    >>> ids, metas
    (['1', '2'], [{}, {'x': 1}])
    >>> check_documents(["a", "b"], ids=["x", "x"])
    Traceback (most recent call last):
    ...
    ValueError: ids must be unique within one add call; repeated: ['x']
    """
    texts = check_texts(texts, "add", "text")
    if isinstance(ids, str):
        raise TypeError("ids must be a sequence of ids, not one string")
    new_ids = [uuid.uuid4().hex for _ in texts] if ids is None else [str(i) for i in ids]
    if len(new_ids) != len(texts):
        raise ValueError(f"got {len(new_ids)} ids for {len(texts)} texts")
    if len(set(new_ids)) != len(new_ids):
        repeated = sorted(i for i, n in Counter(new_ids).items() if n > 1)
        raise ValueError(f"ids must be unique within one add call; repeated: {repeated[:5]}")
    metas = [None] * len(texts) if metadatas is None else list(metadatas)
    if len(metas) != len(texts):
        raise ValueError(f"got {len(metas)} metadatas for {len(texts)} texts")
    for i, meta in enumerate(metas):
        if meta is not None and not isinstance(meta, Mapping):
            raise TypeError(f"metadata {i} must be a mapping, got {type(meta).__name__}")
    return texts, new_ids, [dict(m or {}) for m in metas]


def check_queries(queries: Sequence[str]) -> list[str]:
    """``queries`` as a list, refusing a single string and non-string items."""
    return check_texts(queries, "search_batch", "query", "queries")


def check_ids(ids: Sequence[str], what: str = "delete") -> list[str]:
    """``ids`` as a list, refusing a single string (a common slip: ``delete("doc-1")``)."""
    if isinstance(ids, str):
        raise TypeError(f"{what} takes a sequence of ids; wrap a single id in a list")
    return [str(i) for i in ids]


class Searcher(ABC, Generic[Hit]):
    """Documents searchable by query; the protocol every latecore searcher follows.

    Implemented by :class:`~latecore.index.LateIndex` (MaxSim over the stored
    multivectors, through its backend) and :class:`~latecore.hybrid.HybridSearcher`
    (BM25 candidates, MaxSim, fusion). Hits are
    :class:`~latecore.results.SearchHit` values (a hybrid searcher's are
    :class:`~latecore.results.HybridHit`, a ``SearchHit`` with stage fields).

    Rules shared by every searcher: ``k`` is a non-negative ``int`` (``0``
    returns ``[]``; ``bool``, floats and strings raise ``ValueError``); an id
    that is added again replaces the stored document; unknown ids are ignored
    by :meth:`delete` and skipped by :meth:`get`. A searcher is a context
    manager that calls :meth:`close` on exit.
    """

    encoder: BaseEncoder
    """The encoder of the documents and the queries."""

    @abstractmethod
    def __len__(self) -> int:
        """Number of stored documents."""

    @property
    @abstractmethod
    def ids(self) -> list[str]:
        """Document ids in insertion order."""

    @abstractmethod
    def add(
        self,
        texts: Sequence[str],
        ids: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> list[str]:
        """Encode and store documents (an existing id is replaced); returns their ids."""

    @abstractmethod
    def delete(self, ids: Sequence[str]) -> int:
        """Remove documents by id; unknown ids are ignored. Returns how many were removed."""

    @abstractmethod
    def get(self, ids: Sequence[str]) -> list[SearchHit]:
        """Stored documents for ``ids`` in the order given (unknown ids skipped), score 0."""

    @abstractmethod
    def search_batch(self, queries: Sequence[str], k: int = 10, **options: Any) -> list[list[Hit]]:
        """The best ``k`` hits of each query, best first: one list per query, in order."""

    def search(self, query: str, k: int = 10, **options: Any) -> list[Hit]:
        """The best ``k`` hits for ``query``, best first (see :meth:`search_batch`)."""
        if not isinstance(query, str):
            raise TypeError(f"search takes one query string, got {type(query).__name__}")
        check_count(k, "k")
        return self.search_batch([query], k, **options)[0]

    def close(self) -> None:
        """Release clients and temporary files (idempotent); nothing to release by default."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    async def asearch(self, query: str, k: int = 10, **options: Any) -> list[Hit]:
        """:meth:`search` in a worker thread, so the event loop is not blocked."""
        return await asyncio.to_thread(self.search, query, k, **options)

    async def asearch_batch(
        self, queries: Sequence[str], k: int = 10, **options: Any
    ) -> list[list[Hit]]:
        """:meth:`search_batch` in a worker thread."""
        return await asyncio.to_thread(self.search_batch, queries, k, **options)

    async def aadd(
        self,
        texts: Sequence[str],
        ids: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> list[str]:
        """:meth:`add` in a worker thread."""
        return await asyncio.to_thread(self.add, texts, ids, metadatas)

    async def adelete(self, ids: Sequence[str]) -> int:
        """:meth:`delete` in a worker thread."""
        return await asyncio.to_thread(self.delete, ids)
