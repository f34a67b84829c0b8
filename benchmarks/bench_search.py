"""LateIndex.search latency and throughput over 1k, 10k and 100k documents (exact backend).

Workload (issue 6): synthetic multivectors of 30-120 tokens (uniform) x 96 dims
(answerai-colbert-small's width), unit-normalised, added through the real
``LateIndex.add`` path (stored float16, packed) by an encoder that draws them
from a seeded generator instead of running a model; queries are 32 such vectors.
Query encoding therefore costs ~0 here: a real model adds its query encode
(MiniLM on 2 CPU cores: ~15 ms per query in a batch, more one by one).

``search(q, k=10)`` one query at a time, and ``search_batch`` of 8 queries
(reported per query), are timed for each size, the sizes interleaved round by
round after a few seconds of spin-up; medians are reported. The same rounds time
``HybridSearcher.search`` over each index with ``candidates_from="bm25"`` and
``"both"`` (100 candidates per stage): the difference is what letting MaxSim
nominate costs, the evidence behind ``candidates_from="auto"``.
Run: ``python benchmarks/bench_search.py``.
"""

from __future__ import annotations

import argparse
import statistics
import time
import zlib
from typing import Any

import numpy as np

from latecore import HybridSearcher, LateIndex
from latecore.base_encoder import BaseEncoder


class SyntheticEncoder(BaseEncoder):
    """Seeded random unit vectors: queries 32 x dim, documents 30-120 x dim."""

    def __init__(self, dim: int = 96) -> None:
        super().__init__(show_progress=False)
        self.dim = dim
        self.document_tokens = 0

    def _model_fingerprint_fields(self) -> dict[str, Any]:
        return {"model_id": "bench:synthetic", "output_dim": self.dim}

    def _encode(self, texts: list[str], *, is_query: bool) -> list[np.ndarray]:
        out = []
        for text in texts:
            rng = np.random.default_rng(zlib.crc32(text.encode()))
            n = 32 if is_query else int(rng.integers(30, 121))
            self.document_tokens += 0 if is_query else n
            a = rng.standard_normal((n, self.dim), dtype=np.float32)
            out.append(a / np.linalg.norm(a, axis=1, keepdims=True))
        return out


def build(n: int, encoder: SyntheticEncoder, chunk: int = 10_000) -> LateIndex:
    index = LateIndex(encoder)
    for start in range(0, n, chunk):
        texts = [f"document {i}" for i in range(start, min(n, start + chunk))]
        index.add(texts, ids=[str(i) for i in range(start, start + len(texts))])
    return index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--spin-up", type=float, default=3.0, help="seconds of warm-up")
    args = parser.parse_args()

    encoder = SyntheticEncoder()
    indexes = {}
    tokens = {}
    for n in args.sizes:
        started = time.perf_counter()
        before = encoder.document_tokens
        indexes[n] = build(n, encoder)
        tokens[n] = encoder.document_tokens - before
        print(f"built {indexes[n]!r} in {time.perf_counter() - started:.1f} s")
    queries = [f"query {i}" for i in range(8)]
    hybrids = {n: HybridSearcher.from_index(index) for n, index in indexes.items()}
    for hybrid in hybrids.values():
        hybrid.refresh()  # the BM25 build is not part of a query

    # Correctness: the top hit equals a brute-force MaxSim over the stored float16 vectors.
    small = indexes[min(args.sizes)]
    q = encoder.encode_queries([queries[0]])[0]
    docs = encoder.encode_documents([f"document {i}" for i in range(len(small))])
    brute = [float((q @ d.astype(np.float16).astype(np.float32).T).max(1).sum()) for d in docs]
    hit = small.search(queries[0], k=1)[0]
    assert abs(hit.score - max(brute)) < 1e-3, (hit.score, max(brute))

    def one(n: int) -> float:
        start = time.perf_counter()
        indexes[n].search(queries[0], k=10)
        return time.perf_counter() - start

    def batch(n: int) -> float:
        start = time.perf_counter()
        indexes[n].search_batch(queries, k=10)
        return (time.perf_counter() - start) / len(queries)

    def hybrid(n: int, candidates_from: str) -> float:
        start = time.perf_counter()
        hybrids[n].search("document 17", k=10, candidates_from=candidates_from)  # type: ignore[arg-type]
        return time.perf_counter() - start

    deadline = time.perf_counter() + args.spin_up
    while time.perf_counter() < deadline:
        for n in args.sizes:
            one(n)
    samples: dict[tuple[int, str], list[float]] = {}
    for _ in range(args.rounds):
        for n in args.sizes:
            samples.setdefault((n, "search"), []).append(one(n))
            samples.setdefault((n, "batch"), []).append(batch(n))
            for rule in ("bm25", "both"):
                samples.setdefault((n, rule), []).append(hybrid(n, rule))

    print(f"\nrounds={args.rounds} (medians), dim=96, 30-120 tokens/doc, 32 query tokens, k=10\n")
    print(
        "| documents | token vectors | search: ms/query | docs/s "
        "| search_batch(8): ms/query | docs/s |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for n in args.sizes:
        single = statistics.median(samples[(n, "search")])
        batched = statistics.median(samples[(n, "batch")])
        print(
            f"| {n:,} | {tokens[n]:,} | {1000 * single:.2f} | {n / single:,.0f} | "
            f"{1000 * batched:.2f} | {n / batched:,.0f} |"
        )

    print("\n| documents | hybrid, bm25 candidates: ms | hybrid, both stages: ms | added by both |")
    print("|---:|---:|---:|---:|")
    for n in args.sizes:
        bm25, both = (statistics.median(samples[(n, rule)]) for rule in ("bm25", "both"))
        print(f"| {n:,} | {1000 * bm25:.1f} | {1000 * both:.1f} | {1000 * (both - bm25):+.1f} |")


if __name__ == "__main__":
    main()
