"""The on-disk format of a saved :class:`~latecore.index.LateIndex`.

A saved index is one directory: the manifest ``latecore-index.json`` (format,
encoder fingerprint and its fields, the store's entry, the backend's name,
settings and state), the store's files (``vectors.npy``, ``lengths.npy``,
``documents.jsonl`` for a :class:`~latecore.store.MemoryStore`) and any backend
files. Nothing is pickled. :func:`write_index` fills a fresh directory (the
caller swaps it in atomically); :func:`read_index` checks and reads one.

The manifest also records every file of the save (``files``: the store's and the
backend's, each with its size, digest and ``.npy`` header; see
:mod:`latecore._files`). :func:`opened_index` reads a saved index the way
:meth:`~latecore.index.LateIndex.load` does: through one directory handle, the
store's files checked against those records before they are read (a backend
checks its own, :meth:`~latecore.backends.base.SavedState.checked_copy`), and
a failure caused by another process saving over the index meanwhile raised as
:class:`~latecore.errors.IndexChangedError` (load again).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from ._atomic import OpenedDirectory
from ._files import FileRecords, check_files, list_files, record_files
from .backends import reopen_backend
from .engine_store import EngineStore
from .errors import (
    FingerprintMismatchError,
    IndexChangedError,
    IndexFormatError,
    InputError,
    LatecoreError,
)
from .mapped_store import MappedStore
from .store import DocumentStore, MemoryStore

if TYPE_CHECKING:
    from .backends import Backend, SavedState
    from .base_encoder import BaseEncoder

__all__ = [
    "MANIFEST",
    "STORES",
    "SavedIndex",
    "is_saved_index",
    "opened_index",
    "read_index",
    "write_index",
]

FORMAT = "latecore.LateIndex"
FORMAT_VERSION = 1
MANIFEST = "latecore-index.json"

STORES: dict[str, type[DocumentStore]] = {
    MemoryStore.name: MemoryStore,
    EngineStore.name: EngineStore,
}
"""Store name (as saved in a manifest) -> class."""


class SavedIndex(NamedTuple):
    """What :func:`read_index` found: the store, the backend's manifest entry and the
    records of the backend's files (``None`` for a save that kept no records)."""

    store: DocumentStore
    backend: Mapping[str, Any]
    backend_files: FileRecords | None = None


def is_saved_index(directory: Path) -> bool:
    """Whether ``directory`` holds a saved index's manifest (so a save may replace it)."""
    return (directory / MANIFEST).is_file()


def write_index(
    directory: Path, store: DocumentStore, backend: Backend, encoder: BaseEncoder
) -> None:
    """Write ``store``, ``backend``'s files and the manifest (last, with the records of
    every file) into ``directory``."""
    store_entry = store.save(directory)
    store_files = list_files(directory)
    backend_state = backend.save(directory)
    backend_files = list_files(directory) - store_files
    manifest = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "count": len(store),
        "dtype": store.dtype.name,
        "fingerprint": encoder.fingerprint,
        "fingerprint_fields": encoder.fingerprint_fields,
        "store": store_entry,
        "backend": {"name": backend.name, "options": backend.options, "state": backend_state},
        "files": {
            "store": record_files(directory, store_files),
            "backend": record_files(directory, backend_files),
        },
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")


def read_index(directory: Path, encoder: BaseEncoder, *, mmap: bool = False) -> SavedIndex:
    """Read the index saved in ``directory`` for ``encoder`` (``mmap``: its vectors
    memory-mapped, :class:`~latecore.mapped_store.MappedStore`).

    Raises
    ------
    FingerprintMismatchError
        If ``encoder`` could produce other vectors than the one the index was
        built with; the message names both fingerprints and the settings that differ.
    IndexFormatError
        If the directory is not a saved index, or is damaged (a store file differs
        from the manifest's record of it).
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
    if mmap and store_class is not MemoryStore:
        raise InputError(
            f"mmap=True maps the vectors of an index that keeps them in its store; {directory} "
            f"keeps them in its engine (store {entry.get('name')!r}): load it without mmap"
        )
    if mmap:
        store_class = MappedStore
    files = manifest.get("files")
    if files is not None:
        try:
            check_files(directory, files["store"])
        except IndexFormatError as error:
            raise IndexFormatError(
                f"{directory}: {error}; load an intact copy of the index, or rebuild it"
            ) from error
    return SavedIndex(
        store_class.load(directory, entry),
        manifest.get("backend") or {},
        None if files is None else files["backend"],
    )


@contextmanager
def opened_index(
    path: Path,
    encoder: BaseEncoder,
    backend: str | Backend | None,
    options: Mapping[str, Any],
    *,
    mmap: bool = False,
) -> Iterator[tuple[DocumentStore, Backend, SavedState | None]]:
    """The store, backend and saved state of the index saved at ``path``, for the body to
    attach (see the module docstring); the directory is read through one handle
    until the body ends.

    Raises
    ------
    IndexChangedError
        If reading failed because another save replaced the index meanwhile.
    FingerprintMismatchError, IndexFormatError
        As :func:`read_index`.
    """
    try:
        opened = OpenedDirectory(path)
    except OSError as error:
        raise IndexFormatError(f"{path} is not a saved LateIndex: {error}") from error
    chosen: Backend | None = None
    with opened:
        try:
            saved = read_index(opened.path, encoder, mmap=mmap)
            chosen, state = reopen_backend(
                saved.backend, opened.path, backend, saved_at=path.resolve(), **options
            )
            if state is not None:
                state = dataclasses.replace(state, files=saved.backend_files, opened=opened)
            yield saved.store, chosen, state
        except (OSError, ValueError) as error:
            if isinstance(error, IndexChangedError):
                raise
            if not isinstance(error, FingerprintMismatchError) and not opened.is_current():
                raise opened.replaced() from error
            if isinstance(error, LatecoreError):
                raise type(error)(opened.named(str(error))) from error
            raise
        if not opened.stable and not opened.is_current():  # read by path: it may be a mix
            assert chosen is not None
            chosen.close()
            raise opened.replaced()


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
