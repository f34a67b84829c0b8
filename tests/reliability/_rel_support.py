"""Helpers of the reliability suite: worker processes, database checks, the storage switch.

``LATECORE_RELIABILITY_DISK=default`` makes the tampering tests open their caches
with diskcache's default (pickling) ``Disk`` instead of ``SafeDisk`` (see the
``storage_disk`` fixture in ``test_rel_tamper.py``), to show what ``SafeDisk`` protects
against; by default they use ``SafeDisk``.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import warnings
from pathlib import Path

import diskcache

from latecore.cache import SafeDisk

WORKER = Path(__file__).with_name("_rel_worker.py")
REPO = Path(__file__).resolve().parents[2]
RELIABILITY_DISK = os.environ.get("LATECORE_RELIABILITY_DISK", "safe")


def start_worker(*args: object) -> subprocess.Popen[str]:
    """Start ``_rel_worker.py`` with ``args`` in a fresh interpreter (no fork of this process)."""
    return subprocess.Popen(
        [sys.executable, str(WORKER), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )


def assert_database_sound(directory: Path) -> None:
    """SQLite's ``PRAGMA integrity_check`` says ok and diskcache's ``check()`` finds nothing."""
    with sqlite3.connect(directory / "cache.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    db.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # check() reports problems as warnings
        with diskcache.Cache(str(directory), disk=SafeDisk) as store:
            assert store.check() == []
