"""LlamaIndex node postprocessor reranking by ColBERT late interaction (latecore).

- :class:`LateInteractionRerank`: rerank retrieved nodes by exact MaxSim, with
  cached document multivectors.
- :class:`LateInteractionImageRerank`: rerank image nodes (pages) by ColPali-style
  MaxSim, with cached page vectors (``latecore[vision]``).
- :func:`page_from_node`, :func:`png_base64`: pages as
  image nodes (used by ``llama_index.retrievers.latecore.LateInteractionPageRetriever``).
- :func:`with_hidden_metadata`: a copy of a node with extra metadata (scores)
  hidden from its embedding and LLM views.
"""

from __future__ import annotations

from ._pages import LAYOUT_KEYS, page_from_node, png_base64
from ._shared import with_hidden_metadata
from .base import LateInteractionRerank
from .pages import LateInteractionImageRerank

__all__ = [
    "LAYOUT_KEYS",
    "LateInteractionImageRerank",
    "LateInteractionRerank",
    "page_from_node",
    "png_base64",
    "with_hidden_metadata",
]
