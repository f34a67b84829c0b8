"""What a save records about every file it writes, and the check made before one is read.

A saved index's manifest lists every file of the save (its path relative to the
index directory) with its size, an XXH3-128 digest of its bytes and, for a
``.npy`` file, the shape, dtype and order its header declares
(:func:`record_files`). :func:`check_files` compares files with those records
before anything reads them: a missing, truncated, extended, bit-flipped or
re-headed file, a symbolic link or anything but a regular file, and a ``.npy``
whose header promises more (or fewer) bytes than the file holds are all
refused with an :class:`~latecore.errors.IndexFormatError` naming the file.

The digest detects damage and mixes of two saves, not forgery: whoever can
rewrite the files can rewrite the manifest too. The ``.npy`` checks do not rely
on the manifest alone: a header must agree with the file's size in any case.

Examples
--------
>>> import tempfile
>>> root = Path(tempfile.mkdtemp())
>>> np.save(root / "a.npy", np.zeros((2, 3), np.float16))
>>> records = record_files(root, ["a.npy"])
>>> records["a.npy"]["npy"]
{'shape': [2, 3], 'dtype': '<f2', 'fortran_order': False}
>>> check_files(root, records)
>>> with open(root / "a.npy", "r+b") as damaged:
...     _ = damaged.seek(-1, os.SEEK_END)
...     _ = damaged.write(b"x")
>>> check_files(root, records)
Traceback (most recent call last):
...
latecore.errors.IndexFormatError: a.npy is damaged: its digest differs from the saved one
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import xxhash
from numpy.lib import format as npy_format

from .errors import IndexFormatError

__all__ = ["FileRecords", "check_files", "copy_files", "list_files", "record_files"]

FileRecords = Mapping[str, Mapping[str, Any]]
"""Relative path -> ``{"size": int, "xxh3_128": hex, "npy": {...}}`` (``npy`` for .npy files)."""

_CHUNK = 1 << 22


def list_files(directory: Path) -> set[str]:
    """Relative (``/``-separated) paths of the files under ``directory``; links not followed.

    Examples
    --------
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "sub").mkdir(); _ = (root / "sub" / "b.json").write_text("{}")
    >>> sorted(list_files(root))
    ['sub/b.json']
    """
    found: set[str] = set()
    for folder, _, names in os.walk(directory):
        relative = Path(folder).relative_to(directory)
        found.update((relative / name).as_posix() for name in names)
    return found


def _npy_header(reader: BinaryIO, size: int, name: str) -> dict[str, Any]:
    """The header of the ``.npy`` file open in ``reader``, checked against its ``size``."""
    try:
        version = npy_format.read_magic(reader)
        if version == (1, 0):
            shape, fortran_order, dtype = npy_format.read_array_header_1_0(reader)
        elif version == (2, 0):
            shape, fortran_order, dtype = npy_format.read_array_header_2_0(reader)
        else:
            raise ValueError(f".npy version {version} is not supported")
    except Exception as error:  # numpy's parser of untrusted headers raises many kinds
        raise IndexFormatError(
            f"{name} is damaged: its .npy header is unreadable ({error})"
        ) from error
    if dtype.hasobject:
        raise IndexFormatError(f"{name} holds Python objects (a pickle); latecore never loads one")
    expected = reader.tell() + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if expected != size:
        raise IndexFormatError(
            f"{name} is damaged: its .npy header declares {shape} {dtype} "
            f"({expected} bytes), the file has {size}"
        )
    return {"shape": list(shape), "dtype": dtype.str, "fortran_order": bool(fortran_order)}


def _read_record(directory: Path, name: str) -> dict[str, Any]:
    """Size, digest and (``.npy``) header of the regular file ``directory/name``."""
    try:
        descriptor = os.open(directory / name, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as error:
        raise IndexFormatError(f"{name} cannot be read: {error}") from error
    with open(descriptor, "rb") as reader:
        status = os.fstat(reader.fileno())
        if not stat.S_ISREG(status.st_mode):
            raise IndexFormatError(f"{name} is not a regular file")
        record: dict[str, Any] = {"size": status.st_size}
        if name.endswith(".npy"):
            record["npy"] = _npy_header(reader, status.st_size, name)
            reader.seek(0)
        # Read into one buffer (not mmap: a file truncated meanwhile would raise SIGBUS).
        digest, buffer = xxhash.xxh3_128(), bytearray(min(_CHUNK, status.st_size) or 1)
        view = memoryview(buffer)
        while read := reader.readinto(buffer):
            digest.update(view[:read])
        record["xxh3_128"] = digest.hexdigest()
    return record


def record_files(directory: Path, names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The records of the files ``names`` under ``directory`` (see the module docstring)."""
    return {name: _read_record(directory, name) for name in sorted(names)}


def check_files(directory: Path, records: FileRecords) -> None:
    """Check the files under ``directory`` against ``records`` (other files are not looked at).

    Raises
    ------
    IndexFormatError
        Naming the first file that is missing, not a regular file, or differs in
        size, ``.npy`` header or digest.
    """
    for name, expected in sorted(records.items()):
        found = _read_record(directory, name)
        for field, what in (("size", "size"), ("npy", ".npy header"), ("xxh3_128", "digest")):
            if found.get(field) != expected.get(field):
                raise IndexFormatError(f"{name} is damaged: its {what} differs from the saved one")


def copy_files(source: Path, names: Iterable[str], target: Path, *, link: bool) -> None:
    """Hard-link (``link=True``, where the file system allows) or copy ``names`` from ``source``.

    A hard link shares the saved file: use it only for files the engine never
    writes. ``target`` is created; where a link is refused (another file
    system, another owner) the file is copied.
    """
    for name in names:
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        if link:
            try:
                os.link(source / name, destination, follow_symlinks=False)
                continue
            except OSError:
                pass
        shutil.copyfile(source / name, destination, follow_symlinks=False)
