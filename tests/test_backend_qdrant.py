"""The ``qdrant`` backend on Qdrant's engines: an embedded qdrant-edge shard, and a server.

Every test that takes ``engine`` runs on an embedded shard, and on a Qdrant
server too when ``$QDRANT_URL`` is set::

    QDRANT_URL=http://localhost:6333 pytest tests/test_backend_qdrant.py
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _engine_support import (
    QUERIES,
    ReplayCorpus,
    assert_no_pickles,
    assert_same_hits,
    word_corpus,
)

from latecore import LateIndex
from latecore.backends.qdrant import QdrantBackend, point_id
from latecore.errors import IndexFormatError
from latecore.testing import FakeEncoder

pytestmark = pytest.mark.engines  # needs the engine extra (see docs/development.md)

QDRANT_URL = os.environ.get("QDRANT_URL")
SERVER_SKIP = (
    "needs a Qdrant server: QDRANT_URL=http://localhost:6333 pytest tests/test_backend_qdrant.py"
)
ENGINES = [
    "edge",
    pytest.param(
        "server",
        marks=[pytest.mark.enable_socket, pytest.mark.skipif(not QDRANT_URL, reason=SERVER_SKIP)],
    ),
]


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def where(engine: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Backend options putting the collection on ``engine``; the server collection is dropped."""
    if engine == "edge":
        yield {"path": tmp_path / "shard"}
        return
    name = f"latecore-test-{uuid.uuid4().hex[:12]}"
    yield {"url": QDRANT_URL, "collection_name": name}
    from qdrant_client import QdrantClient

    client = QdrantClient(url=QDRANT_URL)
    client.delete_collection(name)
    client.close()


def again(where: dict[str, Any]) -> dict[str, Any]:
    """What loading a saved index must be told again: a server's URL (never saved as a
    destination to trust), nothing for an embedded shard."""
    return {"url": where["url"]} if "url" in where else {}


def qdrant_of(index: LateIndex) -> QdrantBackend:
    assert isinstance(index.backend, QdrantBackend)
    return index.backend


def engine_count(index: LateIndex) -> int:
    return qdrant_of(index)._engine.count()


def graph_files(shard: Path) -> list[Path]:
    """Non-empty HNSW link files of the ``"muvera"`` vector in the shard's segments."""
    return [
        f for f in shard.glob("segments/*/vector_index-muvera/links*.bin") if f.stat().st_size > 0
    ]


# --- rankings and scores -------------------------------------------------------------------


def test_qdrant_top10_and_scores_equal_exact_on_a_real_corpus(
    replay_corpus: ReplayCorpus, where: dict[str, Any]
) -> None:
    """Real MiniLM vectors: exact's top 10 with exact's scores; the engine's own MaxSim agrees
    to 1e-3; through the MUVERA prefetch (smaller than the corpus) after build() too."""
    ids, texts, encoder = replay_corpus
    metadatas = [{"n": i} for i in range(len(ids))]
    exact = LateIndex(encoder)
    exact.add(texts, ids=ids, metadatas=metadatas)
    expected = exact.search_batch(QUERIES, k=10)
    with LateIndex(encoder, backend="qdrant", **where) as index:
        index.add(texts, ids=ids, metadatas=metadatas)
        for got, want in zip(index.search_batch(QUERIES, k=10), expected, strict=True):
            assert_same_hits(got, want)
        raw = qdrant_of(index)
        raw._settings["rescore"] = False
        for got, want in zip(index.search_batch(QUERIES, k=10), expected, strict=True):
            assert [h.id for h in got] == [h.id for h in want]
            assert_same_hits(got, want, abs=1e-3)  # float16 storage in the engine
        raw._settings.update(rescore=True, prefetch=120)
        index.build()
        hits = index.search_batch(QUERIES, k=10)
        found = sum(
            len({h.id for h in g} & {h.id for h in w}) for g, w in zip(hits, expected, strict=True)
        )
        assert found / (10 * len(QUERIES)) >= 0.9, "MUVERA's top 120 of 250 lost the top 10"
        assert [g[0].id for g in hits] == [w[0].id for w in expected]
        for query, got in zip(QUERIES, hits, strict=True):  # whatever it returns: exact scores
            exact_scores = exact.score(query, [h.id for h in got])
            assert [h.score for h in got] == pytest.approx(exact_scores.tolist(), abs=1e-5)


# --- life cycle ----------------------------------------------------------------------------


def test_qdrant_add_delete_replace_save_load(
    engine: str, where: dict[str, Any], tmp_path: Path
) -> None:
    encoder = FakeEncoder()
    texts, ids = word_corpus(200, seed=3)
    index = LateIndex(encoder, backend="qdrant", **where)
    index.add(texts, ids=ids, metadatas=[{"i": i} for i in range(len(texts))])
    assert engine_count(index) == 200
    vectors = qdrant_of(index).fetch_vectors([ids[7], ids[2]])
    np.testing.assert_array_equal(vectors[0], index.store.vectors([7])[0])
    with pytest.raises(KeyError, match="unknown"):
        qdrant_of(index).fetch_vectors(["unknown"])

    assert index.delete([ids[0], "unknown"]) == 1
    index.add(["w1 w2 w3 replaced"], ids=[ids[1]])
    assert engine_count(index) == 199
    assert all(h.id != ids[0] for h in index.search(texts[0], k=10))
    assert index.search("w1 w2 w3 replaced", k=1)[0].id == ids[1]

    queries = [texts[i] for i in range(5, 200, 20)]
    before = index.search_batch(queries, k=10)
    index.save(tmp_path / "saved")
    manifest = json.loads((tmp_path / "saved" / "latecore-index.json").read_text())
    options = manifest["backend"]["options"]
    assert options["engine"] == engine and options["k_sim"] == 5 and "api_key" not in options
    if engine == "edge":
        assert options["path"] == str(where["path"].resolve())
    index.close()

    with pytest.raises(ValueError, match="already holds 199 points"):
        LateIndex(encoder, backend="qdrant", **where)
    with LateIndex.load(tmp_path / "saved", encoder, **again(where)) as loaded:
        assert len(loaded) == 199 and engine_count(loaded) == 199
        assert qdrant_of(loaded).sync(loaded.store) == (0, 0)
        for got, want in zip(loaded.search_batch(queries, k=10), before, strict=True):
            assert_same_hits(got, want)
    # Other MUVERA settings on load: every point is re-encoded (digests differ), results hold.
    with LateIndex.load(tmp_path / "saved", encoder, seed=7, **again(where)) as reseeded:
        assert qdrant_of(reseeded).options["seed"] == 7
        assert qdrant_of(reseeded).sync(reseeded.store) == (0, 0)
        for got, want in zip(reseeded.search_batch(queries, k=10), before, strict=True):
            assert_same_hits(got, want)
    # A connection given to load replaces the saved one; the new shard is filled.
    with LateIndex.load(tmp_path / "saved", encoder, path=tmp_path / "moved") as moved:
        assert qdrant_of(moved).engine == "edge" and engine_count(moved) == 199
        for got, want in zip(moved.search_batch(queries, k=10), before, strict=True):
            assert_same_hits(got, want)
    as_exact = LateIndex.load(tmp_path / "saved", encoder, backend="exact")
    for got, want in zip(as_exact.search_batch(queries, k=10), before, strict=True):
        assert_same_hits(got, want)
    with LateIndex(encoder, backend="qdrant", recreate=True, **where) as fresh:
        assert len(fresh) == 0 and engine_count(fresh) == 0


def test_qdrant_load_resynchronises_an_engine_changed_behind_its_back(
    engine: str, where: dict[str, Any], tmp_path: Path
) -> None:
    """A lost point comes back, a changed one is rewritten, a foreign one is deleted."""
    encoder = FakeEncoder()
    texts, ids = word_corpus(60, seed=4)
    with LateIndex(encoder, backend="qdrant", **where) as index:
        index.add(texts, ids=ids)
        index.save(tmp_path / "saved")
        stray = index.store.vectors([0])[0]
    backend = QdrantBackend(recreate=False, **where)
    try:
        lost, changed = point_id(ids[5]), ids[6]
        backend._engine.delete([lost])
        backend.add([changed, "stray"], ["tampered", "stray"], [{}, {}], [stray, stray])
    finally:
        backend.close()

    with LateIndex.load(tmp_path / "saved", encoder, **again(where)) as loaded:
        assert engine_count(loaded) == 60
        assert loaded.search(texts[5], k=1)[0].id == ids[5]
        assert loaded.search(texts[6], k=1)[0].id == ids[6]
        assert all(h.id != "stray" for h in loaded.search("stray", k=60))
        np.testing.assert_array_equal(
            qdrant_of(loaded).fetch_vectors([ids[6]])[0], loaded.store.vectors([6])[0]
        )


def test_qdrant_vectors_held_by_the_engine(
    engine: str, where: dict[str, Any], tmp_path: Path
) -> None:
    """``vectors="engine"``: same results as exact with no local vectors; on load, unknown
    points are deleted without reading vectors, and a document the engine lost is an
    IndexFormatError naming it."""
    encoder = FakeEncoder()
    texts, ids = word_corpus(50, seed=5)
    exact = LateIndex(encoder)
    exact.add(texts, ids=ids)
    queries = texts[:6]
    expected = exact.search_batch(queries, k=5)
    with LateIndex(encoder, backend="qdrant", vectors="engine", **where) as index:
        index.add(texts, ids=ids)
        assert not index.store.holds_vectors and index.store.nbytes == 0  # type: ignore[attr-defined]
        for got, want in zip(index.search_batch(queries, k=5), expected, strict=True):
            assert_same_hits(got, want, abs=1e-3)  # exact MaxSim over the engine's float16
        fetched = qdrant_of(index).fetch_vectors([ids[3], ids[0]])
        assert [v.dtype for v in fetched] == [np.float16, np.float16]
        np.testing.assert_array_equal(fetched[0], exact.store.vectors([3])[0])
        index.save(tmp_path / "saved")
    backend = QdrantBackend(**where)
    stray = exact.store.vectors([0])
    backend.add(["stray"], ["stray"], [{}], stray)
    backend.close()
    with LateIndex.load(tmp_path / "saved", encoder, **again(where)) as loaded:
        assert engine_count(loaded) == 50 and "stray" not in loaded
        for got, want in zip(loaded.search_batch(queries, k=5), expected, strict=True):
            assert_same_hits(got, want, abs=1e-3)
    backend = QdrantBackend(**where)
    backend.delete(ids[10:12])
    backend.close()
    with pytest.raises(IndexFormatError, match=r"lacks 2 .*'doc-5-10', 'doc-5-11'.*added again"):
        LateIndex.load(tmp_path / "saved", encoder, **again(where))


# --- the embedded engine ----------------------------------------------------------------------


def test_qdrant_build_creates_the_hnsw_graph(tmp_path: Path) -> None:
    """No graph until build(); one after it, and after an add past optimize_after."""
    encoder = FakeEncoder()
    texts, ids = word_corpus(80, seed=6)
    with LateIndex(encoder, backend="qdrant", path=tmp_path / "a") as index:
        index.add(texts, ids=ids)
        assert not graph_files(tmp_path / "a")
        index.build()
        assert graph_files(tmp_path / "a")
        assert index.search(texts[10], k=1)[0].id == ids[10]
    with LateIndex(encoder, backend="qdrant", path=tmp_path / "b", optimize_after=50) as auto:
        auto.add(texts[:40], ids=ids[:40])
        assert not graph_files(tmp_path / "b")
        auto.add(texts[40:], ids=ids[40:])  # 80 points written since the last build
        assert graph_files(tmp_path / "b")


def test_qdrant_temporary_shard_is_removed_and_reindexed_on_load(tmp_path: Path) -> None:
    encoder = FakeEncoder()
    texts, ids = word_corpus(30, seed=7)
    index = LateIndex(encoder, backend="qdrant")
    index.add(texts, ids=ids)
    shard = qdrant_of(index).shard_path
    assert shard is not None and (shard / "edge_config.json").is_file()
    index.save(tmp_path / "saved")
    index.close()
    assert not shard.exists()
    with LateIndex.load(tmp_path / "saved", encoder) as loaded:
        assert engine_count(loaded) == 30 and loaded.search(texts[3], k=1)[0].id == ids[3]


def test_qdrant_indexes_saved_by_qdrant_client_local_mode(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An old in-memory collection is re-indexed on load; an old local directory is an
    IndexFormatError naming the migration, which then works and loses nothing."""
    from qdrant_client import QdrantClient, models

    encoder = FakeEncoder()
    texts, ids = word_corpus(40, seed=8)
    exact = LateIndex(encoder)
    exact.add(texts, ids=ids)
    old = tmp_path / "old-local"
    client = QdrantClient(path=str(old))  # what the previous backend wrote
    client.create_collection(
        "docs", vectors_config=models.VectorParams(size=32, distance=models.Distance.DOT)
    )
    client.close()
    assert list(old.glob("collection/docs/storage.sqlite"))
    for name, options in {
        "memory": {"location": ":memory:", "collection_name": "docs"},
        "local": {"path": str(old), "collection_name": "docs", "rescore": True},
    }.items():
        exact.save(tmp_path / name)
        manifest_path = tmp_path / name / "latecore-index.json"
        manifest = json.loads(manifest_path.read_text())
        manifest["backend"] = {"name": "qdrant", "options": options, "state": {}}
        manifest_path.write_text(json.dumps(manifest))

    queries = texts[:5]
    expected = exact.search_batch(queries, k=5)
    with (
        caplog.at_level(logging.INFO, logger="latecore.backends.qdrant"),
        LateIndex.load(tmp_path / "memory", encoder) as loaded,
    ):
        assert qdrant_of(loaded).engine == "edge" and engine_count(loaded) == 40
        for got, want in zip(loaded.search_batch(queries, k=5), expected, strict=True):
            assert_same_hits(got, want)
    assert "in-memory Qdrant collection" in caplog.text

    with pytest.raises(IndexFormatError, match=r"local mode.*LateIndex\.load\(.*path="):
        LateIndex.load(tmp_path / "local", encoder)
    with LateIndex.load(tmp_path / "local", encoder, path=tmp_path / "new") as migrated:
        assert engine_count(migrated) == 40
        for got, want in zip(migrated.search_batch(queries, k=5), expected, strict=True):
            assert_same_hits(got, want)
        migrated.save(tmp_path / "local")
    with LateIndex.load(tmp_path / "local", encoder) as reloaded:  # the new save loads as is
        assert qdrant_of(reloaded).shard_path == (tmp_path / "new").resolve()
    with pytest.raises(IndexFormatError, match="local mode"):
        LateIndex(encoder, backend="qdrant", path=old)


def test_qdrant_writes_no_pickles(tmp_path: Path) -> None:
    encoder = FakeEncoder()
    texts, ids = word_corpus(60, seed=9)
    with LateIndex(encoder, backend="qdrant", path=tmp_path / "shard") as index:
        index.add(texts, ids=ids, metadatas=[{"tags": ["a", i]} for i in range(60)])
        index.build()
        index.delete(ids[:5])
        index.save(tmp_path / "saved")
    assert len(assert_no_pickles(tmp_path)) > 10


def test_qdrant_bad_settings_and_other_dimensions_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="prefetch must be a positive integer"):
        QdrantBackend(prefetch=0)
    with pytest.raises(ValueError, match="k_sim must be at most 12"):
        QdrantBackend(k_sim=20)
    with LateIndex(FakeEncoder(dim=32), backend="qdrant", path=tmp_path / "s") as index:
        index.add(["a b c"], ids=["a"])
        with pytest.raises(RuntimeError, match="is open elsewhere"):
            QdrantBackend(path=tmp_path / "s")
    other_dim = QdrantBackend(path=tmp_path / "s")
    with pytest.raises(ValueError, match="holds vectors"):
        other_dim.add(["x"], ["x"], [{}], [np.ones((2, 16), dtype=np.float32)])
    other_dim.close()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="neither empty nor a qdrant-edge shard"):
        QdrantBackend(path=tmp_path / "other")


# --- installation -----------------------------------------------------------------------------


def test_qdrant_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "qdrant_edge", None)
    with pytest.raises(ImportError, match=r"qdrant-edge-py.*pip install 'latecore\[qdrant\]'"):
        LateIndex(FakeEncoder(), backend="qdrant")
    monkeypatch.setitem(sys.modules, "qdrant_client", None)
    with pytest.raises(ImportError, match=r"qdrant-client.*pip install 'latecore\[qdrant\]'"):
        LateIndex(FakeEncoder(), backend="qdrant", url="http://localhost:6333")


def test_import_latecore_loads_no_qdrant_module() -> None:
    code = (
        "import sys, latecore, latecore.backends, latecore.muvera; "
        "print(sorted(m for m in ('qdrant_edge', 'qdrant_client') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
