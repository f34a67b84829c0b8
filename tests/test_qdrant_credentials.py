"""A saved index never chooses where a Qdrant API key goes: the server URL is the caller's,
a manifest naming another one is refused before any request, and a key never crosses plain
http to a host that is not loopback without an explicit opt-in."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from _engine_support import word_corpus

from latecore import LateIndex
from latecore.backends.qdrant import QdrantBackend
from latecore.testing import FakeEncoder

pytestmark = pytest.mark.engines  # qdrant-edge, qdrant-client


class _Spy(BaseHTTPRequestHandler):
    seen: list[tuple[str, str | None]]

    def _record(self) -> None:
        self.seen.append((self.path, self.headers.get("api-key")))
        self.send_response(500)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = do_PUT = do_DELETE = _record

    def log_message(self, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def spy() -> Iterator[tuple[str, list[tuple[str, str | None]]]]:
    """An HTTP server on 127.0.0.1 (a free port) that records every request and its key."""
    seen: list[tuple[str, str | None]] = []
    handler = type("Spy", (_Spy,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def _saved_with_server_url(tmp_path: Path, url: str) -> Path:
    """A saved index whose manifest was edited to name a Qdrant server at ``url``."""
    texts, ids = word_corpus(10, seed=1)
    with LateIndex(FakeEncoder(), backend="qdrant", path=tmp_path / "shard") as index:
        index.add(texts, ids=ids)
        index.save(tmp_path / "saved")
    manifest_path = tmp_path / "saved" / "latecore-index.json"
    manifest = json.loads(manifest_path.read_text())
    options = manifest["backend"]["options"]
    options.pop("path")
    options.update(engine="server", url=url, prefer_grpc=False)
    manifest_path.write_text(json.dumps(manifest))
    return tmp_path / "saved"


@pytest.mark.enable_socket
def test_an_edited_manifest_url_is_refused_before_any_request(
    spy: tuple[str, list[tuple[str, str | None]]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, seen = spy
    monkeypatch.setenv("QDRANT_API_KEY", "the-secret")
    saved = _saved_with_server_url(tmp_path, url)
    with pytest.raises(ValueError, match=r"pass url= .*never chooses which server"):
        LateIndex.load(saved, FakeEncoder())
    other = "http://127.0.0.1:9"  # the caller's server is not the one the manifest names
    with pytest.raises(ValueError, match=r"is on 'http://127.0.0.1:\d+', but url="):
        LateIndex.load(saved, FakeEncoder(), url=other)
    assert seen == []  # nothing reached the host the manifest named


@pytest.mark.enable_socket
def test_the_key_goes_only_where_the_caller_says(
    spy: tuple[str, list[tuple[str, str | None]]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The caller naming the same server: the environment's key is sent there (and only there)."""
    url, seen = spy
    monkeypatch.setenv("QDRANT_API_KEY", "the-secret")
    saved = _saved_with_server_url(tmp_path, url)
    with pytest.raises(Exception):  # noqa: B017  (the spy answers every request with a 500)
        LateIndex.load(saved, FakeEncoder(), url=url + "/")
    assert seen and {key for _, key in seen} == {"the-secret"}


def test_a_key_is_not_sent_over_plain_http_to_another_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ValueError, match=r"plain http to '10\.1\.2\.3'.*allow_insecure_key"):
        QdrantBackend(url="http://10.1.2.3:6333", api_key="k")
    monkeypatch.setenv("QDRANT_API_KEY", "from-env")
    with pytest.raises(ValueError, match=r"plain http to 'qdrant\.internal'"):
        QdrantBackend(url="http://qdrant.internal:6333")
