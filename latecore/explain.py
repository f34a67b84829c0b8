"""Token-level explanations of MaxSim scores, and highlighting of the matched text.

MaxSim sums, over the query's token vectors, each one's best dot product with
any of the document's token vectors. :func:`explain` returns those maxima one by
one: which document token every query token matched, where that token is in the
document text, and how much it adds to the score. :func:`highlight` renders the
document with the matched spans marked, for a terminal (ANSI), a notebook (HTML)
or plain text.

Supported encoders: :class:`~latecore.encoder.Encoder` (tokens and character
offsets come from the model's own tokenizer), and any encoder with a
``token_spans(text, *, is_query)`` method that labels each of its output vectors,
such as :class:`latecore.testing.FakeEncoder`. Other encoders raise ``TypeError``.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np

from .encoder import BaseEncoder, Encoder, clean_text

if TYPE_CHECKING:
    from pylate.models import ColBERT

__all__ = ["Explanation", "TokenMatch", "explain", "highlight"]

Span = tuple[int, int]
Style = Literal["ansi", "html", "text"]

_ANSI_ON, _ANSI_OFF = "\x1b[1;33m", "\x1b[0m"


@runtime_checkable
class TokenSpans(Protocol):
    """An encoder that can say which token, at which span, each output vector stands for."""

    def token_spans(self, text: str, *, is_query: bool) -> list[tuple[str, Span | None]]:
        """One ``(token, (start, end) or None)`` per vector ``_encode`` returns for ``text``."""
        ...


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


@dataclass(frozen=True)
class _Side:
    """The vectors of one text and, aligned with them, token texts, spans and flags."""

    vectors: np.ndarray
    tokens: list[str]
    spans: list[Span | None]
    special: list[bool]
    expansion: list[bool]


def explain(encoder: BaseEncoder, query: str, document: str) -> Explanation:
    """Which document token each query token matched, where it is and what it adds.

    Parameters
    ----------
    encoder
        An :class:`~latecore.encoder.Encoder`, or an encoder with a
        ``token_spans`` method (such as ``latecore.testing.FakeEncoder``).
    query, document
        The texts. Spans are character offsets into these very strings.

    Returns
    -------
    Explanation
        One :class:`TokenMatch` per query vector, in query order; their
        contributions sum to ``maxsim(encoder.encode_queries([query])[0],
        encoder.encode_documents([document]))`` within float32 rounding. Document
        vectors are rounded to the encoder's storage dtype, as a cached encoder's are.

    Raises
    ------
    TypeError
        If the encoder is neither an ``Encoder`` nor has ``token_spans``.

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
    if isinstance(encoder, Encoder):
        with encoder._model_lock:
            query_side = _colbert_side(encoder, query, is_query=True)
            document_side = _colbert_side(encoder, document, is_query=False)
    elif isinstance(encoder, TokenSpans) and isinstance(encoder, BaseEncoder):
        query_side = _generic_side(encoder, query, is_query=True)
        document_side = _generic_side(encoder, document, is_query=False)
    else:
        raise TypeError(
            f"explain needs token offsets, which {type(encoder).__name__} does not give: pass a "
            "latecore.Encoder, or give the encoder a token_spans(text, *, is_query) method"
        )
    storage = np.dtype(encoder.storage_dtype)
    document_vectors = document_side.vectors.astype(storage).astype(np.float32)
    return _match(query, document, query_side, document_side, document_vectors)


def _match(
    query: str, document: str, q: _Side, d: _Side, document_vectors: np.ndarray
) -> Explanation:
    if q.vectors.shape[0] == 0 or document_vectors.shape[0] == 0:
        return Explanation(query, document, 0.0, ())
    similarities = q.vectors @ document_vectors.T
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


def _generic_side(encoder: Any, text: str, *, is_query: bool) -> _Side:
    encode = encoder.encode_queries if is_query else encoder.encode_documents
    vectors = np.asarray(encode([text])[0], dtype=np.float32)
    labels = encoder.token_spans(clean_text(text), is_query=is_query)
    if len(labels) != vectors.shape[0]:
        raise ValueError(
            f"{type(encoder).__name__}.token_spans gave {len(labels)} tokens for "
            f"{vectors.shape[0]} vectors; it must label every vector of the text"
        )
    return _Side(
        vectors=vectors,
        tokens=[token for token, _ in labels],
        spans=[span for _, span in labels],
        special=[span is None for _, span in labels],
        expansion=[False] * len(labels),
    )


def _colbert_side(encoder: Encoder, text: str, *, is_query: bool) -> _Side:
    """Vectors, tokens and spans of ``text`` exactly as the encoder encodes it (lock held)."""
    model = encoder.model
    cleaned = encoder.model_text(text)
    out: dict[str, Any] = model.encode(  # type: ignore[assignment]
        [cleaned],
        is_query=is_query,
        output_value=None,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    input_ids = [int(i) for i in out["input_ids"][0]]
    keep = np.asarray(out["masks"][0], dtype=bool)
    embeddings = np.asarray(out["token_embeddings"][0], dtype=np.float32)
    spans, n_real = _offsets(model, cleaned, input_ids, is_query=is_query)
    tokenizer = model.tokenizer
    prefix_id = model.query_prefix_id if is_query else model.document_prefix_id
    special_ids = set(tokenizer.all_special_ids) | ({prefix_id} if prefix_id is not None else set())
    tokens = tokenizer.convert_ids_to_tokens(input_ids)
    positions = np.flatnonzero(keep).tolist()
    return _Side(
        vectors=np.ascontiguousarray(embeddings[keep]),
        tokens=[tokens[p] for p in positions],
        spans=[spans[p] for p in positions],
        special=[p < n_real and input_ids[p] in special_ids for p in positions],
        expansion=[p >= n_real for p in positions],
    )


def _offsets(
    model: ColBERT, text: str, input_ids: Sequence[int], *, is_query: bool
) -> tuple[list[Span | None], int]:
    """Character spans in ``text`` of each of pylate's input ids, and how many are real.

    pylate tokenizes the stripped (and, if its module says so, lowercased) text,
    optionally after a prompt, truncates to the role's length minus one, then
    inserts the marker token after the first one; positions past the real tokens
    are query-expansion padding.
    """
    tokenizer = model.tokenizer
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError(
            "explain needs character offsets, which only a fast (Rust) tokenizer gives; "
            f"{type(tokenizer).__name__} is not one"
        )
    module = model._first_module()
    lead = len(text) - len(text.lstrip())
    body = text.strip()
    if getattr(module, "do_lower_case", False):
        lowered = body.lower()
        body = lowered if len(lowered) == len(body) else body
    prompt = model.prompts.get(model.default_prompt_name) if model.default_prompt_name else None
    prompt = prompt or ""
    prefix_id = model.query_prefix_id if is_query else model.document_prefix_id
    length = int((model.query_length if is_query else model.document_length) or 0)
    encoded = tokenizer(
        prompt + body,
        return_offsets_mapping=True,
        truncation="longest_first",
        max_length=length - 1 if prefix_id is not None else length,
    )
    ids = list(encoded["input_ids"])
    spans: list[Span | None] = [
        (start - len(prompt) + lead, end - len(prompt) + lead)
        if end > start and start >= len(prompt)
        else None
        for start, end in encoded["offset_mapping"]
    ]
    if prefix_id is not None:
        ids = [*ids[:1], prefix_id, *ids[1:]]
        spans = [*spans[:1], None, *spans[1:]]
    if list(input_ids[: len(ids)]) != ids:
        raise ValueError(
            "could not align the tokenizer's offsets with the model's input ids for "
            f"{text[:40]!r}; explain supports tokenizers that pylate calls without extra "
            "preprocessing"
        )
    spans.extend([None] * (len(input_ids) - len(ids)))
    return spans, len(ids)


def _marked_spans(
    explanation: Explanation, min_similarity: float | None, include_special: bool
) -> list[tuple[int, int, list[TokenMatch]]]:
    """Matched document spans, merged where they touch, with the matches behind each."""
    spans: dict[Span, list[TokenMatch]] = {}
    for match in explanation.matches:
        if match.document_span is None:
            continue
        if not include_special and (match.is_special or match.is_expansion):
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


def highlight(
    explanation: Explanation,
    style: Style = "ansi",
    *,
    min_similarity: float | None = None,
    include_special: bool = False,
) -> str:
    """The explained document with the spans the query matched marked.

    Parameters
    ----------
    explanation
        From :func:`explain`.
    style
        ``"ansi"``: bold yellow for a terminal. ``"html"``: ``<mark>`` elements
        (title: which query tokens matched, and how well) inside a ``<div>``, with
        all text HTML-escaped, for a notebook. ``"text"``: ``**bold**`` markers.
    min_similarity
        Mark only matches at least this similar.
    include_special
        Also mark what special and expansion query tokens matched (noise, mostly).

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
    title="fish (1.000)">fish</mark>&lt;/b&gt; <mark title="&amp; (1.000)">&amp;</mark>
    <mark title="chips (1.000)">chips</mark></div>
    >>> highlight(explanation, "ansi") == (
    ...     "<b>\\x1b[1;33mfish\\x1b[0m</b> \\x1b[1;33m&\\x1b[0m \\x1b[1;33mchips\\x1b[0m")
    True
    """
    if style not in ("ansi", "html", "text"):
        raise ValueError(f"style must be 'ansi', 'html' or 'text', got {style!r}")
    document = explanation.document
    parts: list[str] = []
    cursor = 0
    escape = html.escape if style == "html" else str
    for start, end, matches in _marked_spans(explanation, min_similarity, include_special):
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
