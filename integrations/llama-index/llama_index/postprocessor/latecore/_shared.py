"""Conversions shared by the postprocessor and the retrievers of llama-index-latecore.

Private: nothing here is part of the public API.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llama_index.core.schema import BaseNode

__all__ = ["with_hidden_metadata"]


def with_hidden_metadata(node: BaseNode, extra: Mapping[str, Any]) -> BaseNode:
    """A shallow copy of ``node`` with ``extra`` added to its metadata.

    The added keys are excluded from the embedding and LLM views of the node, so
    ``get_content(metadata_mode=...)`` returns the same text as before: scores
    never leak into prompts, and a reranker downstream still hits its cache. The
    copy keeps the node's id; ``node`` itself is not modified.
    """
    embed_hidden = node.excluded_embed_metadata_keys
    llm_hidden = node.excluded_llm_metadata_keys
    return node.model_copy(
        update={
            "metadata": {**node.metadata, **extra},
            "excluded_embed_metadata_keys": [
                *embed_hidden,
                *(k for k in extra if k not in embed_hidden),
            ],
            "excluded_llm_metadata_keys": [*llm_hidden, *(k for k in extra if k not in llm_hidden)],
        }
    )
