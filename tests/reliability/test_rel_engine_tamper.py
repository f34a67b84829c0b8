"""A tampered engine file in a saved index never crashes the interpreter.

WARP (xtr-warp-rs) and PLAID (fast-plaid) read their saved files natively: a
``.npy`` whose header claims more than the file holds loaded silently, and the
next ``add()`` ended the process with SIGSEGV. Every engine file of a saved
index is now checked against the manifest (size, ``.npy`` header, digest) before
the engine sees it; a file that differs makes the backend drop the saved engine
and rebuild it from the stored vectors (nothing is lost).

Each saved engine file is tampered with 20 times (its header made larger,
truncated, bytes flipped; seeded), each in a fresh copy of the saved index, in a
worker process (a crash must not take pytest with it). Every copy must load to
an index that adds a document and then searches exactly like ``exact``, or raise
an ``IndexFormatError``, never end the worker by a signal. Loads run with a
rebuild threshold out of reach, so that a rejected engine is seen as pending
documents scored exactly; the first tampering of every file loads with the
defaults instead, so its search rebuilds the engine and must still equal exact.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from _rel_support import start_worker

from latecore import LateIndex
from latecore.testing import FakeEncoder

pytestmark = [pytest.mark.engines, pytest.mark.slow]  # xtr-warp-rs, fast-plaid; workers

TAMPERINGS = 20
KINDS = ("header", "truncation", "flips")
WORDS = [f"w{i}" for i in range(40)]


def _texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=rng.randint(8, 30))) for _ in range(n)]


ENGINES: dict[str, dict[str, object]] = {
    "warp": {"build_min": 50, "n_candidates": 400, "nprobe": 32},
    "plaid": {"rebuild_min": 10, "num_partitions": 16, "kmeans_niters": 2, "device": "cpu"},
}


def _saved_engine_index(engine: str, path: Path) -> list[str]:
    """A built ``engine`` index of 200 documents saved at ``path``; its engine files."""
    with LateIndex(FakeEncoder(), backend=engine, **ENGINES[engine]) as index:  # type: ignore[arg-type]
        index.add(_texts(200, seed=0), ids=[f"d{i}" for i in range(200)])
        index.build()
        index.save(path)
    folder = path / engine
    return sorted(str(p.relative_to(path)) for p in folder.rglob("*") if p.is_file())


@pytest.mark.timeout(900)
@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_tampered_engine_files_give_an_error_or_a_correct_rebuild(
    engine: str, tmp_path: Path
) -> None:
    saved = tmp_path / "saved"
    files = _saved_engine_index(engine, saved)
    assert len(files) >= 10, files
    rng = random.Random(26)
    cases = [
        {
            "file": name,
            "kind": KINDS[n % len(KINDS)],
            "seed": rng.randrange(2**31),
            "rebuild": n == 0,
        }
        for name in files
        for n in range(TAMPERINGS)
    ]
    plan = tmp_path / "plan.json"
    plan.write_text(
        json.dumps({"cases": cases, "queries": _texts(8, seed=1), "added": " ".join(WORDS[:12])})
    )
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    worker = start_worker("tamper", engine, saved, scratch, plan)
    out, err = worker.communicate()
    lines = out.splitlines()
    started = [line for line in lines if line.startswith("case ")]
    last = cases[int(started[-1].split()[1])] if started else None
    assert worker.returncode == 0, (
        f"the worker ended with status {worker.returncode} during {last}: {err[-3000:]}"
    )
    outcomes = [line for line in lines if not line.startswith("case ")]
    assert outcomes[-1] == "done" and len(outcomes) == len(cases) + 1
    results = dict(zip(map(json.dumps, cases), outcomes, strict=False))
    bad = {case: outcome for case, outcome in results.items() if outcome.startswith("different")}
    assert not bad, f"{len(bad)} tamperings changed the results: {list(bad.items())[:5]}"
    counts: dict[str, int] = {}
    for outcome in outcomes[:-1]:
        counts[outcome] = counts.get(outcome, 0) + 1
    print(f"{engine}: {len(cases)} tamperings of {len(files)} files: {counts}")
    rebuilt = [results[json.dumps(c)] for c in cases if c["rebuild"]]
    assert all(r in ("same rebuilt", "error IndexFormatError") for r in rebuilt), rebuilt
