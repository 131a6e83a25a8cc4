"""Signed, expiring links from a WeChat message to one ticket's page.

A group robot cannot receive a button press, so the message carries a link instead. The link names
the ticket, what it allows (`view`: open the page and acknowledge the ticket) and when it expires,
signed with HMAC-SHA256 over exactly those three values. Anyone holding the link can do only that,
only for that ticket, only until it expires; the console records link actions as such in the audit.

Shape: {base_url}/console/link/{ticket_id}?action=view&exp=1764220800&sig=<64 hex>
(hex, so the redactor never mistakes a piece of the signature for taxpayer data).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlencode, urlsplit

LINK_PATH = "/console/link/"
ACTIONS = frozenset({"view"})


class LinkError(ValueError):
    """The link is not valid; `reason` is a short English word for logs (never the signature)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class TicketLink:
    ticket_id: int
    action: str
    expires_at: datetime


def _signature(ticket_id: int, action: str, expires: int, secret: bytes) -> str:
    payload = f"einvoice-ticket-link\n{ticket_id}\n{action}\n{expires}".encode()
    return hmac.new(secret, payload, hashlib.sha256).hexdigest()


def sign_ticket_link(base_url: str, ticket_id: int, secret: bytes, expires_at: datetime,
                     action: str = "view") -> str:
    """The URL the message carries; `base_url` is the notifier as people reach it (no /console)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown link action {action!r}")
    if not secret:
        raise ValueError("the link secret is empty")
    expires = int(expires_at.timestamp())
    query = urlencode({"action": action, "exp": expires,
                       "sig": _signature(ticket_id, action, expires, secret)})
    return f"{base_url.rstrip('/')}{LINK_PATH}{int(ticket_id)}?{query}"


def verify_link_parts(ticket_id: int, action: str, expires: str | int, signature: str, secret: bytes,
                      now: datetime | None = None) -> TicketLink:
    """Check the parts of a link as the console receives them; raise LinkError when not valid."""
    if action not in ACTIONS:
        raise LinkError("action")
    try:
        expires_ts = int(expires)
    except (TypeError, ValueError):
        raise LinkError("malformed") from None
    expected = _signature(ticket_id, action, expires_ts, secret)
    if not hmac.compare_digest(expected.encode(), str(signature).encode()):
        raise LinkError("signature")
    expires_at = datetime.fromtimestamp(expires_ts, UTC)
    if (now or datetime.now(UTC)) >= expires_at:
        raise LinkError("expired")
    return TicketLink(ticket_id, action, expires_at)


def verify_ticket_link(url: str, secret: bytes, now: datetime | None = None) -> TicketLink:
    """Verify a whole link (as signed by sign_ticket_link); raise LinkError when not valid."""
    parts = urlsplit(url)
    if LINK_PATH not in parts.path:
        raise LinkError("malformed")
    tail = parts.path.rsplit(LINK_PATH, 1)[1]
    if not tail.isdigit():
        raise LinkError("malformed")
    query = parse_qs(parts.query)

    def one(key: str) -> str:
        values = query.get(key, [])
        if len(values) != 1:
            raise LinkError("malformed")
        return values[0]

    return verify_link_parts(int(tail), one("action"), one("exp"), one("sig"), secret, now)
