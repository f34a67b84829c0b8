"""The lexical (BM25) stage of hybrid search, through ``bm25s``.

Texts are lowercased, split into words, stripped of the language's stopwords
and stemmed with its Snowball stemmer (PyStemmer), so that "running" matches
"runs". One ``language`` setting drives both; ``stopwords`` and ``stemmer``
override it separately (``None`` turns either off).

bm25s has no incremental update: :meth:`LexicalStage.build` indexes a snapshot
of the corpus, and a searcher rebuilds it after documents change.

A snapshot also knows each term's document frequency, and so a query's *bound*
(:meth:`LexicalSnapshot.bound`): the sum of its terms' IDF, which no document's
BM25 score reaches (Lucene's BM25, which bm25s computes here, scores a term at
most its IDF; a term no document holds counts with the IDF of a frequency of 0).
The best score over the bound says how much of the query the best lexical match
covers; the ``"adaptive"`` fusion (:mod:`latecore.fusion`) weighs BM25 by it.

Examples
--------
>>> stage = LexicalStage()
>>> stage.tokenize(["The runner was running"])
[['runner', 'run']]
>>> snapshot = stage.build(["a", "b"], ["she runs every day", "cats sleep"])
>>> positions, scores = snapshot.top(stage.tokenize(["running"])[0], 10)
>>> [snapshot.ids[p] for p in positions], bool(scores[0] > 0)
(['a'], True)
>>> bool(scores[0] < snapshot.bound(stage.tokenize(["running"])[0]))
True
"""

from __future__ import annotations

import logging
import math
import warnings
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import LatecoreWarning

if TYPE_CHECKING:
    import bm25s

__all__ = ["AUTO", "LexicalSnapshot", "LexicalStage", "function_words", "idf"]

logger = logging.getLogger(__name__)

AUTO = "auto"
"""``stopwords`` / ``stemmer`` value meaning "follow ``language``"."""

_STOPWORD_CODES = {
    "english": "en",
    "german": "de",
    "dutch": "nl",
    "french": "fr",
    "spanish": "es",
    "portuguese": "pt",
    "italian": "it",
    "russian": "ru",
    "swedish": "sv",
    "norwegian": "no",
    "turkish": "tr",
    "danish": "da",
}
"""Snowball language name -> bm25s stopword list code."""

_warned_missing_stemmer = False


def function_words(language: str | None) -> frozenset[str]:
    """The language's function words (NLTK's stopword lists, as bm25s ships them).

    For English the long list (179 words, with "why", "how", "what"), not the
    33-word list BM25 removes; an unknown language or ``None`` has none.

    Examples
    --------
    >>> {"the", "why", "how"} <= function_words("english"), "sky" in function_words("english")
    (True, False)
    >>> function_words(None)
    frozenset()
    """
    if language is None or language not in _STOPWORD_CODES:
        return frozenset()
    from bm25s import stopwords

    name = "EN_PLUS" if language == "english" else language.upper()
    return frozenset(getattr(stopwords, f"STOPWORDS_{name}"))


def _stemmer(language: str | None, *, explicit: bool) -> Any:
    """A PyStemmer stemmer for ``language`` (``None``: no stemming)."""
    global _warned_missing_stemmer
    if language is None:
        return None
    try:
        import Stemmer
    except ModuleNotFoundError as error:
        if explicit:
            raise ModuleNotFoundError(
                f"stemmer={language!r} needs PyStemmer: pip install PyStemmer"
            ) from error
        if not _warned_missing_stemmer:
            _warned_missing_stemmer = True
            warnings.warn(
                "PyStemmer is not installed, so BM25 does not stem words ('running' will not "
                "match 'runs'): pip install PyStemmer",
                LatecoreWarning,
                stacklevel=4,
            )
        return None
    if language not in Stemmer.algorithms():
        if not explicit:
            return None
        raise ValueError(
            f"unknown stemmer language {language!r}; PyStemmer knows "
            f"{', '.join(Stemmer.algorithms())}"
        )
    return Stemmer.Stemmer(language)


def idf(document_frequency: int, n_documents: int) -> float:
    """The IDF bm25s's Lucene BM25 gives a term held by ``document_frequency`` documents.

    Examples
    --------
    >>> round(idf(1, 3), 4), round(idf(0, 3), 4)  # a term no document holds weighs the most
    (0.9808, 2.0794)
    """
    return math.log(1.0 + (n_documents - document_frequency + 0.5) / (document_frequency + 0.5))


class LexicalSnapshot:
    """A BM25 index over a snapshot of the corpus: its ids, a bm25s retriever (or none) and the
    document frequency of every term. Document ``i`` of the retriever is ``ids[i]``."""

    def __init__(
        self,
        ids: Sequence[str],
        retriever: bm25s.BM25 | None,
        document_frequency: Counter[str] | None = None,
    ) -> None:
        self.ids = ids
        self.retriever = retriever
        self.document_frequency: Counter[str] = document_frequency or Counter()

    def bound(self, query_tokens: list[str]) -> float:
        """The sum of the IDF of the query's terms (repeats counted, as BM25 counts them).

        No document's BM25 score for the query reaches it: a matched term adds at
        most its IDF. A term no document holds adds the IDF of a frequency of 0,
        so a query whose words are missing from the corpus has a large bound
        that its best match covers little of.
        """
        n = len(self.ids)
        return math.fsum(idf(self.document_frequency[t], n) for t in query_tokens)

    def covers(self, ids: Sequence[str]) -> bool:
        """Whether this snapshot is of exactly ``ids``, in that order (the same list object
        is; a store replaces its list on every change)."""
        return ids is self.ids or list(ids) == list(self.ids)

    def top(
        self, query_tokens: list[str], n: int, mask: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` best documents sharing a term with the query: their indices in
        :attr:`ids` (int64) and BM25 scores. Ties break by index. With ``mask`` (bool,
        one per document), only the documents it holds for (bm25s' ``weight_mask``).
        """
        if self.retriever is None or not query_tokens:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
        weights = None if mask is None else mask.astype(np.float32)
        scores = self.retriever.get_scores(query_tokens, weight_mask=weights)
        scores = np.asarray(scores, dtype=np.float64)
        matching = np.flatnonzero(scores > 0)
        best = matching[np.lexsort((matching, -scores[matching]))][:n]
        return best.astype(np.int64), scores[best]


class LexicalStage:
    """Tokenisation settings of the BM25 stage, and snapshots built with them.

    Parameters
    ----------
    language
        A Snowball language name (``"english"``, default; ``"german"``,
        ``"french"``, ...) for both stopwords and stemming, or ``None`` for
        neither. A language without a bm25s stopword list is only stemmed.
    stopwords
        ``"auto"`` (the language's list), a bm25s code (``"en"``, ``"de"``, ...),
        a list of words, or ``None`` to keep every word.
    stemmer
        ``"auto"`` (the language's stemmer), a PyStemmer language, or ``None``
        for no stemming.
    """

    def __init__(
        self,
        language: str | None = "english",
        *,
        stopwords: str | list[str] | None = AUTO,
        stemmer: str | None = AUTO,
    ) -> None:
        self.language = language
        if stopwords == AUTO:
            stopwords = _STOPWORD_CODES.get(language) if language is not None else None
        if stemmer == AUTO:
            self.stemmer = language
            self._stemmer = _stemmer(language, explicit=False)
            if self._stemmer is None:
                self.stemmer = None
        else:
            self.stemmer = stemmer
            self._stemmer = _stemmer(stemmer, explicit=True)
        self.stopwords = stopwords
        self.tokenize([""])  # fails now, not at the first search, on unknown stopwords

    def __repr__(self) -> str:
        return f"LexicalStage(stopwords={self.stopwords!r}, stemmer={self.stemmer!r})"

    def tokenize(self, texts: Sequence[str]) -> list[list[str]]:
        """The BM25 terms of each text."""
        import bm25s

        tokens: list[list[str]] = bm25s.tokenize(
            list(texts),
            stopwords=self.stopwords if self.stopwords is not None else [],
            stemmer=self._stemmer,
            return_ids=False,
            show_progress=False,
        )
        return tokens

    def build(self, ids: Sequence[str], texts: Sequence[str]) -> LexicalSnapshot:
        """A BM25 index over ``texts`` (a corpus without a single term matches nothing)."""
        import bm25s

        tokens = self.tokenize(texts)
        if not any(tokens):
            # No document has a single term: nothing can match (and bm25s would divide by 0).
            return LexicalSnapshot(ids, None)
        retriever = bm25s.BM25(method="lucene", idf_method="lucene")  # the scoring idf() follows
        retriever.index(tokens, show_progress=False)
        frequency = Counter(term for document in tokens for term in set(document))
        logger.debug("built a BM25 index over %d documents", len(ids))
        return LexicalSnapshot(ids, retriever, frequency)
