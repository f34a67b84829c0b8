"""Concurrent queries on one encoder: micro-batched query encodes vs the serialised path.

Workload (issue 25): the all-MiniLM-L6-v2 weights bundled with latecore (zero-shot
ColBERT, 384 dims) on the CPU; the 20 queries of latecore's labelled set, each
client cycling through them from its own offset. Two paths:

- **rerank**: ``Reranker.rerank`` of 10 candidate passages of the sample corpus,
  all already in the ``MultivectorCache`` (a RAG reranker's steady state): one
  query encode plus MaxSim over 10 documents, so the query encode is most of the
  time. This is the encode-bound path.
- **search**: ``LateIndex.search(k=10)`` on an exact index of 10,000 documents.
  Their vectors are recombined real MiniLM vectors: the 250 sample passages are
  encoded once, and document ``i`` takes the token rows of one passage followed by
  a slice of another (30-90 tokens), written into the cache under the encoder's
  keys so that ``LateIndex.add`` reads them instead of encoding. Exact MaxSim over
  the ~600k token vectors costs far more than the query encode: here batching wins
  by scoring concurrent searches in one pass (each block of the index read once
  for all of them, one GEMM with every query's rows).

Each configuration is a closed loop of ``clients`` threads (or asyncio tasks),
each sending its next query as soon as the last one returned, for ``--window``
seconds; QPS is completed calls per second and latency is per call. The
serialised path is ``Encoder(..., max_batch=1)``: every call is its own model
pass and (for the index built on it) its own scoring pass, one after another, as
before micro-batching. The configurations run
interleaved (A, B, C, ... then again) for ``--rounds`` rounds after a few
seconds of spin-up; medians over rounds are reported, with the ratios computed
per round. Run: ``python benchmarks/bench_concurrency.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("LATECORE_PROGRESS", "0")


@dataclass
class Config:
    name: str
    path: str
    clients: int
    call: Callable[[str], Any]
    encoder: Any
    asynchronous: bool = False


@dataclass
class Window:
    qps: float
    p50_ms: float
    requests_per_pass: float


def passages() -> list[str]:
    corpus = files("latecore").joinpath("data/sample_corpus.jsonl").read_text("utf-8")
    return [json.loads(line)["text"] for line in corpus.splitlines()]


def recombined(real: list[np.ndarray], n: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` documents of 30-90 real token rows: one passage's, then a slice of another's."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        a, b = (real[i] for i in rng.integers(0, len(real), size=2))
        length = int(rng.integers(30, 91))
        rows = np.concatenate([a, b, a])[:length]
        out.append(rows.astype(np.float32))
    return out


def run_window(config: Config, queries: list[str], seconds: float) -> Window:
    latencies: list[float] = []
    before = config.encoder.batch_stats()
    stop = time.perf_counter() + seconds

    def client(offset: int) -> None:
        i = offset
        while time.perf_counter() < stop:
            t = time.perf_counter()
            config.call(queries[i % len(queries)])
            latencies.append(time.perf_counter() - t)
            i += 1

    async def aclient(offset: int) -> None:
        i = offset
        while time.perf_counter() < stop:
            t = time.perf_counter()
            await config.call(queries[i % len(queries)])
            latencies.append(time.perf_counter() - t)
            i += 1

    async def gather() -> None:
        await asyncio.gather(*(aclient(c * 7) for c in range(config.clients)))

    started = time.perf_counter()
    if config.asynchronous:
        asyncio.run(gather())
    else:
        threads = [threading.Thread(target=client, args=(c * 7,)) for c in range(config.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    elapsed = time.perf_counter() - started
    done = config.encoder.batch_stats() - before
    return Window(
        len(latencies) / elapsed,
        1000 * statistics.median(latencies),
        done.requests / max(done.passes, 1),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--window", type=float, default=3.0, help="seconds per measurement")
    parser.add_argument("--search-window", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--spin-up", type=float, default=4.0)
    parser.add_argument("--no-search", action="store_true", help="only the rerank path")
    args = parser.parse_args()

    import torch

    from latecore import Encoder, LateIndex, MultivectorCache, Reranker, cache_key
    from latecore.evaluate import load_eval_set
    from latecore.models import bundled_minilm_path

    warnings.simplefilter("ignore")
    path = bundled_minilm_path()
    root = Path(tempfile.mkdtemp(prefix="latecore-bench-concurrency-"))
    cache = MultivectorCache(root / "cache")

    def load(**settings: Any) -> Encoder:
        return Encoder(path, device="cpu", show_progress=False, **settings).with_cache(cache)

    serial, batched = load(max_batch=1), load()
    variants = {"wait 2 ms": load(batch_wait_ms=2), "max_batch 8": load(max_batch=8)}
    assert serial.fingerprint == batched.fingerprint  # the settings do not change vectors
    _, labelled, _ = load_eval_set()
    queries = list(labelled.values())
    texts = passages()
    candidates = texts[:10]
    batched.encode_documents(candidates)  # the reranker's candidates are cached
    rerankers = {name: Reranker(e) for name, e in [("serial", serial), ("batched", batched)]}
    n = args.clients

    def rerank_call(reranker: Reranker) -> Callable[[str], Any]:
        return lambda q: reranker.rerank(q, candidates, top_k=3)

    def arerank_call(reranker: Reranker) -> Callable[[str], Any]:
        return lambda q: reranker.arerank(q, candidates, top_k=3)

    configs = [
        Config("1 client, serialised", "rerank", 1, rerank_call(rerankers["serial"]), serial),
        Config("1 client, batched", "rerank", 1, rerank_call(rerankers["batched"]), batched),
        Config(f"{n} threads, serialised", "rerank", n, rerank_call(rerankers["serial"]), serial),
        Config(f"{n} threads, batched", "rerank", n, rerank_call(rerankers["batched"]), batched),
    ]
    for name, encoder in variants.items():
        configs.append(
            Config(
                f"{n} threads, batched, {name}",
                "rerank",
                n,
                rerank_call(Reranker(encoder)),
                encoder,
            )
        )
    for name, encoder in (("serialised", serial), ("batched", batched)):
        configs.append(
            Config(
                f"{n} asyncio tasks (default executor), {name}",
                "rerank",
                n,
                arerank_call(rerankers["batched" if encoder is batched else "serial"]),
                encoder,
                asynchronous=True,
            )
        )

    build_seconds = 0.0
    if not args.no_search:
        started = time.perf_counter()
        real = batched.encode_documents(texts)
        documents = recombined(real, args.documents)
        ids = [f"synthetic passage {i}" for i in range(args.documents)]
        cache.put_many([cache_key(batched.fingerprint, "document", t) for t in ids], documents)
        before = batched.encode_stats().documents
        indexes = {}
        for name, encoder in (("serialised", serial), ("batched", batched)):
            indexes[name] = LateIndex(encoder)
            indexes[name].add(ids, ids=ids)
        assert batched.encode_stats().documents == before  # every document came from the cache
        build_seconds = time.perf_counter() - started
        tokens = sum(len(d) for d in documents)
        for clients in (1, n):
            for name, encoder in (("serialised", serial), ("batched", batched)):
                index = indexes[name]
                configs.append(
                    Config(
                        f"{'1 client' if clients == 1 else f'{clients} threads'}, {name}",
                        "search",
                        clients,
                        lambda q, index=index: index.search(q, k=10),
                        encoder,
                    )
                )
        same = [h.id for h in indexes["batched"].search(queries[0], k=10)]
        assert same == [h.id for h in indexes["serialised"].search(queries[0], k=10)]

    deadline = time.perf_counter() + args.spin_up
    while time.perf_counter() < deadline:
        run_window(configs[3], queries, 0.5)
        run_window(configs[2], queries, 0.5)

    results: dict[str, list[Window]] = {f"{c.path}: {c.name}": [] for c in configs}
    started = time.perf_counter()
    for _ in range(args.rounds):
        for config in configs:
            seconds = args.search_window if config.path == "search" else args.window
            results[f"{config.path}: {config.name}"].append(run_window(config, queries, seconds))
    elapsed = time.perf_counter() - started

    print(
        f"\nbackbone all-MiniLM-L6-v2 on CPU, torch threads={torch.get_num_threads()}, "
        f"{args.rounds} rounds ({elapsed:.0f} s)"
        + (
            f", search index: {args.documents} documents, {tokens} token vectors "
            f"(built from the cache in {build_seconds:.0f} s)"
            if not args.no_search
            else ""
        )
        + "\n"
    )
    print("| path | clients | queries/s | p50 ms | requests per model pass |")
    print("|---|---|---:|---:|---:|")
    for name, windows in results.items():
        path, label = name.split(": ", 1)
        qps = statistics.median(w.qps for w in windows)
        p50 = statistics.median(w.p50_ms for w in windows)
        per_pass = statistics.median(w.requests_per_pass for w in windows)
        print(f"| {path} | {label} | {qps:.1f} | {p50:.1f} | {per_pass:.1f} |")

    def ratio(a: str, b: str, field: str) -> float:
        pairs = zip(results[a], results[b], strict=True)
        return statistics.median(getattr(x, field) / getattr(y, field) for x, y in pairs)

    print()
    paths = ["rerank"] + ([] if args.no_search else ["search"])
    for path in paths:
        many = ratio(f"{path}: {n} threads, batched", f"{path}: {n} threads, serialised", "qps")
        one = ratio(f"{path}: 1 client, batched", f"{path}: 1 client, serialised", "p50_ms")
        print(
            f"{path}: {n} clients, batched/serialised queries/s: {many:.2f}x (target >= 2x: "
            f"{'met' if many >= 2 else 'missed'}); 1 client p50 batched/serialised: {one:.2f}x "
            f"(target <= 1.1x: {'met' if one <= 1.1 else 'missed'})"
        )


if __name__ == "__main__":
    main()
