"""Token pooling and int8 storage: retrieval quality and vectors kept, on real collections.

Sets: the two labelled sets that ship with latecore (``general``, ``ops``) and
CACM (3,204 abstracts, 52 judged queries, ``--cacm``, default
``<repository>/../shared/collections/cacm``; skipped with a line where absent).
Every set is encoded once by the bundled all-MiniLM-L6-v2 as a zero-shot ColBERT
(float32 vectors through a ``MultivectorCache`` in ``--cache-dir``, so only the
first run encodes: CACM takes minutes on two cores); pooling is then applied to
those vectors (``BaseEncoder`` with ``pool_factor``, which is what
``Encoder(pool_factor=k)`` does after its model), so every row scores the very
same model output.

Rows, each one exact ``LateIndex``:

- ``pool 1/2/3, float16``: token pooling (``latecore.pooling``) factors 1 (none), 2, 3;
- ``pool 1, int8`` and ``pool 2, int8``: int8 storage, one float32 scale per vector;
- ``pool 1, int8 per-dimension scale``: the alternative scale (one per dimension,
  shared by all vectors), to compare the choice.

Columns: nDCG@10 and Recall@100 (trec_eval definitions, ``latecore.evaluate``),
the stored vectors as a fraction of unpooled, store bytes per token, and
recall@10 against the ``pool 1, float16`` ranking (the share of its top 10 each
row finds). Then the acceptance lines: pool 2 at most 0.01 nDCG@10 below pool 1;
int8 recall@10 against float16 >= 0.99 and nDCG@10 within 0.005.

Run: ``python benchmarks/eval_pooling.py`` (about a minute once the cache is warm).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from eval_hybrid import collections  # the three sets, CACM skipped with the reason

from latecore import Encoder, LateIndex, MultivectorCache
from latecore.base_encoder import BaseEncoder
from latecore.errors import ZeroShotWarning
from latecore.evaluate import evaluate
from latecore.models import bundled_minilm_path

REPOSITORY = Path(__file__).resolve().parents[1]
CACM = REPOSITORY.parent / "shared" / "collections" / "cacm"
Collection = tuple[dict[str, str], dict[str, str], dict[str, dict[str, int]]]


class Replay(BaseEncoder):
    """The vectors encoded once, by text; documents pooled and transformed as asked."""

    def __init__(
        self,
        vectors: dict[tuple[bool, str], np.ndarray],
        pool_factor: int,
        transform: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        super().__init__(show_progress=False, pool_factor=pool_factor)
        self._vectors = vectors
        self._transform = transform

    def _model_fingerprint_fields(self) -> dict[str, Any]:
        return {"model_id": "eval_pooling replay of all-MiniLM-L6-v2"}

    def _encode(self, texts: list[str], *, is_query: bool) -> list[np.ndarray]:
        return [self._vectors[is_query, t] for t in texts]

    def encode_documents(self, texts: Any) -> list[np.ndarray]:
        arrays = super().encode_documents(texts)
        return arrays if self._transform is None else [self._transform(a) for a in arrays]


def per_dimension_int8(scales: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """int8 with one scale per dimension (``scales``), read back as float32."""

    def transform(vectors: np.ndarray) -> np.ndarray:
        codes = np.clip(np.rint(vectors / scales), -127, 127)
        return (codes * scales).astype(np.float32)

    return transform


def run_set(name: str, collection: Collection, encoder: Encoder) -> list[str]:
    corpus, queries, qrels = collection
    texts, query_texts = list(corpus.values()), list(queries.values())
    documents = encoder.encode_documents(texts)
    encoded = {(False, t): v for t, v in zip(texts, documents, strict=True)}
    encoded.update(
        {
            (True, q): v
            for q, v in zip(query_texts, encoder.encode_queries(query_texts), strict=True)
        }
    )
    every = np.concatenate(documents)
    dimension_scales = np.abs(every).max(axis=0) / 127
    rows: list[tuple[str, int, str, Callable[[np.ndarray], np.ndarray] | None]] = [
        ("pool 1, float16", 1, "float16", None),
        ("pool 2, float16", 2, "float16", None),
        ("pool 3, float16", 3, "float16", None),
        ("pool 1, int8", 1, "int8", None),
        ("pool 2, int8", 2, "int8", None),
        ("pool 1, int8 per-dimension scale", 1, "float32", per_dimension_int8(dimension_scales)),
    ]
    results: dict[str, dict[str, float]] = {}
    reference: dict[str, list[str]] = {}
    base_tokens = 0
    for label, factor, dtype, transform in rows:
        index = LateIndex(Replay(encoded, factor, transform), dtype=dtype)  # type: ignore[arg-type]
        index.add(texts, ids=list(corpus))
        hits = index.search_batch(query_texts, k=100)
        ranked = {q: [h.id for h in found] for q, found in zip(query_texts, hits, strict=True)}
        top10 = evaluate(lambda q, r=ranked: r[q][:10], queries, qrels, k=10)
        top100 = evaluate(lambda q, r=ranked: r[q], queries, qrels, k=100)
        if not reference:
            reference, base_tokens = ranked, index.store.n_tokens
        agreement = np.mean(
            [len(set(ranked[q][:10]) & set(reference[q][:10])) / 10 for q in query_texts]
        )
        # the per-dimension variant is stored in float32 here; as int8 it takes 1 byte a dimension
        per_token = index.memory().store_per_token if transform is None else float(encoder.dim)
        results[label] = {
            "nDCG@10": top10.metrics["nDCG@10"],
            "Recall@100": top100.metrics["Recall@100"],
            "vectors": index.store.n_tokens / base_tokens,
            "bytes/token": per_token,
            "recall@10 vs float16": float(agreement),
        }
    print(f"\n### {name} ({len(corpus)} documents, {len(queries)} queries)\n")
    print(
        "| configuration | nDCG@10 | Recall@100 | vectors kept | store bytes/token "
        "| recall@10 vs float16 |"
    )
    print("|---|---|---|---|---|---|")
    for label, r in results.items():
        print(
            f"| {label} | {r['nDCG@10']:.3f} | {r['Recall@100']:.3f} | {r['vectors']:.2f} | "
            f"{r['bytes/token']:.0f} | {r['recall@10 vs float16']:.3f} |"
        )
    base = results["pool 1, float16"]
    checks = [
        (
            "pool 2 nDCG@10 at most 0.01 below pool 1",
            results["pool 2, float16"]["nDCG@10"] >= base["nDCG@10"] - 0.01 - 1e-9,
        ),
        (
            "int8 recall@10 vs float16 >= 0.99",
            results["pool 1, int8"]["recall@10 vs float16"] >= 0.99,
        ),
        (
            "int8 nDCG@10 within 0.005 of float16",
            abs(results["pool 1, int8"]["nDCG@10"] - base["nDCG@10"]) <= 0.005,
        ),
    ]
    return [f"{'PASS' if ok else 'FAIL'} {name}: {label}" for label, ok in checks]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=["general", "ops", "cacm"])
    parser.add_argument("--cacm", type=Path, default=CACM)
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "latecore-eval-pooling-cache",
    )
    args = parser.parse_args()
    cache = MultivectorCache(args.cache_dir, dtype="float32")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ZeroShotWarning)
        encoder = Encoder(bundled_minilm_path(), device="cpu", show_progress=False, cache=cache)
    lines: list[str] = []
    for name, collection in collections(args.sets, args.cacm):
        lines += run_set(name, collection, encoder)
    print("\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
