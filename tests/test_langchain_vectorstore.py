"""LateInteractionVectorStore: LangChain's standard vector store suite on every kind of
searcher, filters pushed into the searcher, scores, the refused vector methods, and
LangChain's indexing API (record managers, incremental and full cleanup, nothing
re-encoded on an unchanged re-run)."""

from __future__ import annotations

import asyncio
import doctest
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_classic.indexes import SQLRecordManager
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.indexing import InMemoryRecordManager, RecordManager, aindex, index
from langchain_latecore import LateInteractionRetriever, LateInteractionVectorStore
from langchain_latecore import vectorstores as vectorstores_module
from langchain_tests.integration_tests import VectorStoreIntegrationTests

from latecore import HybridSearcher, InputError, LateIndex, ZeroShotWarning
from latecore.testing import FakeEncoder

KINDS = ["exact", "hybrid", "qdrant", "lancedb"]


def make_store(kind: str, encoder: FakeEncoder | None = None) -> LateInteractionVectorStore:
    """An empty store: a LateIndex (exact or an engine backend) or a HybridSearcher."""
    encoder = encoder or FakeEncoder()
    if kind == "hybrid":
        return LateInteractionVectorStore(HybridSearcher(encoder))
    return LateInteractionVectorStore(LateIndex(encoder, backend=kind))


class TestLateInteractionVectorStoreStandard(VectorStoreIntegrationTests):
    """langchain-tests' suite, run on each kind of searcher (none is skipped)."""

    pytestmark = pytest.mark.anyio

    @pytest.fixture(scope="class")
    def anyio_backend(self) -> str:
        return "asyncio"

    @pytest.fixture(params=KINDS)
    def vectorstore(self, request: pytest.FixtureRequest) -> Iterator[LateInteractionVectorStore]:  # type: ignore[override]
        store = make_store(request.param)
        try:
            yield store
        finally:
            store.searcher.close()


CORPUS = [
    ("Paris is the capital city of France.", {"country": "FR", "year": 2001, "tags": ["city"]}),
    ("Berlin is the capital city of Germany.", {"country": "DE", "year": 2005, "tags": ["city"]}),
    ("Lyon is a large city in France.", {"country": "FR", "year": 2010, "tags": ["city"]}),
    ("Munich is a large city in Germany.", {"country": "DE", "year": 2015}),
    ("The capital of cheese is a city in France.", {"country": "FR", "year": 2020}),
    ("Cats sleep most of the day.", {"year": 2021, "info": {"kind": "pets"}}),
]
QUERY = "capital city"
FILTERS: list[dict[str, Any]] = [
    {"country": "DE"},
    {"country": {"$ne": "FR"}},
    {"year": {"$gte": 2010}},
    {"$or": [{"country": "DE"}, {"info.kind": "pets"}]},
    {"$and": [{"country": "FR"}, {"year": {"$lt": 2015}}]},
    {"$not": {"tags": "city"}},
    {"country": {"$exists": False}},
    {"country": {"$in": ["DE", "IT"]}},
    {"country": "IT"},
]


@pytest.fixture(params=["exact", "hybrid"])
def filled(request: pytest.FixtureRequest) -> LateInteractionVectorStore:
    store = make_store(request.param)
    store.add_texts(
        [t for t, _ in CORPUS], [m for _, m in CORPUS], ids=[f"d{i}" for i in range(len(CORPUS))]
    )
    return store


@pytest.mark.parametrize("spec", FILTERS)
def test_filter_reaches_the_searcher(filled: LateInteractionVectorStore, spec: Any) -> None:
    expected = filled.searcher.search(QUERY, k=3, filter=spec)
    searcher = filled.searcher
    matching = (searcher.index if isinstance(searcher, HybridSearcher) else searcher).count(spec)
    assert len(expected) == min(3, matching)
    docs = filled.similarity_search(QUERY, k=3, filter=spec)
    assert [(d.id, d.page_content, d.metadata) for d in docs] == [
        (h.id, h.text, h.metadata) for h in expected
    ]
    retriever = filled.as_retriever(search_kwargs={"k": 3, "filter": spec})
    assert retriever.invoke(QUERY) == docs
    assert asyncio.run(retriever.ainvoke(QUERY)) == docs
    assert asyncio.run(filled.asimilarity_search(QUERY, k=3, filter=spec)) == docs


def test_filter_restricts_the_best_documents(filled: LateInteractionVectorStore) -> None:
    unfiltered = [d.id for d in filled.similarity_search(QUERY, k=2)]
    german = [d.id for d in filled.similarity_search(QUERY, k=2, filter={"country": "DE"})]
    assert unfiltered != german
    assert sorted(german) == ["d1", "d3"]
    assert filled.similarity_search(QUERY, k=2, filter={"country": "IT"}) == []


def test_a_bad_filter_is_an_input_error(filled: LateInteractionVectorStore) -> None:
    with pytest.raises(InputError, match=r"\$between"):
        filled.similarity_search(QUERY, filter={"year": {"$between": [1, 2]}})
    with pytest.raises(InputError):
        filled.as_retriever(search_kwargs={"filter": {"$or": []}}).invoke(QUERY)


def test_scores_are_the_searcher_scores(filled: LateInteractionVectorStore) -> None:
    hits = filled.searcher.search(QUERY, k=4)
    scored = filled.similarity_search_with_score(QUERY, k=4)
    assert [(d.id, s) for d, s in scored] == [(h.id, h.score) for h in hits]
    assert asyncio.run(filled.asimilarity_search_with_score(QUERY, k=4)) == scored
    assert all("relevance_score" not in d.metadata for d, _ in scored)


def test_relevance_is_maxsim_per_query_vector(filled: LateInteractionVectorStore) -> None:
    n_vectors = len(filled.encoder.encode_queries([QUERY])[0])
    hits = filled.searcher.search(QUERY, k=6, filter={"year": {"$gt": 2001}})
    relevant = filled.similarity_search_with_relevance_scores(
        QUERY, k=6, filter={"year": {"$gt": 2001}}
    )
    maxsim = [getattr(h, "colbert_score", h.score) for h in hits]
    assert [d.id for d, _ in relevant] == [h.id for h in hits]
    assert [r for _, r in relevant] == pytest.approx([max(0.0, s / n_vectors) for s in maxsim])
    assert all(0.0 <= r <= 1.0 for _, r in relevant)
    threshold = sorted(r for _, r in relevant)[-2]
    kept = filled.similarity_search_with_relevance_scores(QUERY, k=6, score_threshold=threshold)
    assert kept and all(r >= threshold for _, r in kept)
    assert (
        asyncio.run(
            filled.asimilarity_search_with_relevance_scores(QUERY, k=6, score_threshold=threshold)
        )
        == kept
    )
    retriever = filled.as_retriever(
        search_type="similarity_score_threshold", search_kwargs={"score_threshold": threshold}
    )
    assert [d.id for d in retriever.invoke(QUERY)] == [d.id for d, _ in kept]


def test_identical_text_is_fully_relevant() -> None:
    store = make_store("exact")
    store.add_texts(["one two three", "four five"])
    # FakeEncoder: the query marker [Q] matches nothing exactly, the three words do.
    (top, score) = store.similarity_search_with_relevance_scores("one two three", k=1)[0]
    query, document = (
        store.encoder.encode_queries(["one two three"])[0],
        store.encoder.encode_documents(["one two three"])[0],
    )
    marker = float((query[0] @ document.T).max())
    assert top.page_content == "one two three"
    assert score == pytest.approx((3 + marker) / 4, abs=1e-3)


def test_search_options_go_to_the_searcher() -> None:
    hybrid = make_store("hybrid")
    hybrid.add_texts([t for t, _ in CORPUS], [m for _, m in CORPUS])
    assert hybrid.similarity_search("bananas", k=3, candidates_from="bm25") == []
    assert len(hybrid.similarity_search("bananas", k=3, candidates_from="both")) == 3
    with pytest.raises(TypeError, match="top_k"):
        hybrid.similarity_search(QUERY, top_k=3)
    plain = make_store("exact")
    with pytest.raises(TypeError, match="fusion"):
        plain.similarity_search(QUERY, fusion="rrf")


def test_vector_methods_raise_saying_why(filled: LateInteractionVectorStore) -> None:
    assert filled.embeddings is None
    for call in (
        lambda: filled.similarity_search_by_vector([0.1, 0.2]),
        lambda: filled.max_marginal_relevance_search_by_vector([0.1, 0.2]),
        lambda: asyncio.run(filled.asimilarity_search_by_vector([0.1, 0.2])),
    ):
        with pytest.raises(NotImplementedError, match="one vector per token"):
            call()
    for call in (
        lambda: filled.max_marginal_relevance_search(QUERY),
        lambda: asyncio.run(filled.amax_marginal_relevance_search(QUERY)),
        lambda: filled.as_retriever(search_type="mmr").invoke(QUERY),
    ):
        with pytest.raises(NotImplementedError, match="MMR compares documents"):
            call()


def test_ids_replace_and_delete() -> None:
    store = make_store("exact")
    ids = store.add_documents(
        [Document("alpha", id="a"), Document("beta"), Document("gamma", id="c")], batch_size=2
    )
    assert ids[0] == "a" and ids[2] == "c" and len(ids[1]) == 32
    assert store.add_documents([Document("delta", id="a")], ids=["x"]) == ["x"]  # ids= wins
    assert store.add_texts(["alpha two"], ids=["a"]) == ["a"]
    assert asyncio.run(store.aadd_texts(["epsilon"], [{"n": 5}], ids=["e"])) == ["e"]
    assert store.similarity_search("epsilon", k=1, filter={"n": 5})[0].id == "e"
    assert store.delete(["e"]) is True
    assert [d.page_content for d in store.get_by_ids(["c", "nope", "a"])] == ["gamma", "alpha two"]
    assert len(store) == 4
    assert store.delete(["a", "missing"]) is True
    assert asyncio.run(store.adelete(["c"])) is True
    assert sorted(store.searcher.ids) == sorted([ids[1], "x"])
    with pytest.raises(ValueError, match=r"store\.searcher\.ids"):
        store.delete()
    assert len(store) == 2  # nothing was removed
    with pytest.raises(TypeError, match="unknown keywords"):
        store.add_texts(["x"], upsert=True)
    with pytest.raises(TypeError, match="unknown keywords"):
        store.delete(["x"], cascade=True)
    with pytest.raises(TypeError, match="single"):
        store.add_texts("one text")
    with pytest.raises(TypeError, match="wrap a single id in a list"):
        store.get_by_ids("x")
    with pytest.raises(TypeError, match="wrap a single id in a list"):
        store.delete("x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="2 ids for 1 texts"):
        store.add_texts(["one"], ids=["a", "b"])


def test_stored_metadata_is_a_copy() -> None:
    store = make_store("exact")
    document = Document("alpha beta", id="a", metadata={"info": {"kind": "x"}, "tags": ["t"]})
    store.add_documents([document])
    store.add_texts(["gamma"], [{"info": {"kind": "y"}}], ids=["g"])
    document.metadata["info"]["kind"] = "changed"
    document.metadata["tags"].append("u")
    found = store.get_by_ids(["a"])[0]
    assert found.metadata == {"info": {"kind": "x"}, "tags": ["t"]}
    found.metadata["info"]["kind"] = "changed too"
    assert store.similarity_search("alpha", k=1, filter={"info.kind": "x"})[0].id == "a"


def test_from_texts_and_from_documents(tmp_path: Path) -> None:
    encoder = FakeEncoder()
    store = LateInteractionVectorStore.from_texts(
        [t for t, _ in CORPUS], encoder, [m for _, m in CORPUS], ids=list("abcdef")
    )
    assert isinstance(store.searcher, LateIndex) and store.encoder is encoder
    assert store.similarity_search(QUERY, k=1, filter={"country": "DE"})[0].id == "b"
    hybrid = LateInteractionVectorStore.from_documents(
        [Document(t, id=f"h{i}", metadata=m) for i, (t, m) in enumerate(CORPUS)],
        encoder,
        backend="qdrant",
        hybrid=True,
        hybrid_kwargs={"fusion": "rrf", "candidates": 4},
        index_kwargs={"dtype": "float32"},
    )
    assert isinstance(hybrid.searcher, HybridSearcher)
    assert (hybrid.searcher.fusion, hybrid.searcher.index.backend.name) == ("rrf", "qdrant")
    assert hybrid.get_by_ids(["h1"])[0].metadata == CORPUS[1][1]
    hybrid.searcher.close()
    with pytest.raises(TypeError, match="latecore encoder"):
        LateInteractionVectorStore.from_texts(["x"], DeterministicFakeEmbedding(size=4))
    with pytest.raises(TypeError, match="unknown keywords"):
        LateInteractionVectorStore.from_texts(["x"], encoder, collection_name="x")
    with pytest.raises(ValueError, match="hybrid=True"):
        LateInteractionVectorStore.from_texts(["x"], encoder, hybrid_kwargs={"fusion": "rrf"})
    with pytest.raises(TypeError, match="LateIndex or HybridSearcher"):
        LateInteractionVectorStore(LateInteractionRetriever.from_texts(["x"], encoder))  # type: ignore[arg-type]
    afrom = asyncio.run(LateInteractionVectorStore.afrom_texts(["x y"], encoder, ids=["x"]))
    assert afrom.get_by_ids(["x"])[0].page_content == "x y"


def test_from_texts_loads_a_model_by_name(tmp_path: Path, minilm_path: Path) -> None:
    with pytest.warns(ZeroShotWarning):  # MiniLM has no ColBERT head
        store = LateInteractionVectorStore.from_texts(
            ["Bees make honey from nectar.", "The printing press changed Europe."],
            model=str(minilm_path),
            device="cpu",
            cache_dir=tmp_path / "cache",
            ids=["bees", "press"],
        )
    assert store.encoder.cache is not None
    assert store.similarity_search("how is honey made", k=1)[0].id == "bees"


def test_docstring_examples_run() -> None:
    result = doctest.testmod(vectorstores_module)
    assert result.attempted > 0 and result.failed == 0


# LangChain's indexing API


def _sources(texts_by_source: dict[str, list[str]]) -> list[Document]:
    return [
        Document(text, metadata={"source": source, "chunk": n})
        for source, texts in texts_by_source.items()
        for n, text in enumerate(texts)
    ]


def _contents(store: LateInteractionVectorStore) -> set[tuple[str, str]]:
    return {(d.metadata["source"], d.page_content) for d in store.get_by_ids(store.searcher.ids)}


def _expected(texts_by_source: dict[str, list[str]]) -> set[tuple[str, str]]:
    return {(s, t) for s, texts in texts_by_source.items() for t in texts}


def _record_manager(kind: str, tmp_path: Path) -> RecordManager:
    if kind == "memory":
        manager: RecordManager = InMemoryRecordManager(namespace="latecore/test")
    else:
        manager = SQLRecordManager("latecore/test", db_url=f"sqlite:///{tmp_path / 'records.db'}")
    manager.create_schema()
    return manager


ROUND_TRIP: list[tuple[str, dict[str, int], int]] = []
"""Each step's (name, indexing result, documents encoded), printed by the round-trip test."""


@pytest.mark.parametrize("manager_kind", ["memory", "sql"])
@pytest.mark.parametrize("kind", ["exact", "hybrid", "qdrant"])
def test_indexing_api_round_trip(
    kind: str, manager_kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    encoder = FakeEncoder()
    store = make_store(kind, encoder)
    manager = _record_manager(manager_kind, tmp_path)
    sources = {
        "a.md": ["alpha one", "alpha two", "alpha three"],
        "b.md": ["beta one", "beta two"],
        "c.md": ["gamma one", "gamma two"],
    }
    steps: list[tuple[str, dict[str, int], int]] = []

    def run(name: str, docs: list[Document], cleanup: Any) -> dict[str, int]:
        before = encoder.encode_stats().documents
        result = index(
            docs, manager, store, cleanup=cleanup, source_id_key="source", key_encoder="sha256"
        )
        steps.append((name, dict(result), encoder.encode_stats().documents - before))
        return dict(result)

    assert run("add", _sources(sources), "incremental") == {
        "num_added": 7, "num_updated": 0, "num_skipped": 0, "num_deleted": 0,
    }  # fmt: skip
    assert _contents(store) == _expected(sources)
    assert steps[-1][2] == 7 and len(encoder.encoded) == 7

    assert run("re-run unchanged", _sources(sources), "incremental") == {
        "num_added": 0, "num_updated": 0, "num_skipped": 7, "num_deleted": 0,
    }  # fmt: skip
    assert steps[-1][2] == 0 and len(encoder.encoded) == 7  # nothing encoded
    assert _contents(store) == _expected(sources)

    edited = {**sources, "b.md": ["beta one", "beta two, edited", "beta three"]}
    assert run("edit b.md", _sources({"b.md": edited["b.md"]}), "incremental") == {
        "num_added": 2, "num_updated": 0, "num_skipped": 1, "num_deleted": 1,
    }  # fmt: skip
    assert steps[-1][2] == 2
    assert _contents(store) == _expected(edited)  # the old chunk is gone, a.md and c.md kept
    hit = store.similarity_search("beta edited", k=1, filter={"source": "b.md"})[0]
    assert hit.page_content == "beta two, edited"

    remaining = {"a.md": edited["a.md"], "b.md": edited["b.md"]}  # c.md was deleted
    assert run("full without c.md", _sources(remaining), "full") == {
        "num_added": 0, "num_updated": 0, "num_skipped": 6, "num_deleted": 2,
    }  # fmt: skip
    assert steps[-1][2] == 0
    assert _contents(store) == _expected(remaining)
    assert store.similarity_search("gamma", k=10, filter={"source": "c.md"}) == []
    assert len(store) == len(manager.list_keys()) == 6

    store.searcher.close()
    with capsys.disabled():
        print(f"\nindexing round trip ({kind}, {manager_kind} record manager):")
        for name, result, encoded in steps:
            print(f"  {name:<20} {result}  encoded {encoded}")


def test_async_indexing_api_round_trip() -> None:
    encoder = FakeEncoder()
    store = make_store("exact", encoder)
    manager = InMemoryRecordManager(namespace="latecore/async")
    manager.create_schema()
    docs = _sources({"a.md": ["alpha one", "alpha two"], "b.md": ["beta"]})

    async def run(documents: list[Document]) -> dict[str, int]:
        result = await aindex(
            documents, manager, store, cleanup="full", source_id_key="source", key_encoder="sha256"
        )
        return dict(result)

    assert asyncio.run(run(docs))["num_added"] == 3
    assert asyncio.run(run(docs))["num_skipped"] == 3
    assert encoder.encode_stats().documents == 3
    assert asyncio.run(run(docs[:2]))["num_deleted"] == 1
    assert _contents(store) == {("a.md", "alpha one"), ("a.md", "alpha two")}
