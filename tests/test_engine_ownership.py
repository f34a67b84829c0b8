"""An engine table has one owner: a copy of a saved index (``cp -r``) or another index is
refused on attach, unless it takes the table over, and no index loses a document."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from _engine_support import word_corpus

from latecore import LateIndex
from latecore.errors import EngineOwnershipError
from latecore.testing import FakeEncoder

pytestmark = pytest.mark.engines  # qdrant-edge, lancedb

ENGINES = ["qdrant", "lancedb"]


def _where(engine: str, tmp_path: Path) -> dict[str, Any]:
    return {"path": tmp_path / "shard"} if engine == "qdrant" else {"uri": tmp_path / "db"}


def _rows(index: LateIndex) -> int:
    return int(index.backend._engine.count())  # type: ignore[attr-defined]


@pytest.mark.parametrize("vectors", ["engine", "local"])
@pytest.mark.parametrize("engine", ENGINES)
def test_a_copied_index_is_refused_and_neither_loses_a_document(
    engine: str, vectors: str, tmp_path: Path
) -> None:
    encoder = FakeEncoder()
    texts, ids = word_corpus(30, seed=1)
    where = _where(engine, tmp_path)
    with LateIndex(encoder, backend=engine, vectors=vectors, **where) as index:  # type: ignore[arg-type]
        index.add(texts, ids=ids)
        index.save(tmp_path / "original")
    shutil.copytree(tmp_path / "original", tmp_path / "copy")

    with pytest.raises(EngineOwnershipError, match=r"saved at .*original.*take_over=True"):
        LateIndex.load(tmp_path / "copy", encoder)
    with LateIndex.load(tmp_path / "original", encoder) as original:  # the owner loads as ever
        assert len(original) == 30 and _rows(original) == 30
        assert original.search(texts[3], k=1)[0].id == ids[3]

    # Taken over on purpose: the copy owns the table, adds to it; the original is refused.
    more, more_ids = word_corpus(5, seed=2)
    with LateIndex.load(tmp_path / "copy", encoder, take_over=True) as copy:
        copy.add(more, ids=more_ids)
        copy.save(tmp_path / "copy")
    with pytest.raises(EngineOwnershipError, match="copy"):
        LateIndex.load(tmp_path / "original", encoder)
    with LateIndex.load(tmp_path / "copy", encoder) as copy:
        assert len(copy) == 35 and _rows(copy) == 35  # nothing was deleted by anyone
        assert copy.search(more[2], k=1)[0].id == more_ids[2]
        assert copy.search(texts[4], k=1)[0].id == ids[4]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_new_index_refuses_an_owned_table_and_saves_move_the_owner(
    engine: str, tmp_path: Path
) -> None:
    encoder = FakeEncoder()
    texts, ids = word_corpus(10, seed=3)
    where = _where(engine, tmp_path)
    with LateIndex(encoder, backend=engine, **where) as index:  # type: ignore[arg-type]
        index.add(texts, ids=ids)
        index.delete(ids)  # an empty table is still owned
        index.save(tmp_path / "first")
    with pytest.raises(ValueError, match="has an owner"):
        LateIndex(encoder, backend=engine, **where)  # type: ignore[arg-type]
    with LateIndex.load(tmp_path / "first", encoder) as index:
        index.add(texts, ids=ids)
        index.save(tmp_path / "second")  # the index now lives at the second path
    with pytest.raises(EngineOwnershipError, match="second"):
        LateIndex.load(tmp_path / "first", encoder)
    with LateIndex.load(tmp_path / "second", encoder) as loaded:
        assert len(loaded) == 10 and _rows(loaded) == 10
    with LateIndex(encoder, backend=engine, recreate=True, **where) as fresh:  # type: ignore[arg-type]
        assert len(fresh) == 0 and _rows(fresh) == 0


@pytest.mark.parametrize("engine", ENGINES)
def test_an_index_saved_before_owner_records_loads_and_claims_its_table(
    engine: str, tmp_path: Path
) -> None:
    """A manifest without an owner id and a table without an owner record (latecore before
    this change) load as before; the table is then claimed for that saved index."""
    import json

    encoder = FakeEncoder()
    texts, ids = word_corpus(12, seed=4)
    where = _where(engine, tmp_path)
    with LateIndex(encoder, backend=engine, **where) as index:  # type: ignore[arg-type]
        index.add(texts, ids=ids)
        index.save(tmp_path / "saved")
        backend = index.backend
    manifest_path = tmp_path / "saved" / "latecore-index.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["backend"]["state"] = {}
    manifest_path.write_text(json.dumps(manifest))
    # Remove the owner record the way an older latecore would have left the table.
    with LateIndex.load(tmp_path / "saved", encoder, take_over=True) as loaded:
        table = loaded.backend._engine  # type: ignore[attr-defined]
        if engine == "qdrant":
            from latecore.backends.qdrant.schema import OWNER_POINT

            table.delete([OWNER_POINT])
        else:
            from latecore.backends.lancedb.table import ID_COLUMN, OWNER_METADATA

            table.open().update_field_metadata(
                {"path": ID_COLUMN, "metadata": {OWNER_METADATA: None}}
            )
        assert table.owner() is None
    del backend
    with LateIndex.load(tmp_path / "saved", encoder) as legacy:
        assert len(legacy) == 12 and _rows(legacy) == 12
        owner = legacy.backend._engine.owner()  # type: ignore[attr-defined]
        assert owner["path"] == str((tmp_path / "saved").resolve())
    with LateIndex.load(tmp_path / "saved", encoder) as again:  # and keeps loading
        assert len(again) == 12
