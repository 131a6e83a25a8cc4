"""Small loopback servers for the network-probe tests, each in a thread, each stopped at teardown."""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import threading
from collections.abc import Callable, Iterator


class TcpServer:
    """Accepts connections on 127.0.0.1:<free port> and hands each to `handler` in a thread."""

    def __init__(self, handler: Callable[[socket.socket], None],
                 tls: ssl.SSLContext | None = None, host: str = "127.0.0.1") -> None:
        self.handler = handler
        self.tls = tls
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.listener = socket.socket(family, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, 0))
        self.listener.listen(64)
        self.listener.settimeout(0.2)
        self.port: int = self.listener.getsockname()[1]
        self.address = f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self.accepted = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            self._conns.append(conn)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            if self.tls is not None:
                conn.settimeout(5)
                conn = self.tls.wrap_socket(conn, server_side=True)
                self._conns.append(conn)
            self.handler(conn)
        except (OSError, ssl.SSLError):
            pass
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() at once
        self.listener.close()
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.close()
        self._thread.join(2)


@contextlib.contextmanager
def serving(handler: Callable[[socket.socket], None],
            tls: ssl.SSLContext | None = None, host: str = "127.0.0.1") -> Iterator[TcpServer]:
    server = TcpServer(handler, tls, host)
    try:
        yield server
    finally:
        server.close()


def silent(conn: socket.socket) -> None:
    """Accept and never answer: waits until the client goes away."""
    conn.settimeout(10)
    with contextlib.suppress(OSError):
        while conn.recv(4096):
            pass


def stalls_mid_body(conn: socket.socket) -> None:
    """Answer 200 with Content-Length 1000, send 10 bytes of it, then nothing until the client
    gives up: a backend that hangs while writing its answer."""
    conn.settimeout(10)
    with contextlib.suppress(OSError):
        conn.recv(4096)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789")
        while conn.recv(4096):
            pass


def resetting(conn: socket.socket) -> None:
    """Close with SO_LINGER 0, which sends RST instead of FIN."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def read_then_reset(conn: socket.socket) -> None:
    """Read the request, then reset: a peer that dies mid-conversation."""
    conn.settimeout(5)
    conn.recv(4096)
    resetting(conn)


def garbage(conn: socket.socket) -> None:
    """Answer anything with bytes that are not HTTP (nor the line a dialogue expects)."""
    conn.settimeout(5)
    with contextlib.suppress(OSError):
        conn.recv(4096)
    conn.sendall(b"\x00\x17\xfe garbage, not a protocol \x01\x02\n")
    conn.shutdown(socket.SHUT_WR)


def http_ok(conn: socket.socket) -> None:
    """A minimal HTTP/1.0-style server: reads the request head, answers 200 and closes."""
    conn.settimeout(5)
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = conn.recv(4096)
        if not chunk:
            return
        head += chunk
    host = next((line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
                 if line.lower().startswith(b"host:")), b"")
    conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhost=" + host)


def ipv6_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


def closed_port() -> int:
    """A port with no listener (bound then closed)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    sock.close()
    return port


def line_dialogue(banner: bytes, replies: dict[bytes, bytes]) -> Callable[[socket.socket], None]:
    """A line protocol: send `banner`, then answer each known line."""

    def handle(conn: socket.socket) -> None:
        conn.settimeout(5)
        conn.sendall(banner)
        buffer = b""
        while True:
            chunk = conn.recv(4096)
            if not chunk:
                return
            buffer += chunk
            while b"\n" in buffer:
                line, _, buffer = buffer.partition(b"\n")
                answer = replies.get(line.rstrip(b"\r"))
                if answer is None:
                    return
                conn.sendall(answer)

    return handle
