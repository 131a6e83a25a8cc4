"""Local HTTP servers answering as Nacos (v1 and v2 Open API), Eureka (`/eureka/apps` in JSON) and
Spring Boot actuator endpoints do. None of them runs on this machine; the bodies come from the
fixtures in fixtures/, each naming the documentation it follows (`source`):

* nacos.json — Nacos Open API "Query instances", `GET /nacos/v1/ns/instance/list` and
  `GET /nacos/v2/ns/instance/list` (the same object in `{code, message, data}`); login with
  `POST /nacos/v1/auth/login` (form username/password -> `{"accessToken", "tokenTtl", "globalAdmin"}`)
  when `auth` is on, every other request then needs `accessToken` (403 without it).
* eureka.json — Eureka REST operations, `GET /eureka/apps` with `Accept: application/json`
  (XML without it, as Eureka does).
* actuator.json — Spring Boot actuator `health` and `metrics/{name}`.
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
from urllib.parse import parse_qs, urlsplit

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> dict[str, Any]:
    data = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    assert data["source"], f"{name} names no source"
    return dict(data)


@dataclass
class FakeServices:
    nacos: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(fixture("nacos.json")["services"]))
    eureka: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(fixture("eureka.json")["body"]))
    actuator: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(fixture("actuator.json")))
    nacos_auth: tuple[str, str] | None = None
    eureka_auth: tuple[str, str] | None = None
    hold: threading.Event | None = None
    requests: list[str] = field(default_factory=list)
    url: str = ""
    token: str = "eyJhbGciOiJIUzI1NiJ9.test-token"


class _Handler(BaseHTTPRequestHandler):
    fake: FakeServices

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _json(self, status: int, body: Any) -> None:
        self._raw(status, json.dumps(body).encode(), "application/json")

    def _raw(self, status: int, body: bytes, content_type: str,
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
        fake.requests.append(self.path)
        form = parse_qs(self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode())
        if urlsplit(self.path).path == "/nacos/v1/auth/login":
            given = (form.get("username", [""])[0], form.get("password", [""])[0])
            if fake.nacos_auth and given == fake.nacos_auth:
                self._json(200, {"accessToken": fake.token, "tokenTtl": 18000, "globalAdmin": False,
                                 "username": fake.nacos_auth[0]})
            else:
                self._raw(403, b"unknown user!", "text/plain")
            return
        self._json(404, {"error": "Not Found"})

    def do_GET(self) -> None:
        fake = self.fake
        fake.requests.append(self.path)
        if fake.hold is not None:
            fake.hold.wait(30)
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if parts.path in ("/nacos/v1/ns/instance/list", "/nacos/v2/ns/instance/list"):
            if fake.nacos_auth and query.get("accessToken") != fake.token:
                self._raw(403, b"user not found!", "text/plain")
                return
            service = fake.nacos.get(query.get("serviceName", ""))
            if parts.path.startswith("/nacos/v2"):
                if service is None:
                    self._json(404, {"code": 20004, "message": "resource not found",
                                     "data": f"service not found: {query.get('serviceName')}"})
                else:
                    self._json(200, {"code": 0, "message": "success", "data": service})
            else:
                name = query.get("serviceName", "")
                self._json(200, service or {"name": f"DEFAULT_GROUP@@{name}", "groupName": "DEFAULT_GROUP",
                                            "clusters": "", "cacheMillis": 3000, "hosts": [],
                                            "lastRefTime": 0, "checksum": "", "allIPs": False,
                                            "reachProtectionThreshold": False, "valid": True})
            return
        if parts.path == "/eureka/apps":
            if fake.eureka_auth:
                expected = "Basic " + base64.b64encode(":".join(fake.eureka_auth).encode()).decode()
                if self.headers.get("Authorization") != expected:
                    self._raw(401, b'{"timestamp":"2026-12-06T03:00:00.000+00:00","status":401,'
                                   b'"error":"Unauthorized","path":"/eureka/apps"}', "application/json",
                              {"WWW-Authenticate": 'Basic realm="Realm"'})
                    return
            if "application/json" not in (self.headers.get("Accept") or ""):
                self._raw(200, b"<applications><versions__delta>1</versions__delta></applications>",
                          "application/xml")
                return
            self._json(200, fake.eureka)
            return
        if parts.path == "/actuator/health":
            health = fake.actuator["health"]
            self._json(200 if health["status"] == "UP" else 503, health)
            return
        if parts.path.startswith("/actuator/metrics/"):
            name = parts.path.rsplit("/", 1)[1]
            if name in fake.actuator:
                self._json(200, fake.actuator[name])
                return
        if parts.path == "/not-json":
            self._raw(200, b"<html>maintenance</html>", "text/html")
            return
        self._json(404, {"timestamp": "2026-12-06T03:00:00.000+00:00", "status": 404, "error": "Not Found",
                         "path": parts.path})


@pytest.fixture
def services() -> Iterator[FakeServices]:
    fake = FakeServices()
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
