"""Fusing the BM25 and MaxSim rankings of one query's candidates.

Each candidate has an exact MaxSim score; a BM25 score where BM25 nominated it
(``NaN`` otherwise); and it may or may not have been nominated by the MaxSim
stage (the index's own top results). Ranks are 1-based within each stage's
nominations, ``0`` where a stage did not nominate the candidate.

``"adaptive"`` (the default of :class:`~latecore.hybrid.HybridSearcher`)
    ``z(colbert) + weight * z(bm25)``: each stage's scores as z-scores over the
    candidates, BM25 weighted per query by how much of the query its best match
    covers. ``confidence`` is the best BM25 score over the query's *bound* (the
    sum of its terms' IDF, :meth:`~latecore.lexical.LexicalSnapshot.bound`; no
    document reaches it), and ``weight = (confidence / pivot) ** power`` with
    ``pivot`` :data:`ADAPTIVE_PIVOT` and ``power`` :data:`ADAPTIVE_POWER`: BM25
    counts as much as MaxSim when its best match scores 30% of the bound,
    less below, more above. A paraphrase that shares few words with the
    corpus leaves MaxSim's order nearly as it is; a query whose words a
    document holds lets BM25 reorder.
``"rerank"``
    The MaxSim score: the candidates in MaxSim order.
``"rrf"``
    Reciprocal rank fusion over the stages that nominated the candidate:
    ``1 / (rrf_k + bm25_rank) + 1 / (rrf_k + colbert_rank)``, a missing rank
    contributing nothing.
``"linear"``
    ``alpha * norm(colbert) + (1 - alpha) * norm(bm25)`` with one fixed
    ``alpha`` for every query; ``norm`` is the z-score over the candidates
    (``normalization="zscore"``, default) or min-max scaling to ``[0, 1]``
    (``"minmax"``).

A z-score is ``(score - mean) / std`` over the candidates that have the score
(``0`` for all when they are all equal), and a missing BM25 score gets the
lowest z-score present; min-max scales to ``[0, 1]`` (``1`` for all when they are
all equal), and a missing BM25 score gets ``0``. Ties break by BM25 rank (missing
last), then by input order.

The defaults were chosen on CACM (3,204 abstracts, 52 queries) and the two
labelled sets that ship with latecore, with all-MiniLM-L6-v2 as a zero-shot
ColBERT (``benchmarks/eval_hybrid.py``): ``"adaptive"`` is the one fusion there
that beats both stages on CACM without losing the MaxSim ranking on the shipped
sets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NamedTuple, get_args

import numpy as np

from .validation import check_count

__all__ = [
    "ADAPTIVE_PIVOT",
    "ADAPTIVE_POWER",
    "FUSIONS",
    "NORMALIZATIONS",
    "Fused",
    "Fusion",
    "Normalization",
    "adaptive_weight",
    "check_fusion",
    "fuse",
]

Fusion = Literal["adaptive", "rerank", "rrf", "linear"]
"""How the BM25 and MaxSim rankings of the candidates are combined."""

FUSIONS: tuple[str, ...] = get_args(Fusion)

Normalization = Literal["zscore", "minmax"]
"""How ``"linear"`` fusion puts the two stages' scores on one scale."""

NORMALIZATIONS: tuple[str, ...] = get_args(Normalization)

ADAPTIVE_PIVOT = 0.3
"""BM25 confidence (best score over the query's bound) at which BM25 weighs as much as MaxSim.

Swept 0.25-0.35 with power 1.5: every value keeps the margins the defaults were
chosen by on all three evaluation sets; 0.3 is the middle (the sweep:
docs/benchmarks.md#hybrid-search)."""

ADAPTIVE_POWER = 1.5
"""Exponent of the BM25 weight in ``"adaptive"`` fusion: ``(confidence / pivot) ** power``.

The one power of 1.25, 1.5 and 1.75 that passes over the whole pivot range
0.25-0.35: with 1.25, low pivots let BM25 overturn a confident MaxSim ranking of a
paraphrase (the shipped "general" set); with 1.75, high pivots take too little
from BM25 on CACM (docs/benchmarks.md#hybrid-search)."""


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


def check_fusion(
    fusion: object,
    rrf_k: object = 60,
    alpha: object = 0.5,
    normalization: object = "zscore",
) -> None:
    """Refuse an unknown fusion or normalisation, a bad ``rrf_k``, an ``alpha`` outside ``[0, 1]``.

    Examples
    --------
    >>> check_fusion("sum")
    Traceback (most recent call last):
    ...
    ValueError: fusion must be one of 'adaptive', 'rerank', 'rrf', 'linear', got 'sum'
    """
    if fusion not in FUSIONS:
        raise ValueError(f"fusion must be one of {', '.join(map(repr, FUSIONS))}, got {fusion!r}")
    check_count(rrf_k, "rrf_k")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha!r}")
    if normalization not in NORMALIZATIONS:
        raise ValueError(
            f"normalization must be one of {', '.join(map(repr, NORMALIZATIONS))}, "
            f"got {normalization!r}"
        )


def _ranks(values: np.ndarray, present: np.ndarray, tiebreak: np.ndarray) -> np.ndarray:
    """1-based ranks of the present values, descending (ties by ``tiebreak``); 0 elsewhere."""
    ranks = np.zeros(len(values), dtype=np.int64)
    members = np.flatnonzero(present)
    order = members[np.lexsort((members, tiebreak[members], -values[members]))]
    ranks[order] = np.arange(1, len(order) + 1)
    return ranks


def _normalised(
    values: np.ndarray, present: np.ndarray, normalization: Normalization
) -> np.ndarray:
    """The present values z-scored (missing: the lowest z-score) or min-max scaled (missing: 0)."""
    normalised = np.zeros(len(values), dtype=np.float64)
    if not present.any():
        return normalised
    kept = values[present]
    if normalization == "zscore":
        spread = float(kept.std())
        normalised[present] = 0.0 if spread == 0.0 else (kept - kept.mean()) / spread
        normalised[~present] = normalised[present].min()
    else:
        low, high = float(kept.min()), float(kept.max())
        normalised[present] = 1.0 if high == low else (kept - low) / (high - low)
    return normalised


def adaptive_weight(best_bm25: float, bm25_bound: float) -> float:
    """The weight of BM25 in ``"adaptive"`` fusion: ``(confidence / pivot) ** power``.

    ``confidence = best_bm25 / bm25_bound`` (clipped to ``[0, 1]``; ``0`` when
    the bound is not positive), with :data:`ADAPTIVE_PIVOT` and
    :data:`ADAPTIVE_POWER`.

    Examples
    --------
    >>> adaptive_weight(3.0, 10.0)  # 30% of the bound: BM25 weighs as much as MaxSim
    1.0
    >>> round(adaptive_weight(0.5, 10.0), 3), round(adaptive_weight(6.0, 10.0), 3)
    (0.068, 2.828)
    """
    if not bm25_bound > 0.0 or not best_bm25 > 0.0:
        return 0.0
    confidence = min(best_bm25 / bm25_bound, 1.0)
    return float((confidence / ADAPTIVE_PIVOT) ** ADAPTIVE_POWER)


def fuse(
    bm25_scores: Sequence[float] | np.ndarray,
    colbert_scores: Sequence[float] | np.ndarray,
    fusion: Fusion = "adaptive",
    *,
    rrf_k: int = 60,
    alpha: float = 0.5,
    normalization: Normalization = "zscore",
    colbert_nominated: Sequence[bool] | np.ndarray | None = None,
    bm25_bound: float | None = None,
) -> Fused:
    """Fuse the BM25 and MaxSim scores of one query's candidates.

    Parameters
    ----------
    bm25_scores
        One BM25 score per candidate; ``NaN`` where BM25 did not nominate it.
    colbert_scores
        One exact MaxSim score per candidate (every candidate has one).
    fusion
        ``"adaptive"`` (default), ``"rerank"``, ``"rrf"`` or ``"linear"`` (see
        the module docstring).
    rrf_k
        The RRF damping constant (60 in the original paper).
    alpha
        Weight of MaxSim in linear fusion, in ``[0, 1]``; ``1 - alpha`` weights BM25.
    normalization
        Scale of both stages in linear fusion: ``"zscore"`` (default) or ``"minmax"``.
    colbert_nominated
        Which candidates the MaxSim stage nominated; default all of them (the
        candidates came from BM25 and were all reranked by MaxSim).
    bm25_bound
        The query's BM25 bound (:meth:`~latecore.lexical.LexicalSnapshot.bound`);
        needed by ``"adaptive"`` fusion only.

    Returns
    -------
    Fused
        Order, fused scores and both stages' ranks (0 where a stage did not nominate).

    Raises
    ------
    ValueError
        If the arrays do not align, a setting is out of range, or
        ``"adaptive"`` fusion gets no ``bm25_bound``.

    Examples
    --------
    >>> fused = fuse([3.0, 2.0, 1.0], [10.0, 30.0, 20.0], "rrf", rrf_k=60)
    >>> fused.bm25_ranks.tolist(), fused.colbert_ranks.tolist(), fused.order.tolist()
    ([1, 2, 3], [3, 1, 2], [1, 0, 2])
    >>> round(float(fused.scores[1]), 6) == round(1 / 62 + 1 / 61, 6)
    True
    >>> fuse([3.0, 2.0, 1.0], [10.0, 30.0, 20.0], "linear", normalization="minmax").scores.tolist()
    [0.5, 0.75, 0.25]

    Adaptive fusion: a BM25 match covering 60% of the query's bound weighs
    2.83 times MaxSim and wins; one covering 6% (weight 0.09) does not:

    >>> fuse([6.0, 1.0, 0.5], [20.0, 22.0, 10.0], bm25_bound=10.0).order.tolist()
    [0, 1, 2]
    >>> fuse([0.6, 0.1, 0.05], [20.0, 22.0, 10.0], bm25_bound=10.0).order.tolist()
    [1, 0, 2]

    A candidate only MaxSim nominated (no BM25 score) and one only BM25 nominated:

    >>> nan = float("nan")
    >>> fused = fuse([nan, 2.0], [9.0, 5.0], "rrf", rrf_k=0, colbert_nominated=[True, False])
    >>> fused.bm25_ranks.tolist(), fused.colbert_ranks.tolist(), fused.scores.tolist()
    ([0, 1], [1, 0], [1.0, 1.0])
    """
    check_fusion(fusion, rrf_k, alpha, normalization)
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
    present_bm25 = np.where(has_bm25, bm25, 0.0)
    bm25_ranks = _ranks(present_bm25, has_bm25, np.zeros(n, dtype=np.int64))
    bm25_order_key = np.where(bm25_ranks > 0, bm25_ranks, n + 1)
    colbert_ranks = _ranks(colbert, nominated, bm25_order_key)
    everyone = np.ones(n, dtype=bool)
    if fusion == "rerank":
        scores = colbert.copy()
    elif fusion == "rrf":
        scores = np.zeros(n, dtype=np.float64)
        for ranks in (bm25_ranks, colbert_ranks):
            scores += np.where(ranks > 0, 1.0 / (rrf_k + np.maximum(ranks, 1)), 0.0)
    elif fusion == "linear":
        scores = alpha * _normalised(colbert, everyone, normalization) + (
            1.0 - alpha
        ) * _normalised(present_bm25, has_bm25, normalization)
    else:
        if bm25_bound is None:
            raise ValueError(
                "adaptive fusion needs bm25_bound, the query's BM25 bound "
                "(LexicalSnapshot.bound); HybridSearcher passes it"
            )
        weight = adaptive_weight(float(present_bm25.max(initial=0.0)), float(bm25_bound))
        scores = _normalised(colbert, everyone, "zscore") + weight * _normalised(
            present_bm25, has_bm25, "zscore"
        )
    order = np.lexsort((np.arange(n), bm25_order_key, -scores))
    return Fused(order, scores, bm25_ranks, colbert_ranks)
