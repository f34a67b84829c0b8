"""A writer killed with SIGKILL at random points never costs an acknowledged write."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest
from _rel_support import assert_database_sound, start_worker
from _rel_worker import key_for, value_for

from latecore.cache import MultivectorCache

KILLS = 24


def _assert_intact(directory: Path, names: list[str]) -> None:
    with MultivectorCache(directory, memory_bytes=0) as cache:
        got = cache.get_many([key_for(n) for n in names])
    lost = [n for n, g in zip(names, got, strict=True) if g is None]
    assert not lost, f"{len(lost)} acknowledged writes lost, e.g. {lost[:3]}"
    for name, array in zip(names, got, strict=True):
        assert array is not None and array.tobytes() == value_for(name).tobytes(), name


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_sigkill_at_random_points_loses_no_acknowledged_write(tmp_path: Path) -> None:
    """24 writer processes are SIGKILLed at random moments, some while creating the database.

    Each writer prints an ``ack`` line after every ``put_many`` that committed.
    Guarantees: after every kill the cache reopens, passes SQLite's and
    diskcache's checks, and every acknowledged entry (of this and all earlier
    writers) reads back bit-identical.
    """
    directory = tmp_path / "cache"
    rng = random.Random(7)
    acknowledged: list[str] = []
    runs_with_acks = 0
    for run in range(KILLS):
        writer = start_worker("crash", directory, run)
        assert writer.stdout is not None and writer.stderr is not None
        if run % 4 == 0:  # anywhere in start-up, creating or opening the database
            time.sleep(rng.uniform(0.0, 0.5))
            head = ""
        else:  # in the middle of the write loop
            head = writer.stdout.readline()
            assert head == "ready\n", writer.stderr.read()
            time.sleep(rng.uniform(0.0, 0.3))
        os.kill(writer.pid, signal.SIGKILL)
        out = head + writer.stdout.read()
        err = writer.stderr.read()
        writer.wait()
        assert writer.returncode == -signal.SIGKILL, err
        names = [n for line in out.splitlines() if line.startswith("ack") for n in line.split()[1:]]
        runs_with_acks += bool(names)
        acknowledged.extend(names)
        if directory.exists() and (directory / "cache.db").exists():
            assert_database_sound(directory)
        _assert_intact(directory, names)
    _assert_intact(directory, acknowledged)
    assert runs_with_acks >= KILLS // 2 and len(acknowledged) >= 100, "kills came too early"
