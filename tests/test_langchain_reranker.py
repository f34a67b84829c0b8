"""LateInteractionReranker: compression retriever, caching, copies, async."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path

import pytest
from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_latecore import LateInteractionReranker

from latecore import Encoder, MultivectorCache, ZeroShotWarning
from latecore.testing import FakeEncoder

PASSAGES = {
    "berlin": "Berlin is the capital and largest city of Germany.",
    "eiffel": "The Eiffel Tower was completed in 1889 for the World's Fair.",
    "paris": "Paris is the capital and most populous city of France.",
    "banana": "Bananas are a good source of potassium.",
    "borders": "France borders Spain, Italy, Germany and Belgium.",
    "lyon": "Lyon is the third-largest city in France.",
    "plants": "Photosynthesis converts light energy into chemical energy in plants.",
    "everest": "Mount Everest is the highest mountain above sea level.",
}
LABELLED = {
    "What is the capital of France?": "paris",
    "Which fruit has a lot of potassium?": "banana",
    "How do plants turn sunlight into energy?": "plants",
    "When was the Eiffel Tower built?": "eiffel",
}


def _documents() -> list[Document]:
    return [
        Document(text, id=key, metadata={"source": f"{key}.txt", "extra": {"seen": [key]}})
        for key, text in PASSAGES.items()
    ]


@pytest.fixture
def minilm_reranker(minilm_encoder: Encoder, tmp_path: Path) -> LateInteractionReranker:
    return LateInteractionReranker(encoder=minilm_encoder, cache_dir=str(tmp_path), top_n=2)


def test_reorders_inside_contextual_compression_retriever(
    minilm_reranker: LateInteractionReranker,
) -> None:
    store = InMemoryVectorStore(DeterministicFakeEmbedding(size=16))
    store.add_documents(_documents())
    base = store.as_retriever(search_kwargs={"k": len(PASSAGES)})
    retriever = ContextualCompressionRetriever(base_compressor=minilm_reranker, base_retriever=base)
    for query, relevant in LABELLED.items():
        # The fake embedding orders documents by hash, so the base order is arbitrary.
        base_ids = [d.id for d in base.invoke(query)]
        docs = retriever.invoke(query)
        assert len(docs) == 2
        assert docs[0].id == relevant, (query, base_ids, [d.id for d in docs])
        assert docs[0].page_content == PASSAGES[relevant]
        assert docs[0].metadata["source"] == f"{relevant}.txt"
        assert docs[0].metadata["relevance_score"] > docs[1].metadata["relevance_score"]
    assert base.invoke("What is the capital of France?")[0].id != "paris"


def test_scores_match_the_core_reranker(minilm_reranker: LateInteractionReranker) -> None:
    docs = _documents()
    query = "What is the capital of France?"
    reranked = minilm_reranker.compress_documents(docs, query)
    expected = minilm_reranker.reranker.rerank(query, list(PASSAGES.values()), top_k=2)
    assert [(d.page_content, d.metadata["relevance_score"]) for d in reranked] == [
        (r.text, r.score) for r in expected
    ]


def test_each_candidate_is_encoded_once_across_queries(tmp_path: Path) -> None:
    encoder = FakeEncoder()  # no cache of its own: the reranker attaches one
    reranker = LateInteractionReranker(encoder=encoder, cache_dir=str(tmp_path), top_n=5)
    words = ["market", "tea", "cats", "rivers", "music", "bread", "stars", "code", "rain", "war"]
    candidates = [
        Document(f"passage {i} about {words[i % 10]} and {words[(3 * i + 1) % 10]}")
        for i in range(50)
    ]
    queries = [f"tell me about {word}" for word in words]
    tops = [reranker.compress_documents(candidates, q)[0] for q in queries]
    assert sorted(encoder.encoded) == sorted(d.page_content for d in candidates)
    assert encoder.encoded_queries == queries
    # The rankings are real: each query's best passage is about its word.
    assert all(word in top.page_content for word, top in zip(words, tops, strict=True))
    # A new reranker on the same cache directory encodes nothing either.
    again = LateInteractionReranker(encoder=encoder, cache_dir=str(tmp_path))
    again.compress_documents(candidates, "tell me about tea")
    assert len(encoder.encoded) == 50


def test_default_cache_directory(
    minilm_encoder: Encoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LATECORE_CACHE_DIR", str(tmp_path / "default"))
    reranker = LateInteractionReranker(encoder=minilm_encoder)
    cache = reranker.reranker.encoder.cache
    assert cache is not None
    assert Path(cache.directory) == tmp_path / "default"
    assert minilm_encoder.cache is None  # the shared encoder is not changed


def test_an_encoder_with_a_cache_is_used_as_is(tmp_path: Path) -> None:
    encoder = FakeEncoder(cache=MultivectorCache(tmp_path))
    assert LateInteractionReranker(encoder=encoder).reranker.encoder is encoder
    with pytest.raises(ValueError, match="already has a cache"):
        LateInteractionReranker(encoder=encoder, cache_dir=str(tmp_path / "other"))
    with pytest.raises(ValueError, match="not both"):
        LateInteractionReranker(encoder=encoder, model="some/model")


def test_input_documents_are_not_changed(minilm_reranker: LateInteractionReranker) -> None:
    docs = _documents()
    before = copy.deepcopy(docs)
    reranked = minilm_reranker.compress_documents(docs, "What is the capital of France?")
    assert docs == before
    assert all("relevance_score" not in d.metadata for d in docs)
    top = reranked[0]
    assert top == docs[2].model_copy(
        update={
            "metadata": {**docs[2].metadata, "relevance_score": top.metadata["relevance_score"]}
        }
    )
    top.metadata["extra"]["seen"].append("changed")
    assert docs == before  # a deep copy: nested metadata is not shared


def test_top_n_none_returns_all_and_empty_input(tmp_path: Path) -> None:
    reranker = LateInteractionReranker(encoder=FakeEncoder(), cache_dir=str(tmp_path), top_n=None)
    reranked = reranker.compress_documents(_documents(), "capital of France")
    assert sorted(str(d.id) for d in reranked) == sorted(PASSAGES)
    scores = [d.metadata["relevance_score"] for d in reranked]
    assert scores == sorted(scores, reverse=True)
    assert reranker.compress_documents([], "anything") == []
    with pytest.raises(ValueError, match="top_n"):
        LateInteractionReranker(encoder=FakeEncoder(), top_n=0)


def test_loads_a_model_by_name(minilm_path: Path, tmp_path: Path) -> None:
    with pytest.warns(ZeroShotWarning):
        reranker = LateInteractionReranker(
            model=str(minilm_path), device="cpu", cache_dir=str(tmp_path), top_n=1
        )
    encoder = reranker.reranker.encoder
    assert isinstance(encoder, Encoder)
    assert encoder.cache is not None and Path(encoder.cache.directory) == tmp_path
    assert (
        reranker.compress_documents(_documents(), "Which fruit has a lot of potassium?")[0].id
        == "banana"
    )


def test_concurrent_acompress_matches_compress(minilm_reranker: LateInteractionReranker) -> None:
    docs = _documents()
    queries = list(LABELLED) + [f"Tell me about {key}" for key in PASSAGES][:6]
    assert len(queries) == 10

    async def run() -> list[list[Document]]:
        results = await asyncio.gather(
            *(minilm_reranker.acompress_documents(docs, q) for q in queries)
        )
        return [list(r) for r in results]

    concurrent = asyncio.run(run())
    sequential = [list(minilm_reranker.compress_documents(docs, q)) for q in queries]

    # Concurrent queries share model passes (micro-batching, docs/batching.md), which
    # changes no vector: ids, order, texts, metadata and scores are equal, bit for bit.
    assert concurrent == sequential
