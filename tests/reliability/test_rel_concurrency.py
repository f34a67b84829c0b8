"""Concurrent async retrievals and encodes on the real model path equal a sequential run."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from latecore import Encoder, HybridSearcher, LateIndex, MultivectorCache, Reranker
from latecore.results import RerankResult, SearchHit

WORDS = [
    "paris",
    "france",
    "berlin",
    "germany",
    "river",
    "city",
    "capital",
    "music",
    "piano",
    "bread",
    "cheese",
    "wine",
]
# Longer than the tiny model's 32-token query length, so a query encode that leaked its
# length limit into a concurrent document encode would visibly truncate the document.
DOCUMENTS = [
    " ".join(WORDS[(i + j) % len(WORDS)] for j in range(40 + 9 * i)) + f" number {i}"
    for i in range(12)
]
QUERIES = [f"which {WORDS[i % 12]} is near the {WORDS[(5 * i) % 12]}" for i in range(32)]


def _assert_same_ranking(
    got: list[RerankResult] | list[SearchHit], want: list[RerankResult] | list[SearchHit]
) -> None:
    def order(results: list[RerankResult] | list[SearchHit]) -> list[int | str]:
        return [r.index if isinstance(r, RerankResult) else r.id for r in results]

    assert order(got) == order(want)
    np.testing.assert_allclose([r.score for r in got], [r.score for r in want], atol=1e-5)


@pytest.mark.timeout(120)
def test_32_concurrent_retrievals_and_encodes_equal_a_sequential_run(
    tiny_encoder: Encoder, tmp_path: Path
) -> None:
    """16 ``Reranker.arerank`` + 16 ``LateIndex.search`` (``asyncio.to_thread``) run at once
    with 8 document encodes on a thread pool, each side with its own fresh cache.

    Guarantees: every ranking equals the sequential one (same order, scores within
    1e-5) and every document keeps its token count (no truncation leaks between
    concurrent query and document encodes).
    """
    sequential = tiny_encoder.with_cache(MultivectorCache(tmp_path / "sequential"))
    concurrent = tiny_encoder.with_cache(MultivectorCache(tmp_path / "concurrent"))
    want_docs = sequential.encode_documents(DOCUMENTS)
    want_rerank = [Reranker(sequential).rerank(q, DOCUMENTS) for q in QUERIES[:16]]
    seq_index = LateIndex(sequential)
    seq_index.add(DOCUMENTS, ids=[str(i) for i in range(len(DOCUMENTS))])
    want_search = [seq_index.search(q, k=5) for q in QUERIES[16:]]

    index = LateIndex(concurrent)  # filled while the other tasks run
    reranker = Reranker(concurrent)

    async def run_all() -> list[Any]:
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(max_workers=8) as pool:
            encodes = [
                loop.run_in_executor(pool, concurrent.encode_documents, DOCUMENTS[i % 2 :: 2])
                for i in range(8)
            ]
            reranks = [asyncio.ensure_future(reranker.arerank(q, DOCUMENTS)) for q in QUERIES[:16]]
            # the index is filled while the encodes and reranks are running
            await asyncio.to_thread(index.add, DOCUMENTS, [str(i) for i in range(len(DOCUMENTS))])
            searches = [asyncio.to_thread(index.search, q, 5) for q in QUERIES[16:]]
            return list(await asyncio.gather(*encodes, *reranks, *searches))

    results = asyncio.run(run_all())
    got_encodes: list[list[np.ndarray]] = results[:8]
    got_rerank: list[list[RerankResult]] = results[8:24]
    got_search: list[list[SearchHit]] = results[24:]
    for i, arrays in enumerate(got_encodes):
        expected = want_docs[i % 2 :: 2]
        assert [a.shape for a in arrays] == [a.shape for a in expected]
        for a, b in zip(arrays, expected, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-5)
    for ranking, want_ranking in zip(got_rerank, want_rerank, strict=True):
        _assert_same_ranking(ranking, want_ranking)
    for hits, want_hits in zip(got_search, want_search, strict=True):
        _assert_same_ranking(hits, want_hits)


@pytest.mark.timeout(60)
def test_sync_api_works_inside_a_running_event_loop(tiny_encoder: Encoder) -> None:
    """As in a notebook cell: sync ``rerank``/``search`` called inside ``async def`` run by
    ``asyncio.run`` work and return what they return outside a loop."""
    reranker = Reranker(tiny_encoder)
    index = LateIndex(tiny_encoder)
    index.add(DOCUMENTS, ids=[str(i) for i in range(len(DOCUMENTS))])
    searcher = HybridSearcher.from_index(index)
    query = QUERIES[0]

    def everything() -> tuple[list, list, list]:
        return reranker.rerank(query, DOCUMENTS), index.search(query, 3), searcher.search(query, 3)

    async def notebook_cell() -> tuple[list, list, list]:
        return everything()

    inside = asyncio.run(notebook_cell())
    outside = everything()
    for got, want in zip(inside, outside, strict=True):
        assert got and [r.score for r in got] == [r.score for r in want]
