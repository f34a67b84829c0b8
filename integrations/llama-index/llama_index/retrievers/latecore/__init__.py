"""LlamaIndex retrievers over latecore: late-interaction (ColBERT), BM25 -> ColBERT hybrid,
and pages (PDF pages, images) as ``ImageNode``s by ColPali-style late interaction.

All are :class:`LateSearchRetriever` subclasses that build their latecore searcher;
a :class:`LateSearchRetriever` also takes any latecore searcher as it is.
"""

from __future__ import annotations

from ._nodes import LateSearchRetriever
from .base import LateInteractionRetriever
from .hybrid import LateInteractionHybridRetriever
from .pages import LateInteractionPageRetriever

__all__ = [
    "LateInteractionHybridRetriever",
    "LateInteractionPageRetriever",
    "LateInteractionRetriever",
    "LateSearchRetriever",
]
