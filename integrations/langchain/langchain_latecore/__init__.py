"""LangChain integration of latecore: late-interaction (ColBERT) retrieval and reranking.

- :class:`LateInteractionRetriever`: exact MaxSim search over a latecore ``LateIndex``.
- :class:`LateInteractionHybridRetriever`: BM25 candidates reranked by MaxSim, then fused.
- :class:`LateInteractionReranker`: a document compressor for
  ``ContextualCompressionRetriever`` whose document multivectors are cached.
- :class:`LateInteractionPageRetriever`: pages (PDF pages, images) by ColPali-style MaxSim
  over page images, one ``Document`` per page (``latecore[vision]``).
- :class:`LateInteractionVectorStore`: a ``VectorStore`` over a ``LateIndex`` or a
  ``HybridSearcher`` (metadata filters, ids, LangChain's indexing API).

The retrievers are :class:`LateSearchRetriever` subclasses: one implementation
over latecore's searcher protocol, documented there once.
"""

from __future__ import annotations

from .compressors import LateInteractionReranker
from .pages import LateInteractionPageRetriever
from .retrievers import (
    LateInteractionHybridRetriever,
    LateInteractionRetriever,
    LateSearchRetriever,
)
from .vectorstores import LateInteractionVectorStore

__version__ = "0.1.0"

__all__ = [
    "LateInteractionHybridRetriever",
    "LateInteractionPageRetriever",
    "LateInteractionReranker",
    "LateInteractionRetriever",
    "LateInteractionVectorStore",
    "LateSearchRetriever",
    "__version__",
]
