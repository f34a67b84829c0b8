"""The ``lancedb`` backend on a LanceDB table in a local directory."""

from __future__ import annotations

import json
import subprocess
import sys
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
from latecore.backends.lancedb import LanceDBBackend
from latecore.errors import IndexFormatError
from latecore.testing import FakeEncoder

pytestmark = pytest.mark.engines  # needs the engine extra (see docs/development.md)


def lance_of(index: LateIndex) -> LanceDBBackend:
    assert isinstance(index.backend, LanceDBBackend)
    return index.backend


def row_count(index: LateIndex) -> int:
    return int(lance_of(index).table.count_rows())


def vector_indices(index: LateIndex) -> list[Any]:
    return [i for i in lance_of(index).table.list_indices() if i.columns == ["vectors"]]


# --- rankings and scores -------------------------------------------------------------------


def test_lancedb_top10_and_scores_equal_exact_on_a_real_corpus(
    replay_corpus: ReplayCorpus, tmp_path: Path
) -> None:
    """Real MiniLM vectors: exact's top 10 with exact's scores from LanceDB's top 100 of 250
    re-scored; LanceDB's raw distance of a fully scanned row is n_query_tokens - MaxSim; with
    an IVF-PQ index its top 30 still holds the top 10, with exact scores."""
    ids, texts, encoder = replay_corpus
    metadatas = [{"n": i} for i in range(len(ids))]
    exact = LateIndex(encoder)
    exact.add(texts, ids=ids, metadatas=metadatas)
    expected = exact.search_batch(QUERIES, k=10)
    with LateIndex(encoder, backend="lancedb", uri=tmp_path / "db", n_candidates=100) as index:
        index.add(texts, ids=ids, metadatas=metadatas)
        for got, want in zip(index.search_batch(QUERIES, k=10), expected, strict=True):
            assert_same_hits(got, want)
        table = lance_of(index).table
        for query in encoder.encode_queries(QUERIES[:4]):
            raw = (
                table.search(query, vector_column_name="vectors")
                .distance_type("cosine")
                .select(["latecore_id", "_distance"])
                .limit(20)
                .to_arrow()
            )
            found = raw["latecore_id"].to_pylist()
            maxsim = index.store.score([query], index.store.positions(found))[0]
            distance = np.array(raw["_distance"].to_pylist())
            np.testing.assert_allclose(len(query) - distance, maxsim, atol=2e-3)
            # Its order is exact MaxSim's, up to the float16 rounding of near ties.
            assert np.all(np.diff(maxsim) <= 1e-3)
            twentieth = index.store.rank(query, np.arange(len(ids)), 20).scores[-1]
            assert maxsim.min() >= twentieth - 1e-3
        # An IVF-PQ index (4-bit codes): LanceDB's top 30 of 250, re-scored, holds the top 10.
        lance_of(index)._settings.update(
            build_min=0, num_partitions=4, num_sub_vectors=48, num_bits=4, max_iterations=10
        )
        index.build()
        assert [i.index_type for i in vector_indices(index)] == ["IvfPq"]
        lance_of(index)._settings.update(n_candidates=30, nprobes=2)
        hits = index.search_batch(QUERIES, k=10)
        found = sum(
            len({h.id for h in g} & {h.id for h in w}) for g, w in zip(hits, expected, strict=True)
        )
        assert found / (10 * len(QUERIES)) >= 0.95, "IVF-PQ's top 30 of 250 lost the top 10"
        assert [g[0].id for g in hits] == [w[0].id for w in expected]
        for query, got in zip(QUERIES, hits, strict=True):  # whatever it returns: exact scores
            exact_scores = exact.score(query, [h.id for h in got])
            assert [h.score for h in got] == pytest.approx(exact_scores.tolist(), abs=1e-5)


# --- life cycle ----------------------------------------------------------------------------


def test_lancedb_add_delete_replace_save_load(tmp_path: Path) -> None:
    encoder = FakeEncoder()
    texts, ids = word_corpus(200, seed=3)
    uri = tmp_path / "db"
    index = LateIndex(encoder, backend="lancedb", uri=uri)
    index.add(texts, ids=ids, metadatas=[{"i": i} for i in range(len(texts))])
    assert row_count(index) == 200
    row = lance_of(index).table.search().where("latecore_id = 'doc-3-4'").limit(1).to_list()[0]
    assert (row["text"], json.loads(row["metadata"])) == (texts[4], {"i": 4})
    vectors = lance_of(index).fetch_vectors([ids[7], ids[2]])
    np.testing.assert_array_equal(vectors[0], index.store.vectors([7])[0])
    np.testing.assert_array_equal(vectors[1], index.store.vectors([2])[0])
    with pytest.raises(KeyError, match="unknown"):
        lance_of(index).fetch_vectors(["unknown"])

    assert index.delete([ids[0], "unknown"]) == 1
    index.add(["w1 w2 w3 replaced"], ids=[ids[1]])
    assert row_count(index) == 199
    assert all(h.id != ids[0] for h in index.search(texts[0], k=10))
    assert index.search("w1 w2 w3 replaced", k=1)[0].id == ids[1]

    queries = [texts[i] for i in range(5, 200, 20)]
    before = index.search_batch(queries, k=10)
    index.save(tmp_path / "saved")
    manifest = json.loads((tmp_path / "saved" / "latecore-index.json").read_text())
    options = manifest["backend"]["options"]
    assert options["uri"] == str(uri.resolve()) and options["table_name"] == "latecore"
    assert options["nprobes"] == 2 and options["n_candidates"] == 400
    index.close()

    with pytest.raises(ValueError, match="already holds 199 rows"):
        LateIndex(encoder, backend="lancedb", uri=uri)
    with LateIndex.load(tmp_path / "saved", encoder) as loaded:
        assert len(loaded) == 199 and row_count(loaded) == 199
        assert lance_of(loaded).sync(loaded.store) == (0, 0)
        for got, want in zip(loaded.search_batch(queries, k=10), before, strict=True):
            assert_same_hits(got, want)
    # A uri given to load replaces the saved one; the new table is filled from the saved vectors.
    with LateIndex.load(tmp_path / "saved", encoder, uri=tmp_path / "moved") as moved:
        assert row_count(moved) == 199
        for got, want in zip(moved.search_batch(queries, k=10), before, strict=True):
            assert_same_hits(got, want)
    as_exact = LateIndex.load(tmp_path / "saved", encoder, backend="exact")
    for got, want in zip(as_exact.search_batch(queries, k=10), before, strict=True):
        assert_same_hits(got, want)
    with LateIndex(encoder, backend="lancedb", uri=uri, recreate=True) as fresh:
        assert len(fresh) == 0 and lance_of(fresh).table is None
        fresh.add(texts[:3], ids=ids[:3])
        assert row_count(fresh) == 3


def test_lancedb_load_resynchronises_a_table_changed_behind_its_back(tmp_path: Path) -> None:
    """A lost row comes back, a changed one is rewritten, a foreign one is deleted."""
    encoder = FakeEncoder()
    texts, ids = word_corpus(60, seed=4)
    uri = tmp_path / "db"
    with LateIndex(encoder, backend="lancedb", uri=uri) as index:
        index.add(texts, ids=ids)
        index.save(tmp_path / "saved")
        stray = index.store.vectors([0])[0]
    backend = LanceDBBackend(uri=uri)
    try:
        backend.delete([ids[5]])
        backend.add([ids[6], "stray"], ["tampered", "stray"], [{}, {}], [stray, stray])
        assert backend.table.count_rows() == 60
    finally:
        backend.close()

    with LateIndex.load(tmp_path / "saved", encoder) as loaded:
        assert row_count(loaded) == 60
        assert loaded.search(texts[5], k=1)[0].id == ids[5]
        assert loaded.search(texts[6], k=1)[0].id == ids[6]
        assert all(h.id != "stray" for h in loaded.search("stray", k=60))
        np.testing.assert_array_equal(
            lance_of(loaded).fetch_vectors([ids[6]])[0], loaded.store.vectors([6])[0]
        )
        assert lance_of(loaded).sync(loaded.store) == (0, 0)


def test_lancedb_vectors_held_by_the_table(tmp_path: Path) -> None:
    """``vectors="engine"``: same results as exact with no local vectors; on load, unknown
    rows are deleted without reading vectors, and a document the table lost is an
    IndexFormatError naming it."""
    encoder = FakeEncoder()
    texts, ids = word_corpus(50, seed=5)
    exact = LateIndex(encoder)
    exact.add(texts, ids=ids)
    queries = texts[:6]
    expected = exact.search_batch(queries, k=5)
    uri = tmp_path / "db"
    with LateIndex(encoder, backend="lancedb", uri=uri, vectors="engine") as index:
        index.add(texts, ids=ids)
        assert not index.store.holds_vectors and index.store.nbytes == 0
        for got, want in zip(index.search_batch(queries, k=5), expected, strict=True):
            assert_same_hits(got, want, abs=1e-3)
        fetched = lance_of(index).fetch_vectors([ids[3], ids[0], ids[3]])
        assert [v.dtype for v in fetched] == [np.float16] * 3
        np.testing.assert_array_equal(fetched[0], exact.store.vectors([3])[0])
        np.testing.assert_array_equal(fetched[2], fetched[0])
        index.save(tmp_path / "saved")
    assert not (tmp_path / "saved" / "vectors.npy").exists()
    backend = LanceDBBackend(uri=uri)
    backend.add(["stray"], ["stray"], [{}], exact.store.vectors([0]))
    backend.close()
    with LateIndex.load(tmp_path / "saved", encoder) as loaded:
        assert row_count(loaded) == 50 and "stray" not in loaded
        for got, want in zip(loaded.search_batch(queries, k=5), expected, strict=True):
            assert_same_hits(got, want, abs=1e-3)
    backend = LanceDBBackend(uri=uri)
    backend.delete(ids[10:12])
    backend.close()
    with pytest.raises(IndexFormatError, match=r"lacks 2 .*'doc-5-10', 'doc-5-11'.*added again"):
        LateIndex.load(tmp_path / "saved", encoder)


# --- the index -------------------------------------------------------------------------------


def test_lancedb_build_creates_the_ivf_pq_index(tmp_path: Path) -> None:
    """No index until build(), none below build_min; an IVF-PQ index after it; rows added
    afterwards are searchable too, and every score stays exact's."""
    encoder = FakeEncoder()
    texts, ids = word_corpus(400, seed=6)
    settings = {"num_partitions": 4, "num_sub_vectors": 4, "max_iterations": 10}
    with LateIndex(encoder, backend="lancedb", uri=tmp_path / "a", **settings) as index:
        index.add(texts[:350], ids=ids[:350])
        assert not vector_indices(index)
        index.build()  # 350 rows: below the default build_min
        assert not vector_indices(index)
        lance_of(index)._settings["build_min"] = 300
        index.build()
        (built,) = vector_indices(index)
        assert built.index_type == "IvfPq"
        stats = lance_of(index).table.index_stats(built.name)
        assert stats.num_indexed_rows == 350 and stats.distance_type == "cosine"
        index.add(texts[350:], ids=ids[350:])
        for i in (10, 200, 380):
            hit = index.search(texts[i], k=1)[0]
            assert hit.id == ids[i]
            assert hit.score == pytest.approx(index.score(texts[i], [ids[i]])[0], abs=1e-6)
        with pytest.raises(ValueError, match=r"num_sub_vectors \(5\) must divide the dimension"):
            lance_of(index)._settings["num_sub_vectors"] = 5
            index.build()


def test_lancedb_writes_no_pickles(tmp_path: Path) -> None:
    encoder = FakeEncoder()
    texts, ids = word_corpus(60, seed=9)
    with LateIndex(encoder, backend="lancedb", uri=tmp_path / "db", build_min=10) as index:
        index.add(texts, ids=ids, metadatas=[{"tags": ["a", i]} for i in range(60)])
        index.build()
        index.delete(ids[:5])
        index.save(tmp_path / "saved")
    assert len(assert_no_pickles(tmp_path)) > 10


def test_lancedb_storage_secrets_are_never_saved(tmp_path: Path) -> None:
    options = {"region": "eu-west-1", "aws_secret_access_key": "s3cr3t-value"}
    with LateIndex(
        FakeEncoder(), backend="lancedb", uri=tmp_path / "db", storage_options=options
    ) as index:
        index.add(["a b c"], ids=["a"])
        index.save(tmp_path / "saved")
    manifest = json.loads((tmp_path / "saved" / "latecore-index.json").read_text())
    assert manifest["backend"]["options"]["storage_options"] == {"region": "eu-west-1"}
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and b"s3cr3t" in p.read_bytes()]


# --- settings and installation ----------------------------------------------------------------


def test_lancedb_bad_settings_and_other_dimensions_are_refused(tmp_path: Path) -> None:
    for bad, message in [
        ({"n_candidates": 0}, "n_candidates must be a positive integer"),
        ({"nprobes": 1.5}, "nprobes must be a positive integer"),
        ({"num_bits": 6}, "num_bits must be 4 or 8"),
        ({"datatype": "int8"}, "datatype must be 'float16' or 'float32'"),
        ({"table_name": "a b"}, "table_name must be"),
        ({"storage_options": {"region": 1}}, "storage_options must map"),
        ({"refine_factor": 0}, "refine_factor must be a positive integer"),
    ]:
        with pytest.raises(ValueError, match=message):
            LanceDBBackend(**bad)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is not a directory"):
        LanceDBBackend(uri=tmp_path / "file")
    with LateIndex(FakeEncoder(dim=32), backend="lancedb", uri=tmp_path / "db") as index:
        index.add(["a b c"], ids=["a"])
    other_dim = LanceDBBackend(uri=tmp_path / "db")
    with pytest.raises(ValueError, match="token dimension 16"):
        other_dim.add(["x"], ["x"], [{}], [np.ones((2, 16), dtype=np.float32)])
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        other_dim.add(["x"], ["x"], [{"s": {1, 2}}], [np.ones((2, 32), dtype=np.float32)])
    assert other_dim.table.count_rows() == 1
    other_dim.close()


def test_lancedb_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "lancedb", None)
    with pytest.raises(ImportError, match=r"lancedb.*pip install 'latecore\[lancedb\]'"):
        LateIndex(FakeEncoder(), backend="lancedb")


def test_lancedb_module_imports_neither_lancedb_nor_pyarrow() -> None:
    code = (
        "import sys, latecore.backends.lancedb; "
        "print(sorted(m for m in ('lancedb', 'pyarrow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
