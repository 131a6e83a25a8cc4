"""The outbox's only door to the messaging package: rendering (with redaction) and signed links.

Kept as one small module so the ticket code depends on two functions, not on the messaging
package's layout; `template_dir` is the operator's override of the message templates.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

import jinja2

from .messaging.base import Message
from .messaging.links import sign_ticket_link
from .messaging.render import render_ticket_messages

EVENTS = ("firing", "resolved", "escalation")

log = logging.getLogger(__name__)


def render_messages(ticket: object, event: str, ticket_url: str, max_bytes: int,
                    mentions: tuple[str, ...], template_dir: Path | None = None) -> list[Message]:
    """Rendered, redacted message parts for one ticket event on one channel."""
    if event not in EVENTS:
        raise ValueError(f"unknown ticket event {event!r}")
    try:
        return list(render_ticket_messages(ticket, event, ticket_url, max_bytes, mentions,
                                           template_dir=template_dir))
    except jinja2.TemplateError as exc:
        if template_dir is None:
            raise
        # An operator's override that breaks on this one alert must not cost the ticket (the
        # webhook would answer 5xx forever): log it and send the built-in card instead.
        log.error("operator template in %s failed for ticket %s (%s): %s; using the built-in one",
                  template_dir, getattr(ticket, "id", "?"), event, exc)
        return list(render_ticket_messages(ticket, event, ticket_url, max_bytes, mentions))


def ticket_link(base_url: str, ticket_id: int, secret: bytes, expires_at: datetime) -> str:
    return sign_ticket_link(base_url, ticket_id, secret, expires_at)
