"""LlamaIndex MetadataFilters on both latecore retrievers: every operator and condition that
maps onto latecore's filter language gives the same nodes as the latecore mapping and as
LlamaIndex's own in-memory evaluation; the others are refused with a ValueError naming them."""

from __future__ import annotations

import asyncio
import doctest
import random
from typing import Any

import pytest
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)
from llama_index.core.vector_stores.utils import build_metadata_filter_fn
from llama_index.retrievers.latecore import (
    LateInteractionHybridRetriever,
    LateInteractionRetriever,
    LateSearchRetriever,
)
from llama_index.retrievers.latecore.filters import latecore_filter

from latecore.testing import FakeEncoder

Op = FilterOperator
WORDS = ["river", "stone", "cloud", "paper", "light", "field", "glass", "night"]
QUERY = "river stone light"


def _metadata(rng: random.Random) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "tenant": f"t{rng.randrange(5)}",
        "year": rng.randrange(2000, 2025),
        "score": round(rng.uniform(0, 1), 3),
        "tags": rng.sample(["a", "b", "c", "d"], rng.randint(0, 3)),
    }
    lang = rng.choice(["en", "fr", "", None, "missing"])
    if lang != "missing":
        metadata["lang"] = lang
    if rng.random() < 0.2:
        del metadata["tags"]
    return metadata


def _nodes() -> list[TextNode]:
    rng = random.Random(5)
    return [
        TextNode(text=" ".join(rng.sample(WORDS, 4)), id_=f"n{i}", metadata=_metadata(rng))
        for i in range(40)
    ]


NODES = _nodes()
METADATA = {n.node_id: n.metadata for n in NODES}


def f(key: str, value: Any, op: FilterOperator = Op.EQ) -> MetadataFilter:
    return MetadataFilter(key=key, value=value, operator=op)


# (LlamaIndex filters, the same filter written in latecore's language)
CASES: dict[str, tuple[MetadataFilters, dict[str, Any]]] = {
    "EQ": (MetadataFilters(filters=[f("tenant", "t1")]), {"tenant": "t1"}),
    "EQ number": (MetadataFilters(filters=[f("year", 2010)]), {"year": 2010}),
    "NE": (MetadataFilters(filters=[f("tenant", "t1", Op.NE)]), {"tenant": {"$ne": "t1"}}),
    "NE on a field some lack": (
        MetadataFilters(filters=[f("lang", "en", Op.NE)]),
        {"lang": {"$ne": "en"}},
    ),
    "GT": (MetadataFilters(filters=[f("year", 2015, Op.GT)]), {"year": {"$gt": 2015}}),
    "GTE float": (MetadataFilters(filters=[f("score", 0.5, Op.GTE)]), {"score": {"$gte": 0.5}}),
    "LT": (MetadataFilters(filters=[f("year", 2005, Op.LT)]), {"year": {"$lt": 2005}}),
    "LTE": (MetadataFilters(filters=[f("year", 2005, Op.LTE)]), {"year": {"$lte": 2005}}),
    "GT string": (MetadataFilters(filters=[f("lang", "e", Op.GT)]), {"lang": {"$gt": "e"}}),
    "IN": (
        MetadataFilters(filters=[f("tenant", ["t0", "t3"], Op.IN)]),
        {"tenant": {"$in": ["t0", "t3"]}},
    ),
    "IN numbers": (
        MetadataFilters(filters=[f("year", [2001, 2002, 2020], Op.IN)]),
        {"year": {"$in": [2001, 2002, 2020]}},
    ),
    "NIN": (MetadataFilters(filters=[f("lang", ["en"], Op.NIN)]), {"lang": {"$nin": ["en"]}}),
    "CONTAINS": (MetadataFilters(filters=[f("tags", "b", Op.CONTAINS)]), {"tags": "b"}),
    "ANY": (
        MetadataFilters(filters=[f("tags", ["a", "d"], Op.ANY)]),
        {"tags": {"$in": ["a", "d"]}},
    ),
    "ALL": (
        MetadataFilters(filters=[f("tags", ["a", "b"], Op.ALL)]),
        {"$and": [{"tags": "a"}, {"tags": "b"}]},
    ),
    "IS_EMPTY": (
        MetadataFilters(filters=[f("lang", None, Op.IS_EMPTY)]),
        {"$or": [{"lang": {"$exists": False}}, {"lang": ""}]},
    ),
    "IS_EMPTY list": (
        MetadataFilters(filters=[f("tags", None, Op.IS_EMPTY)]),
        {"tags": {"$exists": False}},
    ),
    "AND": (
        MetadataFilters(filters=[f("tenant", "t2", Op.NE), f("year", 2012, Op.GTE)]),
        {"tenant": {"$ne": "t2"}, "year": {"$gte": 2012}},
    ),
    "OR": (
        MetadataFilters(
            filters=[f("tenant", "t2"), f("tags", "c", Op.CONTAINS)], condition=FilterCondition.OR
        ),
        {"$or": [{"tenant": "t2"}, {"tags": "c"}]},
    ),
    "NOT": (
        MetadataFilters(
            filters=[f("tenant", "t2"), f("year", 2010, Op.LT)], condition=FilterCondition.NOT
        ),
        {"$and": [{"tenant": {"$ne": "t2"}}, {"year": {"$gte": 2010}}]},
    ),
    "nested": (
        MetadataFilters(
            filters=[
                f("year", 2008, Op.GT),
                MetadataFilters(
                    filters=[f("lang", "fr"), f("tags", ["d"], Op.ANY)],
                    condition=FilterCondition.OR,
                ),
                MetadataFilters(filters=[f("tenant", "t4")], condition=FilterCondition.NOT),
            ]
        ),
        {
            "year": {"$gt": 2008},
            "$or": [{"lang": "fr"}, {"tags": {"$in": ["d"]}}],
            "$not": {"tenant": "t4"},
        },
    ),
}


def llama_reference(filters: MetadataFilters, metadata: dict[str, Any]) -> bool:
    """LlamaIndex's own evaluation (its in-memory vector store's), nested groups combined by
    their condition as LlamaIndex defines it (NOT: none holds)."""
    results = [
        llama_reference(item, metadata)
        if isinstance(item, MetadataFilters)
        else build_metadata_filter_fn(lambda _: metadata, MetadataFilters(filters=[item]))("x")
        for item in filters.filters
    ]
    condition = filters.condition or FilterCondition.AND
    if condition == FilterCondition.AND:
        return all(results)
    if condition == FilterCondition.OR:
        return any(results)
    return not any(results)


def _retriever(kind: str, **kwargs: Any) -> LateSearchRetriever[Any]:
    cls = LateInteractionRetriever if kind == "late" else LateInteractionHybridRetriever
    return cls(NODES, encoder=FakeEncoder(), similarity_top_k=len(NODES), **kwargs)


@pytest.fixture(scope="module", params=["late", "hybrid"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.parametrize("case", list(CASES))
def test_each_operator_gives_the_same_nodes(kind: str, case: str) -> None:
    filters, mapping = CASES[case]
    retriever = _retriever(kind, filters=filters)
    got = [n.node.node_id for n in retriever.retrieve(QUERY)]
    expected = [h.id for h in retriever.searcher.search(QUERY, len(NODES), filter=mapping)]
    assert got == expected
    reference = {i for i, m in METADATA.items() if llama_reference(filters, m)}
    assert set(got) == reference
    assert 0 < len(reference) < len(NODES), "the case must select some nodes, not all"
    assert all(llama_reference(filters, n.node.metadata) for n in retriever.retrieve(QUERY))
    aretrieved = asyncio.run(retriever.aretrieve(QUERY))
    assert [n.node.node_id for n in aretrieved] == got


def test_the_top_k_are_the_best_matching_nodes(kind: str) -> None:
    filters, mapping = CASES["AND"]
    retriever = _retriever(kind, filters=filters)
    retriever.similarity_top_k = 3
    got = retriever.retrieve(QUERY)
    best = retriever.searcher.search(QUERY, 3, filter=mapping)
    assert [(n.node.node_id, n.score) for n in got] == [(h.id, h.score) for h in best]
    unfiltered = [h.id for h in retriever.searcher.search(QUERY, 3)]
    assert [n.node.node_id for n in got] != unfiltered  # the filter was applied in the search


def test_filters_can_be_set_and_cleared(kind: str) -> None:
    retriever = _retriever(kind)
    assert retriever.filters is None and len(retriever.retrieve(QUERY)) == len(NODES)
    retriever.filters = CASES["EQ"][0]
    assert retriever.filters is CASES["EQ"][0]
    assert {n.node.metadata["tenant"] for n in retriever.retrieve(QUERY)} == {"t1"}
    retriever.filters = MetadataFilters(filters=[])  # no conditions: no filter
    assert len(retriever.retrieve(QUERY)) == len(NODES)
    retriever.filters = None
    assert len(retriever.retrieve(QUERY)) == len(NODES)


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        (MetadataFilters(filters=[f("body", "river", Op.TEXT_MATCH)]), "TEXT_MATCH .*substring"),
        (
            MetadataFilters(filters=[f("body", "river", Op.TEXT_MATCH_INSENSITIVE)]),
            "TEXT_MATCH_INSENSITIVE .*substring",
        ),
        (
            MetadataFilters(filters=[MetadataFilters(filters=[f("b", "x", Op.TEXT_MATCH)])]),
            "TEXT_MATCH",
        ),
        (MetadataFilters(filters=[f("lang", None)]), "EQ .*None.*IS_EMPTY"),
        (MetadataFilters(filters=[f("lang", None, Op.NE)]), "NE .*None"),
        (MetadataFilters(filters=[f("tags", ["a", "b"])]), "EQ .*one value.*IN, ANY or ALL"),
        (MetadataFilters(filters=[f("tenant", "t1", Op.IN)]), "IN .*takes a list"),
        (MetadataFilters(filters=[f("tags", "a", Op.ALL)]), "ALL .*takes a list"),
        (MetadataFilters(filters=[f("tags", [], Op.ALL)]), "ALL .*at least one value"),
        (MetadataFilters(filters=[f("$and", 1)]), "'\\$and' cannot be filtered on"),
        (MetadataFilters(filters=[f("a..b", 1)]), "not a field name"),
    ],
)
def test_unmappable_filters_are_refused_naming_them(
    kind: str, filters: MetadataFilters, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        latecore_filter(filters)
    with pytest.raises(ValueError, match=message):
        _retriever(kind, filters=filters)
    retriever = _retriever(kind, filters=CASES["EQ"][0])
    with pytest.raises(ValueError, match=message):
        retriever.filters = filters
    assert retriever.filters is CASES["EQ"][0]  # the previous filters still hold
    assert {n.node.metadata["tenant"] for n in retriever.retrieve(QUERY)} == {"t1"}


def test_deep_nesting_is_refused_before_recursing() -> None:
    deep = MetadataFilters(filters=[f("tenant", "t1")])
    for _ in range(60):
        deep = MetadataFilters(filters=[deep])
    with pytest.raises(ValueError, match="nest deeper than"):
        latecore_filter(deep)
    with pytest.raises(TypeError, match="MetadataFilters"):
        latecore_filter({"tenant": "t1"})  # type: ignore[arg-type]


def test_docstring_examples_run() -> None:
    # The package lives outside the root testpaths, so its doctests run from here.
    import llama_index.retrievers.latecore.filters as module

    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
