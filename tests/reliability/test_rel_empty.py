"""Empty corpora, queries and candidate lists, ``k=0`` and ``k`` beyond the corpus.

Every front end gives a well-defined answer; the only exceptions are the
documented ``ValueError`` for a negative (or, in LlamaIndex, zero) result count.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from latecore import HybridSearcher, LateIndex, Reranker
from latecore.testing import FakeEncoder

CORPUS = ["paris is the capital of france", "berlin is the capital of germany", "cats purr"]


@pytest.mark.timeout(30)
def test_reranker_empty_inputs() -> None:
    """Reranker: no candidates -> ``[]``; empty query or empty candidates are ranked;
    ``top_k=0`` -> ``[]``; ``top_k`` beyond the list -> all; negative ``top_k`` -> ValueError."""
    reranker = Reranker(FakeEncoder())
    assert reranker.rerank("capital", []) == []
    assert reranker.rerank_batch([], []) == []
    assert sorted(r.index for r in reranker.rerank("", CORPUS)) == [0, 1, 2]
    blanks = reranker.rerank("capital", ["", "", ""])
    assert [r.index for r in blanks] == [0, 1, 2]  # equal scores keep input order
    assert len({r.score for r in blanks}) == 1
    assert reranker.rerank("capital", CORPUS, top_k=0) == []
    assert [r.index for r in reranker.rerank("capital", CORPUS, top_k=100)] == [
        r.index for r in reranker.rerank("capital", CORPUS)
    ]
    with pytest.raises(ValueError, match="top_k"):
        reranker.rerank("capital", CORPUS, top_k=-1)


@pytest.mark.timeout(30)
def test_late_index_empty_inputs() -> None:
    """LateIndex: empty index, empty query, empty add, a corpus of empty strings, ``k=0``,
    ``k`` beyond the corpus, no queries; a negative ``k`` -> ValueError."""
    index = LateIndex(FakeEncoder())
    assert index.search("capital", k=5) == [] and index.search("", k=5) == []
    assert index.add([]) == [] and len(index) == 0
    assert index.search_batch([], k=3) == []
    assert index.score("capital", []).shape == (0,)
    blank_ids = index.add(["", ""], ids=["e1", "e2"])
    assert [h.id for h in index.search("capital", k=5)] == blank_ids
    assert [h.id for h in index.search("", k=5)] == blank_ids
    index.add(CORPUS, ids=["p", "b", "c"])
    assert index.search("capital", k=0) == []
    assert len(index.search("capital", k=100)) == 5
    assert index.search("capital of france", k=1)[0].id == "p"
    with pytest.raises(ValueError, match="k must be"):
        index.search("capital", k=-1)


@pytest.mark.timeout(30)
def test_hybrid_searcher_empty_inputs() -> None:
    """HybridSearcher: empty corpus, empty query -> ``[]``; a corpus of empty strings ->
    ``[]`` from BM25, every document from MaxSim (as ``LateIndex``); ``k=0`` -> ``[]``;
    ``k`` beyond the candidates -> all of them; negative ``k`` -> ValueError."""
    assert HybridSearcher(FakeEncoder()).search("capital") == []
    assert HybridSearcher.from_texts([], FakeEncoder()).search("capital") == []
    blank = HybridSearcher.from_texts(["", " "], FakeEncoder(), ids=["e1", "e2"])
    assert blank.search("capital", candidates_from="bm25") == []
    assert sorted(h.id for h in blank.search("capital", candidates_from="both")) == ["e1", "e2"]
    searcher = HybridSearcher.from_texts(CORPUS, FakeEncoder(), ids=["p", "b", "c"])
    assert searcher.search("") == [] and searcher.search("   ") == []
    assert searcher.search_batch([]) == []
    assert searcher.search("capital", k=0) == []
    assert sorted(h.id for h in searcher.search("capital", k=100, candidates_from="bm25")) == [
        "b",
        "p",
    ]
    assert sorted(h.id for h in searcher.search("capital", k=100)) == ["b", "c", "p"]
    with pytest.raises(ValueError, match="k must be"):
        searcher.search("capital", k=-1)


needs_langchain = pytest.mark.skipif(
    importlib.util.find_spec("langchain_latecore") is None, reason="langchain-latecore missing"
)
needs_llama_index = pytest.mark.skipif(
    importlib.util.find_spec("llama_index.retrievers.latecore") is None,
    reason="llama-index-latecore missing",
)


@needs_langchain
@pytest.mark.timeout(30)
def test_langchain_adapters_empty_inputs(tmp_path: Path) -> None:
    """LangChain retrievers and reranker: empty corpus, empty query, empty document list,
    ``k=0``, ``k`` beyond the corpus; a negative ``k`` is refused with a ValueError."""
    from langchain_core.documents import Document
    from langchain_latecore import (
        LateInteractionHybridRetriever,
        LateInteractionReranker,
        LateInteractionRetriever,
    )

    # MaxSim search ranks every document even for an empty query (as LateIndex does);
    # the hybrid retriever returns nothing for an empty query, and for a corpus of empty
    # texts what its MaxSim stage nominates.
    for retriever_class, blank_hits in (
        (LateInteractionRetriever, 2),
        (LateInteractionHybridRetriever, 0),
    ):
        empty = retriever_class.from_texts([], FakeEncoder())
        assert empty.invoke("capital") == [] and empty.invoke("") == []
        retriever = retriever_class.from_texts(CORPUS, FakeEncoder(), k=2)
        assert retriever.invoke("capital", k=0) == []
        assert len(retriever.invoke("capital", k=100)) >= 2
        assert len(retriever.invoke("")) == blank_hits
        blanks = retriever_class.from_texts(["", ""], FakeEncoder())
        assert len(blanks.invoke("")) == blank_hits
        assert len(blanks.invoke("capital")) == 2
        with pytest.raises(ValueError):
            retriever_class.from_texts(CORPUS, FakeEncoder(), k=-1)

    reranker = LateInteractionReranker(encoder=FakeEncoder(), cache_dir=str(tmp_path), top_n=2)
    assert reranker.compress_documents([], "capital") == []
    documents = [Document(page_content=t) for t in ["", *CORPUS]]
    assert len(reranker.compress_documents(documents, "")) == 2
    every = LateInteractionReranker(encoder=FakeEncoder(), cache_dir=str(tmp_path), top_n=None)
    assert len(every.compress_documents(documents, "capital")) == 4


@needs_llama_index
@pytest.mark.timeout(30)
def test_llama_index_adapters_empty_inputs() -> None:
    """LlamaIndex retrievers and postprocessor: empty corpus, empty query, empty node list,
    ``similarity_top_k``/``top_n`` beyond the corpus; zero is refused with a ValueError."""
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
    from llama_index.postprocessor.latecore import LateInteractionRerank
    from llama_index.retrievers.latecore import (
        LateInteractionHybridRetriever,
        LateInteractionRetriever,
    )

    nodes = [TextNode(text=t, id_=str(i)) for i, t in enumerate(CORPUS)]
    # as in LangChain: MaxSim ranks every node for an empty query, hybrid returns nothing
    for retriever_class, blank_hits in (
        (LateInteractionRetriever, 3),
        (LateInteractionHybridRetriever, 0),
    ):
        empty = retriever_class(encoder=FakeEncoder())
        assert empty.retrieve("capital") == [] and empty.retrieve("") == []
        retriever = retriever_class(nodes, encoder=FakeEncoder(), similarity_top_k=100)
        assert len(retriever.retrieve("")) == blank_hits
        assert len(retriever.retrieve("capital")) >= 2
        with pytest.raises(ValueError):
            retriever_class(encoder=FakeEncoder(), similarity_top_k=0)

    rerank = LateInteractionRerank(encoder=FakeEncoder(), top_n=100)
    assert rerank.postprocess_nodes([], query_bundle=QueryBundle("capital")) == []
    scored = [NodeWithScore(node=n, score=1.0) for n in [TextNode(text=""), *nodes]]
    assert len(rerank.postprocess_nodes(scored, query_bundle=QueryBundle(""))) == 4
    with pytest.raises(ValueError):
        LateInteractionRerank(encoder=FakeEncoder(), top_n=0)
