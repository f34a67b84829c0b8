"""Conversions shared by the postprocessor and the retrievers of llama-index-latecore.

Private: nothing here is part of the public API.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from llama_index.core.schema import BaseNode

from latecore import BaseEncoder, Encoder, MultivectorCache

__all__ = ["build_encoder", "encoder_name", "with_hidden_metadata"]


def build_encoder(
    model: str | None,
    *,
    device: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Encoder:
    """A latecore :class:`~latecore.Encoder` whose document vectors go through a disk cache.

    Parameters
    ----------
    model
        Hub id or local checkpoint; ``None`` lets latecore pick (``$LATECORE_MODEL``,
        else its default model).
    device
        ``"cpu"``, ``"cuda"``, ...; ``None`` picks CUDA when available.
    cache_dir
        Directory of the :class:`~latecore.MultivectorCache`; ``None`` uses
        latecore's default cache directory.
    """
    return Encoder(model, device=device, cache=MultivectorCache(cache_dir))


def encoder_name(encoder: BaseEncoder) -> str:
    """The model id of a latecore encoder, for events and ``repr``; the class name otherwise."""
    if isinstance(encoder, Encoder):
        return encoder.info.model_id
    return type(encoder).__name__


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
