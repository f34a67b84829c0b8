"""Result values returned by latecore: small frozen dataclasses, never framework objects."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["RerankResult", "SearchHit"]


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
