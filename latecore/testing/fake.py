"""A deterministic, dependency-free encoder for tests and examples: :class:`FakeEncoder`.

It has the interface of :class:`~latecore.encoder.Encoder` (caching, batching,
fingerprint) without a model: each word maps to a fixed random unit vector
derived from its SHA-256, so documents sharing words with a query score higher.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import numpy as np

from ..base_encoder import BaseEncoder
from ..batching import DEFAULT_MAX_BATCH
from ..caches import CacheLocation, DocumentCache

__all__ = ["FakeEncoder"]

_WORD = re.compile(r"\w+|[^\w\s]")


def _word_vector(word: str, dim: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(word.encode("utf-8", "surrogatepass")).digest()[:8], "big")
    vector = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return vector / np.linalg.norm(vector)


class FakeEncoder(BaseEncoder):
    """Deterministic hash-based encoder for tests: one unit vector per lowercased word.

    A query or document gets a marker vector followed by one vector per word or
    punctuation mark (the marker keeps empty texts non-empty). It counts its
    model calls in :attr:`calls`, and records the document texts it encoded in
    :attr:`encoded` and the query texts in :attr:`encoded_queries`.

    Examples
    --------
    >>> enc = FakeEncoder(dim=8)
    >>> [v.shape for v in enc.encode_documents(["two words", ""])]
    [(3, 8), (1, 8)]
    >>> enc.calls, enc.encoded
    (1, ['two words', ''])
    """

    def __init__(
        self,
        dim: int = 32,
        *,
        cache: DocumentCache | CacheLocation | None = None,
        batch_size: int = 32,
        name: str = "fake",
        max_batch: int = DEFAULT_MAX_BATCH,
        batch_wait_ms: float = 0.0,
        pool_factor: int = 1,
    ) -> None:
        super().__init__(
            cache=cache,
            batch_size=batch_size,
            show_progress=False,
            max_batch=max_batch,
            batch_wait_ms=batch_wait_ms,
            pool_factor=pool_factor,
        )
        self.dim = dim
        self.name = name
        self.calls = 0
        self.encoded: list[str] = []
        self.encoded_queries: list[str] = []

    @property
    def model_name(self) -> str:
        return f"FakeEncoder:{self.name}"

    def _model_fingerprint_fields(self) -> dict[str, Any]:
        return {"model_id": f"latecore.testing.FakeEncoder:{self.name}", "output_dim": self.dim}

    def tokens(self, text: str) -> list[str]:
        """The words and punctuation marks of ``text``, lowercased."""
        return [w.lower() for w in _WORD.findall(text)]

    def token_spans(self, text: str, *, is_query: bool) -> list[tuple[str, tuple[int, int] | None]]:
        """Each output vector's token and character span: the marker (no span), then the words.

        This is what lets :func:`latecore.explain` work with the fake encoder.

        Examples
        --------
        >>> FakeEncoder().token_spans("Hi, you", is_query=True)
        [('[Q]', None), ('hi', (0, 2)), (',', (2, 3)), ('you', (4, 7))]
        """
        marker: tuple[str, tuple[int, int] | None] = ("[Q]" if is_query else "[D]", None)
        return [marker] + [(m.group().lower(), m.span()) for m in _WORD.finditer(text)]

    def _encode(self, texts: list[str], *, is_query: bool) -> list[np.ndarray]:
        self.calls += 1
        (self.encoded_queries if is_query else self.encoded).extend(texts)
        marker = _word_vector("[Q]" if is_query else "[D]", self.dim)
        return [
            np.stack([marker] + [_word_vector(w, self.dim) for w in self.tokens(t)]) for t in texts
        ]
