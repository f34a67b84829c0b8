"""Loads racing saves: every load sees one complete save, or a clear error to retry.

Another process saves two versions of an index over the same path, in turn,
while this process loads it. The versions have the same ids and token counts;
every text and metadata record names its version and every vector's value *is*
the version number, so a load that paired one save's documents with another
save's vectors would be seen. With the ``warp`` and ``plaid`` backends, whose
engine files are saved in the index directory, the files the engine opened must
also be those of the save the documents came from.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from _rel_support import start_worker

from latecore import LateIndex
from latecore.errors import IndexChangedError, IndexFormatError
from latecore.store import MemoryStore
from latecore.testing import FakeEncoder

DOCUMENTS = 300
SAVES = 200
LOADS = 200


def _lengths() -> list[int]:
    rng = np.random.default_rng(3)
    return [int(n) for n in rng.integers(5, 41, DOCUMENTS)]


def _vectors(version: int) -> list[np.ndarray]:
    """Token vectors whose first component is the version number (the rest: seeded noise,
    the same in both versions, so that an engine has clusters to find)."""
    rng = np.random.default_rng(4)
    vectors = [rng.standard_normal((n, 32)).astype(np.float16) for n in _lengths()]
    for v in vectors:
        v[:, 0] = version
    return vectors


def version_index(version: int, **options: object) -> LateIndex:
    """Version ``version``: the same ids and token counts; texts, metadata and vectors tell it."""
    store = MemoryStore()
    store.add(
        [f"doc-{i}" for i in range(DOCUMENTS)],
        [f"version {version} document {i}" for i in range(DOCUMENTS)],
        [{"version": version}] * DOCUMENTS,
        _vectors(version),
    )
    return LateIndex(FakeEncoder(), store=store, **options)  # type: ignore[arg-type]


def loaded_version(index: LateIndex) -> int:
    """The one version everything in ``index`` comes from (fails on a mix)."""
    hits = index.get(index.ids)
    versions = {int(hit.text.split()[1]) for hit in hits}
    versions |= {hit.metadata["version"] for hit in hits}
    store = index.store
    vectors = store.vectors(np.arange(len(store)))
    versions |= {float(x) for v in vectors for x in np.unique(v[:, 0])}
    assert index.ids == [f"doc-{i}" for i in range(DOCUMENTS)]
    assert [len(v) for v in vectors] == _lengths()
    assert len(versions) == 1, f"a load mixed versions {sorted(versions)}"
    return int(versions.pop())


def engine_files(directory: Path) -> dict[str, str]:
    """Digests of the engine files in ``directory`` that the engine only reads (fast-plaid
    rewrites its merged files and adds a lock file where it loads)."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.iterdir())
        if not p.name.startswith(("merged_", "plaid.lock"))
    }


def race(
    tmp_path: Path,
    loads: int,
    saves: int,
    engine: Callable[[LateIndex], Path | None] | None = None,
    **options: object,
) -> dict[object, int]:
    """Load ``target`` while a worker process saves over it; at least ``loads`` loads
    and ``saves`` saves, every load while the worker saves. ``engine`` gives the
    directory an index's engine opened: its files must be the same version's.

    Returns how many loads saw each version, raised the retryable error, and were made.
    """
    sources, saved_engines = [], {}
    for version in (1, 2):
        source = tmp_path / f"version-{version}"
        with version_index(version, **options) as index:
            index.build()
            index.save(source)
            if engine is not None:
                opened = engine(index)
                assert opened is not None, "the engine was not built"
                saved_engines[version] = engine_files(opened)
        sources.append(source)
    if engine is not None:
        assert saved_engines[1] != saved_engines[2]
    target, stop = tmp_path / "index", tmp_path / "stop"
    LateIndex.load(sources[0], FakeEncoder()).save(target)
    worker = start_worker("saves", target, saves, stop, *sources)
    assert worker.stdout is not None and worker.stderr is not None
    assert worker.stdout.readline() == "ready\n", worker.stderr.read()
    seen: dict[object, int] = {1: 0, 2: 0, "retry": 0, "loads": 0}
    while worker.poll() is None:
        try:
            with LateIndex.load(target, FakeEncoder()) as index:
                version = loaded_version(index)
                if engine is not None:
                    opened = engine(index)
                    assert opened is not None and engine_files(opened) == saved_engines[version]
                seen[version] += 1
        except IndexChangedError as error:
            assert "load it again" in str(error)
            seen["retry"] += 1
        seen["loads"] += 1
        if seen["loads"] == loads:
            stop.touch()  # the worker stops once it has saved ``saves`` times too
    assert worker.returncode == 0, worker.stderr.read()
    made = int(worker.stdout.read().split()[1])
    print(f"{seen['loads']} loads racing {made} saves: {seen}")
    assert seen["loads"] >= loads and made >= saves
    assert seen[1] and seen[2], f"the loads did not see both versions: {seen}"
    return seen


@pytest.mark.timeout(300)
@pytest.mark.slow  # another process saves 200 times
def test_loads_racing_saves_see_one_complete_save_or_retry(tmp_path: Path) -> None:
    """200 loads (at least) while another process saves 200 times: each load returns one
    version complete (ids, texts, metadata and vectors of the same save) or raises
    ``IndexChangedError`` (an ``IndexFormatError``) saying to load again; nothing else."""
    seen = race(tmp_path, LOADS, SAVES)
    assert issubclass(IndexChangedError, IndexFormatError)
    assert seen[1] + seen[2] >= seen["loads"] // 4, f"too few loads succeeded: {seen}"


ENGINE_RACES = 60
PLAID_RACES = 20


@pytest.mark.timeout(600)
@pytest.mark.engines  # xtr-warp-rs
@pytest.mark.slow  # another process saves 200 times
def test_warp_loads_racing_saves_open_the_same_saves_engine_files(tmp_path: Path) -> None:
    """A saved WARP index loaded while another process saves over it: the WARP files the
    engine opens are those of the save its documents come from (or the load raises
    ``IndexChangedError``)."""
    from latecore.backends.warp import WarpBackend

    def warp_files(index: LateIndex) -> Path | None:
        assert isinstance(index.backend, WarpBackend) and index.backend.pending == 0
        return index.backend.index_directory

    race(tmp_path, ENGINE_RACES, ENGINE_RACES, warp_files, backend="warp", build_min=50)


@pytest.mark.timeout(600)
@pytest.mark.engines  # fast-plaid
@pytest.mark.slow  # another process saves 200 times
def test_plaid_loads_racing_saves_open_the_same_saves_snapshot(tmp_path: Path) -> None:
    """The same for a saved PLAID snapshot (fast-plaid on the CPU)."""
    from latecore.backends.plaid import PlaidBackend

    def plaid_files(index: LateIndex) -> Path | None:
        assert isinstance(index.backend, PlaidBackend) and index.backend.pending == 0
        return index.backend.index_directory

    options = {"num_partitions": 16, "kmeans_niters": 2, "rebuild_min": 10, "device": "cpu"}
    race(tmp_path, PLAID_RACES, PLAID_RACES, plaid_files, backend="plaid", **options)
