"""The documentation holds together: links resolve, the README stays a landing page.

- every relative link in ``README.md``, ``docs/*.md`` and the adapters' READMEs points
  to a file or folder of the repository, and every ``#anchor`` to a heading of its page
  (GitHub's anchors: lower case, punctuation dropped, spaces as ``-``, ``-1``, ``-2``
  for repeated headings);
- the README has at most 350 lines and keeps its two commands;
- its quickstart runs (offline, with the bundled MiniLM in place of the Hub model);
- every Python block is ruff-formatted;
- benchmark figures appear on ``docs/benchmarks.md`` only, in the docs and in the
  docstrings of latecore and the adapters.
"""

from __future__ import annotations

import ast
import contextlib
import io
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import latecore
from latecore.models import DEFAULT_MODEL

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
BENCHMARKS = REPO / "docs" / "benchmarks.md"
PAGES = sorted(
    [README, *(REPO / "docs").glob("*.md"), *(REPO / "integrations").glob("*/README.md")]
)
MAX_README_LINES = 350

_FENCE = re.compile(r"^(```|~~~)")
_LINK = re.compile(r"(?<!!)\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^()\s]+)(?:\s+\"[^\"]*\")?\)")
_INLINE_CODE = re.compile(r"`[^`]*`")


@dataclass(frozen=True)
class Link:
    page: Path
    line: int
    target: str


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) of every line outside fenced code blocks."""
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if _FENCE.match(line.lstrip()):
            fenced = not fenced
        elif not fenced:
            lines.append((number, line))
    return lines


def code_blocks(text: str, language: str) -> list[tuple[int, str]]:
    """(first line number, source) of each fenced block of ``language``."""
    blocks, current, start = [], None, 0
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if current is None and stripped in (f"```{language}", f"~~~{language}"):
            current, start = [], number + 1
        elif current is not None and _FENCE.match(stripped):
            blocks.append((start, "\n".join(current) + "\n"))
            current = None
        elif current is not None:
            current.append(line)
    return blocks


def links(page: Path) -> list[Link]:
    found = []
    for number, line in prose_lines(page.read_text(encoding="utf-8")):
        for match in _LINK.finditer(_INLINE_CODE.sub("``", line)):
            found.append(Link(page, number, match.group(1)))
    return found


def slug(heading: str) -> str:
    """GitHub's anchor of a heading's text."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The anchors of a page's headings; a repeated heading gets ``-1``, ``-2``, ..."""
    found: set[str] = set()
    counts: dict[str, int] = {}
    for _, line in prose_lines(page.read_text(encoding="utf-8")):
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            base = slug(match.group(1))
            repeat = counts.get(base, 0)
            found.add(base if repeat == 0 else f"{base}-{repeat}")
            counts[base] = repeat + 1
    return found


def broken_links(pages: list[Path], root: Path = REPO) -> list[str]:
    """``page:line -> target: why`` for each relative link that does not resolve."""
    broken = []
    for page in pages:
        for link in links(page):
            if re.match(r"^[a-z][a-z0-9+.-]*:", link.target):  # https:, mailto:, ...
                continue
            path_part, _, anchor = link.target.partition("#")
            target = (page.parent / path_part).resolve() if path_part else page
            where = f"{page.relative_to(root).as_posix()}:{link.line} -> {link.target}"
            if not target.exists():
                broken.append(f"{where}: no such file")
            elif not target.is_relative_to(root):
                broken.append(f"{where}: outside the repository")
            elif anchor and (target.suffix != ".md" or anchor not in anchors(target)):
                broken.append(f"{where}: no heading with anchor #{anchor}")
    return broken


def test_every_page_is_found() -> None:
    names = {p.relative_to(REPO).as_posix() for p in PAGES}
    assert {"README.md", "docs/benchmarks.md", "docs/backends.md", "docs/guarantees.md"} <= names


def test_every_relative_link_and_anchor_resolves() -> None:
    assert sum(len(links(page)) for page in PAGES) > 50
    assert broken_links(PAGES) == []


def test_the_link_check_finds_broken_files_and_anchors(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "latecore").mkdir()
    (tmp_path / "README.md").write_text("# Title\n", encoding="utf-8")
    (tmp_path / "docs" / "benchmarks.md").write_text("## Encoding\n", encoding="utf-8")
    page = tmp_path / "docs" / "probe.md"
    page.write_text(
        "# A `code` heading: with punctuation!\n\n## Twice\n\n## Twice\n\n"
        "[ok](#a-code-heading-with-punctuation) [ok](#twice-1) [ok](benchmarks.md#encoding)\n"
        "[ok](../README.md) [ok](../latecore) [web](https://example.com/missing)\n"
        "[file](missing.md) [anchor](#nowhere) [other](benchmarks.md#nowhere) [up](../../x)\n"
        "`[in code](missing-too.md)`\n\n```\n[fenced](missing-three.md)\n```\n",
        encoding="utf-8",
    )
    (tmp_path.parent / "x").touch()
    assert broken_links([page], tmp_path) == [
        "docs/probe.md:9 -> missing.md: no such file",
        "docs/probe.md:9 -> #nowhere: no heading with anchor #nowhere",
        "docs/probe.md:9 -> benchmarks.md#nowhere: no heading with anchor #nowhere",
        "docs/probe.md:9 -> ../../x: outside the repository",
    ]


def test_the_readme_is_a_landing_page_with_its_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines"
    assert "make demo   #" in text and "make test   #" in text
    assert "## Which backend" in text
    for page in ("backends", "benchmarks", "guarantees", "hybrid", "models", "development"):
        assert f"(docs/{page}.md" in text, page


@pytest.mark.slow
def test_the_quickstart_runs_offline(minilm_path: Path) -> None:
    (quickstart,) = [
        source
        for _, source in code_blocks(README.read_text(encoding="utf-8"), "python")
        if "Reranker(encoder)" in source
    ]
    assert quickstart.count(repr(DEFAULT_MODEL).replace("'", '"')) == 1
    source = quickstart.replace(f'"{DEFAULT_MODEL}"', repr(str(minilm_path)))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), pytest.warns(latecore.ZeroShotWarning):
        exec(compile(source, "README.md quickstart", "exec"), {})
    first, second, hits = printed.getvalue().splitlines()
    assert first.startswith("1 ") and first.endswith("Paris is the capital of France.")
    assert second.startswith("0 ")
    assert "id='paris'" in hits


def _python_blocks() -> list[tuple[str, str]]:
    return [
        (f"{page.relative_to(REPO)}:{line}", source)
        for page in PAGES
        for line, source in code_blocks(page.read_text(encoding="utf-8"), "python")
    ]


def test_python_blocks_are_ruff_formatted() -> None:
    pytest.importorskip("ruff")
    blocks = _python_blocks()
    assert len(blocks) >= 10
    unformatted = []
    for where, source in blocks:
        result = subprocess.run(
            [sys.executable, "-m", "ruff", "format", "--diff", "--stdin-filename", "block.py", "-"],
            input=source,
            capture_output=True,
            text=True,
            cwd=REPO,
        )
        if result.returncode != 0:
            unformatted.append(f"{where}\n{result.stdout}{result.stderr}")
    assert not unformatted, "\n".join(unformatted)


# --- benchmark figures live on docs/benchmarks.md only ----------------------------------

FIGURE = re.compile(
    r"(?<![\w.,])(?<!default )(?:"  # a whole number, not a setting's default
    r"\d[\d,.]*\s?(?:ms|µs|us|GFLOP/s|GiB|GB)\b"  # times, throughput, memory
    r"|\d[\d,.]*\s?(?:docs|documents)/s\b"  # encode and search rates
    r"|\d[\d,.]*x (?:faster|slower)\b"  # speed-ups
    r")"
    r"|(?:recall|nDCG|Recall)@\d+ (?:of )?0\.\d+"  # quality measured
    r"|(?<![\w.])0\.\d+ (?:at|->) \d"  # "0.969 at 228", "100 -> 0.83"
)


def figures(text: str) -> list[str]:
    return [m.group(0) for m in FIGURE.finditer(text)]


def docstrings(path: Path) -> str:
    """Every docstring of a module: its own, its classes', functions' and attributes'."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if not isinstance(body, list):
            continue
        for statement in body:
            if (
                isinstance(statement, ast.Expr)
                and isinstance(statement.value, ast.Constant)
                and isinstance(statement.value.value, str)
            ):
                found.append(statement.value.value)
    return "\n".join(found)


def test_the_figure_pattern_finds_figures_and_leaves_settings_alone() -> None:
    assert figures("23.8 ms at 0.975, 17.8x faster, 47,288 docs/s, 2.34 GiB") == [
        "23.8 ms",
        "17.8x faster",
        "47,288 docs/s",
        "2.34 GiB",
    ]
    assert figures("nprobes 2 -> recall@10 0.969 at 228 ms") == ["recall@10 0.969", "228 ms"]
    assert figures("default 100 candidates, min_share 0.75, default 4 GiB, 0700, k=10") == []


def test_benchmark_figures_appear_only_on_the_benchmarks_page() -> None:
    assert len(figures(BENCHMARKS.read_text(encoding="utf-8"))) > 30
    found = {
        page.relative_to(REPO).as_posix(): figures(
            "\n".join(line for _, line in prose_lines(page.read_text(encoding="utf-8")))
        )
        for page in PAGES
        if page != BENCHMARKS
    }
    assert {page: hits for page, hits in found.items() if hits} == {}


def test_docstrings_link_to_the_benchmarks_instead_of_repeating_figures() -> None:
    modules = sorted(
        p
        for root in (REPO / "latecore", REPO / "integrations")
        for p in root.rglob("*.py")
        if ".venv" not in p.parts
    )
    found = {p.relative_to(REPO).as_posix(): figures(docstrings(p)) for p in modules}
    assert {path: hits for path, hits in found.items() if hits} == {}
