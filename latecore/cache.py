"""Persistent, content-addressed store of document multivectors.

Security model: the cache directory may be shared with other processes, and its
content is treated as untrusted. Nothing read from it is ever unpickled or
executed. Values are framed raw bytes (see :func:`encode_multivector`); keys are
SHA-256 digests (see :func:`cache_key`). A row that is anything else -- a pickled
value planted by diskcache's default ``Disk``, a file name pointing outside the
directory, a truncated or bit-flipped payload -- reads as a miss, is recomputed
by the caller and replaced on the next write.

The database's own ``Settings`` table is untrusted too: diskcache would apply
every row of it (as an attribute of the cache, such as the directory it opens,
of its ``Disk``, or as a SQLite ``PRAGMA``). :class:`MultivectorCache` fixes
every setting when it opens (see :data:`FIXED_SETTINGS`) and ignores, with a
warning, any stored row that differs.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sqlite3
import struct
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import diskcache
import numpy as np
import xxhash
from diskcache.core import DEFAULT_SETTINGS, ENOVAL, METADATA, MODE_BINARY, MODE_RAW

from ._hot import HotTier
from .quantize import dequantize_int8, quantize_int8

__all__ = [
    "CACHE_SCHEMA_VERSION",
    "FIXED_SETTINGS",
    "CacheStats",
    "MultivectorCache",
    "SafeDisk",
    "cache_key",
    "decode_multivector",
    "default_cache_dir",
    "encode_multivector",
]

logger = logging.getLogger(__name__)

CACHE_SCHEMA_VERSION = 1
"""Bumped whenever the key derivation or the value framing changes."""

StorageDtype = Literal["float16", "float32", "int8"]

_READ_CHUNK = 256
"""Keys per SELECT in get_many (well below SQLite's limit on bound parameters)."""

_MAGIC = b"LCMV"
_FRAME_VERSION = 2
# magic, frame version, dtype code, 2 pad bytes, rows, cols, XXH3-64 of the payload.
# (Version 1 used CRC-32, 12x slower to verify; its frames now read as misses.)
_HEADER = struct.Struct("<4sBBxxIIQ")
_DTYPE_CODES: dict[str, int] = {"float16": 1, "float32": 2, "int8": 3}
_CODE_DTYPES = {code: np.dtype(name) for name, code in _DTYPE_CODES.items()}
_INT8 = _DTYPE_CODES["int8"]
"""int8 frames carry ``rows`` float32 scales, then the int8 codes (:mod:`latecore.quantize`)."""

_ALL_IN_SQLITE = 2**31 - 1
"""``disk_min_file_size``: every value stays inside SQLite (no value files to read or remove)."""

FIXED_SETTINGS: Mapping[str, object] = {
    **DEFAULT_SETTINGS,
    "statistics": 0,  # reads never write to the database
    "tag_index": 0,
    "disk_min_file_size": _ALL_IN_SQLITE,
}
"""The diskcache settings of every :class:`MultivectorCache` (``size_limit`` and
``eviction_policy`` come from its arguments): what its database says is ignored."""
_CHOSEN_SETTINGS = ("size_limit", "eviction_policy")
"""Settings each process chooses; another process's stored choice is no warning."""


def _length_prefixed(part: bytes) -> bytes:
    return len(part).to_bytes(8, "big") + part


def cache_key(fingerprint: str, role: str, text: str) -> bytes:
    """Content address of one text's multivector.

    SHA-256 over a length-prefixed encoding of (schema version, fingerprint,
    role, text as UTF-8). Length prefixes make the encoding injective, so no two
    distinct triples can collide by concatenation. Lone surrogates are encoded
    with ``surrogatepass`` and therefore stay distinct from each other and from
    any replacement character.

    Parameters
    ----------
    fingerprint
        The encoder's fingerprint (see ``Encoder.fingerprint``).
    role
        ``"document"`` or ``"query"``.
    text
        The exact text that was encoded.

    Returns
    -------
    bytes
        A 32-byte digest.

    Examples
    --------
    >>> len(cache_key("fp", "document", "hello"))
    32
    >>> cache_key("fp", "document", "ab" + "c") == cache_key("fp", "document", "a" + "bc")
    True
    >>> cache_key("fp", "documentab", "c") == cache_key("fp", "document", "abc")
    False
    """
    digest = hashlib.sha256()
    for part in (
        str(CACHE_SCHEMA_VERSION).encode("ascii"),
        fingerprint.encode("utf-8", "surrogatepass"),
        role.encode("utf-8", "surrogatepass"),
        text.encode("utf-8", "surrogatepass"),
    ):
        digest.update(_length_prefixed(part))
    return digest.digest()


def encode_multivector(array: np.ndarray, dtype: StorageDtype = "float16") -> bytes:
    """Frame a ``(n_tokens, dim)`` array as bytes: header, then the raw array.

    Examples
    --------
    >>> data = encode_multivector(np.ones((3, 4), dtype=np.float32))
    >>> decode_multivector(data).shape
    (3, 4)
    """
    if array.ndim != 2:
        raise ValueError(f"a multivector must be 2-D (n_tokens, dim), got shape {array.shape}")
    if dtype == "int8":
        codes, scales = quantize_int8(array)
        payload = scales.tobytes() + codes.tobytes()
    else:
        payload = np.ascontiguousarray(array, dtype=dtype).tobytes()
    header = _HEADER.pack(
        _MAGIC,
        _FRAME_VERSION,
        _DTYPE_CODES[dtype],
        array.shape[0],
        array.shape[1],
        xxhash.xxh3_64_intdigest(payload),
    )
    return header + payload


def decode_multivector(data: object) -> np.ndarray | None:
    """Parse bytes made by :func:`encode_multivector`; ``None`` if they are not valid.

    The returned array is a read-only view in the stored dtype (an int8 frame
    reads as its float32 values, codes times scales).

    Examples
    --------
    >>> good = encode_multivector(np.zeros((2, 3), dtype=np.float32))
    >>> decode_multivector(good).dtype
    dtype('float16')
    >>> decode_multivector(encode_multivector(np.ones((2, 3)), "int8")).tolist()
    [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    >>> decode_multivector(good[:-1]) is None
    True
    >>> decode_multivector(b"\\x80\\x04pickled") is None
    True
    """
    if not isinstance(data, bytes | bytearray | memoryview) or len(data) < _HEADER.size:
        return None
    magic, version, code, rows, cols, checksum = _HEADER.unpack_from(data)
    if magic != _MAGIC or version != _FRAME_VERSION or code not in _CODE_DTYPES:
        return None
    dtype = _CODE_DTYPES[code]
    payload = memoryview(data)[_HEADER.size :]
    scale_bytes = 4 * rows if code == _INT8 else 0
    if (
        len(payload) != scale_bytes + rows * cols * dtype.itemsize
        or xxhash.xxh3_64_intdigest(payload) != checksum
    ):
        return None
    if code == _INT8:
        scales = np.frombuffer(payload[:scale_bytes], dtype=np.float32)
        codes = np.frombuffer(payload[scale_bytes:], dtype=np.int8).reshape(rows, cols)
        array = dequantize_int8(codes, scales)
        array.flags.writeable = False
        return array
    array = np.frombuffer(payload, dtype=dtype).reshape(rows, cols)
    array.flags.writeable = False
    return array


class SafeDisk(diskcache.Disk):
    """A diskcache ``Disk`` that stores bytes only and never unpickles.

    Keys must be ``bytes`` and values ``bytes``; anything else is refused on
    write. On read, a row in any other mode (pickle, text) is returned as
    ``None``, and a file name that resolves outside the cache directory is
    neither read nor removed. It always keeps values inside SQLite: the
    ``disk_*`` settings diskcache passes from its database are ignored.
    """

    def __init__(self, directory: str, /, **stored_settings: Any) -> None:
        super().__init__(directory, min_file_size=_ALL_IN_SQLITE, pickle_protocol=0)

    def put(self, key: Any) -> tuple[Any, bool]:
        if type(key) is not bytes:
            raise TypeError("latecore cache keys must be bytes")
        return sqlite3.Binary(key), True

    def get(self, key: Any, raw: bool) -> Any:
        if not raw:
            return None
        return bytes(key) if isinstance(key, sqlite3.Binary | memoryview) else key

    def store(self, value: Any, read: bool, key: Any = diskcache.core.UNKNOWN) -> Any:
        if read or type(value) is not bytes:
            raise TypeError("latecore cache values must be bytes")
        return super().store(value, read, key)

    def _inside(self, filename: object) -> Path | None:
        if not isinstance(filename, str) or not filename or os.path.isabs(filename):
            return None
        root = Path(self._directory).resolve()
        path = (root / filename).resolve()
        if root not in path.parents or path.is_symlink():
            return None
        return path

    def fetch(self, mode: int, filename: Any, value: Any, read: bool) -> Any:
        if read:
            return None
        if mode == MODE_RAW:
            return bytes(value) if isinstance(value, sqlite3.Binary | memoryview) else value
        if mode == MODE_BINARY:
            path = self._inside(filename)
            if path is None:
                return None
            try:
                with open(path, "rb") as reader:
                    return reader.read()
            except OSError:
                return None
        return None

    def remove(self, file_path: Any) -> None:
        path = self._inside(file_path)
        if path is None:
            return
        with contextlib.suppress(OSError):
            path.unlink()
        with contextlib.suppress(OSError):
            os.removedirs(path.parent)


def default_cache_dir() -> Path:
    """Where caches live unless told otherwise: ``$LATECORE_CACHE_DIR``, else the user cache dir.

    Examples
    --------
    >>> import os
    >>> os.environ["LATECORE_CACHE_DIR"] = "/tmp/latecore-doctest"
    >>> str(default_cache_dir())
    '/tmp/latecore-doctest'
    >>> del os.environ["LATECORE_CACHE_DIR"]
    """
    override = os.environ.get("LATECORE_CACHE_DIR")
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("latecore")) / "multivectors"


def _stored_settings(directory: Path) -> dict[str, object]:
    """The rows of the ``Settings`` table of the cache database in ``directory`` (if any)."""
    database = directory / "cache.db"
    if not database.is_file():
        return {}
    try:
        with contextlib.closing(sqlite3.connect(database, timeout=1.0)) as connection:
            return dict(connection.execute("SELECT key, value FROM Settings").fetchall())
    except sqlite3.Error:
        return {}


class _FixedSettingsCache(diskcache.Cache):
    """A diskcache ``Cache`` that runs with the settings it is opened with, whatever its
    database's ``Settings`` table says (that table is diskcache's only source of truth:
    it would otherwise apply every row, on opening and on each new connection).

    Known settings always take the given value; other rows (``_directory``,
    ``disk__directory``, an arbitrary ``sqlite_*`` pragma...) are ignored; the
    stored count and size are not trusted (:meth:`__len__` counts, :meth:`volume`
    measures the database: values are never stored in files).
    """

    def __init__(self, directory: Path, *, timeout: float, settings: Mapping[str, object]) -> None:
        self._fixed = dict(settings)
        self._ignored: set[str] = set()
        stored = _stored_settings(directory)
        for key, value in stored.items():
            if key not in METADATA and key not in _CHOSEN_SETTINGS:
                self._check_stored(key, value)
        super().__init__(str(directory), timeout=timeout, disk=SafeDisk, **self._fixed)

    def _check_stored(self, key: str, value: object) -> None:
        """Log once per key a stored setting that differs from the fixed one (it is ignored)."""
        if self._fixed.get(key, ENOVAL) == value or key in self._ignored:
            return
        self._ignored.add(key)
        logger.warning(
            "ignoring the setting %s=%r stored in the cache database in %s: latecore fixes "
            "its cache settings (was the directory written by another program?)",
            key,
            value,
            getattr(self, "_directory", "the cache directory"),
        )

    def reset(self, key: str, value: Any = ENOVAL, update: bool = True) -> Any:
        if key in self._fixed:
            if value is not ENOVAL and key not in _CHOSEN_SETTINGS:
                self._check_stored(key, value)
            return super().reset(key, self._fixed[key], update)
        if key in METADATA:
            return super().reset(key, value, update)
        self._check_stored(key, value)
        return None

    def volume(self) -> int:
        ((page_count,),) = self._sql("PRAGMA page_count").fetchall()
        return int(self._page_size * page_count)

    def __len__(self) -> int:
        ((count,),) = self._sql("SELECT COUNT(*) FROM Cache").fetchall()
        return int(count)


@dataclass(frozen=True)
class CacheStats:
    """Counters of one :class:`MultivectorCache` (hits and misses are this process's)."""

    hits: int
    misses: int
    items: int
    bytes: int


class MultivectorCache:
    """Content-addressed, persistent store of document multivectors on diskcache.

    Parameters
    ----------
    directory
        Cache directory; created with mode 0700. Defaults to
        :func:`default_cache_dir`.
    dtype
        Storage dtype, ``"float16"`` (default: half the disk, MaxSim scores within
        1e-3), ``"float32"`` (exact) or ``"int8"`` (one byte per dimension and a
        float32 scale per vector, :mod:`latecore.quantize`; entries read back as
        float32, the same checksum guards them).
    size_limit
        Upper bound on the on-disk volume in bytes (default 4 GiB). When a write
        takes the volume over it, diskcache evicts the *least recently stored*
        entries first (``eviction_policy``); reads never write to the database.
        Evicted entries are simply recomputed on their next use.
        The settings diskcache keeps in the database are never trusted: this
        limit, the eviction policy and :data:`FIXED_SETTINGS` apply, whatever
        the database says (a differing stored row is ignored with a warning).
    eviction_policy
        Any diskcache policy: ``"least-recently-stored"`` (default),
        ``"least-recently-used"``, ``"least-frequently-used"`` or ``"none"``.
    memory_bytes
        Budget of the in-process hot tier of decoded arrays (default 256 MiB;
        0 disables it). The hot tier is what makes a warm rerank cost little
        more than the query encode.
    timeout
        Seconds a write waits for another process's lock before it is skipped
        (and logged); reads are retried.

    Examples
    --------
    >>> import tempfile
    >>> cache = MultivectorCache(tempfile.mkdtemp())
    >>> key = cache_key("fp", "document", "hello")
    >>> cache.put_many([key], [np.ones((3, 4), dtype=np.float32)])
    >>> [a.shape for a in cache.get_many([key])]
    [(3, 4)]
    >>> cache.stats().items
    1
    """

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        *,
        dtype: StorageDtype = "float16",
        size_limit: int = 4 * 2**30,
        eviction_policy: str = "least-recently-stored",
        memory_bytes: int = 256 * 2**20,
        timeout: float = 10.0,
    ) -> None:
        if dtype not in _DTYPE_CODES:
            raise ValueError(f"dtype must be 'float16', 'float32' or 'int8', got {dtype!r}")
        if size_limit <= 0:
            raise ValueError(f"size_limit must be a positive number of bytes, got {size_limit}")
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self.directory = self.directory.expanduser()
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.dtype: StorageDtype = dtype
        self.size_limit = size_limit
        self._store = _FixedSettingsCache(
            self.directory,
            timeout=timeout,
            settings={
                **FIXED_SETTINGS,
                "size_limit": size_limit,
                "eviction_policy": eviction_policy,
            },
        )
        self._memory = HotTier(memory_bytes)
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0

    def __repr__(self) -> str:
        return f"MultivectorCache({str(self.directory)!r}, dtype={self.dtype!r})"

    @property
    def location(self) -> str:
        """The cache directory, as a string."""
        return str(self.directory)

    def get_many(self, keys: Sequence[bytes]) -> list[np.ndarray | None]:
        """Arrays (in the storage dtype, read-only) for ``keys``; ``None`` for each miss.

        Keys not in the hot tier are read with one query per chunk of keys rather
        than one per key. A row that cannot be read or fails validation is a
        miss, never an error.
        """
        found: list[np.ndarray | None] = [self._memory.recall(key) for key in keys]
        wanted = list(dict.fromkeys(k for k, a in zip(keys, found, strict=True) if a is None))
        stored: dict[bytes, np.ndarray] = {}
        for start in range(0, len(wanted), _READ_CHUNK):
            try:
                stored.update(self._read(wanted[start : start + _READ_CHUNK]))
            except (sqlite3.Error, diskcache.Timeout, OSError) as error:
                logger.warning("cache read failed, treating as misses: %s", error)
        for key, array in stored.items():
            self._memory.remember(key, array)
        found = [stored.get(k) if a is None else a for k, a in zip(keys, found, strict=True)]
        hits = sum(array is not None for array in found)
        with self._lock:
            self._hits += hits
            self._misses += len(found) - hits
        return found

    def _read(self, keys: list[bytes]) -> dict[bytes, np.ndarray]:
        """Valid stored arrays for ``keys``, in one query; every row goes through SafeDisk."""
        # diskcache has no batch get; this reads its Cache table (schema stable in 5.x)
        # the way Cache.get does, including the expiry condition.
        query = (
            "SELECT key, mode, filename, value FROM Cache WHERE raw = 1"
            f" AND key IN ({','.join('?' * len(keys))})"
            " AND (expire_time IS NULL OR expire_time > ?)"
        )
        rows = self._store._con.execute(query, (*keys, time.time())).fetchall()
        disk = self._store.disk
        arrays = {}
        for key, mode, filename, value in rows:
            array = decode_multivector(disk.fetch(mode, filename, value, False))
            if array is not None:
                arrays[bytes(key)] = array
        return arrays

    def put_many(self, keys: Sequence[bytes], arrays: Sequence[np.ndarray]) -> None:
        """Store ``arrays`` (converted to the storage dtype) under ``keys`` in one transaction.

        If another process holds the database lock past ``timeout``, the write is
        skipped and logged: the values are recomputed next time, nothing is lost.
        """
        if len(keys) != len(arrays):
            raise ValueError(f"got {len(keys)} keys for {len(arrays)} arrays")
        if not keys:
            return
        framed = [encode_multivector(np.asarray(a), self.dtype) for a in arrays]
        try:
            with self._store.transact():
                for key, data in zip(keys, framed, strict=True):
                    self._store.set(key, data)
        except (sqlite3.Error, diskcache.Timeout, OSError) as error:
            logger.warning("cache write of %d entries skipped: %s", len(keys), error)
        for key, data in zip(keys, framed, strict=True):
            decoded = decode_multivector(data)
            if decoded is not None:
                self._memory.remember(key, decoded)

    def stats(self) -> CacheStats:
        """Hits and misses of this process, items and bytes on disk."""
        return CacheStats(
            hits=self._hits,
            misses=self._misses,
            items=len(self._store),
            bytes=int(self._store.volume()),
        )

    def clear_memory(self) -> None:
        """Drop the in-process hot tier (the on-disk entries stay)."""
        self._memory.clear()

    def clear(self) -> None:
        """Remove every entry, on disk and in memory."""
        self.clear_memory()
        self._store.clear(retry=True)

    def close(self) -> None:
        """Close the database connections of this process."""
        self._store.close()

    def __enter__(self) -> MultivectorCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
