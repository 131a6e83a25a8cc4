"""HTTP(S) server: /metrics, /probe, /-/healthy, /-/reload and the landing page.

The standard library's threaded server is enough for a scrape every few seconds and keeps the
dependency list short. TLS handshakes run in the connection's own thread, so a slow or hostile
client cannot stall the accept loop.
"""

from __future__ import annotations

import gzip
import logging
import math
import socket
import ssl
import sys
from collections.abc import Iterator
from dataclasses import InitVar, dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import Metric

from . import landing
from .config import ConfigError
from .exposition import OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE, wants_openmetrics
from .runtime import ProbeRequestError, Runtime, version
from .webconfig import BasicAuth, WebConfig, allowed_san, build_ssl_context, load_web_config

log = logging.getLogger("einvoice_exporter.server")

HANDSHAKE_TIMEOUT = 10.0
IDLE_TIMEOUT = 120.0
"""Keep-alive connections idle this long are closed, so idle clients do not hold threads."""
SCRAPE_TIMEOUT_HEADER = "X-Prometheus-Scrape-Timeout-Seconds"


@dataclass(frozen=True)
class Security:
    """The web config in force and what is built from it; swapped as one piece on reload."""

    web: WebConfig
    auth: BasicAuth | None
    ssl_context: ssl.SSLContext | None

    @classmethod
    def build(cls, web: WebConfig, previous: Security | None = None) -> Security:
        auth = None
        if web.basic_auth_users:
            if previous is not None and previous.web.basic_auth_users == web.basic_auth_users:
                auth = previous.auth  # keep the verified-password cache
            else:
                auth = BasicAuth(web.basic_auth_users)
        tls = web.tls_server_config
        return cls(web, auth, build_ssl_context(tls) if tls is not None else None)


@dataclass
class App:
    """What the handler needs: the runtime, the web config and the lifecycle flag."""

    runtime: Runtime
    web: InitVar[WebConfig | None] = None
    enable_lifecycle: bool = False
    web_config_file: Path | None = None
    """Re-read on reload, so that certificates and users can rotate without a restart."""
    security: Security = field(init=False)
    process_collectors: list[Any] = field(default_factory=list)

    def __post_init__(self, web: WebConfig | None) -> None:
        self.security = Security.build(web or WebConfig())
        if not self.process_collectors:
            registry = CollectorRegistry(auto_describe=False)
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
            GCCollector(registry=registry)
            self.process_collectors = [registry]

    def reload(self) -> tuple[bool, str]:
        """Reload the exporter config and the web config; either failing keeps its old version."""
        ok, message = self.runtime.reload()
        if self.web_config_file is None:
            return ok, message
        try:
            web = load_web_config(self.web_config_file)
            if (web.tls_server_config is None) != (self.security.ssl_context is None):
                raise ConfigError([f"{self.web_config_file}: switching TLS on or off needs a restart"])
            self.security = Security.build(web, self.security)
        except ConfigError as exc:
            log.error("reloading the web config failed; the previous one stays in force:\n%s", exc)
            self.runtime.mark_reload_failed(str(exc))
            return False, (f"{message}\n{exc}" if not ok else str(exc))
        return ok, message


class ExporterServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    # socketserver's default backlog is 5: a burst of /probe connections (one Prometheus scraping
    # many targets at once) overflowed it and waited for SYN retransmits, 1 s and 3 s later.
    request_queue_size = socket.SOMAXCONN

    def __init__(self, address: tuple[str, int], app: App) -> None:
        self.app = app
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """One log line in the configured format, never socketserver's traceback on stderr: a
        client that resets or drops its connection is routine (a scrape timed out)."""
        exc = sys.exc_info()[1]
        peer = client_address[0] if isinstance(client_address, tuple) and client_address else "unknown"
        if isinstance(exc, ConnectionError | TimeoutError | ssl.SSLError):
            log.info("connection from %s ended before its answer was complete (%s)", peer, type(exc).__name__)
            return
        lines = str(exc).splitlines()
        log.error("request from %s failed: %s: %s", peer, type(exc).__name__, lines[0][:200] if lines else "",
                  exc_info=log.isEnabledFor(logging.DEBUG))

    def finish_request(self, request: Any, client_address: Any) -> None:
        security = self.app.security
        if security.ssl_context is None:
            super().finish_request(request, client_address)
            return
        tls = security.web.tls_server_config
        request.settimeout(HANDSHAKE_TIMEOUT)
        try:
            conn = security.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            log.debug("TLS handshake with %s failed: %s", client_address[0], exc)
            return
        try:
            if tls is not None and not allowed_san(conn.getpeercert(), tls.client_allowed_sans):
                log.info("client certificate of %s has none of the allowed SANs; closing", client_address[0])
                return
            super().finish_request(conn, client_address)
        finally:
            conn.close()


def _scrape_timeout(headers: Any) -> float | None:
    """Prometheus' scrape timeout header; ValueError when it is present but not a positive number."""
    raw = headers.get(SCRAPE_TIMEOUT_HEADER)
    if raw is None:
        return None
    value = float(raw)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(raw)
    return value


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in separate writes: with Nagle on, a kept-alive connection (as
    # Prometheus keeps them) waits for the peer's delayed ACK, about 40 ms, on every answer.
    disable_nagle_algorithm = True
    server_version = "einvoice-exporter"
    sys_version = ""
    timeout = IDLE_TIMEOUT
    server: ExporterServer

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    # ---- plumbing -----------------------------------------------------------------------------

    def _send(self, status: int, body: bytes | str, content_type: str = "text/plain; charset=utf-8",
              extra: dict[str, str] | None = None) -> None:
        data = body.encode("utf-8") if isinstance(body, str) else body
        headers = dict(extra or {})
        if (len(data) > 1024 and self.command != "HEAD"
                and "gzip" in self.headers.get("Accept-Encoding", "").lower()):
            data = gzip.compress(data, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in {**self.server.app.security.web.http_server_config.headers, **headers}.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _discard_body(self) -> None:
        """Read a request body nobody needs, so the kept-alive connection stays in step."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > 1 << 16:
            self.close_connection = True
        elif length > 0:
            self.rfile.read(length)

    def _authorised(self) -> bool:
        auth = self.server.app.security.auth
        if auth is None or not auth.enabled:
            return True
        if auth.check_header(self.headers.get("Authorization")) is not None:
            return True
        self._send(HTTPStatus.UNAUTHORIZED, "Unauthorized\n",
                   extra={"WWW-Authenticate": 'Basic realm="einvoice-exporter", charset="UTF-8"'})
        return False

    # ---- methods ------------------------------------------------------------------------------

    def do_GET(self) -> None:
        if not self._authorised():
            return
        url = urlsplit(self.path)
        route = {"/": self._landing, "/metrics": self._metrics, "/probe": self._probe,
                 "/-/healthy": self._healthy, "/-/reload": self._reload, "/logs": self._logs}.get(url.path)
        if route is None:
            self._send(HTTPStatus.NOT_FOUND, "Not found\n")
            return
        try:
            route(url.query)
        except (BrokenPipeError, ConnectionResetError):
            raise
        except Exception:
            log.exception("error serving %s", url.path)
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error; see the exporter's log\n")

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_POST(self) -> None:
        self._discard_body()
        if not self._authorised():
            return
        path = urlsplit(self.path).path
        if path == "/-/reload":
            self._reload("")
        elif path in ("/", "/metrics", "/probe", "/-/healthy"):
            self._send(HTTPStatus.METHOD_NOT_ALLOWED, "Method not allowed\n", extra={"Allow": "GET"})
        else:
            self._send(HTTPStatus.NOT_FOUND, "Not found\n")

    def do_PUT(self) -> None:
        self.do_POST()

    # ---- routes -------------------------------------------------------------------------------

    def _landing(self, _query: str) -> None:
        runtime = self.server.app.runtime
        page = landing.render(runtime.rows(), version(), runtime.last_reload_ok, runtime.last_reload_error)
        self._send(HTTPStatus.OK, page, "text/html; charset=utf-8")

    def _logs(self, _query: str) -> None:
        from .collectors.logs.page import render

        self._send(HTTPStatus.OK, render(self.server.app.runtime.log_matches()), "text/html; charset=utf-8")

    def _healthy(self, _query: str) -> None:
        self._send(HTTPStatus.OK, "Healthy.\n")

    def _reload(self, _query: str) -> None:
        if self.command not in ("POST", "PUT"):
            self._send(HTTPStatus.METHOD_NOT_ALLOWED, "Only POST or PUT requests allowed\n",
                       extra={"Allow": "POST, PUT"})
            return
        if not self.server.app.enable_lifecycle:
            self._send(HTTPStatus.FORBIDDEN, "Lifecycle API is not enabled.\n")
            return
        ok, message = self.server.app.reload()
        if ok:
            self._send(HTTPStatus.OK, message + "\n")
        else:
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, f"failed to reload config: {message}\n")

    def _metrics(self, _query: str) -> None:
        try:
            scrape_timeout = _scrape_timeout(self.headers)
        except ValueError:
            self._send(HTTPStatus.BAD_REQUEST, f"invalid {SCRAPE_TIMEOUT_HEADER} header\n")
            return
        app = self.server.app

        def process() -> Iterator[Metric]:
            for collector in app.process_collectors:
                yield from collector.collect()

        openmetrics = wants_openmetrics(self.headers.get("Accept", ""))
        body = app.runtime.render(scrape_timeout, openmetrics, process)
        self._send(HTTPStatus.OK, body, OPENMETRICS_CONTENT_TYPE if openmetrics else TEXT_CONTENT_TYPE)

    def _probe(self, query: str) -> None:
        params = parse_qs(query)
        try:
            scrape_timeout = _scrape_timeout(self.headers)
        except ValueError:
            self._send(HTTPStatus.BAD_REQUEST, f"invalid {SCRAPE_TIMEOUT_HEADER} header\n")
            return

        def first(name: str) -> str | None:
            values = params.get(name)
            return values[0] if values else None

        openmetrics = wants_openmetrics(self.headers.get("Accept", ""))
        try:
            body = self.server.app.runtime.probe_exposition(
                first("module"), first("target"), first("item"), scrape_timeout, check=first("check"),
                openmetrics=openmetrics)
        except ProbeRequestError as exc:
            self._send(HTTPStatus.BAD_REQUEST, f"{exc}\n")
            return
        self._send(HTTPStatus.OK, body, OPENMETRICS_CONTENT_TYPE if openmetrics else TEXT_CONTENT_TYPE)


def parse_listen_address(text: str) -> tuple[str, int]:
    """`HOST:PORT`, `:PORT` (all IPv4 interfaces) or `[IPv6]:PORT`."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"listen address {text!r} must look like HOST:PORT, :PORT or [::1]:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return (host or "0.0.0.0", int(port_text))  # noqa: S104 - listening everywhere is the default, as Prometheus


def make_server(address: tuple[str, int], app: App) -> ExporterServer:
    """Bind (but do not start) the server; TLS when the web config has tls_server_config."""
    return ExporterServer(address, app)
