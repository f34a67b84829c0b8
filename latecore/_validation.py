"""Former home of :mod:`latecore.validation`, kept while modules still import it from here.

Nothing is defined here: every name is :mod:`latecore.validation`'s own object
(``name as name`` marks each as re-exported). Import from :mod:`latecore.validation`
(public); this module goes once the backends do (issue 20).
"""

from __future__ import annotations

from .validation import STORAGE_DTYPES as STORAGE_DTYPES
from .validation import StorageDtype as StorageDtype
from .validation import check_count as check_count
from .validation import check_dtype as check_dtype
from .validation import check_optional_count as check_optional_count
from .validation import check_positive as check_positive
from .validation import check_texts as check_texts
