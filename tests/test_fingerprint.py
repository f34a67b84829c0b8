"""Fingerprints: every input that can change the vectors changes the fingerprint and the keys."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import load_quietly

from latecore import Encoder, MultivectorCache, cache_key
from latecore.testing import FakeEncoder, write_tiny_bert_checkpoint


def _key(encoder: Encoder | FakeEncoder) -> bytes:
    return cache_key(encoder.fingerprint, "document", "the same text")


def test_each_real_input_changes_the_key(tiny_checkpoint: Path, tmp_path: Path) -> None:
    base = load_quietly(tiny_checkpoint)
    variants = {
        "model path": load_quietly(write_tiny_bert_checkpoint(tmp_path / "other", seed=1)),
        "document length": load_quietly(tiny_checkpoint, document_length=64),
        "query length": load_quietly(tiny_checkpoint, query_length=16),
        "query expansion": load_quietly(tiny_checkpoint, do_query_expansion=True),
        "output dim": load_quietly(write_tiny_bert_checkpoint(tmp_path / "wide", hidden_size=48)),
        "storage dtype float16": base.with_cache(MultivectorCache(tmp_path / "c16")),
    }
    keys = {name: _key(encoder) for name, encoder in variants.items()}
    keys["base"] = _key(base)
    assert len(set(keys.values())) == len(keys), keys
    # a float32 cache returns exactly what an uncached encoder returns: same vectors, same key
    float32 = base.with_cache(MultivectorCache(tmp_path / "c32", dtype="float32"))
    assert _key(float32) == keys["base"] != keys["storage dtype float16"]


def test_prefix_is_part_of_the_fingerprint(tiny_checkpoint: Path) -> None:
    encoder = load_quietly(tiny_checkpoint)
    before = _key(encoder)
    encoder.model.document_prefix = "[unused2]"
    encoder.__dict__.pop("fingerprint", None)
    assert _key(encoder) != before


def test_a_changed_weight_byte_changes_the_fingerprint(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_checkpoint, copy)
    same = load_quietly(copy)
    assert same.fingerprint == load_quietly(tiny_checkpoint).fingerprint
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    assert load_quietly(copy).fingerprint != same.fingerprint


@pytest.mark.parametrize(
    "field",
    [
        "model_id",
        "revision",
        "content_hash",
        "query_prefix",
        "document_length",
        "skiplist",
        "output_dim",
        "normalize",
        "pooling",
        "prompts",
        "storage_dtype",
        "versions",
    ],
)
def test_every_listed_field_is_covered(tiny_encoder: Encoder, field: str) -> None:
    assert field in tiny_encoder.fingerprint_fields


def test_fake_encoders_with_different_settings_differ() -> None:
    assert FakeEncoder(dim=8).fingerprint != FakeEncoder(dim=16).fingerprint
    assert FakeEncoder(name="a").fingerprint != FakeEncoder(name="b").fingerprint
    assert FakeEncoder().fingerprint == FakeEncoder().fingerprint
