"""Hybrid search works on store positions: every candidate is scored by exact MaxSim once,
and with engine-held vectors the engine is asked for vectors once per query batch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from _engine_support import word_corpus

from latecore import HybridSearcher, LateIndex
from latecore.backends.qdrant import QdrantBackend
from latecore.index_view import IndexView
from latecore.store import MemoryStore
from latecore.testing import FakeEncoder

QUERIES = ["w1 w2 w3", "u7x4 w10", "w250 w251 w40 w7"]


def _stage_nominations(searcher: HybridSearcher, queries: Sequence[str], n: int) -> list[set[str]]:
    """What the semantic stage nominates for each query (its own top ``n``)."""
    return [{h.id for h in hits} for hits in searcher.index.search_batch(queries, k=n)]


def test_hybrid_scores_each_candidate_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The semantic stage's nominations come with their exact scores; only the candidates
    BM25 alone nominated have their vectors read again, once each."""
    texts, ids = word_corpus(120, seed=7)
    searcher = HybridSearcher.from_texts(texts, FakeEncoder(), ids=ids, candidates=10)
    nominated = _stage_nominations(searcher, QUERIES, 10)
    expected = searcher.search_batch(QUERIES, k=20, candidates_from="both")

    read: list[list[int]] = []
    scored: list[list[list[int]]] = []
    original_vectors, original_score = MemoryStore.vectors, IndexView.score

    def spy_vectors(self: MemoryStore, positions: Any) -> list[np.ndarray]:
        read.append(np.asarray(positions).tolist())
        return original_vectors(self, positions)

    def spy_score(self: IndexView, queries: Any, positions: Any) -> list[np.ndarray]:
        scored.append([np.asarray(p).tolist() for p in positions])
        return original_score(self, queries, positions)

    monkeypatch.setattr(MemoryStore, "vectors", spy_vectors)
    monkeypatch.setattr(IndexView, "score", spy_score)
    got = searcher.search_batch(QUERIES, k=20, candidates_from="both")
    assert got == expected
    # One read of vectors for the whole batch, each position once.
    assert len(read) == 1 and len(read[0]) == len(set(read[0]))
    (per_query,) = scored
    for hits, mine, later in zip(got, nominated, per_query, strict=True):
        later_ids = [searcher.index.ids[p] for p in later]
        assert len(later_ids) == len(set(later_ids))
        # Scored after the stages: exactly the candidates the semantic stage did not nominate.
        assert not set(later_ids) & mine
        assert {h.id for h in hits if h.colbert_rank is None} <= set(later_ids)
        assert {h.id for h in hits if h.colbert_rank is not None} == mine & {h.id for h in hits}
    # Every score is still exact MaxSim.
    for query, hits in zip(QUERIES, got, strict=True):
        exact = searcher.index.score(query, [h.id for h in hits])
        assert [h.colbert_score for h in hits] == pytest.approx(exact.tolist(), abs=1e-5)


@pytest.mark.engines  # qdrant-edge
def test_engine_held_hybrid_fetches_vectors_once_per_query(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``vectors="engine"``: the semantic stage gets its candidates' vectors with the engine's
    answer; one fetch per query batch brings the BM25-only ones; results equal local ones."""
    texts, ids = word_corpus(80, seed=8)
    encoder = FakeEncoder()
    local = HybridSearcher.from_texts(texts, encoder, ids=ids, candidates=8)
    expected = local.search_batch(QUERIES, k=12, candidates_from="both")

    index = LateIndex(encoder, backend="qdrant", vectors="engine")
    index.add(texts, ids=ids)
    held = HybridSearcher.from_index(index, candidates=8)
    fetched: list[list[str]] = []
    original = QdrantBackend.fetch_vectors

    def spy(self: QdrantBackend, wanted: Sequence[str]) -> list[np.ndarray]:
        fetched.append(list(wanted))
        return original(self, wanted)

    monkeypatch.setattr(QdrantBackend, "fetch_vectors", spy)
    with index:
        for query, want in zip(QUERIES, expected, strict=True):
            fetched.clear()
            (got,) = held.search_batch([query], k=12, candidates_from="both")
            assert [h.id for h in got] == [h.id for h in want]
            assert [h.colbert_score for h in got] == pytest.approx(
                [h.colbert_score for h in want], abs=1e-3
            )
            assert len(fetched) <= 1
            semantic = {h.id for h in got if h.colbert_rank is not None}
            assert not semantic & set(fetched[0] if fetched else [])
        fetched.clear()
        held.search_batch(QUERIES, k=12, candidates_from="both")
        assert len(fetched) == 1  # one fetch for the whole batch
