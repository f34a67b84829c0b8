"""``vectors="engine"``: the index keeps no token vector; the engine serves them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from latecore import LateIndex
from latecore.backends import Backend, Ranking
from latecore.engine_store import EngineStore
from latecore.errors import IndexFormatError
from latecore.store import StoreView, rank_vectors
from latecore.testing import FakeEncoder

TEXTS = [
    f"document {i} about {w}" for i, w in enumerate(["cats", "dogs", "birds", "fish", "cows"] * 8)
]
QUERIES = ["about cats", "document 7", "fish and birds"]


class DictEngine(Backend):
    """A stand-in engine: vectors in a dict, every document a candidate."""

    name = "dict-engine"
    serves_vectors = True

    def __init__(self) -> None:
        self.held: dict[str, np.ndarray] = {}
        self.fetched = 0

    def add(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        metadatas: Sequence[Mapping[str, Any]],
        vectors: Sequence[np.ndarray],
    ) -> None:
        self.held.update((i, np.array(v)) for i, v in zip(ids, vectors, strict=True))

    def delete(self, ids: Sequence[str]) -> None:
        for i in ids:
            del self.held[i]

    def fetch_vectors(self, ids: Sequence[str]) -> list[np.ndarray]:
        self.fetched += len(ids)
        return [self.held[i] for i in ids]

    def search(self, store: StoreView, queries: Sequence[np.ndarray], k: int) -> list[Ranking]:
        positions = np.arange(len(store))
        held = store.checked_vectors(positions, self.fetch_vectors(list(store.ids)))
        return [rank_vectors(q, positions, held, k, store.dtype) for q in queries]


def test_engine_held_vectors_give_local_results_with_no_local_vectors(tmp_path: Path) -> None:
    encoder = FakeEncoder()
    engine = DictEngine()
    ids = [f"d{i}" for i in range(len(TEXTS))]
    with (
        LateIndex(encoder) as local,
        LateIndex(encoder, backend=engine, vectors="engine") as held,
    ):
        for index in (local, held):
            index.add(TEXTS, ids=ids)
            index.add(["document 3 replaced by horses"], ids=["d3"])
            index.delete(["d5"])
        store = held.store
        assert isinstance(store, EngineStore) and not store.holds_vectors
        matrices = [v for v in vars(store).values() if isinstance(v, np.ndarray) and v.ndim > 1]
        assert store.nbytes == 0 and not matrices
        assert store.n_tokens == local.store.n_tokens and store.ids == local.store.ids
        for query in QUERIES:
            assert held.search(query, k=10) == local.search(query, k=10)
        assert engine.fetched > 0
        np.testing.assert_array_equal(
            held.score("cats", ["d0", "d1"]), local.score("cats", ["d0", "d1"])
        )

        held.save(tmp_path / "held")
        assert not (tmp_path / "held" / "vectors.npy").exists()
        loaded = LateIndex.load(tmp_path / "held", encoder, backend=engine)
        assert loaded.search(QUERIES[0], k=10) == local.search(QUERIES[0], k=10)


def test_engine_held_vectors_refuse_a_backend_without_vectors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs backend='qdrant' or 'lancedb'"):
        LateIndex(FakeEncoder(), vectors="engine")
    with pytest.raises(ValueError, match="'local' or 'engine'"):
        LateIndex(FakeEncoder(), vectors="remote")  # type: ignore[arg-type]
    index = LateIndex(FakeEncoder(), backend=DictEngine(), vectors="engine")
    index.add(TEXTS[:3])
    index.save(tmp_path / "held")
    with pytest.raises(ValueError, match="cannot hold the token vectors"):
        LateIndex.load(tmp_path / "held", FakeEncoder(), backend="exact")


def test_engine_vectors_that_disagree_with_the_index_are_reported() -> None:
    engine = DictEngine()
    index = LateIndex(FakeEncoder(), backend=engine, vectors="engine")
    index.add(TEXTS[:3], ids=["a", "b", "c"])
    engine.held["b"] = engine.held["b"][:1]
    with pytest.raises(IndexFormatError, match=r"disagree with the index for \['b'\]"):
        index.search("document", k=3)
