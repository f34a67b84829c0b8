"""A process SIGKILLed while bulk-adding into a LanceDB table loses no acknowledged document.

The worker (this file run as a script) opens ``LateIndex(..., backend="lancedb",
uri=<db>)`` (or loads the saved index when there is one), then forever adds a
batch of documents, saves the index (the table lives outside the saved
directory) and prints ``ack`` with the batch's ids. Its table is optimised
(compacted, every older version removed) every few batches (``optimize_after``,
``keep_versions_s=0``), so some kills land mid-compaction or mid-cleanup.
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

ROUNDS = 5
BATCH = 25
SETTINGS = {"optimize_after": 100, "keep_versions_s": 0}
REPO = Path(__file__).resolve().parents[2]


def text_of(doc_id: str) -> str:
    """A text whose first word is unique to ``doc_id`` (so it is its own best match)."""
    rng = random.Random(doc_id)
    words = [f"w{rng.randrange(200)}" for _ in range(rng.randint(5, 30))]
    return " ".join([doc_id.replace("-", "x"), *words])


def work(database: str, saved: str, run: int) -> None:
    """Add batches of ``BATCH`` documents forever; print ``ack`` after each saved batch."""
    encoder = FakeEncoder()
    if Path(saved).exists():
        index = LateIndex.load(saved, encoder)
    else:
        index = LateIndex(encoder, backend="lancedb", uri=database, **SETTINGS)  # type: ignore[arg-type]
    print("ready", flush=True)
    for batch in range(1_000_000):
        ids = [f"r{run}-b{batch}-{i}" for i in range(BATCH)]
        index.add([text_of(i) for i in ids], ids=ids)
        index.save(saved)
        print("ack", *ids, flush=True)


def _start(database: Path, saved: Path, run: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, str(database), str(saved), str(run)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )


def _assert_present(
    database: Path, saved: Path, acknowledged: list[str], rng: random.Random
) -> None:
    import lancedb

    lancedb.connect(str(database)).open_table("latecore").count_rows()  # the table opens
    with LateIndex.load(saved, FakeEncoder()) as index:
        lost = [i for i in acknowledged if i not in index]
        assert not lost, f"{len(lost)} acknowledged documents lost, e.g. {lost[:3]}"
        backend = index.backend
        assert backend.table.count_rows() == len(index)  # type: ignore[attr-defined]
        vectors = backend.fetch_vectors(acknowledged)  # every one is in the table
        assert len(vectors) == len(acknowledged)
        sample = acknowledged[-3:] + rng.sample(acknowledged, min(5, len(acknowledged)))
        for doc_id in sample:
            assert index.search(text_of(doc_id), k=1)[0].id == doc_id


@pytest.mark.timeout(240)
def test_sigkill_while_bulk_adding_to_a_lancedb_table(tmp_path: Path) -> None:
    """5 workers are SIGKILLed at random moments while adding, saving or optimising.

    After every kill the table opens, and ``LateIndex.load`` re-synchronises it
    with the saved index: every acknowledged document (of this and all earlier
    workers) is in the index and the table, and is found by a search for its
    own text.
    """
    database, saved = tmp_path / "db", tmp_path / "saved"
    rng = random.Random(5)
    acknowledged: list[str] = []
    for run in range(ROUNDS):
        worker = _start(database, saved, run)
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
            _assert_present(database, saved, acknowledged, rng)
    assert len(acknowledged) >= 4 * BATCH, "the kills came too early"


if __name__ == "__main__":
    work(sys.argv[1], sys.argv[2], int(sys.argv[3]))
