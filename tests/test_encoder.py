"""Encoder: loading, zero-shot determinism, caching, thread safety, input handling."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import load_quietly

from latecore import Encoder, ModelLoadError, MultivectorCache, ZeroShotWarning
from latecore.base_encoder import BaseEncoder
from latecore.errors import LatecoreWarning
from latecore.maxsim import maxsim
from latecore.testing import FakeEncoder, write_tiny_bert_checkpoint
from latecore.tokens import TokenizedText

_ENCODE_IN_SUBPROCESS = """
import sys, warnings, numpy as np
warnings.simplefilter("ignore")
from latecore import Encoder
encoder = Encoder(sys.argv[1], device="cpu")
vectors = encoder.encode_documents(["Paris is the capital of France.", "the river and the sea"])
vectors += encoder.encode_queries(["what is the capital of france"])
np.savez(sys.argv[2], *vectors)
print(encoder.fingerprint)
"""


def _encode_in_two_processes(model: Path, tmp_path: Path) -> tuple[list[np.ndarray], list[str]]:
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", _ENCODE_IN_SUBPROCESS, str(model), str(tmp_path / f"{i}.npz")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    fingerprints = []
    for run in runs:
        out, err = run.communicate(timeout=300)
        assert run.returncode == 0, err[-2000:]
        fingerprints.append(out.strip().splitlines()[-1])
    loaded = [np.load(tmp_path / f"{i}.npz") for i in range(2)]
    arrays = [loaded[i][f"arr_{j}"] for i in range(2) for j in range(3)]
    return arrays, fingerprints


@pytest.mark.slow
def test_two_processes_give_bit_identical_vectors_tiny(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    arrays, fingerprints = _encode_in_two_processes(tiny_checkpoint, tmp_path)
    for first, second in zip(arrays[:3], arrays[3:], strict=True):
        assert first.tobytes() == second.tobytes()
    assert fingerprints[0] == fingerprints[1]


@pytest.mark.slow
def test_two_processes_give_bit_identical_vectors_minilm(
    minilm_path: Path, minilm_encoder: Encoder, tmp_path: Path
) -> None:
    arrays, fingerprints = _encode_in_two_processes(minilm_path, tmp_path)
    for first, second in zip(arrays[:3], arrays[3:], strict=True):
        assert first.tobytes() == second.tobytes()
    # ... and equal to this process's vectors for the same batch of texts (the batch
    # matters at the last bit: texts are padded to the longest one in their batch)
    here = minilm_encoder.encode_documents(
        ["Paris is the capital of France.", "the river and the sea"]
    )
    assert here[0].tobytes() == arrays[0].tobytes()
    assert fingerprints == [minilm_encoder.fingerprint] * 2


def test_zero_shot_load_warns_and_initialises_nothing_randomly(tiny_checkpoint: Path) -> None:
    with pytest.warns(ZeroShotWarning, match="zero-shot"):
        encoder = Encoder(tiny_checkpoint, device="cpu")
    model = encoder.model
    projection = model[-1].linear.weight.detach()
    assert torch.equal(projection, torch.eye(projection.shape[0]))
    vocab_size = json.loads((tiny_checkpoint / "config.json").read_text())["vocab_size"]
    assert model[0].auto_model.get_input_embeddings().weight.shape[0] == vocab_size
    assert (model.query_prefix, model.document_prefix) == ("[unused0]", "[unused1]")
    assert model.do_query_expansion is False
    assert encoder.describe()["zero_shot"] is True


def test_checkpoint_without_unused_tokens_gets_deterministic_prefix_rows(tmp_path: Path) -> None:
    path = write_tiny_bert_checkpoint(tmp_path / "plain", with_unused_tokens=False)
    first, second = load_quietly(path), load_quietly(path)
    assert first.prefix_source == "mean token embedding"
    a = first.encode_documents(["the city of paris"])[0]
    b = second.encode_documents(["the city of paris"])[0]
    assert a.tobytes() == b.tobytes()


def test_outputs_are_float32_normalised_multivectors(tiny_encoder: Encoder) -> None:
    docs = tiny_encoder.encode_documents(["the cat", "", "   ", "paris is in france"])
    assert len(docs) == 4
    for array in docs:
        assert array.dtype == np.float32 and array.ndim == 2 and array.shape[0] >= 1
        assert array.shape[1] == tiny_encoder.dim
        np.testing.assert_allclose(np.linalg.norm(array, axis=1), 1.0, rtol=1e-5)
    assert tiny_encoder.encode_documents([]) == []
    assert tiny_encoder.encode_queries([]) == []
    (query,) = tiny_encoder.encode_queries([""])
    assert query.shape[0] >= 1


def test_lone_surrogates_are_replaced_identically(tiny_encoder: Encoder) -> None:
    broken, replaced = tiny_encoder.encode_documents(["cat \ud800 dog", "cat \ufffd dog"])
    assert broken.tobytes() == replaced.tobytes()


def test_bad_input_types_are_rejected(fake_encoder: FakeEncoder) -> None:
    with pytest.raises(TypeError, match="wrap a single text"):
        fake_encoder.encode_documents("not a list")
    with pytest.raises(TypeError, match="text 1"):
        fake_encoder.encode_queries(["ok", 3])  # type: ignore[list-item]


def _count_forward(encoder: Encoder, monkeypatch: pytest.MonkeyPatch) -> Callable[[], int]:
    """Count forward passes of the transformer (the model's first module)."""
    calls = 0
    transformer = encoder.model[0]
    original = transformer.forward

    def counting_forward(*args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(transformer, "forward", counting_forward)
    return lambda: calls


def test_second_pass_over_200_documents_runs_no_forward_pass(
    minilm_encoder: Encoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = [f"Passage {i}: the {i % 7}th river flows past city number {i}." for i in range(200)]
    encoder = minilm_encoder.with_cache(MultivectorCache(tmp_path / "cache"))
    forward_calls = _count_forward(encoder, monkeypatch)
    first = encoder.encode_documents(texts)
    assert forward_calls() > 0
    before = forward_calls()
    # a fresh cache object on the same directory: hits come from disk, not the hot tier
    reopened = minilm_encoder.with_cache(MultivectorCache(tmp_path / "cache"))
    second = reopened.encode_documents(texts)
    assert forward_calls() == before
    assert all(a.tobytes() == b.tobytes() for a, b in zip(first, second, strict=True))


def test_misses_are_encoded_once_in_one_batched_call(cache: MultivectorCache) -> None:
    encoder = FakeEncoder(cache=cache)
    encoder.encode_documents(["a", "b"])
    encoder.encode_documents(["a", "c", "d", "c", "b"])
    assert encoder.calls == 2
    assert encoder.encoded == ["a", "b", "c", "d"]


def test_cached_and_uncached_scores_agree_within_1e3(
    minilm_encoder: Encoder, cache: MultivectorCache
) -> None:
    texts = ["Paris is the capital of France.", "Berlin is the capital of Germany."]
    query = minilm_encoder.encode_queries(["capital of France"])[0]
    exact = maxsim(query, minilm_encoder.encode_documents(texts))
    stored = maxsim(query, minilm_encoder.with_cache(cache).encode_documents(texts))
    np.testing.assert_allclose(stored, exact, atol=1e-3)


def test_concurrent_encodes_equal_sequential_ones(tiny_encoder: Encoder) -> None:
    queries = [f"where is paris {'city ' * i}" for i in range(8)]
    documents = [f"paris is the capital of france {'river ' * 40 * i}" for i in range(8)]
    expected_q = tiny_encoder.encode_queries(queries)
    expected_d = tiny_encoder.encode_documents(documents)
    results: dict[int, list[np.ndarray]] = {}

    def work(i: int) -> None:
        if i % 2:
            results[i] = tiny_encoder.encode_queries(queries)
        else:
            results[i] = tiny_encoder.encode_documents(documents)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, got in results.items():
        want = expected_q if i % 2 else expected_d
        assert [a.shape for a in got] == [a.shape for a in want]
        for a, b in zip(got, want, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-5)


def test_unreachable_hub_model_says_how_to_pass_a_local_path() -> None:
    with pytest.raises(ModelLoadError, match="local checkpoint directory"):
        Encoder("latecore-tests/does-not-exist")
    with pytest.raises(ModelLoadError, match="not an existing checkpoint directory"):
        Encoder("/nonexistent/model/dir")


def test_unsafe_checkpoints_are_refused_unless_allowed(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    import shutil

    hostile = tmp_path / "hostile"
    shutil.copytree(tiny_checkpoint, hostile)
    (hostile / "1_Dense").mkdir()
    (hostile / "1_Dense" / "config.json").write_text(
        json.dumps({"in_features": 32, "out_features": 8, "activation_function": "os.getpid"})
    )
    (hostile / "modules.json").write_text(
        json.dumps(
            [
                {
                    "idx": 0,
                    "name": "0",
                    "path": "",
                    "type": "sentence_transformers.models.Transformer",
                },
                {
                    "idx": 1,
                    "name": "1",
                    "path": "1_Dense",
                    "type": "sentence_transformers.models.Dense",
                },
            ]
        )
    )
    with pytest.raises(ModelLoadError, match=r"os\.getpid"):
        Encoder(hostile)

    remote = tmp_path / "remote"
    shutil.copytree(tiny_checkpoint, remote)
    config = json.loads((remote / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "modeling_custom.CustomModel"}
    (remote / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="trust_remote_code=True"):
        Encoder(remote)


def _truncation_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, LatecoreWarning)]


def test_long_query_is_truncated_with_one_warning(
    tiny_checkpoint: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A fresh encoder: the session one may have warned already in another test.
    encoder = load_quietly(tiny_checkpoint)
    long_query = "paris " * 2000
    caplog.set_level(logging.DEBUG, logger="latecore.encoder")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # no once-per-location dedup to hide a repeat
        vectors = [encoder.encode_queries([f"{i} {long_query}"])[0] for i in range(200)]
        encoder.encode_queries(["short query"])
    (message,) = _truncation_warnings(caught)
    assert "truncated" in message and "query_length=64" in message  # the zero-shot length
    assert all(v.shape[0] <= encoder.model.query_length for v in vectors)
    repeats = [r for r in caplog.records if "truncated" in r.getMessage()]
    assert len(repeats) == 199 and all(r.levelno == logging.DEBUG for r in repeats)

    # Another encoder warns again, once, also when its queries come from several threads.
    other = load_quietly(tiny_checkpoint)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        threads = [
            threading.Thread(target=lambda: [other.encode_queries([long_query]) for _ in range(10)])
            for _ in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(_truncation_warnings(caught)) == 1
        # ... and so does a changed query length (a with_cache copy shares the record).
        other.with_cache(None).encode_queries([long_query])
        other.model.query_length = 16
        other.encode_queries([long_query])
        other.encode_queries([long_query])
    assert [m.split(" tokens")[0][-15:] for m in _truncation_warnings(caught)] == [
        "query_length=64",
        "query_length=16",
    ]


class _Shown(logging.Handler):
    """What transformers and pylate would print: records that reach their loggers' handlers."""

    LOGGERS = ("transformers", "pylate")

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def __enter__(self) -> _Shown:
        for name in self.LOGGERS:
            logging.getLogger(name).addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        for name in self.LOGGERS:
            logging.getLogger(name).removeHandler(self)

    def __contains__(self, text: str) -> bool:
        return any(text in m for m in self.messages)


def test_loading_shows_no_load_report_and_logs_it_at_debug(
    minilm_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from transformers.utils import logging as transformers_logging

    verbosity = transformers_logging.get_verbosity()
    bars = transformers_logging.is_progress_bar_enabled()
    caplog.set_level(logging.DEBUG, logger="latecore.encoder")
    bars_during_load: list[bool] = []
    probe = logging.Handler()
    probe.emit = lambda record: bars_during_load.append(  # type: ignore[method-assign]
        transformers_logging.is_progress_bar_enabled()
    )
    logging.getLogger("latecore.encoder").addHandler(probe)
    try:
        with _Shown() as shown:
            load_quietly(minilm_path, show_progress=False)  # its file has an unused position_ids
    finally:
        logging.getLogger("latecore.encoder").removeHandler(probe)
    assert "LOAD REPORT" not in shown
    assert bars_during_load == [False]  # the "Loading weights" bar was off
    (report,) = [r for r in caplog.records if "LOAD REPORT" in r.getMessage()]
    assert report.name == "latecore.encoder" and report.levelno == logging.DEBUG
    assert "position_ids" in report.getMessage() and "\x1b[" not in report.getMessage()
    assert transformers_logging.get_verbosity() == verbosity
    assert transformers_logging.is_progress_bar_enabled() == bars
    # Outside latecore's loads, transformers' logging is as it was.
    with _Shown() as shown:
        logging.getLogger("transformers.modeling_utils").warning("BertModel LOAD REPORT x")
    assert "LOAD REPORT" in shown


def test_a_report_of_missing_weights_is_still_shown(tiny_checkpoint: Path, tmp_path: Path) -> None:
    import shutil

    from safetensors.numpy import load_file, save_file

    damaged = tmp_path / "damaged"
    shutil.copytree(tiny_checkpoint, damaged)
    weights = load_file(damaged / "model.safetensors")
    del weights[next(k for k in weights if k.endswith("output.dense.bias"))]
    save_file(weights, damaged / "model.safetensors", metadata={"format": "pt"})
    with _Shown() as shown:
        load_quietly(damaged)
    assert "LOAD REPORT" in shown and "MISSING" in shown
    assert "No sentence-transformers model found" not in shown


def _check_token_spans(tokenized: TokenizedText) -> None:
    for token, span in zip(tokenized.tokens, tokenized.spans, strict=True):
        if span is not None:
            assert tokenized.text[slice(*span)].lower() == token.removeprefix("##")


def test_encode_with_tokens_gives_the_vectors_encode_gives(
    minilm_encoder: Encoder, tmp_path: Path
) -> None:
    queries = ["why is the sky blue?", "  who built   the printing press"]
    documents = [
        "The sky is blue because air scatters blue light (Rayleigh scattering).",
        "  Gutenberg's press, built c. 1440 in Mainz, used metal type!  ",
    ]
    for texts, is_query, encode in [
        (queries, True, minilm_encoder.encode_queries),
        (documents, False, minilm_encoder.encode_documents),
    ]:
        tokenized = minilm_encoder.encode_with_tokens(texts, is_query=is_query)
        for item, text, reference in zip(tokenized, texts, encode(texts), strict=True):
            assert item.text == text
            assert item.vectors.dtype == np.float32
            np.testing.assert_allclose(item.vectors, reference, atol=1e-6, rtol=0)
            _check_token_spans(item)
            assert item.tokens[0] == "[CLS]" and item.spans[0] is None and item.special[0]
            assert item.special[1] and item.tokens[1] == ("[unused0]" if is_query else "[unused1]")
            assert item.tokens[-1] == "[SEP]" and item.special[-1]
            assert not any(item.expansion)
    (sky,) = minilm_encoder.encode_with_tokens([documents[0]], is_query=False)
    words = [documents[0][slice(*s)] for s in sky.spans if s is not None]
    assert words[:4] == ["The", "sky", "is", "blue"]
    assert "(" not in sky.tokens  # the document skiplist drops punctuation, as encoding does
    assert minilm_encoder.token_spans(queries[0], is_query=True)[2] == ("why", (0, 3))

    with MultivectorCache(tmp_path / "cache", dtype="float16") as cache:
        cached = minilm_encoder.with_cache(cache)
        (item,) = cached.encode_with_tokens([documents[1]], is_query=False)
        (reference,) = cached.encode_documents([documents[1]])
        np.testing.assert_allclose(item.vectors, reference, atol=1e-6, rtol=0)
        rounded = item.vectors.astype(np.float16).astype(np.float32)
        assert item.vectors.tobytes() == rounded.tobytes()


def test_encode_with_tokens_of_the_fake_encoder_and_of_one_that_cannot_tell() -> None:
    fake = FakeEncoder(dim=8)
    (query,) = fake.encode_with_tokens(["Paris, \ud800 France"], is_query=True)
    np.testing.assert_array_equal(query.vectors, fake.encode_queries(["Paris, \ud800 France"])[0])
    assert query.text == "Paris, \ufffd France"
    assert query.tokens == ("[Q]", "paris", ",", "\ufffd", "france")
    assert query.special == (True, False, False, False, False)
    assert [query.text[slice(*s)] for s in query.spans if s is not None] == [
        "Paris",
        ",",
        "\ufffd",
        "France",
    ]
    assert fake.encode_with_tokens([], is_query=False) == []
    with pytest.raises(TypeError, match="wrap a single text"):
        fake.encode_with_tokens("text", is_query=True)  # type: ignore[arg-type]

    class Opaque(BaseEncoder):
        def _model_fingerprint_fields(self) -> dict[str, object]:
            return {"model_id": "opaque"}

        def _encode(self, texts: list[str], *, is_query: bool) -> list[np.ndarray]:
            return [np.ones((1, 4), dtype=np.float32) for _ in texts]

    with pytest.raises(TypeError, match="token_spans"):
        Opaque().encode_with_tokens(["q"], is_query=True)

    class Miscounted(Opaque):
        def token_spans(self, text: str, *, is_query: bool) -> list[tuple[str, None]]:
            return [("[Q]", None), ("extra", None)]

    with pytest.raises(ValueError, match="label every vector"):
        Miscounted().encode_with_tokens(["q"], is_query=True)


def test_huge_document_is_cut_before_tokenising(tiny_encoder: Encoder) -> None:
    huge = "the river flows " * 70_000  # ~1.1 MB
    (cut,) = tiny_encoder.encode_documents([huge])
    (head,) = tiny_encoder.encode_documents([huge[: tiny_encoder.max_chars]])
    assert cut.tobytes() == head.tobytes()
    assert tiny_encoder.fingerprint_fields["max_chars"] == tiny_encoder.max_chars
