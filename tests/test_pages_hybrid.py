"""Hybrid search over pages: BM25 on the text layers, MaxSim on the page vectors.

On the generated 240-page corpus (``tests/_pages_support.py``), encoded once per
session by the tiny ColQwen2: a page without a text layer (a scan, an image
file) is found by its image vectors alone, and a text-layer hit carries BM25's
score and rank beside MaxSim's.

The tiny model is randomly initialised, so which query "matches" a scan's image
vectors is not a question of meaning: the scan test looks, honestly, for a query
(the title words drawn on some image-only page) whose exact MaxSim top page is
image-only, and then checks that the hybrid searcher returns that page for it,
although BM25 cannot see the page and nominates text pages for the same words.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from _pages_support import PageCorpus

from latecore import HybridSearcher, LateIndex

pytestmark = pytest.mark.slow  # the corpus is drawn and encoded once per session


@pytest.fixture(scope="module")
def page_searcher(corpus_page_encoder: Any, page_corpus: PageCorpus) -> Iterator[HybridSearcher]:
    index = LateIndex(corpus_page_encoder)
    index.add_pages(page_corpus.pages)
    searcher = HybridSearcher.from_index(index)
    yield searcher
    searcher.close()


def test_the_index_holds_every_page_with_its_text_layer_and_metadata(
    page_searcher: HybridSearcher, page_corpus: PageCorpus
) -> None:
    index = page_searcher.index
    assert index.ids == [p.id for p in page_corpus.pages]
    stored = index.get(index.ids)
    for page, hit, spec in zip(page_corpus.pages, stored, page_corpus.specs, strict=True):
        assert hit.id == spec.id and hit.text == page.text
        assert hit.metadata["source"] == spec.source and hit.metadata["page"] == spec.page
        if spec.has_text_layer:
            assert set(spec.topic) <= set(hit.text.split()), (spec, hit.text)
        else:
            assert hit.text.strip() == ""


def scan_and_its_query(searcher: HybridSearcher, corpus: PageCorpus) -> tuple[str, str]:
    """An image-only page and a query whose exact MaxSim top page it is (searched for)."""
    no_text = {p.id for p in corpus.without_text}
    candidates = [" ".join(s.topic) for s in corpus.specs if s.id in no_text]
    candidates += [" ".join(s.words[3:6]) for s in corpus.specs if s.id in no_text]
    for query, hits in zip(candidates, searcher.index.search_batch(candidates, k=1), strict=True):
        if hits[0].id in no_text:
            return hits[0].id, query
    raise AssertionError("no query of the image-only pages' words has one as MaxSim's top page")


def test_a_page_without_text_is_found_by_its_image_vectors(
    page_searcher: HybridSearcher, page_corpus: PageCorpus
) -> None:
    page_id, query = scan_and_its_query(page_searcher, page_corpus)
    hits = page_searcher.search(query, k=10, candidates_from="both")
    by_id = {h.id: h for h in hits}
    assert page_id in by_id, (query, [h.id for h in hits])
    scan = by_id[page_id]
    assert scan.text == "" and scan.bm25_score is None and scan.bm25_rank is None
    assert scan.colbert_rank == 1
    assert scan.colbert_score == pytest.approx(
        float(page_searcher.index.score(query, [page_id])[0]), abs=1e-5
    )
    # BM25 was in play: it nominated text pages holding the query's words.
    assert any(h.bm25_score is not None for h in hits)
    # BM25 alone can never return it.
    assert page_id not in {h.id for h in page_searcher.search(query, candidates_from="bm25")}


def test_a_text_layer_hit_carries_bm25_fields(
    page_searcher: HybridSearcher, page_corpus: PageCorpus
) -> None:
    texts = [s for s in page_corpus.specs if s.kind == "text"]
    for spec in texts[:: max(1, len(texts) // 6)]:
        query = " ".join(spec.topic)
        hits = page_searcher.search(query, k=10)
        by_id = {h.id: h for h in hits}
        assert spec.id in by_id, (query, [h.id for h in hits])
        hit = by_id[spec.id]
        assert hit.bm25_score is not None and hit.bm25_score > 0
        assert hit.bm25_rank is not None and hit.bm25_rank <= 10
        assert set(spec.topic) <= set(hit.text.split())
        assert hit.colbert_score == pytest.approx(
            float(page_searcher.index.score(query, [spec.id])[0]), abs=1e-5
        )
        assert hit.metadata["kind"] == "pdf" and hit.metadata["page"] == spec.page
        assert set(hit.stage_scores) >= {"bm25_score", "bm25_rank", "colbert_score"}
        assert np.isfinite(hit.score)
