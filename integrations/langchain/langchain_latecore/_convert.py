"""Conversions between latecore values and LangChain documents.

Private: nothing here is part of the public API.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from langchain_core.documents import Document

from latecore import SearchHit

__all__ = [
    "document_from_hit",
    "documents_to_columns",
    "scored_copy",
]

Columns = tuple[list[str], list[str], list[dict[str, Any]]]


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


def document_from_hit(hit: SearchHit) -> Document:
    """A new :class:`Document` for a search hit: its text, id and metadata plus its scores.

    ``metadata["relevance_score"]`` is the hit's score, followed by its
    ``stage_scores`` (a hybrid hit's ``bm25_score``, ``bm25_rank``,
    ``colbert_score`` and ``colbert_rank``). The metadata is a deep copy, so
    changing it never changes the index.
    """
    return Document(
        page_content=hit.text,
        metadata={
            **copy.deepcopy(hit.metadata),
            "relevance_score": hit.score,
            **hit.stage_scores,
        },
        id=hit.id,
    )


def scored_copy(document: Document, score: float) -> Document:
    """A deep copy of ``document`` with ``metadata["relevance_score"] = score``."""
    scored = document.model_copy(deep=True)
    scored.metadata["relevance_score"] = score
    return scored
