"""Serving WARP from any thread: one engine thread against a searcher per thread.

xtr-warp-rs' searcher only works in the thread that loaded it (a pyo3
``unsendable`` class). Two ways to serve ``asearch``, thread pools and async
retrievers: hand every engine call to one thread that owns the searcher
(latecore's choice, ``latecore/backends/_engine_thread.py``), or load a searcher
in every thread that searches. This measures, on a WARP index of
``--documents`` documents of the realistic corpus (``realistic_corpus.py``,
cached), interleaved query by query after a spin-up:

- a WARP search called in the thread that loaded the searcher (no hand-over:
  what a searcher per thread gives on a warm thread);
- the same search handed to the engine thread from the caller's thread, and
  from ``asyncio.to_thread`` workers (the hand-over's cost);

and, for a searcher per thread, what each new thread would pay before its first
search (and again after every add or delete, which rewrites the index): the
time to load a searcher, and the resident memory one more loaded searcher takes.

Run: ``python benchmarks/bench_warp_threads.py --documents 10000``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import threading
import time
from typing import Any

import numpy as np
import torch
from bench_backends import CachedEncoder, load_corpus

from latecore import LateIndex
from latecore.backends.warp import WarpBackend


def rss_mib() -> float:
    """Resident memory of this process (MiB)."""
    with open("/proc/self/status", encoding="utf-8") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--loads", type=int, default=8, help="searchers loaded, one per thread")
    args = parser.parse_args()

    matrix, offsets, queries = load_corpus(args.documents, 0)
    encoder = CachedEncoder(matrix, offsets)
    index = LateIndex(encoder, backend="warp")
    index.add(
        [f"doc {i}" for i in range(args.documents)], ids=[str(i) for i in range(args.documents)]
    )
    index.build()
    backend = index.backend
    assert isinstance(backend, WarpBackend) and backend.index_directory is not None
    warp_class = type(backend._warp)
    settings = backend.options
    query_tensors = [torch.from_numpy(np.asarray(q, dtype=np.float32)[None]) for q in queries]

    def warp_search(warp: Any, query: Any) -> Any:
        return warp.search(
            query,
            top_k=settings["n_candidates"],
            num_threads=1,
            nprobe=settings["nprobe"],
            show_progress=False,
        )

    # A searcher loaded in this thread, searched here: no hand-over.
    local = warp_class(str(backend.index_directory), device="cpu")
    local.load(device="cpu", mmap=True)
    engine = backend._engine

    def handed_over(query: Any) -> Any:
        return engine.run(lambda: warp_search(engine.handle, query))

    async def from_worker(query: Any) -> Any:
        return await asyncio.to_thread(handed_over, query)

    loop = asyncio.new_event_loop()
    timed: dict[str, list[float]] = {"same thread": [], "engine thread": [], "to_thread": []}
    calls = {
        "same thread": lambda q: warp_search(local, q),
        "engine thread": handed_over,
        "to_thread": lambda q: loop.run_until_complete(from_worker(q)),
    }
    spin_until = time.perf_counter() + 3.0
    while time.perf_counter() < spin_until:
        for call in calls.values():
            call(query_tensors[0])
    for n in range(args.queries):
        query = query_tensors[n % len(query_tensors)]
        for name, call in calls.items():
            start = time.perf_counter()
            call(query)
            timed[name].append(1000 * (time.perf_counter() - start))
    loop.close()

    # A searcher per thread: load time and memory of each one more (each thread keeps
    # its searcher until told to free it: freed or dropped elsewhere, it would panic).
    load_ms: list[float] = []
    loaded, release = threading.Semaphore(0), threading.Event()

    def serve_one() -> None:
        start = time.perf_counter()
        warp = warp_class(str(backend.index_directory), device="cpu")
        warp.load(device="cpu", mmap=True)
        warp_search(warp, query_tensors[0])
        load_ms.append(1000 * (time.perf_counter() - start))
        loaded.release()
        release.wait()
        warp.free()

    gc.collect()
    before = rss_mib()
    threads = [threading.Thread(target=serve_one) for _ in range(args.loads)]
    for thread in threads:
        thread.start()
        loaded.acquire()  # one load at a time, as threads of a pool would meet them
    per_searcher = (rss_mib() - before) / args.loads
    release.set()
    for thread in threads:
        thread.join()
    local.free()

    same = statistics.median(timed["same thread"])
    print(
        f"WARP index of {args.documents:,} documents ({index.store.n_tokens:,} tokens), "
        f"{args.queries} queries, medians"
    )
    print("| how a search reaches the searcher | ms per search | vs same thread |")
    print("|---|---|---|")
    for name, values in timed.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.2f} | {median / same:.3f} |")
    print()
    print("| a searcher per thread pays, per thread and after every change | |")
    print("|---|---|")
    print(f"| load + first search in a new thread | {statistics.median(load_ms):.1f} ms |")
    print(f"| resident memory per extra searcher | {per_searcher:.1f} MiB |")
    index.close()


if __name__ == "__main__":
    main()
