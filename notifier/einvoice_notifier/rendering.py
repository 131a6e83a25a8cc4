"""The outbox's only door to the messaging package: rendering and signed links.

The renderer and the link signer belong to the messaging package. They are looked up when called,
so the core works (with a plain built-in rendering) while that package is incomplete, and a test
can tell which one ran.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from pathlib import Path
from typing import Any

from .messaging.base import Message

EVENTS = ("firing", "resolved", "escalation")
_EVENT_ZH = {"firing": "告警", "resolved": "恢复", "escalation": "超时升级"}


def render_messages(ticket: Any, event: str, ticket_url: str, max_bytes: int,
                    mentions: tuple[str, ...], template_dir: Path | None = None) -> list[Message]:
    """Rendered, redacted message parts for one ticket event on one channel."""
    try:
        from .messaging.render import render_ticket_messages
    except ImportError:
        return _fallback_render(ticket, event, ticket_url, max_bytes, mentions)
    if template_dir is not None:
        return list(render_ticket_messages(ticket, event, ticket_url, max_bytes, mentions,
                                           template_dir=template_dir))
    return list(render_ticket_messages(ticket, event, ticket_url, max_bytes, mentions))


def ticket_link(base_url: str, ticket_id: int, secret: bytes, expires_at: datetime) -> str:
    try:
        from .messaging.links import sign_ticket_link
    except ImportError:
        expires = int(expires_at.timestamp())
        mac = hmac.new(secret, f"{ticket_id}:{expires}".encode(), hashlib.sha256).hexdigest()
        return f"{base_url.rstrip('/')}/console/tickets/{ticket_id}?expires={expires}&sig={mac}"
    return sign_ticket_link(base_url, ticket_id, secret, expires_at)


def _fallback_render(ticket: Any, event: str, ticket_url: str, max_bytes: int,
                     mentions: tuple[str, ...]) -> list[Message]:
    """Plain text until the messaging package's renderer lands (no redaction: demo only)."""
    head = f"【{_EVENT_ZH.get(event, event)}】工单 {ticket.id} {ticket.alertname}"
    body = f"{head}\n{ticket.summary}\n"
    link = f"\n{ticket_url}"
    budget = max_bytes - len(link.encode())
    encoded = body.encode()[:max(budget, 0)].decode("utf-8", errors="ignore")
    return [Message("text", encoded + link, mentioned_mobiles=mentions, ticket_url=ticket_url)]
