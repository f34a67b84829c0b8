"""Planted and damaged Redis values: never code, always recomputed, through the Encoder path.

The Redis counterpart of ``test_rel_tamper.py``: another program with write access
to the shared Redis database plants a value under a document's key (a pickle that
would empty a file outside if it were ever unpickled, a damaged or foreign
frame). The encoder must serve the correct vectors, re-encode the victim, leave
the file alone and write a valid entry back to Redis (and to the local disk tier).
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from _redis_support import RedisServer

from latecore import MultivectorCache, RedisCache
from latecore.cache import cache_key, decode_multivector, encode_multivector
from latecore.testing import FakeEncoder

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

redis = pytest.importorskip("redis", reason="the redis client is the latecore[redis] extra")

VICTIM = "the victim document about rivers"
BYSTANDER = "an innocent bystander"


class _TruncatesSentinel:
    """Unpickling this opens the sentinel for writing, which empties it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, ...]:
        return (open, (str(self.path), "w"))


def _attack(name: str, sentinel: Path) -> bytes:
    good = encode_multivector(np.full((4, 32), 0.5, np.float32))
    if name == "pickle":
        return pickle.dumps(_TruncatesSentinel(sentinel))
    if name == "pickled-array":
        return pickle.dumps(np.full((4, 32), 0.5, np.float16))
    if name == "truncated":
        return good[:-7]
    if name == "bit-flipped":
        flipped = bytearray(good)
        flipped[-5] ^= 0x10
        return bytes(flipped)
    if name == "foreign":
        return b'{"vectors": [[0.5, 0.5]]}'
    if name == "float32-frame":  # a valid frame, but not in the cache's storage dtype
        return encode_multivector(np.full((4, 32), 0.5, np.float32), "float32")
    raise AssertionError(name)


ATTACKS = ["pickle", "pickled-array", "truncated", "bit-flipped", "foreign", "float32-frame"]


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    yield redis_server.url
    client.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("tiers", ["redis", "redis+disk"])
@pytest.mark.parametrize("attack", ATTACKS)
def test_planted_redis_value_is_recomputed_through_the_encoder(
    redis_url: str, tmp_path: Path, attack: str, tiers: str
) -> None:
    """A planted value is a miss: the victim is re-encoded, served right, and rewritten.

    Guarantees: no pickled payload runs (the sentinel file keeps its content);
    ``encode_documents`` returns the vectors of an uncached encoder rounded to
    float16, having re-encoded only the victim; afterwards Redis (and the disk
    tier) hold a valid frame of those vectors; no exception is raised.
    """
    sentinel = tmp_path / "sentinel.txt"
    sentinel.write_text("must survive")
    local = tmp_path / "disk" if tiers == "redis+disk" else None
    encoder = FakeEncoder(cache=RedisCache(redis_url, local=local))
    encoder.encode_documents([BYSTANDER])  # a valid entry next to the victim
    key = cache_key(encoder.fingerprint, "document", VICTIM)
    assert isinstance(encoder.cache, RedisCache)
    client = redis.Redis.from_url(redis_url)
    client.set(encoder.cache.redis_key(key), _attack(attack, sentinel))
    encoder.encoded.clear()

    got = encoder.encode_documents([VICTIM, BYSTANDER])

    assert sentinel.read_text() == "must survive", "a pickled value was unpickled"
    expected = [a.astype(np.float16) for a in FakeEncoder().encode_documents([VICTIM, BYSTANDER])]
    assert [a.astype(np.float16).tobytes() for a in got] == [e.tobytes() for e in expected]
    assert encoder.encoded == [VICTIM], "the planted value was served instead of recomputed"
    stored = decode_multivector(client.get(encoder.cache.redis_key(key)))
    assert stored is not None and stored.tobytes() == expected[0].tobytes()
    if local is not None:
        with MultivectorCache(local, memory_bytes=0) as disk:
            (on_disk,) = disk.get_many([key])
        assert on_disk is not None and on_disk.tobytes() == expected[0].tobytes()
    client.close()
    encoder.cache.close()
