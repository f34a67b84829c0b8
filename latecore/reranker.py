"""Reranking candidate texts by MaxSim against a query."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from .base_encoder import BaseEncoder
from .maxsim import maxsim_batch
from .maxsim import top_k as _top
from .results import RerankResult
from .validation import check_optional_count

__all__ = ["Reranker"]


class Reranker:
    """Rank candidate texts for a query by exact MaxSim.

    Document multivectors go through the encoder's cache, so candidates seen
    before (for any query) are not encoded again.

    Parameters
    ----------
    encoder
        Any latecore encoder (:class:`~latecore.encoder.Encoder`, or
        :class:`~latecore.testing.FakeEncoder` in tests).

    Examples
    --------
    >>> from latecore.testing import FakeEncoder
    >>> reranker = Reranker(FakeEncoder())
    >>> docs = ["cats purr", "the stock market fell", "dogs bark loudly"]
    >>> [r.index for r in reranker.rerank("why did the market fall", docs, top_k=2)]
    [1, 0]
    """

    def __init__(self, encoder: BaseEncoder) -> None:
        self.encoder = encoder

    def rerank(
        self, query: str, documents: Sequence[str], top_k: int | None = None
    ) -> list[RerankResult]:
        """Candidates ranked by descending score (ties keep input order), cut to ``top_k``."""
        return self.rerank_batch([query], [documents], top_k=top_k)[0]

    def rerank_batch(
        self,
        queries: Sequence[str],
        documents: Sequence[Sequence[str]],
        top_k: int | None = None,
    ) -> list[list[RerankResult]]:
        """One ranking per query, each over its own candidate list.

        All queries are encoded in one call and all distinct candidates in another.
        """
        check_optional_count(top_k, "top_k")
        if isinstance(queries, str):
            raise TypeError("rerank_batch takes a sequence of queries; use rerank for one")
        if len(queries) != len(documents):
            raise ValueError(f"got {len(queries)} queries but {len(documents)} candidate lists")
        candidate_lists = [list(d) for d in documents]
        unique = list(dict.fromkeys(t for docs in candidate_lists for t in docs))
        vectors = dict(zip(unique, self.encoder.encode_documents(unique), strict=True))
        query_vectors = self.encoder.encode_queries(list(queries))
        rankings: list[list[RerankResult]] = []
        for q, docs in zip(query_vectors, candidate_lists, strict=True):
            if not docs:
                rankings.append([])
                continue
            scores = maxsim_batch([q], [vectors[t] for t in docs])[0]
            rankings.append(
                [RerankResult(int(i), float(scores[i]), docs[i]) for i in _top(scores, top_k)]
            )
        return rankings

    async def arerank(
        self, query: str, documents: Sequence[str], top_k: int | None = None
    ) -> list[RerankResult]:
        """:meth:`rerank` in a worker thread: the event loop is never blocked."""
        return await asyncio.to_thread(self.rerank, query, documents, top_k)

    async def arerank_batch(
        self,
        queries: Sequence[str],
        documents: Sequence[Sequence[str]],
        top_k: int | None = None,
    ) -> list[list[RerankResult]]:
        """:meth:`rerank_batch` in a worker thread."""
        return await asyncio.to_thread(self.rerank_batch, queries, documents, top_k)
