"""``latecore search --pages``: PDFs and images indexed and searched, page hits printed.

The tiny ColQwen2 checkpoint of the session (``tiny_page_encoder_path``) is the
page model; the PDF and the PNG are generated here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from _pages_support import content_words, write_image, write_pdf

from latecore.cli import main

SCRIPT = Path(sys.executable).with_name("latecore")

PAGES = [
    ("text", ["river", "mountain", "sea", *content_words()[10:30]]),
    ("table", ["bread", "cheese", "wine", *content_words()[30:45]]),
    ("chart", ["music", "song", "piano", *content_words()[45:60]]),
    ("scan", ["planet", "moon", "star", *content_words()[60:80]]),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("cli-pages")
    pdf, png = folder / "report.pdf", folder / "figure.png"
    write_pdf(pdf, PAGES, seed=1)
    write_image(png, ["coffee", "tea", "food", *content_words()[80:100]], seed=2)
    return pdf, png


def _hits(stdout: str) -> list[str]:
    return [m.group(1) for m in re.finditer(r"^\s+\d+\. (\S+)  score", stdout, re.MULTILINE)]


def test_search_pages_prints_page_hits_and_reuses_the_cache(
    files: tuple[Path, Path],
    tiny_page_encoder_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pdf, png = files
    argv = [
        "search",
        "--pages",
        str(pdf),
        str(png),
        "-q",
        "bread cheese wine",
        "--model",
        str(tiny_page_encoder_path),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--no-progress",
        "-k",
        "5",
    ]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "Indexed 5 pages (2 without a text layer): 0 served from the cache, 5 encoded" in (
        captured.err
    )
    hits = _hits(captured.out)
    assert sorted(hits) == sorted([*(f"{pdf}:page_{n}" for n in range(1, 5)), f"{png}:page_1"])
    table = captured.out.split(f"{pdf}:page_2  score", 1)[1]  # its words are the query's
    assert re.match(r" [\d.-]+  \(bm25 [\d.]+ #1, maxsim [\d.-]+ #\d\)", table), table
    assert "[pdf page 2, 408x528 px]" in table.splitlines()[0]
    assert table.splitlines()[1].startswith("     text: ") and "bread" in table.splitlines()[1]
    assert "text: (no text layer)" in captured.out  # the scan and the PNG
    boxes = re.findall(r"at \((\d+), (\d+), (\d+), (\d+)\)", captured.out)
    assert boxes and all(int(x0) < int(x1) and int(y0) < int(y1) for x0, y0, x1, y1 in boxes)

    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "Indexed 5 pages (2 without a text layer): 5 served from the cache, 0 encoded" in err

    assert main([*argv, "--filter", '{"kind": "image"}']) == 0
    out = capsys.readouterr().out
    assert _hits(out) == [f"{png}:page_1"] and "(1 of 5 pages match)" in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--dpi", "0"], "--dpi must be a positive integer, got 0"),
        (["notes.txt"], "not both"),
    ],
)
def test_bad_page_arguments_exit_2(
    files: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    argv = ["search", *extra, "--pages", str(files[0]), "-q", "x", "--model", "no/such-model"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_missing_or_unsupported_page_files_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["search", "--pages", str(tmp_path / "missing.pdf"), "-q", "x"]) == 2
    assert "latecore: error:" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("text", encoding="utf-8")
    assert main(["search", "--pages", str(tmp_path / "notes.txt"), "-q", "x"]) == 2
    err = capsys.readouterr().err
    assert "latecore: error:" in err and "Traceback" not in err
    assert main(["search", "-q", "x"]) == 2
    assert "give text files or folders as PATH, or --pages FILE" in capsys.readouterr().err


@pytest.mark.slow
def test_search_pages_runs_as_the_console_script(
    files: tuple[Path, Path], tiny_page_encoder_path: Path, tmp_path: Path
) -> None:
    assert SCRIPT.is_file(), "the latecore console script is not installed (pip install -e .)"
    env = {
        **os.environ,
        "LATECORE_CACHE_DIR": str(tmp_path / "cache"),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "LATECORE_PROGRESS": "0",
        "LATECORE_PAGE_MODEL": str(tiny_page_encoder_path),
    }
    run = subprocess.run(
        [str(SCRIPT), "search", "--pages", str(files[0]), "-q", "planet moon star", "-k", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert len(_hits(run.stdout)) == 2
    assert "Indexed 4 pages (1 without a text layer): 0 served from the cache, 4 encoded" in (
        run.stderr
    )
    assert "Traceback" not in run.stderr
