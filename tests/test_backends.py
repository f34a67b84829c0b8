"""LateIndex backends: ``plaid`` keeps ``exact``'s API, rankings and scores.

The ``qdrant`` backend has its own module, ``test_backend_qdrant.py``.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from latecore import LateIndex
from latecore.backends import Backend, make_backend
from latecore.backends.plaid import PlaidBackend
from latecore.base_encoder import BaseEncoder
from latecore.testing import FakeEncoder

WORDS = [f"w{i}" for i in range(400)]


class WordEncoder(BaseEncoder):
    """FakeEncoder's scheme (a marker, then one fixed random unit vector per word), memoised.

    FakeEncoder derives every word vector afresh; thousands of documents then
    cost seconds per encode, which these tests do many times.
    """

    def __init__(self, dim: int = 32) -> None:
        super().__init__(show_progress=False)
        self.dim = dim
        self._vectors: dict[str, np.ndarray] = {}

    def _model_fingerprint_fields(self) -> dict[str, object]:
        return {"model_id": "tests.WordEncoder", "output_dim": self.dim}

    def _vector(self, word: str) -> np.ndarray:
        if word not in self._vectors:
            seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "big")
            vector = np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)
            self._vectors[word] = vector / np.linalg.norm(vector)
        return self._vectors[word]

    def _encode(self, texts: list[str], *, is_query: bool) -> list[np.ndarray]:
        marker = "[Q]" if is_query else "[D]"
        return [np.stack([self._vector(w) for w in [marker, *t.split()]]) for t in texts]


@pytest.fixture(scope="module")
def encoder() -> WordEncoder:
    return WordEncoder()


def plaid_of(index: LateIndex) -> PlaidBackend:
    assert isinstance(index.backend, PlaidBackend)
    return index.backend


def make_corpus(n: int, seed: int) -> tuple[list[str], list[str]]:
    """``n`` random texts of 8-30 pseudo-words, and their ids."""
    rng = np.random.default_rng(seed)
    texts = [" ".join(rng.choice(WORDS, size=int(rng.integers(8, 31)))) for _ in range(n)]
    return texts, [f"doc-{seed}-{i}" for i in range(n)]


def make_queries(texts: list[str], n: int, seed: int) -> list[str]:
    """Queries of a few words of one document plus one random word."""
    rng = np.random.default_rng(seed)
    queries = []
    for _ in range(n):
        words = texts[int(rng.integers(len(texts)))].split()
        picked = list(rng.choice(words, size=min(4, len(words)), replace=False))
        queries.append(" ".join([*picked, str(rng.choice(WORDS))]))
    return queries


def assert_same_hits(got: list, expected: list) -> None:
    assert [h.id for h in got] == [h.id for h in expected]
    assert [h.score for h in got] == pytest.approx([h.score for h in expected], abs=1e-4)
    assert [(h.text, h.metadata) for h in got] == [(h.text, h.metadata) for h in expected]


# --- choosing a backend ---------------------------------------------------------------


def test_backend_unknown_name_or_options_with_an_instance_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown backend 'faiss'"):
        LateIndex(FakeEncoder(), backend="faiss")
    with pytest.raises(ValueError, match="backend options"):
        make_backend(make_backend("exact"), n_candidates=5)
    index = LateIndex(FakeEncoder())
    assert index.backend.name == "exact" and isinstance(index.backend, Backend)
    assert repr(index) == "LateIndex(0 documents, 0 token vectors)"


def test_backend_modules_stay_out_of_import_latecore() -> None:
    code = (
        "import sys, latecore, latecore.backends, latecore.engine_store, latecore.muvera; "
        "engines = ('torch', 'fast_plaid', 'pylate', 'qdrant_client', 'qdrant_edge', "
        "'xtr_warp', 'lancedb', 'pyarrow', 'duckdb'); "
        "print(sorted(m for m in engines if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- plaid ------------------------------------------------------------------------------

PLAID_SETTINGS: dict[str, int] = {
    "num_partitions": 128,
    "kmeans_niters": 2,
    "rebuild_min": 100,
}


@pytest.fixture(scope="module")
def plaid_pair(encoder: WordEncoder) -> Iterator[tuple[LateIndex, LateIndex, list[str]]]:
    """An exact and a built PLAID index over the same 2,000 documents, and queries."""
    texts, ids = make_corpus(2000, seed=5)
    exact = LateIndex(encoder)
    exact.add(texts, ids=ids)
    with LateIndex(encoder, backend="plaid", **PLAID_SETTINGS) as plaid:  # type: ignore[arg-type]
        plaid.add(texts, ids=ids)
        plaid.build()
        yield exact, plaid, make_queries(texts, 20, seed=6)


@pytest.mark.engines  # fast-plaid
def test_plaid_gives_exact_top10_with_exact_scores(
    plaid_pair: tuple[LateIndex, LateIndex, list[str]],
) -> None:
    exact, plaid, queries = plaid_pair
    assert plaid_of(plaid).snapshot_size == 2000 and plaid_of(plaid).pending == 0
    expected = exact.search_batch(queries, k=10)
    for got, want in zip(plaid.search_batch(queries, k=10), expected, strict=True):
        assert_same_hits(got, want)
    assert plaid.score(queries[0], ["doc-5-3"]) == pytest.approx(
        exact.score(queries[0], ["doc-5-3"]), abs=1e-6
    )


@pytest.mark.engines  # fast-plaid
def test_plaid_pending_stale_and_lazy_rebuild(encoder: WordEncoder, tmp_path: Path) -> None:
    texts, ids = make_corpus(400, seed=7)
    work = tmp_path / "work"
    index = LateIndex(encoder, backend="plaid", index_folder=work, **PLAID_SETTINGS)  # type: ignore[arg-type]
    index.add(texts, ids=ids)
    backend = plaid_of(index)
    assert backend.snapshot_size == 0 and backend.pending == 400
    index.search("w1", k=3)  # 400 pending > rebuild_min: this search builds the snapshot
    assert backend.snapshot_size == 400 and backend.pending == 0
    assert len(list(work.iterdir())) == 1

    # New documents are found at once (scored exactly until the next rebuild) ...
    index.add(["w7 w8 w9 brand new"], ids=["new"])
    assert backend.pending == 1
    assert index.search("w7 w8 w9 brand new", k=1)[0].id == "new"
    # ... deleted ones are never returned, and a replaced one only in its new form.
    assert index.delete([ids[0]]) == 1
    assert all(h.id != ids[0] for h in index.search(texts[0], k=20))
    index.add(["w11 w12 w13 replacement"], ids=[ids[1]])
    assert index.search("w11 w12 w13 replacement", k=1)[0].id == ids[1]
    hits = index.search(texts[1], k=400)
    assert hits[[h.id for h in hits].index(ids[1])].text == "w11 w12 w13 replacement"

    # Past rebuild_min pending + stale documents, the next search rebuilds.
    more, more_ids = make_corpus(120, seed=8)
    index.add(more, ids=more_ids)
    index.search("w1", k=3)
    assert backend.snapshot_size == len(index) == 520 and backend.pending == 0
    assert len(list(work.iterdir())) == 1  # the old snapshot is gone
    index.close()


@pytest.mark.engines  # fast-plaid
def test_plaid_save_load_keeps_snapshot_pending_and_stale(
    plaid_pair: tuple[LateIndex, LateIndex, list[str]], encoder: WordEncoder, tmp_path: Path
) -> None:
    _, plaid, queries = plaid_pair
    plaid.save(tmp_path / "first")
    assert (tmp_path / "first" / "plaid" / "metadata.json").is_file()
    # The loaded copy searches the saved snapshot in place; changes to it stay pending/stale.
    with LateIndex.load(tmp_path / "first", encoder) as loaded:
        assert plaid_of(loaded).snapshot_size == 2000 and plaid_of(loaded).pending == 0
        loaded.add(*make_corpus(30, seed=9))
        loaded.delete(["doc-5-0", "doc-5-1"])
        before = loaded.search_batch(queries, k=10)
        loaded.save(tmp_path / "second")
    assert (tmp_path / "first" / "plaid" / "metadata.json").is_file()  # never deleted by a load
    assert not list(tmp_path.rglob("*.pkl"))

    with LateIndex.load(tmp_path / "second", encoder) as reloaded:
        backend = plaid_of(reloaded)
        assert backend.snapshot_size == 2000 and backend.pending == 30 and len(reloaded) == 2028
        for got, want in zip(reloaded.search_batch(queries, k=10), before, strict=True):
            assert_same_hits(got, want)
        assert all(h.id not in {"doc-5-0", "doc-5-1"} for h in reloaded.search("w1 w2", k=50))
    as_exact = LateIndex.load(tmp_path / "second", encoder, backend="exact")
    for got, want in zip(as_exact.search_batch(queries, k=10), before, strict=True):
        assert_same_hits(got, want)
