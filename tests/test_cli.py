"""The latecore command: chunking, the sample corpus, errors, and real runs in a subprocess."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from latecore.cli import main
from latecore.documents import chunk_text, demo_queries, load_documents
from latecore.documents import sample_corpus_path as corpus_path
from latecore.errors import InputError

SCRIPT = Path(sys.executable).with_name("latecore")


def test_chunk_text_splits_paragraphs_and_caps_their_size() -> None:
    text = "First para\nstill first.\n\n \nSecond para.\r\n\r\nThird. " + "word " * 60
    chunks = chunk_text(text, max_chars=100)
    assert chunks[:2] == ["First para\nstill first.", "Second para."]
    assert all(len(c) <= 100 for c in chunks)
    assert " ".join(chunks[2:]).split() == ("Third. " + "word " * 60).split()
    assert chunk_text("x" * 25, max_chars=10) == ["x" * 10, "x" * 10, "x" * 5]
    assert chunk_text("\n\n  \n") == []


def test_load_documents_reads_txt_md_and_jsonl(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("Bees make honey.\n\nWasps do not.", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "guide.md").write_text("# Title\n\nSome *markdown* text.", encoding="utf-8")
    records = [{"id": "a", "text": "Alpha text.", "lang": "en"}, "Plain string line."]
    (tmp_path / "data.jsonl").write_text(
        "\n".join(json.dumps(r) for r in records) + "\n\n", encoding="utf-8"
    )
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    chunks = load_documents([tmp_path])
    by_id = {c.id: c for c in chunks}
    assert len(chunks) == 6
    assert by_id["a"].text == "Alpha text."
    assert by_id["a"].metadata["lang"] == "en" and by_id["a"].metadata["line"] == 1
    assert {c.text for c in chunks} >= {"Bees make honey.", "Wasps do not.", "# Title"}
    assert f"{tmp_path / 'data.jsonl'}:2" in by_id
    notes = [c for c in chunks if c.metadata["source"].endswith("notes.txt")]
    assert [c.metadata["chunk"] for c in notes] == [1, 2]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.jsonl", "{not json}\n", "not valid JSON"),
        ("bad.jsonl", '{"body": "no text"}\n', 'a "text" string'),
        ("notes.pdf", "x", "unsupported file type"),
    ],
)
def test_load_documents_errors_name_the_problem(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=message):
        load_documents([path])
    with pytest.raises(InputError, match="no such file"):
        load_documents([tmp_path / "missing.txt"])


def test_sample_corpus_ships_a_few_hundred_paragraphs() -> None:
    chunks = load_documents([corpus_path()])
    assert 200 <= len(chunks) <= 300
    assert len({c.id for c in chunks}) == len(chunks)
    assert len({c.metadata["topic"] for c in chunks}) >= 15
    assert all(20 <= len(c.text) <= 300 for c in chunks)
    assert 3 <= len(demo_queries()) <= 10


def test_unloadable_model_exits_2_with_advice_and_no_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LATECORE_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "notes.txt").write_text("Some text.", encoding="utf-8")
    argv = ["search", str(tmp_path / "notes.txt"), "-q", "text", "--no-progress"]
    assert main([*argv, "--model", "no-such-org/no-such-colbert"]) == 2
    err = capsys.readouterr().err
    assert "could not fetch model 'no-such-org/no-such-colbert'" in err
    assert "--model /path/to/checkpoint" in err
    assert "Traceback" not in err
    assert main([*argv, "--model", str(tmp_path / "missing-dir/")]) == 2
    assert "not an existing checkpoint directory" in capsys.readouterr().err


def test_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search", str(tmp_path / "nothing-here"), "-q", "x"]) == 2
    assert "no such file or directory" in capsys.readouterr().err
    assert main(["search", str(tmp_path), "-q", "x"]) == 2  # an empty folder
    assert "no text found" in capsys.readouterr().err


@pytest.mark.parametrize("option", ["-k", "--candidates", "--max-chars"])
def test_counts_below_one_exit_2_naming_the_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str
) -> None:
    assert main(["search", str(tmp_path), "-q", "x", option, "0"]) == 2
    err = capsys.readouterr().err
    assert f"latecore: error: {option} must be a positive integer, got 0" in err


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.mark.slow
def test_demo_and_search_run_offline_and_reuse_the_cache(tmp_path: Path, minilm_path: Path) -> None:
    assert SCRIPT.is_file(), "the latecore console script is not installed (pip install -e .)"
    env = {
        **os.environ,
        "LATECORE_CACHE_DIR": str(tmp_path / "cache"),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "LATECORE_PROGRESS": "0",
    }
    env.pop("LATECORE_MODEL", None)
    corpus = load_documents([corpus_path()])
    n = len(corpus)

    demo = _run(["demo", "--model", str(minilm_path), "-q", "why is the sky blue?", "-k", "2"], env)
    assert demo.returncode == 0, demo.stderr
    assert "Query: why is the sky blue?" in demo.stdout
    assert re.search(r"^\s+1\. physics-01 ", demo.stdout, re.MULTILINE), demo.stdout
    assert "**sky**" in demo.stdout and "**blue**" in demo.stdout
    assert "zero-shot ColBERT" in demo.stderr and "--model" in demo.stderr
    assert f"Indexed {n} chunks: 0 served from the cache, {n} encoded" in demo.stderr
    assert "Traceback" not in demo.stderr

    # The same paragraphs as .txt, .md and .jsonl files: a second run, served from the cache.
    folder = tmp_path / "docs"
    folder.mkdir()
    by_id = {c.id: c.text for c in corpus}
    txt, md = ["physics-01", "physics-02"], ["animals-01", "animals-02", "food-11"]
    (folder / "notes.txt").write_text("\n\n".join(by_id[i] for i in txt), encoding="utf-8")
    (folder / "guide.md").write_text("\n\n".join(by_id[i] for i in md), encoding="utf-8")
    rest = [json.dumps({"id": i, "text": t}) for i, t in by_id.items() if i not in txt + md]
    (folder / "more.jsonl").write_text("\n".join(rest), encoding="utf-8")
    search = _run(
        ["search", str(folder), "--query", "how do bees make honey", "--model", str(minilm_path)],
        env,
    )
    assert search.returncode == 0, search.stderr
    assert f"Indexed {n} chunks: {n} served from the cache, 0 encoded" in search.stderr
    results = [line for line in search.stdout.splitlines() if re.match(r"^\s+\d+\. ", line)]
    assert len(results) == 10
    assert f"{folder / 'guide.md'}#1 " in results[0]
    assert "bm25" in results[0] and "colbert" in results[0]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('{"source": "notes.md"', "--filter is not valid JSON"),
        ('{"year": {"$between": [1, 2]}}', "--filter: unknown filter operator '$between'"),
        ('["source", "notes.md"]', "--filter: a filter must be a mapping, got list"),
        ('{"$or": []}', "--filter: $or takes a non-empty list"),
    ],
)
def test_a_bad_filter_exits_2_with_the_message_and_no_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str, message: str
) -> None:
    (tmp_path / "notes.md").write_text("Some text.", encoding="utf-8")
    for command in (["search", str(tmp_path), "-q", "text"], ["demo"]):
        assert main([*command, "--filter", value, "--model", "no-such-org/model"]) == 2
        err = capsys.readouterr().err
        assert f"latecore: error: {message}" in err
        assert "Traceback" not in err and "could not fetch model" not in err  # refused first


def _result_ids(stdout: str) -> list[str]:
    return [m.group(1) for m in re.finditer(r"^\s+\d+\. (\S+)  score", stdout, re.MULTILINE)]


def test_search_and_demo_with_a_filter(
    tmp_path: Path, minilm_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "notes.md").write_text(
        "Bees make honey from nectar.\n\nHoney keeps for years.", encoding="utf-8"
    )
    (folder / "other.txt").write_text(
        "Honeybees make honey in the hive.\n\nWasps make no honey.\n\nBears love honey.",
        encoding="utf-8",
    )
    common = ["--model", str(minilm_path), "--cache-dir", str(tmp_path / "cache"), "--no-progress"]
    source = str(folder / "notes.md")
    query = ["search", str(folder), "-q", "how do bees make honey", *common]
    assert main(query) == 0
    assert {i.split("#")[0] for i in _result_ids(capsys.readouterr().out)} == {
        source,
        str(folder / "other.txt"),
    }
    assert main([*query, "--filter", json.dumps({"source": source})]) == 0
    out = capsys.readouterr().out
    assert f'Filter: {{"source": "{source}"}} (2 of 5 chunks match)' in out
    assert _result_ids(out) == [f"{source}#1", f"{source}#2"]
    assert main([*query, "--filter", '{"chunk": {"$gt": 2}}']) == 0
    assert _result_ids(capsys.readouterr().out) == [f"{folder / 'other.txt'}#3"]
    assert main([*query, "--filter", '{"source": "nowhere.md"}']) == 0
    assert "(0 of 5 chunks match)\n  no results" in capsys.readouterr().out

    assert main(["demo", *common, "-k", "3"]) == 0
    out = capsys.readouterr().out
    unfiltered, filtered = out.split('Filter: {"topic": "plants"}')
    assert len(_result_ids(unfiltered)) == 3 * len(demo_queries())  # the samples, unfiltered
    assert any(not i.startswith("plants-") for i in _result_ids(unfiltered))
    assert unfiltered.rstrip().endswith("Query: how do bees make honey")
    corpus = load_documents([corpus_path()])
    plants = sum(c.metadata["topic"] == "plants" for c in corpus)
    assert filtered.startswith(f" ({plants} of {len(corpus)} chunks match)")
    assert len(_result_ids(filtered)) == 3
    assert all(i.startswith("plants-") for i in _result_ids(filtered))
