"""Encoding at speed: length-sorted batches, the opt-in int8 model, progress and rates.

No timing assertions here (``benchmarks/bench_encode.py`` measures speed): these
tests pin what speed must not change.
"""

from __future__ import annotations

import copy
import statistics
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import load_quietly

import latecore.encoder as encoder_module
from latecore import Encoder, LateIndex, MultivectorCache, ZeroShotWarning, cache_key
from latecore.base_encoder import EncodeStats
from latecore.cli import main
from latecore.evaluate import evaluate, load_eval_set
from latecore.testing import FakeEncoder, write_checkpoint

WORDS = ["the", "cat", "sat", "on", "a", "mat", "while", "river", "water", "ran", "past", "old"]
LENGTHS = [3, 41, 1, 26, 0, 12, 60, 7, 2, 33]  # words; shuffled so input order is not sorted


def _texts() -> list[str]:
    return [" ".join(WORDS[i % len(WORDS)] for i in range(n)) for n in LENGTHS]


def _with(encoder: Encoder, **attributes: Any) -> Encoder:
    """A shallow copy (same model and lock) with some attributes changed."""
    clone = copy.copy(encoder)
    for name, value in attributes.items():
        setattr(clone, name, value)
    return clone


def _assert_same_vectors(got: list[np.ndarray], expected: list[np.ndarray], atol: float) -> None:
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, atol=atol, rtol=0)


@pytest.fixture(scope="module")
def expanding_encoder(tmp_path_factory: pytest.TempPathFactory) -> Encoder:
    """A trained-layout checkpoint: projection head and query expansion."""
    spec = write_checkpoint("sentence-transformers", tmp_path_factory.mktemp("st"))
    encoder = load_quietly(spec.path)
    assert encoder.model.do_query_expansion
    return encoder


@pytest.fixture(scope="module")
def tiny_int8(tiny_checkpoint: Path) -> Encoder:
    return load_quietly(tiny_checkpoint, quantize="int8")


def test_batches_are_sorted_by_length_and_vectors_return_in_input_order(
    tiny_encoder: Encoder,
) -> None:
    encoder = _with(tiny_encoder, batch_size=3)
    texts = _texts()
    lengths = [encoder.model.tokenize([t], is_query=False)["input_ids"].shape[1] for t in texts]
    shapes: list[tuple[int, int]] = []
    hook = encoder.model[0].register_forward_pre_hook(
        lambda _module, args: shapes.append(tuple(args[0]["input_ids"].shape))
    )
    try:
        batched = encoder.encode_documents(texts)
    finally:
        hook.remove()
    longest_first = sorted(lengths, reverse=True)
    expected = [(len(longest_first[i : i + 3]), longest_first[i]) for i in range(0, 10, 3)]
    in_input_order = [(len(lengths[i : i + 3]), max(lengths[i : i + 3])) for i in range(0, 10, 3)]
    assert shapes == expected != in_input_order  # each batch padded only to its own longest
    one_by_one = [encoder.encode_documents([t])[0] for t in texts]
    _assert_same_vectors(batched, one_by_one, atol=1e-5)


def test_sort_windows_keep_input_order(
    tiny_encoder: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoder = _with(tiny_encoder, batch_size=2)
    texts = _texts()
    whole = encoder.encode_documents(texts)
    monkeypatch.setattr(encoder_module, "SORT_WINDOW", 4)
    _assert_same_vectors(encoder.encode_documents(texts), whole, atol=1e-5)


@pytest.mark.filterwarnings("ignore:.*were truncated")
def test_batched_queries_and_documents_equal_one_by_one_on_real_and_expanding_models(
    minilm_encoder: Encoder, expanding_encoder: Encoder
) -> None:
    texts = _texts()
    for model in (minilm_encoder, expanding_encoder):
        encoder = _with(model, batch_size=4)
        for encode in (encoder.encode_documents, encoder.encode_queries):
            _assert_same_vectors(encode(texts), [encode([t])[0] for t in texts], atol=1e-5)
    queries = expanding_encoder.encode_queries(texts)
    assert {len(q) for q in queries} == {expanding_encoder.model.query_length}


def test_int8_changes_the_fingerprint_and_every_cache_key(
    tiny_encoder: Encoder, tiny_int8: Encoder
) -> None:
    assert tiny_int8.fingerprint != tiny_encoder.fingerprint
    assert tiny_int8.fingerprint_fields["quantize"]["dtype"] == "int8"
    assert "quantize" not in tiny_encoder.fingerprint_fields  # float32 keys stay as they were
    for role in ("document", "query"):
        for text in _texts():
            assert cache_key(tiny_int8.fingerprint, role, text) != cache_key(
                tiny_encoder.fingerprint, role, text
            )
    assert tiny_int8.describe()["quantize"] == "int8"
    assert tiny_encoder.describe()["quantize"] is None
    assert "quantize='int8'" in repr(tiny_int8)
    assert tiny_int8.describe()["device"] == "cpu"


def test_int8_and_float32_sharing_a_cache_directory_never_read_each_other(
    tiny_encoder: Encoder, tiny_int8: Encoder, tmp_path: Path
) -> None:
    texts = _texts()
    directory = tmp_path / "shared"
    with MultivectorCache(directory) as first, MultivectorCache(directory) as second:
        floats = tiny_encoder.with_cache(first).encode_documents(texts)
        int8 = tiny_int8.with_cache(second)
        quantized = int8.encode_documents(texts)
        assert second.stats().hits == 0 and second.stats().misses == len(texts)
        own = [a.astype(np.float16).astype(np.float32) for a in tiny_int8.encode_documents(texts)]
        assert all(a.tobytes() == b.tobytes() for a, b in zip(quantized, own, strict=True))
        assert any(a.tobytes() != b.tobytes() for a, b in zip(quantized, floats, strict=True))
        assert int8.encode_documents(texts)[3].tobytes() == quantized[3].tobytes()
        assert second.stats().hits == len(texts)
        before = first.stats()
        again = tiny_encoder.with_cache(first).encode_documents(texts)
        assert first.stats().hits - before.hits == len(texts)
        assert all(a.tobytes() == b.tobytes() for a, b in zip(again, floats, strict=True))


def test_int8_is_refused_where_it_does_not_apply(
    tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValueError, match="CPU only"):
        Encoder(tiny_checkpoint, device="cuda", quantize="int8")
    with pytest.raises(ValueError, match="quantize must be None or 'int8', got 'int4'"):
        Encoder(tiny_checkpoint, quantize="int4")  # type: ignore[arg-type]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # no device given: the CPU
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ZeroShotWarning)
        assert Encoder(tiny_checkpoint, quantize="int8").describe()["device"] == "cpu"


def test_int8_linear_scales_the_first_token_apart_and_leaves_its_input_intact() -> None:
    from latecore._int8 import Int8Linear, _has_vnni

    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 48)
    x = torch.randn(4, 12, 64)
    x[:, 0] *= 40  # an attention sink's massive activations
    # 8-bit activations only where the CPU has VNNI, as quantize="int8" chooses: without
    # it the full-range kernels overflow (10% error here on an AMD EPYC without VNNI).
    layer = Int8Linear(linear, reduce_range=not _has_vnni())
    before = x.clone()
    with torch.inference_mode():
        y = layer(x)
        reference = linear(x)
        one_scale = torch.ops.quantized.linear_dynamic(x, layer._packed, layer.reduce_range)
        flat = layer(x[:, 3])
    assert torch.equal(x, before)

    def error(a: torch.Tensor) -> float:
        return float((a - reference[:, 1:]).norm() / reference[:, 1:].norm())

    assert error(y[:, 1:]) < 0.02
    assert error(one_scale[:, 1:]) > 3 * error(y[:, 1:])
    assert float((y[:, 0] - reference[:, 0]).norm() / reference[:, 0].norm()) < 0.02
    torch.testing.assert_close(flat, y[:, 3], rtol=0.05, atol=0.05)


def test_int8_minilm_ranks_like_float32_for_queries_and_documents(
    minilm_encoder: Encoder, minilm_path: Path
) -> None:
    int8 = load_quietly(minilm_path, quantize="int8")
    assert int8.quantize_scheme is not None and int8.quantize_scheme["layers"] >= 36
    docs, queries, qrels = load_eval_set("general")
    scores, tops = {}, {}
    for name, encoder in (("float32", minilm_encoder), ("int8", int8)):
        index = LateIndex(encoder)
        index.add(list(docs.values()), ids=list(docs))
        scores[name] = evaluate(index, queries, qrels, k=10).metrics["nDCG@10"]
        tops[name] = [{h.id for h in hits} for hits in index.search_batch(list(queries.values()))]
    assert abs(scores["int8"] - scores["float32"]) <= 0.02
    overlap = [len(a & b) / 10 for a, b in zip(tops["float32"], tops["int8"], strict=True)]
    assert statistics.fmean(overlap) >= 0.9
    # Queries go through the int8 model too: close to float32, not equal.
    (q8,) = int8.encode_queries(["why is the sky blue"])
    (q32,) = minilm_encoder.encode_queries(["why is the sky blue"])
    cosines = (q8 * q32).sum(axis=1)
    assert q8.shape == q32.shape and cosines.min() > 0.9 and not np.allclose(q8, q32, atol=1e-4)


def test_progress_shows_rate_and_eta_only_when_enabled(
    tiny_encoder: Encoder,
    tiny_checkpoint: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    texts = _texts()
    shown = _with(tiny_encoder, batch_size=2, show_progress=True)
    capsys.readouterr()
    shown.encode_documents(texts)
    err = capsys.readouterr().err
    assert "Encoding documents" in err and f"{len(texts)}/{len(texts)}" in err
    assert "doc/s" in err and "<00:00" in err  # a rate and a time left
    LateIndex(shown).add(texts)  # a bulk add shows it too
    assert "Encoding documents" in capsys.readouterr().err

    shown.encode_documents(texts[:2])  # one batch: no bar
    _with(tiny_encoder, batch_size=2, show_progress=False).encode_documents(texts)
    assert capsys.readouterr().err == ""

    for setting, visible in (("0", False), ("1", True)):
        monkeypatch.setenv("LATECORE_PROGRESS", setting)
        encoder = load_quietly(tiny_checkpoint, batch_size=2)
        capsys.readouterr()
        encoder.encode_documents(texts)
        assert ("doc/s" in capsys.readouterr().err) is visible


def test_encode_stats_count_model_work_not_cache_hits(
    tiny_encoder: Encoder, tmp_path: Path
) -> None:
    texts = _texts()
    with MultivectorCache(tmp_path / "cache") as cache:
        encoder = tiny_encoder.with_cache(cache)
        start = encoder.encode_stats()
        encoder.encode_documents(texts + texts[:3])  # repeats are encoded once
        encoder.encode_documents(texts)  # all hits
        encoder.encode_queries(["a cat", "the mat", "river", "old town"])
        done = encoder.encode_stats() - start
    assert (done.documents, done.queries) == (len(texts), 4)
    assert done.document_seconds > 0 and done.documents_per_second > 0
    assert tiny_encoder.encode_stats().documents >= done.documents  # copies share the count
    assert EncodeStats().documents_per_second == 0.0
    fake = FakeEncoder()
    fake.encode_documents(["a", "b"])
    assert fake.encode_stats().documents == 2


def test_the_command_prints_the_encode_rate(
    tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "notes.txt").write_text("\n\n".join(_texts()[:6]), encoding="utf-8")
    argv = ["search", str(folder), "--query", "cat on a mat", "--model", str(tiny_checkpoint)]
    assert main([*argv, "--cache-dir", str(tmp_path / "cache"), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert " encoded at " in err and " docs/s (cache: " in err
    assert main([*argv, "--cache-dir", str(tmp_path / "cache"), "--no-progress"]) == 0
    assert "0 encoded (cache: " in capsys.readouterr().err  # nothing encoded, no rate
