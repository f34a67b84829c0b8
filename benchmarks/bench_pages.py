"""Pages: page images encoded per second, and MaxSim over 10k pooled vs unpooled pages.

1. Encoding: the tiny randomly initialised ColQwen2 checkpoint of the tests
   (``latecore.testing.vision.write_tiny_colqwen2_checkpoint``) encodes the
   generated page corpus of the tests (``tests/_pages_support.py``: text pages,
   tables, matplotlib charts, scans without a text layer, PNG files), rendered
   at ``--dpi``, without a cache, unpooled and pooled (``--pool-factor``),
   interleaved round by round after a spin-up; pages/s are medians
   (``--device cuda`` runs it on a GPU; none was lent for the published figures).
2. MaxSim: 10,000 page multivectors built from the tiny model's own page
   encodings, recombined: the tiny checkpoint caps a page at about a hundred
   vectors, so each benchmark page joins ``--join`` (10) distinct real page
   encodings, about 1,000 vectors as a real ColPali page has, with their real
   structure (no Gaussian noise), once from the unpooled encodings and once
   from the pooled ones (the same plan, each source page pooled on its own),
   stored as float16 and scored by latecore's packed kernel
   (:class:`~latecore.maxsim.PackedDocuments`, what the ``exact`` backend runs)
   against the tiny model's encodings of real queries. Pooled and unpooled are
   interleaved round by round after a spin-up; the ratio of medians is printed,
   with the vectors kept and the pooled top 10's overlap with the unpooled one.

Run niced on a shared machine: ``nice -n 19 python benchmarks/bench_pages.py``.
Figures: docs/benchmarks.md, section "Pages".
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("LATECORE_PROGRESS", "0")

QUERIES = [
    "film data rocket",
    "bank query germany",
    "what is the price of coffee",
    "history of the war king",
    "music song piano guitar",
    "python java code program",
    "cats and dogs sleep",
    "planet moon star space",
    "bread cheese wine food",
    "river mountain sea ocean",
    "paint art film book",
    "how does the computer search the index",
    "where is the capital city",
    "school student teacher",
    "the doctor and the health of the brain",
    "money stock bank price",
]


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved(
    cases: dict[str, Callable[[], object]], rounds: int, spin_up: float
) -> dict[str, float]:
    """Medians of ``rounds`` timings per case, round by round, after ``spin_up`` seconds."""
    deadline = time.perf_counter() + spin_up
    while time.perf_counter() < deadline:
        for fn in cases.values():
            fn()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            samples[name].append(timed(fn))
    return {name: statistics.median(times) for name, times in samples.items()}


def load_corpus(directory: Path, n_pdfs: int, n_images: int, dpi: int) -> list[Any]:
    from _pages_support import write_page_corpus

    from latecore.pages import load_pages

    specs = write_page_corpus(directory, n_pdfs=n_pdfs, n_images=n_images)
    files = list(dict.fromkeys(s.source for s in specs))
    return load_pages(files, dpi=dpi)


def bench_encoding(
    checkpoint: Path, pages: Sequence[Any], args: argparse.Namespace
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Pages/s unpooled and pooled; returns both encodings of every page."""
    import torch

    from latecore.vision import PageEncoder

    encoders = {
        "pool 1": PageEncoder(checkpoint, device=args.device, pool_factor=1, show_progress=False),
        f"pool {args.pool_factor}": PageEncoder(
            checkpoint, device=args.device, pool_factor=args.pool_factor, show_progress=False
        ),
    }
    subset = list(pages[: args.encode_pages])
    cases = {name: (lambda e=e: e.encode_pages(subset)) for name, e in encoders.items()}
    medians = interleaved(cases, args.rounds, args.spin_up)
    print(
        f"encoding: {len(subset)} pages at {args.dpi} dpi, device={args.device}, "
        f"torch threads={torch.get_num_threads()}, rounds={args.rounds} (medians)"
    )
    for name, seconds in medians.items():
        print(f"  {name:<8} {seconds:8.2f} s  {len(subset) / seconds:8.2f} pages/s")
    unpooled_encoder, pooled_encoder = encoders.values()
    unpooled = unpooled_encoder.encode_pages(pages)
    pooled = pooled_encoder.encode_pages(pages)
    print(
        f"  vectors per page: unpooled {np.mean([len(v) for v in unpooled]):.0f}, "
        f"pooled {np.mean([len(v) for v in pooled]):.0f} (dim {unpooled[0].shape[1]})"
    )
    return unpooled, pooled


def recombine(sources: Sequence[np.ndarray], plan: Sequence[Sequence[int]]) -> list[np.ndarray]:
    """One benchmark page per entry of ``plan``: the vectors of those source pages, joined
    in order (each keeps its grid order), as float16."""
    return [
        np.ascontiguousarray(np.concatenate([sources[i] for i in picks]), dtype=np.float16)
        for picks in plan
    ]


def bench_maxsim(
    unpooled: Sequence[np.ndarray],
    pooled: Sequence[np.ndarray],
    queries: Sequence[np.ndarray],
    args: argparse.Namespace,
) -> None:
    import torch

    from latecore.maxsim import PackedDocuments, top_k

    rng = np.random.default_rng(0)
    n = len(unpooled)
    plan = [rng.choice(n, size=args.join, replace=False).tolist() for _ in range(args.documents)]
    corpora = {
        "unpooled": PackedDocuments(recombine(unpooled, plan), dtype=np.float16),
        f"pool {args.pool_factor}": PackedDocuments(recombine(pooled, plan), dtype=np.float16),
    }
    cases = {name: (lambda p=p: p.score(queries)) for name, p in corpora.items()}
    medians = interleaved(cases, args.rounds, args.spin_up)
    print(
        f"\nMaxSim: {args.documents:,} pages of {args.join} joined page encodings "
        f"(mean {corpora['unpooled'].n_tokens / args.documents:.0f} vectors unpooled), "
        f"{len(queries)} queries "
        f"(mean {np.mean([len(q) for q in queries]):.0f} tokens), float16 storage, "
        f"torch threads={torch.get_num_threads()}, rounds={args.rounds} (medians)"
    )
    print(f"  {'corpus':<10}{'vectors':>12}{'MB':>8}{'seconds':>10}{'pages/s':>12}")
    for name, packed in corpora.items():
        seconds = medians[name] / len(queries)
        print(
            f"  {name:<10}{packed.n_tokens:>12,}{packed.matrix.nbytes / 1e6:>8.0f}"
            f"{seconds:>10.4f}{args.documents / seconds:>12,.0f}"
        )
    a, b = medians.values()
    kept = corpora[f"pool {args.pool_factor}"].n_tokens / corpora["unpooled"].n_tokens
    print(f"  ratio unpooled / pooled time: {a / b:.2f}x  (vectors kept: {kept:.2f})")
    full, small = (p.score(queries) for p in corpora.values())
    overlap = [
        len(set(top_k(f, 10).tolist()) & set(top_k(s, 10).tolist())) / 10
        for f, s in zip(full, small, strict=True)
    ]
    print(f"  pooled top 10 vs unpooled top 10: {np.mean(overlap):.3f} overlap (mean)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pdfs", type=int, default=5, help="generated PDFs (44 pages each)")
    parser.add_argument("--images", type=int, default=20, help="generated PNG pages")
    parser.add_argument("--dpi", type=int, default=96)
    parser.add_argument("--encode-pages", type=int, default=48, help="pages per timed encode")
    parser.add_argument("--pool-factor", type=int, default=2)
    parser.add_argument("--documents", type=int, default=10_000)
    parser.add_argument(
        "--join", type=int, default=10, help="page encodings joined per MaxSim benchmark page"
    )
    parser.add_argument("--queries", type=int, default=8, help="queries per MaxSim round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--spin-up", type=float, default=4.0, help="seconds of warm-up")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    from latecore.testing.vision import write_tiny_colqwen2_checkpoint

    with tempfile.TemporaryDirectory(prefix="bench-pages-") as tmp:
        checkpoint = write_tiny_colqwen2_checkpoint(Path(tmp) / "tiny-colqwen2")
        pages = load_corpus(Path(tmp) / "corpus", args.pdfs, args.images, args.dpi)
        print(f"corpus: {len(pages)} generated pages ({sum(not p.text for p in pages)} scans)")
        unpooled, pooled = bench_encoding(checkpoint, pages, args)
        from latecore.vision import PageEncoder

        query_encoder = PageEncoder(checkpoint, device=args.device, show_progress=False)
        queries = query_encoder.encode_queries(QUERIES[: args.queries])
        bench_maxsim(unpooled, pooled, queries, args)


if __name__ == "__main__":
    main()
