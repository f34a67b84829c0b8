"""Hybrid search quality on CACM and both shipped labelled sets: each stage alone, each fusion,
the defaults.

Every set is searched with the bundled all-MiniLM-L6-v2 as a zero-shot ColBERT
(offline, the defaults' 64-token queries), through one ``LateIndex`` per set:

- ``general`` and ``ops``: the labelled sets that ship with latecore
  (``latecore.evaluate.load_eval_set``);
- ``cacm``: the CACM test collection (3,204 abstracts, title + abstract as the
  text, 52 judged queries) read by ``latecore.evaluate.load_smart_collection``
  from ``--cacm`` (default ``<repository>/../shared/collections/cacm``); where
  it is absent the set is skipped with a line saying so.

Per set, ``latecore.evaluate.compare_hybrid`` prints BM25 alone, MaxSim alone,
every fusion and the defaults, with nDCG@10, Recall@100 and MRR@10 (trec_eval
definitions); ``old defaults`` is the configuration ``HybridSearcher`` had before
``"adaptive"`` (``fusion="rerank"``, everything else as now, so the same numbers as
the ``fusion=rerank`` row). Then the acceptance lines the defaults were chosen
against: on CACM nDCG@10 >= 0.52 and >= 0.03 above each stage alone; on each
shipped set no lower than the old defaults minus 0.01.

``--sweep`` adds the settings tried when choosing (each row one change from the
defaults): rrf ``k``, linear ``alpha`` with both normalisations, the adaptive
fusion's pivot and power, candidates per stage and the zero-shot query length.

Document encodings go through a ``MultivectorCache`` in ``--cache-dir`` (default:
a folder in the system's temporary directory), so only the first run encodes
CACM (about 1.5 minutes on two cores). Run: ``python benchmarks/eval_hybrid.py``
(about 2 minutes warm), ``--sweep`` about 15 more (a first sweep also encodes
CACM once per other query length).
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from latecore import Encoder, LateIndex, MultivectorCache, evaluate, fusion
from latecore.errors import ZeroShotWarning
from latecore.evaluate import (
    EVAL_SETS,
    compare_hybrid,
    load_eval_set,
    load_smart_collection,
    markdown_table,
)
from latecore.hybrid import DEFAULT_FUSION, HybridSearcher
from latecore.models import bundled_minilm_path

REPOSITORY = Path(__file__).resolve().parents[1]
CACM = REPOSITORY.parent / "shared" / "collections" / "cacm"
OLD_DEFAULTS = "old defaults (fusion=rerank)"
NDCG, RECALL = "nDCG@10", "Recall@100"

Collection = tuple[dict[str, str], dict[str, str], dict[str, dict[str, int]]]


def load_encoder(cache: MultivectorCache, query_length: int | None = None) -> Encoder:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ZeroShotWarning)
        return Encoder(
            bundled_minilm_path(),
            device="cpu",
            show_progress=False,
            cache=cache,
            query_length=query_length,
        )


def build_index(encoder: Encoder, corpus: dict[str, str]) -> LateIndex:
    index = LateIndex(encoder)
    index.add(list(corpus.values()), ids=list(corpus))
    return index


def collections(names: list[str], cacm: Path) -> Iterator[tuple[str, Collection]]:
    for name in names:
        if name != "cacm":
            yield name, load_eval_set(name)
        elif not (cacm / "cacm.all").is_file():
            print(f"\nskipped: CACM not found at {cacm} (pass --cacm PATH)")
        else:
            yield name, load_smart_collection(cacm)


def table(
    index: LateIndex, queries: dict[str, str], qrels: dict[str, dict[str, int]]
) -> pd.DataFrame:
    frame = compare_hybrid(index, queries, qrels, k=100)
    frame.loc[OLD_DEFAULTS] = frame.loc["fusion=rerank"]
    return frame


def acceptance(name: str, frame: pd.DataFrame) -> list[str]:
    defaults = float(frame.loc[f"defaults (fusion={DEFAULT_FUSION})", NDCG])
    if name == "cacm":
        checks = [
            ("defaults >= 0.52", defaults, 0.52),
            ("defaults >= BM25 alone + 0.03", defaults, frame.loc["BM25 alone", NDCG] + 0.03),
            ("defaults >= MaxSim alone + 0.03", defaults, frame.loc["MaxSim alone", NDCG] + 0.03),
        ]
    else:
        checks = [
            ("defaults >= old defaults - 0.01", defaults, frame.loc[OLD_DEFAULTS, NDCG] - 0.01)
        ]
    return [
        f"{'PASS' if value >= bound - 1e-12 else 'FAIL'} {name}: {label} "
        f"(nDCG@10 {value:.3f} against {bound:.3f})"
        for label, value, bound in checks
    ]


@contextlib.contextmanager
def adaptive_constants(pivot: float, power: float) -> Iterator[None]:
    """Run with other constants of the adaptive fusion (module globals read at each call)."""
    saved = fusion.ADAPTIVE_PIVOT, fusion.ADAPTIVE_POWER
    fusion.ADAPTIVE_PIVOT, fusion.ADAPTIVE_POWER = pivot, power
    try:
        yield
    finally:
        fusion.ADAPTIVE_PIVOT, fusion.ADAPTIVE_POWER = saved


def sweep(
    index: LateIndex,
    queries: dict[str, str],
    qrels: dict[str, dict[str, int]],
    indexes_by_length: dict[int, LateIndex],
) -> pd.DataFrame:
    """nDCG@10 and Recall@100 of the defaults with one setting changed per row."""
    variants: list[tuple[str, LateIndex, dict[str, Any], tuple[float, float] | None]] = []
    for k in (5, 10, 20, 30, 60, 100):
        variants.append((f"rrf, rrf_k={k}", index, {"fusion": "rrf", "rrf_k": k}, None))
    for normalization in ("zscore", "minmax"):
        for alpha in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
            settings = {"fusion": "linear", "alpha": alpha, "normalization": normalization}
            variants.append((f"linear, {normalization}, alpha={alpha}", index, settings, None))
    for pivot in (0.25, 0.275, 0.3, 0.325, 0.35):
        for power in (1.25, 1.5, 1.75):
            label = f"adaptive, pivot={pivot}, power={power}"
            variants.append((label, index, {}, (pivot, power)))
    for candidates in (50, 100, 200, 300):
        variants.append(
            (f"adaptive, candidates={candidates}", index, {"candidates": candidates}, None)
        )
    for length, other in indexes_by_length.items():
        variants.append((f"adaptive, query_length={length}", other, {}, None))
    rows = {}
    for label, searched, settings, constants in variants:
        searcher = HybridSearcher.from_index(searched, **settings)
        with adaptive_constants(*(constants or (fusion.ADAPTIVE_PIVOT, fusion.ADAPTIVE_POWER))):
            rows[label] = evaluate(searcher, queries, qrels, k=100, name=label)
    frame = pd.DataFrame({label: e.metrics for label, e in rows.items()}).T[[NDCG, RECALL]]
    frame.index.name = "setting"
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=[*EVAL_SETS, "cacm"])
    parser.add_argument("--cacm", type=Path, default=CACM, help=f"CACM folder (default {CACM})")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "latecore-eval-hybrid-cache",
        help="document multivector cache, kept between runs",
    )
    parser.add_argument("--sweep", action="store_true", help="also print the settings tried")
    args = parser.parse_args()
    cache = MultivectorCache(args.cache_dir)
    encoder = load_encoder(cache)
    print(f"encoder: query_length={encoder.describe()['query_length']}, cache {args.cache_dir}")
    verdicts: list[str] = []
    for name, (corpus, queries, qrels) in collections(args.sets, args.cacm):
        started = time.perf_counter()
        index = build_index(encoder, corpus)
        built = time.perf_counter() - started
        frame = table(index, queries, qrels)
        judged = sum(1 for grades in qrels.values() if any(g > 0 for g in grades.values()))
        print(
            f"\n### {name}: {len(corpus)} documents, {judged} judged queries "
            f"(index built in {built:.1f} s)\n"
        )
        print(markdown_table(frame.drop(columns="ms/query")))
        verdicts += acceptance(name, frame)
        if args.sweep:
            lengths = {
                length: build_index(load_encoder(cache, length), corpus) for length in (32, 128)
            }
            print(f"\n#### {name}: sweep (one change from the defaults per row)\n")
            print(markdown_table(sweep(index, queries, qrels, lengths)))
    print("\n" + "\n".join(verdicts))


if __name__ == "__main__":
    main()
