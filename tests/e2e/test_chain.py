"""The whole chain on this machine, as `make demo` runs it: exporter -> Prometheus (real, with the
generated rules) -> Alertmanager (real, with the shipped routing) -> notifier -> ticket and message;
then the target recovers and the ticket reaches 已解决.

Intervals are shortened through configuration only (tests.support.stack): 1 s scrapes, rule groups
every 2 s with `for: 2s`, Alertmanager group_wait 1 s. The demo target is the Spring Boot-style
health endpoint the stack serves (check `demo-intake-health`, item 10, service 处理服务).
"""

from __future__ import annotations

import json
import secrets
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from einvoice_stack.stack import Stack
from tests.support.procs import wait_until
from tests.support.stack import fast_stack_config

pytestmark = pytest.mark.xdist_group("e2e")


class Chain:
    def __init__(self, stack: Stack, api_token: str) -> None:
        self.stack = stack
        self.api_token = api_token
        cfg = stack.config
        self.prometheus = cfg.url(cfg.prometheus_port)
        self.alertmanager = cfg.url(cfg.alertmanager_port)
        self.notifier = cfg.url(cfg.notifier_port)
        self.messages = cfg.run_dir / "notifier" / "messages.log"

    def get(self, url: str, token: bool = False) -> Any:
        headers = {"Authorization": f"Bearer {self.api_token}"} if token else {}
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as resp:
            return json.loads(resp.read())

    def firing(self, alertname: str, **labels: str) -> list[dict[str, Any]]:
        selector = ",".join([f'alertname="{alertname}"', 'alertstate="firing"',
                             *(f'{key}="{value}"' for key, value in labels.items())])
        query = urllib.parse.urlencode({"query": f"ALERTS{{{selector}}}"})
        return list(self.get(f"{self.prometheus}/api/v1/query?{query}")["data"]["result"])

    def alertmanager_alerts(self, alertname: str) -> list[dict[str, Any]]:
        query = urllib.parse.urlencode({"filter": f'alertname="{alertname}"', "active": "true",
                                        "silenced": "false", "inhibited": "true"})
        return list(self.get(f"{self.alertmanager}/api/v2/alerts?{query}"))

    def tickets(self) -> list[dict[str, Any]]:
        return list(self.get(f"{self.notifier}/api/v1/tickets", token=True))

    def processing_outage_tickets(self) -> list[dict[str, Any]]:
        return [ticket for ticket in self.tickets()
                if ticket["alertname"] == "EinvoiceServiceOutage"
                and ticket["labels"].get("service") == "processing"]

    def message_log(self) -> str:
        return self.messages.read_text(encoding="utf-8") if self.messages.exists() else ""


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    tmp: Path = tmp_path_factory.mktemp("e2e")
    token = secrets.token_urlsafe(24)
    config = fast_stack_config(tmp, notifier_overrides={
        "api_tokens": [{"name": "e2e-test", "token": token, "role": "operator"}],
        "scheduler_interval": "1s"})
    stack = Stack(config)
    try:
        stack.start(demo_schedule=[(False, 3600.0)])  # the demo target starts down and stays down
        yield Chain(stack, token)
    finally:
        stack.stop()


def test_outage_opens_a_ticket_and_a_message_then_resolves(chain: Chain) -> None:
    # The exporter sees the target down, with its reason, and Prometheus scraped it.
    wait_until(lambda: bool(chain.firing("EinvoiceServiceOutage", service="processing")), timeout=90,
               interval=0.5, what="EinvoiceServiceOutage{service=processing} firing in Prometheus")
    query = urllib.parse.urlencode({"query": 'einvoice_check_up{check="demo-intake-health"}'})
    samples = chain.get(f"{chain.prometheus}/api/v1/query?{query}")["data"]["result"]
    assert [sample["value"][1] for sample in samples] == ["0"]
    assert samples[0]["metric"]["item"] == "10"

    # Alertmanager received it from Prometheus, routed by the shipped config.
    wait_until(lambda: bool(chain.alertmanager_alerts("EinvoiceServiceOutage")), timeout=30,
               what="the outage alert in Alertmanager")

    # The notifier opened exactly one ticket for it, of class outage, and wrote its message.
    wait_until(lambda: bool(chain.processing_outage_tickets()), timeout=60, interval=0.5,
               what="a ticket for the processing outage")
    [ticket] = chain.processing_outage_tickets()
    assert ticket["state"] == "open"
    assert ticket["severity_class"] == "outage"
    assert ticket["summary"]  # the Chinese summary from the rule's annotations
    link = f"/console/link/{ticket['id']}"
    wait_until(lambda: link in chain.message_log(), timeout=30, what="the ticket's message in the log")
    assert "处理服务" in chain.message_log()

    # The target comes back: the alert resolves and the same ticket reaches 已解决.
    chain.stack.demo_target.set_up(True)  # type: ignore[union-attr]

    def resolved() -> bool:
        tickets = chain.processing_outage_tickets()
        return bool(tickets) and all(t["state"] == "resolved" for t in tickets)

    wait_until(resolved, timeout=120, interval=0.5, what="the outage ticket resolved")
    [after] = chain.processing_outage_tickets()
    assert after["id"] == ticket["id"]
    assert after["state_zh"] == "已解决"
    assert after["resolved_at"] is not None

    # Redelivery (Alertmanager re-sends the resolved group) created no second ticket or message.
    opened = chain.message_log().count(link)
    assert opened >= 2, "expected the firing and the resolved message, each with the ticket link"
    fingerprints = [t["fingerprint"] for t in chain.tickets() if t["alertname"] == "EinvoiceServiceOutage"]
    assert len(fingerprints) == len(set(fingerprints))
