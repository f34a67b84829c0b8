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

    @property
    def stage_scores(self) -> dict[str, float | int | None]:
        """Per-stage scores beyond :attr:`score`: none for a plain search hit."""
        return {}


@dataclass(frozen=True, kw_only=True)
class HybridHit(SearchHit):
    """A :class:`SearchHit` of a :class:`~latecore.hybrid.HybridSearcher`, with every stage's score.

    ``score`` is the fused score the hits are sorted by. ``bm25_rank`` is the
    1-based rank among BM25's nominations by BM25 score, ``colbert_rank`` among
    MaxSim's nominations by MaxSim score (ties break by BM25 rank); both, and
    ``bm25_score``, are ``None`` where that stage did not nominate the document.
    ``colbert_score`` is always the exact MaxSim score. The stage fields are
    keyword-only.

    Examples
    --------
    >>> hit = HybridHit(
    ...     id="d1", score=0.5, text="hello", metadata={},
    ...     bm25_score=1.2, bm25_rank=2, colbert_score=7.5, colbert_rank=1,
    ... )
    >>> hit.bm25_rank, hit.colbert_rank, isinstance(hit, SearchHit)
    (2, 1, True)
    """

    bm25_score: float | None
    bm25_rank: int | None
    colbert_score: float
    colbert_rank: int | None

    @property
    def stage_scores(self) -> dict[str, float | int | None]:
        """Both stages' scores and ranks, by field name (what adapters put in metadata).

        Examples
        --------
        >>> HybridHit(
        ...     id="d", score=1.0, text="", bm25_score=2.0, bm25_rank=1,
        ...     colbert_score=9.0, colbert_rank=3,
        ... ).stage_scores
        {'bm25_score': 2.0, 'bm25_rank': 1, 'colbert_score': 9.0, 'colbert_rank': 3}
        """
        return {
            "bm25_score": self.bm25_score,
            "bm25_rank": self.bm25_rank,
            "colbert_score": self.colbert_score,
            "colbert_rank": self.colbert_rank,
        }
