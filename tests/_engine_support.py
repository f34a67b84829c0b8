"""What the engine backends' test modules (qdrant, lancedb) share: a real corpus, checks."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from latecore.base_encoder import BaseEncoder
from latecore.documents import sample_corpus_path
from latecore.encoder import Encoder

QUERIES = [
    "why does the earth have seasons",
    "how does the sun produce energy",
    "what causes the tides of the ocean",
    "how do vaccines train the immune system",
    "what is photosynthesis in plants",
    "who invented the printing press",
    "how do volcanoes erupt",
    "what is the speed of light",
    "how does compound interest grow savings",
    "why is the sky blue",
    "how do neural networks learn",
    "what makes bread rise",
]

ReplayCorpus = tuple[list[str], list[str], "ReplayEncoder"]
"""The bundled sample corpus's ids and texts, and an encoder replaying MiniLM's vectors."""


class ReplayEncoder(BaseEncoder):
    """Answers with vectors encoded once per session (MiniLM's), by text."""

    def __init__(self, vectors: Mapping[tuple[bool, str], np.ndarray]) -> None:
        super().__init__(show_progress=False)
        self._vectors = vectors

    def _model_fingerprint_fields(self) -> dict[str, object]:
        return {"model_id": "tests.ReplayEncoder(all-MiniLM-L6-v2)"}

    def _encode(self, texts: list[str], *, is_query: bool) -> list[np.ndarray]:
        return [self._vectors[is_query, text] for text in texts]


def replay_sample_corpus(encoder: Encoder) -> ReplayCorpus:
    """The bundled sample corpus and :data:`QUERIES`, each encoded once by ``encoder``."""
    records = [json.loads(line) for line in sample_corpus_path().read_text("utf-8").splitlines()]
    ids = [r["id"] for r in records]
    texts = [r["text"] for r in records]
    documents = encoder.encode_documents(texts)
    queries = encoder.encode_queries(QUERIES)
    vectors = {(False, t): v for t, v in zip(texts, documents, strict=True)}
    vectors.update({(True, q): v for q, v in zip(QUERIES, queries, strict=True)})
    return ids, texts, ReplayEncoder(vectors)


def assert_same_hits(got: Sequence[Any], expected: Sequence[Any], *, abs: float = 1e-4) -> None:
    assert [h.id for h in got] == [h.id for h in expected]
    assert [h.score for h in got] == pytest.approx([h.score for h in expected], abs=abs)
    assert [(h.text, h.metadata) for h in got] == [(h.text, h.metadata) for h in expected]


def word_corpus(n: int, seed: int) -> tuple[list[str], list[str]]:
    """``n`` texts of 6-20 words of a 300-word vocabulary, each with one unique word."""
    rng = np.random.default_rng(seed)
    texts = [
        " ".join(
            [f"u{seed}x{i}", *rng.choice([f"w{j}" for j in range(300)], int(rng.integers(6, 21)))]
        )
        for i in range(n)
    ]
    return texts, [f"doc-{seed}-{i}" for i in range(n)]


def assert_no_pickles(directory: Path) -> list[Path]:
    """No file under ``directory`` is named or starts like a pickle (protocol 4 or 5).

    Returns the files checked (there must be some).
    """
    files = [p for p in directory.rglob("*") if p.is_file()]
    assert files
    assert not [p for p in files if p.suffix in {".pkl", ".pickle"}]
    pickled = [p for p in files if p.read_bytes()[:2] in {b"\x80\x04", b"\x80\x05"}]
    assert not pickled, pickled
    return files
