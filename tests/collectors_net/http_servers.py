"""A loopback HTTP(S) application for the http collector's tests, and a tiny forward proxy.

The `/actuator/health` body is shaped as Spring Boot's actuator documents it
(docs.spring.io/spring-boot/reference/actuator/endpoints.html, "Health Information": a top-level
`status` of UP/DOWN/OUT_OF_SERVICE/UNKNOWN and one entry per component under `components`).
"""

from __future__ import annotations

import base64
import contextlib
import json
import select
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from .servers import TcpServer

ACTUATOR_UP = {
    "status": "UP",
    "components": {
        "db": {"status": "UP", "details": {"database": "Oracle", "validationQuery": "isValid()"}},
        "diskSpace": {"status": "UP", "details": {"total": 499963174912, "free": 91300069376}},
        "redis": {"status": "UP", "details": {"version": "7.0.11"}},
    },
}
ACTUATOR_DOWN = {"status": "DOWN", "components": {"db": {"status": "DOWN"}, "ping": {"status": "UP"}}}
BASIC_USER, BASIC_PASSWORD = "monitor", "s3cret-pass"
BEARER_TOKEN = "tok-0123456789"


class _App(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        return

    def _send(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8",
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _stream(self, query: dict[str, list[str]]) -> None:
        """A generated body of `size` bytes of `x`, with `needle` written at offset `at`, sent in
        64 KiB pieces (never whole in memory), framed by Content-Length, chunked or connection
        close (`framing`)."""
        size = int(query["size"][0])
        needle = query.get("needle", [""])[0].encode()
        at = int(query.get("at", ["0"])[0])
        framing = query.get("framing", ["length"])[0]
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        if framing == "length":
            self.send_header("Content-Length", str(size))
        elif framing == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        piece = 64 * 1024
        try:
            for offset in range(0, size, piece):
                part = bytearray(b"x" * min(piece, size - offset))
                if needle and offset <= at + len(needle) and at < offset + len(part):
                    for index, byte in enumerate(needle):
                        if 0 <= at + index - offset < len(part):
                            part[at + index - offset] = byte
                if framing == "chunked":
                    self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                else:
                    self.wfile.write(part)
            if framing == "chunked":
                self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass  # the probe stopped reading at its limit and closed

    def _json(self, status: int, document: object) -> None:
        self._send(status, json.dumps(document).encode(), "application/vnd.spring-boot.actuator.v3+json")

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_POST(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        self.server.requests.append((self.command, self.path, dict(self.headers.items())))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = urlsplit(self.path).path
        if path == "/ok":
            self._send(200, "广西电子发票 ok\n".encode())
        elif path == "/actuator/health":
            self._json(200, ACTUATOR_UP)
        elif path == "/actuator/health-down":
            self._json(503, ACTUATOR_DOWN)
        elif path == "/json-types":
            self._json(200, {"ok": True, "count": 3, "ratio": 1.0, "none": None, "code": "0000",
                             "items": [{"state": "RUNNING"}, {"state": "IDLE"}]})
        elif path == "/not-json":
            self._send(200, b"<html>maintenance</html>", "text/html")
        elif path == "/error-page":
            self._send(200, b"<html>java.lang.NullPointerException at ...</html>", "text/html")
        elif path == "/redirect":
            self._send(302, b"", headers={"Location": "/ok"})
        elif path == "/redirect-to":
            self._send(302, b"", headers={"Location": parse_qs(urlsplit(self.path).query)["to"][0]})
        elif path == "/redirect-post":
            self._send(303, b"", headers={"Location": "/echo"})
        elif path == "/loop":
            self._send(302, b"", headers={"Location": "/loop"})
        elif path == "/basic":
            expected = "Basic " + base64.b64encode(f"{BASIC_USER}:{BASIC_PASSWORD}".encode()).decode()
            if self.headers.get("Authorization") == expected:
                self._send(200, b"welcome")
            else:
                self._send(401, b"who are you", headers={"WWW-Authenticate": 'Basic realm="x"'})
        elif path == "/bearer":
            if self.headers.get("Authorization") == f"Bearer {BEARER_TOKEN}":
                self._send(200, b"welcome")
            else:
                self._send(403, b"forbidden")
        elif path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b'{"status":', b'"UP"}'):
                self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        elif path == "/stream":
            self._stream(parse_qs(urlsplit(self.path).query))
        elif path == "/big":
            self._send(200, b"x" * 200_000)
        elif path == "/echo":
            self._json(200, {"method": self.command, "body": body.decode(),
                             "headers": {k.lower(): v for k, v in self.headers.items()}})
        else:
            self._send(404, b"no such page")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    requests: list[tuple[str, str, dict[str, str]]]
    release: threading.Event


@contextlib.contextmanager
def http_app(tls: ssl.SSLContext | None = None) -> Iterator[_Server]:
    """The app on 127.0.0.1:<free port>; `server.url` is its base URL."""
    server = _Server(("127.0.0.1", 0), _App)
    server.requests = []
    server.release = threading.Event()
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    scheme = "https" if tls else "http"
    server.url = f"{scheme}://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def _pipe(a: socket.socket, b: socket.socket) -> None:
    sockets = [a, b]
    while True:
        readable, _, _ = select.select(sockets, [], [], 5)
        if not readable:
            return
        for sock in readable:
            data = sock.recv(65536)
            if not data:
                return
            (b if sock is a else a).sendall(data)


class ForwardProxy:
    """An HTTP forward proxy: absolute-form requests for http, CONNECT tunnels for https.
    Records what it was asked, so a test can see the probe went through it."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.server = TcpServer(self._handle)
        self.url = f"http://{self.server.address}"

    def _handle(self, conn: socket.socket) -> None:
        # TcpServer closes the connection and swallows OSError from it afterwards.
        conn.settimeout(5)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(65536)
            if not chunk:
                return
            head += chunk
        request_line, _, rest = head.partition(b"\r\n")
        method, target, version = request_line.decode().split(" ")
        self.seen.append(f"{method} {target}")
        if method == "CONNECT":
            host, port = target.rsplit(":", 1)
            with socket.create_connection((host, int(port)), timeout=5) as upstream:
                conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                _pipe(conn, upstream)
            return
        parts = urlsplit(target)
        origin = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        with socket.create_connection((parts.hostname, parts.port or 80), timeout=5) as upstream:
            upstream.sendall(f"{method} {origin} {version}\r\n".encode() + rest)
            _pipe(conn, upstream)

    def close(self) -> None:
        self.server.close()
