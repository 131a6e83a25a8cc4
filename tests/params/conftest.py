"""A local HTTP server answering `GET /_cluster/settings` as Elasticsearch does (it cannot run here).

Source followed: Elasticsearch Guide 7.17, "Cluster get settings API"
(https://www.elastic.co/guide/en/elasticsearch/reference/7.17/cluster-get-settings.html): the body has
`persistent`, `transient` and, with `include_defaults=true`, `defaults`; with `flat_settings=true` each
is one object of dotted names to string values (lists stay JSON arrays). Without credentials a secured
cluster answers 401 with a `security_exception` body (Guide 7.17, "Security privileges / errors")."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

SETTINGS_717: dict[str, Any] = {
    "persistent": {
        "cluster.routing.allocation.enable": "primaries",
        "indices.recovery.max_bytes_per_sec": "40mb",
    },
    "transient": {
        "cluster.routing.allocation.enable": "all",
    },
    "defaults": {
        "cluster.routing.allocation.enable": "all",
        "cluster.routing.allocation.disk.threshold_enabled": "true",
        "cluster.routing.allocation.disk.watermark.low": "85%",
        "cluster.routing.allocation.disk.watermark.high": "90%",
        "cluster.routing.allocation.disk.watermark.flood_stage": "95%",
        "action.destructive_requires_name": "false",
        "indices.recovery.max_bytes_per_sec": "40mb",
        "discovery.seed_hosts": ["es-1", "es-2", "es-3"],
        "xpack.security.authc.token.enabled": "true",
    },
}
UNAUTHORIZED = {
    "error": {"root_cause": [{"type": "security_exception", "reason": "missing authentication credentials"
                              " for REST request [/_cluster/settings]"}],
              "type": "security_exception",
              "reason": "missing authentication credentials for REST request [/_cluster/settings]"},
    "status": 401,
}


@dataclass
class FakeES:
    url: str
    body: dict[str, Any]
    credentials: tuple[str, str] | None = None
    paths: list[str] = field(default_factory=list)


@pytest.fixture
def fake_es() -> Iterator[FakeES]:
    state = FakeES("", json.loads(json.dumps(SETTINGS_717)))

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(raw)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self) -> None:
            state.paths.append(self.path)
            if state.credentials is not None:
                expected = "Basic " + base64.b64encode(":".join(state.credentials).encode()).decode()
                if self.headers.get("Authorization") != expected:
                    challenge = 'Basic realm="security" charset="UTF-8"'
                    self._send(401, UNAUTHORIZED, {"WWW-Authenticate": challenge})
                    return
            path, _, query = self.path.partition("?")
            if path != "/_cluster/settings":
                self._send(404, {"error": "no handler", "status": 404})
                return
            params = dict(part.split("=", 1) for part in query.split("&") if "=" in part)
            body = state.body
            if params.get("include_defaults") != "true":
                body = {k: v for k, v in body.items() if k != "defaults"}
            self._send(200, body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
