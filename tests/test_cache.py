"""MultivectorCache: content addressing, safe storage, counters, limits."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import diskcache
import numpy as np
import pytest
from diskcache.core import MODE_BINARY
from hypothesis import given, settings
from hypothesis import strategies as st

from latecore.cache import (
    MultivectorCache,
    cache_key,
    decode_multivector,
    default_cache_dir,
    encode_multivector,
)

# Every code point, lone surrogates (category Cs) and NUL included.
any_text = st.text(alphabet=st.characters(exclude_categories=()), max_size=12)
roles = st.sampled_from(["document", "query", "documen", "tdocument", ""])


@settings(max_examples=600, deadline=None)
@given(a=st.tuples(any_text, roles, any_text), b=st.tuples(any_text, roles, any_text))
def test_distinct_triples_never_share_a_key(
    a: tuple[str, str, str], b: tuple[str, str, str]
) -> None:
    assert (cache_key(*a) == cache_key(*b)) == (a == b)


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (("fp", "document", "ab"), ("fpd", "ocument", "ab")),
        (("fp", "documentab", "c"), ("fp", "document", "abc")),
        (("fp", "document", "\ud800"), ("fp", "document", "\ufffd")),
        (("fp", "document", "\ud800"), ("fp", "document", "\udc00")),
        (("fp", "document", "a\x00"), ("fp", "document", "a")),
        (("fp", "document", "e\u0301"), ("fp", "document", "\u00e9")),
    ],
)
def test_tricky_neighbours_get_distinct_keys(left: tuple, right: tuple) -> None:
    assert cache_key(*left) != cache_key(*right)


def test_round_trip_float16_within_1e3_and_float32_exact(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal((n, 16)).astype(np.float32) for n in (1, 5, 300)]
    keys = [cache_key("fp", "document", str(i)) for i in range(3)]
    for dtype, tolerance in (("float16", 1e-3 * 8), ("float32", 0.0)):
        cache = MultivectorCache(tmp_path / dtype, dtype=dtype)  # type: ignore[arg-type]
        cache.put_many(keys, arrays)
        cache.clear_memory()  # read back from disk, not from the hot tier
        for got, want in zip(cache.get_many(keys), arrays, strict=True):
            assert got is not None and got.dtype == np.dtype(dtype)
            assert np.abs(got.astype(np.float32) - want).max() <= tolerance * np.abs(want).max()
        cache.close()


def test_counters_track_hits_misses_items_and_bytes(cache: MultivectorCache) -> None:
    keys = [cache_key("fp", "document", t) for t in ("a", "b", "c")]
    assert cache.get_many(keys) == [None, None, None]
    cache.put_many(keys[:2], [np.ones((4, 8), np.float32)] * 2)
    assert [a is not None for a in cache.get_many(keys)] == [True, True, False]
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.items) == (2, 4, 2)
    assert stats.bytes >= 2 * 4 * 8 * 2


def test_directory_is_created_private(tmp_path: Path) -> None:
    MultivectorCache(tmp_path / "fresh").close()
    assert stat.S_IMODE(os.stat(tmp_path / "fresh").st_mode) == 0o700


def test_default_directory_follows_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LATECORE_CACHE_DIR", str(tmp_path / "env-cache"))
    assert default_cache_dir() == tmp_path / "env-cache"
    with MultivectorCache() as cache:
        assert cache.directory == tmp_path / "env-cache"


class _CreatesSentinel:
    """Unpickling this object opens (creates) a file: a stand-in for arbitrary code."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (open, (str(self.path), "w"))


def test_planted_pickle_row_is_a_miss_and_never_runs(tmp_path: Path) -> None:
    directory = tmp_path / "shared"
    sentinel = tmp_path / "pwned"
    key = cache_key("fp", "document", "victim text")
    with diskcache.Cache(str(directory)) as attacker:  # diskcache's default, pickling Disk
        attacker.set(key, _CreatesSentinel(sentinel))
    with diskcache.Cache(str(directory)) as naive:  # proves the payload is live
        naive.get(key)
    assert sentinel.exists()
    sentinel.unlink()

    with MultivectorCache(directory) as cache:
        assert cache.get_many([key]) == [None]
        assert not sentinel.exists()
        # the miss is recomputed and replaces the planted row
        cache.put_many([key], [np.ones((2, 4), np.float32)])
        cache.clear_memory()
        (array,) = cache.get_many([key])
        assert array is not None and array.shape == (2, 4)
    assert not sentinel.exists()


def test_filename_outside_directory_is_neither_read_nor_removed(tmp_path: Path) -> None:
    directory = tmp_path / "shared"
    outside = tmp_path / "secret.bin"
    outside.write_bytes(encode_multivector(np.ones((1, 2), np.float32)))
    key = cache_key("fp", "document", "x")
    MultivectorCache(directory).close()
    with sqlite3.connect(directory / "cache.db") as db:
        for filename in (str(outside), "../secret.bin"):
            db.execute("DELETE FROM Cache")
            db.execute(
                "INSERT INTO Cache (key, raw, store_time, expire_time, access_time,"
                " access_count, tag, size, mode, filename, value)"
                " VALUES (?, 1, 0, NULL, 0, 0, NULL, 0, ?, ?, NULL)",
                (key, MODE_BINARY, filename),
            )
            db.commit()
            with MultivectorCache(directory) as cache:
                assert cache.get_many([key]) == [None]
                cache.put_many([key], [np.zeros((3, 2), np.float32)])  # replaces the row
                cache.clear_memory()
                (array,) = cache.get_many([key])
                assert array is not None and array.shape == (3, 2)
            assert outside.exists()


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_damaged_values_are_misses(tmp_path: Path, damage: str) -> None:
    key = cache_key("fp", "document", "x")
    good = encode_multivector(np.ones((4, 4), np.float32))
    bad = {
        "truncate": good[:-3],
        "flip": good[:-1] + bytes([good[-1] ^ 0x01]),
        "garbage": b"LCMV" + os.urandom(40),
    }[damage]
    assert decode_multivector(bad) is None
    with diskcache.Cache(str(tmp_path / "c")) as raw:
        raw.set(key, bad)
    with MultivectorCache(tmp_path / "c") as cache:
        assert cache.get_many([key]) == [None]


def test_size_limit_evicts_least_recently_stored(tmp_path: Path) -> None:
    limit = 400_000
    with MultivectorCache(tmp_path / "c", size_limit=limit, memory_bytes=0) as cache:
        array = np.ones((100, 96), np.float32)  # ~19 KB per entry in float16
        keys = [cache_key("fp", "document", str(i)) for i in range(60)]
        for key in keys:
            cache.put_many([key], [array])
        assert cache.stats().bytes <= limit * 1.05
        assert cache.get_many(keys[-1:])[0] is not None
        assert cache.get_many(keys[:1])[0] is None


def test_bad_arguments_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="float16"):
        MultivectorCache(tmp_path, dtype="int4")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="2-D"):
        encode_multivector(np.ones(3, np.float32))
    with MultivectorCache(tmp_path / "c") as cache, pytest.raises(ValueError, match="keys"):
        cache.put_many([b"k"], [])
