"""突发事件分析报告: 现象描述 / 问题分析 / 解决方案 / 建议 of one ticket, from its fields and timeline.

The generated text is a draft: the operator may replace any of the four sections with a YAML file
(`--edits FILE`, keys phenomenon, analysis, solution, advice) and mark the report final (`--final`);
until then the report says it is a draft. Everything from the ticket has passed the redaction, and
the operator's text passes it too."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from einvoice_notifier.service import ACTION_ZH
from pydantic import BaseModel, ConfigDict, ValidationError

from einvoice_core.catalogue import ITEMS
from einvoice_core.contract import TICKET_CLASS_ZH, TICKET_STATE_ZH
from einvoice_core.redaction import redact

from .errors import ReportError
from .fmt import duration
from .period import REPORT_TZ
from .store import TicketRecord, TicketStore, TimelineEntry
from .ticketfigures import deadline_states

ITEM_NAMES = {item.id: item.name_zh for item in ITEMS}


class Edits(BaseModel):
    """The operator's replacement text for any of the four sections."""

    model_config = ConfigDict(extra="forbid")
    phenomenon: str | None = None
    analysis: str | None = None
    solution: str | None = None
    advice: str | None = None


def load_edits(path: Path) -> Edits:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return Edits.model_validate(raw)
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise ReportError(f"修改文件 {path} 无效：{exc}") from exc


@dataclass(slots=True)
class IncidentReport:
    ticket: TicketRecord
    timeline: list[TimelineEntry]
    phenomenon: list[str]
    analysis: list[str]
    solution: list[str]
    advice: list[str]
    final: bool
    generated_at: datetime
    sources: list[str]


def _t(moment: datetime | None) -> str:
    return "—" if moment is None else moment.astimezone(REPORT_TZ).strftime("%Y-%m-%d %H:%M")


def draft(ticket: TicketRecord, timeline: list[TimelineEntry], now: datetime) -> dict[str, list[str]]:
    item = f"第{ticket.item}项（{ITEM_NAMES.get(ticket.item, '')}）" if ticket.item else "未关联监控项"
    cls = TICKET_CLASS_ZH.get(ticket.severity_class, ticket.severity_class)  # type: ignore[call-overload]
    phenomenon = [f"{_t(ticket.starts_at)} 起，{item}出现异常：{ticket.summary}。",
                  f"工单 #{ticket.id}，类别：{cls}，当前状态："
                  f"{TICKET_STATE_ZH.get(ticket.state, ticket.state)}。"]  # type: ignore[call-overload]
    if ticket.description:
        phenomenon.append(f"告警描述：{ticket.description}")
    sla_notes = [e.note for e in timeline if e.action == "sla_event" and e.note]
    phenomenon.extend(f"SLA 事件：{note}" for note in sla_notes)
    response, resolution = deadline_states(ticket, now)
    analysis = []
    if ticket.acknowledged_at:
        analysis.append(f"{_t(ticket.acknowledged_at)} 响应，距问题开始 "
                        f"{duration((ticket.acknowledged_at - ticket.starts_at).total_seconds())}"
                        f"（响应时限 {_t(ticket.response_deadline)}，"
                        f"{'达成' if response == 'met' else '超时'}）。")
    if ticket.resolved_at:
        analysis.append(f"{_t(ticket.resolved_at)} 解决，历时 "
                        f"{duration((ticket.resolved_at - ticket.starts_at).total_seconds())}"
                        f"（解决时限 {_t(ticket.resolution_deadline)}，"
                        f"{'达成' if resolution == 'met' else '超时'}）。")
    analysis.append(f"原因：{ticket.cause}" if ticket.cause else "原因：工单尚未填写原因，待处理人员补充。")
    if ticket.escalated:
        analysis.append("本工单曾升级至二线处理。")
    if ticket.recurrence_of:
        analysis.append(f"本问题在 30 天内曾发生（工单 #{ticket.recurrence_of}），属复发问题。")
    solution = [f"处理措施：{ticket.solution}" if ticket.solution
                else "处理措施：工单尚未填写，待处理人员补充。"]
    advice = []
    if resolution == "missed":
        advice.append("本次未在解决时限内恢复：建议复核应急预案的切换步骤，并演练。")
    if response == "missed":
        advice.append("本次未在响应时限内响应：建议核对值守排班与告警通知的送达。")
    if ticket.recurrence_of:
        advice.append("问题复发：建议做根因分析，从配置或容量上消除，而非只做恢复操作。")
    if ticket.escalated:
        advice.append("本次需二线介入：建议将处理步骤整理进常见问题处理手册，提升本级解决能力。")
    if not advice:
        advice.append("本次在时限内处置完毕：建议将处理经验纳入常见问题处理手册。")
    return {"phenomenon": phenomenon, "analysis": analysis, "solution": solution, "advice": advice}


def build_incident(ticket_id: int, store: TicketStore, now: datetime, edits: Edits | None,
                   final: bool) -> IncidentReport:
    ticket, timeline = store.ticket(ticket_id)
    sections = draft(ticket, timeline, now)
    if edits is not None:
        for key, text in edits.model_dump().items():
            if text:
                sections[key] = [redact(line) for line in str(text).strip().splitlines() if line.strip()]
    store_url = store.engine.url.render_as_string(hide_password=True)
    sources = [f"工单库：{store_url}（工单 #{ticket_id} 及其审计记录）"]
    return IncidentReport(ticket, timeline, sections["phenomenon"], sections["analysis"],
                          sections["solution"], sections["advice"], final, now, sources)


def context(report: IncidentReport) -> dict[str, Any]:
    return {"report": report, "gaps": [], "sources": report.sources, "action_zh": ACTION_ZH,
            "generated_local": report.generated_at.astimezone(REPORT_TZ)}
