"""Reranker: ordering, ties, top_k, batching, async, cache reuse."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from latecore import MultivectorCache, Reranker
from latecore.maxsim import maxsim
from latecore.testing import FakeEncoder

DOCS = [
    "the stock market fell sharply today",
    "cats purr when they are happy",
    "the market for cats is growing",
    "dogs bark at the mailman",
]


def test_ranks_by_descending_maxsim_with_exact_scores(fake_encoder: FakeEncoder) -> None:
    results = Reranker(fake_encoder).rerank("why did the stock market fall", DOCS)
    query = fake_encoder.encode_queries(["why did the stock market fall"])[0]
    expected = maxsim(query, fake_encoder.encode_documents(DOCS))
    assert [r.index for r in results] == list(np.argsort(-expected, kind="stable"))
    assert [r.score for r in results] == pytest.approx(sorted(expected, reverse=True), abs=1e-6)
    assert results[0].text == DOCS[0]


def test_ties_keep_input_order_and_top_k_cuts(fake_encoder: FakeEncoder) -> None:
    results = Reranker(fake_encoder).rerank("purr", ["same text", "same text", "cats purr"])
    assert [r.index for r in results] == [2, 0, 1]
    assert len(Reranker(fake_encoder).rerank("purr", DOCS, top_k=2)) == 2
    assert Reranker(fake_encoder).rerank("purr", DOCS, top_k=0) == []
    assert Reranker(fake_encoder).rerank("purr", []) == []
    with pytest.raises(ValueError, match="top_k"):
        Reranker(fake_encoder).rerank("purr", DOCS, top_k=-1)


def test_batch_equals_single_calls(fake_encoder: FakeEncoder) -> None:
    reranker = Reranker(fake_encoder)
    queries = ["stock market", "happy cats", "mailman"]
    batch = reranker.rerank_batch(queries, [DOCS, DOCS[:2], []])
    assert batch[0] == reranker.rerank(queries[0], DOCS)
    assert batch[1] == reranker.rerank(queries[1], DOCS[:2])
    assert batch[2] == []
    with pytest.raises(ValueError, match="candidate lists"):
        reranker.rerank_batch(queries, [DOCS])


def test_async_equals_sync_under_concurrency(fake_encoder: FakeEncoder) -> None:
    reranker = Reranker(fake_encoder)
    queries = [f"market {i} cats" for i in range(10)]

    async def run() -> list:
        return await asyncio.gather(*(reranker.arerank(q, DOCS, top_k=3) for q in queries))

    assert asyncio.run(run()) == [reranker.rerank(q, DOCS, top_k=3) for q in queries]


def test_candidates_are_encoded_once_across_queries(cache: MultivectorCache) -> None:
    encoder = FakeEncoder(cache=cache)
    reranker = Reranker(encoder)
    candidates = [f"passage number {i} about topic {i % 5}" for i in range(50)]
    for q in range(10):
        reranker.rerank(f"topic {q}", candidates, top_k=5)
    assert sorted(encoder.encoded) == sorted(candidates)
