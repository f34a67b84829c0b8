"""Replacing a whole directory so that a crash leaves the old one or the new one.

:func:`replace_directory` writes a complete new directory beside the target
(``.NAME.latecore-new``), flushes it to disk, moves the old directory aside
(``.NAME.latecore-old``), moves the new one into place and only then deletes
the old one. Between the two moves the target does not exist; a crash there
leaves both complete copies beside it, and :func:`readable_directory` (what a
loader calls) then reads the old one. The next :func:`replace_directory` puts
it back before doing anything else.

A saved directory is never changed once it is in place: a later replacement
renames it aside and deletes it. :class:`OpenedDirectory` (what a loader uses)
therefore resolves the current directory once and reads every file through one
directory handle: whatever a concurrent replacement does, the files read all
belong to that one save, or are missing (then :meth:`OpenedDirectory.is_current`
says whether the directory was replaced meanwhile).

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

from .errors import IndexChangedError

__all__ = ["OpenedDirectory", "readable_directory", "replace_directory"]

_PROC_FD = Path("/proc/self/fd")
_OPEN_ATTEMPTS = 20


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


class OpenedDirectory:
    """The directory a loader reads ``target`` from, opened once (see the module docstring).

    :attr:`path` names the opened directory itself where the system allows
    (``/proc/self/fd/N`` on Linux), so paths below it keep naming that save's
    files after the target is renamed or replaced; elsewhere it is the
    resolved path, and :attr:`stable` is ``False``. Close it when done (or use
    it as a context manager).

    Raises
    ------
    FileNotFoundError
        If ``target`` (or a copy left by an interrupted replacement) does not exist.

    Examples
    --------
    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "index"
    >>> replace_directory(target, lambda d: (d / "a.txt").write_text("v1"))
    >>> with OpenedDirectory(target) as opened:
    ...     before = (opened.path / "a.txt").read_text()
    ...     replace_directory(target, lambda d: (d / "a.txt").write_text("v2"), is_ours=bool)
    ...     # the old save was deleted: its file is gone, never replaced by the new one's
    ...     before, opened.is_current(), (opened.path / "a.txt").exists() != opened.stable
    ('v1', False, True)
    """

    def __init__(self, target: Path) -> None:
        self.target = target
        self._descriptor: int | None = None
        directory = self._open(target)
        fd_path = _PROC_FD / str(self._descriptor)
        self.stable = self._descriptor is not None and fd_path.is_dir()
        self.path = fd_path if self.stable else directory
        self.directory = directory
        """The directory opened, by name (:attr:`path` may name it through the handle)."""

    def _open(self, target: Path) -> Path:
        """Open the readable directory of ``target``; set its identity; return its path."""
        for attempt in range(_OPEN_ATTEMPTS):
            directory = readable_directory(target)
            try:
                self._descriptor = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
                self._identity = _identity(os.fstat(self._descriptor))
                return directory
            except FileNotFoundError:
                # Renamed between the check and the open: resolve it again.
                still_there = target.exists() or _retired(target).is_dir()
                if attempt + 1 == _OPEN_ATTEMPTS or not still_there:
                    raise
            except OSError:  # a system that cannot open directories: read by path
                self._identity = _identity(os.stat(directory))
                return directory
        raise AssertionError("unreachable")

    def is_current(self) -> bool:
        """Whether ``target`` still reads as the directory opened (no replacement since)."""
        try:
            return _identity(os.stat(readable_directory(self.target))) == self._identity
        except OSError:
            return False

    def named(self, text: str) -> str:
        """``text`` with :attr:`path` written as :attr:`directory` (for messages)."""
        return text.replace(str(self.path), str(self.directory))

    def replaced(self) -> IndexChangedError:
        """The error to raise when reading failed because ``target`` was replaced meanwhile."""
        return IndexChangedError(
            f"{self.target} was replaced by another save while it was being loaded; "
            "load it again (the new save is complete)"
        )

    def close(self) -> None:
        """Close the directory handle (idempotent)."""
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None

    def __enter__(self) -> OpenedDirectory:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _identity(status: os.stat_result) -> tuple[int, int]:
    return status.st_dev, status.st_ino


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
