"""LlamaIndex node postprocessor reranking by ColBERT late interaction (latecore)."""

from __future__ import annotations

from .base import LateInteractionRerank

__all__ = ["LateInteractionRerank"]
