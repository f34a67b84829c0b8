"""load_smart_collection: SMART records, zero-padded query ids, clear errors, and CACM itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from latecore.evaluate import load_smart_collection

CACM = Path(__file__).resolve().parents[1].parent / "shared" / "collections" / "cacm"

DOCUMENTS = """.I 1
.T
Sorting on
magnetic tape
.W
A merge sort
 that uses four tapes.
.B
CACM June, 1960
.A
Knuth, D. E.
.I 2
.T
Compiling ALGOL
.X
1\t5\t2
.I 10
.T
Hash tables
.K
hashing, search
.W
Open addressing.
"""

QUERIES = """.I 1
.W
 external sorting on tapes
.N
 1. a note
.I 2
.W
 compilers for ALGOL
.A
Someone, A.
.I 10
.W
 hashing
.I 0
"""


def write(folder: Path, qrels: str = "01 1 0 0\n01 10 0 0\n02 2 0 0\n\n10 10 0 0\n") -> Path:
    (folder / "cacm.all").write_text(DOCUMENTS)
    (folder / "query.text").write_text(QUERIES)
    (folder / "qrels.text").write_text(qrels)
    return folder


def test_title_and_abstract_make_the_text_and_padded_ids_meet(tmp_path: Path) -> None:
    corpus, queries, qrels = load_smart_collection(write(tmp_path))
    assert corpus == {
        "1": "Sorting on magnetic tape\nA merge sort that uses four tapes.",
        "2": "Compiling ALGOL",
        "10": "Hash tables\nOpen addressing.",
    }
    # .A and .N are not query text; the empty record .I 0 is left out.
    assert queries == {
        "1": "external sorting on tapes",
        "2": "compilers for ALGOL",
        "10": "hashing",
    }
    assert qrels == {"1": {"1": 1, "10": 1}, "2": {"2": 1}, "10": {"10": 1}}


def test_other_fields_and_file_names_can_be_chosen(tmp_path: Path) -> None:
    write(tmp_path)
    (tmp_path / "cacm.all").rename(tmp_path / "CISI.ALL")
    corpus, _, _ = load_smart_collection(tmp_path, documents="CISI.ALL", document_fields=("K", "T"))
    assert corpus["10"] == "hashing, search\nHash tables"
    assert corpus["1"] == "Sorting on magnetic tape"


def test_bad_collections_are_refused_with_the_place_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no documents file 'cacm\.all' in"):
        load_smart_collection(tmp_path)
    write(tmp_path, qrels="01 99 0 0\n")
    with pytest.raises(ValueError, match=r"qrels.text:1: judges document '99'"):
        load_smart_collection(tmp_path)
    write(tmp_path, qrels="07 1 0 0\n")
    with pytest.raises(ValueError, match=r"judges query '07', which the query file"):
        load_smart_collection(tmp_path)
    write(tmp_path, qrels="01\n")
    with pytest.raises(ValueError, match=r"qrels.text:1: expected '<query id> <document id>"):
        load_smart_collection(tmp_path)
    write(tmp_path)
    (tmp_path / "cacm.all").write_text("Sorting on tape\n.I 1\n.T\nx\n")
    with pytest.raises(ValueError, match=r"cacm.all:1: text outside a field"):
        load_smart_collection(tmp_path)
    (tmp_path / "cacm.all").write_text(".I 1\n.T\nx\n.I 01\n.T\ny\n")
    with pytest.raises(ValueError, match=r"cacm.all:4: record .I 01 appears twice"):
        load_smart_collection(tmp_path)


def test_cacm_loads_whole() -> None:
    if not (CACM / "cacm.all").is_file():
        pytest.skip(f"the CACM collection is not at {CACM}")
    corpus, queries, qrels = load_smart_collection(CACM)
    assert len(corpus) == 3204 and len(queries) == 64
    assert len(qrels) == 52 and sum(len(g) for g in qrels.values()) == 796
    assert corpus["1"] == "Preliminary Report-International Algebraic Language"
    assert all(doc_id in corpus for grades in qrels.values() for doc_id in grades)
