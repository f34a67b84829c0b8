"""Corpus encoding on a Ray cluster (``latecore.distributed``).

The slow tests start their own cluster on this machine: a head and one more
node (``ray start`` in a temporary directory, one CPU each, a small object store,
no dashboard), and stop it by killing the processes that carry that directory
(never ``ray stop``, which would stop every Ray on the machine). Cache writes
are counted by SQLite triggers on the cache's own table, so "written exactly
once" is read from the database, not from what the job reports.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import pytest_socket

from latecore import LateIndex, MultivectorCache, cache_key
from latecore.distributed import (
    EncodeProgress,
    EncoderPool,
    EncoderSpec,
    encode_corpus,
    open_cache,
)
from latecore.errors import InputError, ZeroShotWarning

REPO = Path(__file__).resolve().parents[1]
LOOPBACK = "127.0.0.1"
ON_LOOPBACK = pytest.mark.allow_hosts([LOOPBACK])


def _corpus(n: int, seed: int = 0) -> list[str]:
    words = (resources.files("latecore.testing") / "data" / "tiny_words.txt").read_text("utf-8")
    vocabulary = [word for word in words.split() if word.isalpha()]
    rng = np.random.default_rng(seed)
    return [
        " ".join(rng.choice(vocabulary, size=int(rng.integers(3, 60)))) + f" {i}" for i in range(n)
    ]


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind((LOOPBACK, 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def _processes_of(pattern: re.Pattern[str]) -> dict[int, str]:
    """Processes (but this one) whose command line matches ``pattern``, and their descendants."""
    table: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            with contextlib.suppress(OSError, ValueError, IndexError):
                args = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                table[int(entry.name)] = (parent, args)
    found = {pid: args for pid, (_, args) in table.items() if pattern.search(args)}
    grew = True
    while grew:
        children = {p: a for p, (parent, a) in table.items() if parent in found and p not in found}
        found.update(children)
        grew = bool(children)
    return found


class RayCluster:
    """A head and one more node started by ``ray start`` under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.address = ""

    def start(self) -> None:
        ray_bin = Path(sys.executable).with_name("ray")
        command = (
            [str(ray_bin)] if ray_bin.exists() else [sys.executable, "-m", "ray.scripts.scripts"]
        )
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
            "RAY_USAGE_STATS_ENABLED": "0",
            "LATECORE_PROGRESS": "0",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
        }
        gcs, client, head_agent, node_agent = _free_ports(4)
        self.address = f"{LOOPBACK}:{gcs}"
        common = [
            "--node-ip-address=127.0.0.1",
            "--num-cpus=1",
            "--object-store-memory=100000000",
            "--disable-usage-stats",
        ]
        nodes = [
            [
                "--head",
                f"--port={gcs}",
                f"--ray-client-server-port={client}",
                "--include-dashboard=false",
                f"--temp-dir={self.root}",
                f"--dashboard-agent-listen-port={head_agent}",
            ],
            [f"--address={self.address}", f"--dashboard-agent-listen-port={node_agent}"],
        ]
        for options in nodes:
            done = subprocess.run(
                [*command, "start", *options, *common],
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            if done.returncode:
                raise RuntimeError(f"ray start {options[0]} failed:\n{done.stdout}{done.stderr}")

    @property
    def pattern(self) -> re.Pattern[str]:
        """What the command line of every process of this cluster holds: the temporary
        directory, or (Ray's client server) the head's address."""
        port = self.address.rpartition(":")[2]
        return re.compile(rf"{re.escape(str(self.root))}|--address=\S+:{port}\b")

    def stop(self) -> None:
        started = set(_processes_of(self.pattern))
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in started | set(_processes_of(self.pattern)):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + 3
            while _alive(started) and time.monotonic() < deadline:
                time.sleep(0.2)


def _alive(pids: set[int]) -> bool:
    """Whether any of ``pids`` still runs (a zombie does not count)."""
    for pid in pids:
        with contextlib.suppress(OSError):
            if (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                return True
    return False


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    ray = pytest.importorskip("ray")
    # Ray's session paths (unix sockets among them) must stay short: a /tmp directory.
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="lcray-"))
    running = RayCluster(root)
    pytest_socket.enable_socket()
    try:
        try:
            running.start()
        except RuntimeError:  # a machine so loaded that Ray timed out starting: once more
            running.stop()
            running.start()
        ray.init(address=running.address, _node_ip_address=LOOPBACK, log_to_driver=False)
        yield running
    finally:
        ray.shutdown()
        running.stop()
        pytest_socket.disable_socket(allow_unix_socket=True)


@pytest.fixture(scope="module")
def spec(tiny_checkpoint: Path) -> EncoderSpec:
    return EncoderSpec(str(tiny_checkpoint), {"device": "cpu"})


@pytest.fixture(scope="module")
def pool(cluster: RayCluster, spec: EncoderSpec) -> Iterator[EncoderPool]:
    """Two actors (one per node: each node has one CPU), shared by the tests."""
    with EncoderPool(spec, num_actors=2) as started:
        yield started


def _counting_cache(directory: Path) -> Path:
    """A cache directory whose database records every row written into it."""
    MultivectorCache(directory).close()
    with contextlib.closing(sqlite3.connect(directory / "cache.db")) as connection:
        connection.executescript(
            """
            CREATE TABLE writes (key BLOB);
            CREATE TRIGGER count_insert AFTER INSERT ON Cache
                BEGIN INSERT INTO writes VALUES (NEW.key); END;
            CREATE TRIGGER count_update AFTER UPDATE OF value ON Cache
                BEGIN INSERT INTO writes VALUES (NEW.key); END;
            """
        )
    return directory


def _writes(directory: Path) -> dict[bytes, int]:
    with contextlib.closing(sqlite3.connect(directory / "cache.db")) as connection:
        rows = connection.execute("SELECT key, COUNT(*) FROM writes GROUP BY key").fetchall()
    return {bytes(key): count for key, count in rows}


def _build(spec: EncoderSpec, cache: MultivectorCache | None):  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ZeroShotWarning)
        return spec.build(cache)


@pytest.mark.slow
@ON_LOOPBACK
def test_two_nodes_match_one_process_bit_for_bit_and_a_rerun_encodes_nothing(
    pool: EncoderPool, spec: EncoderSpec, tmp_path: Path
) -> None:
    import ray

    assert sum(node["Alive"] for node in ray.nodes()) == 2  # one actor on each
    texts = _corpus(2000)
    directory = _counting_cache(tmp_path / "shared")
    seen: list[EncodeProgress] = []
    report = pool.encode_corpus(texts, cache=directory, progress=seen.append)
    assert (report.distinct, report.cached, report.encoded, report.restarts) == (2000, 0, 2000, 0)
    assert seen[-1].done == seen[-1].total == 2000
    assert [p.done for p in seen] == sorted(p.done for p in seen) and len(seen) > 2

    reference_cache = MultivectorCache(tmp_path / "single")
    reference = _build(spec, reference_cache)
    assert reference.fingerprint == report.fingerprint
    expected = reference.encode_documents(texts)
    with MultivectorCache(directory) as shared:
        keys = [cache_key(report.fingerprint, "document", text) for text in texts]
        got = shared.get_many(keys)
    assert all(a is not None for a in got)
    differing = [
        i
        for i, (a, b) in enumerate(zip(got, expected, strict=True))
        if a.tobytes() != b.astype(a.dtype).tobytes()
    ]
    assert differing == []
    assert _writes(directory) == dict.fromkeys(keys, 1)

    again = pool.encode_corpus(texts, cache=directory)
    assert (again.cached, again.sent, again.encoded) == (2000, 0, 0)
    assert _writes(directory) == dict.fromkeys(keys, 1)

    # An index built from the shared cache afterwards encodes nothing.
    index_encoder = _build(spec, open_cache(directory))
    index = LateIndex(index_encoder)
    index.add(texts[:500], ids=[str(i) for i in range(500)])
    assert index_encoder.encode_stats().documents == 0
    assert len(index) == 500


@pytest.mark.slow
@ON_LOOPBACK
def test_an_actor_killed_mid_job_leaves_every_passage_written_exactly_once(
    pool: EncoderPool, tmp_path: Path
) -> None:
    texts = _corpus(2000, seed=1)
    directory = _counting_cache(tmp_path / "shared")
    pids = pool.actor_pids()
    killed: list[int] = []

    def kill_one(progress: EncodeProgress) -> None:
        if not killed and progress.done > 0:  # the first task is back, the others run
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    report = pool.encode_corpus(texts, cache=directory, task_size=128, progress=kill_one)
    assert killed and report.restarts == 1
    assert pool.actor_pids()[0] != pids[0]
    keys = [cache_key(report.fingerprint, "document", text) for text in texts]
    assert _writes(directory) == dict.fromkeys(keys, 1)
    with MultivectorCache(directory) as shared:
        assert shared.stats().items == 2000
        assert all(a is not None for a in shared.get_many(keys))
    again = pool.encode_corpus(texts, cache=directory)
    assert (again.sent, again.encoded) == (0, 0)


@pytest.mark.slow
@pytest.mark.engines
@ON_LOOPBACK
def test_finished_tasks_go_straight_into_a_lancedb_table(
    pool: EncoderPool, spec: EncoderSpec, tmp_path: Path
) -> None:
    texts = _corpus(300, seed=2)
    ids = [f"doc-{i}" for i in range(len(texts))]
    directory = tmp_path / "shared"
    # A job that stopped early, run by encode_corpus's own one-actor pool (no CPU is left
    # for it to reserve: the shared pool holds both).
    first = encode_corpus(texts[:100], encoder=spec, cache=directory, num_cpus=0)
    assert (first.actors, first.encoded) == (1, 100)
    index_encoder = _build(spec, open_cache(directory))
    with LateIndex(index_encoder, backend="lancedb", uri=tmp_path / "db") as index:
        report = pool.encode_corpus(
            texts,
            ids,
            cache=directory,
            metadatas=[{"n": i} for i in range(len(texts))],
            index=index,
            task_size=64,
        )
        assert (report.cached, report.sent, report.indexed, report.index_encoded) == (
            100,
            200,
            300,
            0,
        )
        assert sorted(index.ids) == sorted(ids)
        assert index.search(texts[250], k=1)[0].id == "doc-250"
        assert index.get(["doc-7"])[0].metadata == {"n": 7}


@pytest.mark.slow
@ON_LOOPBACK
def test_an_index_on_another_encoder_is_refused(
    pool: EncoderPool, spec: EncoderSpec, tmp_path: Path
) -> None:
    index = LateIndex(_build(spec, None))  # no cache: adding would encode everything again
    with pytest.raises(InputError, match="same fingerprint"):
        pool.encode_corpus(["a text"], cache=tmp_path / "c", index=index)


def test_specs_and_cache_locations_are_checked(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="must not hold a cache"):
        EncoderSpec("model", {"cache": None})
    with pytest.raises(InputError, match="module:callable"):
        EncoderSpec("model", factory="latecore.Encoder")
    assert type(open_cache("redis://127.0.0.1:1/0")).__name__ == "RedisCache"  # opened lazily
    with pytest.raises(InputError, match="directory or a callable"):
        open_cache(42)  # type: ignore[arg-type]
    built = EncoderSpec(None, {"dim": 8}, factory="latecore.testing:FakeEncoder").build(
        open_cache(tmp_path / "c", "float32")
    )
    assert built.storage_dtype == "float32" and built.cache is not None


def test_ray_is_neither_imported_by_latecore_nor_required_to_import_the_module() -> None:
    code = (
        "import sys\n"
        "sys.modules['ray'] = None\n"  # a missing ray
        "import latecore, latecore.distributed as d\n"
        "try:\n"
        "    d.encode_corpus(['a'], encoder=d.EncoderSpec(None), cache='/nonexistent')\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "latecore[ray]" in out.stdout
    light = "import sys, latecore; print('ray' in sys.modules)"
    plain = subprocess.run(
        [sys.executable, "-c", light], capture_output=True, text=True, check=True
    )
    assert plain.stdout.strip() == "False"
