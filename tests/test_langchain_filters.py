"""Metadata filters on both LangChain retrievers: a field and a per-call keyword (the call's
wins), applied inside the searcher (the k best matching documents, not a filtered top k),
on invoke, ainvoke and batch."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_latecore import LateInteractionHybridRetriever, LateInteractionRetriever

from latecore import InputError
from latecore.testing import FakeEncoder

DOCS = [
    Document("Paris is the capital city of France.", id="paris", metadata={"country": "FR"}),
    Document("Berlin is the capital city of Germany.", id="berlin", metadata={"country": "DE"}),
    Document("Lyon is a large city in France.", id="lyon", metadata={"country": "FR"}),
    Document("Munich is a large city in Germany.", id="munich", metadata={"country": "DE"}),
    Document("Hamburg is a port city in Germany.", id="hamburg", metadata={"country": "DE"}),
    Document("The capital of cheese is in France.", id="cheese", metadata={"country": "FR"}),
    Document("Cats sleep most of the day.", id="cats", metadata={"info": {"kind": "pets"}}),
]
QUERY = "the capital city of France"
GERMAN = {"country": "DE"}

Retriever = LateInteractionRetriever | LateInteractionHybridRetriever


@pytest.fixture(params=["late", "hybrid"])
def retriever(request: pytest.FixtureRequest) -> Retriever:
    cls = LateInteractionRetriever if request.param == "late" else LateInteractionHybridRetriever
    return cls.from_documents(DOCS, FakeEncoder(), k=2)


def _ids(docs: list[Document]) -> list[str]:
    return [str(d.id) for d in docs]


def _searched(retriever: Retriever, k: int, spec: Any) -> list[str]:
    return [h.id for h in retriever._searcher.search(QUERY, k, filter=spec)]


def test_per_call_filter_reaches_the_searcher(retriever: Retriever) -> None:
    unfiltered = _ids(retriever.invoke(QUERY))
    assert len(set(unfiltered) & {"berlin", "munich", "hamburg"}) < 2
    german = _ids(retriever.invoke(QUERY, filter=GERMAN))
    assert len(german) == 2  # the 2 best German documents, not a filtered top 2
    assert german == _searched(retriever, 2, GERMAN)
    assert _ids(asyncio.run(retriever.ainvoke(QUERY, filter=GERMAN))) == german
    batched = retriever.batch([QUERY, QUERY], filter=GERMAN)
    assert [_ids(b) for b in batched] == [german, german]
    nested = _ids(retriever.invoke(QUERY, k=5, filter={"info.kind": "pets"}))
    assert nested == ["cats"]


def test_filter_field_and_the_call_winning(retriever: Retriever) -> None:
    german_only = retriever.model_copy(update={"filter": GERMAN})
    assert german_only.filter == GERMAN
    field = _ids(german_only.invoke(QUERY, k=5))
    assert sorted(field) == ["berlin", "hamburg", "munich"]
    assert field == _searched(retriever, 5, GERMAN)
    assert _ids(asyncio.run(german_only.ainvoke(QUERY, k=5))) == field
    assert [_ids(b) for b in german_only.batch([QUERY], k=5)] == [field]
    french = {"country": {"$in": ["FR"]}}
    assert _ids(german_only.invoke(QUERY, k=5, filter=french)) == _searched(retriever, 5, french)
    assert _ids(german_only.invoke(QUERY, k=7, filter={})) == _ids(retriever.invoke(QUERY, k=7))
    assert _ids(german_only.invoke(QUERY, k=5, filter=None)) == field  # None: the field's


def test_filter_field_at_construction(retriever: Retriever) -> None:
    cls = type(retriever)
    searcher = retriever._searcher
    field_name = "index" if cls is LateInteractionRetriever else "searcher"
    built = cls(**{field_name: searcher}, k=5, filter={"$not": GERMAN})
    assert sorted(_ids(built.invoke(QUERY))) == ["cats", "cheese", "lyon", "paris"]


def test_bad_filters_are_refused(retriever: Retriever) -> None:
    cls = type(retriever)
    with pytest.raises(ValueError, match=r"unknown filter operator '\$like'"):
        cls.from_documents(DOCS, FakeEncoder(), filter={"country": {"$like": "D%"}})
    with pytest.raises(InputError, match=r"\$or takes a non-empty list"):
        retriever.invoke(QUERY, filter={"$or": []})
    with pytest.raises(InputError, match="must be a mapping"):
        retriever.invoke(QUERY, filter=["country", "DE"])
