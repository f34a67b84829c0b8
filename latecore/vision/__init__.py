"""Pages as documents: ColPali-style late interaction over page images.

:class:`PageEncoder` embeds a page image into a grid of patch vectors and a text
query into token vectors, scored with the same MaxSim as text; pages come from
:mod:`latecore.pages` and go into a :class:`~latecore.index.LateIndex` with
:meth:`~latecore.index.LateIndex.add_pages`. :func:`explain_page` says which page
region each query token matched. Needs ``latecore[vision]``; torch, transformers
and PIL are imported only when a model loads or a page is read.

Layout::

    _families.py   the supported model types: classes and patch geometry
    encoder.py     PageEncoder
    explain.py     explain_page, PageExplanation, RegionMatch
    loading.py     load_page_encoder (the rule the adapters follow)
"""

from __future__ import annotations

from ._families import FAMILIES
from .encoder import PAGE_POOL_FACTOR, PageEncoder
from .explain import PageExplanation, RegionMatch, explain_page
from .loading import load_page_encoder

SUPPORTED_MODEL_TYPES = tuple(sorted(FAMILIES))
"""The checkpoint ``model_type`` values :class:`PageEncoder` loads."""

__all__ = [
    "PAGE_POOL_FACTOR",
    "SUPPORTED_MODEL_TYPES",
    "PageEncoder",
    "PageExplanation",
    "RegionMatch",
    "explain_page",
    "load_page_encoder",
]
