"""int8 storage (store, saved index, cache), memory-mapped stores and the memory report."""

from __future__ import annotations

import os
from pathlib import Path

import diskcache
import numpy as np
import pytest
from _engine_support import QUERIES, ReplayCorpus

from latecore import LateIndex, MultivectorCache
from latecore.cache import cache_key, decode_multivector, encode_multivector
from latecore.maxsim import PackedDocuments
from latecore.quantize import as_stored, dequantize_int8, quantize_int8
from latecore.testing import FakeEncoder


def unit_rows(n: int, dim: int, seed: int) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_quantize_round_trip_is_close_and_idempotent() -> None:
    vectors = unit_rows(500, 96, 0)
    codes, scales = quantize_int8(vectors)
    assert codes.dtype == np.int8 and scales.dtype == np.float32 and scales.shape == (500,)
    restored = dequantize_int8(codes, scales)
    assert np.abs(restored - vectors).max() <= scales.max() / 2 + 1e-7
    again, again_scales = quantize_int8(restored)
    np.testing.assert_array_equal(again, codes)
    np.testing.assert_allclose(again_scales, scales, rtol=1e-6)
    np.testing.assert_array_equal(as_stored(restored, "int8"), as_stored(vectors, "int8"))


def test_int8_packed_scoring_equals_dequantized_float32() -> None:
    documents = [unit_rows(n, 32, n) for n in (3, 50, 7, 4000, 1)]
    codes, scales = quantize_int8(np.concatenate(documents))
    offsets = np.concatenate([[0], np.cumsum([len(d) for d in documents])])
    packed = PackedDocuments.from_parts(codes, offsets, scales)
    floats = PackedDocuments([dequantize_int8(*quantize_int8(d)) for d in documents])
    queries = [unit_rows(5, 32, 99), unit_rows(9, 32, 98)]
    np.testing.assert_allclose(packed.score(queries, 1000), floats.score(queries), atol=1e-5)
    np.testing.assert_allclose(packed.document_float32(1), floats.document(1), atol=1e-7)
    with pytest.raises(ValueError, match="int8"):
        PackedDocuments.from_parts(codes.astype(np.float32), offsets, scales)


def recall_at_10(got: list[list[str]], expected: list[list[str]]) -> float:
    pairs = zip(got, expected, strict=True)
    return float(np.mean([len(set(g) & set(e)) / len(e) for g, e in pairs]))


@pytest.mark.slow
def test_int8_ranks_a_real_corpus_like_float16(replay_corpus: ReplayCorpus, tmp_path: Path) -> None:
    ids, texts, encoder = replay_corpus
    metadatas = [{"half": i % 2} for i in range(len(ids))]
    indexes = {dtype: LateIndex(encoder, dtype=dtype) for dtype in ("float16", "int8")}
    for index in indexes.values():
        index.add(texts, ids=ids, metadatas=metadatas)
    int8 = indexes["int8"]
    assert int8.store.nbytes < 0.6 * indexes["float16"].store.nbytes

    def ranked(index: LateIndex, **options: object) -> list[list[str]]:
        return [[h.id for h in hits] for hits in index.search_batch(QUERIES, k=10, **options)]

    reference = ranked(indexes["float16"])
    assert recall_at_10(ranked(int8), reference) >= 0.99
    filtered = ranked(int8, filter={"half": 1})
    assert all(ids.index(i) % 2 == 1 for hits in filtered for i in hits)
    # half the documents: the tenth hit is deeper, among closer scores
    assert recall_at_10(filtered, ranked(indexes["float16"], filter={"half": 1})) >= 0.95

    int8.save(tmp_path / "int8")
    assert np.load(tmp_path / "int8" / "vectors.npy", allow_pickle=False).dtype == np.int8
    assert np.load(tmp_path / "int8" / "scales.npy", allow_pickle=False).dtype == np.float32
    loaded = LateIndex.load(tmp_path / "int8", encoder)
    assert loaded.dtype == np.int8 and ranked(loaded) == ranked(int8)
    loaded.delete(ids[:20])
    loaded.add(texts[:5], ids=[f"again-{i}" for i in range(5)])
    int8.delete(ids[:20])
    int8.add(texts[:5], ids=[f"again-{i}" for i in range(5)])
    assert ranked(loaded) == ranked(int8)
    scores = loaded.score(QUERIES[0], ["again-0", ids[30]])
    np.testing.assert_allclose(scores, int8.score(QUERIES[0], ["again-0", ids[30]]), atol=1e-6)


def test_int8_store_save_load_add_delete_with_filters(tmp_path: Path) -> None:
    texts = [
        f"note {i} on " + " ".join(f"w{(i * 7 + j) % 40}" for j in range(10)) for i in range(60)
    ]
    ids = [str(i) for i in range(60)]
    index = LateIndex(FakeEncoder(), dtype="int8")
    index.add(texts, ids=ids, metadatas=[{"n": i % 3} for i in range(60)])
    hits = index.search("w3 w10 w17", k=5, filter={"n": 1})
    assert hits and all(h.metadata["n"] == 1 for h in hits)
    index.save(tmp_path / "ix")
    loaded = LateIndex.load(tmp_path / "ix", FakeEncoder())
    assert [h.id for h in loaded.search("w3 w10 w17", k=5, filter={"n": 1})] == [h.id for h in hits]
    assert loaded.delete(["1", "4"]) == 2 and "1" not in loaded
    loaded.add(["fresh w3 w10 w17 w3"], ids=["z"], metadatas=[{"n": 1}])
    assert loaded.search("w3 w10 w17", k=1, filter={"n": 1})[0].id == "z"


def test_int8_refused_where_an_engine_keeps_the_vectors() -> None:
    with pytest.raises(ValueError, match="vectors='local'"):
        LateIndex(FakeEncoder(), dtype="int8", vectors="engine", backend="qdrant")
    with pytest.raises(ValueError, match="'float16', 'float32' or 'int8'"):
        LateIndex(FakeEncoder(), dtype="int4")  # type: ignore[arg-type]


def test_cache_int8_entries_round_trip(tmp_path: Path) -> None:
    vectors = unit_rows(12, 16, 3)
    with MultivectorCache(tmp_path / "c", dtype="int8") as cache:
        key = cache_key("fp", "document", "x")
        cache.put_many([key], [vectors])
        cache.clear_memory()
        (array,) = cache.get_many([key])
        assert array is not None and array.dtype == np.float32 and not array.flags.writeable
        np.testing.assert_array_equal(array, as_stored(vectors, "int8"))
        assert cache.stats().bytes > 0
    frame = encode_multivector(vectors, "int8")
    assert len(frame) < len(encode_multivector(vectors, "float16"))


def test_cached_int8_encoder_returns_the_same_on_hit_and_miss(tmp_path: Path) -> None:
    texts = ["one two three", "four five"]
    with MultivectorCache(tmp_path / "c", dtype="int8") as cache:
        encoder = FakeEncoder(cache=cache)
        miss = encoder.encode_documents(texts)
        hit = FakeEncoder(cache=cache).encode_documents(texts)
        assert encoder.fingerprint != FakeEncoder().fingerprint
        for a, b in zip(miss, hit, strict=True):
            np.testing.assert_array_equal(a, b)
        (tokens,) = encoder.encode_with_tokens(texts[:1], is_query=False)
        np.testing.assert_array_equal(tokens.vectors, miss[0])


@pytest.mark.parametrize("damage", ["truncate", "flip-code", "flip-scale", "garbage"])
def test_damaged_int8_entries_are_misses(tmp_path: Path, damage: str) -> None:
    key = cache_key("fp", "document", "x")
    good = encode_multivector(unit_rows(4, 8, 1), "int8")
    header = 32  # magic, version, dtype, pad, rows, cols, checksum
    bad = {
        "truncate": good[:-3],
        "flip-code": good[:-1] + bytes([good[-1] ^ 0x01]),
        "flip-scale": good[:header] + bytes([good[header] ^ 0x01]) + good[header + 1 :],
        "garbage": good[:8] + os.urandom(len(good) - 8),
    }[damage]
    assert decode_multivector(good) is not None and decode_multivector(bad) is None
    with diskcache.Cache(str(tmp_path / "c")) as raw:
        raw.set(key, bad)
    with MultivectorCache(tmp_path / "c", dtype="int8") as cache:
        assert cache.get_many([key]) == [None]


def mixed_index(dtype: str) -> LateIndex:
    words = [" ".join(f"w{(i * 7 + j) % 50}" for j in range(12)) for i in range(300)]
    index = LateIndex(FakeEncoder(), dtype=dtype)  # type: ignore[arg-type]
    index.add(
        [f"doc {i} {w}" for i, w in enumerate(words)], metadatas=[{"n": i % 3} for i in range(300)]
    )
    return index


def same_results(got: LateIndex, expected: LateIndex, **options: object) -> None:
    queries = ["w3 w10 w44", "doc 5 w7", "w1"]
    for a, b in zip(
        got.search_batch(queries, k=10, **options),
        expected.search_batch(queries, k=10, **options),
        strict=True,
    ):
        assert [(h.id, h.text, h.metadata) for h in a] == [(h.id, h.text, h.metadata) for h in b]
        # GEMM kernels may round the last bit differently on differently aligned memory
        assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-6)


@pytest.mark.parametrize("dtype", ["float16", "float32", "int8"])
def test_memory_mapped_index_returns_what_the_loaded_one_does(tmp_path: Path, dtype: str) -> None:
    mixed_index(dtype).save(tmp_path / "ix")
    mapped = LateIndex.load(tmp_path / "ix", FakeEncoder(), mmap=True)
    loaded = LateIndex.load(tmp_path / "ix", FakeEncoder())
    assert type(mapped.store).__name__ == "MappedStore" and mapped.dtype == loaded.dtype
    assert mapped.memory().mapped_bytes > 0 and loaded.memory().mapped_bytes == 0
    for options in ({}, {"filter": {"n": 1}}):
        same_results(mapped, loaded, **options)
    for index in (mapped, loaded):
        index.delete([index.ids[3], index.ids[7], index.ids[250]])
        index.add(
            ["extra w3 w10", "doc 5 w7 again"], ids=["x", index.ids[8]], metadatas=[{"n": 1}] * 2
        )
    assert mapped.ids == loaded.ids and mapped.count({"n": 1}) == loaded.count({"n": 1})
    for options in ({}, {"filter": {"n": 1}}):
        same_results(mapped, loaded, **options)
    np.testing.assert_allclose(
        mapped.score("w3 w10", ["x", mapped.ids[0]]),
        loaded.score("w3 w10", ["x", loaded.ids[0]]),
        atol=1e-6,
    )
    mapped.save(tmp_path / "ix")  # over the very file it maps: written beside, then swapped
    assert np.load(tmp_path / "ix" / "vectors.npy", allow_pickle=False).dtype == np.dtype(dtype)
    same_results(LateIndex.load(tmp_path / "ix", FakeEncoder()), loaded)
    same_results(mapped, loaded)


def test_mmap_needs_vectors_in_the_store(tmp_path: Path) -> None:
    from latecore.errors import InputError

    pytest.importorskip("lancedb")
    engine = LateIndex(FakeEncoder(), vectors="engine", backend="lancedb")
    engine.add(["one two"], ids=["a"])
    engine.save(tmp_path / "e")
    engine.close()
    with pytest.raises(InputError, match="load it without mmap"):
        LateIndex.load(tmp_path / "e", FakeEncoder(), mmap=True)
    mixed_index("float16").save(tmp_path / "ix")
    report = LateIndex.load(tmp_path / "ix", FakeEncoder(), mmap=True).memory()
    assert report.store_bytes == 0 and report.store_per_token == 64.0  # dim 32, float16


@pytest.mark.parametrize(
    ("backend", "module", "options"),
    [
        ("warp", "xtr_warp", {"build_min": 1}),
        ("qdrant", "qdrant_edge", {}),
        ("lancedb", "lancedb", {"build_min": 1}),
    ],
)
def test_memory_reports_each_engine_index_apart_from_the_store(
    backend: str, module: str, options: dict[str, object], tmp_path: Path
) -> None:
    pytest.importorskip(module)
    words = [" ".join(f"w{(i * 7 + j) % 50}" for j in range(12)) for i in range(300)]
    folder = {"lancedb": "uri", "qdrant": "path"}.get(backend, "index_folder")
    with LateIndex(
        FakeEncoder(), backend=backend, dtype="int8", **{folder: tmp_path / "engine"}, **options
    ) as index:
        index.add(words)
        index.build()
        report = index.memory()
        on_disk = sum(f.stat().st_size for f in (tmp_path / "engine").rglob("*") if f.is_file())
    assert report.tokens == 300 * 13  # 12 words and the FakeEncoder's marker
    assert report.store_bytes == report.tokens * (32 + 4)  # int8 dim 32 and a float32 scale
    assert report.engine_bytes is not None and 0 < report.engine_bytes <= on_disk
    assert report.engine_per_token == report.engine_bytes / report.tokens


RSS = """
import sys, warnings
from latecore import LateIndex
from latecore.testing import FakeEncoder
def rss(name=None):
    total, mapped, current = 0, 0, ""
    for line in open("/proc/self/smaps"):
        parts = line.split()
        if len(parts) >= 5 and "-" in parts[0]:
            current = parts[-1] if len(parts) >= 6 else ""
        elif parts and parts[0] == "Rss:":
            total += int(parts[1]) * 1024
            if current.endswith("vectors.npy"):
                mapped += int(parts[1]) * 1024
    return total, mapped
before, _ = rss()
index = LateIndex.load(sys.argv[1], FakeEncoder(dim=128), mmap=True)
after, mapped = rss()
import numpy as np
candidates = list(range(0, len(index), 3))  # re-scoring an engine's candidates
scores = index.store.score([np.ones((2, 128), dtype=np.float32)], candidates)[0]
_, read = rss()
hits = index.search("w1 w2", k=5)  # exact: streams the whole map
print(after - before, mapped, len(hits), read, len(scores))
"""


@pytest.mark.slow
def test_memory_mapped_load_keeps_resident_memory_far_below_the_file(tmp_path: Path) -> None:
    import subprocess
    import sys

    from latecore.store import MemoryStore

    store = MemoryStore("float16")
    rng = np.random.default_rng(0)
    for chunk in range(8):
        ids = [f"{chunk}-{i}" for i in range(1000)]
        vectors = list(rng.standard_normal((1000, 100, 128), dtype=np.float32))
        store.add(ids, ids, [{}] * 1000, vectors)
    LateIndex(FakeEncoder(dim=128), store=store).save(tmp_path / "big")
    del store
    size = (tmp_path / "big" / "vectors.npy").stat().st_size
    assert size > 200 * 10**6
    out = subprocess.run(
        [sys.executable, "-c", RSS, str(tmp_path / "big")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    grown, mapped, hits, read, candidates = (int(x) for x in out)
    assert hits == 5 and candidates == 2667
    assert mapped < size / 20  # the mapping is mostly not resident
    assert grown < size / 4  # nor is anything else the load allocated
    # a third of the documents read as candidates: through the map that would make
    # a third of the file (and the pages around each read) resident
    assert read < size / 20
