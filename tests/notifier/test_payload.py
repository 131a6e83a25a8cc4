"""The Alertmanager v4 payload model: what Alertmanager sends is accepted, anything else refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from einvoice_notifier.payload import Notification
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tests.notifier.support import alert, iso, notification

label_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True)
texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=50)
moments = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1),
                       timezones=st.just(UTC))
fingerprints = st.from_regex(r"[0-9a-f]{16}", fullmatch=True)


@st.composite
def alerts(draw: st.DrawFn) -> dict:
    status = draw(st.sampled_from(["firing", "resolved"]))
    starts = draw(moments)
    return {
        "status": status,
        "labels": draw(st.dictionaries(label_names, texts, max_size=6)),
        "annotations": draw(st.dictionaries(label_names, texts, max_size=3)),
        "startsAt": iso(starts),
        "endsAt": iso(draw(moments)) if status == "resolved" else "0001-01-01T00:00:00Z",
        "generatorURL": draw(texts),
        "fingerprint": draw(fingerprints),
    }


@settings(max_examples=150, deadline=None)
@given(st.lists(alerts(), max_size=5), texts)
def test_any_well_formed_notification_round_trips(items: list[dict], group_key: str) -> None:
    raw = notification(*items, status="firing") | {"groupKey": group_key}
    parsed = Notification.model_validate(json.loads(json.dumps(raw)))
    assert len(parsed.alerts) == len(items)
    for model, source in zip(parsed.alerts, items, strict=True):
        assert model.fingerprint == source["fingerprint"]
        assert model.labels == source["labels"]
        assert iso(model.starts_utc()) == source["startsAt"]
        if source["status"] == "firing":
            assert model.ends_utc() is None


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(max_size=10), st.none() | st.integers() | st.text(max_size=10), max_size=8))
def test_arbitrary_objects_are_refused_with_a_validation_error(raw: dict) -> None:
    """Never another exception type: the webhook maps ValidationError to 422."""
    with pytest.raises(ValidationError):
        Notification.model_validate(raw)


@settings(max_examples=100, deadline=None)
@given(alerts(), st.sampled_from(["version", "groupKey", "status", "receiver", "alerts"]))
def test_each_required_field_is_required(item: dict, missing: str) -> None:
    raw = notification(item)
    del raw[missing]
    with pytest.raises(ValidationError) as info:
        Notification.model_validate(raw)
    assert missing in str(info.value)


@pytest.mark.parametrize("version", ["3", "5", 4, "", None])
def test_only_version_4(version: object) -> None:
    raw = notification(alert("a1", datetime(2026, 1, 1, tzinfo=UTC))) | {"version": version}
    with pytest.raises(ValidationError, match="version"):
        Notification.model_validate(raw)


def test_unknown_keys_from_a_newer_alertmanager_are_ignored() -> None:
    raw = notification(alert("a1", datetime(2026, 1, 1, tzinfo=UTC)))
    raw["somethingNew"] = {"x": 1}
    raw["alerts"][0]["silencedBy"] = []
    assert Notification.model_validate(raw).alerts[0].fingerprint == "a1"


@pytest.mark.parametrize("value", ["\ud800", "a\udfffb"])
def test_lone_surrogates_are_refused(value: str) -> None:
    raw = notification(alert("a1", datetime(2026, 1, 1, tzinfo=UTC), summary_label=value))
    with pytest.raises(ValidationError, match=r"(?i)unicode"):
        Notification.model_validate(raw)


@pytest.mark.parametrize("bad", ["not-hex!", "", "g" * 16, "a" * 65])
def test_fingerprint_shape(bad: str) -> None:
    with pytest.raises(ValidationError, match="fingerprint"):
        Notification.model_validate(notification(alert(bad, datetime(2026, 1, 1, tzinfo=UTC))))


def test_nanosecond_timestamps_from_go_are_read() -> None:
    raw = notification(alert("a1", datetime(2026, 1, 1, tzinfo=UTC)))
    raw["alerts"][0]["startsAt"] = "2026-11-27T09:31:45.123456789+08:00"
    starts = Notification.model_validate(raw).alerts[0].starts_utc()
    assert starts == datetime(2026, 11, 27, 1, 31, 45, 123456, tzinfo=UTC)
