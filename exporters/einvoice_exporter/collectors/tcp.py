"""Collector of kind `tcp`: connect to host:port, optionally speak TLS, optionally run a short
send/expect dialogue (blackbox_exporter's `query_response`), for load-balancer VIPs and services
that are not HTTP.

    probe_success 1
    probe_duration_seconds 0.0012
    probe_ip_protocol 4
    probe_failed_due_to_regex 0
    probe_ssl_earliest_cert_expiry 1.79e+09        (with tls: true)
    probe_tls_version_info{version="TLS 1.3"} 1     (with tls: true)
"""

from __future__ import annotations

import re
import socket
import ssl

from pydantic import Field, field_validator

from ..fields import StrictModel
from ..outcome import Check, Outcome, Reason
from . import CheckError, Deadline
from ._net import (
    IpProtocol,
    TlsClientSettings,
    add_ip_protocol,
    add_tls_metrics,
    classify_os_error,
    connect,
    finish,
    resolve,
    split_host_port,
    tls_facts,
    tls_handshake,
)

_READ_CHUNK = 4096
_MAX_BUFFER = 64 * 1024


class QueryResponse(StrictModel):
    """One step of the dialogue: wait for a line matching `expect`, then `send` a line, then
    optionally upgrade to TLS (`starttls`)."""

    expect: str | None = None
    """Regular expression searched in each received line (line endings stripped)."""
    send: str | None = None
    """Text sent followed by a newline, as blackbox_exporter does."""
    starttls: bool = False

    @field_validator("expect")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"expect is not a valid regular expression: {exc}") from None
        return value


class Settings(StrictModel):
    """Settings of a `tcp` module."""

    ip_protocol: IpProtocol = "auto"
    tls: bool = False
    """Speak TLS right after connecting (certificate metrics included)."""
    tls_config: TlsClientSettings = Field(default_factory=TlsClientSettings)
    query_response: list[QueryResponse] = Field(default_factory=list)


def validate_target(target: str) -> str:
    split_host_port(target)
    return target


class _LineReader:
    """Reads lines from a socket against the run's deadline."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""
        self.received_any = False

    def expect(self, pattern: re.Pattern[str], deadline: Deadline) -> None:
        while True:
            while b"\n" in self.buffer:
                line, _, self.buffer = self.buffer.partition(b"\n")
                if pattern.search(line.rstrip(b"\r").decode("utf-8", "replace")):
                    return
            try:
                self.sock.settimeout(deadline.remaining("reading the expected answer"))
                chunk = self.sock.recv(_READ_CHUNK)
            except CheckError as exc:
                raise self._unmatched(pattern, exc) from None
            except TimeoutError:
                raise self._unmatched(pattern, CheckError(Reason.TIMEOUT, "no answer in time")) from None
            if not chunk:
                if self.buffer and pattern.search(self.buffer.rstrip(b"\r").decode("utf-8", "replace")):
                    self.buffer = b""
                    return
                raise self._unmatched(pattern, CheckError(
                    Reason.RESET, "connection closed by the peer before the expected answer"))
            self.received_any = True
            self.buffer += chunk
            if len(self.buffer) > _MAX_BUFFER:
                raise CheckError(Reason.BAD_CONTENT, f"no line matching {pattern.pattern!r} "
                                                     f"in the first {_MAX_BUFFER} bytes")

    def _unmatched(self, pattern: re.Pattern[str], cause: CheckError) -> CheckError:
        if self.received_any:
            return CheckError(Reason.BAD_CONTENT, f"answer did not match {pattern.pattern!r}")
        return cause


class Collector:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.steps = [(step, re.compile(step.expect) if step.expect is not None else None)
                      for step in settings.query_response]
        needs_tls = settings.tls or any(step.starttls for step in settings.query_response)
        self.context: ssl.SSLContext | None = settings.tls_config.context() if needs_tls else None

    def run(self, target: str, timeout: float) -> Outcome:
        deadline = Deadline(timeout)
        outcome = Outcome()
        metrics = outcome.metrics
        sock: socket.socket | None = None
        regex_failed = False
        try:
            host, port = split_host_port(target)
            family, sockaddr = resolve(host, port, self.settings.ip_protocol, deadline)
            add_ip_protocol(metrics, family)
            sock = connect(family, sockaddr, deadline)
            server_name = self.settings.tls_config.server_name or host
            if self.settings.tls and self.context is not None:
                sock = tls_handshake(sock, self.context, server_name, deadline)
                add_tls_metrics(metrics, tls_facts(sock))
            reader = _LineReader(sock)
            for step, pattern in self.steps:
                if pattern is not None:
                    try:
                        reader.expect(pattern, deadline)
                    except CheckError as exc:
                        regex_failed = exc.reason == Reason.BAD_CONTENT
                        raise
                if step.send is not None:
                    sock.settimeout(deadline.remaining("sending"))
                    sock.sendall(step.send.encode("utf-8") + b"\n")
                if step.starttls and self.context is not None and not isinstance(sock, ssl.SSLSocket):
                    sock = tls_handshake(sock, self.context, server_name, deadline)
                    reader = _LineReader(sock)
                    add_tls_metrics(metrics, tls_facts(sock))
        except ValueError as exc:
            outcome.fail(Reason.ERROR, f"target {target!r}: {exc}")
        except CheckError as exc:
            outcome.fail(exc.reason, exc.detail)
        except OSError as exc:
            error = classify_os_error(exc, deadline.doing())
            outcome.fail(error.reason, error.detail)
        finally:
            if sock is not None:
                sock.close()
        if self.steps:
            metrics.gauge("probe_failed_due_to_regex", "Indicates if probe failed due to regex",
                          1 if regex_failed else 0)
        return finish(outcome, deadline)

    def close(self) -> None:
        """Nothing pooled: every run opens and closes its own connection."""


def build(settings: Settings) -> Check:
    return Collector(settings)
