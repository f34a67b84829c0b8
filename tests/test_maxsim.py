"""MaxSim kernels: exactness against brute force, invariances, pylate parity."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from latecore.maxsim import PackedDocuments, maxsim, maxsim_batch, top_k

DIM = 8


def brute_force(query: np.ndarray, document: np.ndarray) -> float:
    query64 = query.astype(np.float64)
    document64 = document.astype(np.float64)
    return float(sum(max(float(q @ d) for d in document64) for q in query64))


@st.composite
def ragged_case(draw: st.DrawFn) -> tuple[np.ndarray, list[np.ndarray]]:
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n_query = draw(st.integers(1, 12))
    lengths = draw(st.lists(st.integers(1, 40), min_size=1, max_size=12))
    query = rng.standard_normal((n_query, DIM)).astype(np.float32)
    docs = [rng.standard_normal((n, DIM)).astype(np.float32) for n in lengths]
    if draw(st.booleans()):
        # all similarities negative: every document vector opposes every query direction
        direction = np.abs(rng.standard_normal(DIM)).astype(np.float32)
        query = np.abs(query) + direction
        docs = [-(np.abs(d) + direction) for d in docs]
    return query, docs


@settings(max_examples=150, deadline=None)
@given(case=ragged_case(), block=st.sampled_from([1, 7, 64, 4096]))
def test_equals_brute_force_on_ragged_inputs(
    case: tuple[np.ndarray, list[np.ndarray]], block: int
) -> None:
    query, docs = case
    scores = PackedDocuments(docs).score([query], block_tokens=block)[0]
    reference = np.array([brute_force(query, d) for d in docs])
    np.testing.assert_allclose(scores, reference, rtol=1e-5, atol=1e-5)


@settings(max_examples=60, deadline=None)
@given(case=ragged_case(), seed=st.integers(0, 1000))
def test_token_order_is_irrelevant_and_more_tokens_never_lower(
    case: tuple[np.ndarray, list[np.ndarray]], seed: int
) -> None:
    query, docs = case
    rng = np.random.default_rng(seed)
    base = maxsim(query, docs)
    permuted = maxsim(query, [d[rng.permutation(len(d))] for d in docs])
    np.testing.assert_allclose(permuted, base, rtol=1e-6, atol=1e-6)
    extra = rng.standard_normal((1, DIM)).astype(np.float32)
    grown = maxsim(query, [np.vstack([d, extra]) for d in docs])
    # Up to float32 rounding, as above: a wider GEMM may round an unchanged dot product
    # differently (hypothesis found 31.050129 against 31.050133, one ulp of the sum).
    assert np.all(grown >= base - (1e-6 + 1e-6 * np.abs(base)))


def test_all_negative_similarities_are_not_lifted_to_zero_by_padding() -> None:
    query = np.array([[1.0, 0.0]], np.float32)
    short = np.array([[-1.0, 0.0]], np.float32)
    long = np.array([[-0.5, 0.0], [-0.9, 0.1], [-0.8, 0.2]], np.float32)
    np.testing.assert_allclose(maxsim(query, [short, long]), [-1.0, -0.5])


def test_matches_pylate_where_its_padding_cannot_win() -> None:
    from pylate.scores import colbert_scores

    rng = np.random.default_rng(1)
    query = np.abs(rng.standard_normal((6, DIM))).astype(np.float32)
    docs = [np.abs(rng.standard_normal((n, DIM))).astype(np.float32) for n in (3, 9, 17)]
    padded = torch.nn.utils.rnn.pad_sequence([torch.from_numpy(d) for d in docs], batch_first=True)
    theirs = colbert_scores(torch.from_numpy(query)[None], padded)[0].numpy()
    np.testing.assert_allclose(maxsim(query, docs), theirs, rtol=1e-5)
    for d in docs:  # a single document has no padding at all, even with negative values
        signed = d - 1.0
        single = colbert_scores(torch.from_numpy(query)[None], torch.from_numpy(signed)[None])
        np.testing.assert_allclose(maxsim(query, [signed]), single[0].numpy(), rtol=1e-5)


def test_float16_storage_computes_in_float32() -> None:
    rng = np.random.default_rng(2)
    query = rng.standard_normal((4, DIM)).astype(np.float32)
    docs = [rng.standard_normal((n, DIM)).astype(np.float16) for n in (5, 50)]
    scores = maxsim_batch([query], docs)
    assert scores.dtype == np.float32
    reference = [brute_force(query, d.astype(np.float32)) for d in docs]
    np.testing.assert_allclose(scores[0], reference, rtol=1e-5, atol=1e-5)


def test_torch_path_masks_padding_and_matches_numpy() -> None:
    rng = np.random.default_rng(3)
    queries = [rng.standard_normal((n, DIM)).astype(np.float32) for n in (2, 5)]
    docs = [-np.abs(rng.standard_normal((n, DIM))).astype(np.float32) for n in (1, 4, 9)]
    expected = maxsim_batch(queries, docs)
    got = maxsim_batch([torch.from_numpy(q) for q in queries], [torch.from_numpy(d) for d in docs])
    assert isinstance(got, torch.Tensor)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_batch_equals_one_query_at_a_time_and_empty_queries_score_zero() -> None:
    rng = np.random.default_rng(4)
    queries = [rng.standard_normal((n, DIM)).astype(np.float32) for n in (3, 0, 7)]
    docs = [rng.standard_normal((n, DIM)).astype(np.float32) for n in (2, 30, 4)]
    batch = maxsim_batch(queries, docs)
    assert batch.shape == (3, 3)
    np.testing.assert_array_equal(batch[1], np.zeros(3, np.float32))
    for row, q in zip(batch[[0, 2]], [queries[0], queries[2]], strict=True):
        np.testing.assert_allclose(row, maxsim(q, docs), rtol=1e-6)


def test_edge_cases_raise_clear_errors() -> None:
    query = np.ones((2, DIM), np.float32)
    assert maxsim_batch([query], []).shape == (1, 0)
    with pytest.raises(ValueError, match="no token vectors"):
        maxsim(query, [np.ones((0, DIM), np.float32)])
    with pytest.raises(ValueError, match="dimension"):
        maxsim(query, [np.ones((2, DIM + 1), np.float32)])
    with pytest.raises(ValueError, match="2-D"):
        maxsim(query, [np.ones(DIM, np.float32)])


def test_top_k_breaks_ties_by_input_order() -> None:
    assert top_k(np.array([1.0, 3.0, 1.0, 3.0]), None).tolist() == [1, 3, 0, 2]
    assert top_k(np.array([1.0, 2.0]), 0).tolist() == []
