"""Planted and damaged cache rows: never code, never a file outside, always recomputed.

Extends ``tests/test_cache.py`` (which checks that each planted row reads as a
miss at the cache level): here every attack goes through the ``Encoder`` path,
a sentinel file outside the cache directory is checked for existence, content
and modification time, and the entry must be valid again afterwards.

Run with ``LATECORE_RELIABILITY_DISK=default`` to point these tests at
diskcache's default ``Disk`` and see which attacks ``SafeDisk`` stops.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import diskcache
import numpy as np
import pytest
from _rel_support import RELIABILITY_DISK
from diskcache.core import MODE_BINARY, MODE_RAW

import latecore.cache
from latecore.cache import MultivectorCache, SafeDisk, cache_key, encode_multivector
from latecore.testing import FakeEncoder


@pytest.fixture
def storage_disk(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[diskcache.Disk]]:
    """The ``Disk`` class MultivectorCache uses in this test (see the module docstring)."""
    if RELIABILITY_DISK == "default":
        monkeypatch.setattr(latecore.cache, "SafeDisk", diskcache.Disk)
        yield diskcache.Disk
    else:
        yield SafeDisk


VICTIM = "the victim document about rivers"
BYSTANDER = "an innocent bystander"


class _TruncatesSentinel:
    """Unpickling this opens the sentinel for writing, which empties it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, ...]:
        return (open, (str(self.path), "w"))


class Sentinel:
    """A file outside the cache directory holding a well-formed frame of the wrong vectors.

    If the cache ever read it, the encoder would return those vectors as a hit.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.write_bytes(encode_multivector(np.full((5, 32), 0.5, np.float32)))
        self.content = path.read_bytes()
        self.mtime_ns = path.stat().st_mtime_ns

    def assert_untouched(self) -> None:
        assert self.path.exists(), "the file outside the cache directory was deleted"
        assert self.path.read_bytes() == self.content, "the file outside was overwritten"
        assert self.path.stat().st_mtime_ns == self.mtime_ns, "the file outside was modified"


def _plant_row(directory: Path, key: bytes, mode: int, filename: str | None, value: object) -> None:
    with sqlite3.connect(directory / "cache.db") as db:
        db.execute("DELETE FROM Cache WHERE key = ?", (key,))
        db.execute(
            "INSERT INTO Cache (key, raw, store_time, expire_time, access_time,"
            " access_count, tag, size, mode, filename, value)"
            " VALUES (?, 1, 0, NULL, 0, 0, NULL, 0, ?, ?, ?)",
            (key, mode, filename, value),
        )
    db.close()


def _plant(attack: str, directory: Path, key: bytes, sentinel: Sentinel) -> None:
    good = encode_multivector(np.ones((4, 32), np.float32))
    if attack == "pickle":
        with diskcache.Cache(str(directory)) as attacker:  # the default, pickling Disk
            attacker.set(key, _TruncatesSentinel(sentinel.path))
    elif attack == "absolute-filename":
        _plant_row(directory, key, MODE_BINARY, str(sentinel.path), None)
    elif attack == "dotdot-filename":
        _plant_row(directory, key, MODE_BINARY, f"../{sentinel.path.name}", None)
    elif attack == "symlink-filename":
        (directory / "planted.val").symlink_to(sentinel.path)
        _plant_row(directory, key, MODE_BINARY, "planted.val", None)
    elif attack == "truncated":
        _plant_row(directory, key, MODE_RAW, None, good[:-7])
    elif attack == "bit-flipped":
        flipped = bytearray(good)
        flipped[-5] ^= 0x10
        _plant_row(directory, key, MODE_RAW, None, bytes(flipped))
    else:
        raise AssertionError(attack)


ATTACKS = [
    "pickle",
    "absolute-filename",
    "dotdot-filename",
    "symlink-filename",
    "truncated",
    "bit-flipped",
]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("attack", ATTACKS)
def test_tampered_entry_is_recomputed_through_the_encoder(
    tmp_path: Path, attack: str, storage_disk: type[diskcache.Disk]
) -> None:
    """A planted or damaged row for a document is a miss: recomputed, replaced, nothing else.

    Guarantees: no pickled payload runs; no file outside the cache directory is
    read, modified or deleted; ``encode_documents`` returns the correct vectors
    (those of an uncached encoder, rounded to float16), having re-encoded the
    victim; afterwards the row is a valid raw entry; no exception is raised.
    """
    directory = tmp_path / "cache"
    sentinel = Sentinel(tmp_path / "sentinel.bin")
    MultivectorCache(directory).close()
    encoder = FakeEncoder(cache=MultivectorCache(directory))
    key = cache_key(encoder.fingerprint, "document", VICTIM)
    _plant(attack, directory, key, sentinel)

    got = encoder.encode_documents([VICTIM, BYSTANDER])

    sentinel.assert_untouched()
    expected = [a.astype(np.float16) for a in FakeEncoder().encode_documents([VICTIM, BYSTANDER])]
    served = [
        a.astype(np.float16).tobytes() == e.tobytes() for a, e in zip(got, expected, strict=True)
    ]
    assert served == [True, True], "wrong vectors returned: a tampered entry was served"
    assert VICTIM in encoder.encoded, "the tampered entry was served instead of recomputed"
    assert encoder.cache is not None
    encoder.cache.close()
    with MultivectorCache(directory, memory_bytes=0) as reopened:
        (stored,) = reopened.get_many([key])
    assert stored is not None and stored.tobytes() == expected[0].tobytes()
    with sqlite3.connect(directory / "cache.db") as db:
        row = db.execute("SELECT mode, filename FROM Cache WHERE key = ?", (key,)).fetchall()
    db.close()
    assert row == [(MODE_RAW, None)]
    sentinel.assert_untouched()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("attack", ["absolute-filename", "dotdot-filename", "symlink-filename"])
@pytest.mark.parametrize("removal", ["clear", "evict"])
def test_removing_planted_rows_never_deletes_outside_files(
    tmp_path: Path, attack: str, removal: str, storage_disk: type[diskcache.Disk]
) -> None:
    """``clear()`` and size-limit eviction drop planted rows without touching their files.

    Guarantees: the file a planted row names outside the cache directory (by
    absolute path, ``../`` or a symlink) survives unchanged, and the cache keeps
    working (a fresh entry round-trips); no exception is raised.
    """
    directory = tmp_path / "cache"
    sentinel = Sentinel(tmp_path / "sentinel.bin")
    MultivectorCache(directory).close()
    _plant(attack, directory, cache_key("fp", "document", "planted"), sentinel)
    with MultivectorCache(directory, size_limit=200_000, memory_bytes=0) as cache:
        fresh = [cache_key("fp", "document", str(i)) for i in range(12)]
        if removal == "clear":
            cache.clear()
            fresh = fresh[:1]
        # 12 entries of ~38 KB go over the limit: the oldest (planted) row is culled first
        for key in fresh:
            cache.put_many([key], [np.ones((200, 96), np.float32)])
        assert cache.get_many(fresh[-1:])[0] is not None
        assert cache.get_many([cache_key("fp", "document", "planted")]) == [None]
    sentinel.assert_untouched()
