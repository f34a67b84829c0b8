"""Every kind of document cache behind one interface, opened by where it lives.

:class:`DocumentCache` is what an encoder needs from a cache;
:class:`~latecore.cache.MultivectorCache` (a local directory) and
:class:`~latecore.redis_cache.RedisCache` (a Redis/Valkey server, optionally in front
of a local directory) both provide it. :func:`open_cache` turns a location -- a
directory or a ``redis://`` URL -- into the right one, and is what every place that
takes a cache location (``Encoder(cache=...)``, ``load_encoder(cache_dir=...)``, the
adapters' ``cache_dir``, ``latecore --cache-dir``) goes through.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from .cache import CacheStats, MultivectorCache
from .redis_cache import RedisCache, is_redis_url
from .validation import StorageDtype

__all__ = ["CacheLocation", "DocumentCache", "open_cache"]

CacheLocation = str | os.PathLike[str]
"""A cache directory, or the URL of a Redis server (``redis://``, ``rediss://``, ``unix://``)."""


@runtime_checkable
class DocumentCache(Protocol):
    """What an encoder reads and writes document multivectors through."""

    dtype: StorageDtype

    @property
    def location(self) -> str:
        """Where the entries live (a directory, or a server URL without its password)."""

    def get_many(self, keys: Sequence[bytes]) -> list[np.ndarray | None]:
        """Arrays in the storage dtype for ``keys``; ``None`` for each miss."""

    def put_many(self, keys: Sequence[bytes], arrays: Sequence[np.ndarray]) -> None:
        """Store ``arrays`` under ``keys``."""

    def stats(self) -> CacheStats:
        """Hits, misses, items and bytes."""

    def clear_memory(self) -> None:
        """Drop the in-process hot tier."""

    def clear(self) -> None:
        """Remove every entry."""

    def close(self) -> None:
        """Release connections and files."""


def open_cache(
    location: CacheLocation | None = None,
    *,
    dtype: StorageDtype = "float16",
    local: CacheLocation | None = None,
) -> MultivectorCache | RedisCache:
    """The cache at ``location``: a :class:`~latecore.redis_cache.RedisCache` for a Redis
    URL, else a :class:`~latecore.cache.MultivectorCache` in that directory.

    Parameters
    ----------
    location
        A directory (``None``: :func:`~latecore.cache.default_cache_dir`), or
        ``redis://host:port/db`` (also ``rediss://``, ``unix://``).
    dtype
        Storage dtype, ``"float16"`` or ``"float32"``.
    local
        With a Redis URL, a directory for the local disk tier between the
        in-process hot tier and Redis (see :class:`~latecore.redis_cache.RedisCache`).

    Raises
    ------
    ImportError
        For a Redis URL without the ``redis`` client (``pip install 'latecore[redis]'``).
    ValueError
        If ``local`` is given with a directory ``location``.

    Examples
    --------
    >>> import tempfile
    >>> open_cache(tempfile.mkdtemp()).dtype
    'float16'
    >>> type(open_cache("unix:///nonexistent/redis.sock")).__name__
    'RedisCache'
    """
    if is_redis_url(location):
        assert isinstance(location, str)
        return RedisCache(location, dtype=dtype, local=local)
    if local is not None:
        raise ValueError(
            "local= is the disk tier of a Redis cache; a directory cache is local already"
        )
    return MultivectorCache(location, dtype=dtype)
