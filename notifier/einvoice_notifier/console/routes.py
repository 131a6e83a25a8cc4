"""The ticket console (工单控制台): server-rendered Chinese pages, plain HTML forms, no JavaScript.

Who may do what:
- a logged-in viewer reads the list, the tickets and their timelines, and the dead letters;
- a logged-in operator also acknowledges, starts, notes, resolves and closes;
- a signed link from a WeChat message (see messaging/links.py) opens that one ticket's page without
  a login and lets whoever holds it acknowledge that one ticket, and nothing else.

Why the link alone may acknowledge: the person on duty reads the alert on a phone in WeChat, where a
robot cannot receive a button press, and the response clock (SPEC §3: 10 min to 2 h) is what the
bureau scores. Acknowledging only says "someone has seen it and is on it": it changes no data, it is
audited as done through the link, and the ticket still needs an operator's login to be resolved or
closed. The link is HMAC-signed over ticket id, action and expiry, expires (`link_ttl`), and is bound
to one ticket. Acknowledging is a POST from the page with a CSRF token bound to the link, never a
GET, so WeChat's link preview fetching the URL acknowledges nothing.

Every action goes through TicketService, which writes the audit log.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import jinja2
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from einvoice_core.catalogue import ITEMS

from ..auth import Authenticator, Throttled
from ..messaging.links import LinkError, verify_link_parts
from ..messaging.redact import redact
from .deadlines import deadline_notes, uses_working_clock
from .session import LOGIN_COOKIE, SESSION_COOKIE, SESSION_TTL, Session, Signer
from .views import ACTION_ZH, SEVERITY_ZH, STATE_ZH, TimelineRow, local_time, timeline_rows

log = logging.getLogger(__name__)

LINK_ACTOR = "duty-link"
"""The audit's actor for an acknowledgement through a signed link when nobody is logged in."""
MAX_TEXT = 10000
"""Longest note, cause or solution a form takes (the API's limit too)."""
MAX_ROW_ID = 2**63 - 1
_SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the signed link must not leak to other sites
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
}


@dataclass(frozen=True, slots=True)
class Viewer:
    name: str
    role: str
    session: Session
    display_name: str = ""

    @property
    def operator(self) -> bool:
        return self.role == "operator"


def _secret_of(service: Any, settings: Any) -> bytes:
    configured = getattr(settings, "configured_console_secret", None)
    found = configured() if callable(configured) else None
    return found or getattr(service, "link_secret", None) or secrets.token_bytes(32)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["local"] = local_time
    env.filters["redact"] = redact
    env.globals.update(STATE_ZH=STATE_ZH, SEVERITY_ZH=SEVERITY_ZH, ACTION_ZH=ACTION_ZH,
                       ITEMS=ITEMS, MAX_TEXT=MAX_TEXT)
    return env


def _row_id(raw: str) -> int | None:
    """A ticket id from the URL, or None when no row can have it (404, never a server error)."""
    if not raw.isdigit() or len(raw) > 19:
        return None
    value = int(raw)
    return value if 0 < value <= MAX_ROW_ID else None


def _public(value: Any) -> Any:
    """Everything a signed link shows without a login, redacted as the messages are: every string
    of a ticket view or timeline row, every label name and value."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(str(k)): _public(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_public(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(value, **{f.name: _public(getattr(value, f.name))
                                             for f in dataclasses.fields(value) if f.init})
    return value


def _wait_zh(seconds: float) -> str:
    return f"{int(seconds) + 1} 秒" if seconds < 60 else f"{int(seconds // 60) + 1} 分钟"


@dataclass
class FormState:
    """What the person typed, kept when the page comes back with errors, and every error at once."""

    values: dict[str, str] = dataclasses.field(default_factory=dict)
    errors: list[str] = dataclasses.field(default_factory=list)
    warning: str = ""
    form: str = ""
    """Which form the errors belong to (note, resolve, close)."""


def _too_long(label: str, text: str) -> list[str]:
    if len(text) > MAX_TEXT:
        return [f"{label}最多 {MAX_TEXT} 字，当前 {len(text)} 字，请精简后再提交"]
    return []


def build_router(service: Any, settings: Any, authenticator: Authenticator | None = None,
                 clock: Callable[[], float] = time.time) -> APIRouter:
    """The console's routes under /console; the notifier app includes them. `clock` (wall seconds)
    dates sessions and the time left to deadlines; the login throttle is the authenticator's."""
    router = APIRouter(prefix="/console", include_in_schema=False)
    signer = Signer(_secret_of(service, settings))
    link_secret: bytes = getattr(service, "link_secret", None) or _secret_of(service, settings)
    env = _environment()
    secure = str(getattr(settings, "public_url", "")).startswith("https://")
    auth = authenticator or Authenticator(settings)

    def users() -> dict[str, Any]:
        return {user.name: user for user in getattr(settings, "users", [])}

    def page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        who = context.get("who")
        # Every page has the header's logout form: a page rendered for a logged-in person always
        # gets that person's token, whatever else it shows (error pages included).
        context.setdefault("csrf", csrf_of(who) if isinstance(who, Viewer) else "")
        html = env.get_template(name).render(**context)
        return HTMLResponse(html, status_code=status, headers=_SECURITY_HEADERS)

    def error_page(who: Viewer | None, status: int, message: str) -> HTMLResponse:
        return page("error.html", status, who=who, message=message)

    def redirect(url: str) -> RedirectResponse:
        return RedirectResponse(url, status_code=303, headers=_SECURITY_HEADERS)

    def viewer_of(request: Request) -> Viewer | None:
        session = signer.read(request.cookies.get(SESSION_COOKIE), clock())
        if session is None:
            return None
        user = users().get(session.user)
        if user is None:
            return None
        return Viewer(user.name, user.role, session, str(getattr(user, "display_name", "") or ""))

    def to_login(request: Request) -> RedirectResponse:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return redirect(f"/console/login?{urlencode({'next': target})}")

    def csrf_of(who: Viewer) -> str:
        return signer.csrf_for("session", who.session.nonce)

    def now() -> datetime:
        return datetime.fromtimestamp(clock(), UTC)

    def notes_of(ticket: Any) -> dict[str, Any]:
        return deadline_notes(ticket, now(), getattr(service, "calendar", None),
                              uses_working_clock(settings, ticket.severity_class))

    def missing(who: Viewer | None, raw: str) -> HTMLResponse:
        return error_page(who, 404, f"工单 {raw[:32]} 不存在")

    def ticket_page(who: Viewer, ticket_id: int, status: int = 200, error: str = "",
                    notice: str = "", form: FormState | None = None) -> HTMLResponse:
        ticket = service.get_ticket(ticket_id)
        if ticket is None:
            return missing(who, str(ticket_id))
        state = form or FormState()
        if error:
            state.errors.insert(0, error)
        return page("ticket.html", status, who=who, t=ticket, csrf=csrf_of(who), notice=notice,
                    timeline=timeline_rows(service.timeline(ticket_id)), link=None, form=state,
                    deadlines=notes_of(ticket), firing=_firing(ticket))

    # -- login -----------------------------------------------------------------------------------

    @router.get("/", response_class=HTMLResponse)
    def home(request: Request) -> Response:
        return redirect("/console/tickets") if viewer_of(request) else to_login(request)

    @router.get("/login", response_class=HTMLResponse)
    def login_form(request: Request, next: str = "/console/tickets") -> Response:
        nonce = request.cookies.get(LOGIN_COOKIE) or secrets.token_hex(16)
        response = page("login.html", who=None, next=_safe_next(next), error="",
                        csrf=signer.csrf_for("login", nonce))
        response.set_cookie(LOGIN_COOKIE, nonce, max_age=3600, httponly=True, samesite="lax",
                            secure=secure, path="/console")
        return response

    @router.post("/login", response_class=HTMLResponse)
    def login(request: Request, username: Annotated[str, Form()] = "",
              password: Annotated[str, Form()] = "", csrf: Annotated[str, Form()] = "",
              next: Annotated[str, Form()] = "/console/tickets") -> Response:
        nonce = request.cookies.get(LOGIN_COOKIE)
        target = _safe_next(next)

        def again(message: str, status: int, headers: dict[str, str] | None = None) -> HTMLResponse:
            fresh = nonce or secrets.token_hex(16)
            response = page("login.html", status, who=None, next=target, error=message,
                            csrf=signer.csrf_for("login", fresh))
            response.set_cookie(LOGIN_COOKIE, fresh, max_age=3600, httponly=True, samesite="lax",
                                secure=secure, path="/console")
            response.headers.update(headers or {})
            return response

        if not signer.csrf_ok("login", nonce, csrf):
            return again("页面已过期，请重新登录", 403)
        source = request.client.host if request.client is not None else ""
        try:
            user = auth.login(username[:128], password, source)
        except Throttled as exc:
            log.warning("console login refused for %r from %s: too many failures", username[:64], source)
            return again(f"登录失败次数过多，请 {_wait_zh(exc.retry_after)}后再试", 429,
                         {"Retry-After": f"{exc.retry_after:.0f}"})
        if user is None:
            log.info("console login failed for %r from %s", username[:64], source)
            return again("用户名或密码错误", 401)
        cookie, _session = signer.issue(user.name, clock())
        log.info("console login: %s (%s)", user.name, user.role)
        response = redirect(target)
        response.set_cookie(SESSION_COOKIE, cookie, max_age=SESSION_TTL, httponly=True, samesite="lax",
                            secure=secure, path="/console")
        response.delete_cookie(LOGIN_COOKIE, path="/console")
        return response

    @router.post("/logout")
    def logout(request: Request, csrf: Annotated[str, Form()] = "") -> Response:
        who = viewer_of(request)
        if who is not None and not signer.csrf_ok("session", who.session.nonce, csrf):
            return error_page(who, 403, "请求已过期，请刷新页面后重试")
        response = redirect("/console/login")
        response.delete_cookie(SESSION_COOKIE, path="/console")
        return response

    # -- reading ---------------------------------------------------------------------------------

    @router.get("/tickets", response_class=HTMLResponse)
    def ticket_list(request: Request, state: str = "", severity_class: str = "", item: str = "",
                    overdue: str = "") -> Response:
        who = viewer_of(request)
        if who is None:
            return to_login(request)
        filters = {"state": state if state in STATE_ZH else "",
                   "severity_class": severity_class if severity_class in SEVERITY_ZH else "",
                   "item": item if item in {i.id for i in ITEMS} else "",
                   "overdue": overdue if overdue in ("yes", "no") else ""}
        found = service.list_tickets(
            state=filters["state"] or None, severity_class=filters["severity_class"] or None,
            item=filters["item"] or None,
            overdue={"yes": True, "no": False}.get(filters["overdue"]), limit=500)
        return page("list.html", who=who, tickets=found, filters=filters,
                    deadlines={t.id: notes_of(t) for t in found})

    @router.get("/tickets/{ticket_id}", response_class=HTMLResponse)
    def ticket_detail(request: Request, ticket_id: str, notice: str = "") -> Response:
        who = viewer_of(request)
        if who is None:
            return to_login(request)
        found = _row_id(ticket_id)
        if found is None:
            return missing(who, ticket_id)
        return ticket_page(who, found, notice=_NOTICES.get(notice, ""))

    @router.get("/outbox", response_class=HTMLResponse)
    def dead_letters(request: Request) -> Response:
        who = viewer_of(request)
        if who is None:
            return to_login(request)
        from ..outbox import list_messages

        rows = list_messages(service.engine, "dead", 200)
        return page("outbox.html", who=who, rows=rows)

    # -- actions of operators ----------------------------------------------------------------------

    def act(request: Request, raw_id: str, csrf: str, action: str, call: Callable[[int, str], object],
            form: FormState | None = None) -> Response:
        who = viewer_of(request)
        if who is None:
            return to_login(request)
        ticket_id = _row_id(raw_id)
        if ticket_id is None:
            return missing(who, raw_id)
        if not signer.csrf_ok("session", who.session.nonce, csrf):
            return ticket_page(who, ticket_id, 403, error="请求已过期或来源不明，请刷新页面后重试", form=form)
        if not who.operator:
            return ticket_page(who, ticket_id, 403, error="只读账号不能操作工单", form=form)
        if form is not None and (form.errors or form.warning):
            return ticket_page(who, ticket_id, 409 if form.warning and not form.errors else 422, form=form)
        try:
            call(ticket_id, who.name)
        except (LookupError, ValueError) as exc:  # TicketNotFound / InvalidTransition / InvalidInput
            status = 404 if isinstance(exc, LookupError) else 409
            return ticket_page(who, ticket_id, status, error=str(exc), form=form)
        log.info("console: %s %s ticket %s", who.name, action, ticket_id)
        return redirect(f"/console/tickets/{ticket_id}?notice={quote(action)}")

    @router.post("/tickets/{ticket_id}/acknowledge")
    def acknowledge(request: Request, ticket_id: str, csrf: Annotated[str, Form()] = "") -> Response:
        return act(request, ticket_id, csrf, "acknowledge",
                   lambda tid, actor: service.acknowledge(tid, actor))

    @router.post("/tickets/{ticket_id}/progress")
    def progress(request: Request, ticket_id: str, csrf: Annotated[str, Form()] = "") -> Response:
        return act(request, ticket_id, csrf, "start_progress",
                   lambda tid, actor: service.start_progress(tid, actor))

    @router.post("/tickets/{ticket_id}/note")
    def note(request: Request, ticket_id: str, csrf: Annotated[str, Form()] = "",
             text: Annotated[str, Form()] = "") -> Response:
        form = FormState({"text": text}, form="note")
        form.errors += _too_long("备注", text)
        if not text.strip():
            form.errors.append("请填写备注内容")
        return act(request, ticket_id, csrf, "add_note",
                   lambda tid, actor: service.add_note(tid, actor, text), form)

    @router.post("/tickets/{ticket_id}/resolve")
    def resolve(request: Request, ticket_id: str, csrf: Annotated[str, Form()] = "",
                note: Annotated[str, Form()] = "", confirm_firing: Annotated[str, Form()] = "") -> Response:
        form = FormState({"note": note}, form="resolve")
        form.errors += _too_long("处理说明", note)
        found = _row_id(ticket_id)
        ticket = service.get_ticket(found) if found is not None else None
        if ticket is not None and _firing(ticket) and confirm_firing != "yes" and not form.errors:
            form.warning = ("告警仍在触发中（尚未收到恢复通知）。请确认故障已排除；"
                            "如仍要标记为已解决，请勾选确认后再次提交。")
        return act(request, ticket_id, csrf, "resolve", lambda tid, actor: service.resolve(tid, actor, note),
                   form)

    @router.post("/tickets/{ticket_id}/close")
    def close(request: Request, ticket_id: str, csrf: Annotated[str, Form()] = "",
              cause: Annotated[str, Form()] = "", solution: Annotated[str, Form()] = "",
              resolution: Annotated[str, Form()] = "") -> Response:
        form = FormState({"cause": cause, "solution": solution, "resolution": resolution}, form="close")
        if not cause.strip():
            form.errors.append("请填写原因")
        form.errors += _too_long("原因", cause)
        if not solution.strip():
            form.errors.append("请填写解决方案")
        form.errors += _too_long("解决方案", solution)
        if resolution not in ("local", "escalated"):
            form.errors.append("请选择“本级解决”或“升级处理”")
        return act(request, ticket_id, csrf, "close",
                   lambda tid, actor: service.close(tid, actor, cause, solution, resolution == "local"), form)

    @router.post("/tickets/{ticket_id}/escalate")
    def escalate(request: Request, ticket_id: str, csrf: Annotated[str, Form()] = "",
                 target: Annotated[str, Form()] = "", note: Annotated[str, Form()] = "") -> Response:
        form = FormState({"target": target, "note": note}, form="escalate")
        if target not in ("second_line", "bureau"):
            form.errors.append("请选择升级去向：转二线或提交税务局系统管理员")
        if not note.strip():
            form.errors.append("请填写升级说明")
        form.errors += _too_long("升级说明", note)
        return act(request, ticket_id, csrf, "escalate_" + (target or "none"),
                   lambda tid, actor: service.escalate(tid, actor, target, note), form)

    @router.post("/tickets/{ticket_id}/major")
    def major(request: Request, ticket_id: str, csrf: Annotated[str, Form()] = "",
              note: Annotated[str, Form()] = "") -> Response:
        form = FormState({"note": note}, form="major")
        if not note.strip():
            form.errors.append("请填写重大事件说明")
        form.errors += _too_long("事件说明", note)
        return act(request, ticket_id, csrf, "major_incident",
                   lambda tid, actor: service.declare_major_incident(tid, actor, note), form)

    @router.post("/tickets/{ticket_id}/agreed-fix")
    def agreed_fix(request: Request, ticket_id: str, csrf: Annotated[str, Form()] = "",
                   fix_at: Annotated[str, Form()] = "",
                   approval_ref: Annotated[str, Form()] = "") -> Response:
        form = FormState({"fix_at": fix_at, "approval_ref": approval_ref}, form="agreed_fix")
        moment = parse_local(fix_at)
        if moment is None:
            form.errors.append("请填写约定解决日期（年-月-日 时:分）")
        if not approval_ref.strip():
            form.errors.append("请填写税务局批准文号或审批单号")
        return act(request, ticket_id, csrf, "agreed_fix",
                   lambda tid, actor: service.set_agreed_fix(tid, actor, moment or now(), approval_ref), form)

    @router.post("/tickets/{ticket_id}/link")
    def link_same(request: Request, ticket_id: str, csrf: Annotated[str, Form()] = "",
                  same_as: Annotated[str, Form()] = "") -> Response:
        form = FormState({"same_as": same_as}, form="link")
        other = _row_id(same_as.strip().lstrip("#"))
        if other is None:
            form.errors.append("请填写要关联的工单编号")
        return act(request, ticket_id, csrf, "link",
                   lambda tid, actor: service.link_same_problem(tid, other or 0, actor), form)

    @router.post("/tickets/{ticket_id}/typical")
    def typical(request: Request, ticket_id: str, csrf: Annotated[str, Form()] = "",
                typical: Annotated[str, Form()] = "yes") -> Response:
        return act(request, ticket_id, csrf, "typical",
                   lambda tid, actor: service.mark_typical(tid, actor, typical != "no"))

    from .duty_pages import add_duty_pages
    from .forms import Forms
    from .register_pages import add_register_pages
    from .report_pages import add_report_pages

    forms = Forms(viewer_of, page, to_login, redirect,
                  lambda who, token: signer.csrf_ok("session", who.session.nonce, token))
    add_duty_pages(router, service, settings, forms, now=now)
    add_register_pages(router, service, settings, env, forms)
    add_report_pages(router, service, settings, forms, now=now)

    # -- signed links from messages ---------------------------------------------------------------

    def link_or_error(ticket_id: int, action: str, exp: str, sig: str) -> str | None:
        try:
            verify_link_parts(ticket_id, action, exp, sig, link_secret)
        except LinkError as exc:
            log.info("console: refused link for ticket %s (%s)", ticket_id, exc.reason)
            return "链接已过期，请登录控制台查看工单" if exc.reason == "expired" else "链接无效"
        return None

    def link_page(request: Request, ticket_id: int, action: str, exp: str, sig: str, status: int = 200,
                  error: str = "", notice: str = "") -> HTMLResponse:
        who = viewer_of(request)
        ticket = service.get_ticket(ticket_id)
        if ticket is None:
            return missing(who, str(ticket_id))
        timeline: list[TimelineRow] = timeline_rows(service.timeline(ticket_id))
        notes = notes_of(ticket)
        if who is None:  # no login: show only what the message itself may carry
            ticket, timeline = _public(ticket), _public(timeline)
        link = {"action": action, "exp": exp, "sig": sig, "csrf": signer.csrf_for("link", sig)}
        form = FormState(errors=[error] if error else [])
        return page("ticket.html", status, who=who, t=ticket, notice=notice, timeline=timeline, link=link,
                    form=form, deadlines=notes, firing=_firing(ticket))

    @router.get("/link/{ticket_id}", response_class=HTMLResponse)
    def open_link(request: Request, ticket_id: str, action: str = "", exp: str = "",
                  sig: str = "") -> Response:
        who = viewer_of(request)
        found = _row_id(ticket_id)
        problem = "链接无效" if found is None else link_or_error(found, action, exp, sig)
        if problem or found is None:
            return error_page(who, 403, problem or "链接无效")
        if who is not None and who.operator:  # logged in already: the full page with every action
            return redirect(f"/console/tickets/{found}")
        return link_page(request, found, action, exp, sig)

    @router.post("/link/{ticket_id}/acknowledge", response_class=HTMLResponse)
    def acknowledge_by_link(request: Request, ticket_id: str, action: Annotated[str, Form()] = "",
                            exp: Annotated[str, Form()] = "", sig: Annotated[str, Form()] = "",
                            csrf: Annotated[str, Form()] = "") -> Response:
        who = viewer_of(request)
        found = _row_id(ticket_id)
        problem = "链接无效" if found is None else link_or_error(found, action, exp, sig)
        if problem or found is None:
            return error_page(who, 403, problem or "链接无效")
        if not signer.csrf_ok("link", sig, csrf):
            return link_page(request, found, action, exp, sig, 403, error="请求来源不明，请重新打开链接")
        actor = who.name if who is not None else LINK_ACTOR
        try:
            service.acknowledge(found, actor)
        except (LookupError, ValueError) as exc:
            return link_page(request, found, action, exp, sig, 409, error=str(exc))
        log.info("console: ticket %s acknowledged through a signed link by %s", found, actor)
        return link_page(request, found, action, exp, sig, notice="已确认响应，计时已记录")

    return router


_NOTICES = {"acknowledge": "已响应", "start_progress": "已开始处理", "add_note": "备注已添加",
            "resolve": "已标记为已解决", "close": "工单已关闭", "escalate_second_line": "已转二线并通知二线",
            "escalate_bureau": "已提交税务局系统管理员核实处理",
            "major_incident": "已宣布重大事件，已呼叫二线专家会诊",
            "agreed_fix": "约定解决日期已保存", "link": "已关联为同一问题", "typical": "典型问题标记已更新",
            "report": "问题已登记，已通知值班人员"}


def parse_local(text: str) -> datetime | None:
    """A datetime-local form value (Asia/Shanghai wall clock) as an aware UTC datetime."""
    from .views import SHANGHAI

    try:
        found = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if found.tzinfo is None:
        found = found.replace(tzinfo=SHANGHAI)
    return found.astimezone(UTC)


def _firing(ticket: Any) -> bool:
    """An alert ticket whose alert has not ended; a reported problem has no alert to wait for."""
    return ticket.ends_at is None and getattr(ticket, "source", "alert") != "report"


def _safe_next(target: str) -> str:
    """Only our own pages: no open redirect through the login form."""
    if target.startswith("/console/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/console/tickets"
