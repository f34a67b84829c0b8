"""Indexes saved by latecore before qdrant-edge, when it used qdrant-client's local mode.

An in-memory collection (``location=":memory:"``) kept nothing on disk: it is
re-indexed from the saved documents into a temporary shard on load. A local
collection directory (``path=``) is qdrant-client's own SQLite format, which
qdrant-edge cannot read: loading names the way out,
``LateIndex.load(saved, encoder, path="<new dir>")``, which re-indexes from
the vectors saved with the index.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ...errors import IndexFormatError
from .edge import EDGE_CONFIG

__all__ = ["is_local_mode_storage", "migration_error", "upgrade_options"]

logger = logging.getLogger(__name__)


def is_local_mode_storage(path: Path) -> bool:
    """Whether ``path`` holds qdrant-client local-mode storage (which qdrant-edge cannot read)."""
    return (path / "meta.json").is_file() or any(path.glob("collection/*/storage.sqlite"))


def migration_error(path: Path) -> IndexFormatError:
    """The error naming the migration of a local-mode collection directory."""
    return IndexFormatError(
        f"the Qdrant collection in {path} was written by qdrant-client's local mode, which "
        "latecore no longer uses and qdrant-edge cannot read. Re-index it from the vectors "
        "saved with the index (nothing is lost): "
        'LateIndex.load(saved_index, encoder, path="<a new directory>")'
    )


def upgrade_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Saved options without an ``"engine"`` entry (written before qdrant-edge), converted.

    Raises
    ------
    IndexFormatError
        If they name a local-mode collection directory (see :func:`migration_error`).

    Examples
    --------
    >>> upgrade_options({"location": ":memory:", "prefetch": 5})
    {'prefetch': 5}
    """
    upgraded = dict(options)
    if "location" in upgraded:
        logger.info(
            "this index was saved with an in-memory Qdrant collection (qdrant-client's "
            "local mode); its documents are indexed anew in an embedded qdrant-edge shard"
        )
    elif "path" in upgraded and not (Path(upgraded["path"]) / EDGE_CONFIG).is_file():
        raise migration_error(Path(upgraded["path"]))
    upgraded.pop("location", None)
    return upgraded
