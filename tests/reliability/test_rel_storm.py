"""Many processes writing to, or creating, one cache directory at the same time."""

from __future__ import annotations

from pathlib import Path

import pytest
from _rel_support import assert_database_sound, start_worker
from _rel_worker import key_for, value_for

from latecore.cache import MultivectorCache

WRITERS = 8
WRITES = 500
SHARED = 20


@pytest.mark.timeout(150)
def test_write_storm_keeps_every_value_intact(tmp_path: Path) -> None:
    """8 processes x 500 single-entry writes (unique and shared keys, 30-300 x 96 float16).

    Guarantees: no writer raises or skips a write; every unique entry reads back
    bit-identical; every shared entry is exactly one writer's value (never a mix
    or a torn write); the database passes SQLite's and diskcache's checks.
    """
    directory = tmp_path / "cache"
    start = tmp_path / "go"
    workers = [start_worker("storm", directory, w, WRITES, SHARED, start) for w in range(WRITERS)]
    start.touch()
    for w, proc in enumerate(workers):
        out, err = proc.communicate(timeout=140)
        assert proc.returncode == 0, f"writer {w} failed:\n{err}"
        assert out.split() == ["done", "0"], f"writer {w} skipped writes: {out}\n{err}"

    assert_database_sound(directory)
    with MultivectorCache(directory, memory_bytes=0) as cache:
        unique = [f"unique-{w}-{i}" for w in range(WRITERS) for i in range(WRITES) if i % 5]
        for name, got in zip(unique, cache.get_many([key_for(n) for n in unique]), strict=True):
            assert got is not None, name
            assert got.tobytes() == value_for(name).tobytes(), name
        shared = [f"shared-{s}" for s in range(SHARED)]
        for name, got in zip(shared, cache.get_many([key_for(n) for n in shared]), strict=True):
            assert got is not None, name
            candidates = {value_for(name, w).tobytes() for w in range(WRITERS)}
            assert got.tobytes() in candidates, name
        assert cache.stats().items == len(unique) + SHARED


@pytest.mark.timeout(120)
def test_cold_start_race_opens_cleanly(tmp_path: Path) -> None:
    """16 processes create and open the same fresh cache directory at once, 3 times over.

    Guarantees: no process raises or skips its write, each reads its own entry
    back, and afterwards all 16 entries are present and the database is sound.
    """
    processes, rounds = 16, 3
    directories = str(tmp_path / "cache-{}")
    starts = str(tmp_path / "go-{}")
    workers = [start_worker("cold", directories, starts, rounds, w) for w in range(processes)]
    try:
        for r in range(rounds):
            Path(starts.format(r)).touch()
            for w, proc in enumerate(workers):
                assert proc.stdout is not None
                line = proc.stdout.readline().split()
                assert line == ["ok", str(r), "0"], (
                    f"round {r}, worker {w}: {line}\n{proc.stderr.read() if proc.stderr else ''}"
                )
            directory = Path(directories.format(r))
            assert_database_sound(directory)
            names = [f"cold-{w}" for w in range(processes)]
            with MultivectorCache(directory, memory_bytes=0) as cache:
                got = cache.get_many([key_for(n) for n in names])
            assert [
                g is not None and g.tobytes() == value_for(n).tobytes()
                for g, n in zip(got, names, strict=True)
            ] == [True] * processes
    finally:
        for proc in workers:
            proc.kill()
            proc.communicate()
