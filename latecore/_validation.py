"""Former home of :mod:`latecore.validation`, kept while modules still import it from here.

Nothing is defined here: every name is :mod:`latecore.validation`'s own object.
Import from :mod:`latecore.validation` (public); this module goes once the
backends do (issue 20).
"""

from __future__ import annotations

from .validation import (
    STORAGE_DTYPES,
    StorageDtype,
    check_count,
    check_dtype,
    check_optional_count,
    check_positive,
    check_texts,
)

__all__ = [
    "STORAGE_DTYPES",
    "StorageDtype",
    "check_count",
    "check_dtype",
    "check_optional_count",
    "check_positive",
    "check_texts",
]
