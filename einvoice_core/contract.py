"""The vocabulary the layers agree on, defined once: every side imports it, none repeats it.

What the exporter says about a failing check (its `reason`, and whether that means the service is
down or only degraded), what the rules put on an alert for the notifier (the ticket class label, the
receiver routes in Alertmanager's URLs) and what the notifier and the console show (ticket states,
classes and their Chinese names) are all here. Like the catalogue, this module imports only the
standard library, so reading it never pulls in a collector, a web framework or a database driver.
"""

from __future__ import annotations

from enum import StrEnum
from types import MappingProxyType
from typing import Final


class Reason(StrEnum):
    """The fixed set of failure reasons, the values of the `reason` label."""

    TIMEOUT = "timeout"
    """No answer in time (connect, read or the check's own deadline)."""
    REFUSED = "refused"
    """Connection refused or host unreachable."""
    RESET = "reset"
    """Connection reset or closed by the peer mid-conversation."""
    DNS = "dns"
    """Name did not resolve, or resolved to something other than expected."""
    TLS = "tls"
    """Handshake failed, certificate invalid, expired or for another host."""
    AUTH = "auth"
    """Credentials refused (401/403, Redis NOAUTH/WRONGPASS, SASL failure)."""
    BAD_STATUS = "bad_status"
    """Answered with a status code that is not a valid one."""
    BAD_CONTENT = "bad_content"
    """Answered, but the content is not what was expected or is not parseable."""
    THRESHOLD = "threshold"
    """A measured quantity is beyond its configured threshold (lag, memory, latency...)."""
    STATE = "state"
    """The target reports itself unhealthy (cluster state fail, ES red, consumer stalled...)."""
    ERROR = "error"
    """Anything else, including a bug in the collector."""


REASON_ZH: Final = MappingProxyType({
    Reason.TIMEOUT: "超时",
    Reason.REFUSED: "连接被拒绝或主机不可达",
    Reason.RESET: "连接被对端重置",
    Reason.DNS: "域名解析失败或结果不符",
    Reason.TLS: "TLS 握手或证书错误",
    Reason.AUTH: "认证失败",
    Reason.BAD_STATUS: "应答状态码异常",
    Reason.BAD_CONTENT: "应答内容不符合预期",
    Reason.THRESHOLD: "指标超过阈值",
    Reason.STATE: "目标自报状态异常",
    Reason.ERROR: "其他错误",
})
"""Each reason as people read it (landing page, alert descriptions, cards, reports)."""


class FailureClass(StrEnum):
    """What a failing check says about its service, in the contract's words (seed §三.(四) 3, 9).

    `down` (宕机): the service does not answer, or answers with errors. It spends the yearly 12-hour
    outage budget and is held to the 2-hour cap. `degraded` (卡顿): it answers, but slow, behind or
    self-reported unhealthy. It is held to the 30-minute restore like an outage, but is not outage time.
    """

    DOWN = "down"
    DEGRADED = "degraded"


FAILURE_CLASS_ZH: Final = MappingProxyType({FailureClass.DOWN: "宕机", FailureClass.DEGRADED: "卡顿"})

REASON_FAILURE_CLASS: Final = MappingProxyType({
    Reason.TIMEOUT: FailureClass.DOWN,
    Reason.REFUSED: FailureClass.DOWN,
    Reason.RESET: FailureClass.DOWN,
    Reason.DNS: FailureClass.DOWN,
    Reason.TLS: FailureClass.DOWN,
    Reason.AUTH: FailureClass.DOWN,
    Reason.BAD_STATUS: FailureClass.DOWN,
    Reason.BAD_CONTENT: FailureClass.DOWN,
    Reason.ERROR: FailureClass.DOWN,
    Reason.THRESHOLD: FailureClass.DEGRADED,
    Reason.STATE: FailureClass.DEGRADED,
})
"""The default class of each reason; a check may override it in config, with a reason."""


class Route(StrEnum):
    """Which people an Alertmanager receiver stands for: the `route` query parameter of its URL."""

    FIRST_LINE = "first_line"
    """On-site staff (驻场运维), during on-site hours."""
    SECOND_LINE = "second_line"
    """Second line (二线, 7×24): critical alerts outside on-site hours, and escalations."""
    IMPORTANT_PERIOD = "important_period"
    """重要时期: everyone, around the clock."""


ROUTE_ZH: Final = MappingProxyType({
    Route.FIRST_LINE: "一线（驻场）",
    Route.SECOND_LINE: "二线",
    Route.IMPORTANT_PERIOD: "重要时期（全员）",
})

WEBHOOK_PATH: Final = "/api/v1/webhook/alertmanager"
"""Where Alertmanager posts (webhook v4) on the notifier."""
ROUTE_PARAM: Final = "route"


def receiver_url(base: str, route: Route) -> str:
    """The webhook URL of one receiver: `base` is the notifier's origin plus WEBHOOK_PATH."""
    return base if route is Route.FIRST_LINE else f"{base}?{ROUTE_PARAM}={route.value}"


class TicketClass(StrEnum):
    """The class of a ticket: which response and resolution clocks apply (SPEC §3 #5, #8, #9)."""

    ROUTINE = "routine"
    """日常: routine request; substantive response < 2 h."""
    GENERAL = "general"
    """非日常, 一般 (中低级别): response < 4 h, resolution < 4 working hours."""
    URGENT = "urgent"
    """非日常, 紧急 (高级别): response < 2 h, resolution < 2 working hours."""
    STALL = "stall"
    """卡顿: degraded service, restored within 30 minutes around the clock."""
    OUTAGE = "outage"
    """宕机: the service is down, restored within 30 minutes around the clock."""


TICKET_CLASS_ZH: Final = MappingProxyType({
    TicketClass.ROUTINE: "日常",
    TicketClass.GENERAL: "一般（中低级别）",
    TicketClass.URGENT: "紧急（高级别）",
    TicketClass.STALL: "卡顿",
    TicketClass.OUTAGE: "宕机",
})

TICKET_CLASS_LABEL: Final = "severity_class"
"""The alert label the rules set and the notifier reads to choose a ticket's class."""


class TicketState(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    CLOSED = "closed"


TICKET_STATE_ZH: Final = MappingProxyType({
    TicketState.OPEN: "新建",
    TicketState.ACKNOWLEDGED: "已响应",
    TicketState.IN_PROGRESS: "处理中",
    TicketState.RESOLVED: "已解决",
    TicketState.CLOSED: "已关闭",
})


SERVICE_LABEL: Final = "service"
"""The business service (thresholds.yaml `services`) a service-level alert is about."""

SLA_EVENT_LABEL: Final = "sla_event"
"""Set on the follow-up alerts of one outage or stall. The notifier adds them to the open ticket of
that service and class (a timeline entry and an escalation), and never opens a second ticket."""


class SlaEvent(StrEnum):
    RESTORE_WARNING = "restore_warning"
    """The 30-minute restore is near (warning before it is broken)."""
    RESTORE_BREACHED = "restore_breached"
    """Not restored within 30 minutes (卡顿、宕机 30 分钟内恢复, SPEC §3 #9)."""
    LIMIT_NEAR = "limit_near"
    """An outage approaches the 2-hour cap of a single outage."""
    LIMIT_EXCEEDED = "limit_exceeded"
    """An outage has lasted longer than 2 hours (每次宕机时间不超过 2 小时)."""


SLA_EVENT_ZH: Final = MappingProxyType({
    SlaEvent.RESTORE_WARNING: "即将超过 30 分钟恢复时限",
    SlaEvent.RESTORE_BREACHED: "超过 30 分钟未恢复",
    SlaEvent.LIMIT_NEAR: "单次宕机即将超过 2 小时",
    SlaEvent.LIMIT_EXCEEDED: "单次宕机已超过 2 小时",
})

ANNOTATION_FAILING_CHECKS: Final = "failing_checks"
"""Annotation of a service-level alert: the failing member checks, one per line, as
`第NN项 <item name> · <check> · <target> · <reason in Chinese>` (so the card says where)."""
ANNOTATION_STARTED_AT: Final = "started_at"
"""Annotation of a service-level alert: when the outage or stall began (Unix seconds), which is
earlier than the alert's startsAt by its `for:` and an evaluation."""


class ReportChannel(StrEnum):
    """How a person reported a problem (a ticket opened by hand); SPEC §3 #5 sets the first-response
    time of the first four (phone 10 min, ops website 1 h, on-site 30 min, remote 2 h)."""

    PHONE = "phone"
    WEBSITE = "website"
    ON_SITE = "on_site"
    REMOTE = "remote"
    WECHAT_QQ = "wechat_qq"
    HOTLINE_12366 = "hotline_12366"


REPORT_CHANNEL_ZH: Final = MappingProxyType({
    ReportChannel.PHONE: "电话",
    ReportChannel.WEBSITE: "运维网站",
    ReportChannel.ON_SITE: "现场",
    ReportChannel.REMOTE: "远程",
    ReportChannel.WECHAT_QQ: "微信/QQ",
    ReportChannel.HOTLINE_12366: "12366",
})


SYSTEM_LABEL: Final = "system"
"""The system of the contract's scope (thresholds.yaml `systems`) a series, alert or ticket is about."""

DRILL_LABEL: Final = "drill"
"""Set to "true" on alerts that fire inside a declared disaster-recovery drill window
(alert_rules/drill_windows.yml): the notifier marks their tickets as drill, and their outage time is
reported apart from the SLA budget."""


class FaultOwner(StrEnum):
    """Who a fault came from, decided by the ops department (seed ★4(3): when the vendor cannot show
    the root cause, the vendor carries the whole blame)."""

    THIS_SYSTEM = "this_system"
    NEIGHBOUR_SYSTEM = "neighbour_system"
    NETWORK = "network"
    HARDWARE = "hardware"
    THIRD_PARTY = "third_party"
    UNDETERMINED = "undetermined"


FAULT_OWNER_ZH: Final = MappingProxyType({
    FaultOwner.THIS_SYSTEM: "本系统",
    FaultOwner.NEIGHBOUR_SYSTEM: "相邻系统",
    FaultOwner.NETWORK: "网络",
    FaultOwner.HARDWARE: "硬件",
    FaultOwner.THIRD_PARTY: "第三方",
    FaultOwner.UNDETERMINED: "无法判定（由中标人承担）",
})
VENDOR_FAULT_OWNERS: Final = frozenset({FaultOwner.THIS_SYSTEM, FaultOwner.UNDETERMINED})
"""Owners whose faults count against the vendor (scorecard line 11; ★4(3) puts an undetermined root
cause on the vendor)."""
