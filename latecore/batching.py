"""Micro-batching: concurrent encode calls on one encoder share one model pass, and
concurrent searches on one index share one scoring pass.

An encoder runs one model call at a time (pylate changes its tokenizer's settings
on every call, so calls must not overlap). :class:`MicroBatcher` turns that queue
into batches: a caller that finds the model idle runs its own texts at once (a
lone query waits for nothing); callers that arrive while a pass is running queue
up, and when the pass ends the first of them (the *leader*) takes every queued
request of the same role (queries or documents), up to ``max_batch`` texts in
all, and runs them in one call; the others (*followers*) sleep until the leader
hands them their vectors. With ``wait_s > 0`` a leader that already has
company waits up to that long for more callers before it starts; a leader alone
never waits.

A query's vectors are those it gets alone, bit for bit (the encoder pads each
query to a width of its own: :mod:`latecore._batches`); a document's are, up to
the kernels' rounding (``docs/batching.md``).
If a coalesced pass raises, each request in it is run again on its own, so a bad
text fails only its caller. :class:`BatchStats` counts what happened.

The same batcher coalesces concurrent searches of one
:class:`~latecore.index.LateIndex` (items: encoded queries; group: ``k`` and the
filter): exact MaxSim scores every query of a pass in one GEMM per block of the
index, which costs far less per query than one pass per query (each query's
scores are the ones it gets alone, bit for bit: rows of a GEMM do not interact).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field, replace
from typing import Any

from .validation import check_positive

__all__ = ["DEFAULT_MAX_BATCH", "BatchStats", "MicroBatcher", "check_batch_wait_ms"]

DEFAULT_MAX_BATCH = 32
"""Texts one coalesced pass takes at most (measured: ``docs/benchmarks.md#concurrent-queries``)."""

RunPass = Callable[[list[Any], Any], list[Any]]
"""One pass: ``(items, group) -> one result per item``, in order. For an encoder the
items are texts and the group whether they are queries; for an index, encoded
queries and ``(k, filter)``."""


@dataclass(frozen=True)
class BatchStats:
    """What an encoder's micro-batcher did, cumulative since the encoder was created.

    Subtract two snapshots for one job. A *pass* is one model call; it served
    ``requests`` encode calls (``coalesced`` passes served more than one). A
    leader that waited for company before its pass counts in ``waits``.

    Examples
    --------
    >>> from latecore.testing import FakeEncoder
    >>> encoder = FakeEncoder()
    >>> before = encoder.batch_stats()
    >>> _ = encoder.encode_queries(["alone"])
    >>> done = encoder.batch_stats() - before
    >>> done.passes, done.requests, done.largest, done.waits
    (1, 1, 1, 0)
    """

    passes: int = 0
    requests: int = 0
    texts: int = 0
    coalesced: int = 0
    waits: int = 0
    largest: int = 0
    """Most requests one pass served (the larger of the two snapshots when subtracted)."""

    def __sub__(self, other: BatchStats) -> BatchStats:
        return BatchStats(
            self.passes - other.passes,
            self.requests - other.requests,
            self.texts - other.texts,
            self.coalesced - other.coalesced,
            self.waits - other.waits,
            self.largest,
        )


def check_batch_wait_ms(value: object) -> float:
    """``value`` as a float if it is a finite number of milliseconds >= 0, else ``ValueError``.

    Examples
    --------
    >>> check_batch_wait_ms(2)
    2.0
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"batch_wait_ms must be a number of milliseconds >= 0, got {value!r}")
    if value == float("inf"):
        raise ValueError("batch_wait_ms must be finite")
    return float(value)


@dataclass(eq=False)
class _Request:
    texts: list[Any]
    group: Hashable
    done: bool = False
    result: list[Any] = field(default_factory=list)
    error: BaseException | None = None


class MicroBatcher:
    """Coalesces concurrent encode calls into shared model passes.

    Parameters
    ----------
    max_batch
        Texts one pass takes at most; a larger request runs alone, whole. ``1``
        turns coalescing off.
    wait_s
        Seconds a leader that already has company waits for more callers.
    alone_if
        When it returns true for a caller, the caller runs its own pass at once
        (a thread holding a lock that passes take, which would otherwise wait for
        a pass that waits for it).

    Examples
    --------
    >>> import numpy as np
    >>> batcher = MicroBatcher(max_batch=8)
    >>> batcher.run(["a", "bb"], True, lambda texts, q: [np.zeros(len(t)) for t in texts])
    [array([0.]), array([0., 0.])]
    >>> batcher.stats.passes
    1
    """

    def __init__(
        self,
        max_batch: int = DEFAULT_MAX_BATCH,
        wait_s: float = 0.0,
        *,
        alone_if: Callable[[], bool] | None = None,
    ) -> None:
        self.max_batch = check_positive(max_batch, "max_batch")
        self.wait_s = wait_s
        self._alone_if = alone_if
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[_Request] = deque()
        self._busy = False
        self._leader: int | None = None  # the thread running the current pass
        self.stats = BatchStats()

    def run(self, texts: list[Any], group: Hashable, run_pass: RunPass) -> list[Any]:
        """``run_pass(texts, group)``, possibly in one call with other threads' items of
        the same ``group`` (texts are deduplicated when every item is a string)."""
        if self._leader == threading.get_ident() or (self._alone_if and self._alone_if()):
            return run_pass(texts, group)  # inside a pass, or holding what a pass would wait for
        request = _Request(texts, group)
        with self._cond:
            self._queue.append(request)
            if self._busy and self.wait_s > 0:
                self._cond.notify_all()  # a leader waiting for company sees the newcomer
            try:
                while not request.done:
                    if self._busy:
                        self._cond.wait()
                    else:
                        self._lead(run_pass)
            finally:
                if not request.done and request in self._queue:
                    self._queue.remove(request)  # interrupted: nobody would collect it
        if request.error is not None:
            raise request.error
        return request.result

    def _lead(self, run_pass: RunPass) -> None:
        """Run one pass for the queue's oldest request and its company; called locked."""
        self._busy = True
        batch: list[_Request] = []
        waited = False
        try:
            waited = self._wait_for_company()
            batch = self._take()
            self._leader = threading.get_ident()
            self._cond.release()
            try:
                _execute(batch, run_pass)
            finally:
                self._cond.acquire()
                self._leader = None
        finally:
            self._busy = False
            if batch:
                self._record(batch, waited)
            self._cond.notify_all()

    def _wait_for_company(self) -> bool:
        """With company queued, wait up to ``wait_s`` for a full batch; whether it waited."""
        if self.wait_s <= 0 or len(self._queue) < 2 or self._queued_texts() >= self.max_batch:
            return False
        deadline = time.monotonic() + self.wait_s
        while self._queued_texts() < self.max_batch:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._cond.wait(left)
        return True

    def _queued_texts(self) -> int:
        group = self._queue[0].group
        return sum(len(r.texts) for r in self._queue if r.group == group)

    def _take(self) -> list[_Request]:
        """The oldest request, and after it the queued ones of its role that fit."""
        first = self._queue.popleft()
        batch, size = [first], len(first.texts)
        for request in list(self._queue):
            if request.group != first.group:
                continue
            if size + len(request.texts) > self.max_batch:
                break
            self._queue.remove(request)
            batch.append(request)
            size += len(request.texts)
        return batch

    def _record(self, batch: list[_Request], waited: bool) -> None:
        done = self.stats
        self.stats = replace(
            done,
            passes=done.passes + 1,
            requests=done.requests + len(batch),
            texts=done.texts + sum(len(r.texts) for r in batch),
            coalesced=done.coalesced + (len(batch) > 1),
            waits=done.waits + waited,
            largest=max(done.largest, len(batch)),
        )


def _execute(batch: list[_Request], run_pass: RunPass) -> None:
    """Run ``batch`` in one pass (each distinct text once) and hand out the results.

    If the pass fails, each request of a coalesced batch is run on its own, so an
    error reaches only the caller whose texts caused it.
    """
    try:
        if len(batch) == 1:
            _run_alone(batch[0], run_pass)
            return
        items = [t for r in batch for t in r.texts]
        texts = all(isinstance(t, str) for t in items)
        unique = list(dict.fromkeys(items)) if texts else items
        try:
            results = run_pass(unique, batch[0].group)
        except Exception:
            for request in batch:
                _run_alone(request, run_pass)
            return
        if texts:
            encoded = dict(zip(unique, results, strict=True))
            for request in batch:
                request.result = [encoded[t] for t in request.texts]
                request.done = True
            return
        start = 0
        for request in batch:
            request.result = results[start : start + len(request.texts)]
            start += len(request.texts)
            request.done = True
    except BaseException as error:  # KeyboardInterrupt and the like: nobody is left waiting
        for request in batch:
            if not request.done:
                request.error, request.done = error, True
        raise


def _run_alone(request: _Request, run_pass: RunPass) -> None:
    try:
        request.result = run_pass(request.texts, request.group)
    except Exception as error:
        request.error = error
    request.done = True
