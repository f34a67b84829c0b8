"""Which page region each query token matched: :func:`explain_page`.

For every query vector, the page vector it scored highest against, that score,
and the vector's pixel box in the page image (:meth:`PageEncoder.patch_boxes
<latecore.vision.PageEncoder.patch_boxes>`). The scores add up to the page's
MaxSim score.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..pages import Page

if TYPE_CHECKING:
    from PIL import Image

    from .encoder import PageEncoder

__all__ = ["PageExplanation", "RegionMatch", "explain_page"]

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class RegionMatch:
    """One query token's best match on a page: the page vector and its pixel box."""

    token: str
    score: float
    vector: int
    box: Box


@dataclass(frozen=True)
class PageExplanation:
    """A page's MaxSim score against a query, token by token.

    ``score`` is the sum of the matches' scores: the page's MaxSim score.
    ``width`` and ``height`` are the page image's; every box lies inside it.
    """

    query: str
    page_id: str | None
    score: float
    width: int
    height: int
    matches: tuple[RegionMatch, ...]

    def boxes(self) -> list[tuple[str, float, Box]]:
        """``(token, score, (x0, y0, x1, y1))`` of each query token, best score first."""
        ranked = sorted(self.matches, key=lambda m: -m.score)
        return [(m.token, m.score, m.box) for m in ranked]


def explain_page(encoder: PageEncoder, query: str, page: Page | Image.Image) -> PageExplanation:
    """Explain a page's score for ``query``: which region each query token matched.

    The page's vectors are those :meth:`~latecore.vision.PageEncoder.encode_pages`
    returns (pooled and rounded to the encoder's storage dtype), so ``score``
    equals the page's MaxSim score against the query.

    Parameters
    ----------
    encoder
        The page encoder that encoded (or would encode) the page.
    query
        The text query.
    page
        A :class:`~latecore.pages.Page` or a PIL image.

    Returns
    -------
    PageExplanation
        One :class:`RegionMatch` per query vector, in query order.
    """
    (query_vectors,) = encoder.encode_queries([query])
    tokens = encoder.query_tokens(query)
    ((vectors, boxes),) = encoder.encode_pages_with_boxes([page])
    image = page.image if isinstance(page, Page) else page
    similarities = query_vectors @ vectors.astype(np.float32).T
    best = similarities.argmax(axis=1)
    scores = similarities[np.arange(len(best)), best]
    matches = tuple(
        RegionMatch(token, float(score), int(v), tuple(int(x) for x in boxes[v]))  # type: ignore[arg-type]
        for token, score, v in zip(tokens, scores, best, strict=True)
    )
    return PageExplanation(
        query=query,
        page_id=page.id if isinstance(page, Page) else None,
        score=float(scores.sum(dtype=np.float32)),
        width=image.width,
        height=image.height,
        matches=matches,
    )
