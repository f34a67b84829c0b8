"""Hybrid search: BM25 candidates, MaxSim over their cached multivectors, then fusion.

The first stage is a lexical BM25 index (``bm25s``) over the current corpus; its
top ``candidates`` documents go to the second stage, exact MaxSim against the
document multivectors the :class:`~latecore.index.LateIndex` already stores
(nothing is re-encoded at query time). The two rankings are then fused:

``"rerank"``
    The BM25 candidates in MaxSim order; the score is the MaxSim score.
``"rrf"``
    Reciprocal rank fusion: ``1 / (rrf_k + bm25_rank) + 1 / (rrf_k + colbert_rank)``.
``"linear"``
    ``alpha * norm(colbert_score) + (1 - alpha) * norm(bm25_score)``, where ``norm``
    is min-max normalisation over the query's candidates.

Every hit keeps both stages' scores and ranks (:class:`~latecore.results.HybridHit`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, get_args

import numpy as np

from ._validation import check_count, check_positive
from .encoder import BaseEncoder
from .index import LateIndex
from .results import HybridHit, SearchHit
from .searcher import Searcher, check_queries

if TYPE_CHECKING:
    import bm25s

__all__ = ["Fused", "Fusion", "HybridSearcher", "fuse"]

logger = logging.getLogger(__name__)

Fusion = Literal["rerank", "rrf", "linear"]
"""How the BM25 and MaxSim rankings of the candidates are combined."""

_FUSIONS: tuple[str, ...] = get_args(Fusion)


class Fused(NamedTuple):
    """Result of :func:`fuse`; every array is aligned with the input candidates."""

    order: np.ndarray
    """Candidate positions, best first by fused score (ties: better BM25 rank first)."""
    scores: np.ndarray
    """float64 fused score of each candidate."""
    bm25_ranks: np.ndarray
    """1-based rank of each candidate by BM25 score (ties: input order)."""
    colbert_ranks: np.ndarray
    """1-based rank of each candidate by MaxSim score (ties: better BM25 rank first)."""


def _check_fusion(fusion: str) -> None:
    if fusion not in _FUSIONS:
        raise ValueError(f"fusion must be one of {', '.join(map(repr, _FUSIONS))}, got {fusion!r}")


def _check_settings(fusion: str, rrf_k: int, alpha: float) -> None:
    _check_fusion(fusion)
    check_count(rrf_k, "rrf_k")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha!r}")


def _ranks(order: np.ndarray) -> np.ndarray:
    ranks = np.empty(len(order), dtype=np.int64)
    ranks[order] = np.arange(1, len(order) + 1)
    return ranks


def _min_max(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    if high == low:
        return np.ones_like(values)
    return (values - low) / (high - low)


def fuse(
    bm25_scores: Sequence[float] | np.ndarray,
    colbert_scores: Sequence[float] | np.ndarray,
    fusion: Fusion = "rerank",
    *,
    rrf_k: int = 60,
    alpha: float = 0.5,
) -> Fused:
    """Fuse the BM25 and MaxSim scores of one query's candidates.

    Parameters
    ----------
    bm25_scores, colbert_scores
        One score per candidate, same order and length.
    fusion
        ``"rerank"``: the fused score is the MaxSim score. ``"rrf"``:
        ``1 / (rrf_k + bm25_rank) + 1 / (rrf_k + colbert_rank)``. ``"linear"``:
        ``alpha * norm(colbert) + (1 - alpha) * norm(bm25)`` with min-max
        normalisation over the candidates; a stage whose scores are all equal
        normalises to 1 for every candidate.
    rrf_k
        The RRF damping constant (60 in the original paper).
    alpha
        Weight of MaxSim in linear fusion, in ``[0, 1]``; ``1 - alpha`` weights BM25.

    Returns
    -------
    Fused
        Order, fused scores and both stages' 1-based ranks.

    Examples
    --------
    >>> fused = fuse([3.0, 2.0, 1.0], [10.0, 30.0, 20.0], "rrf", rrf_k=60)
    >>> fused.bm25_ranks.tolist(), fused.colbert_ranks.tolist(), fused.order.tolist()
    ([1, 2, 3], [3, 1, 2], [1, 0, 2])
    >>> round(float(fused.scores[1]), 6) == round(1 / 62 + 1 / 61, 6)
    True
    >>> fuse([3.0, 2.0, 1.0], [10.0, 30.0, 20.0], "linear", alpha=0.5).scores.tolist()
    [0.5, 0.75, 0.25]
    """
    _check_settings(fusion, rrf_k, alpha)
    bm25 = np.asarray(bm25_scores, dtype=np.float64)
    colbert = np.asarray(colbert_scores, dtype=np.float64)
    if bm25.ndim != 1 or bm25.shape != colbert.shape:
        raise ValueError(
            f"bm25_scores and colbert_scores must be 1-D and of equal length, got shapes "
            f"{bm25.shape} and {colbert.shape}"
        )
    empty = np.zeros(0, dtype=np.int64)
    if bm25.size == 0:
        return Fused(empty, np.zeros(0, dtype=np.float64), empty, empty)
    bm25_ranks = _ranks(np.argsort(-bm25, kind="stable"))
    # np.lexsort sorts by its last key first: here score descending, then BM25 rank.
    colbert_ranks = _ranks(np.lexsort((bm25_ranks, -colbert)))
    if fusion == "rerank":
        scores = colbert
    elif fusion == "rrf":
        scores = 1.0 / (rrf_k + bm25_ranks) + 1.0 / (rrf_k + colbert_ranks)
    else:
        scores = alpha * _min_max(colbert) + (1.0 - alpha) * _min_max(bm25)
    order = np.lexsort((bm25_ranks, -scores))
    return Fused(order, scores, bm25_ranks, colbert_ranks)


class _Lexical:
    """A bm25s index over a snapshot of the corpus: ids, and a retriever or None."""

    def __init__(self, ids: list[str], retriever: bm25s.BM25 | None) -> None:
        self.ids = ids
        self.retriever = retriever


class HybridSearcher(Searcher[HybridHit]):
    """BM25 candidates reranked by exact MaxSim, with every stage's score kept.

    A query is tokenised for BM25 (lowercased words, stopwords removed, optional
    stemming); the documents sharing at least one term with it are ranked by
    BM25 and the best ``candidates`` of them are scored by MaxSim against their
    stored multivectors. A document that shares no term with the query is not a
    candidate, so a query with no term in the corpus returns ``[]`` (use
    :meth:`LateIndex.search <latecore.index.LateIndex.search>` on :attr:`index`
    for purely semantic search).

    bm25s has no incremental update: after :meth:`add` or :meth:`delete` the BM25
    index is rebuilt over the whole corpus on the next search (or on
    :meth:`refresh`). A rebuild tokenises every stored text again, in time linear
    in the corpus size (measured on two CPU cores: about 0.7 s per 20k passages of
    30 words), so batch your updates rather than interleaving single adds with
    searches. Add and delete through the searcher; after changing :attr:`index`
    directly, call :meth:`refresh` (a change in the number of documents is noticed
    on its own; a replaced text under the same id is not).

    Parameters
    ----------
    encoder
        Encoder of the ColBERT stage (its cache, if any, is used when adding).
    candidates
        How many BM25 candidates MaxSim scores per query.
    fusion
        Default fusion: ``"rerank"``, ``"rrf"`` or ``"linear"`` (see :func:`fuse`).
    rrf_k
        The RRF constant: ``1 / (rrf_k + rank)`` per stage.
    alpha
        Weight of the MaxSim score in ``"linear"`` fusion, in ``[0, 1]``:
        ``score = alpha * norm(colbert) + (1 - alpha) * norm(bm25)``, each min-max
        normalised over the query's candidates. ``1`` is MaxSim only, ``0`` BM25 only.
    stopwords
        ``"en"`` (default) or another language code bm25s knows (``"de"``,
        ``"fr"``, ...), a list of words, or ``None`` to keep every word.
    stemmer
        A PyStemmer language such as ``"english"``, or ``None`` (default) for no
        stemming. Needs ``pip install 'latecore[stem]'``.
    index
        An existing :class:`~latecore.index.LateIndex` to search (see
        :meth:`from_index`); a new empty one by default.

    Examples
    --------
    >>> from latecore.testing import FakeEncoder
    >>> searcher = HybridSearcher.from_texts(
    ...     ["paris is the capital of france", "berlin is the capital of germany",
    ...      "cats purr"],
    ...     FakeEncoder(), ids=["p", "b", "c"],
    ... )
    >>> hits = searcher.search("capital of germany", k=2)
    >>> [(h.id, h.bm25_rank, h.colbert_rank) for h in hits]
    [('b', 1, 1), ('p', 2, 2)]
    >>> searcher.delete(["b"])
    1
    >>> [h.id for h in searcher.search("capital of germany")]
    ['p']
    """

    def __init__(
        self,
        encoder: BaseEncoder,
        *,
        candidates: int = 100,
        fusion: Fusion = "rerank",
        rrf_k: int = 60,
        alpha: float = 0.5,
        stopwords: str | list[str] | None = "en",
        stemmer: str | None = None,
        index: LateIndex | None = None,
    ) -> None:
        check_positive(candidates, "candidates")
        _check_settings(fusion, rrf_k, alpha)
        if index is not None and index.encoder.fingerprint != encoder.fingerprint:
            raise ValueError(
                "the index was built with a different encoder (fingerprints "
                f"{index.encoder.fingerprint[:12]} and {encoder.fingerprint[:12]}); "
                "use HybridSearcher.from_index(index) to search it with its own encoder"
            )
        self.encoder = encoder
        self.candidates = candidates
        self.fusion: Fusion = fusion
        self.rrf_k = rrf_k
        self.alpha = alpha
        self.stopwords = stopwords
        self.stemmer = stemmer
        self._stemmer = _load_stemmer(stemmer)
        self._tokenize([""])  # fails now, not at the first search, on unknown stopwords
        self.index = index if index is not None else LateIndex(encoder)
        self._lock = threading.RLock()
        self._lexical: _Lexical | None = None

    @classmethod
    def from_texts(
        cls,
        texts: Sequence[str],
        encoder: BaseEncoder,
        ids: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        **kwargs: Any,
    ) -> HybridSearcher:
        """A searcher over ``texts``; ``kwargs`` go to the constructor."""
        searcher = cls(encoder, **kwargs)
        searcher.add(texts, ids=ids, metadatas=metadatas)
        return searcher

    @classmethod
    def from_index(cls, index: LateIndex, **kwargs: Any) -> HybridSearcher:
        """A searcher over an existing index, with BM25 built over its stored texts.

        The index is shared, not copied; ``kwargs`` go to the constructor.
        """
        return cls(index.encoder, index=index, **kwargs)

    def __len__(self) -> int:
        return len(self.index)

    @property
    def ids(self) -> list[str]:
        """Document ids in insertion order (those of :attr:`index`)."""
        return self.index.ids

    def get(self, ids: Sequence[str]) -> list[SearchHit]:
        """Stored documents for ``ids`` (unknown ids are skipped), with score 0."""
        return self.index.get(ids)

    def close(self) -> None:
        """Close :attr:`index` (its backend's clients and temporary files)."""
        self.index.close()

    def __repr__(self) -> str:
        return (
            f"HybridSearcher({len(self)} documents, fusion={self.fusion!r}, "
            f"candidates={self.candidates})"
        )

    def add(
        self,
        texts: Sequence[str],
        ids: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> list[str]:
        """Encode and add documents to both stages; an existing id is replaced.

        Returns
        -------
        list of str
            The ids, generated where none were given.
        """
        added = self.index.add(texts, ids=ids, metadatas=metadatas)
        if added:
            with self._lock:
                self._lexical = None
        return added

    def delete(self, ids: Sequence[str]) -> int:
        """Remove documents from both stages; unknown ids are ignored. Returns how many."""
        with self._lock:
            removed = self.index.delete(ids)
            if removed:
                self._lexical = None
            return removed

    def refresh(self) -> None:
        """Rebuild the BM25 stage over the index's current documents now."""
        with self._lock:
            self._lexical = self._build()

    def _tokenize(self, texts: list[str]) -> list[list[str]]:
        import bm25s

        tokens = bm25s.tokenize(
            texts,
            stopwords=self.stopwords if self.stopwords is not None else [],
            stemmer=self._stemmer,
            return_ids=False,
            show_progress=False,
        )
        return tokens

    def _build(self) -> _Lexical:
        import bm25s

        ids = self.index.ids
        texts = [hit.text for hit in self.index.get(ids)]
        tokens = self._tokenize(texts)
        if not any(tokens):
            # No document has a single term: nothing can match (and bm25s would divide by 0).
            return _Lexical(ids, None)
        retriever = bm25s.BM25()
        retriever.index(tokens, show_progress=False)
        logger.debug("rebuilt the BM25 index over %d documents", len(ids))
        return _Lexical(ids, retriever)

    def _current(self) -> _Lexical:
        if self._lexical is None or len(self._lexical.ids) != len(self.index):
            self._lexical = self._build()
        return self._lexical

    def _candidates(
        self, lexical: _Lexical, query_tokens: list[str], n: int
    ) -> tuple[list[str], np.ndarray]:
        if lexical.retriever is None or not query_tokens:
            return [], np.zeros(0, dtype=np.float64)
        scores = np.asarray(lexical.retriever.get_scores(query_tokens), dtype=np.float64)
        matching = np.flatnonzero(scores > 0)
        best = matching[np.lexsort((matching, -scores[matching]))][:n]
        return [lexical.ids[i] for i in best], scores[best]

    def search(
        self,
        query: str,
        k: int = 10,
        *,
        fusion: Fusion | None = None,
        candidates: int | None = None,
        **options: Any,
    ) -> list[HybridHit]:
        """The ``k`` best documents for ``query`` by fused score.

        Parameters
        ----------
        query
            The query text; an empty or blank query returns ``[]``.
        k
            How many hits to return (at most the number of candidates).
        fusion, candidates
            Override the searcher's defaults for this query.

        Returns
        -------
        list of HybridHit
            Best first; ties break by BM25 rank.
        """
        return super().search(query, k, fusion=fusion, candidates=candidates, **options)

    def search_batch(
        self,
        queries: Sequence[str],
        k: int = 10,
        *,
        fusion: Fusion | None = None,
        candidates: int | None = None,
        **options: Any,
    ) -> list[list[HybridHit]]:
        """:meth:`search` for many queries: one list of hits per query, in order."""
        if options:
            raise TypeError(f"unknown search options {sorted(options)}; use fusion, candidates")
        queries = check_queries(queries)
        check_count(k, "k")
        fusion = self.fusion if fusion is None else fusion
        _check_fusion(fusion)
        n = check_positive(self.candidates if candidates is None else candidates, "candidates")
        if not queries:
            return []
        query_tokens = self._tokenize(queries)
        with self._lock:
            lexical = self._current()
            stage_one = [
                self._candidates(lexical, tokens, n)
                if query.strip() and k > 0
                else ([], np.zeros(0, dtype=np.float64))
                for query, tokens in zip(queries, query_tokens, strict=True)
            ]
            # every query's candidates are scored after one batched query encode
            colbert = self.index.score_batch(queries, [ids for ids, _ in stage_one])
            return [
                self._fuse(ids, bm25_scores, maxsim_scores.astype(np.float64), k, fusion)
                if ids
                else []
                for (ids, bm25_scores), maxsim_scores in zip(stage_one, colbert, strict=True)
            ]

    def _fuse(
        self,
        ids: list[str],
        bm25_scores: np.ndarray,
        colbert_scores: np.ndarray,
        k: int,
        fusion: Fusion,
    ) -> list[HybridHit]:
        fused = fuse(bm25_scores, colbert_scores, fusion, rrf_k=self.rrf_k, alpha=self.alpha)
        top = [int(i) for i in fused.order[:k]]
        stored = self.index.get([ids[i] for i in top])
        return [
            HybridHit(
                id=doc.id,
                score=float(fused.scores[i]),
                text=doc.text,
                metadata=doc.metadata,
                bm25_score=float(bm25_scores[i]),
                bm25_rank=int(fused.bm25_ranks[i]),
                colbert_score=float(colbert_scores[i]),
                colbert_rank=int(fused.colbert_ranks[i]),
            )
            for i, doc in zip(top, stored, strict=True)
        ]

    async def asearch(
        self,
        query: str,
        k: int = 10,
        *,
        fusion: Fusion | None = None,
        candidates: int | None = None,
        **options: Any,
    ) -> list[HybridHit]:
        """:meth:`search` in a worker thread, so the event loop is not blocked."""
        return await super().asearch(query, k, fusion=fusion, candidates=candidates, **options)


def _load_stemmer(language: str | None) -> Any:
    if language is None:
        return None
    try:
        import Stemmer
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(
            f"stemmer={language!r} needs PyStemmer: pip install 'latecore[stem]'"
        ) from error
    if language not in Stemmer.algorithms():
        raise ValueError(
            f"unknown stemmer language {language!r}; PyStemmer knows "
            f"{', '.join(Stemmer.algorithms())}"
        )
    return Stemmer.Stemmer(language)
