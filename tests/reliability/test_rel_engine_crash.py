"""A process SIGKILLed while bulk-adding into an engine loses no acknowledged document.

One harness, parametrised by engine: an embedded Qdrant shard (qdrant-edge) and a
LanceDB table. The worker (this file run as a script: ``python
test_rel_engine_crash.py ENGINE LOCATION SAVED RUN``) opens a new ``LateIndex``
on the engine at LOCATION (or loads the saved index when there is one), then
forever adds a batch of documents, saves the index (the engine's files live
outside the saved directory) and prints ``ack`` with the batch's ids.

- **qdrant**: ``LateIndex(..., backend="qdrant", path=<shard>)``; the shard builds
  its HNSW graph every few batches (``optimize_after``), so some kills land
  mid-optimize.
- **lancedb**: ``LateIndex(..., backend="lancedb", uri=<db>)``; the table is
  optimised (compacted, every older version removed) every few batches
  (``optimize_after``, ``keep_versions_s=0``), so some kills land mid-compaction
  or mid-cleanup.

After every kill the engine reopens on its own, and ``LateIndex.load``
re-synchronises it with the saved index: every acknowledged document (of this
and all earlier workers) is in the index and the engine, and is found by a
search for its own text.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from latecore import LateIndex
from latecore.testing import FakeEncoder

BATCH = 25
REPO = Path(__file__).resolve().parents[2]


def _reopen_qdrant_shard(shard: Path) -> None:
    import qdrant_edge

    qdrant_edge.EdgeShard.load(str(shard)).close()


def _reopen_lancedb_table(database: Path) -> None:
    import lancedb

    lancedb.connect(str(database)).open_table("latecore").count_rows()


@dataclass(frozen=True)
class Engine:
    """What the harness needs to know about one engine."""

    backend: str
    location: str
    """The keyword of ``LateIndex`` that names where the engine's files go."""
    settings: dict[str, Any]
    rounds: int
    reopen: Callable[[Path], None]
    """Opens the engine's files directly, without latecore (raises if they are damaged)."""
    count: Callable[[Any], int]
    """Documents the engine holds, asked through the backend."""


ENGINES = {
    "qdrant": Engine(
        backend="qdrant",
        location="path",
        settings={"k_sim": 3, "dim_proj": 8, "r_reps": 4, "optimize_after": 100},
        rounds=6,
        reopen=_reopen_qdrant_shard,
        count=lambda backend: backend._engine.count(),
    ),
    "lancedb": Engine(
        backend="lancedb",
        location="uri",
        settings={"optimize_after": 100, "keep_versions_s": 0},
        rounds=5,
        reopen=_reopen_lancedb_table,
        count=lambda backend: backend.table.count_rows(),
    ),
}


def text_of(doc_id: str) -> str:
    """A text whose first word is unique to ``doc_id`` (so it is its own best match)."""
    rng = random.Random(doc_id)
    words = [f"w{rng.randrange(200)}" for _ in range(rng.randint(5, 30))]
    return " ".join([doc_id.replace("-", "x"), *words])


def work(engine: Engine, location: str, saved: str, run: int) -> None:
    """Add batches of ``BATCH`` documents forever; print ``ack`` after each saved batch."""
    encoder = FakeEncoder()
    if Path(saved).exists():
        index = LateIndex.load(saved, encoder)
    else:
        where = {engine.location: location}
        index = LateIndex(encoder, backend=engine.backend, **where, **engine.settings)  # type: ignore[arg-type]
    print("ready", flush=True)
    for batch in range(1_000_000):
        ids = [f"r{run}-b{batch}-{i}" for i in range(BATCH)]
        index.add([text_of(i) for i in ids], ids=ids)
        index.save(saved)
        print("ack", *ids, flush=True)


def _start(name: str, location: Path, saved: Path, run: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, name, str(location), str(saved), str(run)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )


def _assert_present(
    engine: Engine, location: Path, saved: Path, acknowledged: list[str], rng: random.Random
) -> None:
    engine.reopen(location)  # the engine reopens on its own
    with LateIndex.load(saved, FakeEncoder()) as index:
        lost = [i for i in acknowledged if i not in index]
        assert not lost, f"{len(lost)} acknowledged documents lost, e.g. {lost[:3]}"
        backend = index.backend
        assert engine.count(backend) == len(index)
        vectors = backend.fetch_vectors(acknowledged)  # type: ignore[attr-defined]  # all in it
        assert len(vectors) == len(acknowledged)
        sample = acknowledged[-3:] + rng.sample(acknowledged, min(5, len(acknowledged)))
        for doc_id in sample:
            assert index.search(text_of(doc_id), k=1)[0].id == doc_id


@pytest.mark.engines
@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("name", sorted(ENGINES))
def test_sigkill_while_bulk_adding_to_an_engine(name: str, tmp_path: Path) -> None:
    """Workers are SIGKILLed at random moments while adding, saving or optimising.

    After every kill the engine's files reopen, and ``LateIndex.load``
    re-synchronises the engine with the saved index: every acknowledged document
    (of this and all earlier workers) is in the index and the engine, and is
    found by a search for its own text.
    """
    engine = ENGINES[name]
    location, saved = tmp_path / "engine", tmp_path / "saved"
    rng = random.Random(5)
    acknowledged: list[str] = []
    for run in range(engine.rounds):
        worker = _start(name, location, saved, run)
        assert worker.stdout is not None and worker.stderr is not None
        head = worker.stdout.readline()
        assert head == "ready\n", worker.stderr.read()
        time.sleep(rng.uniform(0.5, 3.0))
        os.kill(worker.pid, signal.SIGKILL)
        out = worker.stdout.read()
        err = worker.stderr.read()
        worker.wait()
        assert worker.returncode == -signal.SIGKILL, err
        acknowledged += [
            i for line in out.splitlines() if line.startswith("ack") for i in line.split()[1:]
        ]
        if saved.exists():
            _assert_present(engine, location, saved, acknowledged, rng)
    assert len(acknowledged) >= 4 * BATCH, "the kills came too early"


if __name__ == "__main__":
    work(ENGINES[sys.argv[1]], sys.argv[2], sys.argv[3], int(sys.argv[4]))
