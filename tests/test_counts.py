"""Every count argument of the core follows the one rule of ``latecore.validation``.

``True``, ``-1``, ``1.5`` and ``"3"`` are refused with a ``ValueError`` naming the
argument everywhere; ``0`` means "no results" for result counts (``k``,
``top_k``) and is refused where a count must be positive (BM25 candidates,
evaluation depth, batch sizes, backend candidate counts). The adapters'
counts are covered in ``test_counts_adapters.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from latecore import HybridSearcher, LateIndex, Reranker, evaluate
from latecore.cli import main
from latecore.testing import FakeEncoder

BAD = [True, -1, 1.5, "3"]
TEXTS = ["cats purr", "dogs bark", "birds sing"]


def _index() -> LateIndex:
    index = LateIndex(FakeEncoder())
    index.add(TEXTS, ids=["c", "d", "b"])
    return index


def _hybrid(**kwargs: Any) -> HybridSearcher:
    return HybridSearcher.from_texts(TEXTS, FakeEncoder(), ids=["c", "d", "b"], **kwargs)


RESULT_COUNTS: dict[str, Callable[[Any], Any]] = {
    "LateIndex.search(k)": lambda k: _index().search("dogs", k=k),
    "LateIndex.search_batch(k)": lambda k: _index().search_batch(["dogs"], k=k)[0],
    "LateIndex.asearch(k)": lambda k: asyncio.run(_index().asearch("dogs", k=k)),
    "HybridSearcher.search(k)": lambda k: _hybrid().search("dogs", k=k),
    "HybridSearcher.search_batch(k)": lambda k: _hybrid().search_batch(["dogs"], k=k)[0],
    "HybridSearcher.asearch(k)": lambda k: asyncio.run(_hybrid().asearch("dogs", k=k)),
    "Reranker.rerank(top_k)": lambda k: Reranker(FakeEncoder()).rerank("dogs", TEXTS, top_k=k),
    "Reranker.rerank_batch(top_k)": lambda k: Reranker(FakeEncoder()).rerank_batch(
        ["dogs"], [TEXTS], top_k=k
    )[0],
    "Reranker.arerank(top_k)": lambda k: asyncio.run(
        Reranker(FakeEncoder()).arerank("dogs", TEXTS, top_k=k)
    ),
}

POSITIVE_COUNTS: dict[str, Callable[[Any], Any]] = {
    "HybridSearcher(candidates)": lambda n: _hybrid(candidates=n).search("dogs"),
    "HybridSearcher.search(candidates)": lambda n: _hybrid().search("dogs", candidates=n),
    "evaluate(k)": lambda n: evaluate(lambda q: ["d"], {"q": "dogs"}, {"q": {"d": 1}}, k=n),
    "FakeEncoder(batch_size)": lambda n: FakeEncoder(batch_size=n).encode_queries(["dogs"]),
    "LateIndex(backend='plaid', n_candidates)": lambda n: LateIndex(
        FakeEncoder(), backend="plaid", n_candidates=n
    ),
    "LateIndex(backend='qdrant', n_candidates)": lambda n: LateIndex(
        FakeEncoder(), backend="qdrant", n_candidates=n
    ),
    "LateIndex(backend='qdrant', batch_size)": lambda n: LateIndex(
        FakeEncoder(), backend="qdrant", batch_size=n
    ),
}

NON_NEGATIVE_SETTINGS: dict[str, Callable[[Any], Any]] = {
    "HybridSearcher(rrf_k)": lambda n: _hybrid(rrf_k=n, fusion="rrf").search("dogs"),
}


def _params(*tables: dict[str, Callable[[Any], Any]]) -> list[Any]:
    """One parameter per call; those that build an engine backend are marked ``engines``."""
    return [
        pytest.param(call, id=name, marks=[pytest.mark.engines] if "backend=" in name else [])
        for table in tables
        for name, call in table.items()
    ]


@pytest.mark.parametrize("value", BAD, ids=repr)
@pytest.mark.parametrize("call", _params(RESULT_COUNTS, POSITIVE_COUNTS, NON_NEGATIVE_SETTINGS))
def test_invalid_counts_are_refused(call: Callable[[Any], Any], value: object) -> None:
    with pytest.raises(ValueError, match=r"must be a (non-negative|positive) integer, got"):
        call(value)


@pytest.mark.parametrize("call", RESULT_COUNTS.values(), ids=list(RESULT_COUNTS))
def test_zero_results_is_an_empty_list_and_one_is_one(call: Callable[[Any], Any]) -> None:
    assert call(0) == []
    assert len(call(1)) == 1


@pytest.mark.parametrize("call", _params(POSITIVE_COUNTS))
def test_zero_is_refused_where_a_count_must_be_positive(call: Callable[[Any], Any]) -> None:
    with pytest.raises(ValueError, match="must be a positive integer, got 0"):
        call(0)
    call(1)


def test_zero_rrf_k_is_a_valid_setting() -> None:
    assert [hit.id for hit in _hybrid(rrf_k=0, fusion="rrf").search("dogs", k=1)] == ["d"]


def test_reranker_top_k_none_means_every_candidate() -> None:
    assert len(Reranker(FakeEncoder()).rerank("dogs", TEXTS, top_k=None)) == 3


@pytest.mark.parametrize("value", ["0", "-1", "1.5", "x"])
@pytest.mark.parametrize("flag", ["-k", "--candidates", "--max-chars"])
def test_cli_counts_exit_with_status_2(
    flag: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command refuses a count that is not a positive integer before loading anything."""
    try:
        status = main(["search", "/nonexistent", "--query", "dogs", flag, value])
    except SystemExit as exit_:  # argparse refuses what is not an integer at all
        status = int(exit_.code or 0)
    assert status == 2
    assert "error" in capsys.readouterr().err
