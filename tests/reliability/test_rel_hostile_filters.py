"""Hostile filters: 200+ hostile filter values and keys on exact, warp, qdrant (edge), lancedb.

Each filter gives either the result a pure-Python reference evaluation of the filter
over the stored metadata gives (written here, independent of latecore's code), or an
:class:`~latecore.errors.InputError` with a short message; never a hit that fails the
filter, another exception, or a change to the index or the engine's table.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Mapping
from typing import Any
from unittest import mock

import numpy as np
import pytest

import latecore.index_view
from latecore import LateIndex
from latecore.errors import InputError
from latecore.filters import compile_filter
from latecore.testing import FakeEncoder

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

MESSAGE_LIMIT = 300
"""Longest InputError message accepted: it names the problem, never echoes a huge value."""

HOSTILE = [
    "' OR 1=1 --",
    "'; DROP TABLE documents; --",
    '"); DROP TABLE latecore; --',
    "1' OR '1'='1",
    "latecore_id IN ('a')",
    "' UNION SELECT * FROM t --",
    "'",
    '"',
    "''",
    "\\",
    "\\'",
    "\\\\'\"",
    "%",
    "_",
    "*",
    "..",
    ".",
    ".a",
    "a.",
    "\x00",
    "a\x00b",
    "$gt",
    "$in",
    "\ud800",
    "a\udfffb",
    "\U0001f980",
    "\U0001f469\u200d\U0001f469\u200d\U0001f467",
    "\u202egnp.exe",
    "\ufeff",
    "é",
    "e\u0301",
    "日本語",
    "NULL",
    "null",
    "None",
    "true",
    "True",
    "1",
    "1.0",
    "",
    " ",
    "\n\t\r",
    "x" * 5_000,
]
"""Hostile strings: stored as metadata values and used as filter values and keys."""

MIXED: list[Any] = [0, 1, 1.0, -1, 2, 2.5, True, False, None, "1", "true", [], [None], {}]
"""Values of the ``mixed`` field: booleans beside the integers 0 and 1 and their strings."""

N_DOCS = 90
WORDS = [
    "paris",
    "france",
    "berlin",
    "river",
    "city",
    "capital",
    "music",
    "piano",
    "bread",
    "cheese",
    "wine",
    "night",
]


def _metadata(i: int, rng: random.Random) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "tenant": HOSTILE[i % len(HOSTILE)],
        "n": rng.choice([0, 1, 2, 3, -4, 0.5, 2**53, -(2**53)]),
        "flag": rng.choice([True, False, 1, 0, 1.0, "True"]),
        "mixed": rng.choice(MIXED),
        "tags": rng.sample(HOSTILE, rng.randint(0, 3)),
        "nested": {"k": rng.choice(HOSTILE), "deep": {"v": rng.randrange(3)}},
        "items": [{"b": rng.randrange(3)}],
        "a.b": "dotted-key",
        "$x": "dollar-key",
    }
    if i % 3:
        metadata[rng.choice(HOSTILE[:20])] = rng.choice(HOSTILE)  # a hostile key in the store
    if i % 5 == 0:
        metadata["a"] = {"b": "nested-key"}
    if i % 7 == 0:
        del metadata["mixed"]
    return metadata


# --- the reference: the filter language evaluated on plain Python values ----------------------

_MISSING = object()


def _lookup(metadata: Mapping[str, Any], key: str) -> Any:
    value: Any = metadata
    for part in key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number" if math.isfinite(value) else "other"
    return "string" if isinstance(value, str) else "other"


def _same(stored: Any, wanted: Any) -> bool:
    kind = _kind(stored)
    return kind == _kind(wanted) and kind != "other" and stored == wanted


def _key(value: Any) -> tuple[str, Any]:
    """What ``value`` equals as a filter value: its kind and itself (``1 == 1.0``, not ``True``)."""
    return _kind(value), value


def _ordered(stored: Any, op: str, bound: Any) -> bool:
    kind = _kind(stored)
    if kind != _kind(bound) or kind not in ("number", "string"):
        return False
    return {
        "$gt": stored > bound,
        "$gte": stored >= bound,
        "$lt": stored < bound,
        "$lte": stored <= bound,
    }[op]


def reference(spec: Mapping[str, Any], metadata: Mapping[str, Any]) -> bool:
    """Whether ``spec`` holds for ``metadata`` (``spec`` already accepted by latecore)."""
    held = []
    for key, value in spec.items():
        if key == "$and":
            held.append(all(reference(s, metadata) for s in value))
        elif key == "$or":
            held.append(any(reference(s, metadata) for s in value))
        elif key == "$not":
            held.append(not reference(value, metadata))
        else:
            stored = _lookup(metadata, key)
            found = [] if stored is _MISSING else stored if isinstance(stored, list) else [stored]
            operators = value if isinstance(value, Mapping) else {"$eq": value}
            for op, operand in operators.items():
                if op == "$eq":
                    held.append(any(_same(v, operand) for v in found))
                elif op == "$ne":
                    held.append(not any(_same(v, operand) for v in found))
                elif op in ("$in", "$nin"):
                    wanted = {_key(o) for o in operand}
                    inside = any(_key(v) in wanted for v in found if _kind(v) != "other")
                    held.append(inside if op == "$in" else not inside)
                elif op == "$exists":
                    present = stored is not _MISSING and stored is not None and stored != []
                    held.append(present == operand)
                else:
                    held.append(any(_ordered(v, op, operand) for v in found))
    return all(held)


# --- the hostile filters --------------------------------------------------------------------


def _nested_dicts(depth: int) -> dict[str, Any]:
    spec: dict[str, Any] = {"tenant": "'"}
    for _ in range(depth):
        spec = {"nested": spec}
    return spec


def _nested(operator: str, depth: int) -> dict[str, Any]:
    spec: dict[str, Any] = {"tenant": "'"}
    for _ in range(depth):
        spec = {operator: [spec]} if operator != "$not" else {"$not": spec}
    return spec


def _nested_lists(depth: int) -> list[Any]:
    value: list[Any] = ["x"]
    for _ in range(depth):
        value = [value]
    return value


def hostile_filters() -> list[Any]:
    """Filters that must each give the reference's result or an InputError."""
    specs: list[Any] = []
    for text in HOSTILE:  # hostile values, through every operator
        specs += [
            {"tenant": text},
            {"tenant": {"$ne": text}},
            {"tags": {"$in": [text, "'"]}},
            {"nested.k": {"$nin": [text]}},
            {"tenant": {"$gte": text}},
            {"$or": [{"tags": text}, {"nested.k": {"$lt": text}}]},
        ]
    for text in HOSTILE:  # hostile keys
        specs += [{text: "dotted-key"}, {text: {"$exists": True}}, {f"nested.{text}": text}]
    specs += [
        {"a.b": "dotted-key"},  # a dotted key names nested metadata, never the stored "a.b"
        {"a.b": "nested-key"},
        {"$x": "dollar-key"},
        {"a..b": 1},
        {"a.$b": 1},
        {".": 1},
        {"..": 1},
        {"": 1},
        {"x" * 2_000: 1},
        {"x" * 100_000: {"$exists": False}},
        {b"tenant": "'"},
        {b"x" * 100_000: 1},
        {("tenant",): 1},
        {None: 1},
        {1: 1},
        {"items.b": 1},  # a list of mappings is not traversed by a dotted key
        {"nested.deep.v": {"$in": [0, 2]}},
    ]
    for value in (True, False, 1, 0, 1.0, 0.0, "True", "1"):  # bool is never a number
        specs += [{"flag": value}, {"flag": {"$ne": value}}, {"mixed": value}]
        specs += [{"flag": {"$in": [value]}}, {"mixed": {"$nin": [value]}}]
    specs += [
        {"flag": {"$gt": 0}},
        {"flag": {"$gte": True}},
        {"mixed": {"$lt": 2}},
        {"mixed": None},
        {"mixed": {"$ne": None}},
        {"mixed": {"$in": [None, True]}},
        {"mixed": {"$exists": True}},
        {"mixed": {"$exists": False}},
        {"n": 2**53},
        {"n": {"$lte": -(2**53)}},
    ]
    for number in (2**70, -(2**70), 2**1100, 10**400, math.nan, math.inf, -math.inf):
        specs += [{"n": number}, {"n": {"$gt": number}}, {"n": {"$in": [1, number]}}]
    specs += [{"n": float("nan")}, {"n": {"$lt": float("-inf")}}]
    for bad in (b"'", bytearray(b"x"), ["'"], {"'": 1}, ("a",), {1, 2}, object(), 1j):
        specs += [{"tenant": bad}, {"tenant": {"$in": [bad]}}]
    specs += [
        {"tenant": {"$in": []}},
        {"tenant": {"$nin": []}},
        {"$and": []},
        {"$or": []},
        {"$and": [{}]},
        {"$not": {}},
        {"tenant": {}},
        {},
        {"tenant": {"$in": [f"t{i}'--" for i in range(10_000)] + ["'"]}},
        {"tenant": {"$nin": [f"{i}" for i in range(9_999)] + ['"']}},
        {"n": {"$in": list(range(10_000))}},
        {"mixed": {"$nin": [*range(5_000), *map(str, range(5_000))]}},
        {"tenant": {"$in": [*HOSTILE] * 250}},
        {"tenant": {"$in": "' OR 1=1 --"}},
        {"tenant": {"$in": {"'": 1}}},
        {"tenant": {"$in": _nested_lists(5_000)}},
        {"tenant": {"$exists": _nested_lists(5_000)}},
        {"$or": {"tenant": _nested_lists(5_000)}},
        {"$and": "x" * 100_000},
        {"tenant": {"$between": ["a", "b"]}},
        {"tenant": {"$regex": ".*"}},
        {"$where": "1=1"},
        {"tenant": {"$exists": 1}},
        {"tenant": {"$eq": "'", "$ne": '"'}},
        _nested_dicts(1_000),
        _nested("$and", 1_000),
        _nested("$or", 1_000),
        _nested("$not", 1_000),
        _nested("$and", 20),
        _nested_dicts(3),
        "tenant = 'x' OR 1=1",
        ["tenant"],
    ]
    return specs


SPECS = hostile_filters()


def test_there_are_over_200_hostile_filters() -> None:
    assert len(SPECS) >= 200


# --- the indexes ------------------------------------------------------------------------------

CONFIGS: dict[str, dict[str, Any]] = {
    "exact": {},
    "warp": {"build_min": 40, "n_candidates": 200, "nprobe": 32},
    "qdrant": {"prefetch": 200},
    "lancedb": {},
}


@pytest.fixture(params=list(CONFIGS))
def index(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[LateIndex]:
    name = request.param
    if name != "exact":
        request.applymarker(pytest.mark.engines)
        pytest.importorskip({"warp": "xtr_warp", "qdrant": "qdrant_edge"}.get(name, name))
    monkeypatch.setattr(latecore.index_view, "EXACT_SUBSET", 0)  # the engines filter too
    rng = random.Random(22)
    texts = [" ".join(rng.choices(WORDS, k=rng.randint(12, 20))) for _ in range(N_DOCS)]
    metadatas = [_metadata(i, rng) for i in range(N_DOCS)]
    with LateIndex(FakeEncoder(dim=16), backend=name, **CONFIGS[name]) as built:
        built.add(texts, ids=[f"d{i}" for i in range(N_DOCS)], metadatas=metadatas)
        built.build()
        yield built


def _snapshot(index: LateIndex) -> Any:
    """What a filter must never change: the documents, and the engine's rows."""
    documents = [(h.id, h.text, h.metadata) for h in index.get(index.ids)]
    backend: Any = index.backend
    rows = None
    if index.backend.name in ("qdrant", "lancedb"):
        table = backend._engine
        rows = (table.count(), sorted((str(k), d) for k, d, _ in table.digests()))
    return len(index), documents, rows


def _short(spec: Any) -> str:
    return repr(spec)[:120] if not isinstance(spec, dict) or len(repr(spec)) < 400 else "<big>"


def test_hostile_filters_give_the_reference_result_or_an_input_error(index: LateIndex) -> None:
    before = _snapshot(index)
    metadatas = {h.id: h.metadata for h in index.get(index.ids)}
    query = index.encoder.encode_queries(["paris river music"])
    answered = refused = 0
    for spec in SPECS:
        try:
            compiled = compile_filter(spec)
        except InputError as error:
            assert len(str(error)) <= MESSAGE_LIMIT, (_short(spec), str(error)[:200])
            with pytest.raises(InputError):
                index.search("paris", k=5, filter=spec)
            refused += 1
            continue
        want = {i for i, m in metadatas.items() if reference(spec, m)}
        hits = index.search("paris river music", k=N_DOCS, filter=spec)
        got = {h.id for h in hits}
        assert got <= want, (_short(spec), sorted(got - want)[:5])  # no leak
        assert all(reference(spec, h.metadata) for h in hits), _short(spec)
        assert index.count(spec) == len(want), _short(spec)
        if index.backend.name in ("exact", "qdrant", "lancedb"):  # all of them, in full
            assert got == want, (_short(spec), sorted(want - got)[:5])
        if compiled is not None and index.backend.name != "exact":
            _assert_engine_stays_inside(index, query, compiled, want, spec)
        answered += 1
    assert _snapshot(index) == before
    assert answered >= 150 and refused >= 50, (answered, refused)


def _assert_engine_stays_inside(
    index: LateIndex, query: list[np.ndarray], compiled: Any, want: set[str], spec: Any
) -> None:
    """The engine itself, told the filter, names no document outside it (before latecore's
    own check drops such a hit); Qdrant and LanceDB (every row scored) name all of them."""
    backend: Any = index.backend
    with index.view() as view:
        where = view.select(compiled)
        if index.backend.name == "warp":
            assert backend.built  # WARP itself searches, not the exact fallback
            if not len(where.positions):
                return
            subset = backend._passages_of(view.store, where.positions)
            found = backend._query(backend._handle, query, N_DOCS, subset)[0]
            named = {backend._passages[p] for p in found if p in backend._passages}
        else:
            # LanceDB applies a broad filter after its search (POSTFILTER_SHARE); here its
            # prefilter is forced, so that the translation of every hostile filter is checked.
            with mock.patch(f"{type(backend).__module__}.POSTFILTER_SHARE", 2.0, create=True):
                candidates = backend._query(view.store, query, N_DOCS, False, where)[0]
            named = {str(c.id) for c in candidates}
    assert named <= want, (_short(spec), sorted(named - want)[:5])
    if index.backend.name != "warp":
        assert named == want, (_short(spec), sorted(want - named)[:5])
