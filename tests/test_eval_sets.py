"""The shipped labelled sets, and the hybrid defaults measured on them.

The defaults (both stages nominate, English stemming, 64-token zero-shot
queries, adaptive fusion) must rank at least as well as those before the first
hybrid change (BM25 candidates only, no stemming, 32-token queries, ``rerank``)
by nDCG@10 and find more by Recall@100, on both sets.
``benchmarks/eval_hybrid.py`` prints the full table.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import load_quietly

from latecore import Encoder, HybridSearcher, evaluate
from latecore.evaluate import EVAL_SETS, load_eval_set


@pytest.mark.parametrize("name", list(EVAL_SETS))
def test_labelled_sets_are_complete(name: str) -> None:
    corpus, queries, qrels = load_eval_set(name)
    assert set(qrels) == set(queries)
    for qid, grades in qrels.items():
        assert set(grades) <= set(corpus), qid
        assert 2 in grades.values(), f"{qid} has no answer graded 2"
        assert set(grades.values()) <= {0, 1, 2}  # 0: judged not relevant
    if name == "ops":
        assert len(corpus) >= 200 and len(queries) >= 40


def test_an_unknown_set_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown labelled set"):
        load_eval_set("trec-covid")


@pytest.fixture(scope="module")
def old_encoder(minilm_path: Path) -> Encoder:
    return load_quietly(minilm_path, query_length=32)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(EVAL_SETS))
def test_new_hybrid_defaults_beat_the_old_ones(
    name: str, minilm_encoder: Encoder, old_encoder: Encoder
) -> None:
    corpus, queries, qrels = load_eval_set(name)
    ids, texts = list(corpus), list(corpus.values())
    assert minilm_encoder.describe()["query_length"] == 64
    new = HybridSearcher.from_texts(texts, minilm_encoder, ids=ids)
    old = HybridSearcher.from_texts(
        texts, old_encoder, ids=ids, candidates_from="bm25", stemmer=None, fusion="rerank"
    )
    scores = {
        label: evaluate(
            lambda q, s=searcher: [h.id for h in s.search(q, k=100)], queries, qrels, k=100
        ).metrics
        for label, searcher in (("new", new), ("old", old))
    }
    assert scores["new"]["nDCG@10"] >= scores["old"]["nDCG@10"], scores
    assert scores["new"]["Recall@100"] > scores["old"]["Recall@100"], scores
