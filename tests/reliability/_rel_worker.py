"""Worker processes of the reliability suite, run as ``python _rel_worker.py MODE ...``.

Imports only ``latecore.cache`` and, for ``save``, ``latecore.index`` with the
fake encoder (no torch), so a worker starts in a fraction of a second. Every
value is derived from its name (and writer), so the test process can recompute
what each worker wrote without talking to it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import sys
import time
from typing import Any

import numpy as np

from latecore.cache import MultivectorCache, cache_key

DIM = 96
FINGERPRINT = "latecore-reliability-suite"


def key_for(name: str) -> bytes:
    """Cache key of the entry called ``name``."""
    return cache_key(FINGERPRINT, "document", name)


def value_for(name: str, writer: int = 0) -> np.ndarray:
    """The float16 multivector (30-300 x 96) that ``writer`` stores under ``name``."""
    seed = int.from_bytes(hashlib.sha256(f"{name}|{writer}".encode()).digest()[:8], "big")
    rng = np.random.default_rng(seed)
    rows = int(rng.integers(30, 301))
    return rng.standard_normal((rows, DIM)).astype(np.float16)


class SkipCounter(logging.Handler):
    """Counts the warnings ``latecore.cache`` logs (each one is a skipped or failed write)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


def _counter() -> SkipCounter:
    counter = SkipCounter()
    logging.getLogger("latecore.cache").addHandler(counter)
    return counter


def _wait_for(path: str) -> None:
    while not os.path.exists(path):
        time.sleep(0.002)


def storm(directory: str, writer: int, n_writes: int, n_shared: int, start: str) -> None:
    """Every 5th write goes to one of ``n_shared`` shared keys, the others to unique keys."""
    skipped = _counter()
    with MultivectorCache(directory, timeout=120.0, memory_bytes=0) as cache:
        _wait_for(start)
        for i in range(n_writes):
            if i % 5 == 0:
                name = f"shared-{(i // 5 + writer) % n_shared}"
                cache.put_many([key_for(name)], [value_for(name, writer)])
            else:
                name = f"unique-{writer}-{i}"
                cache.put_many([key_for(name)], [value_for(name)])
    print(f"done {skipped.count}", flush=True)


def cold(directory_template: str, start_template: str, rounds: int, worker: int) -> None:
    """In each round, open a fresh directory together with the other workers, write, read."""
    skipped = _counter()
    for r in range(rounds):
        _wait_for(start_template.format(r))
        name = f"cold-{worker}"
        with MultivectorCache(directory_template.format(r), timeout=60.0, memory_bytes=0) as c:
            c.put_many([key_for(name)], [value_for(name)])
            c.clear_memory()
            (got,) = c.get_many([key_for(name)])
        if got is None or got.tobytes() != value_for(name).tobytes():
            raise SystemExit(f"round {r}: worker {worker} could not read back its own write")
        print(f"ok {r} {skipped.count}", flush=True)


def crash(directory: str, run: int) -> None:
    """Write batches of 1-3 entries forever; print ``ack`` after each committed batch."""
    skipped = _counter()
    with MultivectorCache(directory, timeout=60.0, memory_bytes=0) as cache:
        print("ready", flush=True)
        for i in range(1_000_000):
            names = [f"crash-{run}-{i}-{j}" for j in range(1 + i % 3)]
            before = skipped.count
            cache.put_many([key_for(n) for n in names], [value_for(n) for n in names])
            if skipped.count == before:
                print("ack", *names, flush=True)


def hold(directory: str, how: str, seconds: float) -> None:
    """Hold the database's write lock for ``seconds``: via diskcache or a raw ``BEGIN``."""
    if how == "diskcache":
        import diskcache

        from latecore.cache import SafeDisk

        with diskcache.Cache(directory, disk=SafeDisk) as store, store.transact():
            print("locked", flush=True)
            time.sleep(seconds)
    else:
        connection = sqlite3.connect(os.path.join(directory, "cache.db"), isolation_level=None)
        connection.execute("BEGIN IMMEDIATE")
        print("locked", flush=True)
        time.sleep(seconds)
        connection.execute("COMMIT")
        connection.close()
    print("released", flush=True)


def save_loop(target: str, *sources: str) -> None:
    """Load the indexes in ``sources``, then save them to ``target`` in turn, forever."""
    from latecore import LateIndex
    from latecore.testing import FakeEncoder

    indexes = [LateIndex.load(source, FakeEncoder()) for source in sources]
    print("ready", flush=True)
    for i in range(1_000_000):
        indexes[i % len(indexes)].save(target)
        print("saved", i % len(indexes), flush=True)


def save_count(target: str, count: str, stop: str, *sources: str) -> None:
    """Save the indexes in ``sources`` to ``target`` in turn: ``count`` times at least, and
    until the file ``stop`` exists; then print how many saves were made."""
    from latecore import LateIndex
    from latecore.testing import FakeEncoder

    indexes = [LateIndex.load(source, FakeEncoder()) for source in sources]
    print("ready", flush=True)
    saves = 0
    while saves < int(count) or not os.path.exists(stop):
        indexes[saves % len(indexes)].save(target)
        saves += 1
    print("saved", saves, flush=True)


def tamper_file(path: str, kind: str, seed: int) -> None:
    """Damage one saved engine file: its ``header`` (a ``.npy`` shape, or a number in a
    JSON file, made larger), a ``truncation``, or ``flips`` of a few bytes; seeded."""
    import json
    import re

    rng = np.random.default_rng(seed)
    data = bytearray(open(path, "rb").read())  # noqa: SIM115
    if kind == "header" and path.endswith(".npy"):
        end = data.index(b"\n") + 1
        header = data[:end].decode("latin1")
        shape = re.search(r"\((\d*)", header)
        assert shape is not None
        first = int(shape.group(1) or 1)
        grown = str(first * int(rng.integers(2, 1000)) + int(rng.integers(1, 9)))
        header = header[: shape.start(1)] + grown + header[shape.end(1) :]
        if shape.group(1) == "":  # a 0-d array: give it a dimension
            header = header.replace(grown, grown + ",", 1)
        body = header.rstrip("\n").rstrip(" ")
        data[:end] = (body + " " * (end - 1 - len(body)) + "\n").encode("latin1")[:end]
    elif kind == "header":
        numbers = list(re.finditer(rb"\d+", bytes(data)))
        if numbers:
            chosen = numbers[int(rng.integers(len(numbers)))]
            bigger = str(int(chosen.group()) * 7 + 1000).encode()
            data[chosen.start() : chosen.end()] = bigger
        else:
            data = bytearray(json.dumps({"tampered": True}).encode())
    elif kind == "truncation":
        data = data[: int(rng.integers(0, max(len(data), 1)))]
    else:
        for at in rng.integers(0, len(data), int(rng.integers(1, 9))):
            data[at] ^= int(rng.integers(1, 256))
    with open(path, "wb") as out:
        out.write(bytes(data))


def tamper_cases(engine: str, saved: str, scratch: str, cases: str) -> None:
    """Load tampered copies of the saved index ``saved`` (one per case of the JSON file
    ``cases``), then add a document and search; print each case's outcome."""
    import json
    import shutil

    from latecore import IndexFormatError, LateIndex
    from latecore.testing import FakeEncoder

    plan = json.loads(open(cases, encoding="utf-8").read())  # noqa: SIM115
    encoder = FakeEncoder()
    exact = LateIndex.load(saved, encoder, backend="exact")
    exact.add([plan["added"]], ids=["added"])
    expected = [[(h.id, round(h.score, 4)) for h in exact.search(q, k=10)] for q in plan["queries"]]
    lazy = {"warp": {"build_min": 10**9}, "plaid": {"rebuild_min": 10**9}}[engine]
    for n, case in enumerate(plan["cases"]):
        print("case", n, flush=True)
        target = os.path.join(scratch, f"case-{n}")
        shutil.copytree(saved, target)
        tamper_file(os.path.join(target, case["file"]), case["kind"], case["seed"])
        try:
            index = LateIndex.load(target, encoder, **({} if case["rebuild"] else lazy))
        except IndexFormatError as error:
            print("error", type(error).__name__, flush=True)
            shutil.rmtree(target)
            continue
        backend: Any = index.backend
        engine_kept = (backend.indexed if engine == "warp" else backend.snapshot_size) > 0
        index.add([plan["added"]], ids=["added"])
        got = [[(h.id, round(h.score, 4)) for h in index.search(q, k=10)] for q in plan["queries"]]
        rebuilt = (backend.indexed if engine == "warp" else backend.snapshot_size) > 0
        index.close()
        shutil.rmtree(target)
        outcome = "same" if got == expected else "different"
        state = "kept" if engine_kept else "rebuilt" if rebuilt else "exact-until-rebuild"
        print(outcome, state, flush=True)
    print("done", flush=True)


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "storm":
        storm(args[0], int(args[1]), int(args[2]), int(args[3]), args[4])
    elif mode == "cold":
        cold(args[0], args[1], int(args[2]), int(args[3]))
    elif mode == "crash":
        crash(args[0], int(args[1]))
    elif mode == "hold":
        hold(args[0], args[1], float(args[2]))
    elif mode == "save":
        save_loop(args[0], *args[1:])
    elif mode == "saves":
        save_count(args[0], *args[1:])
    elif mode == "tamper":
        tamper_cases(*args)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
