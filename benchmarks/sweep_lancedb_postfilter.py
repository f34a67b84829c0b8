"""How many rows LanceDB should be asked for when a broad filter is applied after its search.

A filter holding for a quarter of the documents or more is not sent to LanceDB as a
prefilter (its cost grows with the matching ids): the search asks for more rows than
it needs and keeps the matching ones (``latecore.backends.lancedb.backend``). This
script builds the 100k-document LanceDB index of ``bench_backends.py --filters`` once
(the same recombined real vectors, the same bucket metadata) and compares, at each
``--shares`` filter, ``limit / share**alpha`` rows for each ``--alphas`` value and the
prefilter on the matching ids: recall@10 against exact MaxSim over the matching
documents (100 queries) and p50 latency, interleaved query by query with the
unfiltered search after a few seconds of spin-up. The chosen rule
(``alpha = 0.5``) and the table are in docs/benchmarks.md
(#filtered-search-at-100000-documents). Run:
``python benchmarks/sweep_lancedb_postfilter.py`` (~12 min on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_backends as bench

import latecore.backends.lancedb.backend as lancedb_backend
from latecore import LateIndex
from latecore.store import StoreView

PREFILTER = "prefilter"


def rows_rule(choice: dict[str, Any]) -> Any:
    """A ``LanceDBBackend._query`` that asks for ``limit / share**alpha`` rows
    (``choice["alpha"]``), or sends the filter as a prefilter (``PREFILTER``)."""

    def query(
        self: Any,
        store: StoreView,
        queries: Sequence[np.ndarray],
        limit: int,
        with_vectors: bool,
        where: Any,
    ) -> list[Any]:
        settings = self._settings
        ids = None if where is None else [store.ids[p] for p in where.positions.tolist()]
        if ids is not None and choice["alpha"] != PREFILTER:
            share = len(ids) / max(len(store), 1)
            ids, limit = None, math.ceil(limit / share ** choice["alpha"])
        return [
            self._lance.query(
                q, limit, settings["nprobes"], settings["refine_factor"], with_vectors, ids
            )
            for q in queries
        ]

    return query


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=100_000)
    parser.add_argument("--shares", default="0.5", help="comma-separated, among bench_backends'")
    parser.add_argument("--alphas", default="1,0.5,0")
    parser.add_argument("--timed-queries", type=int, default=60)
    args = parser.parse_args()
    n = args.documents
    matrix, offsets, queries = bench.load_corpus(n, 0)
    queries = queries[:100]
    truth_file = bench.corpus_files(n, 0)[0].parent / "truth-100-10.filters.json"
    if not truth_file.exists():
        raise SystemExit(f"run bench_backends.py --documents {n} --filters first ({truth_file})")
    filter_truth = json.loads(truth_file.read_text())
    index = LateIndex(bench.CachedEncoder(matrix, offsets), backend="lancedb")
    bucket_of = bench.buckets(n, 0)
    started = time.perf_counter()
    for first in range(0, n, 5000):
        numbers = range(first, min(first + 5000, n))
        metadatas = [{"bucket": int(bucket_of[i])} for i in numbers]
        index.add([f"doc {i}" for i in numbers], ids=[str(i) for i in numbers], metadatas=metadatas)
    index.build()
    print(f"LanceDB index of {n:,} documents built in {time.perf_counter() - started:.0f} s")
    choice: dict[str, Any] = {}
    lancedb_backend.LanceDBBackend._query = rows_rule(choice)  # type: ignore[method-assign]
    variants: list[Any] = [float(a) for a in args.alphas.split(",")] + [PREFILTER]
    for share in (float(s) for s in args.shares.split(",")):
        spec, truth = bench.share_filter(share), filter_truth[str(share)][:100]
        recalls = {}
        for alpha in variants:
            choice["alpha"] = alpha
            got = [[h.id for h in index.search_vectors([q], 10, filter=spec)[0]] for q in queries]
            recalls[alpha] = bench.recall(got, truth)
        times: dict[Any, list[float]] = {alpha: [] for alpha in [None, *variants]}
        spin_until = time.perf_counter() + 3.0
        while time.perf_counter() < spin_until:
            index.search_vectors([queries[0]], 10)
        for q in queries[: args.timed_queries]:
            for alpha in [None, *variants]:
                choice["alpha"] = alpha
                begin = time.perf_counter()
                index.search_vectors([q], 10, filter=None if alpha is None else spec)
                times[alpha].append(1000 * (time.perf_counter() - begin))
        unfiltered = statistics.median(times[None])
        print(f"\nfilter matching {share:.1%}; unfiltered p50 {unfiltered:.1f} ms\n")
        print("| rows asked for | recall@10 | filtered p50 ms | vs unfiltered |")
        print("|---|---:|---:|---:|")
        for alpha in variants:
            p50 = statistics.median(times[alpha])
            label = (
                "limit, prefilter on the ids" if alpha == PREFILTER else f"limit / share**{alpha}"
            )
            print(f"| {label} | {recalls[alpha]:.3f} | {p50:.1f} | {p50 / unfiltered:.2f}x |")
    index.close()


if __name__ == "__main__":
    main()
