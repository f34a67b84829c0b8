"""Another process holding the cache's write lock slows nothing down and breaks nothing."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from _rel_support import start_worker

from latecore import MultivectorCache, Reranker
from latecore.testing import FakeEncoder

HOLD_SECONDS = 4.0
QUERY = "which river flows through paris"
DOCUMENTS = [
    "the seine flows through paris",
    "berlin lies on the spree",
    "rome was not built in a day",
    "paris is the capital of france and the seine is its river",
]


@pytest.mark.slow
@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["diskcache", "sqlite"])
def test_rerank_under_a_held_write_lock_skips_the_write(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    """A process holds the write lock for 4 s (diskcache ``transact()`` or raw ``BEGIN IMMEDIATE``).

    Guarantees: a rerank through a ``MultivectorCache(timeout=0.5)`` returns
    exactly the uncached result while the lock is still held; the cache write is
    skipped with a logged warning, never raised; once the lock is released the
    same cache directory stores the entries again.
    """
    directory = tmp_path / "cache"
    MultivectorCache(directory).close()
    encoder = FakeEncoder(cache=MultivectorCache(directory, dtype="float32", timeout=0.5))
    expected = Reranker(FakeEncoder()).rerank(QUERY, DOCUMENTS)
    holder = start_worker("hold", directory, how, HOLD_SECONDS)
    assert holder.stdout is not None and holder.stderr is not None
    try:
        assert holder.stdout.readline() == "locked\n", holder.stderr.read()
        with caplog.at_level(logging.WARNING, logger="latecore.cache"):
            started = time.monotonic()
            got = Reranker(encoder).rerank(QUERY, DOCUMENTS)
            elapsed = time.monotonic() - started
        assert holder.poll() is None, "the lock was released before the rerank returned"
        assert elapsed < HOLD_SECONDS / 2
        assert got == expected
        skipped = [r for r in caplog.records if r.name == "latecore.cache"]
        assert len(skipped) == 1 and "skipped" in skipped[0].getMessage()
        assert encoder.cache is not None and encoder.cache.stats().items == 0
    finally:
        out, err = holder.communicate(timeout=30)
    assert holder.returncode == 0 and out == "released\n", err
    with MultivectorCache(directory, dtype="float32", timeout=0.5) as cache:
        assert Reranker(FakeEncoder(cache=cache)).rerank(QUERY, DOCUMENTS) == expected
        assert cache.stats().items == len(DOCUMENTS)
