"""A local HTTP(S) server that answers as Elasticsearch 6.8, 7.17 or 8.x does.

Elasticsearch cannot run on this machine. The bodies, status codes and headers come from the
fixture files in fixtures/<version>/ and fixtures/errors/, each naming its source (the version's
reference page). The server checks credentials itself (basic auth or `Authorization: ApiKey`) and
answers 401 with the security_exception body and WWW-Authenticate headers, as a secured cluster does.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
VERSIONS = ("6.8", "7.17", "8.x")
ROUTES = {
    "/_cluster/health": "cluster_health.json",
    "/_cluster/pending_tasks": "pending_tasks.json",
    "/_nodes/stats/jvm,fs,breaker": "nodes_stats.json",
    "/_nodes/stats/jvm,fs,breaker,indices,thread_pool,transport,os,process,http": "nodes_stats.json",
    # what elasticsearch_exporter asks (tests/es/test_parity.py runs it against this server)
    "/": "root.json",
    "/_nodes/stats": "nodes_stats.json",
    "/_nodes/_local/stats": "nodes_stats.json",
}


def load(relative: str) -> dict[str, Any]:
    fixture = json.loads((FIXTURES / relative).read_text(encoding="utf-8"))
    assert fixture["source"], f"{relative} names no source"
    return fixture


@dataclass
class FakeElasticsearch:
    """State of one fake cluster; tests change it between runs."""

    version: str = "7.17"
    username: str | None = None
    password: str | None = None
    api_key: str | None = None
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    """path -> fixture (status, headers, body/text) replacing the version's answer."""
    hold: threading.Event | None = None
    """When set, requests wait on this event before answering (a server that hangs)."""
    requests: list[tuple[str, str]] = field(default_factory=list)
    """(path, Authorization header) of each request seen."""
    url: str = ""

    def answer(self, path: str) -> dict[str, Any]:
        if path in self.overrides:
            return self.overrides[path]
        if path not in ROUTES:
            return {"status": 404, "headers": {"content-type": "application/json"},
                    "body": {"error": "no handler found for uri [" + path + "]", "status": 404}}
        return load(f"{self.version}/{ROUTES[path]}")

    def body(self, path: str) -> dict[str, Any]:
        """A copy of the version's body for `path`, to modify and set as an override."""
        return copy.deepcopy(load(f"{self.version}/{ROUTES[path]}"))

    def set_body(self, path: str, fixture: dict[str, Any]) -> None:
        self.overrides[path] = fixture

    def authorized(self, header: str | None) -> bool:
        if self.username is None and self.api_key is None:
            return True
        if header is None:
            return False
        if self.api_key is not None and header == f"ApiKey {self.api_key}":
            return True
        if self.username is not None and header.startswith("Basic "):
            decoded = base64.b64decode(header[6:]).decode()
            return decoded == f"{self.username}:{self.password}"
        return False


def _handler(fake: FakeElasticsearch) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            auth = self.headers.get("Authorization")
            fake.requests.append((self.path, auth or ""))
            if fake.hold is not None:
                fake.hold.wait(30)
            if not fake.authorized(auth):
                name = "401_missing_credentials.json" if auth is None else "401_bad_credentials.json"
                self._send(load(f"errors/{name}"))
                return
            self._send(fake.answer(self.path))

        def _send(self, fixture: dict[str, Any]) -> None:
            payload = (fixture["text"] if "text" in fixture
                       else json.dumps(fixture["body"])).encode("utf-8")
            self.send_response(fixture["status"])
            for name, value in fixture.get("headers", {}).items():
                for one in value if isinstance(value, list) else [value]:
                    self.send_header(name, one)
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def es_server(request: pytest.FixtureRequest) -> Iterator[FakeElasticsearch]:
    """A plain-HTTP fake; parametrize indirectly with a version, or take 7.17."""
    fake = FakeElasticsearch(version=getattr(request, "param", "7.17"))
    yield from _serve(fake, None)


def _serve(fake: FakeElasticsearch, context: ssl.SSLContext | None) -> Iterator[FakeElasticsearch]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    scheme = "http"
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    fake.url = f"{scheme}://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        if fake.hold is not None:
            fake.hold.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def serve_plain(fake: FakeElasticsearch) -> Iterator[FakeElasticsearch]:
    yield from _serve(fake, None)


def serve_tls(fake: FakeElasticsearch, cert: Path, key: Path) -> Iterator[FakeElasticsearch]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    yield from _serve(fake, context)
