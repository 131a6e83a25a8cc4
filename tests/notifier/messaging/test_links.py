"""Signed ticket links: round trip, expiry, tampering, wrong secret."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from einvoice_notifier.messaging.links import LinkError, sign_ticket_link, verify_ticket_link
from einvoice_notifier.messaging.redact import redact

SECRET = b"0123456789abcdef0123456789abcdef"
NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def link(ticket_id=42, expires=NOW + timedelta(hours=24), secret=SECRET):
    return sign_ticket_link("https://notifier.example:9878/", ticket_id, secret, expires)


def test_round_trip():
    url = link()
    assert url.startswith("https://notifier.example:9878/console/link/42?")
    claims = verify_ticket_link(url, SECRET, now=NOW)
    assert claims.ticket_id == 42 and claims.action == "view"
    assert claims.expires_at == NOW + timedelta(hours=24)


def test_expired():
    url = link(expires=NOW + timedelta(minutes=5))
    verify_ticket_link(url, SECRET, now=NOW + timedelta(minutes=4))
    with pytest.raises(LinkError, match="expired"):
        verify_ticket_link(url, SECRET, now=NOW + timedelta(minutes=5))


@pytest.mark.parametrize(("old", "new"), [("/link/42?", "/link/43?"), ("action=view", "action=ack"),
                                          ("exp=", "exp=9")])
def test_tampering_is_refused(old, new):
    with pytest.raises(LinkError):
        verify_ticket_link(link().replace(old, new), SECRET, now=NOW)


def test_flipped_signature_and_wrong_secret():
    url = link()
    last = url[-1]
    with pytest.raises(LinkError, match="signature"):
        verify_ticket_link(url[:-1] + ("0" if last != "0" else "1"), SECRET, now=NOW)
    with pytest.raises(LinkError, match="signature"):
        verify_ticket_link(url, b"another secret", now=NOW)
    with pytest.raises(LinkError, match="malformed"):
        verify_ticket_link(url.split("&sig=")[0], SECRET, now=NOW)


def test_links_survive_redaction():
    for ticket_id in (1, 13800138000, 450102198506122311):
        url = link(ticket_id=ticket_id)
        assert urlsplit(url).path.endswith(str(ticket_id))
        text = f"[查看]({url})"
        if ticket_id < 10**9:
            assert redact(text) == text
