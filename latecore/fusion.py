"""Fusing the BM25 and MaxSim rankings of one query's candidates.

Each candidate has an exact MaxSim score; a BM25 score where BM25 nominated it
(``NaN`` otherwise); and it may or may not have been nominated by the MaxSim
stage (the index's own top results). Ranks are 1-based within each stage's
nominations, ``0`` where a stage did not nominate the candidate.

``"rerank"``
    The MaxSim score: the candidates in MaxSim order.
``"rrf"``
    Reciprocal rank fusion over the stages that nominated the candidate:
    ``1 / (rrf_k + bm25_rank) + 1 / (rrf_k + colbert_rank)``, a missing rank
    contributing nothing.
``"linear"``
    ``alpha * norm(colbert) + (1 - alpha) * norm(bm25)``, min-max normalised over
    the candidates; a missing BM25 score counts as the lowest one (norm 0).

Ties break by BM25 rank (missing last), then by input order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NamedTuple, get_args

import numpy as np

from .validation import check_count

__all__ = ["FUSIONS", "Fused", "Fusion", "check_fusion", "fuse"]

Fusion = Literal["rerank", "rrf", "linear"]
"""How the BM25 and MaxSim rankings of the candidates are combined."""

FUSIONS: tuple[str, ...] = get_args(Fusion)


class Fused(NamedTuple):
    """Result of :func:`fuse`; every array is aligned with the input candidates."""

    order: np.ndarray
    """Candidate positions, best first by fused score."""
    scores: np.ndarray
    """float64 fused score of each candidate."""
    bm25_ranks: np.ndarray
    """1-based rank among BM25's nominations by BM25 score (ties: input order); 0: none."""
    colbert_ranks: np.ndarray
    """1-based rank among MaxSim's nominations by MaxSim score (ties: BM25 rank); 0: none."""


def check_fusion(fusion: object, rrf_k: object = 60, alpha: object = 0.5) -> None:
    """Refuse an unknown fusion, a bad ``rrf_k`` or an ``alpha`` outside ``[0, 1]``.

    Examples
    --------
    >>> check_fusion("sum")
    Traceback (most recent call last):
    ...
    ValueError: fusion must be one of 'rerank', 'rrf', 'linear', got 'sum'
    """
    if fusion not in FUSIONS:
        raise ValueError(f"fusion must be one of {', '.join(map(repr, FUSIONS))}, got {fusion!r}")
    check_count(rrf_k, "rrf_k")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha!r}")


def _ranks(values: np.ndarray, present: np.ndarray, tiebreak: np.ndarray) -> np.ndarray:
    """1-based ranks of the present values, descending (ties by ``tiebreak``); 0 elsewhere."""
    ranks = np.zeros(len(values), dtype=np.int64)
    members = np.flatnonzero(present)
    order = members[np.lexsort((members, tiebreak[members], -values[members]))]
    ranks[order] = np.arange(1, len(order) + 1)
    return ranks


def _min_max(values: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Min-max normalised values of the present entries, 0 for the missing ones."""
    normalised = np.zeros(len(values), dtype=np.float64)
    if not present.any():
        return normalised
    low, high = float(values[present].min()), float(values[present].max())
    normalised[present] = 1.0 if high == low else (values[present] - low) / (high - low)
    return normalised


def fuse(
    bm25_scores: Sequence[float] | np.ndarray,
    colbert_scores: Sequence[float] | np.ndarray,
    fusion: Fusion = "rerank",
    *,
    rrf_k: int = 60,
    alpha: float = 0.5,
    colbert_nominated: Sequence[bool] | np.ndarray | None = None,
) -> Fused:
    """Fuse the BM25 and MaxSim scores of one query's candidates.

    Parameters
    ----------
    bm25_scores
        One BM25 score per candidate; ``NaN`` where BM25 did not nominate it.
    colbert_scores
        One exact MaxSim score per candidate (every candidate has one).
    fusion
        ``"rerank"``, ``"rrf"`` or ``"linear"`` (see the module docstring).
    rrf_k
        The RRF damping constant (60 in the original paper).
    alpha
        Weight of MaxSim in linear fusion, in ``[0, 1]``; ``1 - alpha`` weights BM25.
    colbert_nominated
        Which candidates the MaxSim stage nominated; default all of them (the
        candidates came from BM25 and were all reranked by MaxSim).

    Returns
    -------
    Fused
        Order, fused scores and both stages' ranks (0 where a stage did not nominate).

    Examples
    --------
    >>> fused = fuse([3.0, 2.0, 1.0], [10.0, 30.0, 20.0], "rrf", rrf_k=60)
    >>> fused.bm25_ranks.tolist(), fused.colbert_ranks.tolist(), fused.order.tolist()
    ([1, 2, 3], [3, 1, 2], [1, 0, 2])
    >>> round(float(fused.scores[1]), 6) == round(1 / 62 + 1 / 61, 6)
    True
    >>> fuse([3.0, 2.0, 1.0], [10.0, 30.0, 20.0], "linear", alpha=0.5).scores.tolist()
    [0.5, 0.75, 0.25]

    A candidate only MaxSim nominated (no BM25 score) and one only BM25 nominated:

    >>> nan = float("nan")
    >>> fused = fuse([nan, 2.0], [9.0, 5.0], "rrf", rrf_k=0, colbert_nominated=[True, False])
    >>> fused.bm25_ranks.tolist(), fused.colbert_ranks.tolist(), fused.scores.tolist()
    ([0, 1], [1, 0], [1.0, 1.0])
    """
    check_fusion(fusion, rrf_k, alpha)
    bm25 = np.asarray(bm25_scores, dtype=np.float64)
    colbert = np.asarray(colbert_scores, dtype=np.float64)
    if bm25.ndim != 1 or bm25.shape != colbert.shape:
        raise ValueError(
            f"bm25_scores and colbert_scores must be 1-D and of equal length, got shapes "
            f"{bm25.shape} and {colbert.shape}"
        )
    n = len(bm25)
    nominated = (
        np.ones(n, dtype=bool)
        if colbert_nominated is None
        else np.asarray(colbert_nominated, dtype=bool)
    )
    if nominated.shape != bm25.shape:
        raise ValueError("colbert_nominated must have one flag per candidate")
    has_bm25 = ~np.isnan(bm25)
    bm25_ranks = _ranks(np.where(has_bm25, bm25, 0.0), has_bm25, np.zeros(n, dtype=np.int64))
    bm25_order_key = np.where(bm25_ranks > 0, bm25_ranks, n + 1)
    colbert_ranks = _ranks(colbert, nominated, bm25_order_key)
    if fusion == "rerank":
        scores = colbert.copy()
    elif fusion == "rrf":
        scores = np.zeros(n, dtype=np.float64)
        for ranks in (bm25_ranks, colbert_ranks):
            scores += np.where(ranks > 0, 1.0 / (rrf_k + np.maximum(ranks, 1)), 0.0)
    else:
        scores = alpha * _min_max(colbert, np.ones(n, dtype=bool)) + (1.0 - alpha) * _min_max(
            np.where(has_bm25, bm25, 0.0), has_bm25
        )
    order = np.lexsort((np.arange(n), bm25_order_key, -scores))
    return Fused(order, scores, bm25_ranks, colbert_ranks)
