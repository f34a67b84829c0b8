"""A handful of generated pages for the page adapters' tests (LangChain and LlamaIndex).

Four PDF pages (three with a text layer, one image-only "scan") and one PNG:
small, so the tiny page checkpoint encodes them in well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from latecore.pages import Page, load_pages
from latecore.testing.vision import make_test_pdf
from latecore.vision import PageEncoder

__all__ = ["DPI", "PAGE_TEXTS", "PageCorpus", "build_corpus", "same_pixels"]

PAGE_TEXTS = [
    "Quarterly revenue grew in the north region",
    "The cat sat on the mat in the sun",
    "Train timetable for Monday and Tuesday",
    None,  # a scan: no text layer
]
DPI = 36


@dataclass(frozen=True)
class PageCorpus:
    """The generated files, their pages (loaded without saved images) and an encoder."""

    pdf: Path
    png: Path
    pages: list[Page]
    encoder: PageEncoder


def build_corpus(directory: Path, checkpoint: Path) -> PageCorpus:
    """Write the PDF and the PNG into ``directory``; an encoder with a cache there too."""
    from PIL import Image, ImageDraw

    pdf = make_test_pdf(directory / "report.pdf", PAGE_TEXTS)
    png = directory / "chart.png"
    image = Image.new("RGB", (120, 90), "white")
    ImageDraw.Draw(image).rectangle((20, 30, 100, 80), fill=(200, 40, 40))
    image.save(png)
    pages = load_pages([pdf, png], dpi=DPI)
    encoder = PageEncoder(checkpoint, cache=directory / "cache")
    return PageCorpus(pdf=pdf, png=png, pages=pages, encoder=encoder)


def same_pixels(a: object, b: object) -> bool:
    """Whether two PIL images have the same size and RGB pixels."""
    return bool(np.array_equal(np.asarray(a), np.asarray(b)))
