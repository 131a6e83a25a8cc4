"""The JSON API of the people side of ticket work: reported problems, escalation, major incidents,
the agreed fix date, same-problem links, the duty roster, handovers, the daily inspection, the
knowledge base. Operators change, viewers read; every change goes through TicketService (audited).

No `from __future__ import annotations` here: FastAPI resolves the dependency aliases of the
endpoints defined inside `duty_router` from their evaluated annotations.
"""

from collections.abc import Callable
from dataclasses import asdict
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from einvoice_core.contract import ReportChannel, TicketClass

from .duty import InspectionEntry, ShiftIn
from .service import InvalidInputError, InvalidTransitionError, TicketNotFoundError, TicketView

if TYPE_CHECKING:
    from .app import Notifier


class ReportIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channel: ReportChannel
    reporter: str = Field(min_length=1, max_length=500)
    """Free text (who called, which office); redacted in anything that leaves the notifier."""
    summary: str = Field(min_length=1, max_length=2000)
    severity_class: TicketClass
    description: str = Field(default="", max_length=10000)
    item: str | None = None
    system: str | None = Field(default=None, max_length=512)
    reported_at: datetime | None = None
    """When the report came in (the clocks start here); default now; at most 24 hours back."""


class EscalateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    target: Literal["second_line", "bureau"]
    note: str = Field(min_length=1, max_length=10000)


class MajorIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field(min_length=1, max_length=10000)


class AgreedFixIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fix_at: datetime
    approval_ref: str = Field(min_length=1, max_length=255)


class LinkIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    same_as: int = Field(gt=0)


class TypicalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    typical: bool = True


class ShiftsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    shifts: list[ShiftIn] = Field(min_length=1, max_length=2000)


class ShiftOut(BaseModel):
    id: int
    line: str
    person: str
    mobile: str | None
    starts_at: datetime
    ends_at: datetime
    created_by: str


class CoverOut(BaseModel):
    line: str
    start: datetime
    end: datetime
    important: bool
    covered: bool
    people: list[str]


class HandoverIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    from_person: str = Field(min_length=1, max_length=64)
    to_person: str = Field(min_length=1, max_length=64)
    notes: str = Field(default="", max_length=10000)


class HandoverOut(BaseModel):
    id: int
    at: datetime
    actor: str
    from_person: str
    to_person: str
    open_tickets: list[int]
    notes: str


class InspectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    day: date | None = None
    """The local day (Asia/Shanghai); default today."""
    entries: list[InspectionEntry] = Field(min_length=1, max_length=40)
    notes: str = Field(default="", max_length=10000)
    source: Literal["prometheus", "none", "error"] = "none"


class InspectionOut(BaseModel):
    day: str
    signed_by: str
    signed_at: datetime
    source: str
    entries: list[dict[str, Any]]
    notes: str
    late: bool


class InspectionDayOut(BaseModel):
    day: str
    due_at: datetime
    state: Literal["on_time", "late", "missing", "pending"]
    signed_by: str | None
    signed_at: datetime | None


class InspectionSummaryOut(BaseModel):
    """Inspections due vs done per period (scorecard line 5, 检查频次要求)."""

    start: str
    end: str
    due: int
    done: int
    on_time: int
    late: int
    missing: int
    days: list[InspectionDayOut]


class KnowledgeOut(BaseModel):
    id: int
    summary: str
    item: str | None
    severity_class: str
    cause: str
    solution: str
    closed_at: datetime | None
    typical: bool
    source: str


def duty_router(notifier: "Notifier") -> APIRouter:
    from .app import Operator, TicketOut, Viewer, _ticket_out, addressable

    service = notifier.service
    router = APIRouter(prefix="/api/v1", tags=["duty"])

    def act(ticket_id: int, call: Callable[[], TicketView]) -> TicketOut:
        if not addressable(ticket_id):
            raise HTTPException(404, f"工单 {ticket_id} 不存在")
        try:
            return _ticket_out(call())
        except TicketNotFoundError as exc:
            raise HTTPException(404, str(exc)) from None
        except InvalidTransitionError as exc:
            raise HTTPException(409, str(exc)) from None
        except InvalidInputError as exc:
            raise HTTPException(422, str(exc)) from None

    def checked(call: Callable[[], Any]) -> Any:
        try:
            return call()
        except InvalidInputError as exc:
            raise HTTPException(422, str(exc)) from None

    @router.post("/tickets/report", response_model=TicketOut, status_code=201, summary="报告问题（人工建单）")
    def report(body: ReportIn, who: Operator) -> TicketOut:
        return _ticket_out(
            checked(
                lambda: service.report(
                    who.name,
                    body.channel,
                    body.reporter,
                    body.summary,
                    body.severity_class,
                    body.description,
                    body.item,
                    body.system,
                    body.reported_at,
                )
            )
        )

    @router.post(
        "/tickets/{ticket_id}/escalate", response_model=TicketOut, summary="转二线或提交税务局系统管理员"
    )
    def escalate(ticket_id: int, body: EscalateIn, who: Operator) -> TicketOut:
        return act(ticket_id, lambda: service.escalate(ticket_id, who.name, body.target, body.note))

    @router.post(
        "/tickets/{ticket_id}/major", response_model=TicketOut, summary="宣布重大事件（二线专家会诊）"
    )
    def major(ticket_id: int, body: MajorIn, who: Operator) -> TicketOut:
        return act(ticket_id, lambda: service.declare_major_incident(ticket_id, who.name, body.note))

    @router.post(
        "/tickets/{ticket_id}/agreed-fix", response_model=TicketOut, summary="约定解决日期（税务局批准）"
    )
    def agreed_fix(ticket_id: int, body: AgreedFixIn, who: Operator) -> TicketOut:
        return act(
            ticket_id, lambda: service.set_agreed_fix(ticket_id, who.name, body.fix_at, body.approval_ref)
        )

    @router.post("/tickets/{ticket_id}/link", response_model=TicketOut, summary="关联同一问题（只计一次）")
    def link(ticket_id: int, body: LinkIn, who: Operator) -> TicketOut:
        return act(ticket_id, lambda: service.link_same_problem(ticket_id, body.same_as, who.name))

    @router.post("/tickets/{ticket_id}/typical", response_model=TicketOut, summary="列为典型问题（季度手册）")
    def typical(ticket_id: int, body: TypicalIn, who: Operator) -> TicketOut:
        return act(ticket_id, lambda: service.mark_typical(ticket_id, who.name, body.typical))

    @router.get("/major-incidents", response_model=list[TicketOut], summary="重大事件（事件分析报告）")
    def major_incidents(_who: Viewer, start: datetime, end: datetime) -> list[TicketOut]:
        if start.tzinfo is None or end.tzinfo is None or end <= start:
            raise HTTPException(422, "统计区间需要带时区的开始与结束时间，且结束晚于开始")
        return [_ticket_out(view) for view in service.major_incidents(start, end)]

    # -- roster ------------------------------------------------------------------------------------

    def window(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
        now = notifier.clock()
        lo = start or now - timedelta(hours=12)
        hi = end or lo + timedelta(days=7)
        if lo.tzinfo is None or hi.tzinfo is None or hi <= lo or hi - lo > timedelta(days=62):
            raise HTTPException(422, "区间需要带时区，结束晚于开始，最长 62 天")
        return lo, hi

    @router.get("/roster", response_model=list[ShiftOut], summary="值班表（区间内的班次）")
    def roster(_who: Viewer, start: datetime | None = None, end: datetime | None = None) -> list[ShiftOut]:
        lo, hi = window(start, end)
        return [ShiftOut.model_validate(asdict(shift)) for shift in service.roster(lo, hi)]

    @router.post("/roster", response_model=list[int], status_code=201, summary="添加班次")
    def add_shifts(body: ShiftsIn, who: Operator) -> list[int]:
        return checked(lambda: service.add_shifts(who.name, body.shifts))

    @router.delete("/roster/{shift_id}", status_code=204, summary="删除班次")
    def delete_shift(shift_id: int, who: Operator) -> Response:
        if not addressable(shift_id):
            raise HTTPException(404, f"班次 {shift_id} 不存在")
        try:
            service.delete_shift(shift_id, who.name)
        except InvalidInputError as exc:
            raise HTTPException(404, str(exc)) from None
        return Response(status_code=204)

    @router.get("/roster/on-duty", summary="当前值班人员")
    def on_duty(_who: Viewer) -> dict[str, list[ShiftOut]]:
        return {
            line: [ShiftOut.model_validate(asdict(s)) for s in shifts]
            for line, shifts in service.on_duty().items()
        }

    @router.get("/roster/cover", response_model=list[CoverOut], summary="需值守的班次及是否有人")
    def cover(_who: Viewer, start: datetime | None = None, end: datetime | None = None) -> list[CoverOut]:
        lo, hi = window(start, end)
        return [
            CoverOut(
                line=r.line,
                start=r.start,
                end=r.end,
                important=r.important,
                covered=r.covered,
                people=list(r.people),
            )
            for r in service.roster_cover(lo, hi)
        ]

    @router.post("/handovers", response_model=HandoverOut, status_code=201, summary="交接班")
    def handover(body: HandoverIn, who: Operator) -> HandoverOut:
        found = checked(lambda: service.handover(who.name, body.from_person, body.to_person, body.notes))
        return HandoverOut.model_validate({**asdict(found), "open_tickets": list(found.open_tickets)})

    @router.get("/handovers", response_model=list[HandoverOut], summary="交接班记录")
    def handovers(_who: Viewer, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[HandoverOut]:
        return [
            HandoverOut.model_validate({**asdict(h), "open_tickets": list(h.open_tickets)})
            for h in service.handovers(limit)
        ]

    # -- inspections ---------------------------------------------------------------------------------

    def inspection_out(found: Any) -> InspectionOut:
        return InspectionOut.model_validate({**asdict(found), "entries": list(found.entries)})

    @router.get("/inspections/prefill", summary="今日巡检预填（来自 Prometheus）")
    def prefill(_who: Viewer) -> dict[str, Any]:
        found = service.inspection_prefill()
        return {"source": found.source, "error": found.error, "seen": found.seen}

    @router.post("/inspections", response_model=InspectionOut, status_code=201, summary="签署日常巡检")
    def sign(body: InspectionIn, who: Operator) -> InspectionOut:
        day = body.day or service.local_today()
        return inspection_out(
            checked(lambda: service.sign_inspection(who.name, day, body.entries, body.notes, body.source))
        )

    @router.get(
        "/inspections/summary", response_model=InspectionSummaryOut, summary="巡检应做与已做（按区间）"
    )
    def summary(_who: Viewer, start: date | None = None, end: date | None = None) -> InspectionSummaryOut:
        today = service.local_today()
        lo = start or today.replace(day=1)
        hi = end or today
        found = checked(lambda: service.inspection_summary(lo, hi))
        return InspectionSummaryOut.model_validate(
            {**asdict(found), "days": [asdict(day) for day in found.days]}
        )

    @router.get("/inspections/{day}", response_model=InspectionOut, summary="某日巡检记录")
    def get_inspection(day: date, _who: Viewer) -> InspectionOut:
        found = service.inspection(day)
        if found is None:
            raise HTTPException(404, f"{day.isoformat()} 没有已签署的巡检")
        return inspection_out(found)

    # -- knowledge base ------------------------------------------------------------------------------

    @router.get(
        "/knowledge", response_model=list[KnowledgeOut], summary="知识库（已关闭工单的原因与解决方案）"
    )
    def knowledge(
        _who: Viewer,
        q: Annotated[str, Query(max_length=200)] = "",
        typical: bool = False,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[KnowledgeOut]:
        return [KnowledgeOut.model_validate(row) for row in service.knowledge(q, typical, limit)]

    return router
