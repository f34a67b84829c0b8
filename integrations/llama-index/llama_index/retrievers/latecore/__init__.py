"""LlamaIndex retrievers over latecore: late-interaction (ColBERT) and BM25 -> ColBERT hybrid.

Both are :class:`LateSearchRetriever` subclasses that only build their latecore
searcher; a :class:`LateSearchRetriever` also takes any latecore searcher as it is.
"""

from __future__ import annotations

from ._nodes import LateSearchRetriever
from .base import LateInteractionRetriever
from .hybrid import LateInteractionHybridRetriever

__all__ = ["LateInteractionHybridRetriever", "LateInteractionRetriever", "LateSearchRetriever"]
