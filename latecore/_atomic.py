"""Replacing a whole directory so that a crash leaves the old one or the new one.

:func:`replace_directory` writes a complete new directory beside the target
(``.NAME.latecore-new``), flushes it to disk, moves the old directory aside
(``.NAME.latecore-old``), moves the new one into place and only then deletes
the old one. Between the two moves the target does not exist; a crash there
leaves both complete copies beside it, and :func:`readable_directory` (what a
loader calls) then reads the old one. The next :func:`replace_directory` puts
it back before doing anything else.

Examples
--------
>>> import tempfile
>>> target = Path(tempfile.mkdtemp()) / "index"
>>> replace_directory(target, lambda d: (d / "a.txt").write_text("v1"))
>>> replace_directory(target, lambda d: (d / "a.txt").write_text("v2"), is_ours=lambda d: True)
>>> (readable_directory(target) / "a.txt").read_text()
'v2'
>>> sorted(p.name for p in target.parent.iterdir())  # nothing left beside it
['index']
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

__all__ = ["readable_directory", "replace_directory"]


def _staging(target: Path) -> Path:
    return target.parent / f".{target.name}.latecore-new"


def _retired(target: Path) -> Path:
    return target.parent / f".{target.name}.latecore-old"


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for folder, _, files in os.walk(root):
        for name in files:
            _fsync(Path(folder) / name)
        _fsync(Path(folder))


def readable_directory(target: Path) -> Path:
    """Where the last completed :func:`replace_directory` of ``target`` can be read.

    ``target`` itself, unless a replacement was interrupted between its two
    renames (``target`` missing, the old copy beside it): then the old copy.
    """
    retired = _retired(target)
    if not target.exists() and retired.is_dir():
        return retired
    return target


def _recover(target: Path) -> None:
    retired = _retired(target)
    if retired.is_dir():
        if target.exists():
            shutil.rmtree(retired)
        else:
            os.rename(retired, target)


def replace_directory(
    target: str | os.PathLike[str],
    write: Callable[[Path], object],
    *,
    is_ours: Callable[[Path], bool] = lambda directory: False,
) -> None:
    """Replace directory ``target`` by what ``write`` puts into a fresh directory.

    Parameters
    ----------
    target
        The directory to create or replace.
    write
        Called with an empty directory on the same file system; it writes the
        complete new contents. If it raises, ``target`` is left unchanged.
    is_ours
        Whether an existing ``target`` may be replaced. An empty directory
        always may; anything else that ``is_ours`` rejects raises
        ``FileExistsError`` and is left as it is.

    Raises
    ------
    FileExistsError
        If ``target`` exists, is not empty and is not ours (or is a file).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _recover(target)
    if target.exists():
        if not target.is_dir():
            raise FileExistsError(f"{target} exists and is not a directory")
        if any(target.iterdir()) and not is_ours(target):
            raise FileExistsError(
                f"{target} is a non-empty directory that latecore did not write; "
                "saving there would replace its contents. Choose another path."
            )
    staging = _staging(target)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        write(staging)
        _fsync_tree(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    retired = _retired(target)
    if target.exists():
        os.rename(target, retired)
    os.rename(staging, target)
    _fsync(target.parent)
    shutil.rmtree(retired, ignore_errors=True)
