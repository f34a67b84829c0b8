"""What checking a saved index's files costs ``LateIndex.load``.

A load checks every file it hands on (the store's, and WARP's before xtr-warp-rs
opens them) against the manifest's records: size, ``.npy`` header and an
XXH3-128 digest of every byte (``latecore/_files.py``). This saves an index of
``--documents`` documents of the realistic corpus (``realistic_corpus.py``,
cached) with the ``exact`` and the ``warp`` backend, then times ``LateIndex.load``
with the checks and with the checks switched off (the same code otherwise),
interleaved load by load after a spin-up, files in the page cache. WARP is also
loaded with ``index_folder`` on another file system (``/dev/shm``), where its
saved files cannot be hard-linked and are copied.

Run: ``python benchmarks/bench_load.py --documents 10000``.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench_backends import CachedEncoder, load_corpus

import latecore._saved
import latecore.backends.base
from latecore import LateIndex


@contextlib.contextmanager
def checks_off() -> Iterator[None]:
    """Loads skip the file checks (and nothing else)."""
    originals = (latecore._saved.check_files, latecore.backends.base.check_files)
    latecore._saved.check_files = latecore.backends.base.check_files = lambda *a, **k: None
    try:
        yield
    finally:
        latecore._saved.check_files, latecore.backends.base.check_files = originals


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=10_000)
    parser.add_argument("--loads", type=int, default=15)
    args = parser.parse_args()

    matrix, offsets, _ = load_corpus(args.documents, 0)
    encoder = CachedEncoder(matrix, offsets)
    ids = [str(i) for i in range(args.documents)]
    root = Path(tempfile.mkdtemp(prefix="bench-load-"))
    shm = Path(tempfile.mkdtemp(prefix="bench-load-", dir="/dev/shm"))
    saved: dict[str, Path] = {}
    for backend in ("exact", "warp"):
        with LateIndex(encoder, backend=backend) as index:
            index.add([f"doc {i}" for i in ids], ids=ids)
            index.build()
            saved[backend] = root / backend
            index.save(saved[backend])

    cases: dict[str, tuple[Path, dict[str, Any]]] = {
        "exact": (saved["exact"], {}),
        "warp (hard links)": (saved["warp"], {"index_folder": root / "work"}),
        "warp (copied to /dev/shm)": (saved["warp"], {"index_folder": shm / "work"}),
    }

    def load(path: Path, options: dict[str, Any]) -> float:
        start = time.perf_counter()
        LateIndex.load(path, encoder, **options).close()
        return 1000 * (time.perf_counter() - start)

    spin_until = time.perf_counter() + 3.0
    while time.perf_counter() < spin_until:
        for path, options in cases.values():
            load(path, options)
    timed: dict[str, dict[str, list[float]]] = {c: {"on": [], "off": []} for c in cases}
    for _ in range(args.loads):
        for name, (path, options) in cases.items():
            timed[name]["on"].append(load(path, options))
            with checks_off():
                timed[name]["off"].append(load(path, options))

    print(f"LateIndex.load of {args.documents:,} documents, median of {args.loads} loads each")
    print("| index | saved MB | checks on (ms) | checks off (ms) | on / off |")
    print("|---|---|---|---|---|")
    for name, (path, _) in cases.items():
        on, off = (statistics.median(timed[name][k]) for k in ("on", "off"))
        size = folder_bytes(path) / 1e6
        print(f"| {name} | {size:.0f} | {on:.0f} | {off:.0f} | {on / off:.2f} |")
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(shm, ignore_errors=True)


if __name__ == "__main__":
    main()
