"""A process killed with SIGKILL while saving a LateIndex leaves the old index or the new one."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from _rel_support import start_worker

from latecore import LateIndex
from latecore.testing import FakeEncoder

KILLS = 20
DOCUMENTS = 2000
WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron"


def _index(seed: int) -> LateIndex:
    """2,000 documents of 5-60 words; ids, texts and lengths all depend on ``seed``."""
    rng = random.Random(seed)
    texts = [" ".join(rng.choices(WORDS.split(), k=rng.randint(5, 60))) for _ in range(DOCUMENTS)]
    index = LateIndex(FakeEncoder())
    index.add(texts, ids=[f"s{seed}-{i}" for i in range(DOCUMENTS)])
    return index


def _content(index: LateIndex) -> tuple[list[str], list[str], bytes, bytes]:
    store = index.store
    packed = store.packed()
    texts = [hit.text for hit in index.get(index.ids)]
    return index.ids, texts, packed.matrix.tobytes(), packed.offsets.tobytes()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sigkill_during_save_leaves_old_or_new_index(tmp_path: Path) -> None:
    """20 SIGKILLs while a 2,000-document index is saved over an existing saved index.

    The worker saves index A and index B to the same path in turn, forever; it is
    killed at a random moment. Every time, ``LateIndex.load`` must return A or B
    complete (same ids, texts and vectors bit for bit): never an error, never a mix.
    """
    sources = []
    contents = []
    for seed in (1, 2):
        index = _index(seed)
        source = tmp_path / f"source-{seed}"
        index.save(source)
        sources.append(source)
        contents.append(_content(index))
    assert contents[0][2] != contents[1][2] and len(contents[0][2]) != len(contents[1][2])
    target = tmp_path / "index"
    LateIndex.load(sources[0], FakeEncoder()).save(target)
    rng = random.Random(11)
    seen: list[int] = []
    saves = 0
    for _ in range(KILLS):
        worker = start_worker("save", target, *sources)
        assert worker.stdout is not None and worker.stderr is not None
        head = worker.stdout.readline()
        assert head == "ready\n", worker.stderr.read()
        time.sleep(rng.uniform(0.0, 0.4))
        os.kill(worker.pid, signal.SIGKILL)
        saves += worker.stdout.read().count("saved")
        worker.wait()
        assert worker.returncode == -signal.SIGKILL, worker.stderr.read()
        loaded = _content(LateIndex.load(target, FakeEncoder()))
        assert loaded in contents, "the loaded index is neither the old nor the new one"
        seen.append(contents.index(loaded))
    assert saves >= KILLS, f"only {saves} saves completed: the kills came too early"
    assert set(seen) == {0, 1}, seen


def test_save_refuses_a_directory_it_did_not_write(tmp_path: Path) -> None:
    """Saving over a non-empty folder that is not a saved index changes nothing in it."""
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    index = LateIndex(FakeEncoder())
    index.add(["a text"], ids=["a"])
    with pytest.raises(FileExistsError, match="did not write"):
        index.save(folder)
    assert [p.name for p in folder.iterdir()] == ["keep.txt"]
    assert not list(tmp_path.glob(".notes.*")), "no staging directory is left behind"


def test_interrupted_swap_is_read_and_then_repaired(tmp_path: Path) -> None:
    """Killed between its two renames, a save leaves the old copy beside the path: load reads
    it, and the next save puts a complete index back in place."""
    old, new = _index(3), _index(4)
    target = tmp_path / "index"
    old.save(target)
    os.rename(target, tmp_path / ".index.latecore-old")  # the state between the renames
    assert _content(LateIndex.load(target, FakeEncoder())) == _content(old)
    new.save(target)
    assert _content(LateIndex.load(target, FakeEncoder())) == _content(new)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]
    np.testing.assert_array_equal(LateIndex.load(target, FakeEncoder()).ids, new.ids)
