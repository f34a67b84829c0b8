"""Model compatibility matrix: every checkpoint family loads offline with its own settings."""

from __future__ import annotations

import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import load_quietly

from latecore import Encoder, MultivectorCache, cache_key
from latecore.maxsim import maxsim
from latecore.testing import CHECKPOINT_FORMATS, CheckpointSpec, write_checkpoint

QUERY = "where is the capital city paris"
DOCUMENTS = ["where is the capital city paris", "cats purr and dogs bark"]


@pytest.fixture(scope="module")
def specs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CheckpointSpec]:
    root = tmp_path_factory.mktemp("formats")
    return {fmt: write_checkpoint(fmt, root / fmt) for fmt in CHECKPOINT_FORMATS}


@pytest.fixture(scope="module")
def encoders(specs: dict[str, CheckpointSpec]) -> dict[str, Encoder]:
    return {fmt: load_quietly(spec.path) for fmt, spec in specs.items()}


@pytest.mark.parametrize("fmt", CHECKPOINT_FORMATS)
def test_settings_come_from_the_checkpoint(
    fmt: str, specs: dict[str, CheckpointSpec], encoders: dict[str, Encoder]
) -> None:
    spec, encoder = specs[fmt], encoders[fmt]
    described = encoder.describe()
    assert described["query_prefix"] == spec.query_prefix
    assert described["document_prefix"] == spec.document_prefix
    assert described["query_length"] == spec.query_length
    assert described["document_length"] == spec.document_length
    assert described["do_query_expansion"] is spec.do_query_expansion
    assert described["dim"] == spec.dim
    assert described["zero_shot"] is (not spec.has_colbert_head)
    assert described["expansion_token"] == spec.mask_token
    assert described["remote_code"] is False
    expected_format = {
        "stanford": "stanford",
        "sentence-transformers": "sentence-transformers",
        "pylate-modernbert": "pylate",
        "xlm-roberta": "pylate",
        "plain-bert": "plain-encoder",
    }[fmt]
    assert described["format"] == expected_format


@pytest.mark.parametrize("fmt", CHECKPOINT_FORMATS)
def test_query_is_marked_and_expanded_document_is_not_padded(
    fmt: str, specs: dict[str, CheckpointSpec], encoders: dict[str, Encoder]
) -> None:
    spec, model = specs[fmt], encoders[fmt].model
    tokenizer = model.tokenizer
    query_ids = model.tokenize([QUERY], is_query=True)["input_ids"][0].tolist()
    assert query_ids[0] == tokenizer.cls_token_id
    assert query_ids[1] == tokenizer.convert_tokens_to_ids(spec.query_prefix)
    mask_id = tokenizer.convert_tokens_to_ids(spec.mask_token)
    if spec.do_query_expansion:
        assert len(query_ids) == spec.query_length
        assert query_ids[-1] == mask_id
    else:
        assert mask_id not in query_ids
    document_ids = model.tokenize([DOCUMENTS[1]], is_query=False)["input_ids"][0].tolist()
    assert document_ids[1] == tokenizer.convert_tokens_to_ids(spec.document_prefix)
    assert mask_id not in document_ids and tokenizer.pad_token_id not in document_ids[:-1]
    assert document_ids[-1] == tokenizer.sep_token_id


@pytest.mark.parametrize("fmt", CHECKPOINT_FORMATS)
def test_encodes_with_its_dimension_and_ranks_a_lexical_match_first(
    fmt: str, specs: dict[str, CheckpointSpec], encoders: dict[str, Encoder]
) -> None:
    encoder = encoders[fmt]
    (query,) = encoder.encode_queries([QUERY])
    documents = encoder.encode_documents(DOCUMENTS)
    expected_query_tokens = specs[fmt].query_length if specs[fmt].do_query_expansion else None
    if expected_query_tokens is not None:
        assert query.shape[0] == expected_query_tokens
    assert all(d.shape[1] == specs[fmt].dim for d in [query, *documents])
    scores = maxsim(query, documents)
    assert scores[0] > scores[1]


_ENCODE_ALL = """
import sys, warnings, numpy as np
warnings.simplefilter("ignore")
from latecore import Encoder
arrays = {}
for i, path in enumerate(sys.argv[2:]):
    encoder = Encoder(path, device="cpu")
    vectors = encoder.encode_queries([sys.argv[1]]) + encoder.encode_documents([sys.argv[1]])
    for j, vector in enumerate(vectors):
        arrays[f"{i}_{j}"] = vector
    print(encoder.fingerprint)
np.savez("out.npz", **arrays)
"""


@pytest.mark.slow
def test_every_format_is_deterministic_across_processes(
    specs: dict[str, CheckpointSpec], tmp_path: Path
) -> None:
    paths = [str(specs[fmt].path) for fmt in CHECKPOINT_FORMATS]
    runs = []
    for i in range(2):
        workdir = tmp_path / str(i)
        workdir.mkdir()
        runs.append(
            subprocess.Popen(
                [sys.executable, "-c", _ENCODE_ALL, "привет, where is paris 北京", *paths],
                cwd=workdir,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outputs = []
    for run in runs:
        out, err = run.communicate(timeout=400)
        assert run.returncode == 0, err[-3000:]
        outputs.append(out.split())
    assert outputs[0] == outputs[1]
    assert len(set(outputs[0])) == len(CHECKPOINT_FORMATS), "formats must not share fingerprints"
    first, second = np.load(tmp_path / "0" / "out.npz"), np.load(tmp_path / "1" / "out.npz")
    assert sorted(first.files) == sorted(second.files) and len(first.files) == 10
    for name in first.files:
        assert first[name].tobytes() == second[name].tobytes(), name


_WRITE_ALL = """
import sys, warnings
warnings.simplefilter("ignore")
from pathlib import Path
from latecore.testing import CHECKPOINT_FORMATS, write_checkpoint
for fmt in CHECKPOINT_FORMATS:
    write_checkpoint(fmt, Path(sys.argv[1]) / fmt)
"""


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_every_format_writes_byte_identical_files_in_two_processes(tmp_path: Path) -> None:
    """The xlm-roberta tokenizer included: its Unigram vocabulary is fixed, not trained."""
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITE_ALL, str(tmp_path / str(i))],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    for run in runs:
        _, err = run.communicate(timeout=400)
        assert run.returncode == 0, err[-3000:]
    first, second = _files(tmp_path / "0"), _files(tmp_path / "1")
    for fmt in CHECKPOINT_FORMATS:
        assert any(name.startswith(f"{fmt}/") for name in first), fmt
    assert "xlm-roberta/tokenizer.json" in first
    assert sorted(first) == sorted(second)
    differ = [name for name in first if first[name] != second[name]]
    assert not differ, f"written differently by two processes: {differ}"


def test_changing_a_weight_byte_of_a_trained_checkpoint_changes_every_key(
    specs: dict[str, CheckpointSpec], encoders: dict[str, Encoder], tmp_path: Path
) -> None:
    copy = tmp_path / "stanford-copy"
    shutil.copytree(specs["stanford"].path, copy)
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x10
    weights.write_bytes(bytes(data))
    changed = load_quietly(copy)
    original = encoders["stanford"]
    assert changed.fingerprint != original.fingerprint
    for text in DOCUMENTS:
        assert cache_key(changed.fingerprint, "document", text) != cache_key(
            original.fingerprint, "document", text
        )


def test_multilingual_text_round_trips_through_xlmr_and_the_cache(
    encoders: dict[str, Encoder], tmp_path: Path
) -> None:
    texts = [
        "Москва — столица России, река Волга",
        "北京是中国的首都",
        "القاهرة عاصمة مصر ونهر النيل",
        "mixed: Волга, 长江 and النيل",
    ]
    encoder = encoders["xlm-roberta"].with_cache(MultivectorCache(tmp_path / "cache"))
    first = encoder.encode_documents(texts)
    cached = encoders["xlm-roberta"].with_cache(MultivectorCache(tmp_path / "cache"))
    second = cached.encode_documents(texts)
    assert cached.cache is not None and cached.cache.stats().hits == len(texts)
    for a, b in zip(first, second, strict=True):
        assert a.shape[0] > 3 and a.tobytes() == b.tobytes()
    (query,) = encoder.encode_queries(["столица России"])
    assert int(np.argmax(maxsim(query, first))) == 0


LONG_QUERY = " ".join(["where is the capital city paris and why"] * 6) + " paris city"  # 50 words


@pytest.mark.parametrize(
    ("fmt", "truncated"), [("plain-bert", False), ("sentence-transformers", True)]
)
def test_a_long_query_is_kept_whole_by_a_zero_shot_checkpoint_and_cut_by_a_trained_one(
    fmt: str, truncated: bool, encoders: dict[str, Encoder]
) -> None:
    """Zero-shot checkpoints (no expansion) get 64 query tokens; trained ones keep theirs."""
    encoder = encoders[fmt]
    n_tokens = len(encoder.model.tokenizer(LONG_QUERY, add_special_tokens=False)["input_ids"])
    assert 50 <= n_tokens <= 61
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        (vectors,) = encoder.encode_queries([LONG_QUERY])
    cut = [w for w in caught if "truncated" in str(w.message)]
    assert bool(cut) is truncated
    described = encoder.describe()
    if truncated:
        assert described["query_length_source"] == "checkpoint"
        assert vectors.shape[0] == described["query_length"] < n_tokens
    else:
        assert described["query_length_source"] == "zero-shot default"
        assert described["query_length"] == 64
        assert vectors.shape[0] == n_tokens + 3  # [CLS], the query marker, [SEP]
        assert "query_length" in encoder.fingerprint_fields
