"""The JSON API of the scorecard's records (issue 19): fault ownership of a ticket, the change register
and the tickets a change caused, the vulnerability register, complaints. Operators change, viewers
read; free text is redacted before it is stored (registers.py).

No `from __future__ import annotations` here: FastAPI resolves the dependency aliases of the
endpoints defined inside `registers_router` from their evaluated annotations.
"""

from collections.abc import Callable
from dataclasses import asdict
from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

from einvoice_core.contract import FaultOwner

from .registers import (
    ChangeKind,
    ChangeOutcome,
    FoundBy,
    RecordNotFoundError,
    Registers,
    Verification,
    VulnSeverity,
)
from .service import InvalidInputError, TicketNotFoundError

if TYPE_CHECKING:
    from .app import Notifier

T = TypeVar("T")
Text = Annotated[str, Field(max_length=10000)]


class FaultIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    owner: FaultOwner
    system: str | None = Field(default=None, max_length=32)
    """A key of thresholds.yaml `systems`; default the ticket's system."""
    evidence: str = Field(min_length=1, max_length=10000)


class FaultOut(BaseModel):
    ticket_id: int
    owner: FaultOwner
    owner_zh: str
    vendor: bool
    """Counts against the vendor in scorecard line 11 (VENDOR_FAULT_OWNERS)."""
    system: str
    evidence: str
    recorded_by: str
    recorded_at: datetime


class ChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: ChangeKind
    system: str = Field(max_length=32)
    title: str = Field(min_length=1, max_length=2000)
    version_before: str = Field(default="", max_length=128)
    version_after: str = Field(default="", max_length=128)
    parameters: Text = ""
    window_start: datetime
    window_end: datetime
    performed_by: str = Field(min_length=1, max_length=128)
    approval_ref: str = Field(default="", max_length=255)
    fixes_ticket: int | None = Field(default=None, gt=0)
    watch_end: datetime | None = None
    """End of the watch period (升级后的运行跟踪); default 7 days after the window."""


class ChangeUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    post_check: Text | None = None
    post_check_ok: bool | None = None
    watch_end: datetime | None = None
    outcome: ChangeOutcome | None = None
    outcome_note: Text | None = None


class ChangeOut(BaseModel):
    id: int
    kind: ChangeKind
    kind_zh: str
    system: str
    title: str
    version_before: str
    version_after: str
    parameters: str
    window_start: datetime
    window_end: datetime
    performed_by: str
    approval_ref: str
    fixes_ticket: int | None
    post_check: str
    post_check_ok: bool | None
    watch_end: datetime
    outcome: ChangeOutcome
    outcome_zh: str
    outcome_note: str
    created_by: str
    created_at: datetime
    updated_at: datetime
    linked_tickets: list[int]


class LinkTicketIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ticket_id: int = Field(gt=0)


class CandidateOut(BaseModel):
    id: int
    starts_at: datetime
    severity_class: str
    summary: str
    system: str | None


class VulnerabilityIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=2000)
    system: str = Field(max_length=32)
    severity: VulnSeverity
    found_by: FoundBy
    found_on: date
    reported_on: date | None = None
    bureau_scan_on: date | None = None
    deadline: datetime | None = None


class VulnerabilityUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reported_on: date | None = None
    bureau_scan_on: date | None = None
    deadline: datetime | None = None
    hardened_at: datetime | None = None
    hardening_record: Text | None = None
    rollback_watch_end: datetime | None = None


class VulnerabilityOut(BaseModel):
    id: int
    title: str
    system: str
    severity: VulnSeverity
    severity_zh: str
    found_by: FoundBy
    found_by_zh: str
    found_on: date
    reported_on: date | None
    bureau_scan_on: date | None
    exempt: bool
    """Reported to the bureau before its scan found it: no deduction in scorecard line 12."""
    deadline: datetime | None
    overdue: bool
    hardened_at: datetime | None
    hardening_record: str
    rollback_watch_end: datetime | None
    created_by: str
    created_at: datetime
    updated_at: datetime


class ComplaintIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    received_on: date
    system: str = Field(max_length=32)
    summary: str = Field(min_length=1, max_length=10000)
    ticket_id: int | None = Field(default=None, gt=0)


class VerifyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    verification: Verification
    note: str = Field(min_length=1, max_length=10000)
    ticket_id: int | None = Field(default=None, gt=0)


class ComplaintOut(BaseModel):
    id: int
    received_on: date
    system: str
    summary: str
    verification: Verification
    verification_zh: str
    verification_note: str
    ticket_id: int | None
    created_by: str
    created_at: datetime
    updated_at: datetime


def _with(view: Any, *names: str) -> dict[str, Any]:
    return {**asdict(view), **{name: getattr(view, name) for name in names}}


def registers_router(notifier: "Notifier", registers: Registers) -> APIRouter:
    from .app import Operator, Viewer, addressable

    router = APIRouter(prefix="/api/v1", tags=["registers"])

    def checked(call: Callable[[], T]) -> T:
        try:
            return call()
        except (TicketNotFoundError, RecordNotFoundError) as exc:
            raise HTTPException(404, str(exc)) from None
        except InvalidInputError as exc:
            raise HTTPException(422, str(exc)) from None

    def row_id(value: int, what: str) -> int:
        if not addressable(value):
            raise HTTPException(404, f"{what} {value} 不存在")
        return value

    def change_out(view: Any) -> ChangeOut:
        return ChangeOut.model_validate(
            {**_with(view, "kind_zh", "outcome_zh"), "linked_tickets": list(view.linked_tickets)}
        )

    def vuln_out(view: Any) -> VulnerabilityOut:
        return VulnerabilityOut.model_validate(
            {**_with(view, "severity_zh", "found_by_zh", "exempt"), "overdue": view.overdue(notifier.clock())}
        )

    def complaint_out(view: Any) -> ComplaintOut:
        return ComplaintOut.model_validate(_with(view, "verification_zh"))

    # -- fault ownership ---------------------------------------------------------------------------

    @router.get("/tickets/{ticket_id}/fault", response_model=FaultOut, summary="故障定责（故障主体与证据）")
    def get_fault(ticket_id: int, _who: Viewer) -> FaultOut:
        found = registers.fault(row_id(ticket_id, "工单"))
        if found is None:
            raise HTTPException(404, f"工单 {ticket_id} 尚未故障定责")
        return FaultOut.model_validate(_with(found, "owner_zh", "vendor"))

    @router.put("/tickets/{ticket_id}/fault", response_model=FaultOut, summary="记录故障主体、系统与证据")
    def put_fault(ticket_id: int, body: FaultIn, who: Operator) -> FaultOut:
        found = checked(
            lambda: registers.record_fault(
                row_id(ticket_id, "工单"), who.name, body.owner, body.system, body.evidence
            )
        )
        return FaultOut.model_validate(_with(found, "owner_zh", "vendor"))

    # -- changes --------------------------------------------------------------------------------------

    @router.get("/changes", response_model=list[ChangeOut], summary="变更登记（窗口或跟踪期与区间重叠）")
    def list_changes(
        _who: Viewer,
        start: datetime | None = None,
        end: datetime | None = None,
        system: Annotated[str | None, Query(max_length=32)] = None,
        limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    ) -> list[ChangeOut]:
        return [change_out(view) for view in registers.list_changes(start, end, system, limit)]

    @router.post(
        "/changes", response_model=ChangeOut, status_code=201, summary="登记变更（补丁、版本、参数、配置）"
    )
    def add_change(body: ChangeIn, who: Operator) -> ChangeOut:
        return change_out(checked(lambda: registers.add_change(who.name, **body.model_dump())))

    @router.get("/changes/{change_id}", response_model=ChangeOut, summary="变更详情")
    def get_change(change_id: int, _who: Viewer) -> ChangeOut:
        found = registers.change(row_id(change_id, "变更"))
        if found is None:
            raise HTTPException(404, f"变更 {change_id} 不存在")
        return change_out(found)

    @router.patch("/changes/{change_id}", response_model=ChangeOut, summary="升级后检查、运行跟踪与变更结果")
    def update_change(change_id: int, body: ChangeUpdate, who: Operator) -> ChangeOut:
        fields = body.model_dump(exclude_none=True)
        return change_out(
            checked(lambda: registers.update_change(row_id(change_id, "变更"), who.name, **fields))
        )

    @router.post("/changes/{change_id}/tickets", response_model=ChangeOut, summary="关联变更引起的工单")
    def link_ticket(change_id: int, body: LinkTicketIn, who: Operator) -> ChangeOut:
        return change_out(
            checked(lambda: registers.link_ticket(row_id(change_id, "变更"), body.ticket_id, who.name))
        )

    @router.get(
        "/changes/{change_id}/candidates",
        response_model=list[CandidateOut],
        summary="可能由该变更引起的工单（同系统、窗口开始至跟踪截止之间）",
    )
    def candidates(change_id: int, _who: Viewer) -> list[CandidateOut]:
        return [
            CandidateOut.model_validate(asdict(c))
            for c in checked(lambda: registers.candidates(row_id(change_id, "变更")))
        ]

    # -- vulnerabilities -------------------------------------------------------------------------------

    @router.get("/vulnerabilities", response_model=list[VulnerabilityOut], summary="漏洞登记")
    def list_vulnerabilities(
        _who: Viewer,
        system: Annotated[str | None, Query(max_length=32)] = None,
        open_only: bool = False,
        limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    ) -> list[VulnerabilityOut]:
        return [vuln_out(view) for view in registers.list_vulnerabilities(system, open_only, limit)]

    @router.post("/vulnerabilities", response_model=VulnerabilityOut, status_code=201, summary="登记漏洞")
    def add_vulnerability(body: VulnerabilityIn, who: Operator) -> VulnerabilityOut:
        return vuln_out(checked(lambda: registers.add_vulnerability(who.name, **body.model_dump())))

    @router.get("/vulnerabilities/{vuln_id}", response_model=VulnerabilityOut, summary="漏洞详情")
    def get_vulnerability(vuln_id: int, _who: Viewer) -> VulnerabilityOut:
        found = registers.vulnerability(row_id(vuln_id, "漏洞"))
        if found is None:
            raise HTTPException(404, f"漏洞 {vuln_id} 不存在")
        return vuln_out(found)

    @router.patch(
        "/vulnerabilities/{vuln_id}",
        response_model=VulnerabilityOut,
        summary="报告税务局、加固期限、加固留档记录、回退观察",
    )
    def update_vulnerability(vuln_id: int, body: VulnerabilityUpdate, who: Operator) -> VulnerabilityOut:
        fields = body.model_dump(exclude_none=True)
        return vuln_out(
            checked(lambda: registers.update_vulnerability(row_id(vuln_id, "漏洞"), who.name, **fields))
        )

    # -- complaints ------------------------------------------------------------------------------------

    @router.get("/complaints", response_model=list[ComplaintOut], summary="投诉登记")
    def list_complaints(
        _who: Viewer,
        system: Annotated[str | None, Query(max_length=32)] = None,
        limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    ) -> list[ComplaintOut]:
        return [complaint_out(view) for view in registers.list_complaints(system, limit)]

    @router.post("/complaints", response_model=ComplaintOut, status_code=201, summary="登记投诉")
    def add_complaint(body: ComplaintIn, who: Operator) -> ComplaintOut:
        return complaint_out(checked(lambda: registers.add_complaint(who.name, **body.model_dump())))

    @router.post("/complaints/{complaint_id}/verify", response_model=ComplaintOut, summary="投诉核实结果")
    def verify(complaint_id: int, body: VerifyIn, who: Operator) -> ComplaintOut:
        return complaint_out(
            checked(
                lambda: registers.verify_complaint(
                    row_id(complaint_id, "投诉"), who.name, body.verification, body.note, body.ticket_id
                )
            )
        )

    return router
