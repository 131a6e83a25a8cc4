"""The whole chain on this machine, as `make demo` runs it: exporter -> Prometheus (real, with the
generated rules) -> Alertmanager (real, with the shipped routing) -> notifier -> ticket and message;
then the target recovers and the ticket reaches 已解决.

Intervals are shortened through configuration only (tests.support.stack): 1 s scrapes, rule groups
every 2 s with `for: 2s`, Alertmanager group_wait 1 s. The demo target is the Spring Boot-style
health endpoint the stack serves (check `demo-processing-health`, item 10, service 处理服务).

The cards must say where (the failing check, its target and reason) and count the outage's own
duration. Both come from the service-level alert's `failing_checks` and `started_at` annotations
when the rules put them there; with rules that predate them the card falls back to the alert's
description and times, and the test checks that fallback instead (it says which it saw).
"""

from __future__ import annotations

import json
import re
import secrets
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from einvoice_notifier.messaging.render import duration_zh

from einvoice_core.catalogue import get_item
from einvoice_core.contract import ANNOTATION_FAILING_CHECKS, ANNOTATION_STARTED_AT, REASON_ZH, Reason
from einvoice_stack.stack import DEMO_QUIET_ALERTS, Stack
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

    def cards(self, link: str) -> list[str]:
        """The markdown cards written for one ticket (its link), in order."""
        blocks = re.split(r"^=== .* ===$", self.message_log(), flags=re.MULTILINE)
        return [block.strip() for block in blocks if link in block and "](" in block]


def _aware(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


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
    query = urllib.parse.urlencode({"query": 'einvoice_check_up{check="demo-processing-health"}'})
    samples = chain.get(f"{chain.prometheus}/api/v1/query?{query}")["data"]["result"]
    assert [sample["value"][1] for sample in samples] == ["0"]
    assert samples[0]["metric"]["item"] == "10"

    # Alertmanager received it from Prometheus, routed by the shipped config.
    wait_until(lambda: bool(chain.alertmanager_alerts("EinvoiceServiceOutage")), timeout=30,
               what="the outage alert in Alertmanager")
    [outage_alert] = [alert for alert in chain.alertmanager_alerts("EinvoiceServiceOutage")
                      if alert["labels"].get("service") == "processing"]
    annotations: dict[str, str] = outage_alert["annotations"]

    # The notifier opened exactly one ticket for it, of class outage, and wrote its message.
    wait_until(lambda: bool(chain.processing_outage_tickets()), timeout=60, interval=0.5,
               what="a ticket for the processing outage")
    [ticket] = chain.processing_outage_tickets()
    assert ticket["state"] == "open"
    assert ticket["severity_class"] == "outage"
    assert ticket["summary"]  # the Chinese summary from the rule's annotations
    link = f"/console/link/{ticket['id']}"
    wait_until(lambda: bool(chain.cards(link)), timeout=30, what="the ticket's card in the log")
    [firing] = chain.cards(link)
    assert "【告警】" in firing and "处理服务" in firing
    target = f"http://127.0.0.1:{chain.stack.config.demo_target_port}/actuator/health"
    if ANNOTATION_FAILING_CHECKS in annotations:  # the card says where: item, check, target, reason
        assert f"第10项 {get_item('10').name_zh}" in firing
        assert "demo-processing-health" in firing and target in firing
        assert REASON_ZH[Reason.BAD_STATUS] in firing  # the demo target answers 503 while down
    else:  # rules before failing_checks: the description names the failing item
        assert annotations["description"].split("。")[0] in firing

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

    # The recovery card: the outage's duration, nothing left to do in time, nothing to acknowledge.
    wait_until(lambda: len(chain.cards(link)) >= 2, timeout=30, what="the recovery card in the log")
    recovery = chain.cards(link)[1]
    assert "【已恢复】" in recovery and "（已解决）" in recovery
    assert "须在" not in recovery and "时限" not in recovery and "确认" not in recovery
    ends, begun = _aware(after["ends_at"]), _aware(after["starts_at"])
    if ANNOTATION_STARTED_AT in annotations:  # the outage began before its alert fired
        outage_began = datetime.fromtimestamp(float(annotations[ANNOTATION_STARTED_AT]), tz=UTC)
        assert outage_began < begun
        begun = outage_began
    assert f"持续 {duration_zh((ends - begun).total_seconds())}" in recovery

    # Redelivery (Alertmanager re-sends the resolved group) created no second ticket or message.
    opened = chain.message_log().count(link)
    assert opened >= 2, "expected the firing and the resolved message, each with the ticket link"
    fingerprints = [t["fingerprint"] for t in chain.tickets() if t["alertname"] == "EinvoiceServiceOutage"]
    assert len(fingerprints) == len(set(fingerprints))


def test_background_alerts_fire_but_open_no_ticket(chain: Chain) -> None:
    """The demo monitors 11 of the 20 items: the others are rightly unmonitored (the alert fires in
    Prometheus) but the demo routes them, and the budget alerts, to no channel."""
    wait_until(lambda: bool(chain.firing("EinvoiceItemUnmonitored")), timeout=90, interval=0.5,
               what="EinvoiceItemUnmonitored firing in Prometheus")
    wait_until(lambda: bool(chain.alertmanager_alerts("EinvoiceItemUnmonitored")), timeout=30,
               what="EinvoiceItemUnmonitored in Alertmanager")
    # The warning that fails on purpose (closed-port, item 20) is ticketed: by then the webhook has
    # delivered what Alertmanager routed at the same time.
    wait_until(lambda: any(t["item"] == "20" for t in chain.tickets()), timeout=60, interval=0.5,
               what="the ticket of the check that fails on purpose")
    tickets = chain.tickets()
    assert not [t for t in tickets if t["alertname"] in DEMO_QUIET_ALERTS]
    [warning] = [t for t in tickets if t["item"] == "20"]
    assert warning["severity_class"] == "general" and warning["target"] == "127.0.0.1:1"


DATA_ITEMS = ("14", "16", "17", "18", "19")


def test_the_data_checks_read_the_demos_own_database_and_open_no_ticket(chain: Chain) -> None:
    """Items 14 and 16-19 (einvoice_stack/demo_data.py): the sql checks read the MariaDB the demo
    started, through a read-only account (the exporter's write-privilege assertion passed, or the
    check would be down with reason auth), GoldenGate through the ggsci stand-in; healthy values fire
    nothing, even with the tests' 2-second `for:`."""
    selector = 'item=~"' + "|".join(DATA_ITEMS) + '"'

    def query(expr: str) -> list[dict[str, Any]]:
        encoded = urllib.parse.urlencode({"query": expr})
        return list(chain.get(f"{chain.prometheus}/api/v1/query?{encoded}")["data"]["result"])

    def items_up() -> dict[str, str]:
        return {r["metric"]["item"]: r["value"][1] for r in query(f"einvoice:item_up{{{selector}}}")}

    wait_until(lambda: items_up() == dict.fromkeys(DATA_ITEMS, "1"), timeout=90, interval=0.5,
               what="the five data items up by the rules")
    values = {r["metric"]["__name__"]: float(r["value"][1]) for r in query(
        '{__name__=~"einvoice_sql_(push_backlog|sync_backlog)|einvoice_goldengate_up",' + selector + '}')}
    assert values == {"einvoice_sql_push_backlog": 2, "einvoice_sql_sync_backlog": 2,
                      "einvoice_goldengate_up": 1}
    wait_until(lambda: not query(f'ALERTS{{alertstate="firing",{selector}}}'), timeout=60, interval=0.5,
               what="no alert firing for the data items")
    assert not [t for t in chain.tickets() if t["item"] in DATA_ITEMS]

