"""Console pages of the scorecard's records (issue 19): fault ownership on a ticket's page with its
evidence pack, the change register (变更登记) with the tickets a change caused, the vulnerability
register (漏洞登记) and complaints (投诉登记).

Same rules as the other pages: a login to read, the operator role and the session's CSRF token to
change anything, every error of a form at once with what was typed kept, Chinese text throughout.
Every change goes through registers.Registers (redacted, audited)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any

import jinja2
from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from einvoice_core.contract import FAULT_OWNER_ZH, VENDOR_FAULT_OWNERS

from ..registers import (
    CHANGE_KIND_ZH,
    CHANGE_OUTCOME_ZH,
    FAULT_CLASSES,
    FOUND_BY_ZH,
    VERIFICATION_ZH,
    VULN_SEVERITY_ZH,
    RecordNotFoundError,
    Registers,
)
from ..service import TicketNotFoundError
from ..systems import system_names
from .views import SHANGHAI

NOTICES = {
    "fault": "故障定责已保存",
    "added": "已登记",
    "updated": "已更新",
    "linked": "已关联工单",
    "verified": "核实结果已保存",
}


def _moment(text: str) -> datetime | None:
    """A datetime-local form value (Beijing wall clock) as an aware datetime; None when empty/bad."""
    try:
        found = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return found.replace(tzinfo=SHANGHAI) if found.tzinfo is None else found


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        return None


def _row_id(raw: str) -> int | None:
    return int(raw) if raw.isdigit() and len(raw) <= 18 and int(raw) > 0 else None


def add_register_pages(
    router: APIRouter,
    service: Any,
    settings: Any,
    env: jinja2.Environment,
    *,
    viewer_of: Callable[[Request], Any],
    page: Callable[..., Response],
    to_login: Callable[[Request], Response],
    redirect: Callable[[str], Response],
    csrf_ok: Callable[[Any, str], bool],
) -> None:
    registers = Registers(service.engine, service.clock)
    systems = system_names()
    reports_url = (getattr(settings, "reports_url", None) or "").rstrip("/")

    def evidence_url(ticket_id: int) -> str:
        return f"{reports_url}/evidence/ticket-{ticket_id}.html" if reports_url else ""

    def fault_of(ticket: Any) -> Any:
        return registers.fault(ticket.id)

    def needs_owner(ticket: Any) -> bool:
        return ticket.severity_class in FAULT_CLASSES or ticket.major_incident_at is not None

    env.globals.update(
        fault_of=fault_of,
        needs_owner=needs_owner,
        evidence_url=evidence_url,
        FAULT_OWNER_ZH={k.value: v for k, v in FAULT_OWNER_ZH.items()},
        VENDOR_FAULT_OWNERS={k.value for k in VENDOR_FAULT_OWNERS},
        SYSTEMS=systems,
        CHANGE_KIND_ZH={k.value: v for k, v in CHANGE_KIND_ZH.items()},
        CHANGE_OUTCOME_ZH={k.value: v for k, v in CHANGE_OUTCOME_ZH.items()},
        VULN_SEVERITY_ZH={k.value: v for k, v in VULN_SEVERITY_ZH.items()},
        FOUND_BY_ZH={k.value: v for k, v in FOUND_BY_ZH.items()},
        VERIFICATION_ZH={k.value: v for k, v in VERIFICATION_ZH.items()},
    )

    def guard(request: Request, csrf: str | None = None) -> tuple[Any, Response | None]:
        who = viewer_of(request)
        if who is None:
            return None, to_login(request)
        if csrf is not None and not csrf_ok(who, csrf):
            return who, page("error.html", 403, who=who, message="请求已过期或来源不明，请刷新页面后重试")
        if csrf is not None and not who.operator:
            return who, page("error.html", 403, who=who, message="只读账号不能执行此操作")
        return who, None

    def failed(who: Any, exc: Exception) -> Response:
        status = 404 if isinstance(exc, LookupError) else 422
        return page("error.html", status, who=who, message=str(exc))

    # -- fault ownership -------------------------------------------------------------------------------

    @router.post("/tickets/{ticket_id}/fault")
    def record_fault(
        request: Request,
        ticket_id: str,
        csrf: Annotated[str, Form()] = "",
        owner: Annotated[str, Form()] = "",
        system: Annotated[str, Form()] = "",
        evidence: Annotated[str, Form()] = "",
    ) -> Response:
        who, refused = guard(request, csrf)
        if refused:
            return refused
        found = _row_id(ticket_id)
        if found is None:
            return page("error.html", 404, who=who, message=f"工单 {ticket_id[:32]} 不存在")
        try:
            registers.record_fault(found, who.name, owner, system or None, evidence)
        except (TicketNotFoundError, ValueError) as exc:
            return failed(who, exc)
        return redirect(f"/console/tickets/{found}?notice=fault")

    # -- changes ------------------------------------------------------------------------------------------

    def changes_page(
        who: Any,
        status: int = 200,
        values: dict[str, str] | None = None,
        errors: list[str] | None = None,
        notice: str = "",
    ) -> Response:
        return page(
            "changes.html",
            status,
            who=who,
            changes=registers.list_changes(limit=200),
            values=values or {},
            errors=errors or [],
            notice=notice,
        )

    @router.get("/changes")
    def changes(request: Request, notice: str = "") -> Response:
        who, refused = guard(request)
        return refused or changes_page(who, notice=NOTICES.get(notice, ""))

    @router.post("/changes")
    def add_change(
        request: Request,
        csrf: Annotated[str, Form()] = "",
        kind: Annotated[str, Form()] = "",
        system: Annotated[str, Form()] = "",
        title: Annotated[str, Form()] = "",
        version_before: Annotated[str, Form()] = "",
        version_after: Annotated[str, Form()] = "",
        parameters: Annotated[str, Form()] = "",
        window_start: Annotated[str, Form()] = "",
        window_end: Annotated[str, Form()] = "",
        watch_end: Annotated[str, Form()] = "",
        performed_by: Annotated[str, Form()] = "",
        approval_ref: Annotated[str, Form()] = "",
        fixes_ticket: Annotated[str, Form()] = "",
    ) -> Response:
        who, refused = guard(request, csrf)
        if refused:
            return refused
        values = {
            "kind": kind,
            "system": system,
            "title": title,
            "version_before": version_before,
            "version_after": version_after,
            "parameters": parameters,
            "window_start": window_start,
            "window_end": window_end,
            "watch_end": watch_end,
            "performed_by": performed_by,
            "approval_ref": approval_ref,
            "fixes_ticket": fixes_ticket,
        }
        start, end = _moment(window_start), _moment(window_end)
        watch = _moment(watch_end) if watch_end.strip() else None
        errors = [
            text
            for bad, text in (
                (start is None, "请填写变更窗口开始时间"),
                (end is None, "请填写变更窗口结束时间"),
                (bool(watch_end.strip()) and watch is None, "运行跟踪截止时间格式不正确"),
                (
                    bool(fixes_ticket.strip()) and _row_id(fixes_ticket.strip().lstrip("#")) is None,
                    "要解决的工单编号不正确",
                ),
            )
            if bad
        ]
        if errors or start is None or end is None:
            return changes_page(who, 422, values, errors)
        try:
            made = registers.add_change(
                who.name,
                kind=kind,
                system=system,
                title=title,
                window_start=start,
                window_end=end,
                performed_by=performed_by,
                watch_end=watch,
                version_before=version_before,
                version_after=version_after,
                parameters=parameters,
                approval_ref=approval_ref,
                fixes_ticket=_row_id(fixes_ticket.strip().lstrip("#")) if fixes_ticket.strip() else None,
            )
        except ValueError as exc:
            return changes_page(who, 422, values, str(exc).split("；"))
        return redirect(f"/console/changes/{made.id}?notice=added")

    def change_page(
        who: Any,
        change_id: int,
        status: int = 200,
        errors: list[str] | None = None,
        notice: str = "",
        values: dict[str, str] | None = None,
    ) -> Response:
        found = registers.change(change_id)
        if found is None:
            return page("error.html", 404, who=who, message=f"变更 {change_id} 不存在")
        return page(
            "change.html",
            status,
            who=who,
            c=found,
            candidates=registers.candidates(change_id),
            history=registers.history("change", change_id),
            errors=errors or [],
            notice=notice,
            values=values or {},
        )

    @router.get("/changes/{change_id}")
    def change(request: Request, change_id: str, notice: str = "") -> Response:
        who, refused = guard(request)
        if refused:
            return refused
        found = _row_id(change_id)
        if found is None:
            return page("error.html", 404, who=who, message=f"变更 {change_id[:32]} 不存在")
        return change_page(who, found, notice=NOTICES.get(notice, ""))

    @router.post("/changes/{change_id}")
    def update_change(
        request: Request,
        change_id: str,
        csrf: Annotated[str, Form()] = "",
        post_check: Annotated[str, Form()] = "",
        post_check_ok: Annotated[str, Form()] = "",
        watch_end: Annotated[str, Form()] = "",
        outcome: Annotated[str, Form()] = "",
        outcome_note: Annotated[str, Form()] = "",
    ) -> Response:
        who, refused = guard(request, csrf)
        if refused:
            return refused
        found = _row_id(change_id)
        if found is None:
            return page("error.html", 404, who=who, message=f"变更 {change_id[:32]} 不存在")
        values = {
            "post_check": post_check,
            "post_check_ok": post_check_ok,
            "watch_end": watch_end,
            "outcome": outcome,
            "outcome_note": outcome_note,
        }
        watch = _moment(watch_end) if watch_end.strip() else None
        if watch_end.strip() and watch is None:
            return change_page(who, found, 422, ["运行跟踪截止时间格式不正确"], values=values)
        try:
            registers.update_change(
                found,
                who.name,
                post_check=post_check if post_check.strip() else None,
                post_check_ok={"yes": True, "no": False}.get(post_check_ok),
                watch_end=watch,
                outcome=outcome or None,
                outcome_note=outcome_note if outcome_note.strip() else None,
            )
        except RecordNotFoundError as exc:
            return failed(who, exc)
        except ValueError as exc:
            return change_page(who, found, 422, str(exc).split("；"), values=values)
        return redirect(f"/console/changes/{found}?notice=updated")

    @router.post("/changes/{change_id}/tickets")
    def link_ticket(
        request: Request,
        change_id: str,
        csrf: Annotated[str, Form()] = "",
        ticket_id: Annotated[str, Form()] = "",
    ) -> Response:
        who, refused = guard(request, csrf)
        if refused:
            return refused
        found = _row_id(change_id)
        if found is None:
            return page("error.html", 404, who=who, message=f"变更 {change_id[:32]} 不存在")
        ticket = _row_id(ticket_id.strip().lstrip("#"))
        if ticket is None:
            return change_page(who, found, 422, ["请填写要关联的工单编号"])
        try:
            registers.link_ticket(found, ticket, who.name)
        except RecordNotFoundError as exc:
            return failed(who, exc)
        except (TicketNotFoundError, ValueError) as exc:
            return change_page(who, found, 422, [str(exc)])
        return redirect(f"/console/changes/{found}?notice=linked")

    # -- vulnerabilities -----------------------------------------------------------------------------------

    def vulns_page(
        who: Any,
        status: int = 200,
        values: dict[str, str] | None = None,
        errors: list[str] | None = None,
        notice: str = "",
    ) -> Response:
        return page(
            "vulnerabilities.html",
            status,
            who=who,
            vulns=registers.list_vulnerabilities(limit=300),
            values=values or {},
            errors=errors or [],
            notice=notice,
            now=service.clock(),
        )

    @router.get("/vulnerabilities")
    def vulns(request: Request, notice: str = "") -> Response:
        who, refused = guard(request)
        return refused or vulns_page(who, notice=NOTICES.get(notice, ""))

    @router.post("/vulnerabilities")
    def add_vuln(
        request: Request,
        csrf: Annotated[str, Form()] = "",
        title: Annotated[str, Form()] = "",
        system: Annotated[str, Form()] = "",
        severity: Annotated[str, Form()] = "",
        found_by: Annotated[str, Form()] = "",
        found_on: Annotated[str, Form()] = "",
        reported_on: Annotated[str, Form()] = "",
        bureau_scan_on: Annotated[str, Form()] = "",
        deadline: Annotated[str, Form()] = "",
    ) -> Response:
        who, refused = guard(request, csrf)
        if refused:
            return refused
        values = {
            "title": title,
            "system": system,
            "severity": severity,
            "found_by": found_by,
            "found_on": found_on,
            "reported_on": reported_on,
            "bureau_scan_on": bureau_scan_on,
            "deadline": deadline,
        }
        found, reported, scanned = _day(found_on), _day(reported_on), _day(bureau_scan_on)
        due = _moment(deadline) if deadline.strip() else None
        errors = [
            text
            for bad, text in (
                (found is None, "请填写发现日期"),
                (bool(reported_on.strip()) and reported is None, "报告税务局日期格式不正确"),
                (bool(bureau_scan_on.strip()) and scanned is None, "局方扫描日期格式不正确"),
                (bool(deadline.strip()) and due is None, "加固期限格式不正确"),
            )
            if bad
        ]
        if errors or found is None:
            return vulns_page(who, 422, values, errors)
        try:
            registers.add_vulnerability(
                who.name,
                title=title,
                system=system,
                severity=severity,
                found_by=found_by,
                found_on=found,
                reported_on=reported,
                bureau_scan_on=scanned,
                deadline=due,
            )
        except ValueError as exc:
            return vulns_page(who, 422, values, str(exc).split("；"))
        return redirect("/console/vulnerabilities?notice=added")

    @router.post("/vulnerabilities/{vuln_id}")
    def update_vuln(
        request: Request,
        vuln_id: str,
        csrf: Annotated[str, Form()] = "",
        reported_on: Annotated[str, Form()] = "",
        bureau_scan_on: Annotated[str, Form()] = "",
        deadline: Annotated[str, Form()] = "",
        hardened_at: Annotated[str, Form()] = "",
        hardening_record: Annotated[str, Form()] = "",
        rollback_watch_end: Annotated[str, Form()] = "",
    ) -> Response:
        who, refused = guard(request, csrf)
        if refused:
            return refused
        found = _row_id(vuln_id)
        if found is None:
            return page("error.html", 404, who=who, message=f"漏洞 {vuln_id[:32]} 不存在")
        parsed: dict[str, Any] = {}
        errors = []
        for name, text, parse, label in (
            ("reported_on", reported_on, _day, "报告税务局日期"),
            ("bureau_scan_on", bureau_scan_on, _day, "局方扫描日期"),
            ("deadline", deadline, _moment, "加固期限"),
            ("hardened_at", hardened_at, _moment, "加固时间"),
            ("rollback_watch_end", rollback_watch_end, _moment, "回退观察截止时间"),
        ):
            if text.strip():
                value = parse(text)
                if value is None:
                    errors.append(f"{label}格式不正确")
                parsed[name] = value
        if errors:
            return vulns_page(who, 422, errors=errors)
        try:
            registers.update_vulnerability(
                found, who.name, hardening_record=hardening_record or None, **parsed
            )
        except RecordNotFoundError as exc:
            return failed(who, exc)
        except ValueError as exc:
            return vulns_page(who, 422, errors=str(exc).split("；"))
        return redirect("/console/vulnerabilities?notice=updated")

    # -- complaints ----------------------------------------------------------------------------------------

    def complaints_page(
        who: Any,
        status: int = 200,
        values: dict[str, str] | None = None,
        errors: list[str] | None = None,
        notice: str = "",
    ) -> Response:
        return page(
            "complaints.html",
            status,
            who=who,
            complaints=registers.list_complaints(limit=300),
            values=values or {},
            errors=errors or [],
            notice=notice,
        )

    @router.get("/complaints")
    def complaints(request: Request, notice: str = "") -> Response:
        who, refused = guard(request)
        return refused or complaints_page(who, notice=NOTICES.get(notice, ""))

    @router.post("/complaints")
    def add_complaint(
        request: Request,
        csrf: Annotated[str, Form()] = "",
        received_on: Annotated[str, Form()] = "",
        system: Annotated[str, Form()] = "",
        summary: Annotated[str, Form()] = "",
        ticket_id: Annotated[str, Form()] = "",
    ) -> Response:
        who, refused = guard(request, csrf)
        if refused:
            return refused
        values = {"received_on": received_on, "system": system, "summary": summary, "ticket_id": ticket_id}
        day = _day(received_on)
        ticket = _row_id(ticket_id.strip().lstrip("#")) if ticket_id.strip() else None
        errors = [
            text
            for bad, text in (
                (day is None, "请填写收到投诉日期"),
                (bool(ticket_id.strip()) and ticket is None, "工单编号不正确"),
            )
            if bad
        ]
        if errors or day is None:
            return complaints_page(who, 422, values, errors)
        try:
            registers.add_complaint(
                who.name, received_on=day, system=system, summary=summary, ticket_id=ticket
            )
        except ValueError as exc:
            return complaints_page(who, 422, values, str(exc).split("；"))
        return redirect("/console/complaints?notice=added")

    @router.post("/complaints/{complaint_id}/verify")
    def verify(
        request: Request,
        complaint_id: str,
        csrf: Annotated[str, Form()] = "",
        verification: Annotated[str, Form()] = "",
        note: Annotated[str, Form()] = "",
        ticket_id: Annotated[str, Form()] = "",
    ) -> Response:
        who, refused = guard(request, csrf)
        if refused:
            return refused
        found = _row_id(complaint_id)
        if found is None:
            return page("error.html", 404, who=who, message=f"投诉 {complaint_id[:32]} 不存在")
        ticket = _row_id(ticket_id.strip().lstrip("#")) if ticket_id.strip() else None
        if ticket_id.strip() and ticket is None:
            return complaints_page(who, 422, errors=["工单编号不正确"])
        try:
            registers.verify_complaint(found, who.name, verification, note, ticket)
        except RecordNotFoundError as exc:
            return failed(who, exc)
        except ValueError as exc:
            return complaints_page(who, 422, errors=str(exc).split("；"))
        return redirect("/console/complaints?notice=verified")
