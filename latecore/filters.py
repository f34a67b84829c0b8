"""Metadata filters: one language, compiled once per call, evaluated over columns.

The language is the operator set LangChain vector stores accept, on document
metadata:

- ``{"field": value}``: equality (several fields in one mapping: all must hold);
- ``{"field": {"$eq" | "$ne" | "$gt" | "$gte" | "$lt" | "$lte": value}}``;
- ``{"field": {"$in" | "$nin": [value, ...]}}`` and ``{"field": {"$exists": bool}}``
  (several operators in one mapping: all must hold);
- ``{"$and": [filter, ...]}``, ``{"$or": [filter, ...]}``, ``{"$not": filter}``;
- dotted fields name nested metadata: ``"author.name"`` is ``metadata["author"]["name"]``.

Semantics (the same on every backend; engines get a translation of it, and
every hit is checked against it again before it is returned):

- values are strings, numbers (finite; integers within :data:`MAX_INTEGER`),
  booleans or ``None``; numbers compare with
  numbers (``1 == 1.0``), strings with strings (ranges lexicographically, so
  ISO dates work), booleans only with booleans; a stored value of another
  type never matches an operator, it is not an error;
- a stored list matches ``$eq``, ``$in`` and the ranges if any element does;
- ``$ne`` and ``$nin`` are the negations of ``$eq`` and ``$in``: a document
  without the field matches them;
- ``$exists: true`` holds where the field is present, not ``None`` and not ``[]``.

:func:`compile_filter` turns a mapping into a :class:`Filter` tree or raises
:class:`~latecore.errors.InputError` naming the problem: an unknown operator,
a malformed filter, a value of the wrong type for its operator, a field that
is not a clean dotted name, or nesting deeper than :data:`MAX_DEPTH` (checked
before any recursion, so a hostile filter never reaches Python's recursion
limit). :meth:`Filter.mask` evaluates a tree over :class:`MetadataColumns`, a
columnar view of the documents' metadata built once per change of the store,
so filtering 100k documents is a few numpy operations per condition.

Examples
--------
>>> filter_ = compile_filter({"lang": "en", "year": {"$gte": 2020}})
>>> columns = MetadataColumns([{"lang": "en", "year": 2021}, {"lang": "de", "year": 2022},
...                            {"lang": "en", "year": 2019}, {"lang": ["en", "fr"], "year": 2024}])
>>> filter_.mask(columns).tolist()
[True, False, False, True]
>>> compile_filter({"year": {"$between": [1, 2]}})
Traceback (most recent call last):
...
latecore.errors.InputError: unknown filter operator '$between' for field 'year'; use one of $eq, $exists, $gt, $gte, $in, $lt, $lte, $ne, $nin
"""  # noqa: E501

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .errors import InputError

__all__ = [
    "MAX_DEPTH",
    "MAX_INTEGER",
    "MAX_VALUES",
    "All",
    "AnyOf",
    "Compare",
    "Exists",
    "Filter",
    "FilterSpec",
    "Member",
    "MetadataColumns",
    "Not",
    "compile_filter",
]

MAX_DEPTH = 32
"""Deepest nesting of ``$and``/``$or``/``$not`` and field mappings a filter may have."""

MAX_VALUES = 100_000
"""Most values one ``$in``/``$nin`` may list."""

MAX_INTEGER = 2**53
"""Largest integer magnitude a filter may name: integers up to it are exact as floats, which
is how every backend compares numbers (a larger stored integer matches no operator)."""

Scalar = str | int | float | bool | None

COMPARISONS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte")
MEMBERSHIP = ("$in", "$nin")
OPERATORS = (*COMPARISONS, *MEMBERSHIP, "$exists")
_SEGMENT = re.compile(r"[^\x00-\x1f\x7f.$][^\x00-\x1f\x7f.]*")

_NUMERIC = {"$gt": np.greater, "$gte": np.greater_equal, "$lt": np.less, "$lte": np.less_equal}

# Kinds of stored values, per occurrence.
_NONE, _BOOL, _NUMBER, _STRING, _OTHER = range(5)


def _kind(value: object) -> int:
    if value is None:
        return _NONE
    if isinstance(value, bool):
        return _BOOL
    if isinstance(value, float):
        return _NUMBER if math.isfinite(value) else _OTHER
    if isinstance(value, int):
        return _NUMBER if -MAX_INTEGER <= value <= MAX_INTEGER else _OTHER
    if isinstance(value, str):
        return _STRING
    return _OTHER


def _utf8(text: str) -> bool:
    """Whether ``text`` is valid Unicode (no lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class MetadataColumns:
    """The documents' metadata as columns, one per field path, built on first use.

    Document ``i`` is ``metadatas[i]``. A column lists every occurrence of the
    field (a stored list contributes each element) with its document, kind and
    value, so a condition is a comparison over arrays and a scatter into a mask.
    """

    def __init__(self, metadatas: Sequence[Mapping[str, Any]]) -> None:
        self._metadatas = metadatas
        self._columns: dict[tuple[str, ...], _Column] = {}

    def __len__(self) -> int:
        return len(self._metadatas)

    def column(self, path: tuple[str, ...]) -> _Column:
        """The column of field ``path`` (built now if it is the first time)."""
        found = self._columns.get(path)
        if found is None:
            found = self._columns[path] = _Column.build(self._metadatas, path)
        return found


class _Column:
    """One field's occurrences: document, kind, numeric value and string code of each."""

    def __init__(
        self,
        n: int,
        docs: np.ndarray,
        kinds: np.ndarray,
        numbers: np.ndarray,
        strings: np.ndarray,
        present: np.ndarray,
        vocabulary: np.ndarray,
    ) -> None:
        self.n, self.docs, self.kinds = n, docs, kinds
        self.numbers, self.strings, self.present, self.vocabulary = (
            numbers,
            strings,
            present,
            vocabulary,
        )
        self.plain = True
        """Every occurrence a string, number, boolean or ``None`` (not inside a list), no
        list met on the way down the path, every string valid UTF-8: an engine that reads
        the same JSON can evaluate conditions on the field natively."""

    @classmethod
    def build(cls, metadatas: Sequence[Mapping[str, Any]], path: tuple[str, ...]) -> _Column:
        docs: list[int] = []
        values: list[object] = []
        present = np.zeros(len(metadatas), dtype=bool)
        plain = True
        for i, metadata in enumerate(metadatas):
            value: object = metadata
            for part in path:
                if not isinstance(value, Mapping) or part not in value:
                    plain = plain and not isinstance(value, list)
                    break
                value = value[part]
            else:
                present[i] = value is not None and value != []
                items = value if isinstance(value, list) else [value]
                plain = plain and not (isinstance(value, list) and None in items)
                docs.extend([i] * len(items))
                values.extend(items)
        kinds = np.array([_kind(v) for v in values], dtype=np.int8)
        numbers = np.array(
            [
                float(v) if k in (_NUMBER, _BOOL) else 0.0  # type: ignore[arg-type]
                for v, k in zip(values, kinds, strict=True)
            ],
            dtype=np.float64,
        )
        texts = [str(v) for v, k in zip(values, kinds, strict=True) if k == _STRING]
        vocabulary = np.array(sorted(set(texts)), dtype=object)
        codes = np.full(len(values), -1, dtype=np.int64)
        if texts:
            index = {word: code for code, word in enumerate(vocabulary.tolist())}
            strings_at = np.flatnonzero(kinds == _STRING)
            codes[strings_at] = [index[t] for t in texts]
        docs_array = np.array(docs, dtype=np.int64)
        column = cls(len(metadatas), docs_array, kinds, numbers, codes, present, vocabulary)
        column.plain = plain and not (kinds == _OTHER).any() and all(map(_utf8, texts))
        return column

    def documents(self, hits: np.ndarray) -> np.ndarray:
        """The mask of documents with at least one occurrence where ``hits`` is true."""
        mask = np.zeros(self.n, dtype=bool)
        mask[self.docs[hits]] = True
        return mask

    def equal(self, value: Scalar) -> np.ndarray:
        kind = _kind(value)
        if kind == _NONE:
            return self.documents(self.kinds == _NONE)
        if kind == _STRING:
            code = int(np.searchsorted(self.vocabulary, str(value))) if len(self.vocabulary) else 0
            if code >= len(self.vocabulary) or self.vocabulary[code] != value:
                return np.zeros(self.n, dtype=bool)
            return self.documents(self.strings == code)
        number = float(value)  # type: ignore[arg-type]
        return self.documents((self.kinds == kind) & (self.numbers == number))

    def among(self, values: Sequence[Scalar]) -> np.ndarray:
        hits = np.zeros(len(self.kinds), dtype=bool)
        texts = [v for v in values if isinstance(v, str)]
        if texts and len(self.vocabulary):
            wanted = np.array(sorted(set(texts)), dtype=object)
            codes = np.searchsorted(self.vocabulary, wanted)
            inside = codes < len(self.vocabulary)
            known = codes[inside][self.vocabulary[codes[inside]] == wanted[inside]]
            hits |= np.isin(self.strings, known) & (self.kinds == _STRING)
        for kind in (_NUMBER, _BOOL):
            numbers = [float(v) for v in values if _kind(v) == kind]  # type: ignore[arg-type]
            if numbers:
                hits |= (self.kinds == kind) & np.isin(self.numbers, numbers)
        if any(v is None for v in values):
            hits |= self.kinds == _NONE
        return self.documents(hits)

    def ordered(self, op: str, value: str | float) -> np.ndarray:
        if isinstance(value, str):
            if not len(self.vocabulary):
                return np.zeros(self.n, dtype=bool)
            side: Literal["left", "right"] = "left" if op in ("$gte", "$lt") else "right"
            bound = np.searchsorted(self.vocabulary, np.array(value, dtype=object), side=side)
            codes, valid = self.strings, self.kinds == _STRING
            hits = codes >= bound if op in ("$gt", "$gte") else codes < bound
            return self.documents(valid & hits)
        numbers, valid = self.numbers, self.kinds == _NUMBER
        compare = _NUMERIC[op]
        return self.documents(valid & compare(numbers, float(value)))


class Filter(ABC):
    """A compiled filter: a tree of conditions on metadata fields."""

    @abstractmethod
    def mask(self, columns: MetadataColumns) -> np.ndarray:
        """Which documents (bool, one per document of ``columns``) the filter holds for."""

    @abstractmethod
    def fields(self) -> set[tuple[str, ...]]:
        """Every field path the filter reads."""


@dataclass(frozen=True)
class Compare(Filter):
    """``field`` compared with ``value`` by ``op`` (``$eq``, ``$ne``, ``$gt`` ...)."""

    field: tuple[str, ...]
    op: str
    value: Scalar

    def mask(self, columns: MetadataColumns) -> np.ndarray:
        column = columns.column(self.field)
        if self.op == "$eq":
            return column.equal(self.value)
        if self.op == "$ne":
            return ~column.equal(self.value)
        return column.ordered(self.op, self.value)  # type: ignore[arg-type]

    def fields(self) -> set[tuple[str, ...]]:
        return {self.field}


@dataclass(frozen=True)
class Member(Filter):
    """``field`` among ``values`` (``$in``) or not (``$nin``)."""

    field: tuple[str, ...]
    op: str
    values: tuple[Scalar, ...]

    def mask(self, columns: MetadataColumns) -> np.ndarray:
        hits = columns.column(self.field).among(self.values)
        return hits if self.op == "$in" else ~hits

    def fields(self) -> set[tuple[str, ...]]:
        return {self.field}


@dataclass(frozen=True)
class Exists(Filter):
    """``field`` present, not ``None`` and not ``[]`` (``present``), or not."""

    field: tuple[str, ...]
    present: bool

    def mask(self, columns: MetadataColumns) -> np.ndarray:
        found = columns.column(self.field).present
        return found.copy() if self.present else ~found

    def fields(self) -> set[tuple[str, ...]]:
        return {self.field}


@dataclass(frozen=True)
class All(Filter):
    """Every child holds (``$and``; several conditions in one mapping)."""

    children: tuple[Filter, ...]

    def mask(self, columns: MetadataColumns) -> np.ndarray:
        mask = np.ones(len(columns), dtype=bool)
        for child in self.children:
            mask &= child.mask(columns)
        return mask

    def fields(self) -> set[tuple[str, ...]]:
        return set().union(*(c.fields() for c in self.children))


@dataclass(frozen=True)
class AnyOf(Filter):
    """At least one child holds (``$or``)."""

    children: tuple[Filter, ...]

    def mask(self, columns: MetadataColumns) -> np.ndarray:
        mask = np.zeros(len(columns), dtype=bool)
        for child in self.children:
            mask |= child.mask(columns)
        return mask

    def fields(self) -> set[tuple[str, ...]]:
        return set().union(*(c.fields() for c in self.children))


@dataclass(frozen=True)
class Not(Filter):
    """The child does not hold (``$not``)."""

    child: Filter

    def mask(self, columns: MetadataColumns) -> np.ndarray:
        return ~self.child.mask(columns)

    def fields(self) -> set[tuple[str, ...]]:
        return self.child.fields()


FilterSpec = Mapping[str, Any] | Filter | None
"""What ``filter=`` takes: a filter mapping, a compiled :class:`Filter`, or ``None``."""


def _depth(spec: object) -> int:
    """How deeply ``spec`` nests mappings and lists (iteratively: no recursion)."""
    deepest, stack = 0, [(spec, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH + 1:
            return depth
        deepest = max(deepest, depth)
        if isinstance(node, Mapping):
            stack.extend((child, depth + 1) for child in node.values())
        elif isinstance(node, (list, tuple)):
            stack.extend((child, depth) for child in node if isinstance(child, Mapping))
    return deepest


def compile_filter(spec: Mapping[str, Any] | Filter | None) -> Filter | None:
    """A :class:`Filter` from a filter mapping (see the module docstring); ``None`` and
    ``{}`` give ``None`` (no filter), a :class:`Filter` is returned as is.

    Raises
    ------
    InputError
        Naming what is wrong with the filter.

    Examples
    --------
    >>> compile_filter({"$or": [{"tag": "a"}, {"n": {"$lt": 3}}]})
    AnyOf(children=(Compare(field=('tag',), op='$eq', value='a'), Compare(field=('n',), op='$lt', value=3)))
    >>> compile_filter({"tag": ["a", "b"]})
    Traceback (most recent call last):
    ...
    latecore.errors.InputError: filter value for field 'tag' must be a string, number, boolean or None, got list; use {'$in': [...]} to match several values
    """  # noqa: E501
    if spec is None or isinstance(spec, Filter):
        return spec
    if not isinstance(spec, Mapping):
        raise InputError(f"a filter must be a mapping, got {type(spec).__name__}")
    if _depth(spec) > MAX_DEPTH:
        raise InputError(f"the filter nests deeper than {MAX_DEPTH} levels")
    return _compile(spec) if spec else None


def _compile(spec: Mapping[str, Any]) -> Filter:
    parts: list[Filter] = []
    for key, value in spec.items():
        if not isinstance(key, str):
            raise InputError(f"filter keys must be strings, got {_show(key)}")
        if key in ("$and", "$or"):
            if not isinstance(value, (list, tuple)) or not value:
                raise InputError(f"{key} takes a non-empty list of filters, got {_show(value)}")
            children = []
            for child in value:
                if not isinstance(child, Mapping) or not child:
                    raise InputError(f"each filter in {key} must be a non-empty mapping")
                children.append(_compile(child))
            parts.append(All(tuple(children)) if key == "$and" else AnyOf(tuple(children)))
        elif key == "$not":
            if not isinstance(value, Mapping) or not value:
                raise InputError("$not takes one non-empty filter mapping")
            parts.append(Not(_compile(value)))
        elif key.startswith("$"):
            raise InputError(
                f"unknown filter operator {_show(key)} at the top of a filter; use a field name, "
                "$and, $or or $not"
            )
        else:
            parts.extend(_field_conditions(_field(key), key, value))
    return parts[0] if len(parts) == 1 else All(tuple(parts))


def _show(value: object, limit: int = 60) -> str:
    """``value`` for a message: a short repr of a string or a small number, else its type
    (never a huge or deeply nested repr).

    Examples
    --------
    >>> _show("tenant"), _show("x" * 100, limit=3), _show(2**100), _show([[1]])
    ("'tenant'", "'xxx...", 'int', 'list')
    """
    if isinstance(value, str):
        shown = repr(value[:limit])
        return shown if len(value) <= limit else shown[:-1] + "..."
    if (
        value is None
        or isinstance(value, bool | float)
        or (isinstance(value, int) and abs(value) < 10**15)
    ):
        return repr(value)
    return type(value).__name__


def _described(value: object) -> str:
    """What a rejected filter value is, for a message."""
    if isinstance(value, float):
        return f"{value!r} (numbers must be finite)"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"an integer beyond +-2**53 (the largest exact as a float: {MAX_INTEGER:,})"
    return type(value).__name__


def _field(key: str) -> tuple[str, ...]:
    parts = tuple(key.split("."))
    if len(key) > 1024 or not all(_SEGMENT.fullmatch(p) for p in parts):
        raise InputError(
            f"filter field {_show(key)} is not a field name: dotted names of non-empty parts, "
            "without control characters, not starting with '$'"
        )
    return parts


def _scalar(value: object, key: str) -> Scalar:
    kind = _kind(value)
    if kind == _OTHER:
        hint = "; use {'$in': [...]} to match several values" if isinstance(value, list) else ""
        raise InputError(
            f"filter value for field {_show(key)} must be a string, number, boolean or None, "
            f"got {_described(value)}{hint}"
        )
    return value  # type: ignore[return-value]


def _field_conditions(field: tuple[str, ...], key: str, value: object) -> list[Filter]:
    if not isinstance(value, Mapping):
        return [Compare(field, "$eq", _scalar(value, key))]
    if not value:
        raise InputError(f"the operators for field {_show(key)} are empty")
    conditions: list[Filter] = []
    for op, operand in value.items():
        if op in ("$eq", "$ne"):
            conditions.append(Compare(field, op, _scalar(operand, key)))
        elif op in COMPARISONS:
            if _kind(operand) not in (_NUMBER, _STRING):
                raise InputError(
                    f"{op} on field {_show(key)} compares numbers with numbers or strings "
                    f"with strings, got {_described(operand)}"
                )
            conditions.append(Compare(field, op, operand))
        elif op in MEMBERSHIP:
            if not isinstance(operand, (list, tuple)):
                raise InputError(
                    f"{op} on field {_show(key)} takes a list, got {type(operand).__name__}"
                )
            if len(operand) > MAX_VALUES:
                raise InputError(
                    f"{op} on field {_show(key)} lists more than {MAX_VALUES:,} values"
                )
            conditions.append(Member(field, op, tuple(_scalar(v, key) for v in operand)))
        elif op == "$exists":
            if not isinstance(operand, bool):
                raise InputError(
                    f"$exists on field {_show(key)} takes true or false, got {_show(operand)}"
                )
            conditions.append(Exists(field, operand))
        else:
            raise InputError(
                f"unknown filter operator {_show(op)} for field {_show(key)}; use one of "
                f"{', '.join(sorted(OPERATORS))}"
            )
    return conditions
