"""Reranking 100 candidates per query: latecore (warm and cold cache) vs pylate vs LlamaIndex.

Workload (issue 6): the 20 queries of latecore's labelled set
(``latecore/data/eval_set.json``), each with 100 candidate passages from the
sample corpus (``latecore/data/sample_corpus.jsonl``, 250 paragraphs of ~40
words; query ``i`` takes the 100 passages starting at ``10 * i``, so candidate
lists overlap as they do in a real pipeline). Every system runs the same
backbone, the all-MiniLM-L6-v2 weights bundled by the ``demo`` extra, on the CPU:

- **latecore warm**: ``Reranker.rerank`` with every candidate already in the
  ``MultivectorCache`` (the steady state of a reranker in a RAG pipeline): one
  query encode plus MaxSim over cached vectors.
- **latecore cold**: the same with a new, empty cache directory for every query:
  100 passages encoded and written, then scored.
- **pylate encode + rerank**: pylate's own ``models.ColBERT(...)`` loaded from the
  same directory, ``encode`` of the query and the 100 passages, then
  ``pylate.rank.rerank`` (pylate re-encodes every candidate on every query).
- **LlamaIndex ColbertRerank** (``llama-index-postprocessor-colbert-rerank``),
  ``model`` and ``tokenizer`` pointed at the same directory: one forward pass per
  candidate per query.

The four run query by query, interleaved (A, B, C, D for query 1, then query 2,
...), for ``--rounds`` passes over the 20 queries after a few seconds of spin-up.
Reported: median milliseconds per query, and each as a multiple of latecore warm.
Run: ``pip install 'latecore[bench]'`` then ``python benchmarks/bench_rerank.py``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("LATECORE_PROGRESS", "0")


def load_workload(per_query: int) -> tuple[list[str], list[list[str]]]:
    from latecore.evaluate import load_eval_set

    corpus = files("latecore").joinpath("data/sample_corpus.jsonl").read_text("utf-8")
    passages = [json.loads(line)["text"] for line in corpus.splitlines()]
    _, queries, _ = load_eval_set()
    texts = list(queries.values())
    candidates = [
        [passages[(10 * i + j) % len(passages)] for j in range(per_query)]
        for i in range(len(texts))
    ]
    return texts, candidates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="passes over the 20 queries")
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--spin-up", type=float, default=5.0, help="seconds of warm-up")
    args = parser.parse_args()

    import torch
    import transformers
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
    from llama_index.postprocessor.colbert_rerank import ColbertRerank
    from pylate import models, rank

    from latecore import Encoder, MultivectorCache, Reranker
    from latecore.errors import ZeroShotWarning
    from latecore.testing import bundled_minilm_path

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    logging.getLogger("pylate").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    path = str(bundled_minilm_path())
    queries, candidates = load_workload(args.candidates)
    root = Path(tempfile.mkdtemp(prefix="latecore-bench-rerank-"))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ZeroShotWarning)
        encoder = Encoder(path, device="cpu", show_progress=False)
    warm = Reranker(encoder.with_cache(MultivectorCache(root / "warm")))
    for docs in candidates:  # fill the cache: every candidate is stored once
        warm.encoder.encode_documents(docs)
    cold_counter = iter(range(10**9))

    pylate_model = models.ColBERT(path, device="cpu")
    colbert_rerank = ColbertRerank(model=path, tokenizer=path, top_n=10, device="cpu")

    def latecore_warm(query: str, docs: list[str]) -> list[int]:
        return [r.index for r in warm.rerank(query, docs, top_k=10)]

    def latecore_cold(query: str, docs: list[str]) -> list[int]:
        with MultivectorCache(root / f"cold-{next(cold_counter)}") as cache:
            reranker = Reranker(encoder.with_cache(cache))
            return [r.index for r in reranker.rerank(query, docs, top_k=10)]

    def pylate_rerank(query: str, docs: list[str]) -> list[int]:
        query_embeddings = pylate_model.encode([query], is_query=True, show_progress_bar=False)
        doc_embeddings = pylate_model.encode(docs, is_query=False, show_progress_bar=False)
        ranked = rank.rerank(
            documents_ids=[list(range(len(docs)))],
            queries_embeddings=query_embeddings,
            documents_embeddings=[doc_embeddings],
        )
        return [int(r["id"]) for r in ranked[0][:10]]

    def llamaindex_rerank(query: str, docs: list[str]) -> list[str]:
        nodes = [NodeWithScore(node=TextNode(text=d, id_=str(i))) for i, d in enumerate(docs)]
        ranked = colbert_rerank.postprocess_nodes(nodes, QueryBundle(query))
        return [n.node.node_id for n in ranked]

    systems: dict[str, Callable[[str, list[str]], object]] = {
        "latecore warm (cache filled)": latecore_warm,
        "latecore cold (empty cache)": latecore_cold,
        "pylate encode + rank.rerank": pylate_rerank,
        "LlamaIndex ColbertRerank": llamaindex_rerank,
    }
    assert latecore_warm(queries[0], candidates[0]) == latecore_cold(queries[0], candidates[0])

    deadline = time.perf_counter() + args.spin_up
    while time.perf_counter() < deadline:
        for run in systems.values():
            run(queries[0], candidates[0])

    samples: dict[str, list[float]] = {name: [] for name in systems}
    started = time.perf_counter()
    for _ in range(args.rounds):
        for query, docs in zip(queries, candidates, strict=True):
            for name, run in systems.items():
                t = time.perf_counter()
                run(query, docs)
                samples[name].append(time.perf_counter() - t)
    elapsed = time.perf_counter() - started
    median = {name: statistics.median(times) for name, times in samples.items()}
    base = median["latecore warm (cache filled)"]

    print(
        f"\n{len(queries)} queries x {args.candidates} candidates, {args.rounds} rounds "
        f"({len(samples[next(iter(samples))])} samples per system, {elapsed:.0f} s), "
        f"torch threads={torch.get_num_threads()}, backbone all-MiniLM-L6-v2 on CPU\n"
    )
    print("| system | ms/query (median) | x latecore warm |")
    print("|---|---:|---:|")
    for name, seconds in median.items():
        print(f"| {name} | {1000 * seconds:.1f} | {seconds / base:.1f} |")
    for name, target in (("LlamaIndex ColbertRerank", 50), ("pylate encode + rank.rerank", 20)):
        ratio = median[name] / base
        verdict = "met" if ratio >= target else f"MISSED by {target / ratio:.2f}x"
        print(f"target: latecore warm >= {target}x faster than {name}: {ratio:.1f}x ({verdict})")


if __name__ == "__main__":
    main()
