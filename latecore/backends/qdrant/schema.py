"""The collection latecore keeps in Qdrant, whichever engine holds it.

One point per document: named vectors ``"muvera"`` (the document's MUVERA
encoding, dot product, float16, under HNSW) and ``"colbert"`` (its token
vectors as a MaxSim multivector, HNSW disabled), and a payload of
``latecore_id``, ``text``, ``metadata`` and ``digest``. Point ids are
``uuid5(LATECORE_NAMESPACE, id)`` (Qdrant accepts only integers and UUIDs).
:class:`Schema` is what both engines create from; :class:`Points` one upsert
batch in its terms.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..base import document_digest

__all__ = [
    "COLBERT_VECTOR",
    "LATECORE_NAMESPACE",
    "MUVERA_VECTOR",
    "Points",
    "Schema",
    "check_sizes",
    "digest",
    "payload",
    "point_id",
]

LATECORE_NAMESPACE = uuid.UUID("5b0f7a4e-3c1d-5e8a-9f60-6c6174656372")
"""UUID namespace of latecore's Qdrant point ids."""

MUVERA_VECTOR = "muvera"
COLBERT_VECTOR = "colbert"
PAYLOAD_ID = "latecore_id"
OWNER_POINT = "6c617465-636f-4265-8f77-6e6572000000"
"""The point that holds the collection's owner record (payload ``latecore_owner``, no
vectors): a version-4 UUID, so no document's version-5 point id can equal it."""
OWNER_KEY = "latecore_owner"


def point_id(doc_id: str) -> str:
    """The Qdrant point id (a UUID5) of a latecore document id.

    Examples
    --------
    >>> point_id("doc-1") == point_id("doc-1") != point_id("doc-2")
    True
    >>> len(point_id("doc-1"))
    36
    """
    return str(uuid.uuid5(LATECORE_NAMESPACE, doc_id))


def latecore_id(point: object, payload: Mapping[str, Any] | None) -> str | None:
    """The document id a point carries, if the point is a well-formed latecore point
    (its id is the UUID5 of that document id), else ``None``.

    Examples
    --------
    >>> payload = {"latecore_id": "a"}
    >>> latecore_id(point_id("a"), payload), latecore_id(point_id("b"), payload)
    ('a', None)
    """
    doc_id = (payload or {}).get(PAYLOAD_ID)
    return doc_id if isinstance(doc_id, str) and str(point) == point_id(doc_id) else None


def digest(
    vectors: np.ndarray, text: str, metadata: Mapping[str, Any], muvera: Mapping[str, int]
) -> str:
    """:func:`~latecore.backends.base.document_digest`, salted with the MUVERA settings."""
    salt = json.dumps(dict(muvera), sort_keys=True).encode("utf-8")
    return document_digest(vectors, text, metadata, salt)


def payload(doc_id: str, text: str, metadata: Mapping[str, Any], digest: str) -> dict[str, Any]:
    """The payload of a document's point (strings that are not valid UTF-8, which Qdrant
    cannot hold, with their lone surrogates escaped; filters on such fields are answered
    from latecore's own store, :mod:`~latecore.backends.qdrant.filtering`)."""
    return {
        PAYLOAD_ID: doc_id,
        "text": _utf8(text),
        "metadata": _utf8(dict(metadata)),
        "digest": digest,
    }


def _utf8(value: Any) -> Any:
    """``value`` with every string (keys too) that is not valid UTF-8 escaped.

    Examples
    --------
    >>> _utf8({"a": ["ok", chr(0xD800)]}) == {"a": ["ok", "\\\\" + "ud800"]}
    True
    """
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
        return value
    if isinstance(value, Mapping):
        return {_utf8(k): _utf8(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_utf8(v) for v in value]
    return value


@dataclass(frozen=True)
class Schema:
    """What a collection is created with: token and MUVERA dimensions, storage type, HNSW."""

    dim: int
    fde_dim: int
    datatype: str
    hnsw_m: int
    hnsw_ef_construct: int

    @property
    def sizes(self) -> dict[str, int]:
        """Vector name -> dimension."""
        return {MUVERA_VECTOR: self.fde_dim, COLBERT_VECTOR: self.dim}


@dataclass(frozen=True)
class Points:
    """One upsert batch: point ids, MUVERA encodings, token vectors and payloads."""

    ids: list[str]
    fdes: np.ndarray
    vectors: list[np.ndarray]
    payloads: list[dict[str, Any]]


def check_sizes(where: object, sizes: Mapping[str, int | None], schema: Schema) -> None:
    """Refuse a collection whose vector sizes are not ``schema``'s, naming the remedy."""
    wanted = schema.sizes
    if {name: sizes.get(name) for name in wanted} != wanted:
        raise ValueError(
            f"the Qdrant collection at {where} holds vectors {dict(sizes)}, but this index "
            f"needs {wanted} (token dimension {schema.dim}, MUVERA settings giving "
            f"{schema.fde_dim}); choose another path or collection_name, or pass "
            "recreate=True to replace it"
        )
