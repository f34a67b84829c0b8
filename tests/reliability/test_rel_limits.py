"""``size_limit`` holds while twice its volume is written; evicted entries come back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from latecore import MultivectorCache
from latecore.testing import FakeEncoder

LIMIT = 1_500_000


def _texts(n: int) -> list[str]:
    rng = np.random.default_rng(3)
    lengths = rng.integers(30, 300, n)
    return [
        f"document {i} " + " ".join(f"w{w}" for w in rng.integers(0, 500, length))
        for i, length in enumerate(lengths)
    ]


@pytest.mark.timeout(60)
def test_size_limit_holds_and_evicted_entries_are_recomputed(tmp_path: Path) -> None:
    """Documents of 30-300 x 96 float16 vectors (~3.5 MB in all) go through an encoder whose
    cache is limited to 1.5 MB, ten per ``encode_documents`` call.

    Guarantees: after every call the cache's volume is within 5% of ``size_limit``;
    early documents were evicted, and encoding everything again re-encodes exactly the
    evicted ones, returns the same vectors as before and raises nothing.
    """
    cache = MultivectorCache(tmp_path / "cache", size_limit=LIMIT, memory_bytes=0)
    encoder = FakeEncoder(dim=96, cache=cache)
    texts = _texts(120)
    written = 0
    first: list[np.ndarray] = []
    for start in range(0, len(texts), 10):
        batch = encoder.encode_documents(texts[start : start + 10])
        first.extend(batch)
        written += sum(a.shape[0] * a.shape[1] * 2 for a in batch)
        assert cache.stats().bytes <= LIMIT * 1.05
    assert written >= 2 * LIMIT
    kept = cache.stats().items
    assert 0 < kept < len(texts)

    encoder.encoded.clear()
    again = encoder.encode_documents(texts)
    assert len(encoder.encoded) == len(texts) - kept
    assert texts[0] in encoder.encoded and texts[-1] not in encoder.encoded
    assert all(a.tobytes() == b.tobytes() for a, b in zip(again, first, strict=True))
    assert cache.stats().bytes <= LIMIT * 1.05
    cache.close()
