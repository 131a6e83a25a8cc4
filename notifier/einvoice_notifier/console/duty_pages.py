"""Console pages of the people side of ticket work: report a problem (报告问题), the duty roster
(值班表), shift handovers (交接班), today's inspection (日常巡检) and the knowledge base (知识库).

Same rules as the ticket pages: a login to read, the operator role and the session's CSRF token to
change anything, every error of a form at once with what was typed kept, Chinese text throughout.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from einvoice_core.catalogue import ITEMS
from einvoice_core.contract import REPORT_CHANNEL_ZH, TICKET_CLASS_ZH, TicketClass

from ..duty import InspectionEntry, RosterError, ShiftIn, parse_roster_yaml
from .views import SHANGHAI

REPORT_CLASSES = (
    TicketClass.ROUTINE,
    TicketClass.GENERAL,
    TicketClass.URGENT,
    TicketClass.STALL,
    TicketClass.OUTAGE,
)
SEEN_ZH = {"up": "正常", "down": "异常", "unknown": "无数据"}
SOURCE_ZH = {
    "prometheus": "已按 Prometheus 当前检查结果预填",
    "none": "未配置 Prometheus（prometheus_url），未预填，请逐项检查",
    "error": "Prometheus 查询失败，未预填，请逐项检查",
}
LINE_ZH = {"first_line": "一线（驻场）", "second_line": "二线"}
STATE_DAY_ZH = {"on_time": "按时", "late": "逾期签署", "missing": "缺失", "pending": "待完成"}
MAX_TEXT = 10000


def _local_input(text: str) -> datetime | None:
    try:
        found = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return found.replace(tzinfo=SHANGHAI) if found.tzinfo is None else found


def add_duty_pages(
    router: APIRouter,
    service: Any,
    settings: Any,
    *,
    viewer_of: Callable[[Request], Any],
    page: Callable[..., Response],
    to_login: Callable[[Request], Response],
    redirect: Callable[[str], Response],
    csrf_ok: Callable[[Any, str], bool],
    now: Callable[[], datetime],
) -> None:
    def guard(request: Request, csrf: str | None = None) -> tuple[Any, Response | None]:
        """The viewer, or the answer when not logged in / not allowed (csrf given: a change)."""
        who = viewer_of(request)
        if who is None:
            return None, to_login(request)
        if csrf is not None and not csrf_ok(who, csrf):
            return who, page("error.html", 403, who=who, message="请求已过期或来源不明，请刷新页面后重试")
        if csrf is not None and not who.operator:
            return who, page("error.html", 403, who=who, message="只读账号不能执行此操作")
        return who, None

    # -- report a problem ----------------------------------------------------------------------------

    def report_page(
        who: Any, status: int = 200, values: dict[str, str] | None = None, errors: list[str] | None = None
    ) -> Response:
        return page(
            "report.html",
            status,
            who=who,
            values=values or {},
            errors=errors or [],
            channels=REPORT_CHANNEL_ZH,
            classes={c.value: TICKET_CLASS_ZH[c] for c in REPORT_CLASSES},
            items=ITEMS,
        )

    @router.get("/report")
    def report_form(request: Request) -> Response:
        who, refused = guard(request)
        return refused or report_page(who)

    @router.post("/report")
    def report(
        request: Request,
        csrf: Annotated[str, Form()] = "",
        channel: Annotated[str, Form()] = "",
        reporter: Annotated[str, Form()] = "",
        summary: Annotated[str, Form()] = "",
        severity_class: Annotated[str, Form()] = "",
        description: Annotated[str, Form()] = "",
        item: Annotated[str, Form()] = "",
        system: Annotated[str, Form()] = "",
        reported_at: Annotated[str, Form()] = "",
    ) -> Response:
        who, refused = guard(request, csrf)
        if refused:
            return refused
        values = {
            "channel": channel,
            "reporter": reporter,
            "summary": summary,
            "severity_class": severity_class,
            "description": description,
            "item": item,
            "system": system,
            "reported_at": reported_at,
        }
        moment = _local_input(reported_at) if reported_at.strip() else None
        if reported_at.strip() and moment is None:
            return report_page(who, 422, values, ["报告时间格式不正确"])
        if len(description) > MAX_TEXT:
            return report_page(who, 422, values, [f"问题描述最多 {MAX_TEXT} 字"])
        try:
            found = service.report(
                who.name,
                channel,
                reporter,
                summary,
                severity_class,
                description,
                item or None,
                system or None,
                moment,
            )
        except ValueError as exc:
            return report_page(who, 422, values, str(exc).split("；"))
        return redirect(f"/console/tickets/{found.id}?notice=report")

    # -- roster ----------------------------------------------------------------------------------------

    def roster_page(
        who: Any,
        status: int = 200,
        values: dict[str, str] | None = None,
        errors: list[str] | None = None,
        notice: str = "",
    ) -> Response:
        start = now() - timedelta(hours=12)
        end = start + timedelta(days=7)
        return page(
            "roster.html",
            status,
            who=who,
            shifts=service.roster(start, end),
            cover=service.roster_cover(now(), now() + timedelta(days=2)),
            on_duty=service.on_duty(),
            uncovered=service.uncovered_shifts(),
            values=values or {},
            errors=errors or [],
            notice=notice,
            LINE_ZH=LINE_ZH,
        )

    @router.get("/roster")
    def roster(request: Request, notice: str = "") -> Response:
        who, refused = guard(request)
        return refused or roster_page(
            who, notice={"added": "班次已保存", "deleted": "班次已删除"}.get(notice, "")
        )

    @router.post("/roster")
    def add_shift(
        request: Request,
        csrf: Annotated[str, Form()] = "",
        line: Annotated[str, Form()] = "",
        person: Annotated[str, Form()] = "",
        mobile: Annotated[str, Form()] = "",
        start: Annotated[str, Form()] = "",
        end: Annotated[str, Form()] = "",
        roster_yaml: Annotated[str, Form()] = "",
    ) -> Response:
        who, refused = guard(request, csrf)
        if refused:
            return refused
        values = {
            "line": line,
            "person": person,
            "mobile": mobile,
            "start": start,
            "end": end,
            "roster_yaml": roster_yaml,
        }
        errors: list[str] = []
        shifts: list[ShiftIn] = []
        if roster_yaml.strip():
            try:
                shifts = parse_roster_yaml(roster_yaml)
            except RosterError as exc:
                errors.append(str(exc))
        else:
            lo, hi = _local_input(start), _local_input(end)
            if line not in LINE_ZH:
                errors.append("请选择一线或二线")
            if not person.strip():
                errors.append("请填写值班人员")
            if lo is None or hi is None:
                errors.append("请填写班次的开始与结束时间")
            if not errors and lo is not None and hi is not None:
                try:
                    shifts = [
                        ShiftIn.model_validate(
                            {"line": line, "person": person, "mobile": mobile.strip() or None,
                             "start": lo, "end": hi}
                        ).checked()
                    ]
                except (ValueError, RosterError) as exc:
                    errors.append("手机号格式不正确" if "mobile" in str(exc) else str(exc).splitlines()[0])
        if errors:
            return roster_page(who, 422, values, errors)
        try:
            service.add_shifts(who.name, shifts)
        except ValueError as exc:
            return roster_page(who, 422, values, [str(exc)])
        return redirect("/console/roster?notice=added")

    @router.post("/roster/{shift_id}/delete")
    def delete_shift(request: Request, shift_id: str, csrf: Annotated[str, Form()] = "") -> Response:
        who, refused = guard(request, csrf)
        if refused:
            return refused
        if not shift_id.isdigit() or len(shift_id) > 18:
            return roster_page(who, 404, errors=["班次不存在"])
        try:
            service.delete_shift(int(shift_id), who.name)
        except ValueError as exc:
            return roster_page(who, 404, errors=[str(exc)])
        return redirect("/console/roster?notice=deleted")

    # -- handovers --------------------------------------------------------------------------------------

    def handover_page(
        who: Any,
        status: int = 200,
        values: dict[str, str] | None = None,
        errors: list[str] | None = None,
        notice: str = "",
    ) -> Response:
        return page(
            "handovers.html",
            status,
            who=who,
            handovers=service.handovers(30),
            open_tickets=service.list_tickets(state=None, limit=500),
            values=values or {},
            errors=errors or [],
            notice=notice,
        )

    @router.get("/handovers")
    def handovers(request: Request, notice: str = "") -> Response:
        who, refused = guard(request)
        return refused or handover_page(
            who, notice="交接班已记录，已通知值班人员" if notice == "done" else ""
        )

    @router.post("/handovers")
    def handover(
        request: Request,
        csrf: Annotated[str, Form()] = "",
        from_person: Annotated[str, Form()] = "",
        to_person: Annotated[str, Form()] = "",
        notes: Annotated[str, Form()] = "",
    ) -> Response:
        who, refused = guard(request, csrf)
        if refused:
            return refused
        values = {"from_person": from_person, "to_person": to_person, "notes": notes}
        try:
            service.handover(who.name, from_person[:64], to_person[:64], notes[:MAX_TEXT])
        except ValueError as exc:
            return handover_page(who, 422, values, str(exc).split("；"))
        return redirect("/console/handovers?notice=done")

    # -- the daily inspection ----------------------------------------------------------------------------

    @router.get("/inspection")
    def inspection(request: Request, notice: str = "") -> Response:
        who, refused = guard(request)
        if refused:
            return refused
        return inspection_page(who, notice="巡检已签署" if notice == "signed" else "")

    def inspection_page(
        who: Any,
        status: int = 200,
        errors: list[str] | None = None,
        notice: str = "",
        typed: dict[str, str] | None = None,
    ) -> Response:
        today: date = service.local_today()
        signed = service.inspection(today)
        prefill = service.inspection_prefill() if signed is None else None
        month = service.inspection_summary(today.replace(day=1), today)
        return page(
            "inspection.html",
            status,
            who=who,
            today=today.isoformat(),
            signed=signed,
            prefill=prefill,
            summary=month,
            items=ITEMS,
            errors=errors or [],
            notice=notice,
            typed=typed or {},
            SEEN_ZH=SEEN_ZH,
            SOURCE_ZH=SOURCE_ZH,
            STATE_DAY_ZH=STATE_DAY_ZH,
            due=settings.inspection_due,
        )

    @router.post("/inspection")
    async def sign_inspection(request: Request) -> Response:
        form = await request.form()
        typed = {key: str(value) for key, value in form.items()}
        who, refused = guard(request, typed.get("csrf", ""))
        if refused:
            return refused
        entries = []
        errors = []
        for item in ITEMS:
            state = typed.get(f"state_{item.id}", "")
            finding = typed.get(f"finding_{item.id}", "")[:2000]
            if state not in ("normal", "abnormal"):
                errors.append(f"第 {item.id} 项未确认")
                continue
            if state == "abnormal" and not finding.strip():
                errors.append(f"第 {item.id} 项为异常，请填写发现的问题")
            seen = typed.get(f"seen_{item.id}", "unknown")
            entries.append(
                InspectionEntry(
                    item=item.id,
                    seen=seen if seen in SEEN_ZH else "unknown",  # type: ignore[arg-type]
                    normal=state == "normal",
                    finding=finding,
                )
            )
        if errors:
            return inspection_page(who, 422, errors, typed=typed)
        source = typed.get("source", "none")
        try:
            service.sign_inspection(
                who.name,
                service.local_today(),
                entries,
                typed.get("notes", "")[:MAX_TEXT],
                source if source in SOURCE_ZH else "none",
            )
        except ValueError as exc:
            return inspection_page(who, 409, [str(exc)], typed=typed)
        return redirect("/console/inspection?notice=signed")

    # -- knowledge base -----------------------------------------------------------------------------------

    @router.get("/knowledge")
    def knowledge(request: Request, q: str = "", typical: str = "") -> Response:
        who, refused = guard(request)
        if refused:
            return refused
        query = q[:200]
        found = service.knowledge(query, typical == "yes", 200)
        return page("knowledge.html", who=who, q=query, typical=typical == "yes", rows=found, quote=quote)
