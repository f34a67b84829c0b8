"""LangChain page retriever (langchain_latecore.LateInteractionPageRetriever), end to end on the
tiny page checkpoint: standard retriever suite, one Document per page, images, filters, cache."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from _pages_adapter_support import DPI, PAGE_TEXTS, PageCorpus, build_corpus, same_pixels
from langchain_core.documents import Document
from langchain_latecore import LateInteractionHybridRetriever, LateInteractionPageRetriever
from langchain_tests.integration_tests import RetrieversIntegrationTests
from pydantic import ValidationError

from latecore import LateIndex, MultivectorCache
from latecore.pages import load_pages
from latecore.testing import FakeEncoder

QUERY = "quarterly revenue in the north region"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, tiny_page_encoder_path: Path) -> PageCorpus:
    return build_corpus(tmp_path_factory.mktemp("lc-pages"), tiny_page_encoder_path)


@pytest.fixture(scope="module")
def page_index(corpus: PageCorpus) -> LateIndex:
    index = LateIndex(corpus.encoder)
    index.add_pages(corpus.pages)
    return index


class TestLateInteractionPageRetrieverStandard(RetrieversIntegrationTests):
    pytestmark = pytest.mark.anyio

    @pytest.fixture(scope="class")
    def anyio_backend(self) -> str:
        return "asyncio"

    @pytest.fixture(autouse=True)
    def _index(self, page_index: LateIndex) -> None:
        self.index = page_index

    @property
    def retriever_constructor(self) -> type[LateInteractionPageRetriever]:
        return LateInteractionPageRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"index": self.index}

    @property
    def retriever_query_example(self) -> str:
        return QUERY


def test_one_document_per_page_with_text_metadata_and_core_scores(
    page_index: LateIndex, corpus: PageCorpus
) -> None:
    retriever = LateInteractionPageRetriever(index=page_index, k=len(corpus.pages))
    docs = retriever.invoke(QUERY)
    by_id = {p.id: p for p in corpus.pages}
    assert sorted(d.id for d in docs if d.id is not None) == sorted(by_id)  # each page once
    hits = page_index.search(QUERY, k=len(corpus.pages))
    assert [(d.id, d.metadata["relevance_score"]) for d in docs] == [(h.id, h.score) for h in hits]
    for doc in docs:
        assert isinstance(doc, Document)
        page = by_id[str(doc.id)]
        assert doc.page_content == page.text
        assert {k: doc.metadata[k] for k in page.metadata} == page.metadata
    first_pdf_page = next(d for d in docs if d.id == f"{corpus.pdf}:page_1")
    assert first_pdf_page.metadata["source"] == str(corpus.pdf)
    assert first_pdf_page.metadata["page"] == 1
    assert "revenue" in first_pdf_page.page_content.lower()
    scan = next(d for d in docs if d.id == f"{corpus.pdf}:page_{len(PAGE_TEXTS)}")
    assert scan.page_content == ""  # the scan has no text layer; it is still retrieved


def test_page_image_comes_back_from_metadata_with_and_without_saved_files(
    corpus: PageCorpus, tmp_path: Path
) -> None:
    saved = LateInteractionPageRetriever.from_files(
        [corpus.pdf], encoder=corpus.encoder, dpi=DPI, image_dir=tmp_path, k=10
    )
    unsaved = LateInteractionPageRetriever(index=_index_of(corpus), k=10)
    originals = {p.id: p.image for p in corpus.pages}
    for doc in saved.invoke(QUERY):
        assert Path(doc.metadata["image_path"]).parent == tmp_path
        assert same_pixels(saved.page_image(doc), originals[str(doc.id)])
    for doc in unsaved.invoke(QUERY):
        if doc.metadata["kind"] == "pdf":
            assert doc.metadata["image_path"] is None  # rendered again from source and page
        assert same_pixels(unsaved.page_image(doc), originals[str(doc.id)])


def test_filters_restrict_the_search_as_in_the_text_retrievers(page_index: LateIndex) -> None:
    retriever = LateInteractionPageRetriever(index=page_index, k=10, filter={"kind": "image"})
    assert [d.metadata["kind"] for d in retriever.invoke(QUERY)] == ["image"]
    docs = retriever.invoke(QUERY, filter={"page": {"$lte": 2}, "kind": "pdf"})
    assert sorted(d.metadata["page"] for d in docs) == [1, 2]
    assert len(retriever.invoke(QUERY, filter={})) == len(page_index)


def test_adding_pages_again_encodes_nothing_and_updates_are_searchable(
    corpus: PageCorpus, page_index: LateIndex
) -> None:
    assert len(page_index) == len(corpus.pages)  # every page was encoded once, by the index
    retriever = LateInteractionPageRetriever.from_pages(corpus.pages[:2], corpus.encoder, k=10)
    before = corpus.encoder.encode_stats()
    assert retriever.add_files([corpus.png], dpi=DPI) == [f"{corpus.png}:page_1"]
    retriever.add_pages(corpus.pages)  # all of them were encoded by the module's index
    assert (corpus.encoder.encode_stats() - before).documents == 0
    assert len(retriever.index) == len(corpus.pages)
    assert retriever.delete([f"{corpus.png}:page_1"]) == 1
    assert f"{corpus.png}:page_1" not in {d.id for d in retriever.invoke(QUERY)}
    assert [d.id for d in retriever.get_by_ids([corpus.pages[0].id])] == [corpus.pages[0].id]


def test_the_hybrid_retriever_searches_pages_by_text_layer_and_image(
    page_index: LateIndex, corpus: PageCorpus
) -> None:
    retriever = LateInteractionHybridRetriever.from_index(
        page_index, k=len(corpus.pages), candidates_from="both"
    )
    docs = {d.id: d for d in retriever.invoke("train timetable for monday")}
    text_hit = docs[f"{corpus.pdf}:page_3"]
    assert text_hit.metadata["bm25_rank"] == 1 and text_hit.metadata["page"] == 3
    scan = docs[f"{corpus.pdf}:page_4"]  # no text layer: found by its image vectors only
    assert scan.metadata["bm25_rank"] is None and scan.metadata["colbert_rank"] is not None
    assert same_pixels(LateInteractionPageRetriever.page_image(scan), corpus.pages[3].image)


def test_ainvoke_equals_invoke(page_index: LateIndex) -> None:
    retriever = LateInteractionPageRetriever(index=page_index, k=3)
    async_docs = asyncio.run(retriever.ainvoke(QUERY))
    assert [(d.id, d.metadata) for d in async_docs] == [
        (d.id, d.metadata) for d in retriever.invoke(QUERY)
    ]


def test_text_documents_and_text_encoders_are_refused(corpus: PageCorpus) -> None:
    with pytest.raises(TypeError, match="from_files"):
        LateInteractionPageRetriever.from_texts(["a text"])
    with pytest.raises(TypeError, match="from_files"):
        LateInteractionPageRetriever.from_documents([Document("a text")])
    with pytest.raises(ValidationError, match="PageEncoder"):
        LateInteractionPageRetriever(index=LateIndex(FakeEncoder()))
    with pytest.raises(TypeError, match="PageEncoder"):
        LateInteractionPageRetriever.from_pages(corpus.pages, FakeEncoder())
    with pytest.raises(ValueError, match="model="):
        LateInteractionPageRetriever.from_pages(corpus.pages)
    retriever = LateInteractionPageRetriever.from_pages(corpus.pages[:1], corpus.encoder)
    with pytest.raises(TypeError, match="add_pages"):
        retriever.add_documents([Document("a text")])


def test_from_files_loads_the_model_with_its_cache(
    corpus: PageCorpus, tiny_page_encoder_path: Path, tmp_path: Path
) -> None:
    retriever = LateInteractionPageRetriever.from_files(
        corpus.png, model=tiny_page_encoder_path, cache_dir=tmp_path / "pv", k=1
    )
    cache = retriever.encoder.cache
    assert isinstance(cache, MultivectorCache) and cache.directory == tmp_path / "pv"
    assert cache.stats().items == 1
    [doc] = retriever.invoke(QUERY)
    assert doc.id == f"{corpus.png}:page_1" and doc.metadata["image_path"] == str(corpus.png)


def _index_of(corpus: PageCorpus) -> LateIndex:
    index = LateIndex(corpus.encoder)
    index.add_pages(load_pages([corpus.pdf, corpus.png], dpi=DPI))
    return index
