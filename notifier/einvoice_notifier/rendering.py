"""The outbox's only door to the messaging package: rendering (with redaction) and signed links.

Kept as one small module so the ticket code depends on two functions, not on the messaging
package's layout; `template_dir` is the operator's override of the message templates.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from .messaging.base import Message
from .messaging.links import sign_ticket_link
from .messaging.render import render_ticket_messages

EVENTS = ("firing", "resolved", "escalation")


def render_messages(ticket: object, event: str, ticket_url: str, max_bytes: int,
                    mentions: tuple[str, ...], template_dir: Path | None = None) -> list[Message]:
    """Rendered, redacted message parts for one ticket event on one channel."""
    if event not in EVENTS:
        raise ValueError(f"unknown ticket event {event!r}")
    return list(render_ticket_messages(ticket, event, ticket_url, max_bytes, mentions,
                                       template_dir=template_dir))


def ticket_link(base_url: str, ticket_id: int, secret: bytes, expires_at: datetime) -> str:
    return sign_ticket_link(base_url, ticket_id, secret, expires_at)
