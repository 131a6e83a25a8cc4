"""Collector of kind `dns`: resolve the target name (A, AAAA, CNAME, MX, NS, TXT) through the system
resolver or a given DNS server, optionally checking the answers (public domains of item 01).

    probe_success 1
    probe_duration_seconds 0.0021
    probe_dns_lookup_time_seconds 0.0019
    probe_dns_query_succeeded 1
    probe_dns_answer_rrs 2
    probe_dns_authority_rrs 0     (with a given resolver)
    probe_dns_additional_rrs 0    (with a given resolver)

Without `resolver`, A and AAAA go through the C library (getaddrinfo: /etc/hosts, then DNS), which
is how the platform's own services see names; other types read the servers of /etc/resolv.conf.
With `resolver`, one query goes to that server (UDP, retried over TCP when truncated, or TCP).
dnspython is imported when a collector is built, never when a config is validated.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import time
from typing import Any, Literal

from pydantic import Field, field_validator

from ..fields import StrictModel
from ..outcome import Check, Outcome, Reason
from . import CheckError, Deadline
from ._net import classify_os_error, finish, getaddrinfo_bounded

QueryType = Literal["A", "AAAA", "CNAME", "MX", "NS", "TXT"]
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")


def _normalise(answer: str) -> str:
    return answer.strip().rstrip(".").lower()


class Settings(StrictModel):
    """Settings of a `dns` module."""

    query_type: QueryType = "A"
    resolver: str | None = None
    """A DNS server as ip, ip:port or [ipv6]:port; unset means the system resolver."""
    transport: Literal["udp", "tcp"] = "udp"
    expected_answers: list[str] = Field(default_factory=list)
    """The answers must be exactly this set (order, case and a trailing dot do not matter)."""
    expected_answer_regex: str | None = None
    """Every answer must match (searched in its text: an address, a name, `10 mail.example.`)."""
    allow_empty: bool = False
    """Accept an answer with no records of the type (otherwise reason dns)."""

    @field_validator("resolver")
    @classmethod
    def _resolver(cls, value: str | None) -> str | None:
        if value is not None:
            _resolver_address(value)
        return value

    @field_validator("expected_answer_regex")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value


def _resolver_address(text: str) -> tuple[str, int]:
    """ip, ip:port, [ipv6]:port or a bare ipv6 -> (ip, port); a name is refused (it would need a
    resolver to find the resolver)."""
    host, port = text.strip(), 53
    if host.startswith("["):
        inner, _, rest = host[1:].partition("]")
        host = inner
        if rest:
            if not rest.startswith(":") or not rest[1:].isdigit():
                raise ValueError("write the resolver as ip, ip:port or [ipv6]:port")
            port = int(rest[1:])
    elif host.count(":") == 1:
        host, _, port_text = host.partition(":")
        if not port_text.isdigit():
            raise ValueError("write the resolver as ip, ip:port or [ipv6]:port")
        port = int(port_text)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"resolver {text!r} must be an IP address (with an optional port)") from None
    if not 0 < port < 65536:
        raise ValueError(f"resolver port {port} is not between 1 and 65535")
    return host, port


def _ascii_name(target: str) -> str:
    name = target.strip()
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")  # 税务.中国 -> xn--...
        except UnicodeError:
            raise ValueError(f"{target!r} is not a valid internationalised DNS name") from None
    return name


def validate_target(target: str) -> str:
    name = _ascii_name(target).rstrip(".")
    if not name or len(name) > 253:
        raise ValueError("the target is a DNS name of at most 253 characters")
    if "://" in name or "/" in name or ":" in name:
        raise ValueError("the target is a bare DNS name such as portal.example.gov.cn (no scheme or port)")
    if not all(_LABEL.match(label) for label in name.split(".")):
        raise ValueError(f"{target!r} is not a valid DNS name")
    return target


class Collector:
    def __init__(self, settings: Settings) -> None:
        import dns.rdatatype  # lazily: only a built check needs dnspython

        self.settings = settings
        self.rdtype = dns.rdatatype.from_text(settings.query_type)
        self.expected = {_normalise(a) for a in settings.expected_answers}
        self.pattern = re.compile(settings.expected_answer_regex) if settings.expected_answer_regex else None
        self.server = _resolver_address(settings.resolver) if settings.resolver else None

    def run(self, target: str, timeout: float) -> Outcome:
        deadline = Deadline(timeout)
        outcome = Outcome()
        metrics = outcome.metrics
        name = target.strip()
        started = time.perf_counter()
        try:
            validate_target(name)
            name = _ascii_name(name)
            if self.server is not None:
                answers = self._query_server(name, deadline, outcome)
            elif self.settings.query_type in ("A", "AAAA"):
                answers = self._system_addresses(name, deadline)
            else:
                answers = self._system_resolver(name, deadline)
            if metrics.value("probe_dns_answer_rrs") is None:
                metrics.gauge("probe_dns_answer_rrs", "Returns number of entries in the answer resource "
                              "record list", len(answers))
            self._judge(name, answers)
        except ValueError as exc:
            outcome.fail(Reason.ERROR, f"target {target!r}: {exc}")
        except CheckError as exc:
            outcome.fail(exc.reason, exc.detail)
        metrics.gauge("probe_dns_lookup_time_seconds",
                      "Returns the time taken for probe dns lookup in seconds", time.perf_counter() - started)
        # an answer arrived (even NXDOMAIN or one that fails the expectations)
        answered = metrics.value("probe_dns_answer_rrs") is not None
        metrics.gauge("probe_dns_query_succeeded", "Displays whether or not the query was executed "
                      "successfully", 1 if answered else 0)
        return finish(outcome, deadline)

    def _judge(self, name: str, answers: list[str]) -> None:
        if not answers and not self.settings.allow_empty:
            raise CheckError(Reason.DNS, f"{name} has no {self.settings.query_type} records")
        if self.expected and {_normalise(a) for a in answers} != self.expected:
            raise CheckError(Reason.DNS, f"{name} {self.settings.query_type} answers differ from "
                                         f"expected_answers ({len(answers)} answers)")
        if self.pattern is not None:
            for answer in answers:
                if not self.pattern.search(answer):
                    raise CheckError(Reason.DNS, f"a {self.settings.query_type} answer for {name} does not "
                                                 f"match {self.pattern.pattern!r}")

    # -- the system resolver --------------------------------------------------------------------

    def _system_addresses(self, name: str, deadline: Deadline) -> list[str]:
        family = socket.AF_INET if self.settings.query_type == "A" else socket.AF_INET6
        try:
            infos = getaddrinfo_bounded(name, 0, family, deadline.remaining("resolving"))
        except socket.gaierror as exc:
            if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
                if self.settings.allow_empty:
                    return []
                raise CheckError(Reason.DNS, f"{name} does not resolve ({exc.strerror})") from None
            if exc.errno == socket.EAI_AGAIN:
                raise CheckError(Reason.DNS,
                                 f"{name}: resolver temporarily failed ({exc.strerror})") from None
            raise CheckError(Reason.DNS, f"{name}: {exc.strerror}") from None
        seen: dict[str, None] = {}
        for info in infos:
            seen.setdefault(str(info[4][0]), None)
        return list(seen)

    def _system_resolver(self, name: str, deadline: Deadline) -> list[str]:
        import dns.exception
        import dns.resolver

        try:
            resolver = dns.resolver.Resolver(configure=True)
            answer = resolver.resolve(name, self.rdtype, lifetime=deadline.remaining("resolving"),
                                      raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            raise CheckError(Reason.DNS, f"{name} does not exist (NXDOMAIN)") from None
        except dns.resolver.LifetimeTimeout:
            raise CheckError(Reason.TIMEOUT, f"no DNS answer for {name} in time") from None
        except dns.resolver.NoNameservers:
            raise CheckError(Reason.DNS, f"no name server answered for {name}") from None
        except dns.exception.DNSException as exc:
            raise CheckError(Reason.DNS, f"{name}: {exc.__class__.__name__}") from None
        return [rdata.to_text() for rdata in answer.rrset] if answer.rrset is not None else []

    # -- a given server -------------------------------------------------------------------------

    def _query_server(self, name: str, deadline: Deadline, outcome: Outcome) -> list[str]:
        import dns.exception
        import dns.flags
        import dns.message
        import dns.query
        import dns.rcode

        assert self.server is not None
        host, port = self.server
        query = dns.message.make_query(name, self.rdtype)
        try:
            if self.settings.transport == "tcp":
                response = dns.query.tcp(query, host, timeout=deadline.remaining("the DNS query"), port=port)
            else:
                response = dns.query.udp(query, host, timeout=deadline.remaining("the DNS query"), port=port,
                                         ignore_unexpected=True)
                if response.flags & dns.flags.TC:
                    response = dns.query.tcp(query, host, timeout=deadline.remaining("the TCP retry"),
                                             port=port)
        except dns.exception.Timeout:
            raise CheckError(Reason.TIMEOUT, f"no answer from {self.settings.resolver} in time") from None
        except OSError as exc:
            error = classify_os_error(exc, "the DNS query")
            raise CheckError(error.reason, error.detail) from None
        except dns.exception.DNSException as exc:
            raise CheckError(Reason.DNS, f"bad answer from the resolver: {exc.__class__.__name__}") from None
        metrics = outcome.metrics
        count = _count_rrs
        metrics.gauge("probe_dns_answer_rrs", "Returns number of entries in the answer resource record list",
                      count(response.answer))
        metrics.gauge("probe_dns_authority_rrs", "Returns number of entries in the authority resource "
                      "record list", count(response.authority))
        metrics.gauge("probe_dns_additional_rrs", "Returns number of entries in the additional resource "
                      "record list", count(response.additional))
        rcode = response.rcode()
        if rcode != dns.rcode.NOERROR:
            raise CheckError(Reason.DNS, f"{name}: the resolver answered {dns.rcode.to_text(rcode)}")
        return [rdata.to_text() for rrset in response.answer if rrset.rdtype == self.rdtype
                for rdata in rrset]

    def close(self) -> None:
        """Nothing pooled: every query uses its own socket."""


def _count_rrs(section: list[Any]) -> int:
    return sum(len(rrset) for rrset in section)


def build(settings: Settings) -> Check:
    return Collector(settings)
