"""Both stages nominate candidates: what each hit says about the stages, and the fusions."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
from test_hybrid import CORPUS  # six documents, one of them ("stop") made of stopwords

from latecore import HybridSearcher, LateIndex
from latecore.fusion import fuse
from latecore.hybrid import AUTO_BOTH_LIMIT
from latecore.testing import FakeEncoder

# "stop" shares only stopwords with the query: BM25 cannot find it, MaxSim (the fake
# encoder matches "the", "of" ... exactly) ranks it first.
QUERY = "it is that the city is the capital of it"


def _searcher(**kwargs: object) -> HybridSearcher:
    return HybridSearcher.from_texts(
        list(CORPUS.values()), FakeEncoder(), ids=list(CORPUS), **kwargs
    )


def test_a_document_without_a_shared_term_is_found_by_both_and_never_by_bm25() -> None:
    assert LateIndex.search(_searcher().index, QUERY, k=1)[0].id == "stop"
    for fusion in ("rerank", "rrf", "linear"):
        both = _searcher(candidates_from="both").search(QUERY, k=10, fusion=fusion)
        bm25 = _searcher(candidates_from="bm25").search(QUERY, k=10, fusion=fusion)
        assert "stop" in {h.id for h in both}
        assert "stop" not in {h.id for h in bm25}
        for n in (1, 2, 3, 100):
            hits = _searcher(candidates_from="bm25").search(QUERY, k=10, candidates=n)
            assert "stop" not in {h.id for h in hits}


def test_stage_fields_are_none_exactly_where_a_stage_did_not_nominate() -> None:
    searcher = _searcher(candidates_from="both", candidates=2)
    with searcher.index.view() as view:
        positions, _ = searcher._current(view).top(searcher.lexical.tokenize([QUERY])[0], 2)
        bm25_ids = [view.ids[p] for p in positions]
    maxsim_ids = [h.id for h in searcher.index.search(QUERY, k=2)]
    hits = searcher.search(QUERY, k=10, fusion="rrf")
    assert {h.id for h in hits} == set(bm25_ids) | set(maxsim_ids)
    assert set(bm25_ids) != set(maxsim_ids)  # the case is not trivial
    for hit in hits:
        assert (hit.bm25_rank is None) == (hit.id not in bm25_ids), hit
        assert (hit.bm25_score is None) == (hit.id not in bm25_ids), hit
        assert (hit.colbert_rank is None) == (hit.id not in maxsim_ids), hit
        assert math.isfinite(hit.colbert_score)
        if hit.bm25_rank is not None:
            assert hit.bm25_rank == bm25_ids.index(hit.id) + 1
        if hit.colbert_rank is not None:
            assert hit.colbert_rank == maxsim_ids.index(hit.id) + 1
        expected = sum(1 / (60 + r) for r in (hit.bm25_rank, hit.colbert_rank) if r is not None)
        assert hit.score == pytest.approx(expected)
    assert {h.id for h in hits if h.bm25_rank is None} == {"stop"}


def test_rrf_with_missing_stages_by_hand() -> None:
    nan = float("nan")
    # candidate 0: BM25 only (rank 2); 1: both (BM25 1, MaxSim 2); 2: MaxSim only (rank 1).
    fused = fuse(
        [2.0, 5.0, nan], [1.0, 3.0, 4.0], "rrf", rrf_k=10, colbert_nominated=[False, True, True]
    )
    assert fused.bm25_ranks.tolist() == [2, 1, 0]
    assert fused.colbert_ranks.tolist() == [0, 2, 1]
    assert fused.scores.tolist() == pytest.approx([1 / 12, 1 / 11 + 1 / 12, 1 / 11])
    assert fused.order.tolist() == [1, 2, 0]


def test_linear_with_a_missing_bm25_score_counts_it_as_the_minimum() -> None:
    nan = float("nan")
    fused = fuse([4.0, 2.0, nan], [1.0, 3.0, 5.0], "linear", alpha=0.5, normalization="minmax")
    # bm25 present: 4 -> 1, 2 -> 0; missing -> 0. colbert: 1 -> 0, 3 -> 0.5, 5 -> 1.
    assert fused.scores.tolist() == pytest.approx([0.5, 0.25, 0.5])
    # 0 and 2 tie at 0.5: the BM25-ranked candidate comes first, the unranked one last.
    assert fused.order.tolist() == [0, 2, 1]
    only_maxsim = fuse([nan, nan], [1.0, 2.0], "linear", alpha=0.5, normalization="minmax")
    assert only_maxsim.scores.tolist() == pytest.approx([0.0, 0.5])


def test_rerank_orders_every_candidate_by_maxsim() -> None:
    nan = float("nan")
    fused = fuse([nan, 1.0, 2.0], [3.0, 1.0, 2.0], "rerank", colbert_nominated=[True, False, True])
    assert fused.order.tolist() == [0, 2, 1]
    assert fused.scores.tolist() == [3.0, 1.0, 2.0]


def test_bm25_mode_is_todays_contract() -> None:
    """With BM25 alone, every hit has every stage field and MaxSim ranks all candidates."""
    hits = _searcher(candidates_from="bm25").search("capital city of france", k=10)
    assert hits and all(h.bm25_rank is not None and h.colbert_rank is not None for h in hits)
    assert sorted(h.colbert_rank for h in hits) == list(range(1, len(hits) + 1))


def test_auto_uses_both_stages_up_to_the_limit_on_exact() -> None:
    searcher = _searcher()
    assert searcher.candidates_from == "auto"
    assert len(searcher) <= AUTO_BOTH_LIMIT and searcher.uses_both_stages()
    assert not searcher.uses_both_stages("bm25") and searcher.uses_both_stages("both")
    assert "stop" in {h.id for h in searcher.search(QUERY, k=10)}
    with pytest.raises(ValueError, match="candidates_from must be"):
        searcher.search(QUERY, candidates_from="semantic")  # type: ignore[arg-type]


def test_both_stages_cost_one_query_encode() -> None:
    encoder = FakeEncoder()
    searcher = HybridSearcher.from_texts(list(CORPUS.values()), encoder, candidates_from="both")
    before = encoder.calls
    searcher.search_batch([QUERY, "cats", "france"], k=3)
    assert encoder.calls == before + 1


def test_scores_are_exact_maxsim_in_both_modes() -> None:
    searcher = _searcher(candidates_from="both")
    hits = searcher.search(QUERY, k=10)
    reference = searcher.index.score(QUERY, [h.id for h in hits])
    np.testing.assert_allclose([h.colbert_score for h in hits], reference, rtol=1e-6)


def test_without_pystemmer_bm25_warns_once_and_does_not_stem(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import warnings

    from latecore import LatecoreWarning, lexical

    monkeypatch.setitem(sys.modules, "Stemmer", None)  # import fails
    monkeypatch.setattr(lexical, "_warned_missing_stemmer", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first, second = lexical.LexicalStage(), lexical.LexicalStage()
    assert len([w for w in caught if issubclass(w.category, LatecoreWarning)]) == 1
    assert first.stemmer is None and second.tokenize(["running"]) == [["running"]]
    with pytest.raises(ModuleNotFoundError, match="PyStemmer"):
        lexical.LexicalStage(stemmer="english")


def test_language_sets_stopwords_and_stemmer_together() -> None:
    german = HybridSearcher(FakeEncoder(), language="german")
    assert (german.stopwords, german.stemmer) == ("de", "german")
    assert german.lexical.tokenize(["die Häuser und das Haus"]) == [["haus", "haus"]]
    plain = HybridSearcher(FakeEncoder(), language=None)
    assert (plain.stopwords, plain.stemmer) == (None, None)
    assert HybridSearcher(FakeEncoder(), stemmer=None).stopwords == "en"
