"""LlamaIndex ``MetadataFilters`` in latecore's filter language (``latecore.filters``).

The latecore retrievers take ``filters=MetadataFilters(...)``, as LlamaIndex's
vector index retrievers do; :func:`latecore_filter` translates them once and the
searcher applies the result inside the search (every backend, both stages of a
hybrid searcher). A node's own metadata keys are top-level fields of what the
index stores for it, so a filter names them as LlamaIndex does (a key with dots
names nested metadata: ``"author.name"``).

How each operator maps (a filter latecore cannot express raises ``ValueError``
naming the operator when the retriever is built or its filters are set, never at
query time):

- ``EQ``, ``NE``, ``GT``, ``GTE``, ``LT``, ``LTE``: ``$eq``, ``$ne``, ``$gt``,
  ``$gte``, ``$lt``, ``$lte`` (ranges compare numbers, or strings lexically);
- ``IN``, ``NIN``: ``$in``, ``$nin``;
- ``CONTAINS`` (a list field holds the value): ``$eq``, which holds on a list field
  when any element equals the value;
- ``ANY`` (a list field holds one of the values): ``$in``, likewise;
- ``ALL`` (a list field holds every value): ``$and`` of one ``$eq`` per value;
- ``IS_EMPTY`` (missing, ``None``, ``""`` or ``[]``): ``$exists: false`` or ``$eq: ""``;
- conditions ``AND``, ``OR``: ``$and``, ``$or``; ``NOT`` (none of the filters
  holds, as LlamaIndex evaluates it): ``$not`` of their ``$or``; nested
  ``MetadataFilters`` nest the same way (LlamaIndex's in-memory store refuses them);
- ``TEXT_MATCH``, ``TEXT_MATCH_INSENSITIVE``: refused, latecore has no substring
  operator.

These give LlamaIndex's answers (its in-memory vector store, ``build_metadata_filter_fn``,
is the reference) on the fields each operator is meant for. Where LlamaIndex's own
store differs from latecore, and from most vector stores: on a list field, ``EQ``,
``NE``, ``IN`` and ``NIN`` compare elements here (any element matching) and the
whole list there; on a string field, ``CONTAINS``, ``ANY`` and ``ALL`` test
substrings there and whole strings here; a list containing ``""`` is empty here.

A value of ``None`` is refused for every operator but ``IS_EMPTY`` (LlamaIndex's
in-memory store matches nothing with ``EQ None`` and everything with ``NE None``;
use ``IS_EMPTY``), and so is a list value where a single value is compared, a
single value where ``IN``, ``NIN``, ``ANY`` or ``ALL`` take a list, and an empty
``ALL``.

Examples
--------
>>> from llama_index.core.vector_stores.types import (
...     FilterCondition, FilterOperator, MetadataFilter, MetadataFilters)
>>> latecore_filter(MetadataFilters(filters=[
...     MetadataFilter(key="lang", value="en"),
...     MetadataFilter(key="year", value=2020, operator=FilterOperator.GTE),
... ]))
{'$and': [{'lang': {'$eq': 'en'}}, {'year': {'$gte': 2020}}]}
>>> latecore_filter(MetadataFilters(
...     filters=[MetadataFilter(key="tags", value=["draft"], operator=FilterOperator.ANY)],
...     condition=FilterCondition.NOT,
... ))
{'$not': {'tags': {'$in': ['draft']}}}
>>> latecore_filter(MetadataFilters(filters=[
...     MetadataFilter(key="body", value="cat", operator=FilterOperator.TEXT_MATCH)]))
Traceback (most recent call last):
...
ValueError: FilterOperator.TEXT_MATCH (on key 'body') has no latecore equivalent: latecore filters compare whole values and have no substring match; filter on an exact value, or use EQ, IN, CONTAINS or ANY
"""  # noqa: E501

from __future__ import annotations

from typing import Any

from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)

from latecore.filters import MAX_DEPTH, compile_filter

__all__ = ["latecore_filter"]

_COMPARED = {
    FilterOperator.EQ: "$eq",
    FilterOperator.NE: "$ne",
    FilterOperator.GT: "$gt",
    FilterOperator.GTE: "$gte",
    FilterOperator.LT: "$lt",
    FilterOperator.LTE: "$lte",
    FilterOperator.CONTAINS: "$eq",
}
"""Operators comparing the field with one value."""

_LISTED = {
    FilterOperator.IN: "$in",
    FilterOperator.NIN: "$nin",
    FilterOperator.ANY: "$in",
    FilterOperator.ALL: "$eq",  # one condition per value, all of them
}
"""Operators taking a list of values."""

_NO_SUBSTRING = (
    "latecore filters compare whole values and have no substring match; filter on an exact "
    "value, or use EQ, IN, CONTAINS or ANY"
)


def latecore_filter(filters: MetadataFilters | None) -> dict[str, Any] | None:
    """``filters`` as a latecore filter mapping (``None`` for none, or no conditions).

    The result is checked by ``latecore.filters.compile_filter`` too, so a key
    latecore cannot name (one starting with ``$``, with control characters, or an
    empty dotted part) is refused here.

    Raises
    ------
    ValueError
        For an operator, condition or value without a latecore equivalent (the
        message names it), or nesting deeper than ``latecore.filters.MAX_DEPTH``.
    """
    if filters is None:
        return None
    if not isinstance(filters, MetadataFilters):
        raise TypeError(
            f"filters must be llama_index MetadataFilters, got {type(filters).__name__}"
        )
    spec = _group(filters, 1)
    compile_filter(spec)
    return spec


def _group(filters: MetadataFilters, depth: int) -> dict[str, Any] | None:
    if depth > MAX_DEPTH:
        raise ValueError(f"the MetadataFilters nest deeper than {MAX_DEPTH} levels")
    parts = [
        part
        for item in filters.filters
        if (part := _group(item, depth + 1) if isinstance(item, MetadataFilters) else _one(item))
        is not None
    ]
    if not parts:
        return None
    condition = FilterCondition(filters.condition or FilterCondition.AND)
    if condition == FilterCondition.NOT:  # LlamaIndex: none of the filters holds
        return {"$not": parts[0] if len(parts) == 1 else {"$or": parts}}
    if len(parts) == 1:
        return parts[0]
    return {"$and" if condition == FilterCondition.AND else "$or": parts}


def _one(item: MetadataFilter) -> dict[str, Any]:
    operator, key, value = FilterOperator(item.operator), item.key, item.value
    if key.startswith("$"):  # latecore would read it as an operator
        raise ValueError(f"metadata key {key!r} cannot be filtered on: it starts with '$'")
    if operator == FilterOperator.IS_EMPTY:
        return {"$or": [{key: {"$exists": False}}, {key: {"$eq": ""}}]}
    where = f"FilterOperator.{operator.name} (on key {key!r})"
    if operator in (FilterOperator.TEXT_MATCH, FilterOperator.TEXT_MATCH_INSENSITIVE):
        raise ValueError(f"{where} has no latecore equivalent: {_NO_SUBSTRING}")
    if value is None:
        raise ValueError(
            f"{where} compares with None, which latecore does not map (LlamaIndex's own "
            "store never matches EQ None and always matches NE None); use "
            "FilterOperator.IS_EMPTY for a missing or empty value"
        )
    if operator in _COMPARED:
        if isinstance(value, list):
            raise ValueError(f"{where} compares with one value, got a list; use IN, ANY or ALL")
        return {key: {_COMPARED[operator]: value}}
    if operator in _LISTED:
        if not isinstance(value, list):
            raise ValueError(f"{where} takes a list of values, got {type(value).__name__}")
        if operator != FilterOperator.ALL:
            return {key: {_LISTED[operator]: list(value)}}
        if not value:
            raise ValueError(f"{where} needs at least one value")
        return {"$and": [{key: {"$eq": v}} for v in value]}
    raise ValueError(f"{where} has no latecore equivalent")
