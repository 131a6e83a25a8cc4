"""What the console's templates show: Chinese names for states, classes, actions and fields, times
in Asia/Shanghai, and the audit log turned into readable timeline rows."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from einvoice_core.contract import SLA_EVENT_ZH, TICKET_CLASS_ZH, TICKET_STATE_ZH

SHANGHAI = ZoneInfo("Asia/Shanghai")

STATE_ZH: Mapping[Any, str] = TICKET_STATE_ZH
SEVERITY_ZH: Mapping[Any, str] = TICKET_CLASS_ZH
ACTION_ZH = {"create": "创建工单", "acknowledge": "响应", "start_progress": "开始处理",
             "add_note": "添加备注", "resolve": "解决", "close": "关闭", "alert_resolved": "告警恢复",
             "escalate": "超时升级", "second_line": "转二线", "sla_event": "SLA 事件",
             "alert_joined": "告警并入工单", "requeue_message": "重新发送", "report": "报告问题",
             "escalate_second_line": "转二线", "forward_bureau": "提交税务局系统管理员核实处理",
             "major_incident": "宣布重大事件", "agreed_fix": "约定解决日期", "link": "关联同一问题",
             "typical": "典型问题", "fault_owner": "故障定责", "change_link": "关联变更",
             "complaint_link": "关联投诉"}
FIELD_ZH = {"state": "状态", "severity_class": "级别", "recurrence_of": "复发自工单",
            "acknowledged_at": "响应时间", "in_progress_at": "开始处理时间", "resolved_at": "解决时间",
            "closed_at": "关闭时间", "ends_at": "告警结束", "cause": "原因", "solution": "解决方案",
            "resolved_locally": "本级解决", "escalated": "已升级", "response_breached": "响应超时",
            "resolution_breached": "解决超时", "second_line": "二线", "sla_events": "SLA 事件",
            "alertname": "告警名称", "report_channel": "报告渠道", "reported_at": "报告时间",
            "escalated_to": "升级去向", "major_incident_at": "重大事件", "resolution_deadline": "解决时限",
            "agreed_fix_at": "约定解决日期", "agreed_fix_ref": "批准文号", "duplicate_of": "同一问题工单",
            "typical": "典型问题", "substantive_breached": "实质响应超时", "owner": "故障主体",
            "system": "系统", "evidence": "证据说明", "change": "变更", "complaint": "投诉"}
ACTOR_ZH = {"alertmanager": "告警系统", "system": "系统", "duty-link": "值班人员（消息链接）"}


def local_time(value: object) -> str:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return str(value)
    if not isinstance(value, datetime):
        return "—" if value is None else str(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo("UTC"))
    return value.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")


def _show(field: str, value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "是" if value else "否"
    if field == "state":
        return STATE_ZH.get(str(value), str(value))
    if field == "severity_class":
        return SEVERITY_ZH.get(str(value), str(value))
    if field == "sla_events":
        names: Mapping[Any, str] = SLA_EVENT_ZH
        return "、".join(names.get(name, name) for name in str(value).split(",") if name) or "—"
    if field.endswith("_at"):
        return local_time(value)
    return str(value)


@dataclass(frozen=True, slots=True)
class TimelineRow:
    at: str
    actor: str
    action: str
    changes: list[str]
    note: str


def timeline_rows(entries: Iterable[Any]) -> list[TimelineRow]:
    rows = []
    for entry in entries:
        before: dict[str, Any] = getattr(entry, "before", {}) or {}
        after: dict[str, Any] = getattr(entry, "after", {}) or {}
        changes = []
        for field, new in after.items():
            label = FIELD_ZH.get(field, field)
            if field in before:
                changes.append(f"{label}：{_show(field, before[field])} → {_show(field, new)}")
            else:
                changes.append(f"{label}：{_show(field, new)}")
        actor = str(getattr(entry, "actor", ""))
        action = str(getattr(entry, "action", ""))
        rows.append(TimelineRow(local_time(getattr(entry, "at", None)), ACTOR_ZH.get(actor, actor),
                                ACTION_ZH.get(action, action), changes, str(getattr(entry, "note", ""))))
    return rows
