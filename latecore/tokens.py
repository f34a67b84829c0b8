"""The token-level view of an encoded text, behind :func:`latecore.explain`.

:meth:`BaseEncoder.encode_with_tokens <latecore.base_encoder.BaseEncoder.encode_with_tokens>`
returns one :class:`TokenizedText` per text: each token vector with its token,
its character span and what kind of token it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Span", "TokenizedText"]

Span = tuple[int, int]
"""``(start, end)`` character offsets: ``text[start:end]`` is a token's surface form."""


@dataclass(frozen=True, eq=False)
class TokenizedText:
    """One text as the model scores it: its token vectors and what each one stands for.

    Every per-token field is aligned with the rows of :attr:`vectors`. Returned by
    :meth:`BaseEncoder.encode_with_tokens`.

    Attributes
    ----------
    text
        The string the model saw (:meth:`BaseEncoder.model_text` of the input): the
        input with lone surrogates replaced and possibly cut short, so offsets into
        it are offsets into the input as well.
    vectors
        The token vectors, float32, as ``encode_queries`` / ``encode_documents``
        return them. Shape: ``(n_tokens, dim)``.
    tokens
        Each vector's token as the tokenizer spells it (``"paris"``, ``"##ing"``,
        ``"[CLS]"``, ``"[MASK]"``).
    spans
        Each token's ``(start, end)`` in :attr:`text`; ``None`` for markers, special
        tokens and expansion tokens, which have no text of their own.
    special
        Whether each token is a marker or special token (``[CLS]``, ``[SEP]``, the
        query or document marker).
    expansion
        Whether each token is a ``[MASK]`` added by query augmentation.
    groups
        For a pooled document (``pool_factor`` above 1, :mod:`latecore.pooling`):
        the positions, in the unpooled token sequence, of the tokens each vector
        pools; its token then joins theirs with ``" + "`` and its span runs from
        the first of their spans to the last. ``None`` when nothing was pooled.
    """

    text: str
    vectors: np.ndarray
    tokens: tuple[str, ...]
    spans: tuple[Span | None, ...]
    special: tuple[bool, ...]
    expansion: tuple[bool, ...]
    groups: tuple[tuple[int, ...], ...] | None = None

    def __post_init__(self) -> None:
        n = self.vectors.shape[0]
        lengths = {len(self.tokens), len(self.spans), len(self.special), len(self.expansion)}
        if lengths != {n}:
            raise ValueError(
                f"TokenizedText needs one token, span and flag per vector: {n} vectors, "
                f"{len(self.tokens)} tokens, {len(self.spans)} spans, {len(self.special)} "
                f"special and {len(self.expansion)} expansion flags"
            )
