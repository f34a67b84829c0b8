"""Token-level explanations of MaxSim scores, and highlighting of the matched text.

MaxSim sums, over the query's token vectors, each one's best dot product with
any of the document's token vectors. :func:`explain` returns those maxima one by
one: which document token every query token matched, where that token is in the
document text, and how much it adds to the score. :func:`highlight` renders the
document with the matched spans marked, for a terminal (ANSI), a notebook (HTML)
or plain text.

Tokens, spans and vectors come from the encoder's
:meth:`~latecore.base_encoder.BaseEncoder.encode_with_tokens`; this module only
matches and renders. :class:`~latecore.encoder.Encoder` and
:class:`latecore.testing.FakeEncoder` support it, as does any encoder with a
``token_spans`` method; others raise ``TypeError``.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .base_encoder import BaseEncoder
from .tokens import Span, TokenizedText

__all__ = ["MIN_SHARE", "Explanation", "TokenMatch", "explain", "highlight"]

Style = Literal["ansi", "html", "text"]

_ANSI_ON, _ANSI_OFF = "\x1b[1;33m", "\x1b[0m"


@dataclass(frozen=True)
class TokenMatch:
    """What one query token matched in the document.

    Attributes
    ----------
    query_token
        The query token as the tokenizer spells it (``"paris"``, ``"##ing"``,
        ``"[CLS]"``, ``"[MASK]"``).
    query_position
        Index of the token among the query's vectors.
    query_span
        ``(start, end)`` character offsets in the query text; ``None`` for special
        tokens and expansion tokens.
    is_special
        A special token: ``[CLS]``, ``[SEP]`` or the query marker.
    is_expansion
        A ``[MASK]`` token added by query augmentation (no text of its own).
    document_token
        The best-matching document token as the tokenizer spells it.
    document_position
        Index of that token among the document's vectors.
    document_span
        ``(start, end)`` offsets of that token in the document text (slicing the
        document gives its surface form); ``None`` for special tokens.
    similarity
        Dot product (cosine) of the two token vectors.
    contribution
        What this query token adds to the MaxSim score: its best similarity.
        The contributions of all query tokens sum to the score.
    """

    query_token: str
    query_position: int
    query_span: Span | None
    is_special: bool
    is_expansion: bool
    document_token: str
    document_position: int
    document_span: Span | None
    similarity: float
    contribution: float

    @property
    def label(self) -> str:
        """The query token for display; expansion tokens read ``[MASK] (expansion)``."""
        return f"{self.query_token} (expansion)" if self.is_expansion else self.query_token


@dataclass(frozen=True)
class Explanation:
    """A MaxSim score taken apart: one :class:`TokenMatch` per query token.

    ``score`` is the sum of the contributions (float64), the MaxSim score of the
    query against the document within float32 rounding.
    """

    query: str
    document: str
    score: float
    matches: tuple[TokenMatch, ...]

    def top(self, n: int = 5) -> list[TokenMatch]:
        """The ``n`` matches that contribute most, largest first (ties: query order)."""
        return sorted(self.matches, key=lambda m: -m.contribution)[:n]

    def _repr_html_(self) -> str:
        return highlight(self, "html")


def explain(encoder: BaseEncoder, query: str, document: str) -> Explanation:
    """Which document token each query token matched, where it is and what it adds.

    Parameters
    ----------
    encoder
        Any encoder whose :meth:`~latecore.base_encoder.BaseEncoder.encode_with_tokens`
        works: :class:`~latecore.encoder.Encoder`, ``latecore.testing.FakeEncoder``.
    query, document
        The texts. Spans are character offsets into these very strings.

    Returns
    -------
    Explanation
        One :class:`TokenMatch` per query vector, in query order; their
        contributions sum to ``maxsim(encoder.encode_queries([query])[0],
        encoder.encode_documents([document]))`` within float32 rounding (document
        vectors are rounded to the encoder's storage dtype, as a cached encoder's are).

    Raises
    ------
    TypeError
        If the texts are not strings, or the encoder cannot say which token each of
        its vectors stands for.

    Examples
    --------
    >>> from latecore.testing import FakeEncoder
    >>> explanation = explain(FakeEncoder(), "berlin capital", "Berlin is a capital.")
    >>> [m.query_token for m in explanation.matches]
    ['[Q]', 'berlin', 'capital']
    >>> [(m.document_token, m.document_span) for m in explanation.matches[1:]]
    [('berlin', (0, 6)), ('capital', (12, 19))]
    >>> round(sum(m.contribution for m in explanation.matches), 4) == round(explanation.score, 4)
    True
    >>> highlight(explanation, "text")
    '**Berlin** is a **capital**.'
    """
    if not isinstance(query, str) or not isinstance(document, str):
        raise TypeError("explain takes a query string and a document string")
    (q,) = encoder.encode_with_tokens([query], is_query=True)
    (d,) = encoder.encode_with_tokens([document], is_query=False)
    return _match(query, document, q, d)


def _match(query: str, document: str, q: TokenizedText, d: TokenizedText) -> Explanation:
    if q.vectors.shape[0] == 0 or d.vectors.shape[0] == 0:
        return Explanation(query, document, 0.0, ())
    similarities = q.vectors @ d.vectors.T
    best = similarities.argmax(axis=1)
    matches = []
    for i, j in enumerate(best.tolist()):
        value = float(similarities[i, j])
        matches.append(
            TokenMatch(
                query_token=q.tokens[i],
                query_position=i,
                query_span=q.spans[i],
                is_special=q.special[i],
                is_expansion=q.expansion[i],
                document_token=d.tokens[j],
                document_position=j,
                document_span=d.spans[j],
                similarity=value,
                contribution=value,
            )
        )
    score = float(np.sum(similarities[np.arange(len(best)), best], dtype=np.float64))
    return Explanation(query, document, score, tuple(matches))


def _carries_the_score(
    explanation: Explanation, min_share: float | None, language: str | None, everything: bool
) -> list[TokenMatch]:
    """The matches worth marking: content words' matches that contribute enough."""
    if everything:
        return list(explanation.matches)
    from .lexical import function_words

    skip = function_words(language)

    def is_content(text: str, span: Span | None) -> bool:
        word = "" if span is None else text[span[0] : span[1]].lower().strip()
        return any(c.isalnum() for c in word) and word not in skip

    content = [
        m
        for m in explanation.matches
        if not (m.is_special or m.is_expansion)
        and is_content(explanation.query, m.query_span)
        and is_content(explanation.document, m.document_span)
    ]
    if min_share is None or not content:
        return content
    best = max(m.contribution for m in content)
    return [m for m in content if m.contribution >= min_share * best]


def _marked_spans(
    explanation: Explanation, matches: list[TokenMatch], min_similarity: float | None
) -> list[tuple[int, int, list[TokenMatch]]]:
    """Matched document spans, merged where they touch, with the matches behind each."""
    spans: dict[Span, list[TokenMatch]] = {}
    for match in matches:
        if match.document_span is None:
            continue
        if min_similarity is not None and match.similarity < min_similarity:
            continue
        spans.setdefault(match.document_span, []).append(match)
    merged: list[tuple[int, int, list[TokenMatch]]] = []
    for (start, end), matches in sorted(spans.items()):
        if merged and start <= merged[-1][1]:
            first, last, previous = merged[-1]
            merged[-1] = (first, max(last, end), previous + matches)
        else:
            merged.append((start, end, list(matches)))
    return merged


MIN_SHARE = 0.75
"""Default of :func:`highlight`'s ``min_share``, chosen on the demo's output (docs/hybrid.md)."""


def highlight(
    explanation: Explanation,
    style: Style = "ansi",
    *,
    min_share: float | None = MIN_SHARE,
    language: str | None = "english",
    min_similarity: float | None = None,
    include_special: bool = False,
) -> str:
    """The explained document with the spans that carry the score marked.

    A match is marked when both its query token and the document token it
    matched are content words (not punctuation, not one of ``language``'s
    function words such as "the", "of", "why") and it contributes at least
    ``min_share`` of the largest contribution among such matches. So a strong
    match of "sky" to "sky" is marked, a weak best match of "invented" to "was"
    is not, and nor is "the" matching "the", which every document offers.

    Parameters
    ----------
    explanation
        From :func:`explain`.
    style
        ``"ansi"``: bold yellow for a terminal. ``"html"``: ``<mark>`` elements
        (title: which query tokens matched, and how well) inside a ``<div>``, with
        all text HTML-escaped, for a notebook. ``"text"``: ``**bold**`` markers.
    min_share
        Keep matches contributing at least this fraction of the best content
        match (default :data:`MIN_SHARE`); ``None`` keeps every content match.
    language
        Whose function words are not marked (``None``: mark every word).
    min_similarity
        Also require at least this similarity (an absolute floor).
    include_special
        Also mark what special and expansion query tokens matched (noise, mostly);
        this marks every match that passes ``min_similarity``, stopwords included.

    Returns
    -------
    str
        The whole document, marked up.

    Examples
    --------
    >>> from latecore.testing import FakeEncoder
    >>> explanation = explain(FakeEncoder(), "fish & chips", "<b>fish</b> & chips")
    >>> print(highlight(explanation, "html"))  # doctest: +NORMALIZE_WHITESPACE
    <div class="latecore-highlight" style="white-space: pre-wrap">&lt;b&gt;<mark
    title="fish (1.000)">fish</mark>&lt;/b&gt; &amp; <mark title="chips (1.000)">chips</mark></div>
    >>> highlight(explanation, "ansi") == (
    ...     "<b>\\x1b[1;33mfish\\x1b[0m</b> & \\x1b[1;33mchips\\x1b[0m")
    True
    >>> highlight(explain(FakeEncoder(), "the sky", "the sky"), "text")  # "the": no
    'the **sky**'
    >>> highlight(explain(FakeEncoder(), "the sky", "the sky"), "text", language=None)
    '**the** **sky**'
    """
    if style not in ("ansi", "html", "text"):
        raise ValueError(f"style must be 'ansi', 'html' or 'text', got {style!r}")
    document = explanation.document
    parts: list[str] = []
    cursor = 0
    escape = html.escape if style == "html" else str
    marked_spans = _marked_spans(
        explanation,
        _carries_the_score(explanation, min_share, language, include_special),
        min_similarity,
    )
    for start, end, matches in marked_spans:
        parts.append(escape(document[cursor:start]))
        marked = document[start:end]
        if style == "html":
            title = ", ".join(f"{m.label} ({m.similarity:.3f})" for m in matches)
            parts.append(f'<mark title="{html.escape(title)}">{html.escape(marked)}</mark>')
        elif style == "ansi":
            parts.append(f"{_ANSI_ON}{marked}{_ANSI_OFF}")
        else:
            parts.append(f"**{marked}**")
        cursor = end
    parts.append(escape(document[cursor:]))
    body = "".join(parts)
    if style == "html":
        return f'<div class="latecore-highlight" style="white-space: pre-wrap">{body}</div>'
    return body
