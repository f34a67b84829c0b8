"""LateIndex backends at scale: index time, p50/p95 latency, recall@10 against ``exact``, memory.

The corpus has the structure of real ColBERT encodings (``realistic_corpus.py``):
every text the project ships encoded by the bundled all-MiniLM-L6-v2, reduced
to 96 dimensions like a ColBERT head, and recombined into ``--documents``
documents (spans of real token sequences around a topic, per-occurrence context
noise); the queries are the real encoded queries. It is generated once and cached
as ``.npy``.

Each backend runs in its own process (so its resident memory is its own): the
documents go through the real ``LateIndex.add`` path (an encoder that hands out
the cached vectors for ``"doc <i>"``), then ``LateIndex.build()``; *index time*
is add + build. Latency is per query (one query per call, query encoding
excluded), exact and the backend **interleaved query by query** in the same
process after a spin-up, so both see the same CPU clock; ``vs exact`` is the
ratio of their p50s. Recall@10 is against exact MaxSim on the same documents.
Resident memory is the process's resident set after the build and the searches,
not counting the benchmark's own memory-mapped corpus file.

Backends: ``exact``, ``warp`` (xtr-warp-rs), ``qdrant`` (qdrant-edge, HNSW built by
``build()``), ``qdrant-engine`` (the same with ``vectors="engine"``: no local
token vectors), ``lancedb``, ``plaid`` (fast-plaid). ``--sweep warp.nprobe=8,16,32``
(repeatable: a grid) measures recall and latency over search settings (the
curve); ``--real`` also measures recall on the shipped texts themselves (MiniLM,
384 dims, each backend against exact).

``--filters`` gives every document a ``bucket`` (0-999, a seeded permutation:
each bucket holds exactly 0.1% of the documents, independent of the topics) and
measures, for filters ``{"bucket": {"$lt": m}}`` matching 0.1% to 50% of the
corpus, through ``LateIndex.search_vectors`` (what a caller pays: compiling the
filter, selecting, searching, the hits): recall@10 against exact MaxSim over the
matching documents, hits failing the filter (must be 0), and the filtered p50
next to the unfiltered p50 of the same backend, interleaved query by query. It
also times the two paths a filtered search can take, forced: the engine searching
the subset and exact MaxSim over the subset (``EXACT_SUBSET`` is the crossover).

Compact configurations (the 1M benchmark): ``--pool-factor 2`` pools every
generated document once with ``latecore.pooling.pool_vectors`` (what
``Encoder(pool_factor=2)`` does; cached beside the corpus, its time reported) and
measures everything, the exact top 10 included, on the pooled vectors;
``--dtype int8`` stores them as int8; ``--mmap`` saves the built index, closes it,
hands freed heap back to the OS (``malloc_trim``) and loads it again with
``LateIndex.load(..., mmap=True)`` in the same process before any query, as a
service serving a prebuilt index would (resident memory is reported both right
after the build and after the reload and the queries).

Run: ``python benchmarks/bench_backends.py --documents 100000`` (the 100k run
takes about an hour on 2 cores: WARP's k-means dominates).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from realistic_corpus import default_cache_dir, real_encodings, recombine

from latecore import LateIndex
from latecore.backends import Backend, ExactBackend
from latecore.base_encoder import BaseEncoder
from latecore.filters import compile_filter
from latecore.index_view import EXACT_SUBSET
from latecore.maxsim import PackedDocuments
from latecore.pooling import pool_vectors
from latecore.store import StoreView

os.environ.setdefault("LATECORE_PROGRESS", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore", message="The given NumPy array is not writable")

BACKEND_OPTIONS: dict[str, dict[str, Any]] = {
    "exact": {},
    "warp": {},
    "qdrant": {"optimize_after": None},  # one build() after the bulk load
    "qdrant-engine": {"optimize_after": None, "vectors": "engine"},
    "lancedb": {},
    "plaid": {"num_partitions": 512, "n_full_scores": 1024, "n_ivf_probe": 8},
}
"""Options each benchmarked backend is built with (the backend's defaults otherwise)."""

QUERY_LIMIT = {"plaid": 20}
"""Fewer queries where one takes seconds (fast-plaid on a CPU)."""


FILTER_SHARES = (0.001, 0.01, 0.05, 0.1, 0.5)
"""Shares of the corpus the ``--filters`` filters match."""

BUCKETS = 1000


def buckets(n_documents: int, seed: int) -> np.ndarray:
    """Each document's bucket: a seeded permutation, so each bucket holds exactly
    ``n_documents / 1000`` documents (for ``n_documents`` a multiple of 1000).

    >>> np.bincount(buckets(3000, 0)).tolist() == [3] * 1000
    True
    """
    return np.random.default_rng(seed + 1).permutation(n_documents) % BUCKETS


def share_filter(share: float) -> dict[str, Any]:
    """The filter matching ``share`` of the documents.

    >>> share_filter(0.01)
    {'bucket': {'$lt': 10}}
    """
    return {"bucket": {"$lt": round(share * BUCKETS)}}


class CachedEncoder(BaseEncoder):
    """Hands out document ``i``'s cached vectors for the text ``"doc <i>"``."""

    def __init__(self, matrix: np.ndarray, offsets: np.ndarray) -> None:
        super().__init__(show_progress=False, batch_size=4096)
        self.matrix, self.offsets = matrix, offsets

    def _model_fingerprint_fields(self) -> dict[str, Any]:
        return {"model_id": "bench.CachedEncoder", "output_dim": int(self.matrix.shape[1])}

    def _encode(self, texts: list[str], *, is_query: bool) -> list[np.ndarray]:
        if is_query:
            raise ValueError("the benchmark passes encoded queries")
        spans = [(self.offsets[i], self.offsets[i + 1]) for i in (int(t[4:]) for t in texts)]
        return [np.asarray(self.matrix[a:b], dtype=np.float32) for a, b in spans]


def corpus_files(n_documents: int, seed: int, pool_factor: int = 1) -> tuple[Path, Path, Path]:
    """The cached generated corpus (vectors, lengths, queries), generated on first use;
    with ``pool_factor > 1`` its pooled copy (:func:`pooled_corpus`)."""
    directory = default_cache_dir() / f"recombined-{n_documents}-{seed}"
    files = (directory / "vectors.npy", directory / "lengths.npy", directory / "queries.npz")
    if not all(f.exists() for f in files):
        directory.mkdir(parents=True, exist_ok=True)
        corpus = recombine(real_encodings(), n_documents, seed)
        print(f"generated {n_documents:,} documents in {corpus.seconds:.0f} s", flush=True)
        np.save(files[0], corpus.matrix, allow_pickle=False)
        np.save(files[1], corpus.lengths, allow_pickle=False)
        np.savez(files[2], *corpus.queries)
    if pool_factor == 1:
        return files
    return pooled_corpus(files, pool_factor)


def pooled_corpus(files: tuple[Path, Path, Path], pool_factor: int) -> tuple[Path, Path, Path]:
    """The corpus in ``files`` with every document pooled by ``pool_factor``, cached.

    Each document goes through :func:`latecore.pooling.pool_vectors` (the call
    ``Encoder(pool_factor=...)`` makes; one leading vector protected), in two
    processes; ``pooling.json`` records the time it took.
    """
    vectors, lengths, queries = files
    directory = vectors.parent.with_name(f"{vectors.parent.name}-pool{pool_factor}")
    pooled = (directory / "vectors.npy", directory / "lengths.npy", queries)
    if all(f.exists() for f in pooled[:2]):
        return pooled
    directory.mkdir(parents=True, exist_ok=True)
    before_lengths = np.load(lengths)
    n_documents = len(before_lengths)
    start = time.perf_counter()
    halves = [(0, n_documents // 2), (n_documents // 2, n_documents)]
    parts = [directory / f"part-{first}" for first, _ in halves]
    options = ["--pool-factor", str(pool_factor), "--pool-source", str(vectors.parent)]
    commands = [
        [sys.executable, __file__, "--pool-part", str(part), "--pool-range", f"{a},{b}", *options]
        for part, (a, b) in zip(parts, halves, strict=True)
    ]
    running = [subprocess.Popen(command) for command in commands]
    if any(p.wait() for p in running):
        raise RuntimeError("pooling the benchmark corpus failed")
    part_lengths = [np.load(part.with_suffix(".lengths.npy")) for part in parts]
    total = int(sum(int(x.sum()) for x in part_lengths))
    dim = np.load(vectors, mmap_mode="r").shape[1]
    out = np.lib.format.open_memmap(pooled[0], mode="w+", dtype=np.float16, shape=(total, dim))
    row = 0
    for part in parts:
        block = np.load(part.with_suffix(".vectors.npy"), mmap_mode="r")
        out[row : row + len(block)] = block
        row += len(block)
    out.flush()
    del out
    np.save(pooled[1], np.concatenate(part_lengths), allow_pickle=False)
    for part in parts:
        part.with_suffix(".vectors.npy").unlink()
        part.with_suffix(".lengths.npy").unlink()
    seconds = time.perf_counter() - start
    before = int(before_lengths.sum())
    (directory / "pooling.json").write_text(
        json.dumps({"seconds": seconds, "tokens_before": before, "tokens_after": total})
    )
    print(
        f"pooled {n_documents:,} documents (factor {pool_factor}) in {seconds:.0f} s: "
        f"{before:,} -> {total:,} token vectors",
        flush=True,
    )
    return pooled


def pool_part(args: argparse.Namespace) -> None:
    """Pool documents ``first..last`` of ``--pool-source`` into ``--pool-part``'s files."""
    source = Path(args.pool_source)
    matrix = np.load(source / "vectors.npy", mmap_mode="r")
    offsets = np.concatenate([[0], np.cumsum(np.load(source / "lengths.npy"))]).astype(np.int64)
    first, last = (int(x) for x in args.pool_range.split(","))
    blocks, counts = [], []
    for i in range(first, last):
        pooled = pool_vectors(matrix[offsets[i] : offsets[i + 1]], args.pool_factor)[0]
        blocks.append(pooled.astype(np.float16))
        counts.append(len(pooled))
    part = Path(args.pool_part)
    np.save(part.with_suffix(".vectors.npy"), np.concatenate(blocks), allow_pickle=False)
    np.save(part.with_suffix(".lengths.npy"), np.array(counts, dtype=np.int64))


def load_corpus(
    n_documents: int, seed: int, pool_factor: int = 1
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Memory-mapped vectors, offsets and the queries of the cached corpus."""
    vectors, lengths, queries = corpus_files(n_documents, seed, pool_factor)
    matrix = np.load(vectors, mmap_mode="r", allow_pickle=False)
    offsets = np.concatenate([[0], np.cumsum(np.load(lengths))]).astype(np.int64)
    with np.load(queries, allow_pickle=False) as archive:
        query_list = [archive[f"arr_{i}"] for i in range(len(archive.files))]
    return matrix, offsets, query_list


def resident_gib(excluding: str) -> float:
    """Resident memory of this process in GiB, without the pages of the file ``excluding``."""
    total, skip = 0, False
    with open("/proc/self/smaps", encoding="utf-8") as f:
        for line in f:
            first = line.split(maxsplit=1)[0]
            if "-" in first and not first.endswith(":"):
                skip = line.rstrip().endswith(excluding)
            elif first == "Rss:" and not skip:
                total += int(line.split()[1])
    return total / 2**20


def peak_gib() -> float:
    """Peak resident memory of this process (GiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def ranked_ids(backend: Backend, store: StoreView, queries: Sequence[np.ndarray], k: int) -> list:
    """Each query's top ``k`` ids by ``backend``, one query per call."""
    return [[store.ids[p] for p in backend.search(store, [q], k)[0].positions] for q in queries]


def recall(got: Sequence[Sequence[str]], truth: Sequence[Sequence[str]]) -> float:
    """Mean share of each query's true top k found in its returned top k."""
    return float(np.mean([len(set(g) & set(t)) / len(t) for g, t in zip(got, truth, strict=True)]))


def interleaved_latency(
    exact: Any, backend: Backend, store: StoreView, queries: Sequence[np.ndarray], k: int
) -> dict[str, float]:
    """p50/p95 milliseconds of ``exact(query)`` and the backend, timed query by query."""
    spin_until = time.perf_counter() + 3.0
    while time.perf_counter() < spin_until:  # let the CPU clock ramp up
        exact(queries[0])
        backend.search(store, [queries[0]], k)
    exact_ms, backend_ms = [], []
    for q in queries:
        start = time.perf_counter()
        exact(q)
        middle = time.perf_counter()
        backend.search(store, [q], k)
        exact_ms.append(1000 * (middle - start))
        backend_ms.append(1000 * (time.perf_counter() - middle))
    return {
        "exact_p50": statistics.median(exact_ms),
        "exact_p95": float(np.percentile(exact_ms, 95)),
        "p50": statistics.median(backend_ms),
        "p95": float(np.percentile(backend_ms, 95)),
    }


def set_search_option(backend: Backend, key: str, value: int) -> None:
    """Change one search setting of a built backend (for ``--sweep``).

    ``warp`` and ``qdrant`` keep their settings in one dict read at every search.
    """
    settings = backend._settings  # type: ignore[attr-defined]
    if key not in settings:
        raise KeyError(f"{backend.name} has no setting {key!r}: {sorted(settings)}")
    settings[key] = value


def sweep_grid(sweeps: Sequence[str], name: str) -> list[dict[str, int]]:
    """Every combination of the ``--sweep name.key=v1,v2`` values given for ``name``.

    >>> sweep_grid(["warp.nprobe=8,16", "warp.n_candidates=100,200", "qdrant.prefetch=1"], "warp")
    ... # doctest: +NORMALIZE_WHITESPACE
    [{'nprobe': 8, 'n_candidates': 100}, {'nprobe': 8, 'n_candidates': 200},
     {'nprobe': 16, 'n_candidates': 100}, {'nprobe': 16, 'n_candidates': 200}]
    """
    grid: list[dict[str, int]] = [{}]
    for sweep in sweeps:
        backend, _, assignment = sweep.partition(".")
        if backend != name:
            continue
        key, _, values = assignment.partition("=")
        grid = [{**g, key: int(v)} for g in grid for v in values.split(",")]
    return grid


def trim_heap() -> None:
    """Hand the heap's freed pages back to the OS (glibc's ``malloc_trim``; else nothing)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def config_label(args: argparse.Namespace) -> str:
    """The storage configuration a worker measures, e.g. ``"pool 2, int8, mmap"``.

    >>> config_label(argparse.Namespace(pool_factor=2, dtype="int8", mmap=True))
    'pool 2, int8, mmap'
    >>> config_label(argparse.Namespace(pool_factor=1, dtype="float16", mmap=False))
    'float16'
    """
    parts = [f"pool {args.pool_factor}"] if args.pool_factor > 1 else []
    return ", ".join([*parts, args.dtype, *(["mmap"] if args.mmap else [])])


def worker(args: argparse.Namespace) -> None:
    """Build one backend over the cached corpus, measure it, print one JSON line."""
    name = args.worker
    matrix, offsets, queries = load_corpus(args.documents, args.seed, args.pool_factor)
    queries = queries[: min(args.queries, QUERY_LIMIT.get(name, args.queries))]
    truth = json.loads(Path(args.truth).read_text())[: len(queries)]
    options = dict(BACKEND_OPTIONS[name])
    options.update(json.loads(args.options))
    encoder = CachedEncoder(matrix, offsets)
    index = LateIndex(encoder, backend=name.split("-")[0], dtype=args.dtype, **options)
    bucket_of = buckets(args.documents, args.seed) if args.filters else None
    start = time.perf_counter()
    for first in range(0, args.documents, 5000):
        numbers = range(first, min(first + 5000, args.documents))
        metadatas = None if bucket_of is None else [{"bucket": int(bucket_of[i])} for i in numbers]
        index.add([f"doc {i}" for i in numbers], ids=[str(i) for i in numbers], metadatas=metadatas)
    added = time.perf_counter() - start
    index.build()
    built = time.perf_counter() - start
    vectors_file = str(corpus_files(args.documents, args.seed, args.pool_factor)[0])
    result: dict[str, Any] = {
        "backend": name,
        "config": config_label(args),
        "add_s": added,
        "index_s": built,
        "built_gib": resident_gib(excluding=vectors_file),
        "build_peak_gib": peak_gib(),
    }
    print(f"{name} built {result}", file=sys.stderr, flush=True)
    if args.mmap:
        saved = Path(args.truth).parent / f"index-{name}-{args.dtype}"
        begin = time.perf_counter()
        index.save(saved)
        result["save_s"] = time.perf_counter() - begin
        index.close()
        del index
        trim_heap()
        begin = time.perf_counter()
        index = LateIndex.load(saved, encoder, mmap=True)
        result["load_s"] = time.perf_counter() - begin
        result["loaded_gib"] = resident_gib(excluding=vectors_file)
    result["memory"] = index.memory().as_dict()
    store, backend = index.store, index.backend
    if store.holds_vectors:

        def exact(q: np.ndarray) -> Any:
            return ExactBackend().search(store, [q], args.k)
    else:
        packed = PackedDocuments.from_parts(matrix, offsets)

        def exact(q: np.ndarray) -> Any:
            return packed.score([q])

    result["settings"] = []
    for setting in sweep_grid(args.sweep, name):
        for key, value in setting.items():
            set_search_option(backend, key, value)
        got = ranked_ids(backend, store, queries, args.k)
        label = ", ".join(f"{k}={v}" for k, v in setting.items()) or "default"
        row = {"setting": label, "recall": recall(got, truth)}
        if not result["settings"]:
            result["resident_gib"] = resident_gib(excluding=vectors_file)
        timed = queries[: args.timed_queries]
        row.update(interleaved_latency(exact, backend, store, timed, args.k))
        result["settings"].append(row)
        print(f"{name} {row}", file=sys.stderr, flush=True)
    if bucket_of is not None:
        filter_truth = json.loads(Path(args.truth).with_suffix(".filters.json").read_text())
        result["filters"] = [
            filtered_row(
                index, queries, args, share, filter_truth[str(share)][: len(queries)], bucket_of
            )
            for share in FILTER_SHARES
        ]
    result["peak_gib"] = peak_gib()
    index.close()
    print(json.dumps(result), flush=True)


def filtered_row(
    index: LateIndex,
    queries: Sequence[np.ndarray],
    args: argparse.Namespace,
    share: float,
    truth: Sequence[Sequence[str]],
    bucket_of: np.ndarray,
) -> dict[str, Any]:
    """Recall, leaks and latencies of one filter (see the module docstring)."""
    spec, k = share_filter(share), args.k
    limit = spec["bucket"]["$lt"]
    hits = [index.search_vectors([q], k, filter=spec)[0] for q in queries]
    got = [[h.id for h in these] for these in hits]
    leaks = sum(int(bucket_of[int(h.id)]) >= limit for these in hits for h in these)
    store, backend = index.store, index.backend
    where = store.select(compile_filter(spec))  # type: ignore[arg-type]
    paths: dict[str, Any] = {
        "unfiltered": lambda q: index.search_vectors([q], k),
        "filtered": lambda q: index.search_vectors([q], k, filter=spec),
        "engine path": lambda q: backend.search(store, [q], k, where),
    }
    if store.holds_vectors and backend.name != "exact":
        paths["exact path"] = lambda q: ExactBackend().search(store, [q], k, where)
    spin_until = time.perf_counter() + 2.0
    while time.perf_counter() < spin_until:
        for run in paths.values():
            run(queries[0])
    times: dict[str, list[float]] = {name: [] for name in paths}
    for q in queries[: args.timed_queries]:
        for name, run in paths.items():
            begin = time.perf_counter()
            run(q)
            times[name].append(1000 * (time.perf_counter() - begin))
    row = {"share": share, "matching": len(where.positions), "recall": recall(got, truth)}
    row.update({f"{name} p50": statistics.median(t) for name, t in times.items()})
    row["leaks"] = leaks
    print(f"{index.backend.name} filter {row}", file=sys.stderr, flush=True)
    return row


def exact_truth(args: argparse.Namespace, path: Path) -> None:
    """Each query's exact top ``k`` ids on the cached corpus, written to ``path``."""
    matrix, offsets, queries = load_corpus(args.documents, args.seed, args.pool_factor)
    scores = PackedDocuments.from_parts(matrix, offsets).score(queries[: args.queries])
    truth = [[str(i) for i in np.argsort(-row, kind="stable")[: args.k]] for row in scores]
    path.write_text(json.dumps(truth))
    bucket_of = buckets(args.documents, args.seed)
    filtered = {}
    for share in FILTER_SHARES:
        inside = bucket_of < share_filter(share)["bucket"]["$lt"]
        among = np.flatnonzero(inside)  # ascending: ties stay by position
        filtered[str(share)] = [
            [str(i) for i in among[np.argsort(-row[among], kind="stable")[: args.k]]]
            for row in scores
        ]
    path.with_suffix(".filters.json").write_text(json.dumps(filtered))


def encode_rate() -> float:
    """Documents per second the bundled MiniLM encodes shipped passages at (CPU)."""
    from realistic_corpus import shipped_texts

    from latecore import Encoder
    from latecore.models import bundled_minilm_path

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        encoder = Encoder(bundled_minilm_path(), device="cpu", show_progress=False)
    passages = shipped_texts()[0][:256]
    encoder.encode_documents(passages[:32])
    start = time.perf_counter()
    encoder.encode_documents(passages)
    return len(passages) / (time.perf_counter() - start)


def real_texts(args: argparse.Namespace, backends: Sequence[str]) -> list[str]:
    """Recall@10 of each backend against exact on the shipped texts (MiniLM, 384 dims)."""
    from realistic_corpus import shipped_texts

    from latecore import Encoder
    from latecore.models import bundled_minilm_path

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        encoder = Encoder(bundled_minilm_path(), device="cpu", show_progress=False)
    passages, queries = shipped_texts()
    packed = PackedDocuments(encoder.encode_documents(passages), dtype=np.float16)
    query_vectors = encoder.encode_queries(queries)
    cached = CachedEncoder(packed.matrix, packed.offsets)
    lines, truth = [], None
    for name in ["exact", *[b for b in backends if b != "exact"]]:
        options = {**BACKEND_OPTIONS[name], **REAL_TEXT_OPTIONS.get(name, {})}
        with LateIndex(cached, backend=name.split("-")[0], **options) as index:
            numbers = range(len(passages))
            index.add([f"doc {i}" for i in numbers], ids=[str(i) for i in numbers])
            index.build()
            got = ranked_ids(index.backend, index.store, query_vectors, args.k)
        truth = truth or got
        lines.append(f"| {name} | {len(passages)} | {len(queries)} | {recall(got, truth):.3f} |")
    return lines


REAL_TEXT_OPTIONS: dict[str, dict[str, Any]] = {
    "warp": {"build_min": 1, "n_candidates": 50},
    "qdrant": {"prefetch": 50},
    "qdrant-engine": {"prefetch": 50},
    "lancedb": {"build_min": 1, "n_candidates": 50},
    "plaid": {"num_partitions": 64, "rebuild_min": 0, "n_candidates": 50},
}
"""On ~540 passages: every backend builds its structure and proposes 50 candidates
(the defaults would re-score most of such a small corpus exactly)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--timed-queries", type=int, default=50, help="queries timed per setting")
    parser.add_argument("--backends", default="exact,warp,qdrant,qdrant-engine,lancedb,plaid")
    parser.add_argument("--sweep", action="append", default=[], help="e.g. warp.nprobe=8,16,32")
    parser.add_argument("--option", action="append", default=[], help='e.g. warp={"nprobe":8}')
    parser.add_argument("--real", action="store_true", help="also recall on the shipped texts")
    parser.add_argument("--filters", action="store_true", help="also filtered search (see above)")
    parser.add_argument("--pool-factor", type=int, default=1, help="pool the corpus first")
    parser.add_argument("--dtype", default="float16", help="the LateIndex storage dtype")
    parser.add_argument("--mmap", action="store_true", help="save, load mmap, search")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--pool-part", help=argparse.SUPPRESS)
    parser.add_argument("--pool-range", help=argparse.SUPPRESS)
    parser.add_argument("--pool-source", help=argparse.SUPPRESS)
    parser.add_argument("--truth", help=argparse.SUPPRESS)
    parser.add_argument("--options", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pool_part:
        pool_part(args)
        return
    if args.worker:
        worker(args)
        return

    backends = args.backends.split(",")
    if args.documents:
        print_table(args, run_backends(args, backends))
    if args.real:
        print(
            "\n| backend (shipped texts, MiniLM, 50 candidates) | documents | queries | recall@10 |"
        )
        print("|---|---:|---:|---:|")
        print("\n".join(real_texts(args, backends)))


def run_backends(args: argparse.Namespace, backends: Sequence[str]) -> list[dict[str, Any]]:
    """One worker process per backend; each one's JSON result (or its failure)."""
    overrides = dict(o.split("=", 1) for o in args.option)
    files = corpus_files(args.documents, args.seed, args.pool_factor)
    truth = files[0].parent / f"truth-{args.queries}-{args.k}.json"
    if not truth.exists() or not truth.with_suffix(".filters.json").exists():
        exact_truth(args, truth)
    args.encode_rate = encode_rate()
    rows = []
    for name in backends:
        command = [
            sys.executable, __file__, "--worker", name, "--documents", str(args.documents),
            "--seed", str(args.seed), "--queries", str(args.queries), "--k", str(args.k),
            "--truth", str(truth), "--options", overrides.get(name, "{}"),
            "--timed-queries", str(args.timed_queries), "--pool-factor", str(args.pool_factor),
            "--dtype", args.dtype, *(["--mmap"] if args.mmap else []),
            *(f"--sweep={s}" for s in args.sweep), *(["--filters"] if args.filters else []),
        ]  # fmt: skip
        done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
        lines = done.stdout.strip().splitlines()
        if done.returncode or not lines:
            print(f"{name} failed (exit {done.returncode})", file=sys.stderr, flush=True)
            continue
        rows.append(json.loads(lines[-1]))
        print(lines[-1], file=sys.stderr, flush=True)
    return rows


def print_table(args: argparse.Namespace, rows: Sequence[dict[str, Any]]) -> None:
    """The markdown table of every backend and setting measured."""
    n, rate = args.documents, args.encode_rate
    print(f"\n{n:,} documents; encoding them with the bundled MiniLM on this CPU would take")
    print(f"~{n / rate / 60:.0f} min ({rate:.0f} documents/s); queries: {args.queries} real ones")
    pooling = corpus_files(n, args.seed, args.pool_factor)[0].parent / "pooling.json"
    if args.pool_factor > 1 and pooling.exists():
        done = json.loads(pooling.read_text())
        print(
            f"pooled (factor {args.pool_factor}, 2 processes) in {done['seconds']:.0f} s: "
            f"{done['tokens_before']:,} -> {done['tokens_after']:,} token vectors"
        )
    print()
    print(
        "| backend | storage | setting | index time (s) | p50 ms | p95 ms "
        "| exact p50 ms (same run) | p50 vs exact | recall@10 | resident GiB after build "
        "| resident GiB | peak GiB "
        "| bytes/token store, mapped, engine |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        m = r["memory"]
        per_token = ", ".join(
            "-" if m.get(key) is None else f"{m[key] / max(m['tokens'], 1):.0f}"
            for key in ("store_bytes", "mapped_bytes", "engine_bytes")
        )
        for s in r["settings"]:
            print(
                f"| {r['backend']} | {r['config']} | {s['setting']} | {r['index_s']:.0f} "
                f"| {s['p50']:.1f} | {s['p95']:.1f} | {s['exact_p50']:.1f} "
                f"| {s['exact_p50'] / s['p50']:.1f}x | {s['recall']:.3f} | {r['built_gib']:.2f} "
                f"| {r['resident_gib']:.2f} | {r['peak_gib']:.2f} | {per_token} |"
            )
    if any("filters" in r for r in rows):
        print_filter_table(rows)


def print_filter_table(rows: Sequence[dict[str, Any]]) -> None:
    """The markdown table of ``--filters``: one line per backend and filter."""
    print(f"\nFiltered search (EXACT_SUBSET = {EXACT_SUBSET}; p50 ms through search_vectors)\n")
    print(
        "| backend | matching | recall@10 vs exact over them | leaks | unfiltered p50 "
        "| filtered p50 | filtered / unfiltered | engine path p50 | exact path p50 |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        for f in r.get("filters", []):
            exact_path = f.get("exact path p50")
            print(
                f"| {r['backend']} | {f['share']:.1%} ({f['matching']:,}) | {f['recall']:.3f} "
                f"| {f['leaks']} | {f['unfiltered p50']:.1f} | {f['filtered p50']:.1f} "
                f"| {f['filtered p50'] / f['unfiltered p50']:.2f}x | {f['engine path p50']:.1f} "
                f"| {'-' if exact_path is None else f'{exact_path:.1f}'} |"
            )


if __name__ == "__main__":
    main()
