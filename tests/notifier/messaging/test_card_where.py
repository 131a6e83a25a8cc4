"""The card says where and for how long: a service outage names its failing member checks (item,
check, target, reason) from the rule's `failing_checks` annotation and counts its duration from the
outage's `started_at`, not from the alert's startsAt; the recovery card asks nothing more of anyone;
an alert about an item has no target (its `instance` is only the exporter that reported it).

The alerts are shaped as the service-level rules send them (labels and annotations named in
einvoice_core.contract), once through the renderer and once through the real ticket store, so the
annotations are shown to reach the card on the way the webhook takes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from einvoice_notifier import db
from einvoice_notifier.app import Notifier
from einvoice_notifier.messaging.render import render_ticket_messages
from einvoice_notifier.payload import Notification
from einvoice_notifier.settings import parse_settings
from sqlalchemy import select

from einvoice_core.catalogue import get_item
from einvoice_core.contract import (
    ANNOTATION_FAILING_CHECKS,
    ANNOTATION_STARTED_AT,
    REASON_ZH,
    SERVICE_LABEL,
    TICKET_CLASS_LABEL,
    Reason,
    TicketClass,
)
from tests.notifier.support import FakeClock, RecordingChannel, alert, notification

URL = "https://notifier.example/console/link/9?action=view&exp=1764300000&sig=" + "cd" * 32
OUTAGE_BEGAN = datetime(2026, 11, 27, 2, 0, 0, tzinfo=UTC)  # 10:00:00 in Shanghai
ALERT_FIRED = OUTAGE_BEGAN + timedelta(seconds=30)  # `for: 30s` later
RECOVERED = OUTAGE_BEGAN + timedelta(minutes=4)
TARGET = "http://10.45.1.7:7001/actuator/health"
OTHER_TARGET = "10.45.2.9:6379"


def failing_line(item: str, check: str, target: str, reason: Reason) -> str:
    """One line of the `failing_checks` annotation in the contract's format."""
    return f"第{item}项 {get_item(item).name_zh} · {check} · {target} · {REASON_ZH[reason]}"


FAILING = "\n".join([failing_line("10", "processing-health-1", TARGET, Reason.BAD_STATUS),
                     failing_line("11", "redis-cluster", OTHER_TARGET, Reason.REFUSED)])
OUTAGE_LABELS = {"alertname": "EinvoiceServiceOutage", "severity": "critical",
                 TICKET_CLASS_LABEL: TicketClass.OUTAGE.value, SERVICE_LABEL: "processing"}
OUTAGE_ANNOTATIONS = {
    "summary": "处理服务宕机",
    "description": ("处理服务已宕机：成员检查项 10、11 有检查失败。"
                    "须在 30 分钟 内恢复，单次宕机不得超过 2 小时。"),
    ANNOTATION_FAILING_CHECKS: FAILING,
    ANNOTATION_STARTED_AT: f"{OUTAGE_BEGAN.timestamp():.0f}",
}


@dataclass(frozen=True)
class Ticket:  # what the renderer reads of the core's TicketView
    id: int = 9
    alertname: str = "EinvoiceServiceOutage"
    item: str | None = None
    zone: str | None = None
    target: str | None = None
    severity_class: str = "outage"
    state: str = "open"
    summary: str = OUTAGE_ANNOTATIONS["summary"]
    description: str = OUTAGE_ANNOTATIONS["description"]
    labels: dict[str, str] = field(default_factory=lambda: dict(OUTAGE_LABELS))
    annotations: dict[str, str] = field(default_factory=lambda: dict(OUTAGE_ANNOTATIONS))
    starts_at: datetime = ALERT_FIRED
    ends_at: datetime | None = None
    response_deadline: datetime | None = ALERT_FIRED + timedelta(minutes=30)
    resolution_deadline: datetime | None = ALERT_FIRED + timedelta(minutes=30)
    recurrence_of: int | None = None


def card(ticket: Ticket, event: str = "firing") -> str:
    [message, *_] = render_ticket_messages(ticket, event, URL, 4096)
    return message.content


def test_outage_card_says_where_it_fails() -> None:
    text = card(Ticket())
    for line in FAILING.splitlines():
        assert f"> {line}" in text
    assert get_item("10").name_zh in text and TARGET in text and REASON_ZH[Reason.BAD_STATUS] in text
    assert OTHER_TARGET in text and REASON_ZH[Reason.REFUSED] in text
    assert "开始：2026-11-27 10:00:00" in text  # when the outage began, not 10:00:30 when it alerted
    assert text.endswith(f"[查看并确认工单]({URL})")


def test_recovery_card_counts_the_outage_and_asks_nothing_more() -> None:
    resolved = Ticket(state="resolved", ends_at=RECOVERED)
    text = card(resolved, "resolved")
    assert "【已恢复】" in text and "（已解决）" in text
    assert "持续 4分0秒" in text  # the outage's 4 minutes, not the alert's 3 min 30 s
    assert "须在 30 分钟" not in text and "时限" not in text
    assert "确认" not in text and text.endswith(f"[查看工单]({URL})")
    assert TARGET in text  # which checks had failed stays on the card


def test_without_the_new_annotations_the_card_falls_back_to_the_alert() -> None:
    """Alerts from rules that predate `failing_checks`/`started_at`: the alert's own times and
    description; a per-check alert's labels still say where."""
    bare = Ticket(annotations={}, ends_at=RECOVERED, state="resolved")
    assert "持续 3分30秒" in card(bare, "resolved")
    assert "10.45" not in card(Ticket(annotations={}))
    per_check = Ticket(alertname="EinvoiceCheckFailing", item="10", zone="intranet", severity_class="urgent",
                       annotations={}, labels={"alertname": "EinvoiceCheckFailing", "item": "10",
                                               "check": "processing-health-1", "target": TARGET,
                                               "reason": Reason.TIMEOUT.value, "instance": "exporter:9877"})
    text = card(per_check)
    name, reason = get_item("10").name_zh, REASON_ZH[Reason.TIMEOUT]
    where = f"> 第10项 {name} · processing-health-1 · {TARGET} · {reason}"
    assert where in text
    assert "exporter:9877" not in text


def test_unreadable_started_at_is_ignored_not_fatal() -> None:
    for raw in ("", "soon", "NaN", "-5", "1e30"):
        broken = Ticket(annotations={**OUTAGE_ANNOTATIONS, ANNOTATION_STARTED_AT: raw},
                        ends_at=RECOVERED, state="resolved")
        assert "持续 3分30秒" in card(broken, "resolved"), raw
    scientific = Ticket(annotations={**OUTAGE_ANNOTATIONS, ANNOTATION_STARTED_AT: "1.7957448e+09"},
                        ends_at=RECOVERED, state="resolved")
    assert "持续 4分0秒" in card(scientific, "resolved")  # Prometheus' %g form of the same instant


def test_many_failing_checks_are_capped_and_counted() -> None:
    many = "\n".join(failing_line("12", f"es-node-{i}", f"10.0.0.{i}:9200", Reason.TIMEOUT)
                     for i in range(25))
    text = card(Ticket(annotations={**OUTAGE_ANNOTATIONS, ANNOTATION_FAILING_CHECKS: many}))
    assert "es-node-9 " in text and "es-node-10 " not in text and "另有 15 项" in text


def test_unmonitored_item_has_no_target_but_its_item() -> None:
    labels = {"alertname": "EinvoiceItemUnmonitored", "severity": "warning", "item": "03",
              "name": get_item("03").name_zh, "zone": "extranet", "instance": "127.0.0.1:9877",
              "job": "einvoice-exporter"}
    text = card(Ticket(alertname="EinvoiceItemUnmonitored", item="03", zone="extranet",
                       severity_class="general", target="127.0.0.1:9877", labels=labels,
                       annotations={}, summary="没有任何检查", description=""))
    assert f"第03项 {get_item('03').name_zh}" in text
    assert "127.0.0.1:9877" not in text and "对象" not in text


# -- through the ticket store: the webhook's annotations reach the card ---------------------------

def _notifier(tmp_path: Path, clock: FakeClock) -> tuple[Notifier, RecordingChannel]:
    robot = RecordingChannel("robot")
    settings = parse_settings({"channels": [{"type": "console", "name": "robot", "stdout": False}],
                               "routing": {"first_line": ["robot"], "second_line": ["robot"]}})
    notifier = Notifier(settings, db.make_engine(f"sqlite:///{tmp_path / 'n.db'}"), clock, {"robot": robot},
                        webhook_token="t")
    db.migrate(notifier.engine)
    return notifier, robot


def _cards(notifier: Notifier) -> list[tuple[str, str]]:
    with notifier.engine.connect() as conn:
        rows = conn.execute(select(db.outbox.c.event, db.outbox.c.content)
                            .where(db.outbox.c.format == "markdown").order_by(db.outbox.c.id))
        return [(event, content) for event, content in rows]


def _outage_alert(status: str, ends_at: datetime | None = None) -> dict[str, Any]:
    payload = alert("0a0b0c0d", ALERT_FIRED, status=status, ends_at=ends_at)
    payload["labels"] = dict(OUTAGE_LABELS)
    payload["annotations"] = dict(OUTAGE_ANNOTATIONS)
    return payload


def test_webhook_annotations_reach_the_firing_and_the_recovery_card(tmp_path: Path) -> None:
    clock = FakeClock(ALERT_FIRED + timedelta(seconds=10))
    notifier, _robot = _notifier(tmp_path, clock)
    try:
        service = notifier.service
        service.ingest(Notification.model_validate(notification(_outage_alert("firing"))), "first_line")
        clock.advance(minutes=4)
        service.ingest(Notification.model_validate(notification(_outage_alert("resolved", RECOVERED))),
                       "first_line")
        [(first, firing), (second, resolved)] = _cards(notifier)
        assert (first, second) == ("firing", "resolved")
        assert TARGET in firing and REASON_ZH[Reason.BAD_STATUS] in firing
        assert "开始：2026-11-27 10:00:00" in firing
        assert "持续 4分0秒" in resolved and "须在 30 分钟" not in resolved and "确认" not in resolved
    finally:
        notifier.engine.dispose()


def test_unmonitored_item_ticket_has_no_target(tmp_path: Path) -> None:
    clock = FakeClock(ALERT_FIRED)
    notifier, _robot = _notifier(tmp_path, clock)
    try:
        payload = alert("0e0f0103", ALERT_FIRED, alertname="EinvoiceItemUnmonitored", severity="warning",
                        item="03", zone="extranet", instance="127.0.0.1:9877", job="einvoice-exporter")
        del payload["labels"]["target"]
        notifier.service.ingest(Notification.model_validate(notification(payload)), "first_line")
        [ticket] = notifier.service.list_tickets()
        assert ticket.item == "03" and ticket.target is None
        [(_event, content)] = _cards(notifier)
        assert "127.0.0.1:9877" not in content and f"第03项 {get_item('03').name_zh}" in content
    finally:
        notifier.engine.dispose()
