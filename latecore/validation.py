"""Every argument rule latecore states once: counts, texts, storage dtypes.

Public: latecore's own modules and its two adapter distributions
(``langchain-latecore``, ``llama-index-latecore``) check their arguments with
these functions, so that a count means the same thing everywhere, and an
integration of your own can do the same. Each rule raises :class:`ValueError`
(:class:`TypeError` for texts that are not strings) with a message that names
the argument, the value received and what is accepted. The default model and
``$LATECORE_MODEL`` are :mod:`latecore.models`' business.

Counts
    A count is a real ``int``: ``bool`` (``True`` is not ``1``), floats (even
    ``3.0``), strings (``"3"``) and numpy scalars of float type are refused.
    ``k``-like result counts accept ``0`` (an empty result), except where a
    framework documents otherwise: LlamaIndex rejects ``top_n=0`` and
    ``similarity_top_k=0``, so :func:`check_positive` serves those.

Examples
--------
>>> check_count(3, "k")
3
>>> check_count(True, "k")
Traceback (most recent call last):
...
ValueError: k must be a non-negative integer, got True
>>> check_positive(0, "top_n")
Traceback (most recent call last):
...
ValueError: top_n must be a positive integer, got 0
"""

from __future__ import annotations

import numbers
from typing import Literal

__all__ = [
    "FLOAT_DTYPES",
    "STORAGE_DTYPES",
    "StorageDtype",
    "check_count",
    "check_dtype",
    "check_optional_count",
    "check_positive",
    "check_texts",
]

StorageDtype = Literal["float16", "float32", "int8"]
"""Precision in which token vectors are stored (scoring always computes in float32);
``int8`` keeps one float32 scale per vector (:mod:`latecore.quantize`)."""

STORAGE_DTYPES: tuple[str, ...] = ("float16", "float32", "int8")

FLOAT_DTYPES: tuple[str, ...] = ("float16", "float32")
"""The storage dtypes an engine's own vectors can take (``int8`` is latecore's store only)."""


def _is_integer(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_count(value: object, name: str, *, minimum: int = 0) -> int:
    """``value`` as an ``int`` if it is an integer of at least ``minimum``, else ``ValueError``.

    Examples
    --------
    >>> check_count(0, "k")
    0
    >>> check_count(1.5, "k")
    Traceback (most recent call last):
    ...
    ValueError: k must be a non-negative integer, got 1.5
    >>> check_count("3", "candidates", minimum=1)
    Traceback (most recent call last):
    ...
    ValueError: candidates must be a positive integer, got '3'
    """
    if not _is_integer(value) or int(value) < minimum:  # type: ignore[call-overload]
        if minimum == 0:
            wanted = "a non-negative integer"
        elif minimum == 1:
            wanted = "a positive integer"
        else:
            wanted = f"an integer of at least {minimum}"
        raise ValueError(f"{name} must be {wanted}, got {value!r}")
    return int(value)  # type: ignore[call-overload]


def check_positive(value: object, name: str) -> int:
    """A count of at least 1 (LlamaIndex's ``top_n``, BM25 ``candidates``, batch sizes).

    Examples
    --------
    >>> check_positive(2, "similarity_top_k")
    2
    """
    return check_count(value, name, minimum=1)


def check_optional_count(value: object, name: str, *, minimum: int = 0) -> int | None:
    """:func:`check_count`, with ``None`` meaning "no limit" (or "the default").

    Examples
    --------
    >>> check_optional_count(None, "top_k") is None
    True
    """
    return None if value is None else check_count(value, name, minimum=minimum)


def check_texts(texts: object, what: str, item: str = "text", items: str = "") -> list[str]:
    """``texts`` as a list of strings; a single string or a non-string item is a ``TypeError``.

    Examples
    --------
    >>> check_texts(("a", "b"), "encode_queries")
    ['a', 'b']
    >>> check_texts("a", "encode_queries")
    Traceback (most recent call last):
    ...
    TypeError: encode_queries takes a sequence of texts; wrap a single text in a list
    >>> check_texts(["a", 3], "search_batch", "query", "queries")
    Traceback (most recent call last):
    ...
    TypeError: search_batch: query 1 is int, not str
    """
    if isinstance(texts, str):
        raise TypeError(
            f"{what} takes a sequence of {items or item + 's'}; wrap a single {item} in a list"
        )
    checked = list(texts)  # type: ignore[call-overload]
    for i, text in enumerate(checked):
        if not isinstance(text, str):
            raise TypeError(f"{what}: {item} {i} is {type(text).__name__}, not str")
    return checked


def check_dtype(
    value: object, name: str = "dtype", *, allowed: tuple[str, ...] = STORAGE_DTYPES
) -> StorageDtype:
    """A storage dtype name among ``allowed`` (default: ``"float16"``, ``"float32"``, ``"int8"``).

    Examples
    --------
    >>> check_dtype("int8")
    'int8'
    >>> check_dtype("bfloat16")
    Traceback (most recent call last):
    ...
    ValueError: dtype must be 'float16', 'float32' or 'int8', got 'bfloat16'
    >>> check_dtype("int8", "datatype", allowed=FLOAT_DTYPES)
    Traceback (most recent call last):
    ...
    ValueError: datatype must be 'float16' or 'float32', got 'int8'
    """
    if value not in allowed:
        names = [repr(a) for a in allowed]
        wanted = ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]
        raise ValueError(f"{name} must be {wanted}, got {value!r}")
    return value  # type: ignore[return-value]
