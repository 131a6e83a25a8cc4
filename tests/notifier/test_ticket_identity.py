"""What an alert's labels say about its ticket: the class (from the label the rules set), the
problem's stable identity (recurrence and outage follow-ups match on it), the SLA follow-up it
reports, and when the problem began."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from einvoice_notifier.payload import Alert, problem_key_of, sla_event_of, ticket_class_of

from einvoice_core.contract import TICKET_CLASS_LABEL, SlaEvent, TicketClass
from tests.notifier.support import alert


@pytest.mark.parametrize(("labels", "expected"), [
    ({TICKET_CLASS_LABEL: "stall", "severity": "critical"}, TicketClass.STALL),
    ({TICKET_CLASS_LABEL: "outage", "severity": "warning"}, TicketClass.OUTAGE),
    ({TICKET_CLASS_LABEL: "routine"}, TicketClass.ROUTINE),
    ({"alertname": "EinvoiceServiceOutageRestoreDeadline", "severity": "critical"}, TicketClass.URGENT),
    ({"severity": "warning"}, TicketClass.GENERAL),
    ({"severity": "info", TICKET_CLASS_LABEL: "宕机"}, TicketClass.GENERAL),
    ({}, TicketClass.GENERAL),
])
def test_ticket_class(labels: dict[str, str], expected: TicketClass) -> None:
    assert ticket_class_of(labels) is expected


@pytest.mark.parametrize(("labels", "expected"), [
    # service-level: the service, whatever the alert is called
    ({"alertname": "EinvoiceServiceOutage", "service": "intake"}, "service=intake"),
    ({"alertname": "EinvoiceServiceOutageLimitExceeded", "service": "intake", "sla_event": "limit_exceeded"},
     "service=intake"),
    ({"alertname": "EinvoiceServiceOutage", "service": "processing"}, "service=processing"),
    # item-level: item (normalised) + check + target, whatever the alert is called
    ({"alertname": "EinvoiceCheckFailing", "item": "5", "check": "intake_http", "target": "http://a/"},
     "item=05|check=intake_http|target=http://a/"),
    ({"alertname": "EinvoiceProbeSlow", "item": "05", "check": "intake_http", "target": "http://a/"},
     "item=05|check=intake_http|target=http://a/"),
    ({"alertname": "EinvoiceRedisMemoryHigh", "item": "11", "instance": "10.1.0.11:7000"},
     "item=11|target=10.1.0.11:7000"),
    # neither item nor check: the alertname keeps unrelated alerts apart
    ({"alertname": "EinvoiceExporterDown", "instance": "exporter:9877"},
     "alertname=EinvoiceExporterDown|target=exporter:9877"),
    ({"alertname": "EinvoiceCheckFailing", "item": "x9", "check": "c"}, "item=x9|check=c"),
])
def test_problem_key(labels: dict[str, str], expected: str) -> None:
    assert problem_key_of(labels) == expected


def test_problem_key_is_bounded() -> None:
    assert len(problem_key_of({"item": "05", "check": "c", "target": "t" * 5000})) == 512


def test_sla_event() -> None:
    assert sla_event_of({"sla_event": "restore_breached"}) is SlaEvent.RESTORE_BREACHED
    assert sla_event_of({"sla_event": "bogus"}) is None
    assert sla_event_of({}) is None


def test_began_from_the_started_at_annotation() -> None:
    starts = datetime(2026, 11, 27, 2, 5, tzinfo=UTC)

    def began(annotation: str) -> datetime:
        raw = alert("ab01", starts)
        raw["annotations"]["started_at"] = annotation
        return Alert.model_validate(raw).began_utc()

    assert began(str((starts - timedelta(minutes=5)).timestamp())) == starts - timedelta(minutes=5)
    fraction = starts - timedelta(seconds=299.5)
    assert began(f"{fraction.timestamp():.1f}") == fraction
    for ignored in ("", "soon", "nan", "1e300", str((starts + timedelta(seconds=1)).timestamp()),
                    str((starts - timedelta(days=2)).timestamp())):
        assert began(ignored) == starts, ignored
