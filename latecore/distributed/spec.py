"""What a distributed encoding job is given and gives back: the encoder spec, the cache
location, the progress and the report (no Ray needed here)."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..base_encoder import BaseEncoder
from ..cache import MultivectorCache
from ..caches import is_redis_url
from ..caches import open_cache as open_location
from ..errors import InputError
from ..validation import StorageDtype, check_dtype

__all__ = ["CacheLocation", "EncodeProgress", "EncodeReport", "EncoderSpec", "open_cache"]

CacheLocation = str | os.PathLike[str] | Callable[[], Any]
"""A cache directory, a ``redis://`` URL, or a picklable zero-argument callable opening a cache."""


@dataclass(frozen=True)
class EncoderSpec:
    """How to build an encoder in another process: a model and its options, no weights.

    Parameters
    ----------
    model
        Checkpoint directory or Hub id, as given to :class:`~latecore.encoder.Encoder`.
        Every node must be able to load it (the same path on each, or a Hub id with
        a warm Hugging Face cache).
    options
        Keyword arguments of the encoder (``device``, ``batch_size``,
        ``document_length``, ``quantize``, ...), except ``cache``.
    factory
        ``"module:callable"`` that builds the encoder as
        ``factory(model, cache=..., **options)`` (``model`` left out when ``None``);
        default :class:`latecore.Encoder`.

    Examples
    --------
    >>> spec = EncoderSpec(None, {"dim": 8}, factory="latecore.testing:FakeEncoder")
    >>> spec.build().encode_documents(["two words"])[0].shape
    (3, 8)
    """

    model: str | None
    options: Mapping[str, Any] = field(default_factory=dict)
    factory: str = "latecore.encoder:Encoder"

    def __post_init__(self) -> None:
        if self.model is not None and not isinstance(self.model, str):
            object.__setattr__(self, "model", os.fspath(self.model))
        if "cache" in self.options:
            raise InputError("EncoderSpec options must not hold a cache: encode_corpus opens it")
        module, _, name = self.factory.partition(":")
        if not module or not name:
            raise InputError(f"factory must be 'module:callable', got {self.factory!r}")

    def build(self, cache: MultivectorCache | None = None) -> BaseEncoder:
        """The encoder, with ``cache`` as its document cache."""
        module, _, name = self.factory.partition(":")
        target = getattr(importlib.import_module(module), name)
        args = () if self.model is None else (self.model,)
        encoder = target(*args, cache=cache, **dict(self.options))
        if not isinstance(encoder, BaseEncoder):
            raise InputError(f"{self.factory} built a {type(encoder).__name__}, not an encoder")
        return encoder


def open_cache(location: CacheLocation, dtype: StorageDtype = "float16", **options: Any) -> Any:
    """The cache at ``location``: a directory (:class:`MultivectorCache`), a Redis URL
    (:class:`~latecore.redis_cache.RedisCache`, the tier several machines share) or a
    factory's cache.

    ``dtype`` and ``options`` (``memory_bytes``, ``timeout``, ...) apply to a
    directory; a callable is called with no arguments and carries its own settings.

    Examples
    --------
    >>> import tempfile
    >>> open_cache(tempfile.mkdtemp()).dtype
    'float16'
    """
    if callable(location):
        return location()
    if isinstance(location, str | os.PathLike):
        if is_redis_url(location):  # the shared tier: every actor and the driver reach it
            return open_location(os.fspath(location), dtype=check_dtype(dtype))
        return MultivectorCache(Path(location), dtype=check_dtype(dtype), **options)
    raise InputError(
        f"cache must be a directory or a callable opening a cache, got {type(location).__name__}"
    )


@dataclass(frozen=True)
class EncodeProgress:
    """Where an :func:`encode_corpus` job stands, passed to its ``progress`` callback."""

    done: int
    """Distinct texts finished (already cached, or encoded by a task that has returned)."""
    total: int
    """Distinct texts of the corpus."""
    cached: int
    """Distinct texts found in the cache before any task was sent."""
    encoded: int
    """Texts the actors ran through their models, over the tasks returned so far."""
    restarts: int
    """Actors seen restarted (a dead actor's unfinished tasks run again on its replacement)."""


@dataclass(frozen=True)
class EncodeReport:
    """What an :func:`encode_corpus` job did.

    ``encoded`` counts the texts the actors' models ran on, as reported by the
    tasks that returned; ``cached + sent`` is the number of distinct texts.
    """

    texts: int
    distinct: int
    cached: int
    sent: int
    encoded: int
    restarts: int
    indexed: int
    index_encoded: int
    actors: int
    fingerprint: str
    seconds: float

    @property
    def documents_per_second(self) -> float:
        """Distinct texts sent to the actors per second of the whole job."""
        return self.sent / self.seconds if self.seconds > 0 else 0.0
