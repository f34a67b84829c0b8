"""Corpus encoding across a Ray cluster: one encoder per actor, results in the cache.

:func:`encode_corpus` splits a corpus into tasks, runs them on Ray actors that
each load one encoder from an :class:`EncoderSpec` (a model path and its
options, never a pickled model) and write the multivectors into the
content-addressed cache, keyed exactly as that encoder keys them. A later
``LateIndex.add`` with the same encoder and cache encodes nothing, and a re-run
of the job encodes only what the cache lacks (the driver checks the cache before
it sends anything). A task whose actor dies runs again on the restarted actor;
the actor's encoder checks the cache first, so a task that had written its
entries before the crash writes nothing again.

The cache is given as a location every actor opens itself: a directory (the
disk cache; every actor on one host may share it) or a picklable callable that
returns a cache (for the shared tier every machine can reach, such as a Redis
cache). Across machines a directory only works on a filesystem every node
mounts *and* that supports SQLite's locking: use the shared tier instead.

Ray is an extra (``pip install 'latecore[ray]'``); this module imports it only
when :func:`encode_corpus` runs. docs/distributed.md has the cluster commands.
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .base_encoder import BaseEncoder, clean_text, progress_enabled
from .cache import MultivectorCache, cache_key
from .encoder import SORT_WINDOW, Encoder
from .errors import InputError, LatecoreError
from .searcher import check_documents
from .validation import StorageDtype, check_dtype, check_positive

if TYPE_CHECKING:
    from .index import LateIndex

__all__ = ["EncodeProgress", "EncodeReport", "EncoderSpec", "encode_corpus", "open_cache"]

CacheLocation = str | os.PathLike[str] | Callable[[], MultivectorCache]
"""A cache directory, or a picklable zero-argument callable that opens a cache."""

_CHECK_CHUNK = 1024
"""Keys the driver looks up in the cache per read when it skips what is already encoded."""


def _require_ray() -> Any:
    try:
        import ray
    except ImportError as error:
        raise ImportError(
            "latecore.distributed.encode_corpus needs Ray: pip install 'latecore[ray]'"
        ) from error
    return ray


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
    """The cache at ``location``: a directory (:class:`MultivectorCache`) or a factory's cache.

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
        if "://" in os.fspath(location):
            raise InputError(
                f"{os.fspath(location)!r} is a URL: pass a picklable callable that opens that "
                "cache (for example functools.partial of the Redis cache class) as cache="
            )
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


class _EncoderWorker:
    """Body of one actor: an encoder built from a spec, writing through its own cache."""

    def __init__(self, spec: EncoderSpec, cache: CacheLocation, dtype: StorageDtype) -> None:
        os.environ.setdefault("LATECORE_PROGRESS", "0")
        self.encoder = spec.build(open_cache(cache, dtype, memory_bytes=0))

    def describe(self) -> tuple[str, int]:
        """The encoder's fingerprint and batch size."""
        return self.encoder.fingerprint, self.encoder.batch_size

    def order(self, texts: list[str]) -> list[int]:
        """The order the encoder runs ``texts`` in: longest first by token count, as
        :class:`~latecore.encoder.Encoder` sorts each window (input order for other encoders)."""
        encoder = self.encoder
        if not isinstance(encoder, Encoder):
            return list(range(len(texts)))
        import torch

        prompted = [encoder._prompt + encoder.model_text(text) for text in texts]
        lengths = encoder.model.tokenize(prompted, is_query=False)["attention_mask"].sum(dim=1)
        return [int(i) for i in torch.argsort(lengths, descending=True, stable=True)]

    def encode(self, texts: list[str]) -> tuple[int, int]:
        """Encode ``texts`` through the cache: how many the model ran on (the misses), and
        this process's id (a new one after a restart)."""
        before = self.encoder.encode_stats().documents
        self.encoder.encode_documents(texts)
        return self.encoder.encode_stats().documents - before, os.getpid()


def _missing(cache: Any, fingerprint: str, texts: list[str]) -> Iterator[str]:
    """The texts of ``texts`` (distinct, cleaned) whose key the cache does not hold."""
    for start in range(0, len(texts), _CHECK_CHUNK):
        chunk = texts[start : start + _CHECK_CHUNK]
        keys = [cache_key(fingerprint, "document", text) for text in chunk]
        for text, found in zip(chunk, cache.get_many(keys), strict=True):
            if found is None:
                yield text


def _check_index(index: LateIndex, fingerprint: str) -> None:
    encoder = index.encoder
    if encoder.cache is None or encoder.fingerprint != fingerprint:
        raise InputError(
            "the index's encoder must be the job's encoder on the job's cache (same "
            "fingerprint), or adding to it would encode every document again: build it as "
            "spec.build(open_cache(cache))"
        )


def encode_corpus(
    texts: Sequence[str],
    ids: Sequence[str] | None = None,
    *,
    encoder: EncoderSpec,
    cache: CacheLocation,
    dtype: StorageDtype = "float16",
    metadatas: Sequence[Mapping[str, Any] | None] | None = None,
    index: LateIndex | None = None,
    num_actors: int = 1,
    num_cpus: float = 1.0,
    num_gpus: float = 0.0,
    task_size: int = 256,
    max_retries: int = 3,
    address: str | None = None,
    progress: Callable[[EncodeProgress], None] | None = None,
    show_progress: bool | None = None,
) -> EncodeReport:
    """Encode ``texts`` on Ray actors into ``cache`` (and ``index``), skipping cached texts.

    Parameters
    ----------
    texts, ids, metadatas
        The corpus. ``ids`` and ``metadatas`` are only used with ``index``
        (the cache is keyed by text); ids default to uuid4 hex, as in ``LateIndex.add``.
    encoder
        The :class:`EncoderSpec` every actor builds its encoder from.
    cache
        Where the multivectors go: a directory (one host) or a picklable callable
        opening the shared tier every node reaches (several machines); see
        :func:`open_cache`. Opened by the driver (to skip what it holds) and by each actor.
    dtype
        Storage dtype of a directory cache (part of the encoder's fingerprint).
    index
        Optional :class:`~latecore.index.LateIndex` (any backend: ``lancedb``,
        ``qdrant``, ...) that each finished task's documents are added to in the
        driver, through its ordinary ``add``. Its encoder must be the job's encoder
        on the same cache (``encoder.build(open_cache(cache))``), so those adds
        read the cache and encode nothing.
    num_actors, num_cpus, num_gpus
        Actors to start and the Ray resources each one reserves (``num_gpus=1``:
        one GPU per actor; set ``device`` in the spec's options if needed).
    task_size
        Texts per task (each actor runs its encoder's own batches inside a task).
    max_retries
        Restarts of a dead actor and retries of its unfinished tasks.
    address
        Ray cluster to connect to when Ray is not initialised yet (``"auto"``, or
        ``"ray://host:10001"``); ``None`` follows ``ray.init`` (``$RAY_ADDRESS``,
        else a local Ray started for the job and stopped after it).
    progress
        Called with an :class:`EncodeProgress` after the cache check and after each task.
    show_progress
        A tqdm bar over the distinct texts (see :func:`~latecore.base_encoder.progress_enabled`).

    Returns
    -------
    EncodeReport
        Counts (distinct texts, cached, sent, encoded, restarts, indexed) and seconds.

    Raises
    ------
    ImportError
        If Ray is not installed (``pip install 'latecore[ray]'``).
    InputError
        If the cache location or the index's encoder cannot be used.
    LatecoreError
        If the actors' encoders disagree on their fingerprint (nodes with
        different package versions or checkpoints).
    """
    ray = _require_ray()
    texts, doc_ids, metas = check_documents(texts, ids, metadatas)
    check_positive(num_actors, "num_actors")
    check_positive(task_size, "task_size")
    dtype = check_dtype(dtype)
    started = time.perf_counter()
    initialised_here = not ray.is_initialized()
    if initialised_here:
        ray.init(address=address, log_to_driver=False)
    try:
        actor_class = ray.remote(_EncoderWorker).options(
            num_cpus=num_cpus,
            num_gpus=num_gpus,
            max_restarts=max_retries,
            max_task_retries=max_retries,
        )
        actors = [actor_class.remote(encoder, cache, dtype) for _ in range(num_actors)]
        try:
            job = _Job(ray, actors, texts, doc_ids, metas, index, progress)
            job.prepare(cache, dtype, task_size)
            job.run(show_progress)
        finally:
            for actor in actors:
                ray.kill(actor)
    finally:
        if initialised_here:
            ray.shutdown()
    return job.report(time.perf_counter() - started)


class _Job:
    """The driver's side of one :func:`encode_corpus` call."""

    def __init__(
        self,
        ray: Any,
        actors: list[Any],
        texts: list[str],
        ids: list[str],
        metas: list[dict[str, Any]],
        index: LateIndex | None,
        progress: Callable[[EncodeProgress], None] | None,
    ) -> None:
        self.ray, self.actors, self.index, self.progress = ray, actors, index, progress
        self.texts, self.ids, self.metas = texts, ids, metas
        self.cleaned = [clean_text(text) for text in texts]
        self.distinct = list(dict.fromkeys(self.cleaned))
        self.tasks: list[list[str]] = []
        self.cached = self.done = self.encoded = self.restarts = self.indexed = 0
        self.rows: dict[str, list[int]] = {}
        self.index_before = index.encoder.encode_stats().documents if index is not None else 0
        described = set(ray.get([actor.describe.remote() for actor in actors]))
        if len(described) != 1:
            raise LatecoreError(
                f"the actors' encoders differ ({len(described)} fingerprints or batch sizes): "
                "every node needs the same checkpoint, options and package versions"
            )
        ((self.fingerprint, self.batch_size),) = described
        if index is not None:
            _check_index(index, self.fingerprint)
            for row, text in enumerate(self.cleaned):
                self.rows.setdefault(text, []).append(row)

    def prepare(self, cache: CacheLocation, dtype: StorageDtype, task_size: int) -> None:
        """Look every distinct text up in the cache; cut the missing ones into tasks."""
        driver_cache = open_cache(cache, dtype, memory_bytes=0)
        try:
            todo = list(_missing(driver_cache, self.fingerprint, self.distinct))
        finally:
            driver_cache.close()
        self.tasks = self._plan(todo, max(1, task_size // self.batch_size) * self.batch_size)
        self.cached = self.done = len(self.distinct) - len(todo)
        if self.index is not None and self.cached:
            missing = set(todo)
            finished = [text for text in self.distinct if text not in missing]
            for start in range(0, len(finished), task_size):
                self._add_to_index(finished[start : start + task_size])

    def _plan(self, todo: list[str], per_task: int) -> list[list[str]]:
        """Tasks holding whole batches of the encoder, so each text meets the neighbours it
        would meet in one process encoding ``todo`` (and gets bit-identical vectors): each
        window of the encoder is put in the encoder's order by an actor, then cut."""
        windows = [todo[i : i + SORT_WINDOW] for i in range(0, len(todo), SORT_WINDOW)]
        actors = self.actors
        orders = self.ray.get(
            [actors[i % len(actors)].order.remote(w) for i, w in enumerate(windows)]
        )
        tasks: list[list[str]] = []
        for window, order in zip(windows, orders, strict=True):
            ordered = [window[i] for i in order]
            tasks.extend(ordered[i : i + per_task] for i in range(0, len(ordered), per_task))
        return tasks

    def run(self, show_progress: bool | None) -> None:
        """Keep two tasks in flight per actor; Ray reruns those of an actor that died."""
        from tqdm.auto import tqdm

        ray, actors = self.ray, self.actors
        in_flight: dict[Any, tuple[int, int]] = {}  # task reference: (task, actor)
        pids: dict[int, int] = {}  # actor: the process id it last answered from

        def send(number: int, actor: int) -> None:
            in_flight[actors[actor].encode.remote(self.tasks[number])] = (number, actor)

        with tqdm(
            total=len(self.distinct),
            initial=self.cached,
            desc="Encoding documents on Ray",
            unit="doc",
            disable=not progress_enabled(show_progress),
        ) as bar:
            self._report()
            waiting = iter(range(len(self.tasks)))
            for slot, number in zip(range(2 * len(actors)), waiting, strict=False):
                send(number, slot % len(actors))
            while in_flight:
                (ready,), _ = ray.wait(list(in_flight), num_returns=1)
                number, actor = in_flight.pop(ready)
                try:
                    encoded, pid = ray.get(ready)
                except ray.exceptions.RayActorError as error:
                    raise LatecoreError(
                        f"task {number} of {len(self.tasks)} failed on every try (its actor "
                        f"died more than max_retries times): {error}"
                    ) from error
                self.restarts += pid != pids.setdefault(actor, pid)
                pids[actor] = pid
                self.encoded += encoded
                self.done += len(self.tasks[number])
                bar.update(len(self.tasks[number]))
                if self.index is not None:
                    self._add_to_index(self.tasks[number])
                self._report()
                follower = next(waiting, None)
                if follower is not None:
                    send(follower, actor)

    def _add_to_index(self, finished: list[str]) -> None:
        """Add every document whose text is in ``finished`` to the index (read from the cache)."""
        assert self.index is not None
        rows = sorted(row for text in finished for row in self.rows.pop(text, ()))
        if rows:
            self.index.add(
                [self.texts[r] for r in rows],
                [self.ids[r] for r in rows],
                [self.metas[r] for r in rows],
            )
            self.indexed += len(rows)

    def _report(self) -> None:
        if self.progress is not None:
            self.progress(
                EncodeProgress(
                    self.done, len(self.distinct), self.cached, self.encoded, self.restarts
                )
            )

    def report(self, seconds: float) -> EncodeReport:
        index_encoded = (
            self.index.encoder.encode_stats().documents - self.index_before if self.index else 0
        )
        return EncodeReport(
            texts=len(self.texts),
            distinct=len(self.distinct),
            cached=self.cached,
            sent=len(self.distinct) - self.cached,
            encoded=self.encoded,
            restarts=self.restarts,
            indexed=self.indexed,
            index_encoded=index_encoded,
            actors=len(self.actors),
            fingerprint=self.fingerprint,
            seconds=seconds,
        )
