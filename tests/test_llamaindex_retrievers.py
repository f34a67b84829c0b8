"""LateInteractionRetriever and LateInteractionHybridRetriever (llama_index.retrievers.latecore)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import Document, MetadataMode, NodeRelationship, TextNode
from llama_index.retrievers.latecore import (
    LateInteractionHybridRetriever,
    LateInteractionRetriever,
)

from latecore import HybridSearcher, LateIndex
from latecore.testing import FakeEncoder

Retriever = type[LateInteractionRetriever] | type[LateInteractionHybridRetriever]
BOTH = [LateInteractionRetriever, LateInteractionHybridRetriever]

CORPUS = {
    "paris": "paris is the capital city of france",
    "berlin": "berlin is the capital city of germany",
    "cats": "cats purr and sleep all day",
    "market": "the stock market fell after the bank raised rates",
    "python": "python is a programming language for data and code",
}


def corpus_nodes() -> list[TextNode]:
    return [
        TextNode(text=text, id_=node_id, metadata={"topic": node_id})
        for node_id, text in CORPUS.items()
    ]


def ids(results: list) -> list[str]:
    return [n.node.node_id for n in results]


@pytest.mark.parametrize("cls", BOTH)
def test_retrieves_best_nodes_whole(cls: Retriever) -> None:
    nodes = corpus_nodes()
    source = Document(text="the whole document", id_="doc-1")
    nodes[0].relationships[NodeRelationship.SOURCE] = source.as_related_node_info()
    retriever = cls(nodes, encoder=FakeEncoder(), similarity_top_k=2)
    results = retriever.retrieve("what is the capital of france")
    assert ids(results) == ["paris", "berlin"]
    top = results[0].node
    assert top.get_content() == CORPUS["paris"] and top.metadata["topic"] == "paris"
    assert top.ref_doc_id == "doc-1"
    assert top.get_content(metadata_mode=MetadataMode.EMBED) == nodes[0].get_content(
        metadata_mode=MetadataMode.EMBED
    )
    assert all(type(n.score) is float for n in results)
    assert results[0].get_score() >= results[1].get_score()


@pytest.mark.parametrize("cls", BOTH)
def test_insert_and_delete_nodes(cls: Retriever) -> None:
    retriever = cls(corpus_nodes(), encoder=FakeEncoder(), similarity_top_k=1)
    assert ids(retriever.retrieve("the sea and the ocean water")) != ["sea"]
    retriever.insert_nodes([TextNode(text="the sea is salt water of the ocean", id_="sea")])
    assert ids(retriever.retrieve("the sea and the ocean water")) == ["sea"]
    assert retriever.delete_nodes(["sea", "unknown"]) == 1
    assert "sea" not in retriever.index
    assert ids(retriever.retrieve("the sea and the ocean water")) != ["sea"]
    with pytest.raises(TypeError):
        retriever.delete_nodes("paris")


@pytest.mark.parametrize("cls", BOTH)
def test_insert_replaces_a_node_with_the_same_id(cls: Retriever) -> None:
    retriever = cls(corpus_nodes(), encoder=FakeEncoder(), similarity_top_k=1)
    retriever.insert_nodes([TextNode(text="cats are now about the rocket to the moon", id_="cats")])
    assert len(retriever.index) == len(CORPUS)
    [hit] = retriever.retrieve("rocket to the moon")
    assert hit.node.node_id == "cats" and "rocket" in hit.node.get_content()


@pytest.mark.parametrize("cls", BOTH)
def test_from_documents_and_delete_ref_doc(cls: Retriever) -> None:
    documents = [
        Document(text="Paris is in France. " * 50, id_="france"),
        Document(text="Berlin is in Germany. " * 50, id_="germany"),
    ]
    retriever = cls.from_documents(
        documents,
        transformations=[SentenceSplitter(chunk_size=60, chunk_overlap=0)],
        encoder=FakeEncoder(),
        similarity_top_k=3,
    )
    chunks = len(retriever.index)
    assert chunks > 2
    assert {n.node.ref_doc_id for n in retriever.retrieve("Germany")} == {"germany"}
    removed = retriever.delete_ref_doc("germany")
    assert 0 < removed < chunks and len(retriever.index) == chunks - removed
    assert {n.node.ref_doc_id for n in retriever.retrieve("Germany or France")} == {"france"}
    assert retriever.delete_ref_doc("germany") == 0


@pytest.mark.parametrize("cls", BOTH)
def test_aretrieve_returns_the_same_as_retrieve(cls: Retriever) -> None:
    retriever = cls(corpus_nodes(), encoder=FakeEncoder(), similarity_top_k=3)
    for query in ("capital of germany", "programming code", "cats"):
        sync = retriever.retrieve(query)
        result = asyncio.run(retriever.aretrieve(query))
        assert [(n.node.node_id, n.score, n.node.metadata) for n in result] == [
            (n.node.node_id, n.score, n.node.metadata) for n in sync
        ]


def test_saved_index_gives_back_the_same_nodes(tmp_path: Path) -> None:
    encoder = FakeEncoder()
    nodes = corpus_nodes()
    LateInteractionRetriever(nodes, encoder=encoder).index.save(tmp_path / "index")
    loaded = LateInteractionRetriever(
        index=LateIndex.load(tmp_path / "index", encoder), similarity_top_k=5
    )
    by_id = {n.node_id: n for n in nodes}
    for result in loaded.retrieve("capital city"):
        assert result.node == by_id[result.node.node_id]


def test_plain_latecore_documents_come_back_as_text_nodes() -> None:
    index = LateIndex(FakeEncoder())
    index.add(["paris is in france"], ids=["p"], metadatas=[{"lang": "en"}])
    [result] = LateInteractionRetriever(index=index).retrieve("paris")
    assert isinstance(result.node, TextNode)
    assert (result.node.node_id, result.node.get_content(), result.node.metadata) == (
        "p",
        "paris is in france",
        {"lang": "en"},
    )


def test_get_nodes_and_bad_arguments() -> None:
    retriever = LateInteractionRetriever(corpus_nodes(), encoder=FakeEncoder())
    assert [n.node_id for n in retriever.get_nodes(["cats", "nope", "paris"])] == ["cats", "paris"]
    with pytest.raises(ValueError, match="similarity_top_k"):
        LateInteractionRetriever(encoder=FakeEncoder(), similarity_top_k=0)
    with pytest.raises(ValueError, match="either index or encoder"):
        LateInteractionRetriever(index=retriever.index, encoder=FakeEncoder())


def test_hybrid_keeps_every_stage_score_out_of_the_text() -> None:
    nodes = corpus_nodes()
    retriever = LateInteractionHybridRetriever(nodes, encoder=FakeEncoder(), similarity_top_k=3)
    results = retriever.retrieve("capital city of france")
    assert results[0].node.node_id == "paris"
    assert isinstance(results[0].node.metadata["bm25_rank"], int)
    expected = retriever.searcher.search("capital city of france", k=3)
    assert ids(results) == [h.id for h in expected]
    by_id = {n.node_id: n for n in nodes}
    for result, hit in zip(results, expected, strict=True):
        meta = result.node.metadata
        assert result.score == pytest.approx(hit.score)
        assert (meta["bm25_score"], meta["bm25_rank"]) == (hit.bm25_score, hit.bm25_rank)
        assert (meta["colbert_score"], meta["colbert_rank"]) == (
            hit.colbert_score,
            hit.colbert_rank,
        )
        assert meta["bm25_rank"] is None or isinstance(meta["bm25_rank"], int)
        assert isinstance(meta["colbert_score"], float)
        original = by_id[result.node.node_id]
        for mode in (MetadataMode.EMBED, MetadataMode.LLM):
            assert result.node.get_content(metadata_mode=mode) == original.get_content(
                metadata_mode=mode
            )


def test_hybrid_from_an_existing_index_or_searcher() -> None:
    encoder = FakeEncoder()
    base = LateInteractionRetriever(corpus_nodes(), encoder=encoder)
    over_index = LateInteractionHybridRetriever(index=base.index, similarity_top_k=1, candidates=3)
    assert ids(over_index.retrieve("stock market")) == ["market"]
    searcher = HybridSearcher(encoder)
    over_searcher = LateInteractionHybridRetriever(corpus_nodes(), searcher=searcher)
    assert over_searcher.searcher is searcher and len(searcher.index) == len(CORPUS)
    with pytest.raises(ValueError, match="at most one"):
        LateInteractionHybridRetriever(index=base.index, encoder=encoder)
    with pytest.raises(ValueError, match="already built"):
        LateInteractionHybridRetriever(searcher=searcher, candidates=5)


def test_hybrid_follows_later_changes_to_the_searcher() -> None:
    """The retriever copies none of the searcher's settings: a later change is honoured."""
    retriever = LateInteractionHybridRetriever(
        corpus_nodes(), encoder=FakeEncoder(), similarity_top_k=4
    )
    searcher, query = retriever.searcher, "capital city of france"
    searcher.fusion = "rerank"

    def scored() -> list[tuple[str, float | None]]:
        return [(n.node.node_id, n.score) for n in retriever.retrieve(query)]

    rerank = scored()
    assert rerank == [(h.id, h.score) for h in searcher.search(query, k=4, fusion="rerank")]
    searcher.fusion = "rrf"
    rrf = scored()
    assert rrf == [(h.id, h.score) for h in searcher.search(query, k=4, fusion="rrf")]
    assert rrf != rerank
    assert [(n.node.node_id, n.score) for n in asyncio.run(retriever.aretrieve(query))] == rrf
    searcher.candidates, searcher.candidates_from = 1, "bm25"
    assert scored() == [
        (h.id, h.score)
        for h in searcher.search(query, k=4, fusion="rrf", candidates=1, candidates_from="bm25")
    ]
    assert len(scored()) == 1
