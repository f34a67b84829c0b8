"""Hostile text through the real tokenizer path, the cache and every search front end.

Covered elsewhere, not repeated here: a 10,000-character query is truncated with
exactly one warning (``tests/test_encoder.py::test_long_query_is_truncated_with_one_warning``)
and a 1 MB document is cut to ``max_chars`` before tokenising
(``tests/test_encoder.py::test_huge_document_is_cut_before_tokenising``; its cost
is measured by ``benchmarks/bench_long_text.py``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from latecore import Encoder, HybridSearcher, LateIndex, MultivectorCache, Reranker
from latecore.cache import cache_key
from latecore.errors import LatecoreWarning
from latecore.testing import FakeEncoder

SPECIALS = [
    "\ud800",  # lone high surrogate
    "\udfff",  # lone low surrogate
    "\ud83d\ude00",  # a surrogate pair spelled as two code points
    "\x00",
    "\u202e",  # right-to-left override
    "\u200f",  # right-to-left mark
    "مرحبا بالعالم",
    "שלום",
    "\u0301\u0302\u0303",  # combining marks with no base
    "e\u0301",
    "👩‍👩‍👧",  # zero-width-joiner sequence
    "🏳️‍🌈",
    "\ufeff",
    "\ufffd",
    "\n\t\r",
    " ",
    "paris is the capital of france",
]
pieces = st.one_of(
    st.text(alphabet=st.characters(exclude_categories=()), max_size=16),  # surrogates included
    st.sampled_from(SPECIALS),
)
short_texts = st.lists(pieces, max_size=10).map("".join)
long_texts = st.tuples(pieces, st.integers(1_000, 100_000)).map(
    lambda p: ((p[0] or "x") * (p[1] // max(1, len(p[0])) + 1))[: p[1]]
)
text_lists = st.lists(st.one_of(short_texts, short_texts, long_texts), min_size=1, max_size=4)


@pytest.mark.timeout(150)
def test_hostile_unicode_never_crashes_and_cache_hits_equal_misses(
    tiny_encoder: Encoder, tmp_path: Path
) -> None:
    """Lone surrogates, NUL, RTL, combining marks, emoji and 1k-100k-character strings.

    Guarantees, for any such batch through the real tokenizer: documents encode to
    finite float32 ``(n_tokens, dim)`` arrays matching an uncached encode within
    float16 rounding; a second encode from a reopened cache (disk hits) returns
    bit-identical arrays; queries encode; ``Reranker``, ``LateIndex`` and
    ``HybridSearcher`` return complete, finite results. Nothing raises.
    """
    directory = tmp_path / "cache"
    cached = tiny_encoder.with_cache(MultivectorCache(directory))

    @settings(
        max_examples=15,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(texts=text_lists)
    def check(texts: list[str]) -> None:
        documents = cached.encode_documents(texts)
        assert len(documents) == len(texts)
        for array in documents:
            assert array.dtype == np.float32 and array.ndim == 2 and array.shape[0] >= 1
            assert array.shape[1] == tiny_encoder.dim and np.isfinite(array).all()
        plain = tiny_encoder.encode_documents(texts)
        for got, want in zip(documents, plain, strict=True):
            assert got.shape == want.shape
            np.testing.assert_allclose(got, want, atol=2e-3)
        with MultivectorCache(directory, memory_bytes=0) as disk_only:
            again = tiny_encoder.with_cache(disk_only).encode_documents(texts)
        assert [a.tobytes() for a in again] == [a.tobytes() for a in documents]

        queries = tiny_encoder.encode_queries(texts)
        assert all(q.shape[0] <= tiny_encoder.model.query_length for q in queries)

        ranking = Reranker(cached).rerank(texts[0], texts)
        assert sorted(r.index for r in ranking) == list(range(len(texts)))
        assert all(np.isfinite(r.score) for r in ranking)
        index = LateIndex(cached)
        ids = index.add(texts)
        hits = index.search(texts[-1], k=len(texts))
        assert sorted(h.id for h in hits) == sorted(ids)
        searcher = HybridSearcher(cached, index=index)
        for hit in searcher.search(texts[0], k=len(texts)):
            assert hit.id in index and np.isfinite(hit.score)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LatecoreWarning)  # long queries are truncated
        check()


@pytest.mark.timeout(60)
def test_lone_surrogate_is_replaced_identically_in_key_and_model_input(
    tiny_encoder: Encoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``"a\\ud800b"`` is encoded, and cached, exactly as ``"a\\ufffdb"``.

    Guarantees: the model sees the replaced text, the cache key is the replaced
    text's key, and the vectors are bit-identical to those of the replaced text
    (with and without a cache).
    """
    cache = MultivectorCache(tmp_path / "cache")
    encoder = tiny_encoder.with_cache(cache)
    keys: list[list[bytes]] = []
    inputs: list[list[str]] = []
    get_many, encode = cache.get_many, encoder._encode

    def spy_get_many(batch: list[bytes]) -> list[np.ndarray | None]:
        keys.append(list(batch))
        return get_many(batch)

    def spy_encode(texts: list[str], *, is_query: bool) -> list[np.ndarray]:
        inputs.append(list(texts))
        return encode(texts, is_query=is_query)

    monkeypatch.setattr(cache, "get_many", spy_get_many)
    monkeypatch.setattr(encoder, "_encode", spy_encode)

    (broken,) = encoder.encode_documents(["a\ud800b"])
    assert inputs == [["a\ufffdb"]]
    assert keys == [[cache_key(encoder.fingerprint, "document", "a\ufffdb")]]
    (replaced,) = encoder.encode_documents(["a\ufffdb"])
    assert len(inputs) == 1, "the replaced text should be a cache hit"
    assert broken.tobytes() == replaced.tobytes()
    (plain_broken,) = tiny_encoder.encode_documents(["a\ud800b"])
    (plain_replaced,) = tiny_encoder.encode_documents(["a\ufffdb"])
    assert plain_broken.tobytes() == plain_replaced.tobytes()


@pytest.mark.timeout(30)
def test_existing_replacement_characters_survive_surrogate_cleaning() -> None:
    """Only the lone surrogate is replaced: three genuine U+FFFD before it stay three."""
    encoder = FakeEncoder()
    encoder.encode_documents(["x\ufffd\ufffd\ufffd\ud800"])
    assert encoder.encoded == ["x\ufffd\ufffd\ufffd\ufffd"]
