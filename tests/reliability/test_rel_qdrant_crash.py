"""A process SIGKILLed while bulk-adding into a qdrant-edge shard loses no acknowledged document.

The worker (this file run as a script) opens ``LateIndex(..., backend="qdrant",
path=<shard>)`` (or loads the saved index when there is one), then forever adds
a batch of documents, saves the index (the shard lives outside the saved
directory) and prints ``ack`` with the batch's ids. Its shard builds its HNSW
graph every few batches (``optimize_after``), so some kills land mid-optimize.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from latecore import LateIndex
from latecore.testing import FakeEncoder

ROUNDS = 6
BATCH = 25
SETTINGS = {"k_sim": 3, "dim_proj": 8, "r_reps": 4, "optimize_after": 100}
REPO = Path(__file__).resolve().parents[2]


def text_of(doc_id: str) -> str:
    """A text whose first word is unique to ``doc_id`` (so it is its own best match)."""
    rng = random.Random(doc_id)
    words = [f"w{rng.randrange(200)}" for _ in range(rng.randint(5, 30))]
    return " ".join([doc_id.replace("-", "x"), *words])


def work(shard: str, saved: str, run: int) -> None:
    """Add batches of ``BATCH`` documents forever; print ``ack`` after each saved batch."""
    encoder = FakeEncoder()
    if Path(saved).exists():
        index = LateIndex.load(saved, encoder)
    else:
        index = LateIndex(encoder, backend="qdrant", path=shard, **SETTINGS)  # type: ignore[arg-type]
    print("ready", flush=True)
    for batch in range(1_000_000):
        ids = [f"r{run}-b{batch}-{i}" for i in range(BATCH)]
        index.add([text_of(i) for i in ids], ids=ids)
        index.save(saved)
        print("ack", *ids, flush=True)


def _start(shard: Path, saved: Path, run: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, str(shard), str(saved), str(run)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )


def _assert_present(shard: Path, saved: Path, acknowledged: list[str], rng: random.Random) -> None:
    import qdrant_edge

    qdrant_edge.EdgeShard.load(str(shard)).close()  # the engine reopens on its own
    with LateIndex.load(saved, FakeEncoder()) as index:
        lost = [i for i in acknowledged if i not in index]
        assert not lost, f"{len(lost)} acknowledged documents lost, e.g. {lost[:3]}"
        backend = index.backend
        assert backend._engine.count() == len(index)  # type: ignore[attr-defined]
        vectors = backend.fetch_vectors(acknowledged)  # every one is in the engine
        assert len(vectors) == len(acknowledged)
        sample = acknowledged[-3:] + rng.sample(acknowledged, min(5, len(acknowledged)))
        for doc_id in sample:
            assert index.search(text_of(doc_id), k=1)[0].id == doc_id


@pytest.mark.timeout(240)
def test_sigkill_while_bulk_adding_to_a_qdrant_edge_shard(tmp_path: Path) -> None:
    """6 workers are SIGKILLed at random moments while adding, saving or optimizing.

    After every kill the shard reopens with ``EdgeShard.load``, and
    ``LateIndex.load`` re-synchronises it with the saved index: every acknowledged
    document (of this and all earlier workers) is in the index and the engine,
    and is found by a search for its own text.
    """
    shard, saved = tmp_path / "shard", tmp_path / "saved"
    rng = random.Random(5)
    acknowledged: list[str] = []
    for run in range(ROUNDS):
        worker = _start(shard, saved, run)
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
            _assert_present(shard, saved, acknowledged, rng)
    assert len(acknowledged) >= 4 * BATCH, "the kills came too early"


if __name__ == "__main__":
    work(sys.argv[1], sys.argv[2], int(sys.argv[3]))
