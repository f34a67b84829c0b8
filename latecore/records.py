"""The part of a document store every store keeps locally: ids, texts and metadata.

:class:`DocumentRecords` holds them in position order (JSON lines on disk);
:func:`load_records` reads a saved store's records together with each
document's token count (``lengths.npy``), checked against each other.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .errors import IndexFormatError
from .filters import MetadataColumns

__all__ = [
    "DOCUMENTS_FILE",
    "LENGTHS_FILE",
    "DocumentRecords",
    "StoredDocument",
    "load_records",
]

LENGTHS_FILE = "lengths.npy"
DOCUMENTS_FILE = "documents.jsonl"


class StoredDocument(NamedTuple):
    """One stored document: id, text and metadata (the store's own dict: copy before changing)."""

    id: str
    text: str
    metadata: Mapping[str, Any]


class DocumentRecords:
    """Ids, texts and metadata in position order: the part every store keeps locally.

    The lists are replaced, never changed in place, so a sequence handed out
    earlier stays what it was.

    Examples
    --------
    >>> records = DocumentRecords()
    >>> records.append(["a", "b"], ["first", "second"], [{}, {"n": 2}])
    >>> records.ids, records.find("b")
    (['a', 'b'], 1)
    >>> records.keep(np.array([False, True])); records.ids, records.find("b")
    (['b'], 0)
    """

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.texts: list[str] = []
        self.metadatas: list[dict[str, Any]] = []
        self._positions: dict[str, int] = {}
        self._columns: MetadataColumns | None = None

    def columns(self) -> MetadataColumns:
        """The metadata as columns (:mod:`latecore.filters`), built once per change."""
        if self._columns is None:
            self._columns = MetadataColumns(self.metadatas)
        return self._columns

    def __len__(self) -> int:
        return len(self.ids)

    def find(self, doc_id: str) -> int | None:
        """Position of ``doc_id``, or ``None``."""
        return self._positions.get(doc_id)

    def positions_of(self, ids: Sequence[str]) -> set[int]:
        """Positions of those ``ids`` that are stored."""
        return {p for i in ids if (p := self._positions.get(i)) is not None}

    def documents(self, positions: Sequence[int] | np.ndarray) -> list[StoredDocument]:
        """The records at ``positions``."""
        return [
            StoredDocument(self.ids[p], self.texts[p], self.metadatas[p])
            for p in np.asarray(positions, dtype=np.int64).tolist()
        ]

    def append(
        self, ids: Sequence[str], texts: Sequence[str], metadatas: Sequence[Mapping[str, Any]]
    ) -> None:
        """Add records at the end (ids not stored yet)."""
        first = len(self.ids)
        self.ids = [*self.ids, *(str(i) for i in ids)]
        self.texts = [*self.texts, *texts]
        self.metadatas = [*self.metadatas, *(copy.deepcopy(dict(m)) for m in metadatas)]
        positions = dict(self._positions)
        positions.update((doc_id, first + n) for n, doc_id in enumerate(ids))
        self._positions = positions
        self._columns = None

    def keep(self, mask: np.ndarray) -> None:
        """Keep the records where ``mask`` is true (positions are renumbered)."""
        self.ids = [d for d, k in zip(self.ids, mask, strict=True) if k]
        self.texts = [t for t, k in zip(self.texts, mask, strict=True) if k]
        self.metadatas = [m for m, k in zip(self.metadatas, mask, strict=True) if k]
        self._positions = {doc_id: p for p, doc_id in enumerate(self.ids)}
        self._columns = None

    def save(self, path: Path) -> None:
        """Write the records as JSON lines.

        Raises
        ------
        TypeError
            If a metadata value is not JSON-serialisable (nothing is written then).
        """
        try:
            lines = [
                json.dumps({"id": i, "text": t, "metadata": m}, ensure_ascii=False) + "\n"
                for i, t, m in zip(self.ids, self.texts, self.metadatas, strict=True)
            ]
        except TypeError as error:
            raise TypeError(f"metadata must be JSON-serialisable to save: {error}") from error
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(lines)

    @classmethod
    def load(cls, path: Path) -> DocumentRecords:
        """Read records written by :meth:`save` (``OSError``/``ValueError`` if damaged)."""
        with open(path, encoding="utf-8") as f:
            lines = [json.loads(line) for line in f if line.strip()]
        records = cls()
        records.append(
            [str(r["id"]) for r in lines],
            [r["text"] for r in lines],
            [r.get("metadata") or {} for r in lines],
        )
        if len(records._positions) != len(records.ids):
            raise ValueError("an id appears twice")
        return records


def load_records(directory: Path, entry: Mapping[str, Any]) -> tuple[DocumentRecords, np.ndarray]:
    """The records and per-document token counts of a saved store, checked against each other.

    Raises
    ------
    IndexFormatError
        If the files are missing or damaged, or disagree with each other or ``entry``.
    """
    try:
        lengths = np.load(directory / LENGTHS_FILE, allow_pickle=False).astype(np.int64)
        records = DocumentRecords.load(directory / DOCUMENTS_FILE)
    except (OSError, ValueError) as error:
        raise IndexFormatError(f"{directory} is damaged: {error}") from error
    if (
        len(records) != len(lengths)
        or ("count" in entry and entry["count"] != len(records))
        or (len(lengths) and lengths.min() < 1)
    ):
        raise IndexFormatError(f"{directory} is damaged: vectors and documents disagree")
    return records, lengths
