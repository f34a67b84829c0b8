"""LateIndex: add / search / delete / save / load, exactness and fingerprint checks."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import load_quietly

from latecore import FingerprintMismatchError, IndexFormatError, LatecoreWarning, LateIndex
from latecore.maxsim import maxsim
from latecore.testing import FakeEncoder

TEXTS = [
    "paris is the capital of france",
    "berlin is the capital of germany",
    "the river seine flows through paris",
    "cats sleep most of the day",
    "the stock market closed higher",
]


@pytest.fixture
def index(fake_encoder: FakeEncoder) -> LateIndex:
    idx = LateIndex(fake_encoder)
    idx.add(TEXTS, ids=[f"d{i}" for i in range(5)], metadatas=[{"n": i} for i in range(5)])
    return idx


def test_search_is_exact_maxsim_over_everything(
    index: LateIndex, fake_encoder: FakeEncoder
) -> None:
    hits = index.search("capital of france", k=5)
    query = fake_encoder.encode_queries(["capital of france"])[0]
    expected = maxsim(query, fake_encoder.encode_documents(TEXTS))
    assert [h.id for h in hits] == [f"d{i}" for i in np.argsort(-expected, kind="stable")]
    assert [h.score for h in hits] == pytest.approx(sorted(expected, reverse=True), abs=1e-3)
    assert hits[0].text == TEXTS[0] and hits[0].metadata == {"n": 0}
    assert index.score("capital of france", ["d1", "d0"]) == pytest.approx(
        expected[[1, 0]], abs=1e-3
    )


def test_k_edges_and_batch(index: LateIndex) -> None:
    assert index.search("paris", k=0) == []
    assert len(index.search("paris", k=50)) == 5
    batch = index.search_batch(["paris", "cats"], k=2)
    for hits, query in zip(batch, ["paris", "cats"], strict=True):
        single = index.search(query, k=2)
        assert [h.id for h in hits] == [h.id for h in single]
        assert [h.score for h in hits] == pytest.approx([h.score for h in single], abs=1e-6)
    assert LateIndex(FakeEncoder()).search("anything") == []
    with pytest.raises(ValueError, match="k must be"):
        index.search("paris", k=-1)


def test_add_replaces_existing_ids_and_delete_removes(index: LateIndex) -> None:
    index.add(["dogs bark at night"], ids=["d3"], metadatas=[{"n": 33}])
    assert len(index) == 5
    assert index.get(["d3"])[0].text == "dogs bark at night"
    assert index.search("dogs bark", k=1)[0].id == "d3"
    assert index.delete(["d0", "missing"]) == 1
    assert "d0" not in index and len(index) == 4
    assert all(h.id != "d0" for h in index.search("capital of france", k=10))
    generated = index.add(["a new passage"])
    assert len(generated) == 1 and generated[0] in index
    with pytest.raises(ValueError, match="unique"):
        index.add(["x", "y"], ids=["same", "same"])


def test_save_load_round_trip(index: LateIndex, fake_encoder: FakeEncoder, tmp_path: Path) -> None:
    index.delete(["d4"])
    index.save(tmp_path / "idx")
    loaded = LateIndex.load(tmp_path / "idx", fake_encoder)
    assert loaded.ids == index.ids
    for query in ("paris", "cats sleeping", "germany"):
        assert loaded.search(query, k=4) == index.search(query, k=4)
    loaded.add(["more text about paris"], ids=["new"])
    assert "new" in loaded


def test_load_under_another_fingerprint_names_both(index: LateIndex, tmp_path: Path) -> None:
    index.save(tmp_path / "idx")
    other = FakeEncoder(dim=16)
    with pytest.raises(FingerprintMismatchError) as caught:
        LateIndex.load(tmp_path / "idx", other)
    message = str(caught.value)
    assert index.encoder.fingerprint in message and other.fingerprint in message
    assert "output_dim" in message
    with pytest.raises(IndexFormatError):
        LateIndex.load(tmp_path / "nothing-here", other)


def test_unserialisable_metadata_fails_on_save_with_a_clear_error(tmp_path: Path) -> None:
    index = LateIndex(FakeEncoder())
    index.add(["x"], metadatas=[{"when": object()}])
    with pytest.raises(TypeError, match="JSON"):
        index.save(tmp_path / "idx")


def test_200_searches_with_over_long_queries_warn_once(tiny_checkpoint: Path) -> None:
    """One truncation warning per encoder (and query length), not one per search."""
    index = LateIndex(load_quietly(tiny_checkpoint))  # fresh: it has not warned yet
    index.add(["paris is the capital of france", "berlin is in germany"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # Python's once-per-location filter hides nothing
        for i in range(200):
            assert len(index.search(f"{i} " + "where is paris " * (20 + i % 30), k=1)) == 1
    truncations = [w for w in caught if issubclass(w.category, LatecoreWarning)]
    assert len(truncations) == 1 and "truncated" in str(truncations[0].message)


def test_stored_metadata_is_never_shared_with_the_caller() -> None:
    """Nested metadata is copied in and out: a caller changing either never changes what is
    stored (nor what a filter sees)."""
    index = LateIndex(FakeEncoder())
    metadata = {"author": {"name": "ann"}, "tags": ["a"]}
    index.add(["some text"], ids=["d"], metadatas=[metadata])
    metadata["author"]["name"] = "bob"
    metadata["tags"].append("b")
    hit = index.search("some text", k=1)[0]
    assert hit.metadata == {"author": {"name": "ann"}, "tags": ["a"]}
    hit.metadata["author"]["name"] = "cy"
    assert index.get(["d"])[0].metadata["author"]["name"] == "ann"
    assert index.count({"author.name": "ann"}) == 1 and index.count({"author.name": "bob"}) == 0
