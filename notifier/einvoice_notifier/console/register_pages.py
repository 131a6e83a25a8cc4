"""Console pages of the scorecard's records (issue 19): fault ownership on a ticket's page with its
evidence pack, the change register (变更登记) with the tickets a change caused, the vulnerability
register (漏洞登记) and complaints (投诉登记).

Same rules as the other pages: a login to read, the operator role and the session's CSRF token to
change anything, every error of a form at once with what was typed kept, Chinese text throughout.
Every change goes through registers.Registers (redacted, audited)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, datetime
from typing import Annotated, Any

import jinja2
from fastapi import APIRouter, Request
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
from .forms import FormError, Forms, Posted, failures, local_moment, posted, reasons, storing

NOTICES = {
    "fault": "故障定责已保存",
    "added": "已登记",
    "updated": "已更新",
    "linked": "已关联工单",
    "verified": "核实结果已保存",
}


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        return None


def _row_id(raw: str) -> int | None:
    return int(raw) if raw.isdigit() and len(raw) <= 18 and int(raw) > 0 else None


def _ticket_no(raw: str) -> int | None:
    """A ticket number as typed: 12 or #12."""
    return _row_id(raw.strip().lstrip("#"))


CHANGE_FIELDS = (
    "kind", "system", "title", "version_before", "version_after", "parameters", "window_start",
    "window_end", "watch_end", "performed_by", "approval_ref", "fixes_ticket",
)
CHANGE_UPDATE_FIELDS = ("post_check", "post_check_ok", "watch_end", "outcome", "outcome_note")
VULN_FIELDS = (
    "title", "system", "severity", "found_by", "found_on", "reported_on", "bureau_scan_on", "deadline",
)
VULN_UPDATE_FIELDS = (
    "reported_on", "bureau_scan_on", "deadline", "hardened_at", "hardening_record", "rollback_watch_end",
)
COMPLAINT_FIELDS = ("received_on", "system", "summary", "ticket_id")
VULN_DATES: dict[str, tuple[Callable[[str], date | datetime | None], str]] = {
    "reported_on": (_day, "报告税务局日期"),
    "bureau_scan_on": (_day, "局方扫描日期"),
    "deadline": (local_moment, "加固期限"),
    "hardened_at": (local_moment, "加固时间"),
    "rollback_watch_end": (local_moment, "回退观察截止时间"),
}
"""The vulnerability's optional days and moments as typed: how each is read, its name in errors."""


def _parsed(typed: dict[str, str], names: Iterable[str]) -> tuple[dict[str, Any], list[str]]:
    """The named VULN_DATES fields that were filled in, read; an error for each that is not one."""
    parsed: dict[str, Any] = {}
    errors = []
    for name in names:
        parse, label = VULN_DATES[name]
        if typed[name].strip():
            value = parse(typed[name])
            if value is None:
                errors.append(f"{label}格式不正确")
            parsed[name] = value
    return parsed, errors


def add_register_pages(
    router: APIRouter,
    service: Any,
    settings: Any,
    env: jinja2.Environment,
    forms: Forms,
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

    page, redirect = forms.page, forms.redirect

    def addressed(
        request: Request, raw: str, what: str, csrf: str | None = None
    ) -> tuple[Any, int, Response | None]:
        """The viewer and the record's id from the URL, or the answer (login, refusal, 404)."""
        who, refused = forms.guard(request, csrf)
        if refused:
            return who, 0, refused
        found = _row_id(raw)
        if found is None:
            return who, 0, forms.missing(who, what, raw)
        return who, found, None

    def failed(who: Any, exc: Exception) -> Response:
        status = 404 if isinstance(exc, LookupError) else 422
        return page("error.html", status, who=who, message=str(exc))

    # -- fault ownership -------------------------------------------------------------------------------

    @router.post("/tickets/{ticket_id}/fault")
    def record_fault(
        request: Request, ticket_id: str, form: Annotated[Posted, posted("owner", "system", "evidence")]
    ) -> Response:
        who, found, refused = addressed(request, ticket_id, "工单", form.csrf)
        if refused:
            return refused
        try:
            registers.record_fault(found, who.name, form["owner"], form["system"] or None, form["evidence"])
        except (TicketNotFoundError, ValueError) as exc:
            return failed(who, exc)
        return redirect(f"/console/tickets/{found}?notice=fault")

    # -- changes ------------------------------------------------------------------------------------------

    changes_page = forms.form_page("changes.html", changes=lambda: registers.list_changes(limit=200))

    @router.get("/changes")
    def changes(request: Request, notice: str = "") -> Response:
        return forms.show(request, changes_page, NOTICES.get(notice, ""))

    @router.post("/changes")
    def add_change(request: Request, form: Annotated[Posted, posted(*CHANGE_FIELDS)]) -> Response:
        def act(who: Any, typed: dict[str, str]) -> str:
            start, end = local_moment(typed["window_start"]), local_moment(typed["window_end"])
            watch_end, fixes_ticket = typed["watch_end"], typed["fixes_ticket"]
            watch = local_moment(watch_end) if watch_end.strip() else None
            errors = failures(
                (start is None, "请填写变更窗口开始时间"),
                (end is None, "请填写变更窗口结束时间"),
                (bool(watch_end.strip()) and watch is None, "运行跟踪截止时间格式不正确"),
                (bool(fixes_ticket.strip()) and _ticket_no(fixes_ticket) is None, "要解决的工单编号不正确"),
            )
            if errors or start is None or end is None:
                raise FormError(errors)
            with storing():
                made = registers.add_change(
                    who.name,
                    kind=typed["kind"],
                    system=typed["system"],
                    title=typed["title"],
                    window_start=start,
                    window_end=end,
                    performed_by=typed["performed_by"],
                    watch_end=watch,
                    version_before=typed["version_before"],
                    version_after=typed["version_after"],
                    parameters=typed["parameters"],
                    approval_ref=typed["approval_ref"],
                    fixes_ticket=_ticket_no(fixes_ticket) if fixes_ticket.strip() else None,
                )
            return f"/console/changes/{made.id}?notice=added"

        return forms.submit(request, form, changes_page, act)

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
        who, found, refused = addressed(request, change_id, "变更")
        return refused or change_page(who, found, notice=NOTICES.get(notice, ""))

    @router.post("/changes/{change_id}")
    def update_change(
        request: Request, change_id: str, form: Annotated[Posted, posted(*CHANGE_UPDATE_FIELDS)]
    ) -> Response:
        who, found, refused = addressed(request, change_id, "变更", form.csrf)
        if refused:
            return refused
        values = form.values
        post_check, watch_end, outcome_note = (values[k] for k in ("post_check", "watch_end", "outcome_note"))
        watch = local_moment(watch_end) if watch_end.strip() else None
        if watch_end.strip() and watch is None:
            return change_page(who, found, 422, ["运行跟踪截止时间格式不正确"], values=values)
        try:
            registers.update_change(
                found,
                who.name,
                post_check=post_check if post_check.strip() else None,
                post_check_ok={"yes": True, "no": False}.get(values["post_check_ok"]),
                watch_end=watch,
                outcome=values["outcome"] or None,
                outcome_note=outcome_note if outcome_note.strip() else None,
            )
        except RecordNotFoundError as exc:
            return failed(who, exc)
        except ValueError as exc:
            return change_page(who, found, 422, reasons(exc), values=values)
        return redirect(f"/console/changes/{found}?notice=updated")

    @router.post("/changes/{change_id}/tickets")
    def link_ticket(
        request: Request, change_id: str, form: Annotated[Posted, posted("ticket_id")]
    ) -> Response:
        who, found, refused = addressed(request, change_id, "变更", form.csrf)
        if refused:
            return refused
        ticket = _ticket_no(form["ticket_id"])
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

    vulns_page = forms.form_page(
        "vulnerabilities.html",
        vulns=lambda: registers.list_vulnerabilities(limit=300),
        now=lambda: service.clock(),
    )

    @router.get("/vulnerabilities")
    def vulns(request: Request, notice: str = "") -> Response:
        return forms.show(request, vulns_page, NOTICES.get(notice, ""))

    @router.post("/vulnerabilities")
    def add_vuln(request: Request, form: Annotated[Posted, posted(*VULN_FIELDS)]) -> Response:
        def act(who: Any, typed: dict[str, str]) -> str:
            found = _day(typed["found_on"])
            parsed, errors = _parsed(typed, ("reported_on", "bureau_scan_on", "deadline"))
            errors = failures((found is None, "请填写发现日期")) + errors
            if errors or found is None:
                raise FormError(errors)
            with storing():
                registers.add_vulnerability(
                    who.name,
                    title=typed["title"],
                    system=typed["system"],
                    severity=typed["severity"],
                    found_by=typed["found_by"],
                    found_on=found,
                    reported_on=parsed.get("reported_on"),
                    bureau_scan_on=parsed.get("bureau_scan_on"),
                    deadline=parsed.get("deadline"),
                )
            return "/console/vulnerabilities?notice=added"

        return forms.submit(request, form, vulns_page, act)

    @router.post("/vulnerabilities/{vuln_id}")
    def update_vuln(
        request: Request, vuln_id: str, form: Annotated[Posted, posted(*VULN_UPDATE_FIELDS)]
    ) -> Response:
        who, found, refused = addressed(request, vuln_id, "漏洞", form.csrf)
        if refused:
            return refused
        parsed, errors = _parsed(form.values, VULN_DATES)
        if errors:
            return vulns_page(who, 422, errors=errors)
        try:
            registers.update_vulnerability(
                found, who.name, hardening_record=form["hardening_record"] or None, **parsed
            )
        except RecordNotFoundError as exc:
            return failed(who, exc)
        except ValueError as exc:
            return vulns_page(who, 422, errors=reasons(exc))
        return redirect("/console/vulnerabilities?notice=updated")

    # -- complaints ----------------------------------------------------------------------------------------

    complaints_page = forms.form_page(
        "complaints.html", complaints=lambda: registers.list_complaints(limit=300)
    )

    @router.get("/complaints")
    def complaints(request: Request, notice: str = "") -> Response:
        return forms.show(request, complaints_page, NOTICES.get(notice, ""))

    @router.post("/complaints")
    def add_complaint(request: Request, form: Annotated[Posted, posted(*COMPLAINT_FIELDS)]) -> Response:
        def act(who: Any, typed: dict[str, str]) -> str:
            day, ticket_id = _day(typed["received_on"]), typed["ticket_id"]
            ticket = _ticket_no(ticket_id) if ticket_id.strip() else None
            errors = failures(
                (day is None, "请填写收到投诉日期"),
                (bool(ticket_id.strip()) and ticket is None, "工单编号不正确"),
            )
            if errors or day is None:
                raise FormError(errors)
            with storing():
                registers.add_complaint(
                    who.name,
                    received_on=day,
                    system=typed["system"],
                    summary=typed["summary"],
                    ticket_id=ticket,
                )
            return "/console/complaints?notice=added"

        return forms.submit(request, form, complaints_page, act)

    @router.post("/complaints/{complaint_id}/verify")
    def verify(
        request: Request,
        complaint_id: str,
        form: Annotated[Posted, posted("verification", "note", "ticket_id")],
    ) -> Response:
        who, found, refused = addressed(request, complaint_id, "投诉", form.csrf)
        if refused:
            return refused
        ticket_id = form["ticket_id"]
        ticket = _ticket_no(ticket_id) if ticket_id.strip() else None
        if ticket_id.strip() and ticket is None:
            return complaints_page(who, 422, errors=["工单编号不正确"])
        try:
            registers.verify_complaint(found, who.name, form["verification"], form["note"], ticket)
        except RecordNotFoundError as exc:
            return failed(who, exc)
        except ValueError as exc:
            return complaints_page(who, 422, errors=reasons(exc))
        return redirect("/console/complaints?notice=verified")
