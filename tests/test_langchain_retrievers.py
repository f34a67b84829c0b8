"""LangChain retrievers of langchain-latecore: standard suite, documents, updates, async."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_latecore import LateInteractionHybridRetriever, LateInteractionRetriever
from langchain_tests.integration_tests import RetrieversIntegrationTests

from latecore import HybridSearcher, LateIndex
from latecore.testing import FakeEncoder

CAPITALS = [
    "Paris is the capital city of France.",
    "Berlin is the capital city of Germany.",
    "Rome is the capital city of Italy.",
    "Madrid is the capital city of Spain.",
    "London is the capital city of England.",
    "Lisbon is the capital city of Portugal.",
]
OTHER = [
    "Cats purr when they are content.",
    "The stock market fell sharply on Monday.",
    "Green tea contains less caffeine than coffee.",
    "Dogs bark at the mail carrier.",
]
QUERY = "which city is the capital of Germany"


def _documents() -> list[Document]:
    return [
        Document(text, id=f"doc-{i}", metadata={"n": i, "tags": {"topic": "capitals"}})
        for i, text in enumerate(CAPITALS + OTHER)
    ]


@pytest.fixture(scope="module")
def fake_index() -> LateIndex:
    index = LateIndex(FakeEncoder())
    index.add(CAPITALS + OTHER)
    return index


@pytest.fixture(params=["late", "hybrid"])
def retriever(request: pytest.FixtureRequest) -> BaseRetriever:
    """Each retriever over the same ten documents, with the fake encoder."""
    cls = LateInteractionRetriever if request.param == "late" else LateInteractionHybridRetriever
    return cls.from_documents(_documents(), FakeEncoder())


class TestLateInteractionRetrieverStandard(RetrieversIntegrationTests):
    pytestmark = pytest.mark.anyio

    @pytest.fixture(scope="class")
    def anyio_backend(self) -> str:
        return "asyncio"

    @pytest.fixture(autouse=True)
    def _index(self, fake_index: LateIndex) -> None:
        self.index = fake_index

    @property
    def retriever_constructor(self) -> type[LateInteractionRetriever]:
        return LateInteractionRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"index": self.index}

    @property
    def retriever_query_example(self) -> str:
        return QUERY


class TestLateInteractionHybridRetrieverStandard(RetrieversIntegrationTests):
    pytestmark = pytest.mark.anyio

    @pytest.fixture(scope="class")
    def anyio_backend(self) -> str:
        return "asyncio"

    @pytest.fixture(autouse=True)
    def _searcher(self, fake_index: LateIndex) -> None:
        self.searcher = HybridSearcher.from_index(fake_index)

    @property
    def retriever_constructor(self) -> type[LateInteractionHybridRetriever]:
        return LateInteractionHybridRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"searcher": self.searcher}

    @property
    def retriever_query_example(self) -> str:
        return QUERY


def test_documents_keep_id_and_metadata_and_get_the_score(retriever: BaseRetriever) -> None:
    docs = retriever.invoke(QUERY)
    assert len(docs) == 4  # the LangChain default k
    assert docs[0].id == "doc-1"
    assert docs[0].page_content == CAPITALS[1]
    assert docs[0].metadata["n"] == 1
    assert docs[0].metadata["tags"] == {"topic": "capitals"}
    scores = [d.metadata["relevance_score"] for d in docs]
    assert scores == sorted(scores, reverse=True)
    assert all(isinstance(s, float) for s in scores)


def test_scores_are_the_core_scores(fake_index: LateIndex) -> None:
    retriever = LateInteractionRetriever(index=fake_index, k=3)
    docs = retriever.invoke(QUERY)
    hits = fake_index.search(QUERY, k=3)
    assert [(d.id, d.page_content, d.metadata["relevance_score"]) for d in docs] == [
        (h.id, h.text, h.score) for h in hits
    ]


def test_k_field_and_invoke_kwarg(retriever: BaseRetriever) -> None:
    retriever = retriever.model_copy(update={"k": 2})
    assert len(retriever.invoke(QUERY)) == 2
    assert len(retriever.invoke(QUERY, k=5)) == 5
    assert len(retriever.batch([QUERY, "capital of Spain"], k=1)[1]) == 1


def test_unknown_invoke_kwarg_is_an_error(retriever: BaseRetriever) -> None:
    with pytest.raises(TypeError, match="top_k"):
        retriever.invoke(QUERY, top_k=2)


def test_changing_returned_metadata_does_not_change_the_index(retriever: BaseRetriever) -> None:
    first = retriever.invoke(QUERY, k=1)[0]
    first.metadata["tags"]["topic"] = "changed"
    first.metadata["n"] = -1
    again = retriever.invoke(QUERY, k=1)[0]
    assert again.metadata["tags"] == {"topic": "capitals"}
    assert again.metadata["n"] == 1


def test_add_documents_and_delete(retriever: Any) -> None:
    query = "the capital city of Austria"
    ids = retriever.add_documents(
        [
            Document("Vienna is the capital city of Austria.", id="vienna", metadata={"n": 99}),
            Document("Salzburg is a city in Austria."),
        ]
    )
    assert ids[0] == "vienna"
    assert len(ids[1]) == 32  # generated uuid4 hex
    top = retriever.invoke(query, k=1)[0]
    assert (top.id, top.metadata["n"]) == ("vienna", 99)
    assert retriever.delete(["vienna", "no-such-id"]) == 1
    assert "vienna" not in [d.id for d in retriever.invoke(query, k=20)]
    assert retriever.add_documents([Document("Vienna on the Danube.")], ids=["vienna"]) == [
        "vienna"
    ]
    assert retriever.invoke("Vienna Danube", k=1)[0].id == "vienna"


def test_async_add_and_delete(retriever: Any) -> None:
    async def run() -> tuple[list[str], int]:
        ids = await retriever.aadd_documents([Document("Oslo is the capital city of Norway.")])
        return ids, await retriever.adelete(ids)

    ids, removed = asyncio.run(run())
    assert removed == 1
    assert ids[0] not in [d.id for d in retriever.invoke("capital of Norway", k=20)]


def test_from_texts_with_ids_and_metadatas() -> None:
    retriever = LateInteractionRetriever.from_texts(
        CAPITALS, FakeEncoder(), metadatas=[{"n": i} for i in range(6)], ids=list("abcdef"), k=1
    )
    assert [(d.id, d.metadata["n"]) for d in retriever.invoke(QUERY)] == [("b", 1)]


def test_encoder_and_model_are_exclusive() -> None:
    with pytest.raises(ValueError, match="not both"):
        LateInteractionRetriever.from_texts(CAPITALS, FakeEncoder(), model="some/model")


def test_hybrid_metadata_has_every_stage(fake_index: LateIndex) -> None:
    searcher = HybridSearcher.from_index(fake_index)
    retriever = LateInteractionHybridRetriever(searcher=searcher, k=3, fusion="rrf")
    docs = retriever.invoke(QUERY)
    hits = searcher.search(QUERY, k=3, fusion="rrf")
    assert [d.id for d in docs] == [h.id for h in hits]
    for doc, hit in zip(docs, hits, strict=True):
        assert doc.metadata == {
            **hit.metadata,
            "relevance_score": hit.score,
            "bm25_score": hit.bm25_score,
            "bm25_rank": hit.bm25_rank,
            "colbert_score": hit.colbert_score,
            "colbert_rank": hit.colbert_rank,
        }
    assert docs[0].metadata["relevance_score"] == pytest.approx(
        1 / (60 + docs[0].metadata["bm25_rank"]) + 1 / (60 + docs[0].metadata["colbert_rank"])
    )


def test_hybrid_fusion_and_candidates(fake_index: LateIndex) -> None:
    searcher = HybridSearcher.from_index(fake_index, fusion="linear", candidates=50)
    retriever = LateInteractionHybridRetriever(searcher=searcher, k=10)
    # Unset fields follow the searcher (its "linear" and 50), read when searching.
    assert (retriever.fusion, retriever.candidates, retriever.candidates_from) == (None,) * 3
    assert _scores(retriever.invoke(QUERY)) == _scores(searcher.search(QUERY, k=10))
    assert LateInteractionHybridRetriever(searcher=searcher, fusion="rrf").fusion == "rrf"
    assert len(retriever.invoke(QUERY, candidates=2, k=10, candidates_from="bm25")) == 2
    assert 2 <= len(retriever.invoke(QUERY, candidates=2, k=10, candidates_from="both")) <= 4
    by_rerank = retriever.invoke(QUERY, fusion="rerank", k=6)
    colbert = [d.metadata["colbert_score"] for d in by_rerank]
    assert colbert == sorted(colbert, reverse=True)
    assert [d.metadata["relevance_score"] for d in by_rerank] == colbert
    with pytest.raises(ValueError, match="fusion"):
        retriever.invoke(QUERY, fusion="max")


def _scores(results: list[Any]) -> list[tuple[str | None, float]]:
    """(id, score) of documents or hits, in order."""
    return [
        (r.id, r.metadata["relevance_score"] if isinstance(r, Document) else r.score)
        for r in results
    ]


def test_hybrid_follows_later_changes_to_the_searcher(fake_index: LateIndex) -> None:
    searcher = HybridSearcher.from_index(fake_index, fusion="rerank")
    retriever = LateInteractionHybridRetriever(searcher=searcher, k=10)
    rerank = _scores(retriever.invoke(QUERY))
    assert rerank == _scores(searcher.search(QUERY, k=10, fusion="rerank"))
    searcher.fusion = "rrf"  # set after the retriever was built: honoured
    rrf = _scores(retriever.invoke(QUERY))
    assert rrf == _scores(searcher.search(QUERY, k=10, fusion="rrf")) and rrf != rerank
    assert _scores(asyncio.run(retriever.ainvoke(QUERY))) == rrf
    searcher.candidates, searcher.candidates_from = 2, "bm25"
    assert _scores(retriever.invoke(QUERY)) == _scores(
        searcher.search(QUERY, k=10, fusion="rrf", candidates=2, candidates_from="bm25")
    )
    assert len(retriever.invoke(QUERY)) == 2
    # Per-call options win over the searcher's settings.
    assert len(retriever.invoke(QUERY, candidates=3)) == 3
    assert (
        _scores(retriever.invoke(QUERY, fusion="rerank", candidates=100, candidates_from="both"))
        == rerank
    )


def test_hybrid_fields_set_explicitly_win_over_the_searcher(fake_index: LateIndex) -> None:
    searcher = HybridSearcher.from_index(fake_index)
    retriever = LateInteractionHybridRetriever(
        searcher=searcher, k=10, fusion="linear", candidates=3, candidates_from="bm25"
    )
    linear = _scores(
        searcher.search(QUERY, k=10, fusion="linear", candidates=3, candidates_from="bm25")
    )
    assert len(linear) == 3
    searcher.fusion, searcher.candidates, searcher.candidates_from = "rrf", 100, "both"
    assert _scores(retriever.invoke(QUERY)) == linear
    # ... and per-call options win over the explicit fields.
    assert _scores(
        retriever.invoke(QUERY, fusion="rrf", candidates=100, candidates_from="both")
    ) == _scores(searcher.search(QUERY, k=10))
    assert len(retriever.invoke(QUERY, candidates=2)) == 2
    with pytest.raises(ValueError, match="candidates"):
        LateInteractionHybridRetriever(searcher=searcher, candidates=0)


def test_hybrid_without_a_shared_word_needs_maxsim_candidates() -> None:
    bm25_only = LateInteractionHybridRetriever.from_texts(
        CAPITALS, FakeEncoder(), candidates_from="bm25"
    )
    assert bm25_only.candidates_from == "bm25"
    assert bm25_only.invoke("bananas") == []
    both = LateInteractionHybridRetriever.from_texts(CAPITALS, FakeEncoder())
    hits = both.invoke("bananas")
    assert hits and all(d.metadata["bm25_rank"] is None for d in hits)


@pytest.mark.parametrize("kind", ["late", "hybrid"])
def test_concurrent_ainvoke_matches_invoke(kind: str, fake_index: LateIndex) -> None:
    retriever: BaseRetriever
    if kind == "late":
        retriever = LateInteractionRetriever(index=fake_index, k=3)
    else:
        retriever = LateInteractionHybridRetriever.from_index(fake_index, k=3)
    queries = [f"{QUERY} {word}" for word in CAPITALS[0].split()] + ["capital of Spain"] * 4
    queries = queries[:10]

    async def run() -> list[list[Document]]:
        return await asyncio.gather(*(retriever.ainvoke(q) for q in queries))

    assert asyncio.run(run()) == [retriever.invoke(q) for q in queries]
