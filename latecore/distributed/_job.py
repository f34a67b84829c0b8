"""The two sides of a distributed encoding job: the actor body (:class:`EncoderWorker`)
and the driver (:class:`Job`): the cache check, the task plan, dispatch and progress."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ..base_encoder import BaseEncoder, clean_text, progress_enabled
from ..cache import cache_key
from ..encoder import SORT_WINDOW, Encoder
from ..errors import InputError, LatecoreError
from ..validation import StorageDtype
from .spec import CacheLocation, EncodeProgress, EncodeReport, EncoderSpec, open_cache

if TYPE_CHECKING:
    from ..index import LateIndex

__all__ = ["EncoderWorker", "Job"]

_CHECK_CHUNK = 1024
"""Keys the driver looks up in the cache per read when it skips what is already encoded."""


class EncoderWorker:
    """Body of one actor: an encoder built from a spec, and the cache of the current job."""

    def __init__(self, spec: EncoderSpec) -> None:
        os.environ.setdefault("LATECORE_PROGRESS", "0")
        self.base = spec.build()
        self.job = ""
        self.encoder = self.base

    def _for(self, job: str, cache: CacheLocation, dtype: StorageDtype) -> BaseEncoder:
        """The encoder on ``job``'s cache (opened on the job's first call here)."""
        if job != self.job:
            if self.encoder.cache is not None:
                self.encoder.cache.close()
            self.encoder = self.base.with_cache(open_cache(cache, dtype, memory_bytes=0))
            self.job = job
        return self.encoder

    def describe(
        self, job: str, cache: CacheLocation, dtype: StorageDtype
    ) -> tuple[tuple[str, int], int]:
        """The fingerprint and batch size of the encoder on the job's cache; the process id."""
        encoder = self._for(job, cache, dtype)
        return (encoder.fingerprint, encoder.batch_size), os.getpid()

    def order(self, texts: list[str]) -> list[int]:
        """The order the encoder runs ``texts`` in: longest first by token count, as
        :class:`~latecore.encoder.Encoder` sorts each window (input order for other encoders)."""
        encoder = self.base
        if not isinstance(encoder, Encoder):
            return list(range(len(texts)))
        import torch

        prompted = [encoder._prompt + encoder.model_text(text) for text in texts]
        lengths = encoder.model.tokenize(prompted, is_query=False)["attention_mask"].sum(dim=1)
        return [int(i) for i in torch.argsort(lengths, descending=True, stable=True)]

    def encode(
        self, job: str, cache: CacheLocation, dtype: StorageDtype, texts: list[str]
    ) -> tuple[int, int]:
        """Encode ``texts`` through the job's cache: how many the model ran on (the misses),
        and this process's id (a new one after a restart)."""
        encoder = self._for(job, cache, dtype)
        before = encoder.encode_stats().documents
        encoder.encode_documents(texts)
        return encoder.encode_stats().documents - before, os.getpid()

    def pid(self) -> int:
        return os.getpid()


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


class Job:
    """The driver's side of one :func:`encode_corpus` call."""

    def __init__(
        self,
        ray: Any,
        actors: list[Any],
        columns: tuple[list[str], list[str], list[dict[str, Any]]],
        index: LateIndex | None,
        progress: Callable[[EncodeProgress], None] | None,
    ) -> None:
        self.ray, self.actors, self.index, self.progress = ray, actors, index, progress
        self.texts, self.ids, self.metas = columns
        self.job = uuid.uuid4().hex
        self.cleaned = [clean_text(text) for text in self.texts]
        self.distinct = list(dict.fromkeys(self.cleaned))
        self.tasks: list[list[str]] = []
        self.cached = self.done = self.encoded = self.restarts = self.indexed = 0
        self.rows: dict[str, list[int]] = {}
        self.index_before = index.encoder.encode_stats().documents if index is not None else 0
        self.where: tuple[CacheLocation, StorageDtype] = ("", "float16")
        self.fingerprint = ""
        self.pids: dict[int, int] = {}  # actor: the process id it last answered from

    def prepare(self, cache: CacheLocation, dtype: StorageDtype, task_size: int) -> None:
        """Check the actors agree; look every distinct text up in the cache; cut the
        missing ones into tasks."""
        self.where = (cache, dtype)
        answers = self.ray.get([a.describe.remote(self.job, cache, dtype) for a in self.actors])
        self.pids = {actor: pid for actor, (_, pid) in enumerate(answers)}
        described = {settings for settings, _ in answers}
        if len(described) != 1:
            raise LatecoreError(
                f"the actors' encoders differ ({len(described)} fingerprints or batch sizes): "
                "every node needs the same checkpoint, options and package versions"
            )
        ((self.fingerprint, batch_size),) = described
        if self.index is not None:
            _check_index(self.index, self.fingerprint)
            for row, text in enumerate(self.cleaned):
                self.rows.setdefault(text, []).append(row)
        driver_cache = open_cache(cache, dtype, memory_bytes=0)
        try:
            todo = list(_missing(driver_cache, self.fingerprint, self.distinct))
        finally:
            driver_cache.close()
        self.tasks = self._plan(todo, max(1, task_size // batch_size) * batch_size)
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

        def send(number: int, actor: int) -> None:
            reference = actors[actor].encode.remote(self.job, *self.where, self.tasks[number])
            in_flight[reference] = (number, actor)

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
                self.restarts += pid != self.pids[actor]
                self.pids[actor] = pid
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
