"""A thread of its own for an engine whose handles belong to the thread that made them.

xtr-warp-rs 2.1's searcher (``xtr_warp_rs.ShardedSearcher``, built by
``XTRWarp.load``) is a pyo3 ``unsendable`` class: used from any other thread
than the one that created it, it panics ("is unsendable, but sent to another
thread"); dropped on another thread, it is leaked. ``XTRWarp.search``,
``free``, ``delete`` (tombstones) and ``add``/``update`` (which free and reload
it) all use it, so a WARP index built in one thread could not be searched from
``asyncio.to_thread``, a thread pool or an async retriever.

:class:`EngineThread` keeps such a handle together with the one thread allowed
to touch it: every call that creates, uses or frees the handle runs there
(:func:`on_engine_thread` marks those methods), whichever thread asked, and
:meth:`EngineThread.close` frees the handle there too, also when the owner is
garbage-collected without being closed. It is a daemon thread, started on first
use, so an interpreter that exits without closing an index is not held up.

One thread per engine costs no parallelism: a
:class:`~latecore.index.LateIndex` runs one backend call at a time under its
lock. It costs a hand-over per call (``benchmarks/bench_warp_threads.py``
measures it against a searcher per thread).

Examples
--------
>>> engine = EngineThread("latecore-doc-engine")
>>> engine.run(lambda: threading.current_thread().name)
'latecore-doc-engine'
>>> engine.run(lambda: engine.run(lambda: 2))  # a call from the engine thread runs in place
2
>>> engine.close()
"""

from __future__ import annotations

import functools
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Concatenate, Generic, ParamSpec, Protocol, TypeVar

__all__ = ["EngineThread", "on_engine_thread"]

H = TypeVar("H")
T = TypeVar("T")
P = ParamSpec("P")

_Work = tuple[Callable[[], Any], "Future[Any]"] | None
_UNREACHABLE: list[object] = []
"""Handles that could not be freed on their thread (interpreter exit): kept, never dropped."""


def _serve(requests: queue.SimpleQueue[_Work]) -> None:
    while (request := requests.get()) is not None:
        work, done = request
        if done.set_running_or_notify_cancel():
            try:
                done.set_result(work())
            except BaseException as error:  # a Rust panic is a BaseException: hand it back
                done.set_exception(error)


class EngineThread(Generic[H]):
    """One thread that alone creates, uses and frees an engine ``handle``.

    Parameters
    ----------
    name
        The thread's name.
    release
        Frees a handle (called on the engine thread by :meth:`close`).
    """

    def __init__(self, name: str, release: Callable[[H], object] | None = None) -> None:
        self.name = name
        self.handle: H | None = None
        """The engine handle (set and used only by work that :meth:`run` runs)."""
        self._release = release
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._requests: queue.SimpleQueue[_Work] = queue.SimpleQueue()

    def run(self, work: Callable[[], T]) -> T:
        """``work()`` on the engine thread (in place when called from it); its result or error."""
        if threading.current_thread() is self._thread:
            return work()
        done: Future[T] = Future()
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=_serve, args=(self._requests,), name=self.name, daemon=True
                )
                self._thread.start()
            self._requests.put((work, done))
        return done.result()

    def close(self) -> None:
        """Free the handle on the engine thread and stop the thread (idempotent; a later
        :meth:`run` starts a new one)."""
        handle, self.handle = self.handle, None
        if handle is not None and self._release is not None:
            release = self._release
            try:
                self.run(lambda: release(handle))
            except RuntimeError:  # threads cannot start any more: the interpreter is exiting
                _UNREACHABLE.append(handle)
        with self._lock:
            thread, self._thread = self._thread, None
            if thread is not None:
                self._requests.put(None)
                self._requests = queue.SimpleQueue()
        if thread is not None and thread is not threading.current_thread():
            thread.join()


class _HasEngine(Protocol):
    _engine_thread: EngineThread[Any]


S = TypeVar("S", bound=_HasEngine)


def on_engine_thread(method: Callable[Concatenate[S, P], T]) -> Callable[Concatenate[S, P], T]:
    """Run a method of an object with an ``_engine_thread`` (:class:`EngineThread`) there.

    Examples
    --------
    >>> class Backend:
    ...     def __init__(self):
    ...         self._engine_thread = EngineThread("latecore-doc-backend")
    ...     @on_engine_thread
    ...     def where(self):
    ...         return threading.current_thread().name
    >>> backend = Backend()
    >>> backend.where()
    'latecore-doc-backend'
    >>> backend._engine_thread.close()
    """

    @functools.wraps(method)
    def run_there(self: S, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._engine_thread.run(lambda: method(self, *args, **kwargs))

    return run_there
