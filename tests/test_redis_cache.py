"""The shared Redis tier, against a real ``redis-server`` (started on 127.0.0.1, a free port).

Entries are the disk cache's frames, so a damaged or foreign value is a miss; the
hot and local tiers are filled from Redis (read-through) and every write reaches
all tiers (write-through); an unreachable Redis costs misses and one warning,
never an exception.
"""

from __future__ import annotations

import json
import logging
import pickle
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from _redis_support import REDIS_SERVER, SKIP_REASON, RedisServer, free_port

from latecore import LateIndex, MultivectorCache, RedisCache, open_cache
from latecore.cache import _HEADER, cache_key, decode_multivector, encode_multivector
from latecore.testing import FakeEncoder, bundled_minilm_path

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

redis = pytest.importorskip("redis", reason="the redis client is the latecore[redis] extra")

CORPUS = [f"document {i} about {topic}" for i, topic in enumerate(["rivers", "bees", "stars"] * 4)]


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """The session server's URL, its database emptied for each test."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    yield redis_server.url
    client.close()


@pytest.fixture
def raw(redis_url: str) -> Iterator[object]:
    """A plain client on the same database: what another program (or an attacker) sees."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def _keys(n: int, tag: str = "doc") -> list[bytes]:
    return [cache_key("fp", "document", f"{tag} {i}") for i in range(n)]


def _arrays(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [
        rng.standard_normal((int(rng.integers(1, 60)), 16)).astype(np.float32) for _ in range(n)
    ]


def _redis_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "latecore.redis_cache" and r.levelno == logging.WARNING
    ]


def test_import_latecore_does_not_import_redis() -> None:
    code = "import sys, latecore; from latecore import RedisCache; print('redis' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_without_the_client_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(ImportError, match=r"latecore\[redis\]"):
        RedisCache("redis://127.0.0.1:1/0")
    with pytest.raises(ImportError, match=r"latecore\[redis\]"):
        FakeEncoder(cache="redis://127.0.0.1:1/0")


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="not a Redis URL"):
        RedisCache("/tmp/a-directory")
    with pytest.raises(ValueError, match="ttl"):
        RedisCache("redis://127.0.0.1:1/0", ttl=0)
    with pytest.raises(ValueError, match="dtype"):
        RedisCache("redis://127.0.0.1:1/0", dtype="bfloat16")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="one dtype"):
        RedisCache("redis://127.0.0.1:1/0", local=MultivectorCache(dtype="float32"))


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_round_trip_in_batches_stores_the_disk_frames(
    redis_url: str, raw: redis.Redis, dtype: str
) -> None:
    keys, arrays = _keys(600), _arrays(600)  # more than one MGET / pipeline chunk
    with RedisCache(redis_url, dtype=dtype, memory_bytes=0) as cache:  # type: ignore[arg-type]
        cache.put_many(keys, arrays)
        got = cache.get_many([*keys, cache_key("fp", "document", "never stored")])
        assert got[-1] is None
        assert all(g is not None and g.dtype == dtype for g in got[:-1])
        assert all(np.array_equal(g, a.astype(dtype)) for g, a in zip(got, arrays, strict=False))
        assert raw.get(cache.redis_key(keys[0])) == encode_multivector(arrays[0], dtype)  # type: ignore[arg-type]
        stats = cache.stats()
    assert (stats.hits, stats.misses, stats.items) == (600, 1, 600)
    assert stats.bytes == sum(len(encode_multivector(a, dtype)) for a in arrays)  # type: ignore[arg-type]


def test_int8_entries_read_back_as_their_scaled_values(redis_url: str) -> None:
    keys, arrays = _keys(20), _arrays(20)
    with RedisCache(redis_url, dtype="int8", memory_bytes=0) as cache:
        cache.put_many(keys, arrays)
        got = cache.get_many(keys)
    assert all(g is not None and g.dtype == np.float32 for g in got)
    for g, a in zip(got, arrays, strict=True):
        assert g is not None
        np.testing.assert_array_equal(g, decode_multivector(encode_multivector(a, "int8")))
        assert np.abs(g - a).max() <= np.abs(a).max() / 127 + 1e-6  # one int8 step at most


def test_the_url_opens_a_redis_cache_wherever_a_cache_is_taken(redis_url: str) -> None:
    first = FakeEncoder(cache=redis_url)
    assert isinstance(first.cache, RedisCache)
    first.encode_documents(CORPUS)
    second = FakeEncoder().with_cache(redis_url)
    before = second.encode_stats()
    again = second.encode_documents(CORPUS)
    assert (second.encode_stats() - before).documents == 0
    assert second.encoded == []
    assert [a.tobytes() for a in again] == [
        a.tobytes() for a in FakeEncoder(cache=open_cache(redis_url)).encode_documents(CORPUS)
    ]


def test_prefix_separates_caches_and_clear_removes_only_its_own(
    redis_url: str, raw: redis.Redis
) -> None:
    key, array = _keys(1), _arrays(1)
    raw.set(b"someone-else:key", b"their value")
    with (
        RedisCache(redis_url, prefix="app-a:", memory_bytes=0) as a,
        RedisCache(redis_url, prefix="app-b:", memory_bytes=0) as b,
    ):
        a.put_many(key, array)
        assert raw.exists(b"app-a:" + key[0].hex().encode()) == 1
        assert b.get_many(key) == [None]
        b.put_many(key, array)
        a.clear()
        assert a.get_many(key) == [None]
        assert b.get_many(key)[0] is not None
    assert raw.get(b"someone-else:key") == b"their value"


def test_ttl_is_set_on_every_write_and_entries_expire(redis_url: str, raw: redis.Redis) -> None:
    keys, arrays = _keys(3), _arrays(3)
    with RedisCache(redis_url, ttl=60, memory_bytes=0) as cache:
        cache.put_many(keys, arrays)
        ttls = [raw.pttl(cache.redis_key(k)) for k in keys]
        assert all(0 < t <= 60_000 for t in ttls)
    with RedisCache(redis_url, ttl=0.05, memory_bytes=0) as short:
        short.put_many(keys, arrays)
        time.sleep(0.3)
        assert short.get_many(keys) == [None, None, None]
    with RedisCache(redis_url, memory_bytes=0) as forever:
        forever.put_many(keys, arrays)
        assert [raw.pttl(forever.redis_key(k)) for k in keys] == [-1, -1, -1]


def _planted_values() -> dict[str, bytes]:
    good = encode_multivector(np.ones((4, 16), np.float32))
    flipped = bytearray(good)
    flipped[-3] ^= 0x01
    old_version = bytearray(good)
    old_version[4] = 1  # frame version 1 (CRC-32): no longer read
    return {
        "bit-flipped": bytes(flipped),
        "truncated": good[:-5],
        "header-only": good[: _HEADER.size],
        "old-frame-version": bytes(old_version),
        "foreign-json": json.dumps({"vectors": [[1.0] * 16] * 4}).encode(),
        "foreign-npy": np.ones((4, 16), np.float16).tobytes(),
        "pickled-array": pickle.dumps(np.ones((4, 16), np.float16)),
        "empty": b"",
    }


@pytest.mark.parametrize("attack", sorted(_planted_values()))
def test_damaged_and_foreign_values_are_misses(
    redis_url: str, raw: redis.Redis, attack: str
) -> None:
    (key,) = _keys(1)
    with RedisCache(redis_url, memory_bytes=0) as cache:
        raw.set(cache.redis_key(key), _planted_values()[attack])
        assert cache.get_many([key]) == [None]
        raw.lpush(cache.redis_key(b"list"), b"x")  # another type under the prefix: no error
        assert cache.get_many([b"list"]) == [None]
        cache.put_many([key], [np.ones((4, 16), np.float32)])  # the next write replaces it
        (fixed,) = cache.get_many([key])
    assert fixed is not None and fixed.shape == (4, 16)


def test_two_tiers_read_through(redis_url: str, raw: redis.Redis, tmp_path: Path) -> None:
    keys, arrays = _keys(5), _arrays(5)
    with RedisCache(redis_url, memory_bytes=0) as writer:
        writer.put_many(keys, arrays)
    with RedisCache(redis_url, local=tmp_path / "disk") as tiered:
        assert all(a is not None for a in tiered.get_many(keys))  # from Redis
        with MultivectorCache(tmp_path / "disk", memory_bytes=0) as disk:
            assert all(a is not None for a in disk.get_many(keys)), "Redis hits fill the disk"
        raw.flushall()
        assert tiered.local is not None
        tiered.local.clear()
        got = tiered.get_many(keys)  # Redis and disk empty: the hot tier answers
        assert all(
            np.array_equal(g, a.astype(np.float16)) for g, a in zip(got, arrays, strict=True)
        )
    with RedisCache(redis_url, local=tmp_path / "disk2", memory_bytes=0) as cold:
        cold.put_many(keys[:1], arrays[:1])
        raw.flushall()
        assert cold.get_many(keys[:1])[0] is not None, "the disk tier answers without Redis"


def test_two_tiers_write_through(redis_url: str, raw: redis.Redis, tmp_path: Path) -> None:
    keys, arrays = _keys(4), _arrays(4)
    with RedisCache(redis_url, local=tmp_path / "disk") as tiered:
        tiered.put_many(keys, arrays)
        assert [raw.exists(tiered.redis_key(k)) for k in keys] == [1, 1, 1, 1]
        assert raw.get(tiered.redis_key(keys[2])) == encode_multivector(arrays[2])
    with MultivectorCache(tmp_path / "disk", memory_bytes=0) as disk:
        got = disk.get_many(keys)
    assert all(np.array_equal(g, a.astype(np.float16)) for g, a in zip(got, arrays, strict=True))


def test_unreachable_at_start_is_misses_and_one_warning(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    cache = RedisCache(url, retry_interval=0, local=tmp_path / "disk")
    encoder = FakeEncoder(cache=cache)
    with caplog.at_level(logging.WARNING):
        first = encoder.encode_documents(CORPUS)
        second = encoder.encode_documents(CORPUS)  # the hot tier still serves
        cache.clear_memory()
        third = encoder.encode_documents(CORPUS)  # and so does the disk
        stats = cache.stats()
    assert len(_redis_warnings(caplog)) == 1
    assert url in _redis_warnings(caplog)[0].getMessage()
    assert encoder.encoded == CORPUS
    assert [a.tobytes() for a in first] == [a.tobytes() for a in second]
    assert [a.tobytes() for a in first] == [a.tobytes() for a in third]
    assert stats.items == len(CORPUS)  # the local tier's count while Redis is away
    assert not cache.available


@pytest.mark.skipif(REDIS_SERVER is None, reason=SKIP_REASON)
def test_redis_stopped_mid_run_search_keeps_working(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    server = RedisServer(tmp_path / "redis")
    try:
        cache = RedisCache(server.url, retry_interval=0)
        index = LateIndex(FakeEncoder(cache=cache))
        reference = LateIndex(FakeEncoder())
        for target in (index, reference):
            target.add(CORPUS[:6], ids=[str(i) for i in range(6)])
        queries = ["rivers", "bees and stars", "document 4"]

        def results(target: LateIndex) -> list[list[tuple[str, float]]]:
            return [[(h.id, h.score) for h in target.search(q, k=4)] for q in queries]

        assert results(index) == results(reference)
        server.stop()
        with caplog.at_level(logging.WARNING):
            index.add(CORPUS[6:], ids=[str(i) for i in range(6, len(CORPUS))])
            reference.add(CORPUS[6:], ids=[str(i) for i in range(6, len(CORPUS))])
            cache.clear_memory()
            index.encoder.encode_documents(CORPUS)  # reads and writes against a dead server
            during, expected = results(index), results(reference)
        assert during == expected
        assert len(index) == len(CORPUS)
        assert len(_redis_warnings(caplog)) == 1
        assert not cache.available

        server.start()  # back on the same port: used again on the next call
        cache.put_many(_keys(1, "after"), _arrays(1))
        assert cache.available
        client = redis.Redis.from_url(server.url)
        assert client.exists(cache.redis_key(_keys(1, "after")[0])) == 1
        client.close()
        assert len(_redis_warnings(caplog)) == 1
        cache.close()
    finally:
        server.stop()


CHILD = textwrap.dedent(
    """
    import json, sys, warnings
    from latecore import Encoder
    from latecore.errors import ZeroShotWarning
    url, model, texts = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ZeroShotWarning)
        encoder = Encoder(model, device="cpu", cache=url, show_progress=False)
    vectors = encoder.encode_documents(texts)
    print(json.dumps({
        "encoded": encoder.encode_stats().documents,
        "fingerprint": encoder.fingerprint,
        "vectors": [v.tobytes().hex() for v in vectors],
    }))
    """
)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_second_process_encodes_nothing_the_first_encoded(
    redis_url: str, minilm_encoder: object
) -> None:
    """Two processes share one Redis: the second encodes 0 of the corpus the first encoded."""
    from latecore.documents import sample_corpus_path

    lines = sample_corpus_path().read_text("utf-8").splitlines()[:40]
    texts = [json.loads(line)["text"] for line in lines]
    first = minilm_encoder.with_cache(RedisCache(redis_url))  # type: ignore[attr-defined]
    before = first.encode_stats()
    vectors = first.encode_documents(texts)
    assert (first.encode_stats() - before).documents == len(texts)

    child = subprocess.run(
        [sys.executable, "-c", CHILD, redis_url, str(bundled_minilm_path()), json.dumps(texts)],
        capture_output=True,
        text=True,
        timeout=240,
        check=True,
    )
    report = json.loads(child.stdout.strip().splitlines()[-1])
    assert report["fingerprint"] == first.fingerprint
    assert report["encoded"] == 0
    assert report["vectors"] == [v.tobytes().hex() for v in vectors]


def test_load_encoder_and_the_adapters_take_a_redis_url_as_cache_dir(redis_url: str) -> None:
    from latecore import load_encoder

    encoder = load_encoder(encoder=FakeEncoder(), cache_dir=redis_url, require_cache=True)
    assert isinstance(encoder.cache, RedisCache)
    assert encoder.cache.location == redis_url


def test_the_command_line_shares_a_redis_cache(
    redis_url: str, tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from latecore.cli import main

    notes = tmp_path / "notes.txt"
    notes.write_text("Bees make honey.\n\nWasps do not.\n\nRivers flow.", encoding="utf-8")
    argv = ["search", str(notes), "-q", "honey", "--model", str(tiny_checkpoint)]
    argv += ["--cache-dir", redis_url, "--no-progress"]
    assert main(argv) == 0
    first = capsys.readouterr().err
    assert main(argv) == 0
    second = capsys.readouterr().err
    assert "0 served from the cache, 3 encoded" in first
    assert "3 served from the cache, 0 encoded" in second
    assert f"(cache: {redis_url})" in second
