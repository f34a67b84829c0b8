"""A row planted in the cache's diskcache ``Settings`` table changes nothing.

diskcache reads its settings back from the ``Settings`` table of the database it
opens and applies every row it finds: as an attribute of the ``Cache`` (so
``_directory`` moves the database), of the ``Disk`` (``disk_*``), or as a
``PRAGMA`` (``sqlite_*``, spliced into the statement), and again on every new
connection (each thread's). Anyone who can write the cache directory can write
that table. ``MultivectorCache`` fixes every setting it relies on when it opens
and ignores what the table says; these tests plant each row diskcache would read
back (and some it would not expect) before the cache opens and while it is open,
and compare the cache with one opened on a clean directory.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import diskcache
import numpy as np
import pytest
from diskcache.core import METADATA

from latecore.cache import MultivectorCache, cache_key

OTHER = "OTHER"
"""Stands for the path of another application's diskcache directory."""

PLANTED: list[tuple[str, object]] = [
    ("_directory", OTHER),  # the database's directory (the reported defect)
    ("disk__directory", OTHER),  # where the Disk reads and removes value files
    ("disk_directory", OTHER),  # the Disk's constructor argument
    ("directory", OTHER),  # a read-only property
    ("_disk", "not a disk"),
    ("_timeout", 0),
    ("clear", 1),  # shadows a method
    ("size_limit", 1),
    ("cull_limit", 0),
    ("eviction_policy", "least-recently-used"),  # reads would write
    ("eviction_policy", "none"),
    ("statistics", 1),  # reads would write
    ("tag_index", 1),
    ("disk_min_file_size", 0),  # values as files
    ("disk_pickle_protocol", 0),
    ("sqlite_journal_mode", "delete"),
    ("sqlite_synchronous", 0),
    ("sqlite_mmap_size", 0),
    ("sqlite_cache_size", 1),
    ("sqlite_auto_vacuum", 0),
    ("sqlite_query_only", 1),
    ("sqlite_writable_schema", 1),
    ("sqlite_temp_store_directory", f"'{OTHER}'"),
    ("size", 10**15),  # the volume: every write would cull
    ("size", "not a number"),
    ("count", "not a number"),
]

PRAGMAS = (
    "journal_mode",
    "synchronous",
    "mmap_size",
    "cache_size",
    "auto_vacuum",
    "query_only",
    "writable_schema",
    "temp_store_directory",
)


def _files(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def _in_new_thread(work: Callable[[], Any]) -> Any:
    """``work()`` run in a thread of its own (so diskcache opens a new connection)."""
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(work()))
    thread.start()
    thread.join()
    return result[0]


def _connection_settings(cache: MultivectorCache) -> dict[str, object]:
    connection = cache._store._con  # this thread's connection
    return {name: connection.execute(f"PRAGMA {name}").fetchall() for name in PRAGMAS}


def _profile(cache: MultivectorCache, directory: Path) -> dict[str, object]:
    """Everything a planted setting could change, relative to ``directory``."""
    store = cache._store
    disk = store.disk
    return {
        "directory": (str(cache.directory), store.directory, disk._directory),
        "limits": (store.size_limit, store.cull_limit, store.eviction_policy),
        "flags": (store.statistics, store.tag_index),
        "disk": (type(disk).__name__, disk.min_file_size),
        "pragmas": _connection_settings(cache),
        "pragmas in another thread": _in_new_thread(lambda: _connection_settings(cache)),
        "base": str(directory),
    }


def _other_application(path: Path) -> dict[str, bytes]:
    """Another application's diskcache with entries of its own; returns its files."""
    with diskcache.Cache(str(path)) as other:
        for n in range(5):
            other.set(f"their-{n}", np.full(3000, n).tobytes())
    return _files(path)


def _plant(directory: Path, key: str, value: object) -> None:
    with sqlite3.connect(directory / "cache.db") as db:
        db.execute("INSERT OR REPLACE INTO Settings VALUES (?, ?)", (key, value))
    db.close()


def _exercise(cache: MultivectorCache, kept: bytes) -> list[bytes]:
    """Writes, reads (from a new thread too), evicts nothing; returns the keys written."""
    keys = [cache_key("fp", "document", f"new-{n}") for n in range(8)]
    cache.put_many(keys, [np.full((40, 16), n, np.float32) for n in range(8)])
    cache.clear_memory()
    found = _in_new_thread(lambda: cache.get_many([kept, *keys]))
    assert [None if a is None else float(a[0, 0]) for a in found] == [7.0, *range(8)]
    assert cache.stats().items == 9
    return keys


@pytest.mark.timeout(60)
@pytest.mark.parametrize("when", ["before opening", "while open"])
@pytest.mark.parametrize(("key", "value"), PLANTED, ids=[f"{k}={v}" for k, v in PLANTED])
def test_planted_setting_changes_nothing(
    tmp_path: Path, key: str, value: object, when: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The cache stays where it was opened, with latecore's settings, and never touches
    another diskcache: its files are byte-identical afterwards, ``clear()`` included.

    Compared with a cache opened on a clean directory: the same directory for the
    database and the ``Disk``, the same limits, eviction policy, statistics and
    pragmas (also on a new thread's connection); entries written before and after
    read back, nothing is culled, no value file is written, ``clear()`` empties it.
    A planted setting found when opening is named in a warning.
    """
    other = tmp_path / "other-application"
    theirs = _other_application(other)
    planted = value.replace(OTHER, str(other)) if isinstance(value, str) else value
    directory, clean = tmp_path / "cache", tmp_path / "clean"
    kept = cache_key("fp", "document", "stored before")
    for each in (directory, clean):
        with MultivectorCache(each) as cache:
            cache.put_many([kept], [np.full((40, 16), 7, np.float32)])
    with MultivectorCache(clean) as reference:
        expected = _profile(reference, clean)
    if when == "before opening":
        _plant(directory, key, planted)
    with caplog.at_level(logging.WARNING, "latecore.cache"), MultivectorCache(directory) as cache:
        # A stored size limit or eviction policy may be another process's own choice, and
        # the count and size are counters, not settings: those are ignored silently.
        if when == "before opening" and key not in ("size_limit", "eviction_policy", *METADATA):
            assert f"ignoring the setting {key}=" in caplog.text
        if when == "while open":
            _plant(directory, key, planted)
        profile = _profile(cache, directory)
        assert {k: str(v).replace(str(directory), str(clean)) for k, v in profile.items()} == {
            k: str(v) for k, v in expected.items()
        }
        _exercise(cache, kept)
        assert sorted(p.name for p in directory.iterdir()) == [
            "cache.db",
            "cache.db-shm",
            "cache.db-wal",
        ], "a value was written to a file"
        cache.clear()
        assert cache.stats().items == 0
        assert cache.get_many([kept]) == [None]
    assert _files(other) == theirs, "another application's diskcache was touched"
    with diskcache.Cache(str(other)) as still:
        assert [bytes(still[f"their-{n}"]) for n in range(5)] == [
            np.full(3000, n).tobytes() for n in range(5)
        ]
