"""A multivector cache shared by processes and machines: Redis or Valkey behind a hot tier.

:class:`RedisCache` stores the same entries as :class:`~latecore.cache.MultivectorCache`
(the frames of :func:`~latecore.cache.encode_multivector`: header, XXH3-64 checksum,
raw array bytes, under the SHA-256 keys of :func:`~latecore.cache.cache_key`) in a
Redis-protocol server, so every replica of a service reads what any of them encoded.
What the server returns is untrusted like a cache directory: it is only ever parsed
as a frame, and anything else -- a pickled value, another program's value, a
truncated or altered frame -- is a miss, recomputed and overwritten.

Tiers, fastest first: an in-process hot tier of decoded arrays, an optional local
:class:`~latecore.cache.MultivectorCache`, then Redis. Reads go down the tiers and
fill the faster ones with what a slower one had (read-through); writes go to every
tier (write-through).

A Redis that cannot be reached -- down at start, stopped mid-run, a timeout -- never
raises to the caller: its reads are misses and its writes are skipped, with one
warning per cache object, and the faster tiers keep working. The server is tried
again ``retry_interval`` seconds after a failure, and used again once it answers.

The ``redis`` client is the ``latecore[redis]`` extra; ``import latecore`` never
imports it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from ._hot import HotTier
from .cache import CacheStats, MultivectorCache, decode_multivector, encode_multivector
from .validation import StorageDtype, check_dtype

__all__ = ["REDIS_SCHEMES", "RedisCache", "is_redis_url"]

logger = logging.getLogger(__name__)

REDIS_SCHEMES = ("redis", "rediss", "unix")
"""URL schemes of a Redis-protocol server (Valkey speaks the same protocol)."""

_CHUNK = 256
"""Keys per MGET, and SETs per pipeline round trip."""


def is_redis_url(location: object) -> bool:
    """Whether ``location`` names a Redis server rather than a directory.

    Examples
    --------
    >>> is_redis_url("redis://127.0.0.1:6379/0"), is_redis_url("rediss://cache:6380")
    (True, True)
    >>> is_redis_url("/var/cache/latecore"), is_redis_url(None)
    (False, False)
    """
    return isinstance(location, str) and location.partition("://")[0].lower() in REDIS_SCHEMES


def _redacted(url: str) -> str:
    """``url`` without its password, for messages.

    Examples
    --------
    >>> _redacted("redis://user:secret@cache:6379/0")
    'redis://user:***@cache:6379/0'
    >>> _redacted("redis://127.0.0.1:6379")
    'redis://127.0.0.1:6379'
    """
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user, _, host = parts.netloc.rpartition("@")
    name = user.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{name}:***@{host}"))


def _redis_module() -> Any:
    try:
        import redis
    except ImportError as error:
        raise ImportError(
            "a redis:// cache needs the Redis client: pip install 'latecore[redis]'"
        ) from error
    return redis


class RedisCache:
    """Multivector cache on a Redis/Valkey server, behind a hot tier and an optional disk tier.

    Parameters
    ----------
    url
        The server: ``redis://[[user]:password@]host[:port][/db]``, ``rediss://``
        (TLS) or ``unix:///path/to/socket``.
    dtype
        Storage dtype, ``"float16"`` (default), ``"float32"`` or ``"int8"``, as for
        :class:`~latecore.cache.MultivectorCache`.
    ttl
        Seconds an entry lives in Redis after it was written (``None``, the default:
        until the server's own eviction policy drops it).
    prefix
        Prepended to every Redis key (the hex digest of :func:`~latecore.cache.cache_key`),
        so that several caches or applications can share one database;
        :meth:`clear` removes only the keys under it.
    local
        A directory (or a :class:`~latecore.cache.MultivectorCache`) for a local disk
        tier between the hot tier and Redis: Redis hits are written into it, writes
        go to both. A directory gets a ``MultivectorCache`` without a hot tier of its
        own and is closed with this cache; a given cache is used as it is.
    memory_bytes
        Budget of the in-process hot tier (default 256 MiB; 0 disables it).
    timeout
        Seconds to connect to the server and to wait for one reply; past it the
        call counts as the server being unreachable.
    retry_interval
        Seconds after a failed call before the server is tried again; calls in
        between skip Redis at no cost.

    Raises
    ------
    ImportError
        If the ``redis`` client (``latecore[redis]``) is not installed.
    ValueError
        On a URL that is not a Redis URL, an unknown dtype, or a negative ``ttl``,
        ``timeout`` or ``retry_interval``.

    Examples
    --------
    >>> cache = RedisCache("unix:///nonexistent/redis.sock", memory_bytes=0)
    >>> cache
    RedisCache('unix:///nonexistent/redis.sock', prefix='latecore:', dtype='float16')
    >>> from latecore.cache import cache_key
    >>> cache.get_many([cache_key("fp", "document", "no server")])  # nothing listens: a miss
    [None]
    >>> cache.available
    False
    """

    def __init__(
        self,
        url: str,
        *,
        dtype: StorageDtype = "float16",
        ttl: float | None = None,
        prefix: str = "latecore:",
        local: str | os.PathLike[str] | MultivectorCache | None = None,
        memory_bytes: int = 256 * 2**20,
        timeout: float = 2.0,
        retry_interval: float = 5.0,
    ) -> None:
        if not is_redis_url(url):
            raise ValueError(
                f"not a Redis URL: {url!r}; use redis://host:port/db, rediss://... or unix://..."
            )
        check_dtype(dtype)
        if ttl is not None and not ttl > 0:
            raise ValueError(f"ttl must be a positive number of seconds or None, got {ttl!r}")
        if not timeout > 0 or not retry_interval >= 0:
            raise ValueError(
                f"timeout must be positive and retry_interval non-negative, got {timeout!r} "
                f"and {retry_interval!r}"
            )
        redis = _redis_module()
        self.url = url
        self.dtype: StorageDtype = dtype
        self.ttl = ttl
        self.prefix = str(prefix)
        self.retry_interval = float(retry_interval)
        self._own_local = local is not None and not isinstance(local, MultivectorCache)
        if isinstance(local, MultivectorCache):
            if local.dtype != dtype:
                raise ValueError(
                    f"the local tier stores {local.dtype}, this cache {dtype}: give both one dtype"
                )
            self.local: MultivectorCache | None = local
        elif local is not None:
            self.local = MultivectorCache(Path(local), dtype=dtype, memory_bytes=0)
        else:
            self.local = None
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._client = redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=redis.retry.Retry(redis.backoff.NoBackoff(), 0),
        )
        self._memory = HotTier(memory_bytes)
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._down = False
        self._warned = False
        self._hits = 0
        self._misses = 0

    def __repr__(self) -> str:
        return f"RedisCache({self.location!r}, prefix={self.prefix!r}, dtype={self.dtype!r})"

    @property
    def location(self) -> str:
        """The server's URL, without its password."""
        return _redacted(self.url)

    @property
    def available(self) -> bool:
        """Whether the last call to Redis succeeded (or none has failed yet)."""
        return not self._down

    def redis_key(self, key: bytes) -> bytes:
        """The Redis key of a cache key: the prefix, then the digest in hex.

        Examples
        --------
        >>> RedisCache("unix:///nonexistent/redis.sock", prefix="app:").redis_key(bytes([0, 255]))
        b'app:00ff'
        """
        return self.prefix.encode("utf-8") + key.hex().encode("ascii")

    def _should_try(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, action: str, error: BaseException) -> None:
        """Mark the server down until the next retry; warn the first time only."""
        with self._lock:
            self._down_until = time.monotonic() + self.retry_interval
            self._down = True
            first, self._warned = not self._warned, True
        log = logger.warning if first else logger.debug
        log(
            "Redis cache at %s failed (%s: %s): reads miss and writes are skipped "
            "until it answers again (next try in %.3g s)",
            self.location,
            action,
            error,
            self.retry_interval,
        )

    def _succeeded(self) -> None:
        if self._down:
            with self._lock:
                self._down = False
            logger.info("Redis cache at %s reachable again", self.location)

    def get_many(self, keys: Sequence[bytes]) -> list[np.ndarray | None]:
        """Arrays (in the storage dtype, read-only) for ``keys``; ``None`` for each miss.

        The hot tier first, then the local tier, then one round trip to Redis with
        an MGET per 256 keys. What a slower tier had is copied into the faster ones.
        A value that fails validation, and every key while Redis is unreachable, is
        a miss, never an error.
        """
        found: list[np.ndarray | None] = [self._memory.recall(key) for key in keys]
        wanted = list(dict.fromkeys(k for k, a in zip(keys, found, strict=True) if a is None))
        stored: dict[bytes, np.ndarray] = {}
        if wanted and self.local is not None:
            local = self.local.get_many(wanted)
            stored.update((k, a) for k, a in zip(wanted, local, strict=True) if a is not None)
            wanted = [k for k in wanted if k not in stored]
        if wanted:
            remote = self._read(wanted)
            if remote and self.local is not None:
                self.local.put_many(list(remote), list(remote.values()))
            stored.update(remote)
        for key, array in stored.items():
            self._memory.remember(key, array)
        found = [stored.get(k) if a is None else a for k, a in zip(keys, found, strict=True)]
        hits = sum(array is not None for array in found)
        with self._lock:
            self._hits += hits
            self._misses += len(found) - hits
        return found

    def _read(self, keys: list[bytes]) -> dict[bytes, np.ndarray]:
        """Valid frames stored in Redis for ``keys`` (none while it is unreachable)."""
        if not self._should_try():
            return {}
        pipe = self._client.pipeline(transaction=False)
        for start in range(0, len(keys), _CHUNK):
            pipe.mget([self.redis_key(k) for k in keys[start : start + _CHUNK]])
        try:
            replies = pipe.execute()
        except self._errors as error:
            self._failed("read", error)
            return {}
        self._succeeded()
        arrays = {}
        values = (value for reply in replies for value in reply)
        decoded = np.dtype(np.float32 if self.dtype == "int8" else self.dtype)  # int8 reads scaled
        for key, value in zip(keys, values, strict=True):
            array = decode_multivector(value)
            if array is not None and array.dtype == decoded:
                arrays[key] = array
        return arrays

    def put_many(self, keys: Sequence[bytes], arrays: Sequence[np.ndarray]) -> None:
        """Store ``arrays`` (converted to the storage dtype) under ``keys`` in every tier.

        Redis gets them pipelined (one round trip per 256 entries), each with the
        ``ttl`` if one is set. While Redis is unreachable its write is skipped (the
        other tiers still get the entries); nothing is raised.
        """
        if len(keys) != len(arrays):
            raise ValueError(f"got {len(keys)} keys for {len(arrays)} arrays")
        if not keys:
            return
        framed = [encode_multivector(np.asarray(a), self.dtype) for a in arrays]
        if self.local is not None:
            self.local.put_many(keys, arrays)
        if self._should_try():
            self._write(keys, framed)
        for key, data in zip(keys, framed, strict=True):
            decoded = decode_multivector(data)
            if decoded is not None:
                self._memory.remember(key, decoded)

    def _write(self, keys: Sequence[bytes], framed: list[bytes]) -> None:
        expiry = None if self.ttl is None else max(1, round(self.ttl * 1000))
        try:
            for start in range(0, len(keys), _CHUNK):
                pipe = self._client.pipeline(transaction=False)
                for key, data in zip(
                    keys[start : start + _CHUNK], framed[start : start + _CHUNK], strict=True
                ):
                    pipe.set(self.redis_key(key), data, px=expiry)
                pipe.execute()
        except self._errors as error:
            self._failed(f"write of {len(keys)} entries", error)
            return
        self._succeeded()

    def _names(self) -> Iterator[bytes]:
        """Every Redis key under this cache's prefix (SCAN: never blocks the server)."""
        pattern = self.prefix.replace("\\", "\\\\")
        for char in "*?[]":
            pattern = pattern.replace(char, "\\" + char)
        yield from self._client.scan_iter(match=pattern + "*", count=1000)

    def stats(self) -> CacheStats:
        """Hits and misses of this object (any tier), items and value bytes in Redis.

        Counting walks every key under the prefix (SCAN, then STRLEN pipelined): it
        costs a round trip per thousand entries. While Redis is unreachable, the
        local tier's counts are given (zero without one).
        """
        items = volume = 0
        counted = False
        if self._should_try():
            try:
                names = list(self._names())
                pipe = self._client.pipeline(transaction=False)
                for name in names:
                    pipe.strlen(name)
                items, volume = len(names), sum(pipe.execute()) if names else 0
                counted = True
            except self._errors as error:
                self._failed("stats", error)
            else:
                self._succeeded()
        if not counted and self.local is not None:
            local = self.local.stats()
            items, volume = local.items, local.bytes
        return CacheStats(hits=self._hits, misses=self._misses, items=items, bytes=volume)

    def clear_memory(self) -> None:
        """Drop the in-process hot tier (the local and Redis entries stay)."""
        self._memory.clear()

    def clear(self) -> None:
        """Remove every entry of this cache: hot tier, local tier, and Redis keys under the prefix.

        Other keys of the Redis database are left alone. While Redis is unreachable
        its part is skipped (with the one warning).
        """
        self.clear_memory()
        if self.local is not None:
            self.local.clear()
        try:
            batch: list[bytes] = []
            for name in self._names():
                batch.append(name)
                if len(batch) >= 1000:
                    self._client.unlink(*batch)
                    batch.clear()
            if batch:
                self._client.unlink(*batch)
        except self._errors as error:
            self._failed("clear", error)
        else:
            self._succeeded()

    def close(self) -> None:
        """Close the connections to Redis (and the local tier, if this cache opened it)."""
        self._client.close()
        if self.local is not None and self._own_local:
            self.local.close()

    def __enter__(self) -> RedisCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
