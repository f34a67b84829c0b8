"""Every k-like count of both adapters follows latecore's one rule (``latecore.validation``).

A count is a real ``int``: ``True``, ``1.5`` and ``"3"`` are refused (pydantic's
lax mode would turn ``True`` into ``1`` and ``"3"`` into ``3``), and so is a
negative count. ``0`` is accepted where it is documented to mean "nothing"
(LangChain's ``k``, per field and per call: an empty result) and refused
where it is not: BM25 ``candidates``, the LangChain reranker's ``top_n`` and
LlamaIndex's ``top_n`` / ``similarity_top_k`` (LlamaIndex's convention). Every
refusal is a ``ValueError`` (pydantic's ``ValidationError`` is one).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_latecore import (
    LateInteractionHybridRetriever,
    LateInteractionReranker,
    LateInteractionRetriever,
)
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
from llama_index.postprocessor.latecore import LateInteractionRerank
from llama_index.retrievers.latecore import LateInteractionHybridRetriever as LlamaHybrid
from llama_index.retrievers.latecore import LateInteractionRetriever as LlamaRetriever
from llama_index.retrievers.latecore import LateSearchRetriever

from latecore import HybridSearcher, LateIndex
from latecore.testing import FakeEncoder

CORPUS = [
    "paris is the capital of france",
    "berlin is the capital of germany",
    "rome is the capital of italy",
    "madrid is the capital of spain",
]
QUERY = "which capital"
VALID = 2  # every entry point returns exactly this many results for it
INVALID = [True, -1, 1.5, "3"]

EntryPoint = Callable[[Any], list[Any]]


def _lc_late(**fields: Any) -> LateInteractionRetriever:
    return LateInteractionRetriever.from_texts(CORPUS, FakeEncoder(), **fields)


def _lc_hybrid(**fields: Any) -> LateInteractionHybridRetriever:
    return LateInteractionHybridRetriever.from_texts(CORPUS, FakeEncoder(), **fields)


def _nodes() -> list[TextNode]:
    return [TextNode(text=text, id_=str(i)) for i, text in enumerate(CORPUS)]


def _set_top_k(retriever: LateSearchRetriever[Any], value: Any) -> list[NodeWithScore]:
    retriever.similarity_top_k = value
    return retriever.retrieve(QUERY)


def _lc_rerank(value: Any) -> list[Document]:
    reranker = LateInteractionReranker(encoder=FakeEncoder(), top_n=value)
    return list(reranker.compress_documents([Document(t) for t in CORPUS], QUERY))


def _llama_rerank(value: Any) -> list[NodeWithScore]:
    rerank = LateInteractionRerank(encoder=FakeEncoder(), top_n=value)
    nodes = [NodeWithScore(node=n, score=1.0) for n in _nodes()]
    return rerank.postprocess_nodes(nodes, query_bundle=QueryBundle(QUERY))


# entry point -> (call with a value, whether 0 is accepted and returns [])
ENTRY_POINTS: dict[str, tuple[EntryPoint, bool]] = {
    # LangChain: k is a count (0 -> []), per field and per call, sync and async
    "langchain late k field": (lambda v: _lc_late(k=v).invoke(QUERY), True),
    "langchain late invoke k": (lambda v: _lc_late().invoke(QUERY, k=v), True),
    "langchain late ainvoke k": (lambda v: asyncio.run(_lc_late().ainvoke(QUERY, k=v)), True),
    "langchain late batch k": (lambda v: _lc_late().batch([QUERY], k=v)[0], True),
    "langchain hybrid k field": (lambda v: _lc_hybrid(k=v).invoke(QUERY), True),
    "langchain hybrid invoke k": (lambda v: _lc_hybrid().invoke(QUERY, k=v), True),
    "langchain hybrid ainvoke k": (
        lambda v: asyncio.run(_lc_hybrid().ainvoke(QUERY, k=v)),
        True,
    ),
    # candidates are at least 1, per field and per call (BM25 alone nominates here, so
    # that a valid count is exactly the number of hits)
    "langchain hybrid candidates field": (
        lambda v: _lc_hybrid(candidates=v, candidates_from="bm25").invoke(QUERY),
        False,
    ),
    "langchain hybrid invoke candidates": (
        lambda v: _lc_hybrid(candidates_from="bm25").invoke(QUERY, candidates=v),
        False,
    ),
    "langchain hybrid ainvoke candidates": (
        lambda v: asyncio.run(_lc_hybrid(candidates_from="bm25").ainvoke(QUERY, candidates=v)),
        False,
    ),
    "langchain reranker top_n": (_lc_rerank, False),
    # LlamaIndex: similarity_top_k and top_n are at least 1
    "llama late similarity_top_k": (
        lambda v: LlamaRetriever(_nodes(), encoder=FakeEncoder(), similarity_top_k=v).retrieve(
            QUERY
        ),
        False,
    ),
    "llama late similarity_top_k set": (
        lambda v: _set_top_k(LlamaRetriever(_nodes(), encoder=FakeEncoder()), v),
        False,
    ),
    "llama hybrid similarity_top_k": (
        lambda v: LlamaHybrid(_nodes(), encoder=FakeEncoder(), similarity_top_k=v).retrieve(QUERY),
        False,
    ),
    "llama hybrid similarity_top_k aretrieve": (
        lambda v: asyncio.run(
            LlamaHybrid(_nodes(), encoder=FakeEncoder(), similarity_top_k=v).aretrieve(QUERY)
        ),
        False,
    ),
    "llama hybrid similarity_top_k set": (
        lambda v: _set_top_k(LlamaHybrid(_nodes(), encoder=FakeEncoder()), v),
        False,
    ),
    "llama hybrid candidates": (
        lambda v: LlamaHybrid(
            _nodes(),
            encoder=FakeEncoder(),
            candidates=v,
            candidates_from="bm25",
            similarity_top_k=10,
        ).retrieve(QUERY),
        False,
    ),
    "llama searcher similarity_top_k": (
        lambda v: LateSearchRetriever(
            _nodes(), searcher=HybridSearcher(FakeEncoder()), similarity_top_k=v
        ).retrieve(QUERY),
        False,
    ),
    "llama rerank top_n": (_llama_rerank, False),
}


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_a_valid_count_is_honoured(name: str) -> None:
    call, _ = ENTRY_POINTS[name]
    assert len(call(VALID)) == VALID


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_zero_is_an_empty_result_or_refused_as_documented(name: str) -> None:
    call, zero_allowed = ENTRY_POINTS[name]
    if zero_allowed:
        assert call(0) == []
    else:
        with pytest.raises(ValueError, match="positive integer, got 0"):
            call(0)


@pytest.mark.parametrize("value", INVALID, ids=repr)
@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_bools_floats_strings_and_negatives_are_refused(name: str, value: Any) -> None:
    call, _ = ENTRY_POINTS[name]
    with pytest.raises(ValueError, match=rf"integer, got {value!r}"):
        call(value)


def test_a_checked_k_field_stays_a_plain_int() -> None:
    """The before-validator returns the int itself; ``model_copy`` still overrides it."""
    index = LateIndex(FakeEncoder())
    index.add(CORPUS)
    retriever = LateInteractionRetriever(index=index, k=3)
    assert retriever.k == 3 and type(retriever.k) is int
    assert len(retriever.model_copy(update={"k": 1}).invoke(QUERY)) == 1
