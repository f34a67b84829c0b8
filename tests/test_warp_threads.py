"""A WARP index built in the main thread answers from any thread, exactly as there.

xtr-warp-rs' searcher is bound to the thread that loaded it (a pyo3 ``unsendable``
class): used from another thread it panics. ``asearch`` (``asyncio.to_thread``),
a web server's thread pool and both frameworks' async retrievers all search
from worker threads.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from langchain_latecore import LateInteractionRetriever as LangChainRetriever
from llama_index.retrievers.latecore import LateInteractionRetriever as LlamaRetriever

from latecore import LateIndex, SearchHit
from latecore.backends.warp import WarpBackend
from latecore.testing import FakeEncoder

pytestmark = pytest.mark.engines  # xtr-warp-rs

WORDS = [f"w{i}" for i in range(16)]
K = 5


def _texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=rng.randint(4, 30))) for _ in range(n)]


QUERIES = _texts(12, seed=1)


def ranking(hits: list[SearchHit]) -> list[tuple[str, float]]:
    return [(hit.id, round(hit.score, 5)) for hit in hits]


@pytest.fixture(scope="module")
def warp_index() -> Iterator[tuple[LateIndex, list[list[tuple[str, float]]]]]:
    """A WARP index built by a search in the main thread, and its main-thread results."""
    with LateIndex(
        FakeEncoder(),
        backend="warp",
        build_min=50,
        n_candidates=50,  # type: ignore[arg-type]
    ) as index:
        index.add(_texts(300, seed=0), ids=[f"d{i}" for i in range(300)])
        main = [ranking(index.search(q, k=K)) for q in QUERIES]  # the first search builds WARP
        backend = index.backend
        assert isinstance(backend, WarpBackend) and backend.indexed == 300
        assert threading.current_thread() is threading.main_thread()
        yield index, main


def test_warp_asearch_equals_main_thread(warp_index: tuple[LateIndex, list]) -> None:
    index, main = warp_index

    async def search_all() -> list[list[SearchHit]]:
        return list(await asyncio.gather(*(index.asearch(q, k=K) for q in QUERIES)))

    assert [ranking(hits) for hits in asyncio.run(search_all())] == main


def test_warp_from_a_thread_pool_of_8_equals_main_thread(
    warp_index: tuple[LateIndex, list],
) -> None:
    index, main = warp_index
    with ThreadPoolExecutor(8) as pool:
        rounds = list(pool.map(lambda q: ranking(index.search(q, k=K)), QUERIES * 4))
    assert rounds == main * 4


def test_warp_langchain_ainvoke_equals_main_thread(warp_index: tuple[LateIndex, list]) -> None:
    index, main = warp_index
    retriever = LangChainRetriever(index=index, k=K)

    async def retrieve_all() -> list[list[tuple[str, float]]]:
        documents = await asyncio.gather(*(retriever.ainvoke(q) for q in QUERIES))
        return [[(d.id, round(d.metadata["relevance_score"], 5)) for d in ds] for ds in documents]

    assert asyncio.run(retrieve_all()) == main


def test_warp_llamaindex_aretrieve_equals_main_thread(warp_index: tuple[LateIndex, list]) -> None:
    index, main = warp_index
    retriever = LlamaRetriever(index=index, similarity_top_k=K)

    async def retrieve_all() -> list[list[tuple[str, float]]]:
        nodes = await asyncio.gather(*(retriever.aretrieve(q) for q in QUERIES))
        return [[(n.node.node_id, round(n.score or 0.0, 5)) for n in ns] for ns in nodes]

    assert asyncio.run(retrieve_all()) == main


def test_warp_changed_from_worker_threads_keeps_main_thread_results(
    warp_index: tuple[LateIndex, list],
) -> None:
    """Adds and deletes from worker threads go into WARP itself (which frees and reloads its
    searcher on each: before, they failed there and were left pending); then the main
    thread and a thread pool give the same results, none of them a deleted document."""
    index, _ = warp_index
    new = _texts(20, seed=2)
    asyncio.run(index.aadd(new, ids=[f"n{i}" for i in range(20)]))
    assert asyncio.run(index.adelete([f"d{i}" for i in range(10)])) == 10
    backend = index.backend
    assert isinstance(backend, WarpBackend) and (backend.indexed, backend.pending) == (310, 0)
    main = [ranking(index.search(q, k=K)) for q in [*QUERIES, *new]]
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda q: ranking(index.search(q, k=K)), [*QUERIES, *new]))
    assert got == main
    assert all(not {f"d{i}" for i in range(10)} & {h for h, _ in hits} for hits in main)
