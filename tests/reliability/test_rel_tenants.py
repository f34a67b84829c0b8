"""Tenant isolation under concurrent writes, and the snapshot rule of a search.

50 tenants; searcher threads run ``search(q, filter={"tenant": t})`` for random tenants
while a writer thread adds documents, replaces them (re-adding an id with another
tenant moves a document between tenants) and deletes them, on exact, warp and qdrant.

The rule tested (docs/guarantees.md#searches-during-writes): a search sees the index as
it was at one instant between the call's start and its return, the state after some
prefix of the writes in the index's own order, an ``add`` or ``delete`` call being
one write. The writer records a versioned log of id -> tenant in that order (each
write and its log entry under the index's lock, :meth:`LateIndex.view`), every
search records the versions at its start and its end, and every search must be
explained by one version of that window: every hit has the filter's tenant in it
(its returned metadata too), and where the search is exhaustive (exact, qdrant: every
matching document scored), the hits are exactly that tenant's documents of it.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

import latecore.index_view
from latecore import LateIndex
from latecore.testing import FakeEncoder

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

TENANTS = [f"tenant-{i}" for i in range(50)]
WORDS = [
    "paris",
    "france",
    "berlin",
    "river",
    "city",
    "capital",
    "music",
    "piano",
    "bread",
    "cheese",
    "wine",
    "night",
]
N_DOCS = 300
SEARCHES = 10_000
SEARCHERS = 3
K = 40
"""More than any tenant ever holds here, so an exhaustive search returns all of its documents."""

CONFIGS: dict[str, dict[str, Any]] = {
    "exact": {},
    "warp": {"build_min": 100, "n_candidates": 64, "nprobe": 8},
    "qdrant": {"prefetch": 400},
}
EXHAUSTIVE = {"exact", "qdrant"}


@dataclass
class Log:
    """The writes in the index's order: ``states[v]`` is id -> tenant after write ``v``."""

    states: list[dict[str, str]] = field(default_factory=list)
    members: dict[tuple[int, str], frozenset[str]] = field(default_factory=dict)

    def version(self) -> int:
        return len(self.states) - 1

    def of(self, version: int, tenant: str) -> frozenset[str]:
        """The ids of ``tenant`` after write ``version``."""
        key = (version, tenant)
        if key not in self.members:
            state = self.states[version]
            self.members[key] = frozenset(i for i, t in state.items() if t == tenant)
        return self.members[key]


@dataclass
class Seen:
    tenant: str
    start: int
    end: int
    ids: list[str]
    tenants: list[str]


def _text(rng: random.Random) -> str:
    return " ".join(rng.choices(WORDS, k=rng.randint(2, 6)))


def _writer(index: LateIndex, log: Log, stop: threading.Event, rng: random.Random) -> None:
    next_id = N_DOCS
    while not stop.is_set():
        state = dict(log.states[-1])
        action = rng.random()
        with index.view():  # the write and its log entry at one point of the index's order
            if action < 0.3 or len(state) < N_DOCS // 2:
                new = {f"d{next_id + j}": rng.choice(TENANTS) for j in range(rng.randint(1, 3))}
                next_id += len(new)
                index.add(
                    [_text(rng) for _ in new],
                    ids=list(new),
                    metadatas=[{"tenant": t} for t in new.values()],
                )
                state.update(new)
            elif action < 0.7:  # move documents to another tenant
                moved = {i: rng.choice(TENANTS) for i in rng.sample(sorted(state), 2)}
                index.add(
                    [_text(rng) for _ in moved],
                    ids=list(moved),
                    metadatas=[{"tenant": t} for t in moved.values()],
                )
                state.update(moved)
            else:
                doomed = rng.sample(sorted(state), rng.randint(1, 2))
                assert index.delete(doomed) == len(doomed)
                for i in doomed:
                    del state[i]
            log.states.append(state)
        stop.wait(0.002)


def _searcher(index: LateIndex, log: Log, count: int, rng: random.Random, seen: list[Seen]) -> None:
    for _ in range(count):
        tenant = rng.choice(TENANTS)
        start = log.version()
        hits = index.search(_text(rng), k=K, filter={"tenant": tenant})
        end = log.version()
        seen.append(
            Seen(tenant, start, end, [h.id for h in hits], [h.metadata["tenant"] for h in hits])
        )


@pytest.fixture(params=list(CONFIGS))
def index(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[LateIndex]:
    name = request.param
    if name != "exact":
        request.applymarker(pytest.mark.engines)
        pytest.importorskip({"warp": "xtr_warp", "qdrant": "qdrant_edge"}[name])
    monkeypatch.setattr(latecore.index_view, "EXACT_SUBSET", 0)  # the engines filter too
    with LateIndex(FakeEncoder(dim=16), backend=name, **CONFIGS[name]) as built:
        yield built


@pytest.mark.timeout(300)
def test_no_search_sees_another_tenant_while_documents_move(index: LateIndex) -> None:
    rng = random.Random(50)
    initial = {f"d{i}": TENANTS[i % len(TENANTS)] for i in range(N_DOCS)}
    index.add(
        [_text(rng) for _ in initial],
        ids=list(initial),
        metadatas=[{"tenant": t} for t in initial.values()],
    )
    index.build()
    log = Log(states=[initial])
    stop = threading.Event()
    seen: list[list[Seen]] = [[] for _ in range(SEARCHERS)]
    errors: list[BaseException] = []

    def guarded(target: Any, *args: Any) -> None:
        try:
            target(*args)
        except BaseException as error:  # reported below, not lost in the thread
            errors.append(error)
            stop.set()

    writer = threading.Thread(target=guarded, args=(_writer, index, log, stop, random.Random(1)))
    searchers = [
        threading.Thread(
            target=guarded,
            args=(_searcher, index, log, -(-SEARCHES // SEARCHERS), random.Random(n), seen[n]),
        )
        for n in range(SEARCHERS)
    ]
    writer.start()
    for thread in searchers:
        thread.start()
    for thread in searchers:
        thread.join()
    stop.set()
    writer.join()
    assert not errors, errors

    results = [s for part in seen for s in part]
    assert len(results) >= SEARCHES
    assert log.version() >= SEARCHES // 100  # the writes really interleaved with the searches
    assert sum(s.end > s.start for s in results) >= SEARCHES // 100
    exhaustive = index.backend.name in EXHAUSTIVE
    for s in results:
        assert all(t == s.tenant for t in s.tenants), s  # the returned metadata
        hits = set(s.ids)
        assert len(hits) == len(s.ids)
        explained = [
            v
            for v in range(s.start, s.end + 1)
            if (hits == log.of(v, s.tenant) if exhaustive else hits <= log.of(v, s.tenant))
        ]
        assert explained, (s, [sorted(log.of(v, s.tenant)) for v in range(s.start, s.end + 1)])
    # Every document the writer left is searchable under its final tenant only.
    final = log.states[-1]
    assert sorted(index.ids) == sorted(final)
    for tenant in rng.sample(TENANTS, 10):
        found = {h.id for h in index.search("paris", k=K, filter={"tenant": tenant})}
        assert found <= log.of(log.version(), tenant)
        if exhaustive:
            assert found == log.of(log.version(), tenant)
