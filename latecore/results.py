"""Result values returned by latecore: small frozen dataclasses, never framework objects."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["HybridHit", "RerankResult", "SearchHit"]


@dataclass(frozen=True)
class RerankResult:
    """One reranked candidate: its position in the input list, its MaxSim score and text.

    Examples
    --------
    >>> RerankResult(index=2, score=12.5, text="a passage")
    RerankResult(index=2, score=12.5, text='a passage')
    """

    index: int
    score: float
    text: str


@dataclass(frozen=True)
class SearchHit:
    """One search result from a :class:`~latecore.index.LateIndex`.

    Examples
    --------
    >>> SearchHit(id="doc-1", score=3.0, text="hello", metadata={"lang": "en"}).metadata
    {'lang': 'en'}
    """

    id: str
    score: float
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class HybridHit:
    """One result of a :class:`~latecore.hybrid.HybridSearcher`, with every stage's score.

    Ranks are 1-based within the BM25 candidate set of the query: ``bm25_rank``
    orders the candidates by BM25 score, ``colbert_rank`` by MaxSim score (ties in
    either break by BM25 rank). ``score`` is the fused score the hits are sorted by.

    Examples
    --------
    >>> hit = HybridHit(
    ...     id="d1", score=0.5, text="hello", metadata={},
    ...     bm25_score=1.2, bm25_rank=2, colbert_score=7.5, colbert_rank=1,
    ... )
    >>> hit.bm25_rank, hit.colbert_rank
    (2, 1)
    """

    id: str
    score: float
    text: str
    metadata: dict[str, Any]
    bm25_score: float
    bm25_rank: int
    colbert_score: float
    colbert_rank: int
