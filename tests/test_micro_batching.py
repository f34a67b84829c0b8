"""Micro-batching: concurrent encodes share one model pass and give the sequential results.

Coalescing is made certain without timing: the test holds the encoder's model
lock, so the first caller's pass blocks inside the model while the others queue
behind it; once the queue holds them all, the lock is released.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
from conftest import load_quietly

from latecore import Encoder, LateIndex, MultivectorCache, Reranker
from latecore.base_encoder import BaseEncoder
from latecore.batching import BatchStats, MicroBatcher
from latecore.testing import FakeEncoder

T = TypeVar("T")
CLIENTS = 64


def _passages(n: int) -> list[str]:
    corpus = files("latecore").joinpath("data/sample_corpus.jsonl").read_text("utf-8")
    return [json.loads(line)["text"] for line in corpus.splitlines()][:n]


QUERIES = [
    f"{topic} {detail}"
    for topic in ("river", "capital city", "ancient history", "music", "ocean", "mountain", "war")
    for detail in ("facts", "of europe", "and its people", "in the north", "today", "origins")
] + [f"question number {i} about science" for i in range(CLIENTS - 42)]


def _queued(encoder: BaseEncoder) -> int:
    return len(encoder._batcher._queue)


@contextmanager
def model_held(encoder: BaseEncoder, queued: int) -> Iterator[None]:
    """Hold the model while the block starts callers; release once ``queued`` wait behind it."""
    encoder._model_lock.acquire()
    try:
        yield
        while _queued(encoder) < queued:
            time.sleep(0.001)
    finally:
        encoder._model_lock.release()


def concurrently(encoder: BaseEncoder, calls: list[Callable[[], T]]) -> list[T]:
    """Run ``calls`` from one thread each; all but the first queue behind a held model."""
    with ThreadPoolExecutor(len(calls)) as pool:
        with model_held(encoder, queued=len(calls) - 1):
            futures = [pool.submit(call) for call in calls]
        return [f.result() for f in futures]


def concurrently_async(encoder: BaseEncoder, make: Callable[[int], Any], n: int) -> list[Any]:
    """``asyncio.gather`` of ``make(i)`` for ``i < n`` (one worker thread each), batched."""

    async def gather() -> list[Any]:
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(n))
        return list(await asyncio.gather(*(make(i) for i in range(n))))

    with ThreadPoolExecutor(1) as loop_thread, model_held(encoder, queued=n - 1):
        future = loop_thread.submit(asyncio.run, gather())
    return future.result()


def test_a_lone_query_runs_at_once_in_a_pass_of_its_own() -> None:
    encoder = FakeEncoder(dim=8)
    for wait_ms in (0.0, 10_000.0):  # a long wait setting changes nothing for a lone caller
        encoder._batcher.wait_s = wait_ms / 1000
        before = encoder.batch_stats()
        (vectors,) = encoder.encode_queries(["alone"])
        done = encoder.batch_stats() - before
        assert (done.passes, done.requests, done.texts, done.coalesced, done.waits) == (
            1,
            1,
            1,
            0,
            0,
        )
        assert encoder.batch_stats().largest == 1
        np.testing.assert_array_equal(vectors, FakeEncoder(dim=8).encode_queries(["alone"])[0])


def test_queued_calls_share_one_pass_and_get_their_own_vectors() -> None:
    encoder = FakeEncoder(dim=8)
    texts = [[f"query {i}", f"other {i}"] for i in range(10)]
    got = concurrently(encoder, [lambda t=t: encoder.encode_queries(t) for t in texts])
    stats = encoder.batch_stats()
    assert (stats.passes, stats.requests, stats.coalesced, stats.largest) == (2, 10, 1, 9)
    assert encoder.calls == 2
    reference = FakeEncoder(dim=8)
    for t, arrays in zip(texts, got, strict=True):
        for a, b in zip(arrays, reference.encode_queries(t), strict=True):
            np.testing.assert_array_equal(a, b)


def test_max_batch_bounds_a_pass_and_one_turns_coalescing_off() -> None:
    encoder = FakeEncoder(dim=8)
    encoder._batcher.max_batch = 4
    concurrently(encoder, [lambda i=i: encoder.encode_queries([f"q{i}"]) for i in range(11)])
    stats = encoder.batch_stats()
    assert (stats.passes, stats.largest) == (4, 4)  # 1 alone, then 4 + 4 + 2

    off = FakeEncoder(dim=8)
    off._batcher.max_batch = 1
    concurrently(off, [lambda i=i: off.encode_queries([f"q{i}"]) for i in range(5)])
    assert (off.batch_stats().passes, off.batch_stats().coalesced) == (5, 0)


def test_queries_and_documents_are_never_mixed_in_one_pass() -> None:
    encoder = FakeEncoder(dim=8)
    calls: list[Callable[[], object]] = []
    for i in range(6):
        calls.append(lambda i=i: encoder.encode_queries([f"q{i}"]))
        calls.append(lambda i=i: encoder.encode_documents([f"d{i}"]))
    concurrently(encoder, calls)
    assert encoder.batch_stats().passes == 3  # the first alone, then one per role
    assert sorted(encoder.encoded) == [f"d{i}" for i in range(6)]


def test_a_leader_with_company_waits_for_a_full_batch_only_when_asked() -> None:
    encoder = FakeEncoder(dim=8, max_batch=3, batch_wait_ms=60_000)
    with ThreadPoolExecutor(4) as pool:
        with model_held(encoder, queued=2):
            futures = [pool.submit(encoder.encode_queries, [f"q{i}"]) for i in range(3)]
        # Once the first pass ran, the next leader holds the batcher while it waits.
        while encoder.batch_stats().passes < 1 or not encoder._batcher._busy:
            time.sleep(0.001)
        futures.append(pool.submit(encoder.encode_queries, ["late"]))  # fills the batch
        [f.result() for f in futures]
    stats = encoder.batch_stats()
    assert (stats.passes, stats.waits, stats.largest) == (2, 1, 3)


def test_a_failing_text_fails_only_its_own_caller() -> None:
    class Picky(FakeEncoder):
        def _encode(self, texts: list[str], *, is_query: bool) -> list[np.ndarray]:
            if "boom" in texts:
                raise RuntimeError("cannot encode boom")
            return super()._encode(texts, is_query=is_query)

    encoder = Picky(dim=8)

    def call(text: str) -> object:
        try:
            return encoder.encode_queries([text])[0]
        except RuntimeError as error:
            return error

    results = concurrently(encoder, [lambda t=t: call(t) for t in ["first", "a", "boom", "b"]])
    assert isinstance(results[2], RuntimeError)
    assert all(isinstance(r, np.ndarray) for i, r in enumerate(results) if i != 2)
    assert encoder.batch_stats().passes == 2  # the failed coalesced pass is re-run one by one


def test_an_interrupted_pass_leaves_nobody_waiting() -> None:
    batcher = MicroBatcher()

    def interrupted(texts: list[str], is_query: bool) -> list[np.ndarray]:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        batcher.run(["x"], True, interrupted)
    assert not batcher._queue and not batcher._busy
    assert batcher.run(["y"], True, lambda t, q: [np.ones(1)] * len(t))[0].tolist() == [1.0]


def test_an_encode_from_inside_a_pass_runs_directly() -> None:
    class Nested(FakeEncoder):
        def _encode(self, texts: list[str], *, is_query: bool) -> list[np.ndarray]:
            if texts == ["outer"]:
                self.inner = self.encode_queries(["inner"])[0]
            return super()._encode(texts, is_query=is_query)

    encoder = Nested(dim=8)
    encoder.encode_queries(["outer"])  # would wait for itself forever if it queued
    np.testing.assert_array_equal(encoder.inner, FakeEncoder(dim=8).encode_queries(["inner"])[0])


def test_settings_are_checked_and_left_out_of_the_fingerprint(tiny_checkpoint: Path) -> None:
    for bad in ({"max_batch": 0}, {"batch_wait_ms": -1}, {"batch_wait_ms": float("nan")}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            FakeEncoder(**bad)  # type: ignore[arg-type]
    assert FakeEncoder(max_batch=3).fingerprint == FakeEncoder().fingerprint
    plain = load_quietly(tiny_checkpoint)
    tuned = load_quietly(tiny_checkpoint, max_batch=8, batch_wait_ms=2)
    assert tuned.fingerprint == plain.fingerprint
    assert (tuned.describe()["max_batch"], tuned.describe()["batch_wait_ms"]) == (8, 2.0)
    assert plain.describe()["max_batch"] == 32
    # int8 vectors depend on their batch neighbours: no coalescing unless asked for.
    assert load_quietly(tiny_checkpoint, quantize="int8").max_batch == 1
    copy = tuned.with_cache(None)
    assert copy._batcher is tuned._batcher  # copies share the model, so they share passes


def test_stats_subtract() -> None:
    assert BatchStats(3, 5, 9, 1, 0, 4) - BatchStats(1, 1, 1, 0, 0, 1) == BatchStats(
        2, 4, 8, 1, 0, 4
    )


@pytest.fixture(scope="module")
def minilm_index(minilm_encoder: Encoder) -> LateIndex:
    index = LateIndex(minilm_encoder)
    index.add(_passages(60))
    return index


@pytest.mark.slow
def test_64_concurrent_searches_equal_sequential_ones(minilm_index: LateIndex) -> None:
    encoder = minilm_index.encoder
    want = [minilm_index.search(q, k=5) for q in QUERIES]
    before = encoder.batch_stats()
    threaded = concurrently(encoder, [lambda q=q: minilm_index.search(q, k=5) for q in QUERIES])
    awaited = concurrently_async(encoder, lambda i: minilm_index.asearch(QUERIES[i], k=5), CLIENTS)
    done = encoder.batch_stats() - before
    assert done.requests == 2 * CLIENTS and done.coalesced >= 4 and done.largest == 32
    # Coalesced query encodes and coalesced scoring passes change nothing, bit for bit:
    # queries are padded to a width of their own (latecore._batches), query rows of a
    # scoring GEMM to a multiple of 16 (latecore.maxsim.GEMM_ROWS).
    assert threaded == want and awaited == want


@pytest.mark.slow
def test_64_concurrent_reranks_equal_sequential_ones(
    minilm_encoder: Encoder, tmp_path: Path
) -> None:
    with MultivectorCache(tmp_path / "cache") as cache:
        reranker = Reranker(minilm_encoder.with_cache(cache))
        candidates = _passages(12)
        want = [reranker.rerank(q, candidates, top_k=5) for q in QUERIES]
        threaded = concurrently(
            minilm_encoder, [lambda q=q: reranker.rerank(q, candidates, top_k=5) for q in QUERIES]
        )
        awaited = concurrently_async(
            minilm_encoder, lambda i: reranker.arerank(QUERIES[i], candidates, top_k=5), CLIENTS
        )
    assert threaded == want and awaited == want  # indexes, texts and scores, bit for bit


def test_64_concurrent_fake_searches_and_adds_are_exact() -> None:
    encoder = FakeEncoder(dim=16)
    passages = _passages(64)
    sequential = LateIndex(FakeEncoder(dim=16))
    for i, text in enumerate(passages):
        sequential.add([text], ids=[str(i)])
    index = LateIndex(encoder)
    concurrently(
        encoder, [lambda i=i, t=t: index.add([t], ids=[str(i)]) for i, t in enumerate(passages)]
    )
    assert encoder.batch_stats().coalesced >= 2  # 64 adds of one text: 1 + 32 + 31
    ids = [str(i) for i in range(64)]
    for query in QUERIES[:8]:  # every document got the vectors it gets when added alone
        np.testing.assert_array_equal(index.score(query, ids), sequential.score(query, ids))
    want = [index.search(q, k=5) for q in QUERIES]
    got = concurrently(encoder, [lambda q=q: index.search(q, k=5) for q in QUERIES])
    awaited = concurrently_async(encoder, lambda i: index.asearch(QUERIES[i], k=5), CLIENTS)
    assert got == want and awaited == want


def test_concurrent_searches_share_one_scoring_pass_bit_for_bit() -> None:
    encoder = FakeEncoder(dim=16)
    index = LateIndex(encoder)
    index.add(_passages(64), ids=[str(i) for i in range(64)])
    vectors = encoder.encode_queries(QUERIES[:16])
    want = [index.search_vectors([v], k=5)[0] for v in vectors]
    other_k = index.search_vectors([vectors[0]], k=2)[0]
    filtered = index.search_vectors([vectors[1]], k=5, filter={"missing": 1})[0]
    before = index._batch.stats
    with ThreadPoolExecutor(18) as pool:
        with index._lock:  # the first caller's pass waits for the lock; the rest queue
            futures = [pool.submit(index.search_vectors, [v], 5) for v in vectors]
            futures.append(pool.submit(index.search_vectors, [vectors[0]], 2))
            futures.append(
                pool.submit(lambda: index.search_vectors([vectors[1]], 5, filter={"missing": 1}))
            )
            while len(index._batch._queue) < 16:
                time.sleep(0.001)
        got = [f.result()[0] for f in futures]
    done = index._batch.stats - before
    # 16 queries with k=5 and no filter score in at most two passes (the first caller's
    # and one for those queued behind it); another k is its own group; a filtered search
    # runs alone, outside the batcher.
    assert done.requests == 17 and done.largest >= 15 and done.passes <= 3
    assert got[:16] == want  # one GEMM for 15 queries gives each its lone scores exactly
    assert got[16] == other_k and len(other_k) == 2
    assert got[17] == filtered == []


def test_a_search_from_inside_view_runs_alone_while_a_pass_waits_for_its_lock() -> None:
    encoder = FakeEncoder(dim=16)
    index = LateIndex(encoder)
    index.add(_passages(8), ids=[str(i) for i in range(8)])
    vector = encoder.encode_queries(["river facts"])[0]
    want = index.search_vectors([vector], k=3)[0]
    with ThreadPoolExecutor(1) as pool, index.view():
        other = pool.submit(index.search_vectors, [vector], 3)  # leads a pass, waits for the lock
        while not index._batch._busy:
            time.sleep(0.001)
        # Queued behind that pass, this search would wait for it, and it for this lock.
        assert index.search_vectors([vector], k=3)[0] == want
    assert other.result(timeout=30)[0] == want
