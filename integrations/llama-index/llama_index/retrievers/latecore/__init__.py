"""LlamaIndex retrievers over latecore: late-interaction (ColBERT) and BM25 -> ColBERT hybrid."""

from __future__ import annotations

from .base import LateInteractionRetriever
from .hybrid import LateInteractionHybridRetriever

__all__ = ["LateInteractionHybridRetriever", "LateInteractionRetriever"]
