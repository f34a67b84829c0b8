"""The ``warp`` backend: WARP (xtr-warp-rs) candidates keep ``exact``'s rankings and scores.

Real encodings: the bundled sample corpus encoded once per session by the real
all-MiniLM-L6-v2 (zero-shot ColBERT). WARP builds over it take about a second.
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _engine_support import assert_no_pickles

from latecore import Encoder, LateIndex
from latecore.backends.warp import WarpBackend
from latecore.base_encoder import BaseEncoder
from latecore.documents import demo_queries, sample_corpus_path
from latecore.testing import FakeEncoder

pytestmark = pytest.mark.engines  # needs the engine extra (see docs/development.md)

BUILD = {"build_min": 50, "n_candidates": 100, "nprobe": 16}
"""Build as soon as 50 documents are stored (the corpus has 250); re-score 100 of them
(the default 400 would re-score all 250)."""


class ReplayEncoder(BaseEncoder):
    """Answers from encodings made once by a real encoder (which it falls back to)."""

    def __init__(self, real: BaseEncoder, texts: list[str], queries: list[str]) -> None:
        super().__init__(show_progress=False)
        self._real = real
        self._known = {
            **{(False, t): v for t, v in zip(texts, real.encode_documents(texts), strict=True)},
            **{(True, q): v for q, v in zip(queries, real.encode_queries(queries), strict=True)},
        }

    def _model_fingerprint_fields(self) -> dict[str, Any]:
        return dict(self._real.fingerprint_fields)

    def _encode(self, texts: list[str], *, is_query: bool) -> list[np.ndarray]:
        missing = [t for t in texts if (is_query, t) not in self._known]
        if missing:
            encode = self._real.encode_queries if is_query else self._real.encode_documents
            self._known.update(zip([(is_query, t) for t in missing], encode(missing), strict=True))
        return [self._known[(is_query, t)] for t in texts]


class Corpus:
    """The sample corpus, replacement texts for a few documents, and queries."""

    def __init__(self, encoder: Encoder) -> None:
        lines = sample_corpus_path().read_text("utf-8").splitlines()
        records = [json.loads(line) for line in lines if line.strip()]
        self.ids = [r["id"] for r in records]
        self.texts = [r["text"] for r in records]
        self.revised = {i: f"Revised: {self.texts[n + 1]}" for n, i in enumerate(self.ids[:250:50])}
        starts = [" ".join(t.split()[:6]) for t in self.texts[3::17]]
        self.queries = [*demo_queries(), *starts]
        # Documents searched for by their own text, in some tests.
        probes = [*self.revised.values(), *self.texts[10:20]]
        documents = [*self.texts, *self.revised.values()]
        self.encoder = ReplayEncoder(encoder, documents, [*self.queries, *probes])

    def exact(self, n: int = 250) -> LateIndex:
        """An exact index of the first ``n`` documents (metadata ``{"n": position}``)."""
        index = LateIndex(self.encoder)
        index.add(self.texts[:n], ids=self.ids[:n], metadatas=[{"n": i} for i in range(n)])
        return index


@pytest.fixture(scope="session")
def corpus(minilm_encoder: Encoder) -> Corpus:
    return Corpus(minilm_encoder)


@pytest.fixture(scope="module")
def built(corpus: Corpus) -> Iterator[LateIndex]:
    """A WARP index of the whole corpus, built."""
    with LateIndex(corpus.encoder, backend="warp", **BUILD) as index:  # type: ignore[arg-type]
        index.add(corpus.texts, ids=corpus.ids, metadatas=[{"n": n} for n in range(250)])
        index.build()
        yield index


def warp_of(index: LateIndex) -> WarpBackend:
    assert isinstance(index.backend, WarpBackend)
    return index.backend


def assert_same_results(index: LateIndex, exact: LateIndex, queries: list[str]) -> None:
    """Same top 10, same scores, texts and metadata as ``exact`` for every query."""
    for got, want in zip(index.search_batch(queries), exact.search_batch(queries), strict=True):
        assert [h.id for h in got] == [h.id for h in want]
        assert [h.score for h in got] == pytest.approx([h.score for h in want], abs=1e-5)
        assert [(h.text, h.metadata) for h in got] == [(h.text, h.metadata) for h in want]


def file_hashes(directory: Path) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


# --- search ------------------------------------------------------------------------------


def test_warp_candidates_rescored_give_exact_top10_and_scores(
    built: LateIndex, corpus: Corpus, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = warp_of(built)
    assert (backend.indexed, backend.pending) == (250, 0)
    directory = backend.index_directory
    assert directory is not None and (directory / "metadata.json").is_file()
    assert not (directory / "metadata.duckdb").exists()
    # Every query is re-scored over WARP's candidates only, not over the corpus.
    store = built.store
    sizes: list[int] = []
    rank = store.rank

    def spy(query: np.ndarray, positions: Any, k: int) -> Any:
        sizes.append(len(positions))
        return rank(query, positions, k)

    monkeypatch.setattr(store, "rank", spy)
    assert_same_results(built, corpus.exact(), corpus.queries)
    assert len(sizes) == len(corpus.queries) and all(10 <= n <= 100 for n in sizes)
    assert built.score(corpus.queries[0], ["astronomy-01"]) == pytest.approx(
        corpus.exact().score(corpus.queries[0], ["astronomy-01"]), abs=1e-6
    )


def test_warp_below_build_min_is_exact_and_builds_lazily(corpus: Corpus, tmp_path: Path) -> None:
    work = tmp_path / "work"
    with LateIndex(
        corpus.encoder,
        backend="warp",
        index_folder=work,
        build_min=200,  # type: ignore[arg-type]
    ) as index:
        metadatas = [{"n": n} for n in range(250)]
        index.add(corpus.texts[:150], ids=corpus.ids[:150], metadatas=metadatas[:150])
        assert_same_results(index, corpus.exact(150), corpus.queries)
        assert warp_of(index).index_directory is None and not list(work.iterdir())
        index.add(corpus.texts[150:], ids=corpus.ids[150:], metadatas=metadatas[150:])
        assert warp_of(index).pending == 250
        assert_same_results(index, corpus.exact(), corpus.queries)  # this search builds
        assert (warp_of(index).indexed, warp_of(index).pending) == (250, 0)
        assert len(list(work.iterdir())) == 1
    assert not list(work.iterdir())  # close() removes the index it built


def test_warp_builds_nothing_over_a_handful_of_tokens() -> None:
    with LateIndex(FakeEncoder(), backend="warp", build_min=0) as index:  # type: ignore[arg-type]
        index.add(["paris is in france", "berlin is in germany"], ids=["p", "b"])
        index.build()
        assert warp_of(index).index_directory is None and warp_of(index).pending == 2
        assert [h.id for h in index.search("where is berlin", k=2)] == ["b", "p"]


def change(index: LateIndex, corpus: Corpus, added: slice) -> None:
    """Add the documents ``added``, delete ten, and replace those with revised texts."""
    index.add(
        corpus.texts[added], ids=corpus.ids[added], metadatas=[{"n": n} for n in range(250)][added]
    )
    assert index.delete([*corpus.ids[10:20], "not-there"]) == 10
    revised = list(corpus.revised)
    index.add([corpus.revised[i] for i in revised], ids=revised, metadatas=[{}] * len(revised))


def test_warp_add_delete_replace_after_the_build_stay_exact(corpus: Corpus) -> None:
    exact = corpus.exact(200)
    with LateIndex(corpus.encoder, backend="warp", **BUILD) as index:  # type: ignore[arg-type]
        index.add(
            corpus.texts[:200], ids=corpus.ids[:200], metadatas=[{"n": n} for n in range(200)]
        )
        index.build()
        for each in (index, exact):
            change(each, corpus, slice(200, 250))
        backend = warp_of(index)
        # New and replaced documents went to WARP itself (nothing is left to score in full).
        assert (backend.indexed, backend.pending, len(index)) == (240, 0, 240)
        assert_same_results(index, exact, [*corpus.queries, *corpus.revised.values()])
        for doc_id, text in corpus.revised.items():
            (hit,) = index.search(text, k=1)
            assert (hit.id, hit.text) == (doc_id, text)
        deleted = set(corpus.ids[10:20])
        for text in corpus.texts[10:20]:
            assert not deleted & {h.id for h in index.search(text, k=50)}


def test_warp_save_load_never_changes_the_saved_directory(
    built: LateIndex, corpus: Corpus, tmp_path: Path
) -> None:
    saved = tmp_path / "saved"
    built.save(saved)
    assert (saved / "warp" / "metadata.json").is_file() and (saved / "warp-ids.json").is_file()
    before = file_hashes(saved)
    work = tmp_path / "work"
    with LateIndex.load(saved, corpus.encoder, index_folder=work) as loaded:
        backend = warp_of(loaded)
        assert (backend.indexed, backend.pending) == (250, 0)
        # Searched through hard links to the checked saved files until it changes.
        linked = backend.index_directory
        assert linked is not None and linked.parent == work
        assert {p.name for p in linked.iterdir()} == {p.name for p in (saved / "warp").iterdir()}
        assert all(p.samefile(saved / "warp" / p.name) for p in linked.iterdir())
        assert_same_results(loaded, built, corpus.queries)
        exact = corpus.exact(200)
        loaded.delete(corpus.ids[200:])
        for each in (loaded, exact):
            change(each, corpus, slice(200, 230))
        assert backend.index_directory is not None and backend.index_directory.parent == work
        assert not linked.exists()  # a copy was changed; the links are gone
        assert (backend.indexed, backend.pending) == (220, 0)
        assert_same_results(loaded, exact, corpus.queries)
        assert file_hashes(saved) == before
        loaded.save(saved)  # replaces the directory it was loaded from
        for directory in (saved, work):
            assert_no_pickles(directory)
    as_exact = LateIndex.load(saved, corpus.encoder, backend="exact")
    assert_same_results(as_exact, exact, corpus.queries)
    with LateIndex.load(saved, corpus.encoder) as reloaded:
        assert (warp_of(reloaded).indexed, warp_of(reloaded).pending) == (220, 0)
        assert_same_results(reloaded, exact, corpus.queries)
        # Saved over the directory it searches in place, then changed: still consistent.
        reloaded.save(saved)
        written = file_hashes(saved)
        for each in (reloaded, exact):
            each.delete(corpus.ids[20:30])
        assert_same_results(reloaded, exact, corpus.queries)
        assert file_hashes(saved) == written


def test_warp_documents_it_does_not_hold_are_scored_exactly(
    built: LateIndex, corpus: Corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built.save(tmp_path / "saved")
    # Up to 100 pending documents are tolerated; more make the next search rebuild.
    with LateIndex.load(tmp_path / "saved", corpus.encoder, build_min=100) as index:
        index.delete(corpus.ids[200:])
        backend = warp_of(index)

        def broken(*args: object, **kwargs: object) -> list[int]:
            raise RuntimeError("disk full")

        with monkeypatch.context() as patch:
            patch.setattr("xtr_warp.search.XTRWarp.add", broken)
            patch.setattr("xtr_warp.search.XTRWarp.update", broken)
            exact = corpus.exact(200)
            for each in (index, exact):
                change(each, corpus, slice(200, 250))
        # 50 added, 4 replaced (the fifth replaced one was pending already).
        assert (backend.indexed, backend.pending) == (186, 54)
        assert_same_results(index, exact, [*corpus.queries, *corpus.revised.values()])
        index.save(tmp_path / "again")
    with LateIndex.load(tmp_path / "again", corpus.encoder) as reloaded:
        assert (warp_of(reloaded).indexed, warp_of(reloaded).pending) == (186, 54)
        assert_same_results(reloaded, exact, corpus.queries)
    with LateIndex.load(tmp_path / "again", corpus.encoder, build_min=50) as rebuilt:
        assert_same_results(rebuilt, exact, corpus.queries)
        assert (warp_of(rebuilt).indexed, warp_of(rebuilt).pending) == (240, 0)


def test_warp_saved_mapping_that_disagrees_is_rebuilt(
    built: LateIndex, corpus: Corpus, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    built.save(tmp_path / "saved")
    ids_file = tmp_path / "saved" / "warp-ids.json"
    mapping = json.loads(ids_file.read_text())
    mapping["ids"][0] = "unknown-document"
    ids_file.write_text(json.dumps(mapping))
    with (
        caplog.at_level(logging.WARNING, logger="latecore.backends.warp"),
        LateIndex.load(tmp_path / "saved", corpus.encoder) as loaded,
    ):
        assert "will be rebuilt" in caplog.text
        assert (warp_of(loaded).indexed, warp_of(loaded).pending) == (0, 250)
        assert_same_results(loaded, built, corpus.queries)  # rebuilds first
        assert (warp_of(loaded).indexed, warp_of(loaded).pending) == (250, 0)


# --- choosing the backend ----------------------------------------------------------------


def test_warp_without_the_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "xtr_warp", None)
    with pytest.raises(ImportError, match=r"pip install 'latecore\[warp\]'"):
        LateIndex(FakeEncoder(), backend="warp")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"n_candidates": 0}, "n_candidates must be a positive integer"),
        ({"nprobe": 2.5}, "nprobe must be a positive integer"),
        ({"num_partitions": 0}, "num_partitions must be a positive integer"),
        ({"nbits": 8}, "nbits must be 2 or 4"),
        ({"build_min": -1}, "build_min must be a non-negative integer"),
        ({"rebuild_growth": 1.0}, "rebuild_growth must be above 1"),
        ({"compact_threshold": 0}, r"compact_threshold must be in \(0, 1\]"),
        ({"device": "mps"}, "device must be 'cpu' or 'cuda'"),
        ({"t_prime": "1000"}, "t_prime must be a positive integer"),
    ],
)
def test_warp_bad_options_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WarpBackend(**options)


def test_warp_is_imported_only_when_chosen_and_leaves_logging_alone() -> None:
    code = (
        "import logging, sys, latecore, latecore.backends\n"
        "print('xtr_warp' in sys.modules, 'torch' in sys.modules)\n"
        "from latecore.backends import make_backend\n"
        "make_backend('warp').close()\n"
        "print('xtr_warp' in sys.modules, logging.getLogger().handlers)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["False False", "True []"]
