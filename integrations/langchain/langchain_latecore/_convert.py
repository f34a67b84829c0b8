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
    "filled_ids",
    "scored_copy",
    "stored_document",
]

Columns = tuple[list[str], list[str], list[dict[str, Any]]]


def filled_ids(ids: Iterable[str | None]) -> list[str]:
    """``ids`` as strings, with a new uuid4 hex id wherever one is ``None``."""
    return [uuid.uuid4().hex if i is None else str(i) for i in ids]


def documents_to_columns(
    documents: Iterable[Document], ids: Sequence[str | None] | None = None
) -> Columns:
    """Texts, ids and metadata of ``documents``, as latecore's ``add`` takes them.

    An id comes from ``ids`` when given, else from ``Document.id``; a document
    with neither gets a new uuid4 hex id. The metadata is a deep copy, so
    changing a document after adding it never changes the index.
    """
    docs = list(documents)
    if ids is not None and len(ids) != len(docs):
        raise ValueError(f"got {len(ids)} ids for {len(docs)} documents")
    return (
        [d.page_content for d in docs],
        filled_ids(ids if ids is not None else [d.id for d in docs]),
        [copy.deepcopy(d.metadata) for d in docs],
    )


def stored_document(hit: SearchHit) -> Document:
    """A new :class:`Document` holding what the index stores for a hit: text, id, metadata.

    The metadata is a deep copy, so changing it never changes the index.
    """
    return Document(page_content=hit.text, metadata=copy.deepcopy(hit.metadata), id=hit.id)


def document_from_hit(hit: SearchHit) -> Document:
    """:func:`stored_document` with the hit's scores added to the metadata.

    ``metadata["relevance_score"]`` is the hit's score, followed by its
    ``stage_scores`` (a hybrid hit's ``bm25_score``, ``bm25_rank``,
    ``colbert_score`` and ``colbert_rank``).
    """
    document = stored_document(hit)
    document.metadata.update(relevance_score=hit.score, **hit.stage_scores)
    return document


def scored_copy(document: Document, score: float) -> Document:
    """A deep copy of ``document`` with ``metadata["relevance_score"] = score``."""
    scored = document.model_copy(deep=True)
    scored.metadata["relevance_score"] = score
    return scored
