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
from .forms import FormError, Forms, Posted, local_moment, posted, storing

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
REPORT_FIELDS = (
    "channel", "reporter", "summary", "severity_class", "description", "item", "system", "reported_at",
)
SHIFT_FIELDS = ("line", "person", "mobile", "start", "end", "roster_yaml")


def _typed_shifts(typed: dict[str, str]) -> tuple[list[ShiftIn], list[str]]:
    """The shifts of the roster form (a YAML roster, else the one shift typed), or its errors."""
    line, person, mobile, roster_yaml = (typed[k] for k in ("line", "person", "mobile", "roster_yaml"))
    errors: list[str] = []
    shifts: list[ShiftIn] = []
    if roster_yaml.strip():
        try:
            shifts = parse_roster_yaml(roster_yaml)
        except RosterError as exc:
            errors.append(str(exc))
    else:
        lo, hi = local_moment(typed["start"]), local_moment(typed["end"])
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
    return shifts, errors


def add_duty_pages(
    router: APIRouter, service: Any, settings: Any, forms: Forms, *, now: Callable[[], datetime]
) -> None:
    guard, page, redirect = forms.guard, forms.page, forms.redirect

    # -- report a problem ----------------------------------------------------------------------------

    report_page = forms.form_page(
        "report.html",
        channels=lambda: REPORT_CHANNEL_ZH,
        classes=lambda: {c.value: TICKET_CLASS_ZH[c] for c in REPORT_CLASSES},
        items=lambda: ITEMS,
    )

    @router.get("/report")
    def report_form(request: Request) -> Response:
        return forms.show(request, report_page)

    @router.post("/report")
    def report(request: Request, form: Annotated[Posted, posted(*REPORT_FIELDS)]) -> Response:
        def act(who: Any, typed: dict[str, str]) -> str:
            reported_at, description = typed["reported_at"], typed["description"]
            moment = local_moment(reported_at) if reported_at.strip() else None
            if reported_at.strip() and moment is None:
                raise FormError(["报告时间格式不正确"])
            if len(description) > MAX_TEXT:
                raise FormError([f"问题描述最多 {MAX_TEXT} 字"])
            with storing():
                found = service.report(
                    who.name,
                    typed["channel"],
                    typed["reporter"],
                    typed["summary"],
                    typed["severity_class"],
                    description,
                    typed["item"] or None,
                    typed["system"] or None,
                    moment,
                )
            return f"/console/tickets/{found.id}?notice=report"

        return forms.submit(request, form, report_page, act)

    # -- roster ----------------------------------------------------------------------------------------

    def week_shifts() -> Any:
        start = now() - timedelta(hours=12)
        return service.roster(start, start + timedelta(days=7))

    roster_page = forms.form_page(
        "roster.html",
        shifts=week_shifts,
        cover=lambda: service.roster_cover(now(), now() + timedelta(days=2)),
        on_duty=lambda: service.on_duty(),
        uncovered=lambda: service.uncovered_shifts(),
        LINE_ZH=lambda: LINE_ZH,
    )

    @router.get("/roster")
    def roster(request: Request, notice: str = "") -> Response:
        return forms.show(
            request, roster_page, {"added": "班次已保存", "deleted": "班次已删除"}.get(notice, "")
        )

    @router.post("/roster")
    def add_shift(request: Request, form: Annotated[Posted, posted(*SHIFT_FIELDS)]) -> Response:
        def act(who: Any, typed: dict[str, str]) -> str:
            shifts, errors = _typed_shifts(typed)
            if errors:
                raise FormError(errors)
            with storing(split=False):
                service.add_shifts(who.name, shifts)
            return "/console/roster?notice=added"

        return forms.submit(request, form, roster_page, act)

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

    handover_page = forms.form_page(
        "handovers.html",
        handovers=lambda: service.handovers(30),
        open_tickets=lambda: service.list_tickets(state=None, limit=500),
    )

    @router.get("/handovers")
    def handovers(request: Request, notice: str = "") -> Response:
        return forms.show(request, handover_page, "交接班已记录，已通知值班人员" if notice == "done" else "")

    @router.post("/handovers")
    def handover(
        request: Request, form: Annotated[Posted, posted("from_person", "to_person", "notes")]
    ) -> Response:
        def act(who: Any, typed: dict[str, str]) -> str:
            with storing():
                service.handover(
                    who.name, typed["from_person"][:64], typed["to_person"][:64], typed["notes"][:MAX_TEXT]
                )
            return "/console/handovers?notice=done"

        return forms.submit(request, form, handover_page, act)

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
