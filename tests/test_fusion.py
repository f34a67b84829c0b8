"""Adaptive fusion and z-score normalisation: arithmetic by hand, the BM25 bound, the searcher."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_hybrid import CORPUS

from latecore import HybridSearcher
from latecore.fusion import ADAPTIVE_PIVOT, ADAPTIVE_POWER, adaptive_weight, fuse
from latecore.lexical import LexicalStage, idf
from latecore.testing import FakeEncoder

nan = float("nan")


def zscores(values: list[float]) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    return (array - array.mean()) / array.std()


def test_adaptive_scores_equal_hand_computation() -> None:
    bm25, colbert, bound = [4.0, 3.0, 2.0, 1.0], [1.0, 4.0, 3.0, 2.0], 10.0
    fused = fuse(bm25, colbert, "adaptive", bm25_bound=bound)
    weight = (4.0 / bound / ADAPTIVE_PIVOT) ** ADAPTIVE_POWER
    expected = zscores(colbert) + weight * zscores(bm25)
    assert fused.scores.tolist() == pytest.approx(expected.tolist(), abs=1e-12)
    assert fused.order.tolist() == list(np.lexsort((np.arange(4), -expected)))


def test_the_bm25_weight_follows_its_coverage_of_the_query() -> None:
    bm25, colbert = [4.0, 3.0, 2.0, 1.0], [1.0, 4.0, 3.0, 2.0]
    # BM25's best match covers 80% of a bound of 5, 4% of a bound of 100.
    confident = fuse(bm25, colbert, "adaptive", bm25_bound=5.0)
    unsure = fuse(bm25, colbert, "adaptive", bm25_bound=100.0)
    assert confident.order[0] == 0  # BM25's first
    assert unsure.order.tolist() == [1, 2, 3, 0]  # MaxSim's order
    assert adaptive_weight(4.0, 10.0) == pytest.approx((0.4 / 0.3) ** 1.5)
    assert adaptive_weight(3.0, 10.0) == pytest.approx(1.0)  # the pivot: equal weights
    assert adaptive_weight(0.0, 10.0) == adaptive_weight(2.0, 0.0) == 0.0
    assert adaptive_weight(20.0, 10.0) == pytest.approx((1 / 0.3) ** 1.5)  # clipped at 1


def test_adaptive_counts_a_missing_bm25_score_as_the_lowest_and_needs_a_bound() -> None:
    fused = fuse([4.0, 2.0, nan], [1.0, 3.0, 5.0], "adaptive", bm25_bound=8.0)
    present = zscores([4.0, 2.0])
    bm25_z = [present[0], present[1], present.min()]
    weight = (0.5 / ADAPTIVE_PIVOT) ** ADAPTIVE_POWER
    expected = zscores([1.0, 3.0, 5.0]) + weight * np.asarray(bm25_z)
    assert fused.scores.tolist() == pytest.approx(expected.tolist(), abs=1e-12)
    only_maxsim = fuse([nan, nan], [1.0, 2.0], "adaptive", bm25_bound=5.0)
    assert only_maxsim.order.tolist() == [1, 0]
    with pytest.raises(ValueError, match="bm25_bound"):
        fuse([1.0], [1.0], "adaptive")


def test_linear_zscore_equals_hand_computation_and_equal_scores_give_zero() -> None:
    bm25, colbert = [4.0, 3.0, 2.0, 1.0], [1.0, 4.0, 3.0, 2.0]
    fused = fuse(bm25, colbert, "linear", alpha=0.25)
    expected = 0.25 * zscores(colbert) + 0.75 * zscores(bm25)
    assert fused.scores.tolist() == pytest.approx(expected.tolist(), abs=1e-12)
    flat = fuse([2.0, 2.0], [3.0, 1.0], "linear", alpha=0.5)
    assert flat.scores.tolist() == pytest.approx([0.5, -0.5])
    # Min-max keeps its own rule: a lone BM25 nomination scales to 1, a missing score to 0.
    lone = fuse([3.0, nan], [1.0, 2.0], "linear", alpha=0.25, normalization="minmax")
    assert lone.scores.tolist() == pytest.approx([0.75, 0.25])
    with pytest.raises(ValueError, match="normalization must be one of"):
        fuse(bm25, colbert, "linear", normalization="softmax")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="normalization must be one of"):
        HybridSearcher(FakeEncoder(), normalization="l2")  # type: ignore[arg-type]


words = st.sampled_from(["cat", "dog", "sun", "moon", "rain", "snow", "tree", "rock"])


@settings(max_examples=60, deadline=None)
@given(
    documents=st.lists(st.lists(words, min_size=1, max_size=12), min_size=1, max_size=12),
    query=st.lists(st.sampled_from(["cat", "dog", "sun", "zebra", "moon"]), min_size=1, max_size=6),
)
def test_no_document_reaches_the_query_bound(documents: list[list[str]], query: list[str]) -> None:
    stage = LexicalStage(None)
    snapshot = stage.build(
        [str(i) for i in range(len(documents))], [" ".join(d) for d in documents]
    )
    tokens = stage.tokenize([" ".join(query)])[0]
    _, scores = snapshot.top(tokens, len(documents))
    bound = snapshot.bound(tokens)
    assert bound >= len(tokens) * idf(len(documents), len(documents))
    assert all(score < bound for score in scores.tolist())
    if "zebra" in tokens:  # a term no document holds weighs the IDF of a frequency of 0
        without = [t for t in tokens if t != "zebra"]
        unseen = tokens.count("zebra") * idf(0, len(documents))
        assert bound == pytest.approx(snapshot.bound(without) + unseen)


def test_the_searcher_fuses_with_the_query_bound() -> None:
    searcher = HybridSearcher.from_texts(list(CORPUS.values()), FakeEncoder(), ids=list(CORPUS))
    assert searcher.fusion == "adaptive"
    query = "capital city of france"
    hits = searcher.search(query, k=100)  # every candidate
    tokens = searcher.lexical.tokenize([query])[0]
    with searcher.index.view() as view:
        bound = searcher._current(view).bound(tokens)
    bm25 = np.array([nan if h.bm25_score is None else h.bm25_score for h in hits])
    colbert = np.array([h.colbert_score for h in hits])
    reference = fuse(bm25, colbert, "adaptive", bm25_bound=bound)
    assert [h.score for h in hits] == pytest.approx(reference.scores.tolist(), abs=1e-9)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert math.isfinite(bound) and bound > max(h.bm25_score or 0.0 for h in hits)
