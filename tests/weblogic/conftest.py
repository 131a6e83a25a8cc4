"""A local HTTP server that answers as a WebLogic 12.2.1.4 or 14.1.1 Administration Server's RESTful
Management Services do, for `POST /management/weblogic/{version}/domainRuntime/search`.

WebLogic cannot run on this machine. The domain's beans come from fixtures/domain-<version>.json,
each naming its source: "Administering Oracle WebLogic Server with RESTful Management Services"
(the search resource and its `fields`/`links`/`children` query language, 12.2.1.4 and 14.1.1) and
the "RESTful Domain Runtime Reference" (ServerRuntime, ThreadPoolRuntime, JDBCDataSourceRuntime,
JMSRuntime, JMSServerRuntime fields). As WebLogic does, the server returns only the fields the query
names, nested children as `{"items": [...]}` collections, links unless the query asks for none;
answers a POST without `X-Requested-By` with a plain-text 400 (the CSRF guard), and unknown
credentials with 401 and `WWW-Authenticate: Basic realm="weblogic"`.
"""

from __future__ import annotations

import base64
import copy
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
VERSIONS = ("12.2.1.4", "14.1.1")


def load_domain(version: str) -> list[dict[str, Any]]:
    fixture = json.loads((FIXTURES / f"domain-{version}.json").read_text(encoding="utf-8"))
    assert fixture["source"], "the fixture names no source"
    return list(fixture["serverRuntimes"])


def select(node: dict[str, Any], q: dict[str, Any], href: str) -> dict[str, Any]:
    """What the search resource returns for one bean and its part of the query."""
    fields = q.get("fields")
    out: dict[str, Any] = {}
    for key, value in node.items():
        if isinstance(value, dict) and key != "healthState":
            continue  # a child bean or collection: only when named in `children`
        if fields is None or key in fields:
            out[key] = value
    for child, sub in (q.get("children") or {}).items():
        value = node.get(child)
        if isinstance(value, dict) and isinstance(value.get("items"), list):
            out[child] = {"items": [select(item, sub, f"{href}/{child}/{item.get('name')}")
                                    for item in value["items"]]}
        elif isinstance(value, dict):
            out[child] = select(value, sub, f"{href}/{child}")
    if q.get("links") is None:
        out["links"] = [{"rel": "self", "href": href}]
    return out


@dataclass
class FakeWebLogic:
    version: str = "14.1.1"
    username: str = "monitor"
    password: str = "Monitor#2026"
    servers: list[dict[str, Any]] = field(default_factory=list)
    hold: threading.Event | None = None
    """When set, the server accepts the request and answers only once the event is set (hung)."""
    queries: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    url: str = ""

    def server(self, name: str) -> dict[str, Any]:
        return next(s for s in self.servers if s["name"] == name)


class _Handler(BaseHTTPRequestHandler):
    fake: FakeWebLogic

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, content_type: str,
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        fake = self.fake
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        fake.paths.append(self.path)
        if fake.hold is not None:
            fake.hold.wait(30)
        expected = f"Basic {base64.b64encode(f'{fake.username}:{fake.password}'.encode()).decode()}"
        if self.headers.get("Authorization") != expected:
            self._send(401, b"<html><head><title>Error 401--Unauthorized</title></head></html>",
                       "text/html", {"WWW-Authenticate": 'Basic realm="weblogic"'})
            return
        if not self.headers.get("X-Requested-By"):
            self._send(400, b"Bad Request", "text/plain")
            return
        version = self.path.split("/")[3] if self.path.count("/") >= 4 else ""
        if not self.path.endswith("/domainRuntime/search") or version not in ("latest", fake.version,
                                                                                 fake.version + ".0"):
            self._send(404, b'{"status":404,"detail":"Not Found"}', "application/json")
            return
        q = json.loads(raw)
        fake.queries.append(q)
        base = f"{fake.url}/management/weblogic/{version}/domainRuntime"
        answer = select({"serverRuntimes": {"items": copy.deepcopy(fake.servers)}}, q, base)
        self._send(200, json.dumps(answer).encode(), "application/json")


@pytest.fixture(params=VERSIONS)
def weblogic(request: pytest.FixtureRequest) -> Iterator[FakeWebLogic]:
    fake = FakeWebLogic(version=request.param, servers=load_domain(request.param))
    handler = type("Handler", (_Handler,), {"fake": fake})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake
    if fake.hold is not None:
        fake.hold.set()
    server.shutdown()
    server.server_close()
