"""MultivectorCache read and write costs: disk vs hot tier, and write overhead of a cold run.

Workload (issue 6):

- reads: 1,000 cached multivectors of 50-300 tokens (uniform) x 96 dims, stored as
  float16 (answerai-colbert-small's shape); ``get_many`` of the first 100 and of
  all 1,000 keys, (a) from disk, with the in-process hot tier dropped
  (``clear_memory()``) before every call, (b) from disk through a freshly opened
  ``MultivectorCache`` on the same directory (a new process's first read, with the
  OS page cache warm), (c) from the hot tier. Microseconds per item.
- writes: the all-MiniLM-L6-v2 weights bundled with latecore's ``demo`` extra
  (zero-shot ColBERT, 384 dims) encode ``--encode-docs`` passages of the sample
  corpus without a cache; ``put_many`` of the resulting vectors into an empty cache
  is timed against that encode, and so is the whole cold ``encode_documents`` with
  a cache (lookups that miss + encode + write) against the encode without one.

- Redis on loopback (needs ``redis-server`` on PATH and ``latecore[redis]``; skipped
  otherwise, or with ``--skip-redis``): 1,000 multivectors of exactly 100 tokens x
  ``--dim`` float16; ``get_many`` of 100 and of 1,000 keys from a ``RedisCache``
  without a hot tier (one round trip, an MGET per 256 keys) beside the disk cache
  with its hot tier dropped, the same ``RedisCache`` with redis-py's pure-Python
  reply parser instead of hiredis, and one GET per key (what an unbatched client
  pays). The benchmark starts its own ``redis-server`` on 127.0.0.1 (no
  persistence) and stops it.

Measurements of each kind are interleaved round by round after a few seconds of
spin-up; medians are reported. A cProfile of the disk ``get_many(100)`` path shows
where its time goes. Run: ``python benchmarks/bench_cache.py``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path

import numpy as np

from latecore import MultivectorCache, RedisCache, cache_key
from latecore.cache import decode_multivector


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def multivectors(n: int, dim: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = []
    for length in rng.integers(50, 301, size=n):
        a = rng.standard_normal((int(length), dim)).astype(np.float32)
        arrays.append((a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float16))
    return arrays


def read_benchmark(args: argparse.Namespace, root: Path) -> None:
    arrays = multivectors(1000, args.dim)
    keys = [cache_key("bench-fingerprint", "document", f"doc {i}") for i in range(len(arrays))]
    directory = root / "reads"
    cache = MultivectorCache(directory)
    cache.put_many(keys, arrays)
    mean_kb = statistics.mean(a.nbytes for a in arrays) / 1024

    def disk(n: int) -> Callable[[], float]:
        def run() -> float:
            cache.clear_memory()
            return timed(lambda: cache.get_many(keys[:n]))

        return run

    def fresh(n: int) -> Callable[[], float]:
        def run() -> float:
            with MultivectorCache(directory) as other:
                return timed(lambda: other.get_many(keys[:n]))

        return run

    def hot(n: int) -> Callable[[], float]:
        def run() -> float:
            cache.get_many(keys[:n])  # make sure they are in memory
            return timed(lambda: cache.get_many(keys[:n]))

        return run

    cases = {
        f"{kind} get_many({n})": (maker(n), n)
        for n in (100, 1000)
        for kind, maker in (("disk", disk), ("fresh-object", fresh), ("hot-tier", hot))
    }
    found = cache.get_many(keys[:100])
    assert all(f is not None and np.array_equal(f, a) for f, a in zip(found, arrays, strict=False))

    samples: dict[str, list[float]] = {name: [] for name in cases}
    # Interleave the cases of one size with each other, one size after the other: a
    # 100-key read right after dropping a 1,000-entry hot tier (33 MB) measures that
    # memory churn more than the read (18-29 us instead of ~12 us per item here).
    for n in (100, 1000):
        group = {name: run for name, (run, size) in cases.items() if size == n}
        deadline = time.perf_counter() + args.spin_up
        while time.perf_counter() < deadline:
            for run in group.values():
                run()
        for _ in range(args.rounds):
            for name, run in group.items():
                samples[name].append(run())

    print(f"\n## reads: 1,000 multivectors of 50-300 x {args.dim} float16 (mean {mean_kb:.1f} KiB)")
    print(f"rounds={args.rounds} (medians), target: disk get_many(100) <= 30 us/item\n")
    print("| case | ms per call | us per item |")
    print("|---|---:|---:|")
    for name, (_, n) in cases.items():
        seconds = statistics.median(samples[name])
        print(f"| {name} | {1000 * seconds:.2f} | {1e6 * seconds / n:.1f} |")
    disk100 = statistics.median(samples["disk get_many(100)"]) / 100
    hot100 = statistics.median(samples["hot-tier get_many(100)"]) / 100
    print(f"\ndisk / hot tier (get_many(100)): {disk100 / hot100:.0f}x")

    profile = cProfile.Profile()
    for _ in range(20):
        cache.clear_memory()
        profile.runcall(cache.get_many, keys[:100])
    stream = io.StringIO()
    pstats.Stats(profile, stream=stream).sort_stats("tottime").print_stats(8)
    print("\nprofile of 20 x disk get_many(100), by own time:")
    print("\n".join(line for line in stream.getvalue().splitlines()[6:] if line.strip()))
    cache.close()


def start_redis(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A ``redis-server`` on 127.0.0.1 and a free port, without persistence."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [
            "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(directory),
        ],
        stdout=subprocess.DEVNULL,
    )
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    return server, f"redis://127.0.0.1:{port}/0"


def redis_benchmark(args: argparse.Namespace, root: Path) -> None:
    import redis
    from redis.connection import _RESP2Parser

    rng = np.random.default_rng(1)
    arrays = []
    for _ in range(1000):
        a = rng.standard_normal((100, args.dim)).astype(np.float32)
        arrays.append((a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float16))
    keys = [cache_key("bench-fingerprint", "document", f"doc {i}") for i in range(len(arrays))]
    server, url = start_redis(root)
    try:
        disk = MultivectorCache(root / "redis-bench-disk")
        shared = RedisCache(url, memory_bytes=0)
        pure = RedisCache(url, memory_bytes=0)
        pure._client = redis.Redis.from_url(url, parser_class=_RESP2Parser)
        disk.put_many(keys, arrays)
        shared.put_many(keys, arrays)
        found = shared.get_many(keys)
        assert all(
            f is not None and np.array_equal(f, a) for f, a in zip(found, arrays, strict=True)
        )
        client = redis.Redis.from_url(url)

        def disk_read(n: int) -> Callable[[], float]:
            def run() -> float:
                disk.clear_memory()
                return timed(lambda: disk.get_many(keys[:n]))

            return run

        def cache_read(cache: RedisCache, n: int) -> Callable[[], float]:
            return lambda: timed(lambda: cache.get_many(keys[:n]))

        def one_get_per_key(n: int) -> Callable[[], float]:
            names = [shared.redis_key(k) for k in keys[:n]]
            return lambda: timed(lambda: [decode_multivector(client.get(m)) for m in names])

        samples: dict[str, list[float]] = {}
        sizes: dict[str, int] = {}
        for n in (100, 1000):
            group = {
                f"disk get_many({n})": disk_read(n),
                f"Redis get_many({n})": cache_read(shared, n),
                f"Redis get_many({n}), pure-Python parser": cache_read(pure, n),
                f"Redis, one GET per key ({n})": one_get_per_key(n),
            }
            sizes.update(dict.fromkeys(group, n))
            deadline = time.perf_counter() + args.spin_up
            while time.perf_counter() < deadline:
                for run in group.values():
                    run()
            for name in group:
                samples[name] = []
            for _ in range(args.rounds):
                for name, run in group.items():
                    samples[name].append(run())
        version = client.info("server")["redis_version"]
        print(
            f"\n## reads: disk vs Redis {version} on loopback, 1,000 multivectors of 100 x "
            f"{args.dim} float16 ({arrays[0].nbytes / 1024:.1f} KiB each), no hot tier"
        )
        print(f"rounds={args.rounds} (medians)\n")
        print("| case | ms per call | us per item |")
        print("|---|---:|---:|")
        for name, times in samples.items():
            seconds = statistics.median(times)
            print(f"| {name} | {1000 * seconds:.2f} | {1e6 * seconds / sizes[name]:.1f} |")
        for n in (100, 1000):
            ratio = statistics.median(samples[f"Redis get_many({n})"]) / statistics.median(
                samples[f"disk get_many({n})"]
            )
            print(f"\nRedis / disk (get_many({n})): {ratio:.2f}x")
        client.close()
        shared.close()
        pure.close()
        disk.close()
    finally:
        server.terminate()
        server.wait()


def write_benchmark(args: argparse.Namespace, root: Path) -> None:
    from latecore import Encoder
    from latecore.errors import ZeroShotWarning
    from latecore.testing import bundled_minilm_path

    corpus = files("latecore").joinpath("data/sample_corpus.jsonl").read_text("utf-8")
    texts = [json.loads(line)["text"] for line in corpus.splitlines()][: args.encode_docs]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ZeroShotWarning)
        encoder = Encoder(bundled_minilm_path(), device="cpu", show_progress=False)
    vectors = encoder.encode_documents(texts)
    counter = iter(range(10**9))

    def new_cache() -> MultivectorCache:
        return MultivectorCache(root / f"writes-{next(counter)}", memory_bytes=0)

    def encode_only() -> float:
        return timed(lambda: encoder.encode_documents(texts))

    def put_only() -> float:
        with new_cache() as cache:
            keys = [cache_key(encoder.fingerprint, "document", t) for t in texts]
            return timed(lambda: cache.put_many(keys, vectors))

    def cold_with_cache() -> float:
        with new_cache() as cache:
            cached = encoder.with_cache(cache)
            return timed(lambda: cached.encode_documents(texts))

    cases = {
        "encode (no cache)": encode_only,
        "put_many": put_only,
        "cold encode + cache": cold_with_cache,
    }
    deadline = time.perf_counter() + args.spin_up
    while time.perf_counter() < deadline:
        encode_only()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, run in cases.items():
            samples[name].append(run())
    median = {name: statistics.median(times) for name, times in samples.items()}
    tokens = sum(v.shape[0] for v in vectors)
    print(
        f"\n## cold-run writes: {len(texts)} passages, {tokens} token vectors x "
        f"{vectors[0].shape[1]} dims (MiniLM zero-shot), float16 storage"
    )
    print(f"rounds={args.rounds} (medians)\n")
    print("| case | ms | ms per doc |")
    print("|---|---:|---:|")
    for name, seconds in median.items():
        print(f"| {name} | {1000 * seconds:.1f} | {1000 * seconds / len(texts):.2f} |")
    encode = median["encode (no cache)"]
    print(f"\nput_many / encode: {median['put_many'] / encode:.1%}")
    print(
        f"cold encode with cache / encode without: {median['cold encode + cache'] / encode:.3f}x "
        f"(overhead {median['cold encode + cache'] / encode - 1:+.1%})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--write-rounds", type=int, default=5)
    parser.add_argument("--encode-docs", type=int, default=100)
    parser.add_argument("--spin-up", type=float, default=3.0, help="seconds of warm-up")
    parser.add_argument("--skip-writes", action="store_true", help="reads only (no model)")
    parser.add_argument("--skip-reads", action="store_true", help="writes only")
    parser.add_argument("--skip-redis", action="store_true", help="no Redis comparison")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="latecore-bench-cache-") as tmp:
        if not args.skip_reads:
            read_benchmark(args, Path(tmp))
        if not args.skip_redis:
            if shutil.which("redis-server") is None:
                print("\n(Redis comparison skipped: redis-server is not on PATH)")
            else:
                redis_benchmark(args, Path(tmp))
        if not args.skip_writes:
            args.rounds = args.write_rounds
            write_benchmark(args, Path(tmp))


if __name__ == "__main__":
    main()
