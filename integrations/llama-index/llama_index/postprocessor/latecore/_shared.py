"""Node helpers of llama-index-latecore, public as ``llama_index.postprocessor.latecore.*``.

The retrievers (``llama_index.retrievers.latecore``) import them from that
public path: both packages ship in the one ``llama-index-latecore``
distribution, and the postprocessor is the one that needs nothing of the other.
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
    copy keeps the node's id; ``node`` itself is not modified. This is how
    ``LateInteractionRerank`` keeps ``retrieval_score`` and the hybrid retriever
    its per-stage scores.

    Examples
    --------
    >>> from llama_index.core.schema import MetadataMode, TextNode
    >>> node = TextNode(text="cats purr", metadata={"topic": "cats"}, id_="c")
    >>> scored = with_hidden_metadata(node, {"retrieval_score": 0.9})
    >>> scored.metadata, scored.node_id, node.metadata
    ({'topic': 'cats', 'retrieval_score': 0.9}, 'c', {'topic': 'cats'})
    >>> scored.get_content(MetadataMode.LLM) == node.get_content(MetadataMode.LLM)
    True
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
