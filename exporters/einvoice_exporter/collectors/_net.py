"""Shared plumbing of the network probes (tcp, tls, http): deadlines, name resolution, connecting,
TLS client settings and the TLS metrics, and the mapping of socket errors to bounded reasons.

Standard library only (socket, ssl), so a probe costs little CPU and importing it pulls in nothing.
"""

from __future__ import annotations

import errno
import socket
import ssl
import threading
from dataclasses import dataclass
from typing import Literal

from ..fields import TlsFiles
from ..outcome import MetricSet, Outcome, Reason
from . import CheckError, Deadline

IpProtocol = Literal["auto", "ip4", "ip6"]


# --- targets -----------------------------------------------------------------------------------

def split_host_port(target: str) -> tuple[str, int]:
    """`host:port`, `[v6]:port` or `v6-literal` with port -> (host, port); ValueError with a sentence."""
    text = target.strip()
    if "://" in text:
        raise ValueError("write the target as host:port, without a scheme")
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError("an IPv6 target is written [address]:port")
        port_text = rest[1:]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or not host:
            raise ValueError("the target needs a port, as host:port")
        if ":" in host:
            raise ValueError("an IPv6 target is written [address]:port")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"port {port_text!r} is not a number between 1 and 65535")
    if not host or any(ch.isspace() for ch in host):
        raise ValueError("the host name is empty or contains spaces")
    return host, int(port_text)


def is_ip(host: str) -> bool:
    """An IPv4 or IPv6 literal (inet_pton: a tenth of ipaddress' cost, and this runs per probe)."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except (OSError, ValueError):
            continue
        return True
    return False


# --- resolution and connecting -----------------------------------------------------------------

_FAMILIES = {"ip4": socket.AF_INET, "ip6": socket.AF_INET6}


def getaddrinfo_bounded(host: str, port: int, family: int, timeout: float) -> list[tuple]:
    """getaddrinfo has no timeout of its own: run it in a helper thread and stop waiting at the
    deadline (the thread ends by itself when the C library gives up)."""
    result: list[list[tuple]] = []
    error: list[BaseException] = []
    done = threading.Event()

    def lookup() -> None:
        try:
            result.append(socket.getaddrinfo(host, port, family, socket.SOCK_STREAM))
        except BaseException as exc:  # handed back to the caller
            error.append(exc)
        finally:
            done.set()

    threading.Thread(target=lookup, name=f"resolve-{host}", daemon=True).start()
    if not done.wait(timeout):
        raise CheckError(Reason.TIMEOUT, f"resolving {host} took longer than the timeout")
    if error:
        raise error[0]
    return result[0]


def resolve(host: str, port: int, protocol: IpProtocol, deadline: Deadline) -> tuple[int, tuple]:
    """The address to connect to: (family, sockaddr). IP literals skip the resolver."""
    if is_ip(host):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        if protocol in _FAMILIES and _FAMILIES[protocol] != family:
            raise CheckError(Reason.DNS, f"{host} is not an {protocol} address")
        return family, ((host, port, 0, 0) if family == socket.AF_INET6 else (host, port))
    family = _FAMILIES.get(protocol, socket.AF_UNSPEC)
    try:
        infos = getaddrinfo_bounded(host, port, family, deadline.remaining("resolving"))
    except socket.gaierror as exc:
        raise CheckError(Reason.DNS, f"cannot resolve {host}: {exc.strerror}") from None
    except OSError as exc:
        raise CheckError(Reason.DNS, f"cannot resolve {host}: {exc.strerror or exc}") from None
    if not infos:
        raise CheckError(Reason.DNS, f"{host} has no {protocol} address")
    if protocol == "auto":
        # like blackbox_exporter's default: prefer IPv4 when the name has both
        infos.sort(key=lambda info: 0 if info[0] == socket.AF_INET else 1)
    info = infos[0]
    return info[0], info[4]


def classify_os_error(exc: BaseException, during: str) -> CheckError:
    """Map a socket-level exception to a bounded reason with a one-line English detail."""
    if isinstance(exc, CheckError):
        return exc
    if isinstance(exc, ssl.SSLCertVerificationError):
        return CheckError(Reason.TLS, f"certificate not valid: {exc.verify_message or exc.reason}")
    if isinstance(exc, ssl.SSLError):
        return CheckError(Reason.TLS, f"TLS error during {during}: {exc.reason or exc.__class__.__name__}")
    if isinstance(exc, TimeoutError):
        return CheckError(Reason.TIMEOUT, f"timeout during {during}")
    if isinstance(exc, ConnectionRefusedError):
        return CheckError(Reason.REFUSED, f"connection refused during {during}")
    if isinstance(exc, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
        return CheckError(Reason.RESET, f"connection reset by peer during {during}")
    if isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH,
                                                  errno.EADDRNOTAVAIL, errno.ECONNREFUSED):
        return CheckError(Reason.REFUSED, f"{exc.strerror} during {during}")
    if isinstance(exc, OSError) and exc.errno == errno.ETIMEDOUT:
        return CheckError(Reason.TIMEOUT, f"timeout during {during}")
    if isinstance(exc, OSError):
        return CheckError(Reason.ERROR, f"{exc.strerror or exc.__class__.__name__} during {during}")
    return CheckError(Reason.ERROR, f"{exc.__class__.__name__} during {during}")


def connect(family: int, sockaddr: tuple, deadline: Deadline) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(deadline.remaining("connecting"))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.connect(sockaddr)
    except BaseException as exc:
        sock.close()
        raise classify_os_error(exc, "connect") from None
    return sock


# --- TLS ---------------------------------------------------------------------------------------

TlsVersion = Literal["TLS10", "TLS11", "TLS12", "TLS13"]
_TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3,
}
# the label values blackbox_exporter gives probe_tls_version_info{version}
_VERSION_LABELS = {"TLSv1": "TLS 1.0", "TLSv1.1": "TLS 1.1", "TLSv1.2": "TLS 1.2", "TLSv1.3": "TLS 1.3"}


class TlsClientSettings(TlsFiles):
    """How a probe speaks TLS, with the keys of Prometheus' `tls_config` (with `insecure_skip_verify`
    the expiry is still measured)."""

    server_name: str | None = None
    """SNI and the name the certificate must carry; defaults to the target's host."""
    min_version: TlsVersion | None = None

    def has_files(self) -> bool:
        return any(path is not None for path in (self.ca_file, self.cert_file, self.key_file))

    def context(self) -> ssl.SSLContext:
        """Built once per collector: loading the CA store costs ~50 ms and ~1 MB, wrapping a socket little."""
        if self.insecure_skip_verify:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # nothing is verified: no CA store to load
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        else:
            ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        if self.ca_file is not None:
            ctx.load_verify_locations(cafile=str(self.ca_file))
        if self.cert_file is not None and self.key_file is not None:
            ctx.load_cert_chain(str(self.cert_file), str(self.key_file))
        if self.min_version is not None:
            ctx.minimum_version = _TLS_VERSIONS[self.min_version]
        return ctx


def tls_handshake(sock: socket.socket, ctx: ssl.SSLContext, server_name: str,
                  deadline: Deadline) -> ssl.SSLSocket:
    """Wrap and handshake; the socket is closed on failure."""
    sni = None if is_ip(server_name) else server_name
    try:
        sock.settimeout(deadline.remaining("TLS handshake"))
        if sni is None and ctx.check_hostname:
            # hostname verification against an IP address (IP SAN); no SNI is sent for IPs
            tls_sock = ctx.wrap_socket(sock, server_hostname=server_name)
        else:
            tls_sock = ctx.wrap_socket(sock, server_hostname=sni)
    except BaseException as exc:
        sock.close()
        raise classify_os_error(exc, "TLS handshake") from None
    return tls_sock


@dataclass(frozen=True, slots=True)
class TlsFacts:
    version: str
    earliest_expiry: float | None
    """Earliest notAfter among the certificates the server presented."""
    last_chain_expiry: float | None
    """Earliest notAfter of the verified chain (None when verification was skipped)."""


def _chain(tls_sock: ssl.SSLSocket, verified: bool) -> list:
    name = "get_verified_chain" if verified else "get_unverified_chain"
    method = getattr(tls_sock, name, None)  # public from Python 3.13
    if method is None:
        method = getattr(getattr(tls_sock, "_sslobj", None), name, None)  # 3.10-3.12
    if method is None:
        return []
    return list(method() or [])


def _not_after(info: dict) -> float | None:
    text = info.get("notAfter")
    return float(ssl.cert_time_to_seconds(text)) if text else None


def tls_facts(tls_sock: ssl.SSLSocket) -> TlsFacts:
    version = _VERSION_LABELS.get(tls_sock.version() or "", tls_sock.version() or "unknown")
    presented = [_not_after(cert.get_info()) for cert in _chain(tls_sock, verified=False)]
    if not presented:
        leaf = tls_sock.getpeercert()
        presented = [_not_after(leaf)] if leaf else []
    expiries = [value for value in presented if value is not None]
    last_chain = None
    if tls_sock.context.verify_mode != ssl.CERT_NONE:
        chain = [_not_after(cert.get_info()) for cert in _chain(tls_sock, verified=True)]
        chain_values = [value for value in chain if value is not None]
        last_chain = min(chain_values) if chain_values else None
    return TlsFacts(version, min(expiries) if expiries else None, last_chain)


def add_tls_metrics(metrics: MetricSet, facts: TlsFacts) -> None:
    if facts.earliest_expiry is not None:
        metrics.gauge("probe_ssl_earliest_cert_expiry",
                      "Returns last SSL chain expiry in unixtime (earliest notAfter presented)",
                      facts.earliest_expiry)
    if facts.last_chain_expiry is not None:
        metrics.gauge("probe_ssl_last_chain_expiry_timestamp_seconds",
                      "Returns last SSL chain expiry in timestamp (earliest notAfter of the verified chain)",
                      facts.last_chain_expiry)
    metrics.gauge("probe_tls_version_info", "Returns the TLS version used or NaN when unknown", 1,
                  {"version": facts.version})


# --- common metrics ----------------------------------------------------------------------------

def add_ip_protocol(metrics: MetricSet, family: int) -> None:
    metrics.gauge("probe_ip_protocol", "Specifies whether probe ip protocol is IP4 or IP6",
                  6 if family == socket.AF_INET6 else 4)


def finish(outcome: Outcome, deadline: Deadline) -> Outcome:
    """probe_success and probe_duration_seconds, the two series every probe ends with."""
    outcome.metrics.gauge("probe_duration_seconds", "Returns how long the probe took to complete in seconds",
                          deadline.elapsed())
    outcome.metrics.gauge("probe_success", "Displays whether or not the probe was a success",
                          1 if outcome.success else 0)
    return outcome
