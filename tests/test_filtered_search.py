"""Filtered search on every backend, on real MiniLM vectors of the sample corpus with generated
metadata: exact returns exactly exact MaxSim over the matching documents, the engines (each
told the filter) reach recall@10 >= 0.95 against it, and no hit ever fails the filter, also
after add, replace, delete, save and load."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _engine_support import QUERIES, ReplayCorpus
from test_filters import reference

import latecore.index_view
from latecore import HybridSearcher, LateIndex

pytestmark = [pytest.mark.engines, pytest.mark.slow]  # every backend, builds each

FILTERS: list[dict[str, Any]] = [
    {"tenant": "t3"},
    {"tenant": {"$ne": "t3"}},
    {"year": {"$gt": 2015}},
    {"year": {"$gte": 2010, "$lt": 2020}},
    {"year": {"$lte": 2003}},
    {"tenant": {"$in": ["t1", "t2", "t5"]}},
    {"tenant": {"$nin": ["t1", "t2"]}},
    {"lang": {"$exists": True}},
    {"lang": {"$exists": False}},
    {"tags": "b"},
    {"$and": [{"tags": "b"}, {"year": {"$lt": 2012}}]},
    {"$or": [{"tenant": "t0"}, {"author.name": "ann"}]},
    {"$not": {"tenant": {"$in": ["t0", "t1", "t2", "t3", "t4", "t5", "t6"]}}},
    {"code": {"$gte": "m"}},  # a string range: Qdrant cannot express it natively
    {"rank": {"$in": [1, 2]}},  # numbers in $in: neither can it
    {"tenant": "nobody"},  # matches nothing
]

CONFIGS: dict[str, dict[str, Any]] = {
    "exact": {},
    "warp": {"build_min": 50, "n_candidates": 100, "nprobe": 16},
    "qdrant": {},
    "qdrant-prefetch": {"prefetch": 120},
    "lancedb": {},
    "lancedb-ivfpq": {
        "build_min": 100,
        "n_candidates": 30,
        "num_partitions": 4,
        "max_iterations": 5,
    },
    "plaid": {
        "rebuild_min": 50,
        "num_partitions": 16,
        "kmeans_niters": 2,
        "n_full_scores": 256,
        "n_candidates": 60,
    },
}
SEARCHED = QUERIES[:6]


def metadata_for(i: int, rng: random.Random) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "tenant": f"t{rng.randrange(10)}",
        "year": rng.randrange(2000, 2025),
        "tags": rng.sample(["a", "b", "c", "d"], rng.randint(0, 2)),
        "code": "".join(rng.choice("abmxz") for _ in range(3)),
        "rank": rng.randrange(5),
    }
    if rng.random() < 0.6:
        metadata["lang"] = rng.choice(["en", "fr"])
    if rng.random() < 0.5:
        metadata["author"] = {"name": rng.choice(["ann", "bob", "cy"])}
    return metadata


@pytest.fixture(scope="module")
def corpus(replay_corpus: ReplayCorpus) -> tuple[list[str], list[str], list[dict[str, Any]], Any]:
    ids, texts, encoder = replay_corpus
    rng = random.Random(11)
    return ids, texts, [metadata_for(i, rng) for i in range(len(ids))], encoder


@pytest.fixture
def engines_decide(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small filters reach the engines too (not only the exact search over the subset)."""
    from latecore.backends.lancedb.backend import LanceDBBackend

    monkeypatch.setattr(latecore.index_view, "EXACT_SUBSET", 0)
    monkeypatch.setattr(LanceDBBackend, "exact_share", 0.0)


def exact_over_subset(
    index: LateIndex, query: str, spec: dict[str, Any], k: int = 10
) -> list[tuple[str, float]]:
    """The best ``k`` documents by exact MaxSim among those ``spec`` holds for (reference)."""
    documents = index.get(index.ids)
    matching = [d.id for d in documents if reference(spec, d.metadata)]
    if not matching:
        return []
    scores = index.score(query, matching)
    order = np.argsort(-scores, kind="stable")[:k]
    return [(matching[i], float(scores[i])) for i in order]


def build_index(name: str, corpus: Any, **extra: Any) -> LateIndex:
    ids, texts, metadatas, encoder = corpus
    backend = name.split("-")[0]
    index = LateIndex(encoder, backend=backend, **CONFIGS[name], **extra)
    index.add(texts, ids=ids, metadatas=metadatas)
    index.build()
    return index


@pytest.fixture(scope="module", params=list(CONFIGS))
def built(request: pytest.FixtureRequest, corpus: Any) -> Iterator[LateIndex]:
    with build_index(request.param, corpus) as index:
        yield index


def assert_filtered_like_exact(
    index: LateIndex,
    exact: LateIndex,
    minimum: float,
    filters: list[dict[str, Any]] = FILTERS,
    queries: list[str] = SEARCHED,
) -> None:
    found = total = 0
    for spec in filters:
        for query in queries:
            truth = exact_over_subset(exact, query, spec)
            hits = index.search(query, k=10, filter=spec)
            assert all(reference(spec, h.metadata) for h in hits), (spec, query)
            assert all(reference(spec, d.metadata) for d in index.get([h.id for h in hits]))
            want = {i for i, _ in truth}
            found += len({h.id for h in hits} & want)
            total += len(want)
            if index.backend.name == "exact":
                assert [(h.id, round(h.score, 4)) for h in hits] == [
                    (i, round(s, 4)) for i, s in truth
                ], spec
            else:  # whatever an engine returns is scored exactly
                scores = exact.score(query, [h.id for h in hits]) if hits else []
                assert [h.score for h in hits] == pytest.approx(list(scores), abs=1e-4)
    assert found / total >= minimum, f"recall@10 {found / total:.3f} on {index.backend.name}"


def test_filtered_search_on_every_backend(
    built: LateIndex, corpus: Any, tmp_path: Path, engines_decide: None
) -> None:
    ids, texts, metadatas, encoder = corpus
    exact = LateIndex(encoder)
    exact.add(texts, ids=ids, metadatas=metadatas)
    assert_filtered_like_exact(built, exact, 0.95)
    assert built.count({"tenant": "t3"}) == sum(m["tenant"] == "t3" for m in metadatas)
    assert built.count() == len(ids)


def test_small_filters_are_searched_exactly_by_default(built: LateIndex, corpus: Any) -> None:
    ids, texts, metadatas, encoder = corpus
    exact = LateIndex(encoder)
    exact.add(texts, ids=ids, metadatas=metadatas)
    for query in SEARCHED:
        spec = {"tenant": {"$in": ["t1", "t4"]}}
        got = [(h.id, round(h.score, 4)) for h in built.search(query, k=10, filter=spec)]
        assert got == [(i, round(s, 4)) for i, s in exact_over_subset(exact, query, spec)]


def test_lancedb_searches_narrow_filters_exactly_and_broad_ones_unfiltered(
    corpus: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from latecore.backends.lancedb.backend import POSTFILTER_SHARE, LanceDBBackend

    monkeypatch.setattr(latecore.index_view, "EXACT_SUBSET", 0)  # only the share decides
    ids, texts, metadatas, encoder = corpus
    exact = LateIndex(encoder)
    exact.add(texts, ids=ids, metadatas=metadatas)
    with build_index("lancedb", corpus) as index:
        backend = index.backend
        assert isinstance(backend, LanceDBBackend)
        calls: list[tuple[int, Any]] = []
        real = backend._lance.query

        def spy(query: Any, limit: int, *args: Any) -> Any:
            calls.append((limit, args[-1]))
            return real(query, limit, *args)

        monkeypatch.setattr(backend._lance, "query", spy)
        narrow, broad = {"tenant": "t3"}, {"tenant": {"$ne": "t3"}}
        assert index.count(narrow) / len(index) <= LanceDBBackend.exact_share
        share = index.count(broad) / len(index)
        assert share >= POSTFILTER_SHARE
        index.search(SEARCHED[0], k=10, filter=narrow)
        assert calls == []  # exact MaxSim over the subset, no engine call
        index.search(SEARCHED[0], k=10, filter=broad)
        assert calls == [(math.ceil(backend._limit(10) / math.sqrt(share)), None)]  # no prefilter
        assert_filtered_like_exact(index, exact, 0.95, filters=[broad, narrow])


@pytest.mark.parametrize(
    ("name", "vectors"),
    [
        ("exact", "local"),
        ("warp", "local"),
        ("plaid", "local"),
        ("qdrant", "local"),
        ("qdrant", "engine"),
        ("lancedb", "local"),
        ("lancedb", "engine"),
    ],
)
def test_filters_after_add_replace_delete_save_load(
    name: str, vectors: str, corpus: Any, tmp_path: Path, engines_decide: None
) -> None:
    ids, texts, metadatas, encoder = corpus
    where = {"qdrant": {"path": tmp_path / "shard"}, "lancedb": {"uri": tmp_path / "db"}}
    extra: dict[str, Any] = dict(where.get(name, {}))
    if vectors == "engine":
        extra["vectors"] = "engine"
    index = build_index(name, corpus, **extra)
    # Replaced documents move between tenants, new ones arrive, some leave.
    moved = [
        {**metadatas[i], "tenant": "t9" if metadatas[i]["tenant"] != "t9" else "t0"}
        for i in range(10)
    ]
    index.add(texts[:10], ids=ids[:10], metadatas=moved)
    new_metadata = [{"tenant": "t9", "year": 2030} for _ in range(10)]
    index.add(texts[10:20], ids=[f"new-{i}" for i in range(10)], metadatas=new_metadata)
    index.delete(ids[20:30])
    exact = LateIndex(encoder)
    for doc in index.get(index.ids):
        exact.add([doc.text], ids=[doc.id], metadatas=[doc.metadata])
    assert_filtered_like_exact(index, exact, 0.95, FILTERS[::3], QUERIES[:4])
    before = [index.search(q, k=10, filter={"tenant": "t9"}) for q in SEARCHED]
    assert any(h.id.startswith("new-") for hits in before for h in hits)
    index.save(tmp_path / "saved")
    index.close()
    with LateIndex.load(tmp_path / "saved", encoder) as loaded:
        after = [loaded.search(q, k=10, filter={"tenant": "t9"}) for q in SEARCHED]
        assert [[h.id for h in hits] for hits in after] == [[h.id for h in hits] for hits in before]
        assert all(h.metadata["tenant"] == "t9" for hits in after for h in hits)


def test_hybrid_filters_both_stages(corpus: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither BM25 nor MaxSim nominates a document the filter does not hold for."""
    ids, texts, metadatas, encoder = corpus
    searcher = HybridSearcher.from_texts(texts, encoder, ids=ids, metadatas=metadatas)
    spec = {"$and": [{"tenant": {"$in": ["t2", "t7"]}}, {"year": {"$gte": 2005}}]}
    matching = {i for i, m in zip(ids, metadatas, strict=True) if reference(spec, m)}
    for query in SEARCHED:
        hits = searcher.search(query, k=20, filter=spec, candidates_from="both")
        assert hits and {h.id for h in hits} <= matching
        unfiltered = searcher.search(query, k=20, candidates_from="both")
        assert {h.id for h in unfiltered} - matching  # the filter changed something
        bm25 = [h for h in hits if h.bm25_rank is not None]
        assert sorted(h.bm25_rank for h in bm25) == list(range(1, len(bm25) + 1))
    assert searcher.search(QUERIES[0], k=5, filter={"tenant": "nobody"}) == []
