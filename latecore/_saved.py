"""The on-disk format of a saved :class:`~latecore.index.LateIndex`.

A saved index is one directory: the manifest ``latecore-index.json`` (format,
encoder fingerprint and its fields, the store's entry, the backend's name,
settings and state), the store's files (``vectors.npy``, ``lengths.npy``,
``documents.jsonl`` for a :class:`~latecore.store.MemoryStore`) and any backend
files. Nothing is pickled. :func:`write_index` fills a fresh directory (the
caller swaps it in atomically); :func:`read_index` checks and reads one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from .engine_store import EngineStore
from .errors import FingerprintMismatchError, IndexFormatError
from .store import DocumentStore, MemoryStore

if TYPE_CHECKING:
    from .backends import Backend
    from .encoder import BaseEncoder

__all__ = ["MANIFEST", "STORES", "SavedIndex", "is_saved_index", "read_index", "write_index"]

FORMAT = "latecore.LateIndex"
FORMAT_VERSION = 1
MANIFEST = "latecore-index.json"

STORES: dict[str, type[DocumentStore]] = {
    MemoryStore.name: MemoryStore,
    EngineStore.name: EngineStore,
}
"""Store name (as saved in a manifest) -> class."""


class SavedIndex(NamedTuple):
    """What :func:`read_index` found: the store, and the backend's manifest entry."""

    store: DocumentStore
    backend: Mapping[str, Any]


def is_saved_index(directory: Path) -> bool:
    """Whether ``directory`` holds a saved index's manifest (so a save may replace it)."""
    return (directory / MANIFEST).is_file()


def write_index(
    directory: Path, store: DocumentStore, backend: Backend, encoder: BaseEncoder
) -> None:
    """Write ``store``, ``backend``'s files and the manifest (last) into ``directory``."""
    manifest = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "count": len(store),
        "dtype": store.dtype.name,
        "fingerprint": encoder.fingerprint,
        "fingerprint_fields": encoder.fingerprint_fields,
        "store": store.save(directory),
        "backend": {
            "name": backend.name,
            "options": backend.options,
            "state": backend.save(directory),
        },
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")


def read_index(directory: Path, encoder: BaseEncoder) -> SavedIndex:
    """Read the index saved in ``directory`` for ``encoder``.

    Raises
    ------
    FingerprintMismatchError
        If ``encoder`` could produce other vectors than the one the index was
        built with; the message names both fingerprints and the settings that differ.
    IndexFormatError
        If the directory is not a saved index, or is damaged.
    """
    try:
        manifest: dict[str, Any] = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise IndexFormatError(f"{directory} is not a saved LateIndex: {error}") from error
    if manifest.get("format") != FORMAT or manifest.get("version") != FORMAT_VERSION:
        raise IndexFormatError(f"{directory} has unknown format {manifest.get('format')!r}")
    _check_fingerprint(manifest, encoder, directory)
    entry = manifest.get("store") or {"name": "memory", "dtype": manifest["dtype"]}
    store_class = STORES.get(entry.get("name", ""))
    if store_class is None:
        raise IndexFormatError(f"{directory} uses an unknown store {entry.get('name')!r}")
    return SavedIndex(store_class.load(directory, entry), manifest.get("backend") or {})


def _check_fingerprint(manifest: Mapping[str, Any], encoder: BaseEncoder, directory: Path) -> None:
    if manifest["fingerprint"] == encoder.fingerprint:
        return
    theirs = manifest.get("fingerprint_fields", {})
    ours = encoder.fingerprint_fields
    differing = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
    raise FingerprintMismatchError(
        f"index at {directory} was built with encoder fingerprint "
        f"{manifest['fingerprint']}, but this encoder's fingerprint is "
        f"{encoder.fingerprint}; differing settings: {', '.join(differing) or 'unknown'}. "
        "Load it with the encoder it was built with, or rebuild the index."
    )
