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
disk cache, which every actor of one host may share) or a picklable callable
that returns a cache. Several machines need the second: a shared tier every
node and the driver reach (such as a Redis cache); the disk cache's SQLite
locking does not work over network filesystems.

Ray is an extra (``pip install 'latecore[ray]'``), imported only when a pool
starts. docs/distributed.md has the cluster commands.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..searcher import check_documents
from ..validation import StorageDtype, check_dtype, check_positive
from ._job import EncoderWorker, Job
from .spec import CacheLocation, EncodeProgress, EncodeReport, EncoderSpec, open_cache

if TYPE_CHECKING:
    from ..index import LateIndex

__all__ = [
    "CacheLocation",
    "EncodeProgress",
    "EncodeReport",
    "EncoderPool",
    "EncoderSpec",
    "encode_corpus",
    "open_cache",
]


def _require_ray() -> Any:
    try:
        import ray
    except ImportError as error:
        raise ImportError(
            "latecore.distributed.encode_corpus needs Ray: pip install 'latecore[ray]'"
        ) from error
    return ray


class EncoderPool:
    """Ray actors that each hold one encoder built from a spec, for one or more jobs.

    :func:`encode_corpus` starts a pool for its one job; keep a pool to run several
    jobs (different corpora or caches) without loading the model again. A dead actor
    is restarted (up to ``max_retries`` times) and its unfinished tasks run again.

    Parameters
    ----------
    encoder
        The :class:`EncoderSpec` every actor builds its encoder from.
    num_actors, num_cpus, num_gpus
        Actors to start and the Ray resources each one reserves (``num_gpus=1``:
        one GPU per actor; set ``device`` in the spec's options if needed).
    max_retries
        Restarts of a dead actor, and reruns of each task it left unfinished.
    address
        Ray cluster to connect to when Ray is not initialised yet (``"auto"``, or
        ``"ray://host:10001"``); ``None`` follows ``ray.init`` (``$RAY_ADDRESS``,
        else a local Ray started for the pool and stopped by :meth:`close`).

    Raises
    ------
    ImportError
        If Ray is not installed (``pip install 'latecore[ray]'``).
    """

    def __init__(
        self,
        encoder: EncoderSpec,
        *,
        num_actors: int = 1,
        num_cpus: float = 1.0,
        num_gpus: float = 0.0,
        max_retries: int = 3,
        address: str | None = None,
    ) -> None:
        self.ray = ray = _require_ray()
        check_positive(num_actors, "num_actors")
        self.initialised_here = not ray.is_initialized()
        if self.initialised_here:
            ray.init(address=address, log_to_driver=False)
        actor_class = ray.remote(EncoderWorker).options(
            num_cpus=num_cpus,
            num_gpus=num_gpus,
            max_restarts=max_retries,
            max_task_retries=max_retries,
        )
        self.actors = [actor_class.remote(encoder) for _ in range(num_actors)]

    def actor_pids(self) -> list[int]:
        """The process id of each actor (after any restart)."""
        return [int(pid) for pid in self.ray.get([a.pid.remote() for a in self.actors])]

    def encode_corpus(
        self,
        texts: Sequence[str],
        ids: Sequence[str] | None = None,
        *,
        cache: CacheLocation,
        dtype: StorageDtype = "float16",
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        index: LateIndex | None = None,
        task_size: int = 256,
        progress: Callable[[EncodeProgress], None] | None = None,
        show_progress: bool | None = None,
    ) -> EncodeReport:
        """:func:`encode_corpus` on this pool's actors (the same arguments)."""
        columns = check_documents(texts, ids, metadatas)
        check_positive(task_size, "task_size")
        started = time.perf_counter()
        job = Job(self.ray, self.actors, columns, index, progress)
        job.prepare(cache, check_dtype(dtype), task_size)
        job.run(show_progress)
        return job.report(time.perf_counter() - started)

    def close(self) -> None:
        """Stop the actors (and the local Ray the pool started, if it did)."""
        for actor in self.actors:
            self.ray.kill(actor)
        self.actors = []
        if self.initialised_here and self.ray.is_initialized():
            self.ray.shutdown()

    def __enter__(self) -> EncoderPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


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
    check_documents(texts, ids, metadatas)
    with EncoderPool(
        encoder,
        num_actors=num_actors,
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        max_retries=max_retries,
        address=address,
    ) as pool:
        return pool.encode_corpus(
            texts,
            ids,
            cache=cache,
            dtype=dtype,
            metadatas=metadatas,
            index=index,
            task_size=task_size,
            progress=progress,
            show_progress=show_progress,
        )
