"""``latecore search --pages FILES...``: hybrid search over page images.

PDFs are rendered page by page (:func:`~latecore.pages.load_pages`, pypdfium2,
``--dpi``) with each page's text layer kept; PNG and JPEG files are one page each.
Every page is encoded by a :class:`~latecore.vision.PageEncoder` (ColQwen2,
ColPali or ColModernVBert; page vectors cached, so a second run encodes 0 pages)
into a :class:`~latecore.index.LateIndex`, and a
:class:`~latecore.hybrid.HybridSearcher` searches it: BM25 over the text layers,
MaxSim over the page vectors, so a scan without text is found by its image. Each
hit is printed with both stages' scores, its page text and the page regions
(pixel boxes) its best-matching query tokens landed on.

Needs the ``vision`` extra (``pip install 'latecore[vision]'``); nothing here is
imported by ``import latecore`` or by the text command.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO, cast

from .base_encoder import progress_enabled
from .caches import DocumentCache, open_cache
from .errors import InputError
from .hybrid import HybridSearcher
from .index import LateIndex

if TYPE_CHECKING:
    from .pages import Page
    from .vision import PageEncoder

__all__ = ["DEFAULT_DPI", "REGIONS_SHOWN", "page_line", "search_pages"]

DEFAULT_DPI = 96
"""``--dpi`` unless told otherwise (the loader's default)."""

REGIONS_SHOWN = 3
"""Matched regions printed per hit: those of the query tokens scoring best."""

_INDEX_BATCH = 16
_SNIPPET = 160


def page_line(text: str, limit: int = _SNIPPET) -> str:
    """A page's text layer on one line, cut at ``limit`` characters.

    Examples
    --------
    >>> page_line("Results\\n\\n  Table 2: counts  ")
    'Results Table 2: counts'
    >>> page_line("")
    '(no text layer)'
    >>> page_line("word " * 50, limit=20)
    'word word word word…'
    """
    flat = " ".join(text.split())
    if not flat:
        return "(no text layer)"
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def _load_encoder(model: str, cache: DocumentCache, err: TextIO) -> PageEncoder:
    from .vision import PageEncoder

    encoder = PageEncoder(model, cache=cache, show_progress=False)
    info = encoder.describe()
    print(
        f"Page model: {info.get('model', model)} (dim {info.get('dim')}, "
        f"pool factor {info.get('pool_factor')}, {info.get('device', 'cpu')})",
        file=err,
    )
    return encoder


def _index_pages(
    pages: Sequence[Page], encoder: PageEncoder, cache: DocumentCache, show: bool, err: TextIO
) -> LateIndex:
    from tqdm.auto import tqdm

    before, encoded_before = cache.stats(), encoder.encode_stats()
    index = LateIndex(encoder)
    with tqdm(total=len(pages), desc="Indexing", unit="page", file=err, disable=not show) as bar:
        for start in range(0, len(pages), _INDEX_BATCH):
            batch = pages[start : start + _INDEX_BATCH]
            index.add_pages(batch)
            bar.update(len(batch))
    after, encoded = cache.stats(), encoder.encode_stats() - encoded_before
    hits, misses = after.hits - before.hits, after.misses - before.misses
    rate = f" at {encoded.documents_per_second:.2f} pages/s" if encoded.documents else ""
    scans = sum(not p.text.strip() for p in pages)
    print(
        f"Indexed {len(pages)} pages ({scans} without a text layer): {hits} served from the "
        f"cache, {misses} encoded{rate} (cache: {cache.location})",
        file=err,
    )
    return index


def _print_hits(
    searcher: HybridSearcher,
    pages: dict[str, Page],
    args: argparse.Namespace,
    out: TextIO,
) -> None:
    from .vision.explain import explain_page

    query = args.query
    hits = searcher.search(query, k=args.k, filter=args.filter)
    print(f"\nQuery: {query}", file=out)
    if args.filter is not None:
        matching = searcher.index.count(args.filter)
        print(
            f"Filter: {json.dumps(args.filter, ensure_ascii=False)} "
            f"({matching} of {len(searcher)} pages match)",
            file=out,
        )
    if not hits:
        print("  no results", file=out)
        return
    for rank, hit in enumerate(hits, start=1):
        bm25 = "bm25 -" if hit.bm25_score is None else f"bm25 {hit.bm25_score:.2f}"
        if hit.bm25_rank is not None:
            bm25 += f" #{hit.bm25_rank}"
        colbert = f"maxsim {hit.colbert_score:.2f}"
        if hit.colbert_rank is not None:
            colbert += f" #{hit.colbert_rank}"
        meta = hit.metadata
        print(
            f"{rank:>3}. {hit.id}  score {hit.score:.4f}  ({bm25}, {colbert})  "
            f"[{meta.get('kind', 'page')} page {meta.get('page')}, "
            f"{meta.get('width')}x{meta.get('height')} px]",
            file=out,
        )
        print(f"     text: {page_line(hit.text)}", file=out)
        page = pages.get(hit.id)
        if page is None:
            continue
        explanation = explain_page(cast("PageEncoder", searcher.encoder), query, page)
        regions = ", ".join(
            f"{token!r} {score:.2f} at ({', '.join(str(v) for v in box)})"
            for token, score, box in explanation.boxes()[:REGIONS_SHOWN]
        )
        print(f"     regions (x0, y0, x1, y1): {regions}", file=out)


def search_pages(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run ``latecore search --pages``: load, encode (cached), index, search, print.

    Raises
    ------
    InputError
        When a file cannot be read or holds no page.
    ModelLoadError
        When the page model cannot be loaded.
    """
    from .pages import load_pages

    if args.paths:
        raise InputError(
            "pass text files as PATH or page files with --pages, not both in one search "
            "(pages and text chunks need different models)"
        )
    pages = load_pages(args.pages, dpi=args.dpi)
    if not pages:
        raise InputError(f"no pages found in {', '.join(args.pages)} (PDF, PNG or JPEG files)")
    ids = [p.id for p in pages]
    if len(set(ids)) != len(ids):
        raise InputError("a file was given twice: each page may be indexed once")
    model = args.model or os.environ.get("LATECORE_PAGE_MODEL") or _default_model()
    with open_cache(args.cache_dir or None) as cache:
        encoder = _load_encoder(model, cache, err)
        show = progress_enabled(False if args.no_progress else None)
        index = _index_pages(pages, encoder, cache, show, err)
        searcher = HybridSearcher.from_index(
            index,
            fusion=args.fusion,
            candidates=args.candidates,
            candidates_from=args.candidates_from,
            language=None if args.language == "none" else args.language,
        )
        _print_hits(searcher, dict(zip(ids, pages, strict=True)), args, out)
        index.close()
    return 0


def _default_model() -> str:
    raise InputError(
        "latecore search --pages needs a page model: pass --model with a ColQwen2, ColPali "
        "or ColModernVBert id or local checkpoint directory (for example "
        "vidore/colqwen2-v1.0), or set LATECORE_PAGE_MODEL"
    )
