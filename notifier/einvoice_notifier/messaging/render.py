"""Turn a ticket and an event into the WeChat Work messages that leave for the group.

The card is a jinja2 template (templates/alert_card.md.j2) the operator can override by putting a
file of the same name in a template directory. Whatever the template yields is redacted, then cut
to the channel's byte limit: a card that is too long is split into numbered parts (at most
MAX_PARTS, the rest shortened, since the robot sends 20 a minute and the ticket page has it all),
and every part ends with the link to the ticket, which is the one thing a reader must get.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import jinja2

from einvoice_core.catalogue import ZONE_NAMES_ZH, Zone, get_item
from einvoice_core.contract import (
    ANNOTATION_FAILING_CHECKS,
    ANNOTATION_STARTED_AT,
    REASON_ZH,
    TICKET_CLASS_ZH,
    TICKET_STATE_ZH,
    Reason,
)

from .base import Message
from .redact import redact

EVENTS = ("firing", "resolved", "escalation")
MAX_PARTS = 3
TEXT_MAX_BYTES = 2048
"""WeCom robot and application text content is limited to 2048 bytes (markdown: 4096)."""
SHANGHAI = ZoneInfo("Asia/Shanghai")
CARD_TEMPLATE = "alert_card.md.j2"
MENTION_TEMPLATE = "mention.txt.j2"
_LINK_MARK = "⟦ticket-link⟧"
_SHORTENED = "……（内容过长已截断，详见工单）"

SEVERITY_ZH: Mapping[str, str] = {str(key): value for key, value in TICKET_CLASS_ZH.items()}
STATE_ZH: Mapping[str, str] = {str(key): value for key, value in TICKET_STATE_ZH.items()}
MAX_FAILING_CHECKS = 10
"""Failing member checks listed on a card; the rest are counted (the ticket page has them all)."""
LINK_TEXT = {"firing": "查看并确认工单", "escalation": "查看并确认工单", "resolved": "查看工单"}
"""A recovered ticket needs no acknowledgement: its card only opens the ticket."""


class TicketLike(Protocol):
    """What the renderer reads of the core's TicketView (missing fields render as empty)."""

    id: int
    alertname: str
    item: str | None
    severity_class: str


def _aware(value: object) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=ZoneInfo("UTC"))


def _local(value: object) -> str:
    if not isinstance(value, datetime):
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo("UTC"))
    return value.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")


def duration_zh(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}小时{minutes}分"
    if minutes:
        return f"{minutes}分{secs}秒"
    return f"{secs}秒"


def _item_name(item: object) -> tuple[str, str]:
    try:
        found = get_item(str(item))
    except (ValueError, KeyError):
        return str(item or "--"), "未归属检查项"
    return found.id, found.name_zh


def _zone_zh(zone: object) -> str:
    try:
        return ZONE_NAMES_ZH[Zone(str(zone))]
    except ValueError:
        return str(zone or "")


def _started_at(annotations: Mapping[str, str]) -> datetime | None:
    """When the outage or stall began, from the rule's `started_at` annotation (Unix seconds, as
    Prometheus prints a number: `1764300000` or `1.7643e+09`); None when absent or unreadable."""
    raw = str(annotations.get(ANNOTATION_STARTED_AT) or "").strip()
    try:
        seconds = float(raw)
    except ValueError:
        return None
    if not 0 < seconds < 1e11:  # NaN, 0 and nonsense fail here
        return None
    return datetime.fromtimestamp(seconds, tz=ZoneInfo("UTC"))


def _failing_checks(annotations: Mapping[str, str], labels: Mapping[str, str]) -> list[str]:
    """Where it fails, one line per failing check: from the `failing_checks` annotation of a
    service-level alert, else from the labels of a per-check alert (item, check, target, reason)."""
    listed = [line.strip() for line in str(annotations.get(ANNOTATION_FAILING_CHECKS) or "").splitlines()]
    lines = [line for line in listed if line]
    if not lines and labels.get("check"):
        item = labels.get("item")
        parts = [f"第{item}项 {_item_name(item)[1]}" if item else "", labels["check"],
                 labels.get("target", "")]
        reason = labels.get("reason", "")
        if reason in REASON_ZH:
            parts.append(REASON_ZH[Reason(reason)])
        lines = [" · ".join(part for part in parts if part)]
    if len(lines) > MAX_FAILING_CHECKS:
        lines = [*lines[:MAX_FAILING_CHECKS], f"……另有 {len(lines) - MAX_FAILING_CHECKS} 项，详见工单"]
    return lines


def _target(ticket_target: object, labels: Mapping[str, str]) -> str:
    """The check's target. An alert about an item (say, one no check covers) has none: its
    `instance` is only the exporter that reported it, so the card names the item instead."""
    if not labels:
        return str(ticket_target or "")
    if labels.get("target"):
        return labels["target"]
    if labels.get("item"):
        return ""
    return labels.get("instance", "")


def ticket_context(ticket: object, event: str) -> dict[str, Any]:
    """The template variables; tolerant of a TicketView that lacks optional fields.

    `annotations` (of the alert this message is about) are optional: a service-level alert's
    `started_at` makes the duration the outage's rather than the alert's (which starts a `for:`
    later), and its `failing_checks` say where it fails."""
    get = lambda name, default=None: getattr(ticket, name, default)  # noqa: E731
    item, item_name = _item_name(get("item"))
    labels: Mapping[str, str] = get("labels") or {}
    annotations: Mapping[str, str] = get("annotations") or {}
    starts_at, ends_at = _aware(get("starts_at")), _aware(get("ends_at"))
    started_at = _started_at(annotations)
    if starts_at is not None and started_at is not None:
        starts_at = min(started_at, starts_at)  # the outage began a `for:` before its alert
    duration = ""
    if starts_at is not None and ends_at is not None:
        duration = duration_zh((ends_at - starts_at) / timedelta(seconds=1))
    severity = str(get("severity_class", "general"))
    breached = [name for name, flag in (("响应", get("response_breached")),
                                        ("解决", get("resolution_breached"))) if flag]
    summary = (get("summary") or "").strip()
    # Service-level alerts (an outage of 受理服务...) carry no item: their summary names them.
    subject = f"第{item}项 {item_name}" if get("item") else (summary or str(get("alertname", "")))
    return {
        "event": event,
        "subject": subject,
        "ticket_id": get("id"),
        "state_zh": STATE_ZH.get(str(get("state", "open")), str(get("state", ""))),
        "alertname": get("alertname", ""),
        "item": item,
        "item_name": item_name,
        "zone_zh": _zone_zh(get("zone") or labels.get("zone")),
        "target": _target(get("target"), labels),
        "failing_checks": _failing_checks(annotations, labels),
        "severity": severity,
        "severity_zh": SEVERITY_ZH.get(severity, severity),
        "summary": summary,
        "description": (get("description") or "").strip(),
        "labels": dict(labels),
        "starts_at": _local(starts_at),
        "ends_at": _local(ends_at),
        "duration": duration,
        "response_deadline": _local(get("response_deadline")),
        "resolution_deadline": _local(get("resolution_deadline")),
        "escalation_zh": ("已超过" + "、".join(breached) + "时限") if breached else "已超过处理时限",
        "recurrence_of": get("recurrence_of"),
    }


@lru_cache(maxsize=8)
def template_environment(template_dir: str | None) -> jinja2.Environment:
    """Operator templates first, then ours; StrictUndefined so a typo in an override fails loudly."""
    loaders: list[jinja2.BaseLoader] = []
    if template_dir:
        loaders.append(jinja2.FileSystemLoader(template_dir))
    loaders.append(jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")))
    return jinja2.Environment(loader=jinja2.ChoiceLoader(loaders), autoescape=False,  # noqa: S701
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=False)


def _utf8_cut(text: str, max_bytes: int) -> str:
    """The longest prefix of `text` within `max_bytes` UTF-8 bytes, never half a character."""
    return text.encode("utf-8")[:max(0, max_bytes)].decode("utf-8", errors="ignore")


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def fit(body: str, link_line: str, max_bytes: int, max_parts: int = MAX_PARTS) -> list[str]:
    """Split `body` (without the link) into at most `max_parts` parts within `max_bytes`, each
    ending with `link_line`; the first line (the title) heads every part, numbered."""
    whole = f"{body.rstrip()}\n{link_line}" if body.strip() else link_line
    if _size(whole) <= max_bytes:
        return [whole]
    title, _, rest = body.strip().partition("\n")
    if _size(link_line) + 1 > max_bytes:
        raise ValueError(f"the ticket link alone is longer than {max_bytes} bytes")
    # Room per part: title + numbering + body + newline + link. The numbering is at most "（9/9）".
    head_room = _size(title) + _size("（9/9）") + 1
    if head_room + _size(link_line) + 1 + 64 > max_bytes:
        title = _utf8_cut(title, max_bytes - _size(link_line) - _size("（9/9）") - 64 - 2)
        head_room = _size(title) + _size("（9/9）") + 1
    budget = max_bytes - head_room - _size(link_line) - 1
    chunks: list[str] = []
    current = ""
    for line in rest.splitlines():
        candidate = f"{current}\n{line}" if current else line
        if _size(candidate) <= budget:
            current = candidate
            continue
        if current:
            chunks.append(current)
        while _size(line) > budget:
            piece = _utf8_cut(line, budget)
            chunks.append(piece)
            line = line[len(piece):]
        current = line
    if current or not chunks:
        chunks.append(current)
    if len(chunks) > max_parts:
        last = "\n".join(chunks[max_parts - 1:])
        cut = _utf8_cut(last, budget - _size(_SHORTENED) - 1).rstrip()
        chunks = [*chunks[:max_parts - 1], f"{cut}\n{_SHORTENED}"]
    total = len(chunks)
    if total == 1:
        return [f"{title}\n{chunks[0]}\n{link_line}"]
    return [f"{title}（{i}/{total}）\n{chunk}\n{link_line}" for i, chunk in enumerate(chunks, 1)]


def render_ticket_messages(ticket: object, event: str, ticket_url: str, max_bytes: int,
                           mentions: tuple[str, ...] = (), *,
                           template_dir: str | Path | None = None) -> list[Message]:
    """The markdown card (one or more parts), then, when `mentions` are given, a text message that
    @-mentions those mobiles. Every message is redacted and within `max_bytes` UTF-8 bytes."""
    if event not in EVENTS:
        raise ValueError(f"event must be one of {', '.join(EVENTS)}, not {event!r}")
    env = template_environment(str(template_dir) if template_dir else None)
    context = ticket_context(ticket, event)
    keep = tuple(mentions)

    card = env.get_template(CARD_TEMPLATE).render(context, link_line=_LINK_MARK)
    card = redact(card, keep=keep)
    card_body = "\n".join(line for line in card.splitlines() if _LINK_MARK not in line)
    card_body = "\n".join(line.rstrip() for line in card_body.strip().splitlines())
    link_md = f"[{LINK_TEXT[event]}]({ticket_url})"
    messages = [Message("markdown", part, ticket_url=ticket_url)
                for part in fit(card_body, link_md, max_bytes)]

    if mentions:
        text = env.get_template(MENTION_TEMPLATE).render(context, link_line=_LINK_MARK)
        text = redact(text, keep=keep)
        text_body = "\n".join(line for line in text.splitlines() if _LINK_MARK not in line).strip()
        text_limit = min(max_bytes, TEXT_MAX_BYTES)
        parts = fit(text_body, ticket_url, text_limit, max_parts=1)
        messages.append(Message("text", parts[0], mentioned_mobiles=keep, ticket_url=ticket_url))
    return messages


def check_templates(template_dir: str | Path | None) -> None:
    """Render both templates on a sample ticket so a broken override fails at start, not at 3 a.m."""

    class _Sample:
        id = 1
        alertname = "EinvoiceCheckDown"
        item = "10"
        zone = "intranet"
        target = "10.0.0.1:7001"
        severity_class = "urgent"
        state = "open"
        summary = "示例"
        description = "示例"
        labels: dict[str, str] = {}  # noqa: RUF012
        starts_at = datetime(2026, 1, 1, tzinfo=SHANGHAI)
        ends_at = None

    for event in EVENTS:
        render_ticket_messages(_Sample(), event, "http://localhost/console/link/1", 4096, ("13800000000",),
                               template_dir=template_dir)
