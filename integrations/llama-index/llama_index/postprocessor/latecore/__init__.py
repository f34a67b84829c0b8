"""LlamaIndex node postprocessor reranking by ColBERT late interaction (latecore).

- :class:`LateInteractionRerank`: rerank retrieved nodes by exact MaxSim, with
  cached document multivectors.
- :func:`with_hidden_metadata`: a copy of a node with extra metadata (scores)
  hidden from its embedding and LLM views.
"""

from __future__ import annotations

from ._shared import with_hidden_metadata
from .base import LateInteractionRerank

__all__ = ["LateInteractionRerank", "with_hidden_metadata"]
