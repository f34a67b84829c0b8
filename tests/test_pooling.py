"""Token pooling: pylate's algorithm, deterministic, in the fingerprint, documents only."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from latecore import LateIndex, MultivectorCache, explain
from latecore.encoder import Encoder
from latecore.pooling import pool_vectors
from latecore.testing import FakeEncoder

TEXTS = [
    "the quick brown fox jumps over the lazy dog near the river bank",
    "paris is the capital of france and a city of art and food",
    "a short one",
]


def unit_rows(n: int, dim: int, seed: int) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_pool_vectors_matches_pylate(factor: int, minilm_encoder: Encoder) -> None:
    import torch
    from pylate.models.colbert import ColBERT

    documents = [unit_rows(n, 24, n) for n in (1, 2, 3, 7, 33, 180)]
    documents += minilm_encoder.encode_documents(TEXTS)
    reference = ColBERT.pool_embeddings_hierarchical(
        None,  # type: ignore[arg-type]
        [torch.from_numpy(d.copy()) for d in documents],
        pool_factor=factor,
    )
    for document, expected in zip(documents, reference, strict=True):
        pooled, groups = pool_vectors(document, factor)
        assert pooled.shape == tuple(expected.shape)
        np.testing.assert_allclose(pooled, expected.numpy(), atol=1e-6)
        members = np.sort(np.concatenate(groups))
        assert members.tolist() == list(range(len(document)))  # every token in one group
        for vector, group in zip(pooled, groups, strict=True):
            np.testing.assert_allclose(vector, document[group].mean(axis=0), atol=1e-6)


def test_pool_factor_one_and_bad_values() -> None:
    vectors = unit_rows(9, 8, 0)
    pooled, groups = pool_vectors(vectors, 1)
    assert pooled.shape == (9, 8) and len(groups) == 9
    with pytest.raises(ValueError, match="pool_factor must be a positive integer"):
        FakeEncoder(pool_factor=0)
    with pytest.raises(ValueError, match="pool_factor"):
        pool_vectors(vectors, 1.5)  # type: ignore[arg-type]


def test_pooled_documents_only_and_fingerprint() -> None:
    plain, pooled = FakeEncoder(), FakeEncoder(pool_factor=2)
    assert plain.fingerprint != pooled.fingerprint
    assert pooled.fingerprint_fields["pool_factor"] == 2
    assert "pool_factor" not in plain.fingerprint_fields  # unpooled fingerprints unchanged
    full = plain.encode_documents(TEXTS)
    half = pooled.encode_documents(TEXTS)
    for f, h in zip(full, half, strict=True):
        assert h.shape[0] == 1 + max((f.shape[0] - 1) // 2, 1) or h.shape == f.shape
    assert sum(len(h) for h in half) < 0.6 * sum(len(f) for f in full)
    query_plain = plain.encode_queries(TEXTS)
    query_pooled = pooled.encode_queries(TEXTS)
    for a, b in zip(query_plain, query_pooled, strict=True):
        np.testing.assert_array_equal(a, b)


def test_cache_keys_differ_by_pool_factor(tmp_path: Path) -> None:
    with MultivectorCache(tmp_path) as cache:
        FakeEncoder(cache=cache).encode_documents(TEXTS)
        pooled = FakeEncoder(cache=cache, pool_factor=2)
        first = pooled.encode_documents(TEXTS)
        assert pooled.calls == 1  # no hit on the unpooled entries
        again = FakeEncoder(cache=cache, pool_factor=2)
        second = again.encode_documents(TEXTS)
        assert again.calls == 0
        for a, b in zip(first, second, strict=True):
            np.testing.assert_array_equal(a, b)


def test_encode_with_tokens_and_explain_on_pooled_documents() -> None:
    encoder = FakeEncoder(pool_factor=2)
    (doc,) = encoder.encode_with_tokens([TEXTS[0]], is_query=False)
    np.testing.assert_array_equal(doc.vectors, encoder.encode_documents([TEXTS[0]])[0])
    assert doc.groups is not None and len(doc.groups) == len(doc.vectors)
    for group, span in zip(doc.groups, doc.spans, strict=True):
        if span is not None:
            starts = [FakeEncoder().token_spans(TEXTS[0], is_query=False)[i][1] for i in group]
            assert span == (min(s[0] for s in starts if s), max(s[1] for s in starts if s))
    (query,) = encoder.encode_with_tokens(["lazy dog"], is_query=True)
    assert query.groups is None
    explanation = explain(encoder, "lazy dog", TEXTS[0])
    index = LateIndex(encoder)
    index.add([TEXTS[0]], ids=["d"])
    assert explanation.score == pytest.approx(float(index.score("lazy dog", ["d"])[0]), abs=1e-3)
    matched = [m.document_token for m in explanation.matches]
    assert any("dog" in token for token in matched)


def test_pooled_index_with_filters() -> None:
    index = LateIndex(FakeEncoder(pool_factor=3))
    index.add(TEXTS, ids=["fox", "paris", "short"], metadatas=[{"n": 1}, {"n": 2}, {"n": 1}])
    assert index.store.n_tokens < sum(len(v) for v in FakeEncoder().encode_documents(TEXTS))
    assert [h.id for h in index.search("capital of france", k=1)] == ["paris"]
    hits = index.search("capital of france", k=3, filter={"n": 1})
    assert {h.id for h in hits} == {"fox", "short"}


DIGEST = """
import hashlib, sys, warnings
from latecore.encoder import Encoder
warnings.simplefilter("ignore")
encoder = Encoder(sys.argv[1], device="cpu", pool_factor=2)
digest = hashlib.sha256()
for array in encoder.encode_documents({texts!r}):
    digest.update(array.tobytes())
print(digest.hexdigest())
"""


@pytest.mark.slow
def test_pooled_encodings_are_deterministic_across_processes(
    tiny_checkpoint: Path, tiny_encoder: Encoder
) -> None:
    code = DIGEST.format(texts=TEXTS)
    digests = {
        subprocess.run(
            [sys.executable, "-c", code, str(tiny_checkpoint)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for _ in range(2)
    }
    local = hashlib.sha256()
    pooled = tiny_encoder.with_cache(None)
    pooled.pool_factor = 2
    for array in pooled.encode_documents(TEXTS):
        local.update(array.tobytes())
    assert digests == {local.hexdigest()}
