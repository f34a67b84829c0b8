"""Hybrid search quality: the old defaults against the new, on both shipped labelled sets.

Systems (all with the bundled all-MiniLM-L6-v2 as a zero-shot ColBERT, offline):

- ``old defaults``: BM25 without stemming nominates, MaxSim reranks
  (``candidates_from="bm25"``, ``stemmer=None``, ``fusion="rerank"``), queries
  cut at 32 tokens (the zero-shot query length before this change);
- ``new defaults, <fusion>``: ``HybridSearcher(encoder)`` as a user gets it
  (English stemming, both stages nominate, the zero-shot query length), with each
  fusion;
- single stages for reference: ``MaxSim only`` (``LateIndex.search``) and ``BM25 only``
  (linear fusion with ``alpha=0``).

Prints nDCG@10, Recall@100 and MRR@10 per set (``latecore.evaluate``, trec_eval
definitions). Run: ``python benchmarks/eval_hybrid.py`` (about a minute).
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Callable

from latecore import Encoder, HybridSearcher, LateIndex, compare
from latecore.errors import ZeroShotWarning
from latecore.evaluate import EVAL_SETS, load_eval_set, markdown_table
from latecore.models import bundled_minilm_path

OLD_QUERY_LENGTH = 32


def systems(corpus: dict[str, str], new: Encoder, old: Encoder) -> dict[str, object]:
    ids, texts = list(corpus), list(corpus.values())
    searcher = HybridSearcher.from_texts(texts, new, ids=ids)
    old_searcher = HybridSearcher.from_texts(
        texts, old, ids=ids, stemmer=None, candidates_from="bm25", fusion="rerank"
    )
    index = LateIndex(new)
    index.add(texts, ids=ids)

    def hybrid(fusion: str, **options: object) -> Callable[[str], list[str]]:
        return lambda q: [h.id for h in searcher.search(q, k=100, fusion=fusion, **options)]

    return {
        "old defaults (bm25 -> rerank, no stemming, 32-token queries)": lambda q: [
            h.id for h in old_searcher.search(q, k=100)
        ],
        "new defaults, rerank": hybrid("rerank"),
        "new defaults, rrf": hybrid("rrf"),
        "new defaults, linear": hybrid("linear"),
        "new, candidates_from=bm25, rerank": hybrid("rerank", candidates_from="bm25"),
        "new, candidates_from=bm25, rrf": hybrid("rrf", candidates_from="bm25"),
        "MaxSim only": lambda q: [h.id for h in index.search(q, k=100)],
        "BM25 only (stemmed)": lambda q: [
            h.id
            for h in sorted(
                searcher.search(q, k=100, candidates_from="bm25"), key=lambda h: h.bm25_rank or 0
            )
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=list(EVAL_SETS))
    args = parser.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ZeroShotWarning)
        new = Encoder(bundled_minilm_path(), device="cpu", show_progress=False)
        old = Encoder(
            bundled_minilm_path(),
            device="cpu",
            show_progress=False,
            query_length=OLD_QUERY_LENGTH,
        )
    print(f"new encoder: query_length={new.describe()['query_length']}")
    for name in args.sets:
        corpus, queries, qrels = load_eval_set(name)
        frame = compare(systems(corpus, new, old), queries, qrels, k=100)
        print(f"\n### {name}: {len(corpus)} passages, {len(queries)} queries\n")
        print(markdown_table(frame))


if __name__ == "__main__":
    main()
