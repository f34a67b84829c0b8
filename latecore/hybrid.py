"""Hybrid search: BM25 and MaxSim nominate candidates, exact MaxSim scores them, fusion.

Two stages nominate candidates for a query:

- the lexical stage (:mod:`latecore.lexical`, BM25 through ``bm25s``, English
  stopwords and stemming by default): its top ``candidates`` documents that
  share a term with the query;
- the semantic stage (``candidates_from="both"``): the
  :class:`~latecore.index.LateIndex`'s own top ``candidates`` by MaxSim, through
  its backend, so documents that share no word with the query are found too.

Every candidate is scored by exact MaxSim against the multivectors the index
already stores (nothing is re-encoded at query time), once: the semantic
stage's candidates come with their exact scores, and only those BM25 alone
nominated are scored after it (one engine fetch for all of them when the
engine holds the vectors). The whole query works on store positions inside one
:meth:`LateIndex.view() <latecore.index.LateIndex.view>`. The rankings are
fused (:mod:`latecore.fusion`: ``"adaptive"`` by default, ``"rerank"``,
``"rrf"``, ``"linear"``). Every hit keeps both stages' scores and ranks
(:class:`~latecore.results.HybridHit`), ``None`` where a stage did not nominate it.

The defaults (:data:`DEFAULT_FUSION`, :data:`DEFAULT_CANDIDATES`, ``rrf_k=60``,
``alpha=0.5``, z-scores for ``"linear"``) were chosen on CACM and both labelled
sets that ship with latecore; ``benchmarks/eval_hybrid.py`` prints the table and
``--sweep`` the settings tried.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from .base_encoder import BaseEncoder
from .filters import FilterSpec, compile_filter
from .fusion import Fused, Fusion, Normalization, check_fusion, fuse
from .index import LateIndex
from .index_view import IndexView
from .lexical import AUTO, LexicalSnapshot, LexicalStage
from .results import HybridHit, SearchHit
from .searcher import Searcher, check_queries
from .store import Ranking
from .validation import check_count, check_positive

__all__ = [
    "AUTO_BOTH_LIMIT",
    "DEFAULT_CANDIDATES",
    "DEFAULT_FUSION",
    "CandidatesFrom",
    "Fused",
    "Fusion",
    "HybridSearcher",
    "Normalization",
    "fuse",
]

logger = logging.getLogger(__name__)

CandidatesFrom = Literal["auto", "both", "bm25"]
"""Which stages nominate candidates: both, BM25 only, or ``"auto"`` (see HybridSearcher)."""

AUTO_BOTH_LIMIT = 20_000
"""``candidates_from="auto"`` uses both stages up to this many documents on ``exact``."""

DEFAULT_FUSION: Fusion = "adaptive"
"""The fusion a searcher uses unless told otherwise (also the adapters' and the CLI's).

With all-MiniLM-L6-v2 as a zero-shot ColBERT, nDCG@10 on CACM 0.535 against
BM25 alone 0.494, MaxSim alone 0.461 and the former default ``"rerank"`` 0.461;
on the shipped sets it keeps MaxSim's 0.976 ("general") and 0.756 ("ops")."""

DEFAULT_CANDIDATES = 100
"""Documents each stage nominates per query. 50 loses recall on CACM (Recall@100
0.684 against 0.739); 200 and 300 change nDCG@10 by less than 0.01."""


class HybridSearcher(Searcher[HybridHit]):
    """BM25 and MaxSim candidates, scored by exact MaxSim and fused, every stage's score kept.

    A query is tokenised for BM25 (lowercased words, the language's stopwords
    removed, stemmed). BM25 nominates its best ``candidates`` documents that
    share a term with the query; with ``candidates_from="both"`` the index
    nominates its own best ``candidates`` by MaxSim too. Every candidate is
    scored by exact MaxSim over its stored multivectors and the two rankings
    are fused; by default (``"adaptive"``) MaxSim's z-scores plus BM25's, BM25
    weighted per query by how much of the query its best match covers, so a
    paraphrase keeps MaxSim's order and a query whose words a document holds
    lets BM25 reorder. A hit's ``bm25_score``/``bm25_rank`` are ``None`` when BM25 did
    not nominate it, its ``colbert_rank`` when MaxSim did not (its
    ``colbert_score`` is always the exact MaxSim score).

    ``candidates_from="auto"`` (default) uses both stages when the index's
    backend prunes (any but ``exact``) or holds at most :data:`AUTO_BOTH_LIMIT`
    documents, and BM25 alone beyond that on ``exact``, where the semantic stage
    reads every stored vector for each query (its cost per document is in
    docs/benchmarks.md). With BM25 alone, a document that shares no term with
    the query is never returned.

    bm25s has no incremental update: after any change to the index (through
    the searcher or to :attr:`index` directly) the BM25 index is rebuilt over
    the whole corpus on the next search (or on :meth:`refresh`), so batch your
    updates (docs/benchmarks.md has the cost).

    Parameters
    ----------
    encoder
        Encoder of the ColBERT stage (its cache, if any, is used when adding).
    candidates
        How many documents each stage nominates per query (default
        :data:`DEFAULT_CANDIDATES`).
    candidates_from
        ``"auto"`` (default), ``"both"`` or ``"bm25"`` (see above).
    fusion
        Default fusion: ``"adaptive"`` (default), ``"rerank"``, ``"rrf"`` or
        ``"linear"`` (:mod:`latecore.fusion`). The same defaults suit zero-shot
        and trained checkpoints: the weights come from z-scores, which do not
        depend on a model's score scale, and from BM25's own coverage of the query.
    rrf_k
        The RRF constant: ``1 / (rrf_k + rank)`` per stage.
    alpha
        Weight of the MaxSim score in ``"linear"`` fusion, in ``[0, 1]``.
    normalization
        How ``"linear"`` fusion scales both stages: ``"zscore"`` (default) or
        ``"minmax"``.
    language
        Language of the BM25 stage's stopwords and stemmer (``"english"``,
        ``"german"``, ...), or ``None`` for neither.
    stopwords, stemmer
        Override ``language`` for one of the two (``None``: off); see
        :class:`~latecore.lexical.LexicalStage`.
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
    >>> hits = searcher.search("capital of germany", k=3)
    >>> [(h.id, h.bm25_rank, h.colbert_rank) for h in hits]  # only MaxSim nominated "c"
    [('b', 1, 1), ('p', 2, 2), ('c', None, 3)]
    >>> searcher.delete(["b"])
    1
    >>> [h.id for h in searcher.search("capital of germany", candidates_from="bm25")]
    ['p']
    """

    def __init__(
        self,
        encoder: BaseEncoder,
        *,
        candidates: int = DEFAULT_CANDIDATES,
        candidates_from: CandidatesFrom = "auto",
        fusion: Fusion = DEFAULT_FUSION,
        rrf_k: int = 60,
        alpha: float = 0.5,
        normalization: Normalization = "zscore",
        language: str | None = "english",
        stopwords: str | list[str] | None = AUTO,
        stemmer: str | None = AUTO,
        index: LateIndex | None = None,
    ) -> None:
        check_positive(candidates, "candidates")
        _check_candidates_from(candidates_from)
        check_fusion(fusion, rrf_k, alpha, normalization)
        if index is not None and index.encoder.fingerprint != encoder.fingerprint:
            raise ValueError(
                "the index was built with a different encoder (fingerprints "
                f"{index.encoder.fingerprint[:12]} and {encoder.fingerprint[:12]}); "
                "use HybridSearcher.from_index(index) to search it with its own encoder"
            )
        self.encoder = encoder
        self.candidates = candidates
        self.candidates_from: CandidatesFrom = candidates_from
        self.fusion: Fusion = fusion
        self.rrf_k = rrf_k
        self.alpha = alpha
        self.normalization: Normalization = normalization
        self.lexical = LexicalStage(language, stopwords=stopwords, stemmer=stemmer)
        self.index = index if index is not None else LateIndex(encoder)
        self._lock = threading.RLock()
        self._snapshot: LexicalSnapshot | None = None

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

    def __repr__(self) -> str:
        return (
            f"HybridSearcher({len(self)} documents, fusion={self.fusion!r}, "
            f"candidates={self.candidates}, candidates_from={self.candidates_from!r})"
        )

    @property
    def ids(self) -> list[str]:
        """Document ids in insertion order (those of :attr:`index`)."""
        return self.index.ids

    @property
    def stopwords(self) -> str | list[str] | None:
        """The BM25 stage's stopwords (a bm25s code or a list), or ``None``."""
        return self.lexical.stopwords

    @property
    def stemmer(self) -> str | None:
        """The BM25 stage's stemmer language, or ``None``."""
        return self.lexical.stemmer

    def get(self, ids: Sequence[str]) -> list[SearchHit]:
        """Stored documents for ``ids`` (unknown ids are skipped), with score 0."""
        return self.index.get(ids)

    def close(self) -> None:
        """Close :attr:`index` (its backend's clients and temporary files)."""
        self.index.close()

    def add(
        self,
        texts: Sequence[str],
        ids: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> list[str]:
        """Encode and add documents to both stages; an existing id is replaced."""
        added = self.index.add(texts, ids=ids, metadatas=metadatas)
        if added:
            with self._lock:
                self._snapshot = None
        return added

    def delete(self, ids: Sequence[str]) -> int:
        """Remove documents from both stages; unknown ids are ignored. Returns how many."""
        with self._lock:
            removed = self.index.delete(ids)
            if removed:
                self._snapshot = None
            return removed

    def refresh(self) -> None:
        """Rebuild the BM25 stage over the index's current documents now."""
        with self._lock, self.index.view() as view:
            self._snapshot = self._build(view)

    def _build(self, view: IndexView) -> LexicalSnapshot:
        documents = view.store.documents(np.arange(len(view)))
        return self.lexical.build(view.ids, [doc.text for doc in documents])

    def _current(self, view: IndexView) -> LexicalSnapshot:
        """The BM25 snapshot of exactly the view's documents (document ``i`` at position ``i``).

        A store replaces its id list on every change, so an unchanged list is an
        unchanged corpus.
        """
        snapshot = self._snapshot
        if snapshot is None or not snapshot.covers(view.ids):
            snapshot = self._snapshot = self._build(view)
        return snapshot

    def uses_both_stages(self, candidates_from: CandidatesFrom | None = None) -> bool:
        """Whether a search with ``candidates_from`` (default: the searcher's) asks MaxSim
        for candidates too; resolves ``"auto"`` for the index as it is now."""
        rule = self.candidates_from if candidates_from is None else candidates_from
        _check_candidates_from(rule)
        if rule == "auto":
            return self.index.backend.name != "exact" or len(self.index) <= AUTO_BOTH_LIMIT
        return rule == "both"

    def search(
        self,
        query: str,
        k: int = 10,
        *,
        fusion: Fusion | None = None,
        candidates: int | None = None,
        candidates_from: CandidatesFrom | None = None,
        filter: FilterSpec = None,
        **options: Any,
    ) -> list[HybridHit]:
        """The ``k`` best documents for ``query`` by fused score, best first.

        ``fusion``, ``candidates`` and ``candidates_from`` override the
        searcher's settings for this query. With ``filter``
        (:mod:`latecore.filters`), neither stage nominates a document it does not
        hold for (BM25 through a weight mask). A blank query returns ``[]``.
        """
        return super().search(
            query,
            k,
            fusion=fusion,
            candidates=candidates,
            candidates_from=candidates_from,
            filter=filter,
            **options,
        )

    def search_batch(
        self,
        queries: Sequence[str],
        k: int = 10,
        *,
        fusion: Fusion | None = None,
        candidates: int | None = None,
        candidates_from: CandidatesFrom | None = None,
        filter: FilterSpec = None,
        **options: Any,
    ) -> list[list[HybridHit]]:
        """:meth:`search` for many queries (one query encode in all), one list per query."""
        if options:
            raise TypeError(
                f"unknown search options {sorted(options)}; use fusion, candidates, candidates_from"
            )
        queries = check_queries(queries)
        check_count(k, "k")
        compiled = compile_filter(filter)
        fusion = self.fusion if fusion is None else fusion
        check_fusion(fusion, self.rrf_k, self.alpha, self.normalization)
        n = check_positive(self.candidates if candidates is None else candidates, "candidates")
        both = self.uses_both_stages(candidates_from)
        if not queries:
            return []
        active = [i for i, q in enumerate(queries) if q.strip() and k > 0]
        tokens = self.lexical.tokenize([queries[i] for i in active])
        encoded = self.encoder.encode_queries([queries[i] for i in active]) if active else []
        results: list[list[HybridHit]] = [[] for _ in queries]
        with self._lock, self.index.view() as view:
            snapshot = self._current(view)
            where = view.select(compiled)
            mask = None if where is None else where.mask
            lexical = [snapshot.top(t, n, mask) for t in tokens]
            semantic = view.rank(encoded, n, where) if both else [Ranking.empty() for _ in active]
            scored = view.backend.exact_scores
            # BM25's nominations first (fusion breaks ties by input order), then MaxSim's.
            pooled = [
                np.array(list(dict.fromkeys([*bm25.tolist(), *rank.positions.tolist()])), np.int64)
                for (bm25, _), rank in zip(lexical, semantic, strict=True)
            ]
            unscored = [
                c[~np.isin(c, rank.positions)] if scored else c
                for c, rank in zip(pooled, semantic, strict=True)
            ]
            later = view.score(encoded, unscored)
            for slot, query_tokens, positions, (bm25, bm25_scores), rank, rest, rest_scores in zip(
                active, tokens, pooled, lexical, semantic, unscored, later, strict=True
            ):
                maxsim = dict(zip(rest.tolist(), rest_scores.tolist(), strict=True))
                if scored:
                    maxsim.update(zip(rank.positions.tolist(), rank.scores.tolist(), strict=True))
                lexical_scores = dict(zip(bm25.tolist(), bm25_scores.tolist(), strict=True))
                nominated = set(rank.positions.tolist()) if both else set(positions.tolist())
                order = positions.tolist()
                results[slot] = self._fuse(
                    view,
                    positions,
                    np.array([lexical_scores.get(p, np.nan) for p in order], dtype=np.float64),
                    np.array([maxsim[p] for p in order], dtype=np.float64),
                    np.array([p in nominated for p in order], dtype=bool),
                    snapshot.bound(query_tokens),
                    k,
                    fusion,
                )
        return results

    def _fuse(
        self,
        view: IndexView,
        positions: np.ndarray,
        bm25_scores: np.ndarray,
        colbert_scores: np.ndarray,
        colbert_nominated: np.ndarray,
        bm25_bound: float,
        k: int,
        fusion: Fusion,
    ) -> list[HybridHit]:
        if not len(positions):
            return []
        fused = fuse(
            bm25_scores,
            colbert_scores,
            fusion,
            rrf_k=self.rrf_k,
            alpha=self.alpha,
            normalization=self.normalization,
            colbert_nominated=colbert_nominated,
            bm25_bound=bm25_bound,
        )
        top = [int(i) for i in fused.order[:k]]
        documents = view.store.documents(positions[top])
        return [
            HybridHit(
                id=doc.id,
                score=float(fused.scores[i]),
                text=doc.text,
                metadata=copy.deepcopy(dict(doc.metadata)),
                bm25_score=None if np.isnan(bm25_scores[i]) else float(bm25_scores[i]),
                bm25_rank=int(fused.bm25_ranks[i]) or None,
                colbert_score=float(colbert_scores[i]),
                colbert_rank=int(fused.colbert_ranks[i]) or None,
            )
            for i, doc in zip(top, documents, strict=True)
        ]

    async def asearch(
        self,
        query: str,
        k: int = 10,
        *,
        fusion: Fusion | None = None,
        candidates: int | None = None,
        candidates_from: CandidatesFrom | None = None,
        filter: FilterSpec = None,
        **options: Any,
    ) -> list[HybridHit]:
        """:meth:`search` in a worker thread, so the event loop is not blocked."""
        return await super().asearch(
            query,
            k,
            fusion=fusion,
            candidates=candidates,
            candidates_from=candidates_from,
            filter=filter,
            **options,
        )


def _check_candidates_from(value: object) -> None:
    if value not in ("auto", "both", "bm25"):
        raise ValueError(f"candidates_from must be 'auto', 'both' or 'bm25', got {value!r}")
