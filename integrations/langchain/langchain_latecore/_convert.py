"""Conversions between latecore values and LangChain documents.

Private: nothing here is part of the public API.
"""

from __future__ import annotations

import copy
import os
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from langchain_core.documents import Document

from latecore import BaseEncoder, Encoder, HybridHit, MultivectorCache, SearchHit

__all__ = [
    "build_encoder",
    "document_from_hit",
    "documents_to_columns",
    "scored_copy",
]

Columns = tuple[list[str], list[str], list[dict[str, Any]]]


def build_encoder(
    encoder: BaseEncoder | None,
    model: str | os.PathLike[str] | None,
    *,
    device: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> BaseEncoder:
    """The given ``encoder``, else an :class:`~latecore.Encoder` for ``model`` with a disk cache.

    Parameters
    ----------
    encoder
        An already-built latecore encoder, returned as it is.
    model
        Hub id or local checkpoint; ``None`` lets latecore pick (``$LATECORE_MODEL``,
        else its default model). Only used when ``encoder`` is ``None``.
    device
        ``"cpu"``, ``"cuda"``, ...; ``None`` picks CUDA when available.
    cache_dir
        Directory of the :class:`~latecore.MultivectorCache` of a new encoder;
        ``None`` uses latecore's default cache directory.

    Raises
    ------
    ValueError
        If both ``encoder`` and ``model`` (or ``device``) are given.
    """
    if encoder is not None:
        if model is not None or device is not None:
            raise ValueError("pass either an encoder or a model (and device), not both")
        return encoder
    return Encoder(model, device=device, cache=MultivectorCache(cache_dir))


def documents_to_columns(
    documents: Iterable[Document], ids: Sequence[str] | None = None
) -> Columns:
    """Texts, ids and metadata of ``documents``, as latecore's ``add`` takes them.

    An id comes from ``ids`` when given, else from ``Document.id``; a document
    with neither gets a new uuid4 hex id.
    """
    docs = list(documents)
    if ids is not None and len(ids) != len(docs):
        raise ValueError(f"got {len(ids)} ids for {len(docs)} documents")
    given = list(ids) if ids is not None else [d.id for d in docs]
    return (
        [d.page_content for d in docs],
        [uuid.uuid4().hex if i is None else str(i) for i in given],
        [dict(d.metadata) for d in docs],
    )


def document_from_hit(hit: SearchHit | HybridHit) -> Document:
    """A new :class:`Document` for a search hit: its text, id and metadata plus its scores.

    ``metadata["relevance_score"]`` is the hit's score; a hybrid hit also gets
    ``bm25_score``, ``bm25_rank``, ``colbert_score`` and ``colbert_rank``. The
    metadata is a deep copy, so changing it never changes the index.
    """
    scores: dict[str, Any] = {"relevance_score": hit.score}
    if isinstance(hit, HybridHit):
        scores.update(
            bm25_score=hit.bm25_score,
            bm25_rank=hit.bm25_rank,
            colbert_score=hit.colbert_score,
            colbert_rank=hit.colbert_rank,
        )
    return Document(
        page_content=hit.text,
        metadata={**copy.deepcopy(hit.metadata), **scores},
        id=hit.id,
    )


def scored_copy(document: Document, score: float) -> Document:
    """A deep copy of ``document`` with ``metadata["relevance_score"] = score``."""
    scored = document.model_copy(deep=True)
    scored.metadata["relevance_score"] = score
    return scored
