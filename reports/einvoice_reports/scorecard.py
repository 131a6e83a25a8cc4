"""附件1《运维厂商考核评级表》: the 25 lines and their maxima (seed §附件1, 100 points), lines 4, 5, 9,
10 and 11 pre-filled from data with their evidence, the others left for the bureau to score.
Written as an xlsx the bureau edits (the totals, yearly average and payment tier are formulas) and
as a page.

Pre-filled lines (proposals the bureau may change in the xlsx; the page states each rule):
- 4 运维处理时效: one level per ticket of the routine, general or urgent class begun in the month
  that missed its response or resolution deadline; 1.5 points per level.
- 5 检查频次要求: an item missed a day when one of its checks did not run that day (its
  einvoice_check_last_run_timestamp_seconds did not change in the day) or it has no check at all;
  0.5 points per item that missed at least one day.
- 9 应急情况处置: one level per outage or stall not restored within 30 minutes, and one more per
  outage over 2 hours (SLA recording rules); 1.5 points per level.
- 10 报告制度: the reports due in the month (the daily report of each day, the monthly report:
  DUE_KINDS) against the files in the archive; 0.5 points per missing report.
- 11 系统运行故障率: fault days (a working day on which any service was down) over the month's
  working days, in percent; 0.5 points per percentage point. Working days are Monday to Friday less
  the holidays and plus the make-up workdays (调休) of the notifier's calendar file
  (`--calendar`, the notifier's `calendar_file`: `holidays`, `makeup_workdays`). The ops department's
  fault ownership (issue 19) decides whose a fault is: a day counts when a fault of the vendor
  (FaultOwner in VENDOR_FAULT_OWNERS, or not yet decided: ★4(3)) was in progress that day, or when a
  service was down and no fault owned by another party covers that day (OwnedFaults).
- 6 问题处理 / 7 版本质量: patches and version upgrades of the change register whose window began in
  the month and that did not fix their problem (6), or caused a new one (7: outcome, or a ticket
  linked to the change); 0.5 points each.
- 12 系统安全漏洞: vulnerabilities detected in the month (the bureau's scan, else found) and not
  reported to the bureau before its scan found them; 0.4 points each.
- 19 投诉举报: complaints received in the month and verified as substantiated; 0.2 points each.
With `--system KEY` (thresholds.yaml `systems`) lines 4, 5, 6, 7, 9, 11, 12 and 19 count that system
only (its tickets, items, changes, services, faults, vulnerabilities, complaints); line 10 stays the
platform's (the reports are the platform's).
Every deduction stops at the line's maximum.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from dataclasses import replace as dc_replace
from datetime import date, datetime, time, timedelta
from functools import cache
from importlib import resources
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from einvoice_notifier.calendar import CalendarData, load_calendar_data

from einvoice_core.catalogue import ITEMS
from einvoice_core.contract import FAULT_OWNER_ZH, VENDOR_FAULT_OWNERS, FaultOwner
from einvoice_core.thresholds import Thresholds, load_thresholds

from . import records as records_mod
from . import render, sla, ticketfigures
from .errors import ReportError
from .period import REPORT_TZ, Period, week_label
from .prom import PrometheusClient
from .store import TicketRecord, TicketStore

if TYPE_CHECKING:
    from einvoice_notifier.registers import ChangeView, ComplaintView, FaultView, VulnerabilityView

    from .cli import Options, Outcome

KIND = "scorecard"
TITLE = "运维厂商考核评级表"
@cache
def lines() -> tuple[tuple[str, int, str, int, str], ...]:
    """(category, line, name, maximum, scoring rule) exactly as 附件1 states them (attachment1.yaml)."""
    text = resources.files(__package__).joinpath("attachment1.yaml").read_text(encoding="utf-8")
    raw = yaml.safe_load(text)
    return tuple((d["category"], d["line"], d["name"], d["maximum"], d["rule"]) for d in raw["lines"])

MAXIMUM = 100
DUE_KINDS: tuple[tuple[str, str, str], ...] = (("daily", "系统运行监控报告", "day"),
                                               ("weekly", "运维周报", "week"),
                                               ("monthly", "月度系统运维报告", "month"))
"""Reports the archive must hold for a month: (kind, title, cadence), one per day or one per month."""
TIERS: tuple[tuple[float, str], ...] = ((90, "100%"), (80, "95%"), (0, "90%"))
"""Yearly average → share of the contract price paid (seed §五.3)."""


def payment_tier(average: float) -> str:
    return next(share for floor, share in TIERS if average >= floor)


@dataclass(slots=True)
class Prefill:
    line: int
    score: float
    rule: str
    evidence: list[str] = field(default_factory=list)


def _cap(maximum: int, deduction: float) -> float:
    return round(max(maximum - deduction, 0.0), 2)


def load_calendar(path: Path | None) -> CalendarData:
    """The notifier's calendar file (holidays, make-up workdays); plain weekdays without one."""
    from pydantic import ValidationError

    from .errors import ReportError

    try:
        return load_calendar_data(path)
    except OSError as exc:
        raise ReportError(f"工作日历 {path} 无法读取：{exc.strerror}") from exc
    except ValidationError as exc:
        reasons = "；".join(".".join(str(p) for p in e["loc"]) + (": " if e["loc"] else "") + e["msg"]
                           for e in exc.errors())
        raise ReportError(f"工作日历 {path} 有误：{reasons}") from exc
    except yaml.YAMLError as exc:
        raise ReportError(f"工作日历 {path} 不是有效的 YAML：{str(exc).splitlines()[0]}") from exc


def _working_days(period: Period, calendar: CalendarData) -> list[date]:
    return [day for day in period.days() if calendar.is_official_workday(day)]


def line4(figures: ticketfigures.TicketFigures) -> Prefill:
    late = [t for t in figures.missed if t.severity_class in ("routine", "general", "urgent")]
    evidence = []
    for t in late:
        response, resolution = ticketfigures.deadline_states(t, figures.end)
        missed = "、".join(n for n, s in (("响应", response), ("解决", resolution)) if s == "missed")
        evidence.append(f"工单 #{t.id}（{t.starts_at.astimezone(REPORT_TZ):%m-%d %H:%M}）{missed}超时")
    if not late:
        evidence.append("本月日常、一般、紧急工单均在时限内响应和解决")
    return Prefill(4, _cap(6, 1.5 * len(late)), "每张超时工单记一级，每级扣 1.5 分", evidence)


def line5(prom: PrometheusClient, period: Period, only: tuple[str, ...] | None = None) -> Prefill:
    """`only`: the items of one system (a per-system scorecard); None: every item."""
    at = period.end.timestamp() - sla.EDGE
    first = period.start.timestamp() + sla.DAY - sla.EDGE
    runs = prom.query_range("changes(einvoice_check_last_run_timestamp_seconds[1d])", first, at, sla.DAY)
    declared = {s.labels.get("item", "") for s in prom.query(
        f"max by (item) (max_over_time(einvoice_item_info[{period.seconds}s]))", at)}
    items = sorted(declared or {item.id for item in ITEMS})
    if only is not None:
        items = [item for item in items if item in only]
    days = period.days()
    ran: dict[str, dict[int, bool]] = {}
    for series in runs:
        item = series.labels.get("item", "")
        per_day = ran.setdefault(item, {})
        for ts, value in series.points:
            index = round((ts - first) / sla.DAY)
            per_day[index] = per_day.get(index, True) and value > 0
    evidence = []
    missing_items = 0
    for item in items:
        seen = ran.get(item)
        if seen is None:
            missed = len(days)
            evidence.append(f"第{item}项：本月没有检查运行记录（{missed} 天）")
        else:
            missed_days = [days[i] for i in range(len(days)) if not seen.get(i, False)]
            missed = len(missed_days)
            if missed:
                evidence.append(f"第{item}项：{missed} 天有检查未运行（首日 {missed_days[0]:%m-%d}，末日 "
                                f"{missed_days[-1]:%m-%d}）")
        missing_items += missed > 0
    evidence.insert(0, f"应检查监控项 {len(items)} 项 × {len(days)} 天；有缺漏的监控项 {missing_items} 项")
    return Prefill(5, _cap(6, 0.5 * missing_items), "每个有检查未按期运行的监控项扣 0.5 分", evidence)


def line9(figures: sla.SlaFigures) -> Prefill:
    evidence = []
    levels = 0
    for s in figures.services:
        late = s.restores_late_outage + s.restores_late_stall
        levels += late + s.outages_over_limit
        if late or s.outages_over_limit:
            evidence.append(f"{s.name_zh}：超 30 分钟恢复 {late} 次（宕机 {s.restores_late_outage}、卡顿 "
                            f"{s.restores_late_stall}），单次宕机超 2 小时 {s.outages_over_limit} 次")
    if not evidence:
        evidence.append("本月宕机、卡顿均在 30 分钟内恢复")
    return Prefill(9, _cap(6, 1.5 * levels),
                   "超 30 分钟恢复每次一级、单次宕机超 2 小时再加一级，每级扣 1.5 分",
                   evidence)


def _due_labels(cadence: str, period: Period) -> list[str]:
    """The archive labels one cadence owes for the month: each day, each ISO week ending (Sunday) in
    the month, or the month itself."""
    if cadence == "day":
        return [day.isoformat() for day in period.days()]
    if cadence == "week":
        return [week_label(day) for day in period.days() if day.weekday() == 6]
    return [period.label]


def line10(archive: Path, period: Period) -> Prefill:
    due = [(kind, name, label) for kind, name, cadence in DUE_KINDS for label in _due_labels(cadence, period)]
    missing = [(kind, name, label) for kind, name, label in due
               if not render.archive_path(archive, kind, label, "html").exists()]
    evidence = [f"应提交 {len(due)} 份，归档中已有 {len(due) - len(missing)} 份"]
    evidence.extend(f"缺少《{name}》{label}" for _, name, label in missing)
    return Prefill(10, _cap(6, 0.5 * len(missing)), "每缺少一份定期报告扣 0.5 分", evidence)


def line11(figures: sla.SlaFigures, period: Period, owned: OwnedFaults | None = None,
           calendar: CalendarData | None = None) -> Prefill:
    calendar = calendar or CalendarData()
    working = _working_days(period, calendar)
    faults = figures.fault_days() if owned is None else owned.days
    counted = [day for day in faults if day in set(working)]
    rate = len(counted) / len(working) * 100 if working else 0.0
    off = [day for day in period.days() if day.weekday() < 5 and day not in set(working)]
    extra = [day for day in working if day.weekday() >= 5]
    basis = "周一至周五" + (f"，扣除节假日 {len(off)} 天" if off else "") + \
        (f"，加调休上班 {len(extra)} 天" if extra else "")
    evidence = [f"工作日 {len(working)} 天（{basis}），故障日 {len(counted)} 天，故障率 {rate:.2f}%"]
    if off or extra:
        evidence.append("工作日历：" + "、".join([*(f"{d:%m-%d} 节假日" for d in off),
                                                 *(f"{d:%m-%d} 调休上班" for d in extra)]))
    evidence.extend(f"{day:%m-%d}：宕机 {faults[day] / 60:.0f} 分钟" for day in counted)
    weekend = [day for day in faults if day not in set(working)]
    if weekend:
        evidence.append("非工作日故障（不计入故障率）：" + "、".join(f"{d:%m-%d}" for d in weekend))
    if owned is not None:
        evidence.extend(owned.evidence)
    return Prefill(11, _cap(6, 0.5 * rate), "故障率每个百分点扣 0.5 分（按比例）", evidence)


PLATFORM_ZH = "增值税电子发票公共服务平台"


def system_title(system: str | None) -> str:
    """The name in the scorecard's title (附件1: 「广西税务 XXX 系统 …」)."""
    if system is None:
        return PLATFORM_ZH
    from einvoice_core.thresholds import shipped

    found = shipped().systems.get(system)
    return found.name_zh if found is not None else system


def archive_label(period: Period, system: str | None) -> str:
    return period.label if system is None else f"{period.label}-{system}"


def _changes_of(changes: list[ChangeView]) -> list[ChangeView]:
    """Lines 6 and 7 are about versions and patches (版本（补丁）), not parameter or config changes."""
    return [c for c in changes if c.kind in ("patch", "version")]


def _change_zh(change: ChangeView) -> str:
    local = change.window_start.astimezone(REPORT_TZ)
    versions = f"{change.version_before or '—'} → {change.version_after}" if change.version_after else ""
    versions = "，" + versions if versions else ""
    return f"变更 {change.id}（{local:%m-%d} {change.kind_zh}{versions}）：{change.title}"


def line6(changes: list[ChangeView]) -> Prefill:
    versions = _changes_of(changes)
    failed = [c for c in versions if c.outcome == "not_fixed"]
    evidence = [f"本月发布版本（补丁）{len(versions)} 次，未能解决相关问题 {len(failed)} 次"]
    evidence.extend(f"{_change_zh(c)}；{c.outcome_note}" for c in failed)
    pending = [c for c in versions if c.outcome == "pending"]
    if pending:
        evidence.append("仍在运行跟踪中（未计入）：" + "、".join(f"变更 {c.id}" for c in pending))
    return Prefill(6, _cap(6, 0.5 * len(failed)), "变更登记中结果为“未解决问题”的版本（补丁）每次扣 0.5 分",
                   evidence)


def line7(changes: list[ChangeView]) -> Prefill:
    versions = _changes_of(changes)
    caused = [c for c in versions if c.outcome == "new_problem" or c.linked_tickets]
    evidence = [f"本月发布版本（补丁）{len(versions)} 次，引发新问题 {len(caused)} 次"]
    for c in caused:
        linked = "、".join(f"#{t}" for t in c.linked_tickets)
        evidence.append(_change_zh(c) + (f"；引起工单 {linked}" if linked else "")
                        + (f"；{c.outcome_note}" if c.outcome_note else ""))
    return Prefill(7, _cap(6, 0.5 * len(caused)),
                   "结果为“引发新问题”或关联了其引起的工单的版本（补丁）每次扣 0.5 分"
                   "（是否及时反馈、解决由局方评估）",
                   evidence)


def line12(vulns: list[VulnerabilityView], period: Period) -> Prefill:
    detected = [v for v in vulns if period.first <= v.detected_on <= period.last]
    counted = [v for v in detected if not v.exempt]
    evidence = [f"本月检出漏洞 {len(detected)} 项，扣分 {len(counted)} 项，"
                f"在局方扫描发现前已主动报告（免扣）{len(detected) - len(counted)} 项"]
    for v in detected:
        reported = f"{v.reported_on:%m-%d} 报告税务局" if v.reported_on else "未报告税务局"
        scanned = f"，局方扫描 {v.bureau_scan_on:%m-%d}" if v.bureau_scan_on else ""
        verdict = "免扣" if v.exempt else "扣分"
        evidence.append(f"漏洞 {v.id}（{v.severity_zh}，{v.found_by_zh} {v.found_on:%m-%d}，"
                        f"{reported}{scanned}）"
                        f"{v.title}：{verdict}")
    return Prefill(12, _cap(4, 0.4 * len(counted)), "每检出一项扣 0.4 分；局方扫描发现前已主动报告的不扣",
                   evidence)


def line19(complaints: list[ComplaintView]) -> Prefill:
    upheld = [c for c in complaints if c.verification == "substantiated"]
    evidence = [f"本月收到投诉 {len(complaints)} 次，经核实属实 {len(upheld)} 次"]
    evidence.extend(f"投诉 {c.id}（{c.received_on:%m-%d}）：{c.summary}；核实：{c.verification_note}"
                    + (f"（工单 #{c.ticket_id}）" if c.ticket_id else "") for c in upheld)
    pending = [c for c in complaints if c.verification == "pending"]
    if pending:
        evidence.append("待核实（未计入）：" + "、".join(f"投诉 {c.id}" for c in pending))
    return Prefill(19, _cap(2, 0.2 * len(upheld)), "经核实属实的投诉每次扣 0.2 分", evidence)


@dataclass(slots=True)
class OwnedFaults:
    """Line 11's fault days after the ops department's fault ownership: day → outage seconds."""

    days: dict[date, float]
    evidence: list[str]


def is_fault(ticket: TicketRecord) -> bool:
    return (not ticket.drill and ticket.duplicate_of is None
            and (ticket.severity_class == "outage" or ticket.major_incident_at is not None))


def _seconds_by_day(start: datetime, end: datetime) -> dict[date, float]:
    """The seconds of [start, end) that fall on each local day."""
    found: dict[date, float] = {}
    day = start.astimezone(REPORT_TZ).date()
    while True:
        lo = datetime.combine(day, time(0), REPORT_TZ)
        hi = lo + timedelta(days=1)
        part = (min(end, hi) - max(start, lo)).total_seconds()
        if part > 0:
            found[day] = part
        if hi >= end:
            return found
        day += timedelta(days=1)


def owned_faults(records: list[TicketRecord], owners: dict[int, FaultView], served: sla.SlaFigures,
                 period: Period, system: str | None, thresholds: Thresholds) -> OwnedFaults:
    """Fault days of the system (or of the platform's systems in the vendor's scope):

    - a fault is an outage ticket or a declared major incident (drills and duplicates aside), in the
      system its fault record names (else its ticket's system), lasting from its start to its
      resolution (the period's end while unresolved);
    - the vendor's faults are those owned by VENDOR_FAULT_OWNERS, and those not decided yet (★4(3):
      a root cause the vendor cannot show is the vendor's);
    - fault days = days of the vendor's faults ∪ (days a service of the system was down, from the SLA
      rules, − days covered by faults owned by another party)."""
    scope = thresholds.systems
    in_scope = ({system} if system is not None else {key for key, s in scope.items() if s.vendor_scope})
    evidence: list[str] = []
    if system is not None and not scope[system].vendor_scope:
        evidence.append(f"{scope[system].name_zh}不在运维厂商运维范围内（仅提供技术支持），其故障不计入本项")
        return OwnedFaults({}, evidence)
    vendor: dict[date, float] = {}
    others: set[date] = set()
    for ticket in records:
        if not is_fault(ticket):
            continue
        record = owners.get(ticket.id)
        where = record.system if record is not None else ticket.system
        if where is not None and where not in in_scope:
            continue
        if where is None and system is not None:
            continue
        ends = min(ticket.resolved_at or period.end, period.end)
        days = {d: s for d, s in _seconds_by_day(max(ticket.starts_at, period.start), ends).items()
                if period.first <= d <= period.last}
        if not days:
            continue
        owner = FaultOwner(record.owner) if record is not None else None
        ours = owner is None or owner in VENDOR_FAULT_OWNERS
        who = FAULT_OWNER_ZH[owner] if owner is not None else "尚未定责（按无法判定计，★4(3)）"
        span = "、".join(f"{d:%m-%d}" for d in sorted(days))
        evidence.append(f"工单 #{ticket.id}（{span}）故障主体：{who}，{'计入' if ours else '不计入'}")
        for day, seconds in days.items():
            if ours:
                vendor[day] = vendor.get(day, 0.0) + seconds
            else:
                others.add(day)
    found = {day: seconds for day, seconds in served.fault_days().items() if day not in others}
    for day, seconds in vendor.items():
        found.setdefault(day, seconds)
    excused = sorted(day for day in served.fault_days() if day in others and day not in vendor)
    if excused:
        evidence.append("经定责不属运维厂商的故障日（不计入）：" + "、".join(f"{d:%m-%d}" for d in excused))
    return OwnedFaults(dict(sorted(found.items())), evidence)


@dataclass(slots=True)
class Scorecard:
    period: Period
    prefills: dict[int, Prefill]
    year_scores: dict[int, float | None]
    """Month → total of an earlier month's completed scorecard in the archive (None: not complete)."""
    sources: list[str]
    gaps: list[str]
    system: str | None = None
    """thresholds.yaml `systems` key of a per-system scorecard; None: the whole platform."""

    @property
    def system_zh(self) -> str:
        return system_title(self.system)

    @property
    def label(self) -> str:
        """The archive label: the month, with the system's key for a per-system scorecard."""
        return archive_label(self.period, self.system)

    @property
    def prefilled_total(self) -> float:
        return round(sum(p.score for p in self.prefills.values()), 2)

    @property
    def prefilled_maximum(self) -> int:
        return sum(line[3] for line in lines() if line[1] in self.prefills)


def earlier_scores(archive: Path, period: Period, system: str | None = None) -> dict[int, float | None]:
    """Totals of the year's earlier months from their archived xlsx, if all 25 lines are scored."""
    from openpyxl import load_workbook

    scores: dict[int, float | None] = {}
    for month in range(1, period.first.month):
        label = f"{period.first.year:04d}-{month:02d}" + (f"-{system}" if system else "")
        path = render.archive_path(archive, KIND, label, "xlsx")
        if not path.exists():
            continue
        sheet = load_workbook(path, data_only=False)["评分表"]
        values = [sheet.cell(row=row, column=SCORE_COL).value
                  for row in range(FIRST_ROW, FIRST_ROW + len(lines()))]
        scores[month] = (round(sum(float(v) for v in values), 2)
                         if all(isinstance(v, int | float) for v in values) else None)
    return scores


def build_scorecard(period: Period, prom: PrometheusClient, store: TicketStore, archive: Path,
                    system: str | None = None, calendar: CalendarData | None = None) -> Scorecard:
    thresholds = load_thresholds()
    if system is not None and system not in thresholds.systems:
        raise ReportError(f"系统 {system!r} 不在 thresholds.yaml 的 systems 中（可选："
                          + "、".join(thresholds.systems) + "）")
    sla_figures = sla.collect_sla(prom, period, thresholds)
    all_records = store.tickets_touching(period.start, period.end)
    records = all_records if system is None else [t for t in all_records if t.system == system]
    figures = ticketfigures.compute_ticket_figures(records, store.rates(period.start, period.end), period)
    served = sla_figures if system is None else dc_replace(
        sla_figures,
        services=[s for s in sla_figures.services if s.service in thresholds.systems[system].services])
    owned = owned_faults(all_records, records_mod.faults(store, [t.id for t in all_records]), served, period,
                         system, thresholds)
    changed = [c for c in records_mod.changes_between(store, period.start, period.end)
               if system is None or c.system == system]
    vulns = [v for v in records_mod.vulnerabilities_until(store, period.last)
             if system is None or v.system == system]
    heard = [c for c in records_mod.complaints_between(store, period.first, period.last)
             if system is None or c.system == system]
    only = None if system is None else thresholds.systems[system].items
    prefills = {p.line: p for p in (line4(figures), line5(prom, period, only), line6(changed), line7(changed),
                                    line9(served), line10(archive, period),
                                    line11(served, period, owned, calendar), line12(vulns, period),
                                    line19(heard))}
    sources = [f"Prometheus HTTP API："
               f"{prom.url}", f"工单库：{store.engine.url.render_as_string(hide_password=True)}",
               f"报告归档：{archive}"]
    return Scorecard(period, prefills, earlier_scores(archive, period, system), sources,
                     list(sla_figures.gaps), system)


FIRST_ROW = 4
SCORE_COL = 6


def to_xlsx(card: Scorecard) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.worksheet.datavalidation import DataValidation

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "评分表"
    sheet["A1"] = (f"广西税务 {card.system_zh} {card.period.first.year} 年 "
                   f"{card.period.first.month} 月运维厂商考核评级表")
    sheet["A1"].font = Font(bold=True, size=14)
    filled = "、".join(str(n) for n in sorted(card.prefills))
    sheet["A2"] = f"第 {filled} 项已按监控与工单数据预填（依据见 G 列），局方可修改；其余各项由局方评分。"
    headers = ("分类", "序号", "项目", "分值", "评分标准", "得分", "数据依据 / 说明")
    for col, header in enumerate(headers, start=1):
        cell = sheet.cell(row=3, column=col, value=header)
        cell.font = Font(bold=True)
        cell.fill = PatternFill("solid", fgColor="EEF3F8")
    wrap = Alignment(wrap_text=True, vertical="top")
    prefilled = PatternFill("solid", fgColor="FFF4D6")
    for offset, (category, line, name, maximum, rule) in enumerate(lines()):
        row = FIRST_ROW + offset
        values = (category, line, name, maximum, rule)
        for col, value in enumerate(values, start=1):
            sheet.cell(row=row, column=col, value=value).alignment = wrap
        prefill = card.prefills.get(line)
        score = sheet.cell(row=row, column=SCORE_COL)
        note = sheet.cell(row=row, column=7)
        note.alignment = wrap
        if prefill is not None:
            score.value = prefill.score
            score.fill = prefilled
            note.value = f"预填规则：{prefill.rule}\n" + "\n".join(prefill.evidence)
        else:
            note.value = "待局方评分"
        rule_check = DataValidation(type="decimal", operator="between", formula1="0", formula2=f"D{row}",
                                    allow_blank=True, showErrorMessage=True, error="得分应在 0 与分值之间")
        sheet.add_data_validation(rule_check)
        rule_check.add(score)
    last = FIRST_ROW + len(lines()) - 1
    total_row = last + 1
    sheet.cell(row=total_row, column=3, value="合计").font = Font(bold=True)
    sheet.cell(row=total_row, column=4, value=f"=SUM(D{FIRST_ROW}:D{last})")
    sheet.cell(row=total_row, column=SCORE_COL, value=f"=IF(COUNT(F{FIRST_ROW}:F{last})={len(lines())},"
                                                      f"SUM(F{FIRST_ROW}:F{last}),\"未评完\")")
    sheet.cell(row=total_row, column=7, value=f"=COUNT(F{FIRST_ROW}:F{last})&\" / {len(lines())} 项已评分\"")
    for letter, width in zip("ABCDEFG", (8, 6, 16, 6, 48, 8, 60), strict=True):
        sheet.column_dimensions[letter].width = width
    sheet.freeze_panes = "A4"

    year = book.create_sheet("年度汇总")
    year["A1"] = f"{card.period.first.year} 年月度得分与付款档次"
    year["A1"].font = Font(bold=True, size=13)
    year["A2"] = "月份"
    year["B2"] = "得分"
    for month in range(1, 13):
        row = 2 + month
        year.cell(row=row, column=1, value=f"{month} 月")
        if month == card.period.first.month:
            year.cell(row=row, column=2, value=f"=IF(ISNUMBER(评分表!F{total_row}),评分表!F{total_row},\"\")")
        elif month in card.year_scores and card.year_scores[month] is not None:
            year.cell(row=row, column=2, value=card.year_scores[month])
    year["A16"], year["B16"] = "年平均分", "=IF(COUNT(B3:B14)=0,\"\",AVERAGE(B3:B14))"
    year["A17"], year["B17"] = "付款比例", ('=IF(B16="","",IF(B16>=90,"100%",IF(B16>=80,"95%","90%")))')
    year["A18"] = "年平均分 90 分（含）以上按合同价格 100% 支付；80-89 分按 95% 支付；80 分以下按 90% 支付。"
    year.column_dimensions["A"].width = 12
    year.column_dimensions["B"].width = 12
    buffer = BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def context(card: Scorecard, now: Any) -> dict[str, Any]:
    known = [v for v in card.year_scores.values() if v is not None]
    return {"card": card, "lines": lines(), "period": card.period, "title": TITLE, "gaps": card.gaps,
            "sources": card.sources, "generated_local": now.astimezone(REPORT_TZ), "maximum": MAXIMUM,
            "earlier_average": round(sum(known) / len(known), 2) if known else None, "tiers": TIERS}


def produce(options: Options) -> Outcome:
    from .cli import Outcome

    calendar = load_calendar(options.calendar)  # a wrong file stops the report before any query
    card = build_scorecard(options.span, PrometheusClient(options.prometheus), TicketStore(options.store),
                           options.out, options.system, calendar)
    html = render.render_html("scorecard.html.j2", context(card, options.now))
    label = card.label
    files = [render.write_atomic(render.archive_path(options.out, KIND, label, "xlsx"), to_xlsx(card)),
             render.write_atomic(render.archive_path(options.out, KIND, label, "html"), html.encode())]
    if "pdf" in options.formats:
        files.append(render.write_atomic(render.archive_path(options.out, KIND, label, "pdf"),
                                         render.html_to_pdf(html)))
    return Outcome(files, card.gaps)
