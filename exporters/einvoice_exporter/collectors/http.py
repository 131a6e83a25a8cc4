"""Collector of kind `http`: one HTTP(S) request (following redirects if asked), judged by status
code, body regexes, JSON-field expectations (Spring Boot actuator `{"status":"UP"}`) and a
response-time threshold, with blackbox_exporter's metric names.

    probe_success 1
    probe_http_status_code 200
    probe_http_duration_seconds{phase="resolve"} 2e-05
    probe_http_duration_seconds{phase="connect"} 0.0002
    probe_http_duration_seconds{phase="tls"} 0.004
    probe_http_duration_seconds{phase="processing"} 0.012
    probe_http_duration_seconds{phase="transfer"} 0.0001
    probe_http_ssl 1
    probe_ssl_earliest_cert_expiry 1.79e+09

The client is a small HTTP/1.1 implementation on socket and ssl rather than `requests`: it measures
each phase itself, proxies (plain and CONNECT) and redirects stay under its control, and a probe
costs a fraction of the CPU (see benchmarks/blackbox_compare.py). One connection per request,
`Connection: close`, like blackbox_exporter with keep-alives off.
"""

from __future__ import annotations

import base64
import codecs
import email.utils
import hashlib
import ipaddress
import json
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urljoin, urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from ..fields import PositiveDuration, StrictModel, one_of_secret, resolve_secret
from ..outcome import Check, MetricSet, Outcome, Reason
from . import CheckError, Deadline
from ._net import (
    IpProtocol,
    TlsClientSettings,
    TlsFacts,
    add_ip_protocol,
    add_tls_metrics,
    classify_os_error,
    connect,
    finish,
    resolve,
    tls_facts,
    tls_handshake,
)

PHASES = ("resolve", "connect", "tls", "processing", "transfer")
_REDIRECTS = {301, 302, 303, 307, 308}
_HEAD_LIMIT = 64 * 1024
_CHUNK = 64 * 1024
"""Bytes received at a time, into one buffer reused for the whole exchange."""
_STEP = 64 * 1024
_OVERLAP = 64 * 1024
_HOLD = 1024
"""Body regexes: characters searched per window, kept from the previous window, and near a
window's end whose matches wait for the next window."""
JSON_MAX = 16 * 1024 * 1024
"""json_expect parses at most this many bytes of body (a health document is a few hundred)."""
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

JsonScalar = str | int | float | bool | None


def _compile(patterns: list[str], key: str) -> list[str]:
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"{key}: {pattern!r} is not a valid regular expression: {exc}") from None
    return patterns


class BasicAuth(StrictModel):
    username: Annotated[str, Field(min_length=1)]
    password: SecretStr | None = None
    password_file: Path | None = None

    @model_validator(mode="after")
    def _one_password(self) -> BasicAuth:
        one_of_secret(self.password, self.password_file, "password")
        if ":" in self.username:
            raise ValueError("username cannot contain ':' (basic auth joins user and password with it)")
        return self


class JsonExpect(StrictModel):
    """A field of a JSON body that must equal a value or match a regex.

    `path` is dotted (`status`, `components.db.status`, `items.0.state` for list elements). A
    string `equals` also matches the JSON text of a non-string value (`equals: "true"` matches true).
    """

    path: Annotated[str, Field(min_length=1, pattern=r"^[^.]+(\.[^.]+)*$")]
    equals: JsonScalar = None
    regex: str | None = None

    @model_validator(mode="after")
    def _one_condition(self) -> JsonExpect:
        has_equals = "equals" in self.model_fields_set
        if has_equals == (self.regex is not None):
            raise ValueError(f"json_expect for {self.path!r}: set exactly one of equals or regex")
        if self.regex is not None:
            _compile([self.regex], "regex")
        return self


class Settings(StrictModel):
    """Settings of an `http` module (keys follow blackbox_exporter's http prober where they overlap)."""

    method: Literal["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = None
    basic_auth: BasicAuth | None = None
    bearer_token: SecretStr | None = None
    bearer_token_file: Path | None = None
    tls_config: TlsClientSettings = Field(default_factory=TlsClientSettings)
    proxy_url: str | None = None
    """An HTTP proxy (http://host:port); https targets go through it with CONNECT."""
    follow_redirects: bool = True
    max_redirects: Annotated[int, Field(ge=0, le=30)] = 10
    valid_status_codes: list[Annotated[int, Field(ge=100, le=599)]] = Field(default_factory=list)
    """Empty means any 2xx."""
    fail_if_ssl: bool = False
    fail_if_not_ssl: bool = False
    fail_if_body_matches: list[str] = Field(default_factory=list)
    fail_if_body_not_matches: list[str] = Field(default_factory=list)
    json_expect: list[JsonExpect] = Field(default_factory=list)
    max_response_time: PositiveDuration | None = None
    """Slower than this (whole probe, redirects included) fails with reason threshold."""
    body_size_limit: Annotated[int, Field(ge=1)] = 4 * 1024 * 1024
    """Bytes of body read at most; a longer body fails the probe (bad_content), reporting the status
    and the bytes read. The body is streamed, never held: regexes are matched as it passes (a match
    must fit in 64 Ki characters) and json_expect keeps at most JSON_MAX (16 MiB) of it."""
    ip_protocol: IpProtocol = "auto"

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not _TOKEN.match(name):
                raise ValueError(f"header name {name!r} is not a valid HTTP token")
            if "\r" in text or "\n" in text:
                raise ValueError(f"header {name}: the value cannot contain line breaks")
            if not text.isascii():
                raise ValueError(f"header {name}: the value must be ASCII (percent- or base64-encode it)")
            if name.lower() in ("content-length", "connection", "transfer-encoding"):
                raise ValueError(f"header {name} is set by the probe itself")
        return value

    @field_validator("fail_if_body_matches", "fail_if_body_not_matches")
    @classmethod
    def _regexes(cls, value: list[str]) -> list[str]:
        return _compile(value, "body regex")

    @field_validator("proxy_url")
    @classmethod
    def _proxy(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError("proxy_url must be an http:// URL with a host, e.g. http://proxy:3128")
        if parts.username or parts.password:
            raise ValueError("proxy_url cannot carry credentials")
        return value

    @model_validator(mode="after")
    def _auth(self) -> Settings:
        one_of_secret(self.bearer_token, self.bearer_token_file, "bearer_token")
        has_bearer = self.bearer_token is not None or self.bearer_token_file is not None
        if has_bearer and self.basic_auth is not None:
            raise ValueError("set either basic_auth or bearer_token, not both")
        if (has_bearer or self.basic_auth) and any(h.lower() == "authorization" for h in self.headers):
            raise ValueError("headers.Authorization conflicts with basic_auth/bearer_token; keep one")
        if self.fail_if_ssl and self.fail_if_not_ssl:
            raise ValueError("fail_if_ssl and fail_if_not_ssl cannot both be true")
        return self


def validate_target(target: str) -> str:
    _parse_url(target)
    return target


class _Url:
    __slots__ = ("host", "host_header", "port", "request_target", "scheme", "text")

    def __init__(self, text: str, scheme: str, host: str, port: int, host_header: str,
                 request_target: str) -> None:
        self.text, self.scheme, self.host, self.port = text, scheme, host, port
        self.host_header, self.request_target = host_header, request_target


def _parse_url(text: str) -> _Url:
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError("the target must be an http:// or https:// URL")
    if not parts.hostname:
        raise ValueError("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("credentials in the URL would show in the target label; use basic_auth")
    default = 443 if parts.scheme == "https" else 80
    host = parts.hostname
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")  # 税务.中国 -> xn--...
        except UnicodeError:
            raise ValueError(f"host {host!r} is not a valid internationalised name") from None
    netloc_host = f"[{host}]" if ":" in host else host
    host_header = netloc_host if port in (None, default) else f"{netloc_host}:{port}"
    path = parts.path or "/"
    if any(ch in path + parts.query for ch in " \r\n") or not (path + parts.query).isascii():
        raise ValueError("the URL contains spaces, line breaks or non-ASCII characters; percent-encode them")
    request_target = path + (f"?{parts.query}" if parts.query else "")
    return _Url(text, parts.scheme, host, port or default, host_header, request_target)


class _Reader:
    """Buffered reads from a socket, each bounded by the run's deadline."""

    def __init__(self, sock: socket.socket, deadline: Deadline) -> None:
        self.sock = sock
        self.deadline = deadline
        self.buffer = bytearray()
        self.eof = False
        self._chunk = bytearray(_CHUNK)

    def _fill(self, what: str) -> bool:
        if self.eof:
            return False
        self.sock.settimeout(self.deadline.remaining(what))
        size = self.sock.recv_into(self._chunk)
        if size == 0:
            self.eof = True
            return False
        self.buffer += memoryview(self._chunk)[:size]
        return True

    def head(self) -> bytes:
        """Status line and headers, up to the blank line."""
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end >= 0:
                size = end + 4
                break
            end = self.buffer.find(b"\n\n")
            if end >= 0:
                size = end + 2
                break
            if len(self.buffer) > _HEAD_LIMIT:
                raise CheckError(Reason.BAD_CONTENT, "response headers longer than 64 KiB")
            if not self._fill("waiting for the first byte" if not self.buffer else "reading the headers"):
                if not self.buffer:
                    raise CheckError(Reason.RESET, "connection closed by the server before an answer")
                if not self.buffer.startswith(b"HTTP/"):
                    raise CheckError(Reason.BAD_CONTENT, "the answer is not HTTP")
                raise CheckError(Reason.RESET, "connection closed in the middle of the headers")
            if len(self.buffer) >= 5 and not self.buffer.startswith(b"HTTP/"):
                raise CheckError(Reason.BAD_CONTENT, "the answer is not HTTP")
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    def take(self, wanted: int | None, what: str) -> memoryview | bytes | None:
        """Up to `wanted` bytes (None: whatever comes) from what the headers' reads left over or
        one receive into the reused chunk buffer; None at the end of the stream. Valid until the
        next call."""
        if self.buffer:
            size = len(self.buffer) if wanted is None else min(wanted, len(self.buffer))
            data = bytes(self.buffer[:size])
            del self.buffer[:size]
            return data
        if self.eof:
            return None
        self.sock.settimeout(self.deadline.remaining(what))
        view = memoryview(self._chunk)
        size = self.sock.recv_into(view if wanted is None else view[:min(wanted, _CHUNK)])
        if size == 0:
            self.eof = True
            return None
        return view[:size]

    def stream(self, size: int | None, sink: _BodySink) -> None:
        """Pass `size` bytes (None: up to the end of the stream) to the sink, stopping where the
        sink's limit is reached."""
        left = size
        while left is None or left > 0:
            want = sink.room() if left is None else min(left, sink.room())
            if want == 0:  # at the limit: too long if the body goes on
                sink.overflow = left is not None or self.take(1, "reading the body") is not None
                return
            data = self.take(want, "reading the body")
            if data is None:
                if left is None:
                    return
                raise CheckError(Reason.RESET, "connection closed before the whole body arrived")
            sink.feed(data)
            self.deadline.phase("reading the body", f"{sink.size} body bytes read")
            if left is not None:
                left -= len(data)

    def expect_crlf(self) -> None:
        data = self.take(2, "reading the body")
        if data is None or (len(data) == 1 and self.take(1, "reading the body") is None):
            raise CheckError(Reason.RESET, "connection closed in the middle of a chunked body")

    def line(self) -> bytes:
        while True:
            end = self.buffer.find(b"\n")
            if end >= 0:
                data = bytes(self.buffer[:end + 1])
                del self.buffer[:end + 1]
                return data
            if len(self.buffer) > _HEAD_LIMIT or not self._fill("reading the body"):
                raise CheckError(Reason.BAD_CONTENT, "malformed chunked body")

    def chunked(self, sink: _BodySink) -> None:
        while True:
            size_text = self.line().split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise CheckError(Reason.BAD_CONTENT, "malformed chunk size in the body") from None
            if size == 0:
                while self.line().strip():  # trailers
                    pass
                return
            self.stream(size, sink)
            if sink.overflow:
                return
            self.expect_crlf()


class _BodySink:
    """Sees the body as it passes, keeping only what the checks need: its length, which regexes
    matched (over a bounded window of text), and the first bytes for json_expect.

    Regexes are searched as the text streams by, in windows of `_STEP` new characters plus the
    last `_OVERLAP` characters before them, so memory stays bounded whatever the body's size. The
    matching limit: a match must fit in `_OVERLAP` characters (64 Ki); `^` and `\\A` match only at
    the body's start and `$` and `\\Z` only at its end, as over the whole body.
    """

    def __init__(self, limit: int, bad: list[re.Pattern[str]], good: list[re.Pattern[str]],
                 keep: int) -> None:
        self.limit = limit
        self.size = 0
        self.overflow = False
        self.bad_match: re.Pattern[str] | None = None
        self.unmatched = list(good)
        self._bad = list(bad)
        self._keep_max = keep
        self.kept = bytearray()
        self.kept_all = True
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace") if bad or good else None
        self._tail = ""
        self._pending: list[str] = []
        self._pending_size = 0

    def room(self) -> int:
        return min(self.limit - self.size, _CHUNK)

    def feed(self, data: memoryview | bytes) -> None:
        self.size += len(data)
        if self._keep_max:
            room = self._keep_max - len(self.kept)
            if len(data) > room:
                self.kept_all = False
            if room > 0:
                self.kept += data[:room]
        if self._decoder is not None and (self._bad or self.unmatched):
            text = self._decoder.decode(data)
            if text:
                self._pending.append(text)
                self._pending_size += len(text)
                if self._pending_size >= _STEP:
                    self._search(final=False)

    def finish(self) -> None:
        if self._decoder is not None and (self._bad or self.unmatched):
            tail = self._decoder.decode(b"", final=True)
            if tail:
                self._pending.append(tail)
            self._search(final=True)

    def _search(self, final: bool) -> None:
        window = self._tail + "".join(self._pending)
        self._pending, self._pending_size = [], 0
        start = 1 if self._tail else 0  # window[0] is context: `^` and `\\A` cannot match there
        # away from the end of the body, a match that ends near the window's end may be an
        # artefact of the cut ($, \\b, lookahead): it is decided in the next window instead
        limit = len(window) if final else len(window) - _HOLD

        def found(pattern: re.Pattern[str]) -> bool:
            match = pattern.search(window, start)
            return match is not None and match.end() <= limit

        for pattern in self._bad:
            if found(pattern):
                self.bad_match = pattern
                self._bad, self.unmatched = [], []  # the body has failed; no more searching
                return
        self.unmatched = [pattern for pattern in self.unmatched if not found(pattern)]
        self._tail = window[-_OVERLAP:] if len(window) > _OVERLAP else window


class _Response:
    """What one exchange saw; the body itself is not kept, only what the checks need of it."""

    __slots__ = ("body", "headers", "leaf", "status", "tls", "version")

    def __init__(self, version: float, status: int, headers: dict[str, str], body: _BodySink,
                 tls: TlsFacts | None, leaf: dict[str, str] | None = None) -> None:
        self.version, self.status, self.headers, self.body, self.tls = version, status, headers, body, tls
        self.leaf = leaf
        """probe_ssl_last_chain_info's labels for the leaf certificate (HTTPS only)."""


_NAME_KEYS = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU",
              "countryName": "C", "localityName": "L", "stateOrProvinceName": "ST",
              "streetAddress": "STREET", "postalCode": "POSTALCODE", "serialNumber": "SERIALNUMBER"}


def _dn(name: Any) -> str:
    """A certificate name as Go's pkix.Name.String() writes it (blackbox_exporter's label): the
    relative names last-to-first, `CN=host,O=org,C=CN`."""
    parts = []
    for rdn in reversed(name or ()):
        parts.append("+".join(f"{_NAME_KEYS.get(key, key)}={value}" for key, value in rdn))
    return ",".join(parts)


def leaf_info(sock: ssl.SSLSocket) -> dict[str, str]:
    """blackbox_exporter's probe_ssl_last_chain_info labels: the leaf's SHA-256 fingerprint and,
    when the chain was verified (Python reveals the fields only then), subject, issuer, DNS names."""
    der = sock.getpeercert(binary_form=True) or b""
    cert: dict[str, Any] = dict(sock.getpeercert() or {})
    names = [str(entry[1]) for entry in cert.get("subjectAltName", ()) if entry[0] == "DNS"]
    return {"fingerprint_sha256": hashlib.sha256(der).hexdigest() if der else "",
            "subject": _dn(cert.get("subject")), "issuer": _dn(cert.get("issuer")),
            "subjectalternative": ",".join(names)}


def ip_hash(address: str) -> float:
    """blackbox_exporter's probe_ip_addr_hash: FNV-1a (32 bit) of the address' bytes (4 for IPv4,
    16 for IPv6), the same value for the same address (checked against blackbox 0.23)."""
    data = ipaddress.ip_address(address.split("%", 1)[0]).packed
    value = 0x811C9DC5
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return float(value)


def _host_without_port(host: str) -> str:
    if host.startswith("["):
        return host[1:].partition("]")[0]
    name, sep, port = host.rpartition(":")
    return name if sep and port.isdigit() and ":" not in name else host


def _parse_head(head: bytes) -> tuple[float, int, dict[str, str]]:
    lines = head.decode("latin-1").split("\n")
    status_line = lines[0].rstrip("\r").split(" ", 2)
    try:
        version = float(status_line[0][5:])
        status = int(status_line[1])
    except (ValueError, IndexError):
        raise CheckError(Reason.BAD_CONTENT, "malformed HTTP status line") from None
    headers: dict[str, str] = {}
    for raw in lines[1:]:
        name, sep, value = raw.rstrip("\r").partition(":")
        if sep:
            key = name.strip().lower()
            headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    return version, status, headers


def _json_lookup(document: Any, path: str) -> tuple[bool, Any]:
    node = document
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False, None
    return True, node


def _json_matches(expect: JsonExpect, actual: Any) -> bool:
    text = actual if isinstance(actual, str) else json.dumps(actual)
    if expect.regex is not None:
        return re.search(expect.regex, text) is not None
    wanted = expect.equals
    if isinstance(wanted, bool) or isinstance(actual, bool) or wanted is None or actual is None:
        if actual is wanted:
            return True
    elif isinstance(wanted, str) == isinstance(actual, str) and actual == wanted:
        return True
    # a string expectation also matches the JSON text of a number or boolean: "1", "true"
    return isinstance(wanted, str) and text == wanted


class _BodyMismatchError(CheckError):
    """A body regex failed: also shown by probe_failed_due_to_regex."""


class Collector:
    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        # files are loaded at once (a bad key fails at start); the system store only when an
        # https URL is first probed, since most intranet health checks are plain http
        self._context = settings.tls_config.context() if settings.tls_config.has_files() else None
        self._context_lock = threading.Lock()
        self.body_bad = [re.compile(p) for p in settings.fail_if_body_matches]
        self.body_good = [re.compile(p) for p in settings.fail_if_body_not_matches]
        self.valid = set(settings.valid_status_codes)
        self.proxy = _parse_url(settings.proxy_url) if settings.proxy_url else None
        self.authorization = self._authorization()
        self.base_headers = self._base_headers()
        self.host_override = next((value for name, value in settings.headers.items()
                                   if name.lower() == "host"), None)
        # like blackbox_exporter: a configured Host header is also the TLS server name, unless set
        self.server_name = settings.tls_config.server_name or (
            _host_without_port(self.host_override) if self.host_override else None)
        self.body = settings.body.encode("utf-8") if settings.body is not None else None

    def _tls_context(self) -> ssl.SSLContext:
        with self._context_lock:
            if self._context is None:
                self._context = self.settings.tls_config.context()
            return self._context

    def _authorization(self) -> str | None:
        """Read once per build (a reload re-reads `*_file`); never logged nor exported."""
        s = self.settings
        if s.basic_auth is not None:
            password = resolve_secret(s.basic_auth.password, s.basic_auth.password_file) or ""
            raw = f"{s.basic_auth.username}:{password}".encode()
            return "Basic " + base64.b64encode(raw).decode("ascii")
        token = resolve_secret(s.bearer_token, s.bearer_token_file)
        return f"Bearer {token}" if token is not None else None

    def _base_headers(self) -> list[tuple[str, str]]:
        defaults = {"user-agent": ("User-Agent", "einvoice-exporter"), "accept": ("Accept", "*/*")}
        for name, value in self.settings.headers.items():
            defaults[name.lower()] = (name, value)
        defaults.pop("host", None)
        return list(defaults.values())

    # -- one request ----------------------------------------------------------------------------

    def _request_bytes(self, method: str, url: _Url, body: bytes | None, send_auth: bool) -> bytes:
        via_plain_proxy = self.proxy is not None and url.scheme == "http"
        request_target = url.text if via_plain_proxy else url.request_target
        host = self.host_override or url.host_header
        lines = [f"{method} {request_target} HTTP/1.1", f"Host: {host}"]
        lines += [f"{name}: {value}" for name, value in self.base_headers]
        if send_auth and self.authorization is not None:
            lines.append(f"Authorization: {self.authorization}")
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")

    def _open(self, url: _Url, deadline: Deadline, phases: dict[str, float],
              metrics: MetricSet) -> tuple[socket.socket, TlsFacts | None]:
        hop = self.proxy or url
        started = time.perf_counter()
        family, sockaddr = resolve(hop.host, hop.port, self.settings.ip_protocol, deadline)
        resolved = time.perf_counter()
        phases["resolve"] += resolved - started
        add_ip_protocol(metrics, family)
        if metrics.value("probe_ip_addr_hash") is None:  # the first hop's address, as blackbox
            metrics.gauge("probe_ip_addr_hash", "Specifies the hash of IP address. It's useful to detect "
                          "if the IP address changes.", ip_hash(str(sockaddr[0])))
        sock = connect(family, sockaddr, deadline)
        if self.proxy is not None and url.scheme == "https":
            self._tunnel(sock, url, deadline)  # the tunnel counts as connecting
        connected = time.perf_counter()
        phases["connect"] += connected - resolved
        facts = None
        if url.scheme == "https":
            tls_started = time.perf_counter()
            sock = tls_handshake(sock, self._tls_context(), self.server_name or url.host, deadline)
            facts = tls_facts(sock)
            phases["tls"] += time.perf_counter() - tls_started
        return sock, facts

    def _sink(self) -> _BodySink:
        keep = min(self.settings.body_size_limit, JSON_MAX) if self.settings.json_expect else 0
        return _BodySink(self.settings.body_size_limit, self.body_bad, self.body_good, keep)

    def _tunnel(self, sock: socket.socket, url: _Url, deadline: Deadline) -> None:
        authority = f"[{url.host}]:{url.port}" if ":" in url.host else f"{url.host}:{url.port}"
        try:
            sock.settimeout(deadline.remaining("proxy CONNECT"))
            sock.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode("latin-1"))
            reader = _Reader(sock, deadline)
            _, status, _ = _parse_head(reader.head())
        except BaseException:
            sock.close()
            raise
        if status != 200:
            sock.close()
            reason = Reason.AUTH if status == 407 else Reason.BAD_STATUS
            raise CheckError(reason, f"proxy answered {status} to CONNECT")

    def _exchange(self, method: str, url: _Url, body: bytes | None, send_auth: bool, deadline: Deadline,
                  phases: dict[str, float], metrics: MetricSet, seen: list[_Response]) -> _Response:
        """One request and its answer; `seen` gets the answer as soon as its head arrived, so a
        failure while reading the body still reports the status and the bytes that came."""
        seen.clear()
        sock, facts = self._open(url, deadline, phases, metrics)
        try:
            ready = time.perf_counter()
            sock.settimeout(deadline.remaining("sending the request"))
            sock.sendall(self._request_bytes(method, url, body, send_auth))
            reader = _Reader(sock, deadline)
            while True:
                version, status, headers = _parse_head(reader.head())
                if not 100 <= status < 200 or status == 101:
                    break
            first_byte = time.perf_counter()
            phases["processing"] += first_byte - ready
            sink = self._sink()
            leaf = leaf_info(sock) if isinstance(sock, ssl.SSLSocket) else None
            seen.append(_Response(version, status, headers, sink, facts, leaf))
            if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
                pass
            elif "chunked" in headers.get("transfer-encoding", "").lower():
                reader.chunked(sink)
            elif "content-length" in headers:
                try:
                    length = int(headers["content-length"])
                except ValueError:
                    raise CheckError(Reason.BAD_CONTENT, "malformed Content-Length header") from None
                if length > sink.limit:
                    sink.overflow = True  # announced too long: not worth reading
                else:
                    reader.stream(length, sink)
            else:
                reader.stream(None, sink)
            sink.finish()
            phases["transfer"] += time.perf_counter() - first_byte
        except CheckError:
            raise
        except OSError as exc:
            raise classify_os_error(exc, deadline.doing()) from None
        finally:
            sock.close()
        return seen[0]

    # -- the probe ------------------------------------------------------------------------------

    def run(self, target: str, timeout: float) -> Outcome:
        deadline = Deadline(timeout, clock=self.clock)
        outcome = Outcome()
        metrics = outcome.metrics
        phases = dict.fromkeys(PHASES, 0.0)
        redirects = 0
        response: _Response | None = None
        seen: list[_Response] = []
        regex_failed = False
        try:
            try:
                url = _parse_url(target)
            except ValueError as exc:
                raise CheckError(Reason.ERROR, f"target: {exc}") from None
            first_host = url.host_header
            method, body = self.settings.method, self.body
            while True:
                response = self._exchange(method, url, body, url.host_header == first_host,
                                          deadline, phases, metrics, seen)
                location = response.headers.get("location")
                follow = self.settings.follow_redirects and response.status in _REDIRECTS and location
                if response.body.overflow or not follow:
                    break
                if redirects >= self.settings.max_redirects:
                    raise CheckError(Reason.BAD_STATUS, f"more than {self.settings.max_redirects} redirects")
                redirects += 1
                try:
                    url = _parse_url(urljoin(url.text, location))
                except ValueError as exc:
                    raise CheckError(Reason.BAD_CONTENT, f"redirect to an unusable location: {exc}") from None
                if response.status in (301, 302, 303) and method not in ("GET", "HEAD"):
                    method, body = "GET", None
            self._judge(response, deadline)
        except CheckError as exc:
            outcome.fail(exc.reason, exc.detail)
            regex_failed = isinstance(exc, _BodyMismatchError)
        except OSError as exc:
            error = classify_os_error(exc, deadline.doing())
            outcome.fail(error.reason, error.detail)
        if seen:
            response = seen[0]  # the last exchange's answer, complete or cut short
        self._metrics(metrics, phases, redirects, response, regex_failed)
        return finish(outcome, deadline)

    def _judge(self, response: _Response, deadline: Deadline) -> None:
        """Raise the first failed expectation, in the order status, TLS, body, JSON, time."""
        status = response.status
        valid = status in self.valid if self.valid else 200 <= status < 300
        if not valid:
            wanted = ", ".join(map(str, sorted(self.valid))) if self.valid else "2xx"
            reason = Reason.AUTH if status in (401, 403, 407) else Reason.BAD_STATUS
            raise CheckError(reason, f"status {status} is not one of the valid codes ({wanted})")
        if self.settings.fail_if_ssl and response.tls is not None:
            raise CheckError(Reason.TLS, "the final response came over TLS (fail_if_ssl)")
        if self.settings.fail_if_not_ssl and response.tls is None:
            raise CheckError(Reason.TLS, "the final response did not come over TLS (fail_if_not_ssl)")
        body = response.body
        if body.overflow:
            raise CheckError(Reason.BAD_CONTENT, f"body exceeds body_size_limit of "
                             f"{self.settings.body_size_limit} bytes (stopped after {body.size} bytes)")
        if body.bad_match is not None:
            raise _BodyMismatchError(Reason.BAD_CONTENT, f"body matched {body.bad_match.pattern!r}")
        if body.unmatched:
            raise _BodyMismatchError(Reason.BAD_CONTENT, f"body did not match {body.unmatched[0].pattern!r}")
        if self.settings.json_expect:
            if not body.kept_all:
                raise CheckError(Reason.BAD_CONTENT, f"json_expect: the body is longer than {len(body.kept)} "
                                                     "bytes, too long to parse")
            try:
                document = json.loads(body.kept)
            except ValueError:
                raise CheckError(Reason.BAD_CONTENT, "json_expect: the body is not JSON") from None
            for expect in self.settings.json_expect:
                found, actual = _json_lookup(document, expect.path)
                if not found:
                    raise CheckError(Reason.BAD_CONTENT, f"json_expect: {expect.path} is missing")
                if not _json_matches(expect, actual):
                    # the actual value stays out of the detail: it is the target's data
                    wanted = (f"does not match {expect.regex!r}" if expect.regex is not None
                              else f"is not equal to {expect.equals!r}")
                    raise CheckError(Reason.BAD_CONTENT, f"json_expect: {expect.path} {wanted}")
        limit = self.settings.max_response_time
        if limit is not None and deadline.elapsed() > limit:
            raise CheckError(Reason.THRESHOLD,
                             f"response took {deadline.elapsed():.3f}s, over max_response_time {limit:g}s")

    @staticmethod
    def _metrics(metrics: MetricSet, phases: dict[str, float], redirects: int,
                 response: _Response | None, regex_failed: bool) -> None:
        for phase, seconds in phases.items():
            metrics.gauge("probe_http_duration_seconds", "Duration of http request by phase, summed over "
                          "all redirects", seconds, {"phase": phase})
        metrics.gauge("probe_dns_lookup_time_seconds",
                      "Returns the time taken for probe dns lookup in seconds", phases["resolve"])
        metrics.gauge("probe_http_status_code", "Response HTTP status code",
                      response.status if response is not None else 0)
        # blackbox_exporter: 0 when there was no response, -1 when it announced no length
        length = -1.0 if response is not None else 0.0
        if response is not None and "content-length" in response.headers:
            try:
                length = float(response.headers["content-length"])
            except ValueError:
                length = -1.0
        metrics.gauge("probe_http_content_length", "Length of http content response", length)
        metrics.gauge("probe_http_uncompressed_body_length", "Length of uncompressed response body",
                      response.body.size if response is not None else 0)
        metrics.gauge("probe_http_redirects", "The number of redirects", redirects)
        metrics.gauge("probe_http_ssl", "Indicates if SSL was used for the final redirect",
                      1 if response is not None and response.tls is not None else 0)
        metrics.gauge("probe_http_version", "Returns the version of HTTP of the probe response",
                      response.version if response is not None else 0)
        metrics.gauge("probe_failed_due_to_regex", "Indicates if probe failed due to regex",
                      1 if regex_failed else 0)
        if response is not None and response.tls is not None:
            add_tls_metrics(metrics, response.tls)
        if response is not None and response.leaf is not None:
            metrics.gauge("probe_ssl_last_chain_info", "Contains SSL leaf certificate information", 1,
                          response.leaf)
        modified = response.headers.get("last-modified") if response is not None else None
        if modified:
            try:
                stamp = email.utils.parsedate_to_datetime(modified).timestamp()
            except (TypeError, ValueError):
                stamp = None
            if stamp is not None:
                metrics.gauge("probe_http_last_modified_timestamp_seconds",
                              "Returns the Last-Modified HTTP response header in unixtime", stamp)

    def close(self) -> None:
        """Nothing pooled: every request opens and closes its own connection."""


def build(settings: Settings) -> Check:
    return Collector(settings)
