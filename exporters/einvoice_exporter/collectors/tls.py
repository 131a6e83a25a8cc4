"""Collector of kind `tls`: a TLS handshake with host:port, verifying the chain and the host name,
reporting certificate expiry and the negotiated version (public domains of item 01, VIPs of 02).

    probe_success 1
    probe_ssl_earliest_cert_expiry 1.79e+09
    probe_ssl_last_chain_expiry_timestamp_seconds 1.79e+09
    probe_tls_version_info{version="TLS 1.2"} 1

An expiring certificate is not an outage: the check stays up and the alert rules warn from
`probe_ssl_earliest_cert_expiry` (30 and 7 days). `fail_if_expires_within_days` exists for the rare
target whose owner wants the check itself to turn red (reason `threshold`). When verification
fails, a second handshake without verification still measures the expiry, so the dashboard can show
when an expired certificate ran out.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from typing import Annotated

from pydantic import Field

from ..outcome import Check, Outcome, Reason
from . import CheckError, Deadline
from ._net import (
    IpProtocol,
    TlsClientSettings,
    TlsFacts,
    add_ip_protocol,
    add_tls_metrics,
    connect,
    finish,
    resolve,
    split_host_port,
    tls_facts,
    tls_handshake,
)


class Settings(TlsClientSettings):
    """Settings of a `tls` module: Prometheus' `tls_config` keys plus the options below."""

    ip_protocol: IpProtocol = "auto"
    fail_if_expires_within_days: Annotated[float, Field(gt=0, le=3650)] | None = None
    """Fail (reason threshold) when a presented certificate expires within this many days."""


def validate_target(target: str) -> str:
    split_host_port(target)
    return target


class Collector:
    def __init__(self, settings: Settings, now: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.context = settings.context()
        self.measure_only = TlsClientSettings(
            server_name=settings.server_name, insecure_skip_verify=True).context()
        self.now = now

    def _handshake(self, host: str, port: int, ctx: ssl.SSLContext, deadline: Deadline,
                   outcome: Outcome) -> TlsFacts:
        family, sockaddr = resolve(host, port, self.settings.ip_protocol, deadline)
        if outcome.metrics.value("probe_ip_protocol") is None:
            add_ip_protocol(outcome.metrics, family)
        sock = connect(family, sockaddr, deadline)
        tls_sock = tls_handshake(sock, ctx, self.settings.server_name or host, deadline)
        try:
            return tls_facts(tls_sock)
        finally:
            tls_sock.close()

    def run(self, target: str, timeout: float) -> Outcome:
        deadline = Deadline(timeout)
        outcome = Outcome()
        try:
            host, port = split_host_port(target)
        except ValueError as exc:
            return finish(outcome.fail(Reason.ERROR, f"target {target!r}: {exc}"), deadline)
        try:
            facts = self._handshake(host, port, self.context, deadline, outcome)
        except CheckError as exc:
            outcome.fail(exc.reason, exc.detail)
            if exc.reason == Reason.TLS and not self.settings.insecure_skip_verify:
                self._measure_anyway(host, port, deadline, outcome)
            return finish(outcome, deadline)
        add_tls_metrics(outcome.metrics, facts)
        within = self.settings.fail_if_expires_within_days
        if within is not None and facts.earliest_expiry is not None:
            days_left = (facts.earliest_expiry - self.now()) / 86400
            if days_left < within:
                outcome.fail(Reason.THRESHOLD, f"a certificate expires in {days_left:.1f} days, "
                                               f"within fail_if_expires_within_days {within:g}")
        return finish(outcome, deadline)

    def _measure_anyway(self, host: str, port: int, deadline: Deadline, outcome: Outcome) -> None:
        """The check has failed already; read the certificates without verifying, for the metrics."""
        try:
            facts = self._handshake(host, port, self.measure_only, deadline, outcome)
        except CheckError:
            return
        add_tls_metrics(outcome.metrics, facts)

    def close(self) -> None:
        """Nothing pooled: every run opens and closes its own connection."""


def build(settings: Settings) -> Check:
    return Collector(settings)
