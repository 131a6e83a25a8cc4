"""The Alertmanager webhook payload, version 4, as a model (never an untyped dict).

Reference: https://prometheus.io/docs/alerting/latest/configuration/#webhook_config (the JSON
shown there). Unknown keys are ignored rather than refused: the payload belongs to Alertmanager,
which may add fields in a later release, and refusing them would lose alerts. Everything we read is
required and typed; `version` must be "4".
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

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
