"""The one rule a page component follows to get its encoder: :func:`load_page_encoder`."""

from __future__ import annotations

import os

from ..base_encoder import BaseEncoder
from ..caches import CacheLocation, open_cache
from ..encoder import load_encoder
from .encoder import PageEncoder

__all__ = ["load_page_encoder"]


def load_page_encoder(
    model: str | os.PathLike[str] | None = None,
    *,
    encoder: BaseEncoder | None = None,
    device: str | None = None,
    cache_dir: CacheLocation | None = None,
    require_cache: bool = False,
) -> PageEncoder:
    """``encoder`` as given, or a :class:`PageEncoder` for ``model`` with a cache.

    The page counterpart of :func:`latecore.load_encoder`, used by the LangChain
    and LlamaIndex page components: a new :class:`PageEncoder` always gets a cache
    in ``cache_dir`` (a directory or a ``redis://`` URL; default: latecore's); a
    given ``encoder`` is used as it is, except that with ``require_cache``
    (rerankers) one without a cache gets one in ``cache_dir``.

    Raises
    ------
    ValueError
        If neither ``model`` nor ``encoder`` is given, or ``encoder`` is given with
        ``model`` or ``device``.
    TypeError
        If ``encoder`` is not a :class:`PageEncoder` (a text encoder cannot read pages).

    Examples
    --------
    >>> from latecore.testing import FakeEncoder
    >>> load_page_encoder(encoder=FakeEncoder())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: pages need a latecore.vision.PageEncoder, got FakeEncoder; a text encoder ...
    """
    if encoder is None:
        if model is None:
            raise ValueError(
                "pass model= (a ColPali, ColQwen2 or ColModernVBert checkpoint) or "
                "encoder=latecore.vision.PageEncoder(...)"
            )
        return PageEncoder(model, device=device, cache=open_cache(cache_dir))
    if not isinstance(encoder, PageEncoder):
        raise TypeError(
            f"pages need a latecore.vision.PageEncoder, got {type(encoder).__name__}; "
            "a text encoder (latecore.Encoder) reads text documents, not page images"
        )
    chosen = load_encoder(
        model, encoder=encoder, device=device, cache_dir=cache_dir, require_cache=require_cache
    )
    assert isinstance(chosen, PageEncoder)  # load_encoder returns the encoder or its copy
    return chosen
