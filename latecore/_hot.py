"""The in-process hot tier of every multivector cache: decoded arrays, bounded, LRU.

Shared by :class:`latecore.cache.MultivectorCache` and
:class:`latecore.redis_cache.RedisCache`, whose slower tiers it sits in front of.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

__all__ = ["HotTier"]


class HotTier:
    """A thread-safe LRU of arrays by key, bounded by the bytes it holds.

    Parameters
    ----------
    limit
        Budget in bytes; ``0`` (or less) keeps nothing. An array larger than the
        whole budget is never kept.

    Examples
    --------
    >>> tier = HotTier(limit=64)
    >>> tier.remember(b"a", np.zeros(8, np.float32))
    >>> tier.remember(b"b", np.zeros(8, np.float32))
    >>> tier.remember(b"c", np.zeros(8, np.float32))  # over 64 bytes: drops b"a"
    >>> tier.recall(b"a") is None, tier.recall(b"c").shape
    (True, (8,))
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._arrays: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._used = 0
        self._lock = threading.Lock()

    def remember(self, key: bytes, array: np.ndarray) -> None:
        """Keep ``array`` under ``key`` as the most recently used, evicting the oldest."""
        if self.limit <= 0 or array.nbytes > self.limit:
            return
        with self._lock:
            old = self._arrays.pop(key, None)
            if old is not None:
                self._used -= old.nbytes
            self._arrays[key] = array
            self._used += array.nbytes
            while self._used > self.limit:
                _, dropped = self._arrays.popitem(last=False)
                self._used -= dropped.nbytes

    def recall(self, key: bytes) -> np.ndarray | None:
        """The array kept under ``key`` (now the most recently used), else ``None``."""
        with self._lock:
            array = self._arrays.get(key)
            if array is not None:
                self._arrays.move_to_end(key)
            return array

    def clear(self) -> None:
        """Drop every array."""
        with self._lock:
            self._arrays.clear()
            self._used = 0
