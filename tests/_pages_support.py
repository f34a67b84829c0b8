"""A generated corpus of page images for the page tests: PDFs and image files, no model hub.

:func:`write_page_corpus` writes :data:`N_PDFS` PDFs of :data:`PAGES_PER_PDF` pages
and :data:`N_IMAGES` PNG files (``N_PAGES`` = 240 pages in all), drawn with
matplotlib and PIL, seeded. The PDF pages cycle through four kinds:

- ``"text"``: a title and a few lines of words, as PDF text (a text layer);
- ``"table"``: a title and a table of words and numbers (a text layer);
- ``"chart"``: a bar or line chart with a title and labelled axes (a text layer);
- ``"scan"``: the same kind of text rasterised into an image: no text layer, as
  a scanned page has none.

The PNG files are one-page documents (``"image"``: a chart or text drawn with
PIL, no text layer). Every page's words come from the tiny checkpoints' word
list (``latecore/testing/data/tiny_words.txt``), so a tiny model's tokenizer knows
them, and each page holds a ``topic`` of three words no other page shares in
that order. :class:`PageSpec` records what was drawn, to check the loader against.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

N_PDFS = 5
PAGES_PER_PDF = 44
N_IMAGES = 20
N_PAGES = N_PDFS * PAGES_PER_PDF + N_IMAGES
KINDS = ("text", "table", "chart", "scan")
PAGE_INCHES = (4.25, 5.5)  # half a US letter page
_STOPWORDS = (
    "the a an of to in is on for and or with what where who how why when which that this it be "
    "was are by as at from not no yes all any one two three many more most less"
)
STOPWORDS = frozenset(_STOPWORDS.split())


def content_words() -> list[str]:
    """The tiny word list's content words (its stopwords left out), in file order."""
    text = (resources.files("latecore.testing") / "data" / "tiny_words.txt").read_text("utf-8")
    words = [w.strip() for w in text.splitlines()]
    return [w for w in words if w and w not in STOPWORDS and w.isalpha()]


@dataclass(frozen=True)
class PageSpec:
    """One generated page: where it is, what kind, and the words drawn on it."""

    source: str  # the file
    page: int  # 1-based page number in the file
    kind: str  # "text" | "table" | "chart" | "scan" | "image"
    topic: tuple[str, str, str]
    words: tuple[str, ...]  # every word drawn (title first)

    @property
    def id(self) -> str:
        """The page's id as the loader names it by default."""
        return f"{self.source}:page_{self.page}"

    @property
    def has_text_layer(self) -> bool:
        return self.kind in {"text", "table", "chart"}


def _lines(words: list[str], per_line: int = 6) -> list[str]:
    return [" ".join(words[i : i + per_line]) for i in range(0, len(words), per_line)]


def _draw_text_page(figure: object, title: str, body: list[str]) -> None:
    figure.text(0.08, 0.92, title, fontsize=15, weight="bold")  # type: ignore[attr-defined]
    for n, line in enumerate(_lines(body)):
        figure.text(0.08, 0.84 - 0.055 * n, line, fontsize=11)  # type: ignore[attr-defined]


def _draw_table_page(figure: object, title: str, body: list[str], rng: np.random.Generator) -> None:
    figure.text(0.08, 0.92, title, fontsize=15, weight="bold")  # type: ignore[attr-defined]
    ax = figure.add_axes((0.08, 0.2, 0.84, 0.65))  # type: ignore[attr-defined]
    ax.axis("off")
    rows = [[w, str(int(rng.integers(10, 999))), f"{rng.random():.2f}"] for w in body[:8]]
    table = ax.table(cellText=rows, colLabels=["item", "count", "share"], loc="upper center")
    table.scale(1.0, 1.6)


def _draw_chart_page(figure: object, title: str, body: list[str], rng: np.random.Generator) -> None:
    ax = figure.add_axes((0.15, 0.2, 0.75, 0.65))  # type: ignore[attr-defined]
    labels = body[:5]
    values = rng.integers(1, 20, size=len(labels))
    if rng.random() < 0.5:
        ax.bar(labels, values, color="#4c72b0")
    else:
        ax.plot(labels, values, marker="o", color="#dd8452")
    ax.set_title(title, fontsize=13)
    ax.set_xlabel(body[5] if len(body) > 5 else "item")
    ax.set_ylabel("count")


def _raster_text(title: str, body: list[str], size: tuple[int, int], seed: int) -> np.ndarray:
    """Text drawn into pixels, slightly noisy and rotated: a "scanned" page."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("L", size, 245)
    draw = ImageDraw.Draw(image)
    scale = size[0] / 400
    draw.text((30 * scale, 30 * scale), title, fill=10, font=ImageFont.load_default(22 * scale))
    font = ImageFont.load_default(15 * scale)
    for n, line in enumerate(_lines(body)):
        draw.text((30 * scale, (80 + 26 * n) * scale), line, fill=30, font=font)
    rng = np.random.default_rng(seed)
    image = image.rotate(float(rng.uniform(-1.5, 1.5)), fillcolor=245)
    pixels = np.asarray(image, dtype=np.int16) + rng.integers(-12, 13, size=image.size[::-1])
    return np.clip(pixels, 0, 255).astype(np.uint8)


def _page_words(rng: np.random.Generator, vocabulary: list[str]) -> list[str]:
    return list(rng.choice(vocabulary, size=int(rng.integers(14, 25)), replace=True))


def write_pdf(path: Path, specs: list[tuple[str, list[str]]], seed: int) -> None:
    """One PDF page per ``(kind, words)`` entry (words[0:3] are its title), matplotlib only."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    rng = np.random.default_rng(seed)
    with (
        matplotlib.rc_context({"pdf.fonttype": 42}),  # TrueType: a text layer pdfium reads
        PdfPages(path, metadata={"CreationDate": None, "ModDate": None}) as pdf,
    ):
        for n, (kind, words) in enumerate(specs):
            figure = plt.figure(figsize=PAGE_INCHES)
            title, body = " ".join(words[:3]), words[3:]
            if kind == "text":
                _draw_text_page(figure, title, body)
            elif kind == "table":
                _draw_table_page(figure, title, body, rng)
            elif kind == "chart":
                _draw_chart_page(figure, title, body, rng)
            else:  # "scan": pixels only
                width, height = (int(x * 72) for x in PAGE_INCHES)
                pixels = _raster_text(title, body, (width * 2, height * 2), seed * 1000 + n)
                ax = figure.add_axes((0, 0, 1, 1))
                ax.imshow(pixels, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
                ax.axis("off")
            pdf.savefig(figure)
            plt.close(figure)


def write_image(path: Path, words: list[str], seed: int) -> None:
    """A PNG one-page document: a small bar chart and a caption, drawn with PIL."""
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (408, 528), (250, 250, 250))
    draw = ImageDraw.Draw(image)
    draw.text((24, 20), " ".join(words[:3]), fill=(0, 0, 0), font=ImageFont.load_default(22))
    for n in range(5):
        height = int(rng.integers(40, 300))
        color = tuple(int(c) for c in rng.integers(30, 220, size=3))
        draw.rectangle((40 + 70 * n, 440 - height, 90 + 70 * n, 440), fill=color)
        draw.text((40 + 70 * n, 450), words[3 + n], fill=(0, 0, 0), font=ImageFont.load_default(13))
    font = ImageFont.load_default(15)
    for n, line in enumerate(_lines(words[8:])):
        draw.text((24, 475 + 20 * n), line, fill=(40, 40, 40), font=font)
    image.save(path, format="PNG")


def write_page_corpus(
    directory: Path, *, seed: int = 0, n_pdfs: int = N_PDFS, n_images: int = N_IMAGES
) -> list[PageSpec]:
    """Write the corpus into ``directory``; returns one :class:`PageSpec` per page.

    Deterministic for a seed; about 0.1 s a PDF page on one free core (a minute
    on two busy ones). A ``manifest.json`` lists the specs.
    """
    directory.mkdir(parents=True, exist_ok=True)
    vocabulary = content_words()
    rng = np.random.default_rng(seed)
    specs: list[PageSpec] = []
    topics: set[tuple[str, ...]] = set()

    def fresh_words() -> list[str]:
        while True:
            words = _page_words(rng, vocabulary)
            if len(set(words[:3])) == 3 and tuple(words[:3]) not in topics:
                topics.add(tuple(words[:3]))
                return words

    for f in range(n_pdfs):
        path = directory / f"report-{f + 1}.pdf"
        pages = [(KINDS[(n + f) % len(KINDS)], fresh_words()) for n in range(PAGES_PER_PDF)]
        write_pdf(path, pages, seed=seed * 100 + f)
        for n, (kind, words) in enumerate(pages, start=1):
            specs.append(_spec(path, n, kind, words))
    for i in range(n_images):
        path = directory / f"figure-{i + 1:02d}.png"
        words = fresh_words()
        write_image(path, words, seed=seed * 100 + 50 + i)
        specs.append(_spec(path, 1, "image", words))
    (directory / "manifest.json").write_text(
        json.dumps([asdict(s) for s in specs], indent=1), encoding="utf-8"
    )
    return specs


def _spec(path: Path, page: int, kind: str, words: list[str]) -> PageSpec:
    clean = tuple(str(w) for w in words)
    return PageSpec(str(path), page, kind, (clean[0], clean[1], clean[2]), clean)


@dataclass(frozen=True)
class PageCorpus:
    """The generated corpus loaded: its specs and pages (same order), and its files."""

    specs: list[PageSpec]
    pages: list[Any]  # latecore.pages.Page
    files: list[str]

    def spec(self, page_id: str) -> PageSpec:
        return next(s for s in self.specs if s.id == page_id)

    @property
    def without_text(self) -> list[Any]:
        """The pages with no text layer (scans and image files)."""
        return [p for p in self.pages if not p.text.strip()]


def load_page_corpus(directory: Path, *, dpi: int = 96) -> PageCorpus:
    """Write the corpus into ``directory`` and load it through ``latecore.pages.load_pages``."""
    from latecore.pages import load_pages

    specs = write_page_corpus(directory)
    files = list(dict.fromkeys(s.source for s in specs))
    return PageCorpus(specs, load_pages(files, dpi=dpi), files)


def recall_at_k(got: Sequence[Sequence[str]], expected: Sequence[Sequence[str]]) -> float:
    """The share of the expected ids found, over all queries.

    Examples
    --------
    >>> recall_at_k([["a", "b"], ["c", "x"]], [["a", "b"], ["c", "d"]])
    0.75
    """
    found = sum(len(set(g) & set(e)) for g, e in zip(got, expected, strict=True))
    return found / sum(len(e) for e in expected)
