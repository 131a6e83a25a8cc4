"""The Alertmanager webhook payload, version 4, as a model (never an untyped dict).

Reference: https://prometheus.io/docs/alerting/latest/configuration/#webhook_config (the JSON
shown there). Unknown keys are ignored rather than refused: the payload belongs to Alertmanager,
which may add fields in a later release, and refusing them would lose alerts. Everything we read is
required and typed; `version` must be "4".
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from einvoice_core.catalogue import normalize_item_id
from einvoice_core.contract import (
    ANNOTATION_STARTED_AT,
    SERVICE_LABEL,
    SLA_EVENT_LABEL,
    TICKET_CLASS_LABEL,
    SlaEvent,
    TicketClass,
)

_MAX_TEXT = 64 * 1024


def _encodable(value: str) -> str:
    """Refuse strings that cannot be stored as UTF-8 (lone surrogates from `\\ud800` escapes)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text is not valid Unicode (lone surrogate)") from None
    return value


Text = Annotated[str, StringConstraints(max_length=_MAX_TEXT), AfterValidator(_encodable)]
LabelName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class Alert(_Payload):
    status: Literal["firing", "resolved"]
    labels: dict[LabelName, Text]
    annotations: dict[LabelName, Text] = Field(default_factory=dict)
    starts_at: datetime = Field(alias="startsAt")
    ends_at: datetime | None = Field(default=None, alias="endsAt")
    generator_url: Text = Field(default="", alias="generatorURL")
    fingerprint: Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{1,64}$")]

    def starts_utc(self) -> datetime:
        return _utc(self.starts_at)

    def began_utc(self) -> datetime:
        """When the problem began: the `started_at` annotation of a service-level alert (earlier
        than startsAt by the rule's `for:`), else startsAt. An annotation that is not a Unix time,
        lies after startsAt or more than a day before it is ignored."""
        starts = self.starts_utc()
        raw = self.annotations.get(ANNOTATION_STARTED_AT, "").strip()
        try:
            began = datetime.fromtimestamp(float(raw), UTC)
        except (ValueError, OverflowError, OSError):
            return starts
        return began if starts - timedelta(days=1) <= began <= starts else starts

    def ends_utc(self) -> datetime | None:
        """None for Alertmanager's "0001-01-01T00:00:00Z" (no end yet)."""
        if self.ends_at is None or self.ends_at.year < 1971:
            return None
        return _utc(self.ends_at)


class Notification(_Payload):
    version: Literal["4"]
    group_key: Text = Field(alias="groupKey")
    truncated_alerts: Annotated[int, Field(ge=0)] = Field(default=0, alias="truncatedAlerts")
    status: Literal["firing", "resolved"]
    receiver: Text
    group_labels: dict[LabelName, Text] = Field(default_factory=dict, alias="groupLabels")
    common_labels: dict[LabelName, Text] = Field(default_factory=dict, alias="commonLabels")
    common_annotations: dict[LabelName, Text] = Field(default_factory=dict, alias="commonAnnotations")
    external_url: Text = Field(default="", alias="externalURL")
    alerts: Annotated[list[Alert], Field(max_length=10000)]


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def ticket_class_of(labels: Mapping[str, str]) -> TicketClass:
    """The ticket class the rules set in the `severity_class` label. An alert without it (or with
    an unknown value) is classed by its severity: critical → urgent, anything else → general."""
    try:
        return TicketClass(labels.get(TICKET_CLASS_LABEL, ""))
    except ValueError:
        return TicketClass.URGENT if labels.get("severity") == "critical" else TicketClass.GENERAL


def sla_event_of(labels: Mapping[str, str]) -> SlaEvent | None:
    """The SLA follow-up an alert reports (`sla_event` label), None for an ordinary alert."""
    try:
        return SlaEvent(labels.get(SLA_EVENT_LABEL, ""))
    except ValueError:
        return None


def problem_key_of(labels: Mapping[str, str]) -> str:
    """The problem's stable identity, which recurrence (一次性解决率) and outage follow-ups match on.

    A service-level alert (a `service` label, no `item`) is about the service: `service=intake`,
    whatever the alert is called. Any other alert is about item + check + target, as far as its
    labels give them (`instance` stands in for a missing target); an alert with neither item nor
    check keeps its alertname in the key, so unrelated unlabelled alerts are not one problem.
    """
    service = labels.get(SERVICE_LABEL, "")
    if service and not labels.get("item"):
        return f"service={service}"[:512]
    parts = []
    if labels.get("item"):
        try:
            parts.append(f"item={normalize_item_id(labels['item'])}")
        except ValueError:
            parts.append(f"item={labels['item']}")
    if labels.get("check"):
        parts.append(f"check={labels['check']}")
    if not parts:
        parts.append(f"alertname={labels.get('alertname', '')}")
    target = labels.get("target") or labels.get("instance") or ""
    if target:
        parts.append(f"target={target}")
    return "|".join(parts)[:512]
