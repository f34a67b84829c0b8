"""latecore filters as Qdrant filters, whichever engine runs them.

:func:`translate` turns a compiled :class:`~latecore.filters.Filter` into a
:class:`Condition` tree that :mod:`~latecore.backends.qdrant.edge` and
:mod:`~latecore.backends.qdrant.server` build into their own ``Filter``
objects. Metadata lives under the payload key ``metadata``, so field
``a.b`` is Qdrant's ``metadata.a.b``. Each node is translated exactly:

- ``$eq``/``$ne`` on a string: a value match (``must_not`` for ``$ne``);
  on a number: a closed float range (integers and floats compare as numbers,
  as in latecore);
- numeric ranges: float ranges; ``$in``/``$nin`` on strings: a match-any;
- ``$exists``: Qdrant's is-empty (missing, null or ``[]``), negated for ``true``;
- ``$and``/``$or``/``$not``: ``must``/``should``/``must_not``.

What Qdrant cannot express the same way (ranges on strings, a field name that
is not a plain identifier path, numbers or booleans inside ``$in``, booleans and
``None``: Qdrant's match of ``true`` also holds for the number ``1``, strings that
are not valid UTF-8, and any field whose stored values are not plain: a list met
on the way down the path, which Qdrant walks into and latecore does not, ``None``
inside a list, nested lists or mappings as values) becomes a
condition on the point ids of the documents the node holds for, computed from
the store: exact, and a value never becomes part of a key. :func:`indexed_fields`
names the payload fields worth an index (and their type).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ...filters import All, AnyOf, Compare, Exists, Filter, Member, Not
from ...store import StoreView
from .schema import point_id

__all__ = ["Condition", "indexed_fields", "translate"]

_PLAIN = re.compile(r"[A-Za-z0-9_-]+")
PayloadType = Literal["keyword", "float", "bool"]


@dataclass(frozen=True)
class Condition:
    """One node of a Qdrant filter, engine-neutral.

    ``kind`` is ``"must"``, ``"should"`` or ``"must_not"`` (with ``children``),
    ``"match"`` (``key``, ``value``), ``"match_any"`` (``key``, ``values``),
    ``"range"`` (``key`` and the bounds in ``bounds``), ``"is_null"``,
    ``"is_empty"`` (``key``) or ``"has_id"`` (point ids in ``values``).
    """

    kind: str
    key: str = ""
    value: str | bool | None = None
    values: tuple[str, ...] = ()
    bounds: tuple[tuple[str, float], ...] = ()
    children: tuple[Condition, ...] = ()


def _key(path: tuple[str, ...]) -> str | None:
    return "metadata." + ".".join(path) if all(_PLAIN.fullmatch(p) for p in path) else None


def _ids(store: StoreView, node: Filter) -> Condition:
    mask = node.mask(store.metadata_columns())
    ids = [store.ids[p] for p in np.flatnonzero(mask).tolist()]
    return Condition("has_id", values=tuple(point_id(i) for i in ids))


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _equal(key: str, value: object) -> Condition:
    if isinstance(value, str):
        return Condition("match", key=key, value=value)
    number = float(value)  # type: ignore[arg-type]
    return Condition("range", key=key, bounds=(("gte", number), ("lte", number)))


def translate(node: Filter, store: StoreView) -> Condition:
    """The Qdrant condition that holds exactly where ``node`` does on ``store``'s documents."""
    if isinstance(node, All | AnyOf):
        kind = "must" if isinstance(node, All) else "should"
        return Condition(kind, children=tuple(translate(c, store) for c in node.children))
    if isinstance(node, Not):
        return Condition("must_not", children=(translate(node.child, store),))
    assert isinstance(node, Compare | Member | Exists)
    key = _key(node.field)
    if key is None or not store.metadata_columns().column(node.field).plain:
        return _ids(store, node)
    if isinstance(node, Exists):
        empty = Condition("is_empty", key=key)
        return Condition("must_not", children=(empty,)) if node.present else empty
    if isinstance(node, Member):
        if not all(isinstance(v, str) and _utf8(v) for v in node.values):
            return _ids(store, node)
        found = Condition("match_any", key=key, values=tuple(str(v) for v in node.values))
        return found if node.op == "$in" else Condition("must_not", children=(found,))
    if isinstance(node.value, bool) or node.value is None:
        return _ids(store, node)  # Qdrant's value match of true also holds for the number 1
    if node.op in ("$eq", "$ne"):
        if isinstance(node.value, str) and not _utf8(node.value):
            return _ids(store, node)
        found = _equal(key, node.value)
        return found if node.op == "$eq" else Condition("must_not", children=(found,))
    if isinstance(node.value, str):
        return _ids(store, node)
    return Condition("range", key=key, bounds=((node.op[1:], float(node.value)),))


def indexed_fields(condition: Condition) -> dict[str, PayloadType]:
    """Payload key -> index type for every field ``condition`` matches or ranges on.

    Examples
    --------
    >>> from latecore.filters import compile_filter
    >>> from latecore.store import MemoryStore
    >>> tree = translate(compile_filter({"tenant": "a", "year": {"$gt": 2020}}), MemoryStore())
    >>> indexed_fields(tree)
    {'metadata.tenant': 'keyword', 'metadata.year': 'float'}
    """
    found: dict[str, PayloadType] = {}
    stack = [condition]
    while stack:
        node = stack.pop()
        stack.extend(reversed(node.children))
        if node.kind in ("match", "match_any"):
            found[node.key] = "bool" if isinstance(node.value, bool) else "keyword"
        elif node.kind == "range":
            found[node.key] = "float"
    return found
