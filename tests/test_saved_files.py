"""A saved index records every file it wrote; a load checks the store's files against it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from latecore import IndexFormatError, LateIndex
from latecore._saved import MANIFEST
from latecore.testing import FakeEncoder


def _saved(path: Path) -> Path:
    index = LateIndex(FakeEncoder())
    index.add(["paris is in france", "berlin is in germany"], ids=["p", "b"])
    index.save(path)
    return path


def test_manifest_records_every_file_of_the_save(tmp_path: Path) -> None:
    saved = _saved(tmp_path / "index")
    files = json.loads((saved / MANIFEST).read_text())["files"]
    assert sorted(files["store"]) == ["documents.jsonl", "lengths.npy", "vectors.npy"]
    assert files["backend"] == {}
    vectors = files["store"]["vectors.npy"]
    assert vectors["npy"] == {"shape": [10, 32], "dtype": "<f2", "fortran_order": False}
    assert vectors["size"] == (saved / "vectors.npy").stat().st_size
    assert len(vectors["xxh3_128"]) == 32


@pytest.mark.parametrize(
    ("name", "damage", "message"),
    [
        ("vectors.npy", "flip", "vectors.npy is damaged: its digest differs"),
        ("vectors.npy", "truncate", "vectors.npy is damaged: its .npy header declares"),
        ("documents.jsonl", "flip", "documents.jsonl is damaged: its digest differs"),
        ("lengths.npy", "missing", "lengths.npy cannot be read"),
    ],
)
def test_a_damaged_store_file_is_refused_by_name(
    tmp_path: Path, name: str, damage: str, message: str
) -> None:
    """A bit flip that keeps every shape (which loaded silently before), a truncation or a
    missing file: an ``IndexFormatError`` naming the saved directory and the file."""
    saved = _saved(tmp_path / "index")
    target = saved / name
    if damage == "flip":
        data = bytearray(target.read_bytes())
        data[-3] ^= 0x01
        target.write_bytes(bytes(data))
    elif damage == "truncate":
        target.write_bytes(target.read_bytes()[:-2])
    else:
        target.unlink()
    with pytest.raises(IndexFormatError, match=message) as caught:
        LateIndex.load(saved, FakeEncoder())
    assert str(saved) in str(caught.value) and "/proc/" not in str(caught.value)


def test_a_save_without_file_records_still_loads(tmp_path: Path) -> None:
    """Indexes saved before file records existed load as before."""
    saved = _saved(tmp_path / "index")
    manifest = json.loads((saved / MANIFEST).read_text())
    del manifest["files"]
    (saved / MANIFEST).write_text(json.dumps(manifest))
    loaded = LateIndex.load(saved, FakeEncoder())
    assert loaded.ids == ["p", "b"]
    assert np.array_equal(loaded.score("paris", ["p"]), _reference_score())


def _reference_score() -> np.ndarray:
    index = LateIndex(FakeEncoder())
    index.add(["paris is in france"], ids=["p"])
    return index.score("paris", ["p"])
