"""Messages that are not alert cards: a reported problem, an escalation by an operator (second line,
bureau system administrators), a major incident, a shift handover, a report newly in the archive.

Rendered from their own templates (messaging/templates/notice.md.j2 and notice_mention.txt.j2, which
an operator may override in `template_dir` like the card), redacted like every message that leaves,
and cut to the channel's size with the link kept in every part (the card renderer's `fit`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from einvoice_core.contract import REPORT_CHANNEL_ZH, TICKET_CLASS_ZH, TICKET_STATE_ZH

from .messaging.base import Message
from .messaging.redact import redact
from .messaging.render import TEXT_MAX_BYTES, _local, fit, template_environment

NoticeKind = Literal["reported", "escalate_second_line", "forward_bureau", "major_incident", "handover",
                     "report_ready"]
NOTICE_KINDS: tuple[NoticeKind, ...] = ("reported", "escalate_second_line", "forward_bureau",
                                        "major_incident", "handover", "report_ready")
TICKET_LINK_TEXT = "查看工单"
NOTICE_TEMPLATE = "notice.md.j2"
NOTICE_MENTION_TEMPLATE = "notice_mention.txt.j2"
_LINK_MARK = "⟦notice-link⟧"


def _zh(names: Mapping[Any, str], key: str) -> str:
    return names.get(key, key)


def notice_context(kind: NoticeKind, ticket: Any | None, subject: str = "", note: str = "",
                   actor: str = "") -> dict[str, Any]:
    get = (lambda name: getattr(ticket, name, None)) if ticket is not None else (lambda _name: None)
    severity = str(get("severity_class") or "")
    channel = get("report_channel")
    title = subject or str(get("summary") or get("alertname") or "")
    return {
        "kind": kind, "subject": title, "ticket_id": get("id"),
        "state_zh": _zh(TICKET_STATE_ZH, str(get("state") or "")),
        "severity_zh": _zh(TICKET_CLASS_ZH, severity),
        "channel_zh": _zh(REPORT_CHANNEL_ZH, str(channel)) if channel else "",
        "reporter": str(get("reporter") or ""),
        "first_response_deadline": _local(get("response_deadline")) if kind == "reported" else "",
        "response_deadline": _local(get("substantive_deadline") or get("response_deadline"))
        if kind == "reported" else "",
        "resolution_deadline": _local(get("resolution_deadline")) if kind != "handover" else "",
        "actor": actor, "note": note.strip(),
    }


def render_notice(kind: NoticeKind, ticket: Any | None, url: str, max_bytes: int,
                  mentions: tuple[str, ...] = (), *, subject: str = "", note: str = "", actor: str = "",
                  template_dir: str | Path | None = None, link_text: str = TICKET_LINK_TEXT) -> list[Message]:
    """The markdown notice (one or more parts, each ending in the link `[link_text](url)`) and,
    with `mentions`, the text that @-mentions them."""
    if kind not in NOTICE_KINDS:
        raise ValueError(f"notice kind must be one of {', '.join(NOTICE_KINDS)}, not {kind!r}")
    env = template_environment(str(template_dir) if template_dir else None)
    context = notice_context(kind, ticket, subject, note, actor)
    body = redact(env.get_template(NOTICE_TEMPLATE).render(context, link_line=_LINK_MARK), keep=mentions)
    body = "\n".join(line.rstrip() for line in body.strip().splitlines() if _LINK_MARK not in line)
    parts = fit(body, f"[{link_text}]({url})", max_bytes)
    messages = [Message("markdown", part, ticket_url=url) for part in parts]
    if mentions:
        text = redact(env.get_template(NOTICE_MENTION_TEMPLATE).render(context, link_line=_LINK_MARK),
                      keep=mentions)
        text = "\n".join(line for line in text.splitlines() if _LINK_MARK not in line).strip()
        part = fit(text, url, min(max_bytes, TEXT_MAX_BYTES), max_parts=1)[0]
        messages.append(Message("text", part, mentioned_mobiles=mentions, ticket_url=url))
    return messages


def local_stamp(moment: datetime | None) -> str:
    return _local(moment)
