"""The filter language: what compiles, what is refused with an InputError, and that every
operator and combinator holds exactly where an independent reference evaluator says so."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

from latecore.errors import InputError
from latecore.filters import MAX_DEPTH, MetadataColumns, compile_filter

# --- an independent reference: plain Python over the metadata dicts -------------------------

_MISSING = object()


def _get(metadata: Mapping[str, Any], key: str) -> object:
    value: object = metadata
    for part in key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _same(stored: object, wanted: object) -> bool:
    if isinstance(stored, bool) or isinstance(wanted, bool):
        return isinstance(stored, bool) and isinstance(wanted, bool) and stored == wanted
    if stored is None or wanted is None:
        return stored is None and wanted is None
    if isinstance(stored, (int, float)) and isinstance(wanted, (int, float)):
        return math.isfinite(stored) and float(stored) == float(wanted)
    return isinstance(stored, str) and isinstance(wanted, str) and stored == wanted


def _ordered(stored: object, op: str, bound: object) -> bool:
    numbers = (int, float)
    if isinstance(stored, bool) or isinstance(bound, bool):
        return False
    comparable = (isinstance(stored, numbers) and isinstance(bound, numbers)) or (
        isinstance(stored, str) and isinstance(bound, str)
    )
    if not comparable:
        return False
    a, b = stored, bound
    return {"$gt": a > b, "$gte": a >= b, "$lt": a < b, "$lte": a <= b}[op]  # type: ignore[operator]


def _values(stored: object) -> list[object]:
    return stored if isinstance(stored, list) else [stored]


def reference(spec: Mapping[str, Any], metadata: Mapping[str, Any]) -> bool:
    results = []
    for key, value in spec.items():
        if key == "$and":
            results.append(all(reference(s, metadata) for s in value))
        elif key == "$or":
            results.append(any(reference(s, metadata) for s in value))
        elif key == "$not":
            results.append(not reference(value, metadata))
        else:
            stored = _get(metadata, key)
            ops = value if isinstance(value, Mapping) else {"$eq": value}
            for op, operand in ops.items():
                found = [] if stored is _MISSING else _values(stored)
                if op == "$eq":
                    results.append(any(_same(v, operand) for v in found))
                elif op == "$ne":
                    results.append(not any(_same(v, operand) for v in found))
                elif op == "$in":
                    results.append(any(_same(v, o) for v in found for o in operand))
                elif op == "$nin":
                    results.append(not any(_same(v, o) for v in found for o in operand))
                elif op == "$exists":
                    present = stored is not _MISSING and stored is not None and stored != []
                    results.append(present == operand)
                else:
                    results.append(any(_ordered(v, op, operand) for v in found))
    return all(results)


# --- generated metadata and filters ----------------------------------------------------------

TAGS = ["red", "green", "blue", "o'reilly", "semi;colon", ""]


def _metadata(rng: random.Random) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    choices: list[object] = [
        rng.randrange(-3, 10),
        rng.choice([0.5, 2.0, 3.0, -1.25]),
        rng.choice(TAGS),
        rng.random() < 0.5,
        None,
        [rng.choice(TAGS), rng.randrange(5)],
        [],
    ]
    for field in ("n", "tag", "flag"):
        if rng.random() < 0.8:
            metadata[field] = rng.choice(choices)
    if rng.random() < 0.6:
        metadata["author"] = {"name": rng.choice(TAGS), "year": rng.randrange(1990, 2030)}
    return metadata


def _leaf(rng: random.Random) -> dict[str, Any]:
    field = rng.choice(["n", "tag", "flag", "author.name", "author.year", "absent"])
    scalar = rng.choice([rng.randrange(-3, 10), 2.0, rng.choice(TAGS), True, False, None, 2020])
    op = rng.choice(["=", "$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists"])
    if op == "=":
        return {field: scalar}
    if op in ("$gt", "$gte", "$lt", "$lte"):
        bound = rng.choice([rng.randrange(-3, 10), 2.5, rng.choice(TAGS), 2020])
        return {field: {op: bound}}
    if op in ("$in", "$nin"):
        return {field: {op: rng.sample([1, 2, 3.0, "red", "blue", True, None, ""], 3)}}
    if op == "$exists":
        return {field: {op: rng.random() < 0.5}}
    return {field: {op: scalar}}


def _filter(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    roll = rng.random()
    if depth >= 3 or roll < 0.45:
        return _leaf(rng)
    if roll < 0.65:
        return {"$and": [_filter(rng, depth + 1) for _ in range(rng.randint(1, 3))]}
    if roll < 0.85:
        return {"$or": [_filter(rng, depth + 1) for _ in range(rng.randint(1, 3))]}
    return {"$not": _filter(rng, depth + 1)}


def test_every_operator_and_combinator_matches_the_reference() -> None:
    rng = random.Random(7)
    metadatas = [_metadata(rng) for _ in range(400)]
    columns = MetadataColumns(metadatas)
    checked = 0
    for _ in range(600):
        spec = _filter(rng)
        got = compile_filter(spec).mask(columns)  # type: ignore[union-attr]
        want = np.array([reference(spec, m) for m in metadatas])
        assert got.tolist() == want.tolist(), spec
        checked += int(want.sum() not in (0, len(metadatas)))
    assert checked > 200  # most filters split the documents: the comparison is not trivial


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"n": 1}, [0, 4]),  # 1 == 1.0; a list matches if an element does
        ({"n": {"$ne": 1}}, [1, 2, 3, 5, 6]),  # a document without the field is not 1
        ({"n": {"$gt": 1.5}}, [1, 4]),  # 7 > 1.5
        ({"tag": {"$gte": "b"}}, [1, 2]),  # strings compare with strings, lexicographically
        ({"tag": {"$in": ["a", "c"]}}, [0, 2]),
        ({"tag": {"$nin": ["a", "c"]}}, [1, 3, 4, 5, 6]),
        ({"flag": True}, [3]),  # True is not 1
        ({"flag": {"$exists": True}}, [3, 5]),  # present, not None, not []
        ({"flag": {"$exists": False}}, [0, 1, 2, 4, 6]),
        ({"deep.er": "x"}, [6]),
        ({"$or": [{"n": 2}, {"flag": False}]}, [1, 5]),
        ({"$not": {"n": {"$exists": True}}}, [2, 3, 5, 6]),
        ({"n": {"$gte": 1, "$lt": 2}}, [0, 4]),  # several operators: all hold
    ],
)
def test_semantics_of_each_operator(spec: dict[str, Any], expected: list[int]) -> None:
    metadatas = [
        {"n": 1, "tag": "a"},
        {"n": 2.0, "tag": "b"},
        {"tag": "c", "flag": None},
        {"flag": True, "tag": 5},
        {"n": [7, 1.0], "flag": []},
        {"flag": False},
        {"deep": {"er": "x"}},
    ]
    mask = compile_filter(spec).mask(MetadataColumns(metadatas))  # type: ignore[union-attr]
    assert np.flatnonzero(mask).tolist() == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"n": {"$between": [1, 2]}}, "unknown filter operator '\\$between'"),
        ({"$xor": []}, "unknown filter operator '\\$xor' at the top"),
        ({"$and": {"n": 1}}, "\\$and takes a non-empty list"),
        ({"$or": []}, "\\$or takes a non-empty list"),
        ({"$and": [1]}, "each filter in \\$and must be a non-empty mapping"),
        ({"$not": []}, "\\$not takes one non-empty filter mapping"),
        ({"n": {"$gt": [1]}}, "compares numbers with numbers or strings with strings"),
        ({"n": {"$gt": True}}, "compares numbers"),
        ({"n": {"$lt": None}}, "compares numbers"),
        ({"n": {"$in": "abc"}}, "takes a list"),
        ({"n": {"$exists": 1}}, "takes true or false"),
        ({"n": [1, 2]}, "use \\{'\\$in'"),
        ({"n": {"a": 1}}, "unknown filter operator 'a'"),
        ({"n": {}}, "are empty"),
        ({"n": float("nan")}, "must be a string, number"),
        ({"a..b": 1}, "is not a field name"),
        ({"": 1}, "is not a field name"),
        ({"a.$b": 1}, "is not a field name"),
        ({"a\x00b": 1}, "is not a field name"),
        ({1: 2}, "keys must be strings"),
        ([("n", 1)], "must be a mapping"),
    ],
)
def test_malformed_filters_raise_input_errors(spec: Any, message: str) -> None:
    with pytest.raises(InputError, match=message):
        compile_filter(spec)


def test_deep_nesting_is_refused_before_recursion() -> None:
    spec: dict[str, Any] = {"n": 1}
    for _ in range(1000):
        spec = {"$not": spec}
    with pytest.raises(InputError, match=f"deeper than {MAX_DEPTH}"):
        compile_filter(spec)
    ok: dict[str, Any] = {"n": 1}
    for _ in range(MAX_DEPTH - 2):
        ok = {"$and": [ok]}
    assert compile_filter(ok) is not None


def test_no_filter_and_huge_membership() -> None:
    assert compile_filter(None) is None and compile_filter({}) is None
    values = [f"v{i}" for i in range(10_000)]
    mask = compile_filter({"tag": {"$in": values}}).mask(  # type: ignore[union-attr]
        MetadataColumns([{"tag": "v9999"}, {"tag": "x"}])
    )
    assert mask.tolist() == [True, False]
    with pytest.raises(InputError, match="more than"):
        compile_filter({"tag": {"$in": list(range(100_001))}})
