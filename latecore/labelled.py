"""Labelled queries to evaluate on: the sets that ship with latecore, and SMART test collections.

:func:`load_eval_set` reads one of the two sets written for this project
(:data:`EVAL_SETS`); :func:`load_smart_collection` reads a public test
collection in the SMART format (CACM, CISI, MED, ...) from a folder. Both
return ``(corpus, queries, qrels)`` as :func:`~latecore.evaluate.evaluate` and
:func:`~latecore.evaluate.compare_hybrid` take them. Both are re-exported by
:mod:`latecore.evaluate`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

__all__ = ["EVAL_SETS", "load_eval_set", "load_smart_collection"]

EVAL_SETS = {"general": "eval_set.json", "ops": "eval_set_ops.json"}
"""Labelled sets that ship with latecore: name -> file in ``latecore/data``."""


def load_eval_set(
    name: str = "general",
) -> tuple[dict[str, str], dict[str, str], dict[str, dict[str, int]]]:
    """A labelled set that ships with latecore: ``(corpus, queries, qrels)``.

    Both were written for this project, with graded judgements (2: answers the
    query, 1: on topic):

    ``"general"`` (default)
        50 short general-knowledge passages and 20 queries mixing paraphrases
        (few words shared with the answer) with exact terms (names, codes)
        that only a lexical match finds reliably.
    ``"ops"``
        An IT operations knowledge base (servers, DNS, TLS, databases,
        containers, ...): runbook-style passages and engineers' questions,
        among them paraphrases with no content word in common with their
        answer, error codes and long situational questions.

    Returns
    -------
    tuple of dict
        corpus (document id -> text), queries (query id -> text), qrels (query
        id -> document id -> grade).

    Raises
    ------
    ValueError
        If ``name`` is not one of :data:`EVAL_SETS`.

    Examples
    --------
    >>> corpus, queries, qrels = load_eval_set()
    >>> len(corpus) >= 40 and len(queries) >= 15
    True
    >>> all(doc_id in corpus for grades in qrels.values() for doc_id in grades)
    True
    """
    import json
    from importlib.resources import files

    if name not in EVAL_SETS:
        raise ValueError(f"unknown labelled set {name!r}; choose one of {', '.join(EVAL_SETS)}")
    text = files("latecore").joinpath(f"data/{EVAL_SETS[name]}").read_text("utf-8")
    data = json.loads(text)
    corpus = {d["id"]: d["text"] for d in data["corpus"]}
    queries = {q["id"]: q["text"] for q in data["queries"]}
    qrels = {qid: {d: int(g) for d, g in grades.items()} for qid, grades in data["qrels"].items()}
    return corpus, queries, qrels


_SMART_FIELD = re.compile(r"^\.([A-Z])\s*$")
_SMART_RECORD = re.compile(r"^\.I\s+(\S+)\s*$")


def _smart_id(raw: str) -> str:
    """A SMART id without its zero padding (``"07"`` and ``"7"`` are one query)."""
    return str(int(raw)) if raw.isdigit() else raw


def _smart_records(path: Path) -> dict[str, dict[str, str]]:
    """record id -> field letter -> text (lines joined, whitespace collapsed)."""
    records: dict[str, dict[str, list[str]]] = {}
    fields: dict[str, list[str]] | None = None
    current: list[str] | None = None
    for number, line in enumerate(path.read_text("utf-8", errors="replace").splitlines(), 1):
        record = _SMART_RECORD.match(line)
        if record:
            record_id = _smart_id(record.group(1))
            if record_id in records:
                raise ValueError(f"{path}:{number}: record .I {record.group(1)} appears twice")
            fields, current = records.setdefault(record_id, {}), None
            continue
        field = _SMART_FIELD.match(line)
        if field and fields is not None:
            current = fields.setdefault(field.group(1), [])
        elif current is not None:
            current.append(line)
        elif line.strip():
            raise ValueError(
                f"{path}:{number}: text outside a field ({line[:60]!r}); a SMART file "
                "starts each record with '.I <id>' and each field with a line like '.W'"
            )
    return {
        record_id: {name: " ".join(" ".join(lines).split()) for name, lines in parts.items()}
        for record_id, parts in records.items()
    }


def _smart_texts(records: dict[str, dict[str, str]], fields: Sequence[str]) -> dict[str, str]:
    texts = {
        record_id: "\n".join(record[f] for f in fields if record.get(f))
        for record_id, record in records.items()
    }
    return {record_id: text for record_id, text in texts.items() if text}


def load_smart_collection(
    folder: str | os.PathLike[str],
    *,
    documents: str = "cacm.all",
    queries: str = "query.text",
    qrels: str = "qrels.text",
    document_fields: Sequence[str] = ("T", "W"),
) -> tuple[dict[str, str], dict[str, str], dict[str, dict[str, int]]]:
    """A test collection in the SMART format (CACM, CISI, MED, ...): ``(corpus, queries, qrels)``.

    Documents and queries are records: a line ``.I <id>`` starts one, and each
    field starts with a line holding only its marker (``.T`` title, ``.W``
    text or abstract, ``.A`` authors, ...) and runs to the next marker. A
    document's text is its ``document_fields`` (title and abstract by default)
    joined by a newline, each field's lines joined by single spaces; a query's
    text is its ``.W`` field. Records without any of that text are left out
    (CACM's query file ends with an empty ``.I 0``). Every line of the
    judgements file is ``<query id> <document id> ...`` (binary relevance:
    grade 1; further columns are ignored). Numeric ids lose their zero padding,
    so qrels' ``01`` is query ``1``.

    Parameters
    ----------
    folder
        Directory holding the three files (for CACM, ``../shared/collections/cacm``).
    documents, queries, qrels
        File names inside ``folder``; the defaults are CACM's.
    document_fields
        Field letters that make a document's text, in order.

    Returns
    -------
    tuple of dict
        corpus (document id -> text), queries (query id -> text), qrels (query
        id -> document id -> 1), as :func:`load_eval_set` returns them.

    Raises
    ------
    FileNotFoundError
        If a file is missing (the message names the folder and the file).
    ValueError
        If a file is not in the SMART format, or a judgement names a document
        or query that the other files do not have.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "cacm.all").write_text(
    ...     ".I 1\\n.T\\nSorting on tape\\n.W\\nA merge sort that\\nuses four tapes.\\n.B\\n1960\\n"
    ...     ".I 2\\n.T\\nCompiling ALGOL\\n"
    ... )
    >>> _ = (folder / "query.text").write_text(
    ...     ".I 1\\n.W\\n external sorting\\n.N\\n 1. a note\\n.I 2\\n.W\\n compilers\\n.I 0\\n"
    ... )
    >>> _ = (folder / "qrels.text").write_text("01 1 0 0\\n02 2 0 0\\n")
    >>> corpus, queries, qrels = load_smart_collection(folder)
    >>> corpus
    {'1': 'Sorting on tape\\nA merge sort that uses four tapes.', '2': 'Compiling ALGOL'}
    >>> queries, qrels
    ({'1': 'external sorting', '2': 'compilers'}, {'1': {'1': 1}, '2': {'2': 1}})
    >>> import shutil; shutil.rmtree(folder)
    """
    root = Path(folder)
    paths = {
        role: root / name
        for role, name in (("documents", documents), ("queries", queries), ("qrels", qrels))
    }
    for role, path in paths.items():
        if not path.is_file():
            raise FileNotFoundError(f"no {role} file {path.name!r} in {root}")
    corpus = _smart_texts(_smart_records(paths["documents"]), document_fields)
    query_texts = _smart_texts(_smart_records(paths["queries"]), ("W",))
    judgements: dict[str, dict[str, int]] = {}
    lines = paths["qrels"].read_text("utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        columns = line.split()
        if not columns:
            continue
        if len(columns) < 2:
            raise ValueError(f"{paths['qrels']}:{number}: expected '<query id> <document id> ...'")
        query_id, doc_id = _smart_id(columns[0]), _smart_id(columns[1])
        for what, raw, known in (
            ("query", columns[0], query_texts),
            ("document", columns[1], corpus),
        ):
            if _smart_id(raw) not in known:
                raise ValueError(
                    f"{paths['qrels']}:{number}: judges {what} {raw!r}, which the {what} file "
                    "has no text for"
                )
        judgements.setdefault(query_id, {})[doc_id] = 1
    return corpus, query_texts, judgements
