"""Documents from local files: paragraph chunks of text, Markdown and JSON-lines files.

:func:`load_documents` turns files and folders into :class:`Chunk` values (an
id, a text no longer than a cap, and metadata saying where it came from), ready
for :meth:`LateIndex.add <latecore.index.LateIndex.add>` or
:meth:`HybridSearcher.add <latecore.hybrid.HybridSearcher.add>`;
:func:`chunk_text` is its splitting rule. Pages of PDFs and images
(:func:`load_pdf_pages`, :func:`load_image_pages`, :func:`load_pages`, :class:`Page`)
live in :mod:`latecore.pages` and are re-exported here. :func:`sample_corpus_path` and
:func:`demo_queries` give the sample data that ships with latecore (what
``latecore demo`` searches).

Examples
--------
>>> chunks = load_documents([sample_corpus_path()])
>>> len(chunks) > 100, all(len(c.text) <= MAX_CHARS for c in chunks)
(True, True)
>>> sorted(chunks[0].metadata)
['line', 'part', 'source', 'topic']
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import InputError
from .pages import Page, load_image_pages, load_pages, load_pdf_pages
from .validation import check_positive

__all__ = [
    "MAX_CHARS",
    "SUFFIXES",
    "Chunk",
    "Page",
    "chunk_text",
    "demo_queries",
    "load_documents",
    "load_image_pages",
    "load_pages",
    "load_pdf_pages",
    "sample_corpus_path",
]

logger = logging.getLogger(__name__)

SUFFIXES = (".txt", ".md", ".jsonl")
"""File types :func:`load_documents` reads."""

MAX_CHARS = 1000
"""Default cap on a chunk's length in characters."""

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class Chunk:
    """One indexed piece of a file: its id, text and where it came from.

    Examples
    --------
    >>> Chunk("notes.txt#1", "Bees make honey.", {"source": "notes.txt", "chunk": 1}).id
    'notes.txt#1'
    """

    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


def _split_long(text: str, max_chars: int) -> list[str]:
    """Split at sentence ends, else at spaces, else anywhere, into pieces <= max_chars."""
    if len(text) <= max_chars:
        return [text]
    pieces: list[str] = []
    current = ""
    for sentence in _SENTENCE_END.split(text):
        units = [sentence] if len(sentence) <= max_chars else sentence.split()
        for unit in units:
            while len(unit) > max_chars:
                if current:
                    pieces.append(current)
                    current = ""
                pieces.append(unit[:max_chars])
                unit = unit[max_chars:]
            candidate = f"{current} {unit}" if current else unit
            if len(candidate) <= max_chars:
                current = candidate
            else:
                pieces.append(current)
                current = unit
    if current:
        pieces.append(current)
    return pieces


def chunk_text(text: str, max_chars: int = MAX_CHARS) -> list[str]:
    """Paragraphs of ``text`` (split at blank lines), each cut to at most ``max_chars``.

    A paragraph longer than the cap is split at sentence ends, a sentence longer
    than the cap at spaces, a word longer than the cap anywhere. Whitespace
    inside a paragraph is kept as it is; ``\\r\\n`` line ends count as ``\\n``.

    Parameters
    ----------
    text
        The text to cut.
    max_chars
        Longest chunk in characters, at least 1.

    Returns
    -------
    list of str
        The chunks in order, stripped, none empty (``[]`` for a blank text).

    Raises
    ------
    ValueError
        If ``max_chars`` is not a positive integer.

    Examples
    --------
    >>> chunk_text("First paragraph.\\n\\n  Second one.\\n\\n\\n")
    ['First paragraph.', 'Second one.']
    >>> chunk_text("One. Two. Three.", max_chars=10)
    ['One. Two.', 'Three.']
    >>> chunk_text("abcdefghij", max_chars=4)
    ['abcd', 'efgh', 'ij']
    """
    check_positive(max_chars, "max_chars")
    chunks: list[str] = []
    for paragraph in _PARAGRAPH_BREAK.split(text.replace("\r\n", "\n")):
        paragraph = paragraph.strip()
        if paragraph:
            chunks.extend(_split_long(paragraph, max_chars))
    return chunks


def _files(paths: Sequence[str | os.PathLike[str]]) -> Iterator[Path]:
    for given in paths:
        path = Path(given).expanduser()
        if path.is_dir():
            yield from sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES
            )
        elif path.is_file():
            if path.suffix.lower() not in SUFFIXES:
                raise InputError(
                    f"{path}: unsupported file type; only {', '.join(SUFFIXES)} files are read"
                )
            yield path
        else:
            raise InputError(f"{path}: no such file or directory")


def _jsonl_chunks(path: Path, text: str, max_chars: int) -> Iterator[Chunk]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as error:
            raise InputError(f"{path}:{number}: not valid JSON ({error})") from error
        if isinstance(record, str):
            record = {"text": record}
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise InputError(
                f'{path}:{number}: each line must be a JSON string or an object with a "text" '
                'string (other keys, such as "id", become metadata)'
            )
        base_id = str(record.get("id", f"{path}:{number}"))
        metadata = {k: v for k, v in record.items() if k not in ("id", "text")}
        metadata.update(source=str(path), line=number)
        pieces = chunk_text(record["text"], max_chars)
        for part, piece in enumerate(pieces, start=1):
            chunk_id = base_id if len(pieces) == 1 else f"{base_id}#{part}"
            yield Chunk(chunk_id, piece, {**metadata, "part": part})


def load_documents(
    paths: Sequence[str | os.PathLike[str]], max_chars: int = MAX_CHARS
) -> list[Chunk]:
    """Chunks of every ``.txt``, ``.md`` and ``.jsonl`` file in ``paths`` (folders recursively).

    Text and Markdown files are cut into paragraphs (:func:`chunk_text`); each
    line of a JSON-lines file is a JSON string or an object with a ``"text"``
    field (its ``"id"`` names the chunk, other fields become metadata), cut the
    same way when longer than ``max_chars``. A file reached twice is read once;
    when two chunks share an id, the last one is kept (with a logged warning).

    Parameters
    ----------
    paths
        Files and folders; a folder contributes its files of the types in
        :data:`SUFFIXES`, in sorted order, others are skipped.
    max_chars
        Longest chunk in characters, at least 1.

    Returns
    -------
    list of Chunk
        In file order. A text chunk's id is ``"<path>#<n>"`` with metadata
        ``source`` and ``chunk``; a JSON-lines chunk's id is the record's
        ``"id"`` (else ``"<path>:<line>"``), suffixed ``#<part>`` when the
        record was split, with metadata ``source``, ``line`` and ``part``.

    Raises
    ------
    InputError
        For a missing path, a file type not in :data:`SUFFIXES`, a file that is
        not UTF-8 text, or a malformed JSON-lines record.

    Examples
    --------
    >>> import tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> folder = Path(tmp.name)
    >>> _ = (folder / "notes.txt").write_text("Bees make honey.\\n\\nWasps do not.")
    >>> [(Path(c.id).name, c.text) for c in load_documents([folder])]
    [('notes.txt#1', 'Bees make honey.'), ('notes.txt#2', 'Wasps do not.')]
    >>> load_documents([folder / "missing.txt"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    latecore.errors.InputError: .../missing.txt: no such file or directory
    >>> tmp.cleanup()
    """
    chunks: list[Chunk] = []
    seen: set[Path] = set()
    for path in _files(paths):
        if path.resolve() in seen:
            continue
        seen.add(path.resolve())
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise InputError(f"{path}: cannot read it as UTF-8 text ({error})") from error
        if path.suffix.lower() == ".jsonl":
            chunks.extend(_jsonl_chunks(path, text, max_chars))
            continue
        for number, piece in enumerate(chunk_text(text, max_chars), start=1):
            chunks.append(Chunk(f"{path}#{number}", piece, {"source": str(path), "chunk": number}))
    unique: dict[str, Chunk] = {}
    for chunk in chunks:
        unique[chunk.id] = chunk
    if len(unique) < len(chunks):
        logger.warning(
            "%d chunks had duplicate ids; the last of each was kept", len(chunks) - len(unique)
        )
    return list(unique.values())


def sample_corpus_path() -> Path:
    """The sample corpus that ships with latecore and ``latecore demo`` searches.

    Returns
    -------
    pathlib.Path
        A JSON-lines file, one short paragraph per line: ``id``, ``topic``, ``text``.

    Examples
    --------
    >>> json.loads(sample_corpus_path().read_text("utf-8").splitlines()[0]).keys()
    dict_keys(['id', 'topic', 'text'])
    """
    return Path(str(resources.files("latecore") / "data" / "sample_corpus.jsonl"))


def demo_queries() -> list[str]:
    """The sample queries that ship with latecore (``latecore demo`` runs them by default).

    Returns
    -------
    list of str
        One query per non-blank line of ``latecore/data/demo_queries.txt``.

    Examples
    --------
    >>> all(isinstance(q, str) and q for q in demo_queries())
    True
    """
    text = (resources.files("latecore") / "data" / "demo_queries.txt").read_text("utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]
