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

import logging
import secrets
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import bcrypt
import jinja2
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from einvoice_core.catalogue import ITEMS

from ..messaging.links import LinkError, verify_link_parts
from ..messaging.redact import redact
from .session import LOGIN_COOKIE, SESSION_COOKIE, SESSION_TTL, Session, Signer
from .views import ACTION_ZH, SEVERITY_ZH, STATE_ZH, local_time, timeline_rows

log = logging.getLogger(__name__)

LINK_ACTOR = "duty-link"
"""The audit's actor for an acknowledgement through a signed link when nobody is logged in."""
LOGIN_FAILURES_ALLOWED = 5
LOGIN_LOCKOUT = 300.0
_SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the signed link must not leak to other sites
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
}


@cache
def _decoy_hash(rounds: int) -> bytes:
    """Checked for unknown users so that a wrong name costs as long as a wrong password."""
    return bcrypt.hashpw(b"no such user", bcrypt.gensalt(rounds=rounds))


def _cost_of(hashes: list[str]) -> int:
    costs = [int(h[4:6]) for h in hashes if len(h) > 6 and h[4:6].isdigit()]
    return min(max(costs, default=12), 31) if costs else 12


@dataclass(frozen=True, slots=True)
class Viewer:
    name: str
    role: str
    session: Session

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
                       ITEMS=ITEMS)
    return env


def build_router(service: Any, settings: Any, clock: Callable[[], float] = time.time) -> APIRouter:
    """The console's routes under /console; the notifier app includes them."""
    router = APIRouter(prefix="/console", include_in_schema=False)
    signer = Signer(_secret_of(service, settings))
    link_secret: bytes = getattr(service, "link_secret", None) or _secret_of(service, settings)
    env = _environment()
    secure = str(getattr(settings, "public_url", "")).startswith("https://")
    failures: dict[str, deque[float]] = defaultdict(deque)

    def users() -> dict[str, Any]:
        return {user.name: user for user in getattr(settings, "users", [])}

    def page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = env.get_template(name).render(**context)
        return HTMLResponse(html, status_code=status, headers=_SECURITY_HEADERS)

    def redirect(url: str) -> RedirectResponse:
        return RedirectResponse(url, status_code=303, headers=_SECURITY_HEADERS)

    def viewer_of(request: Request) -> Viewer | None:
        session = signer.read(request.cookies.get(SESSION_COOKIE), clock())
        if session is None:
            return None
        user = users().get(session.user)
        return None if user is None else Viewer(user.name, user.role, session)

    def to_login(request: Request) -> RedirectResponse:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return redirect(f"/console/login?{urlencode({'next': target})}")

    def csrf_of(who: Viewer) -> str:
        return signer.csrf_for("session", who.session.nonce)

    def ticket_page(who: Viewer, ticket_id: int, status: int = 200, error: str = "",
                    notice: str = "") -> HTMLResponse:
        ticket = service.get_ticket(ticket_id)
        if ticket is None:
            return page("error.html", 404, who=who, message=f"工单 {ticket_id} 不存在")
        return page("ticket.html", status, who=who, t=ticket, csrf=csrf_of(who), error=error,
                    notice=notice, timeline=timeline_rows(service.timeline(ticket_id)), link=None)

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

        def again(message: str, status: int) -> HTMLResponse:
            fresh = nonce or secrets.token_hex(16)
            response = page("login.html", status, who=None, next=target, error=message,
                            csrf=signer.csrf_for("login", fresh))
            response.set_cookie(LOGIN_COOKIE, fresh, max_age=3600, httponly=True, samesite="lax",
                                secure=secure, path="/console")
            return response

        if not signer.csrf_ok("login", nonce, csrf):
            return again("页面已过期，请重新登录", 403)
        now = clock()
        recent = failures[username]
        while recent and now - recent[0] > LOGIN_LOCKOUT:
            recent.popleft()
        if len(recent) >= LOGIN_FAILURES_ALLOWED:
            log.warning("console login refused for %r: too many failures", username[:64])
            return again("登录失败次数过多，请 5 分钟后再试", 429)
        user = users().get(username)
        if user is not None:
            hashed = user.password_hash.encode()
        else:
            hashed = _decoy_hash(_cost_of([u.password_hash for u in users().values()]))
        secret = password.encode()
        if len(secret) > 72 or not bcrypt.checkpw(secret, hashed) or user is None:
            recent.append(now)
            log.info("console login failed for %r", username[:64])
            return again("用户名或密码错误", 401)
        recent.clear()
        cookie, _session = signer.issue(user.name, now)
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
            return page("error.html", 403, who=who, message="请求已过期，请刷新页面后重试")
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
        return page("list.html", who=who, tickets=found, filters=filters, csrf=csrf_of(who))

    @router.get("/tickets/{ticket_id}", response_class=HTMLResponse)
    def ticket_detail(request: Request, ticket_id: int, notice: str = "") -> Response:
        who = viewer_of(request)
        if who is None:
            return to_login(request)
        return ticket_page(who, ticket_id, notice=_NOTICES.get(notice, ""))

    @router.get("/outbox", response_class=HTMLResponse)
    def dead_letters(request: Request) -> Response:
        who = viewer_of(request)
        if who is None:
            return to_login(request)
        from ..outbox import list_messages

        rows = list_messages(service.engine, "dead", 200)
        return page("outbox.html", who=who, rows=rows, csrf=csrf_of(who))

    # -- actions of operators ----------------------------------------------------------------------

    def act(request: Request, ticket_id: int, csrf: str, action: str,
            call: Callable[[str], object]) -> Response:
        who = viewer_of(request)
        if who is None:
            return to_login(request)
        if not signer.csrf_ok("session", who.session.nonce, csrf):
            return ticket_page(who, ticket_id, 403, error="请求已过期或来源不明，请刷新页面后重试")
        if not who.operator:
            return ticket_page(who, ticket_id, 403, error="只读账号不能操作工单")
        try:
            call(who.name)
        except (LookupError, ValueError) as exc:  # TicketNotFound / InvalidTransition / InvalidInput
            status = 404 if isinstance(exc, LookupError) else 409
            return ticket_page(who, ticket_id, status, error=str(exc))
        log.info("console: %s %s ticket %s", who.name, action, ticket_id)
        return redirect(f"/console/tickets/{ticket_id}?notice={quote(action)}")

    @router.post("/tickets/{ticket_id}/acknowledge")
    def acknowledge(request: Request, ticket_id: int, csrf: Annotated[str, Form()] = "") -> Response:
        return act(request, ticket_id, csrf, "acknowledge",
                   lambda actor: service.acknowledge(ticket_id, actor))

    @router.post("/tickets/{ticket_id}/progress")
    def progress(request: Request, ticket_id: int, csrf: Annotated[str, Form()] = "") -> Response:
        return act(request, ticket_id, csrf, "start_progress",
                   lambda actor: service.start_progress(ticket_id, actor))

    @router.post("/tickets/{ticket_id}/note")
    def note(request: Request, ticket_id: int, csrf: Annotated[str, Form()] = "",
             text: Annotated[str, Form(max_length=10000)] = "") -> Response:
        return act(request, ticket_id, csrf, "add_note",
                   lambda actor: service.add_note(ticket_id, actor, text))

    @router.post("/tickets/{ticket_id}/resolve")
    def resolve(request: Request, ticket_id: int, csrf: Annotated[str, Form()] = "",
                note: Annotated[str, Form(max_length=10000)] = "") -> Response:
        return act(request, ticket_id, csrf, "resolve",
                   lambda actor: service.resolve(ticket_id, actor, note))

    @router.post("/tickets/{ticket_id}/close")
    def close(request: Request, ticket_id: int, csrf: Annotated[str, Form()] = "",
              cause: Annotated[str, Form(max_length=10000)] = "",
              solution: Annotated[str, Form(max_length=10000)] = "",
              resolution: Annotated[str, Form()] = "") -> Response:
        if resolution not in ("local", "escalated"):
            who = viewer_of(request)
            if who is None:
                return to_login(request)
            return ticket_page(who, ticket_id, 422, error="请选择“本级解决”或“升级处理”")
        return act(request, ticket_id, csrf, "close",
                   lambda actor: service.close(ticket_id, actor, cause, solution, resolution == "local"))

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
        ticket = service.get_ticket(ticket_id)
        if ticket is None:
            return page("error.html", 404, who=None, message=f"工单 {ticket_id} 不存在")
        link = {"action": action, "exp": exp, "sig": sig, "csrf": signer.csrf_for("link", sig)}
        return page("ticket.html", status, who=viewer_of(request), t=ticket, csrf="", error=error,
                    notice=notice, timeline=timeline_rows(service.timeline(ticket_id)), link=link)

    @router.get("/link/{ticket_id}", response_class=HTMLResponse)
    def open_link(request: Request, ticket_id: int, action: str = "", exp: str = "",
                  sig: str = "") -> Response:
        problem = link_or_error(ticket_id, action, exp, sig)
        who = viewer_of(request)
        if problem:
            return page("error.html", 403, who=who, message=problem)
        if who is not None and who.operator:  # logged in already: the full page with every action
            return redirect(f"/console/tickets/{ticket_id}")
        return link_page(request, ticket_id, action, exp, sig)

    @router.post("/link/{ticket_id}/acknowledge", response_class=HTMLResponse)
    def acknowledge_by_link(request: Request, ticket_id: int, action: Annotated[str, Form()] = "",
                            exp: Annotated[str, Form()] = "", sig: Annotated[str, Form()] = "",
                            csrf: Annotated[str, Form()] = "") -> Response:
        problem = link_or_error(ticket_id, action, exp, sig)
        if problem:
            return page("error.html", 403, who=viewer_of(request), message=problem)
        if not signer.csrf_ok("link", sig, csrf):
            return link_page(request, ticket_id, action, exp, sig, 403, error="请求来源不明，请重新打开链接")
        who = viewer_of(request)
        actor = who.name if who is not None else LINK_ACTOR
        try:
            service.acknowledge(ticket_id, actor)
        except (LookupError, ValueError) as exc:
            return link_page(request, ticket_id, action, exp, sig, 409, error=str(exc))
        log.info("console: ticket %s acknowledged through a signed link by %s", ticket_id, actor)
        return link_page(request, ticket_id, action, exp, sig, notice="已确认响应，计时已记录")

    return router


_NOTICES = {"acknowledge": "已响应", "start_progress": "已开始处理", "add_note": "备注已添加",
            "resolve": "已标记为已解决", "close": "工单已关闭"}


def _safe_next(target: str) -> str:
    """Only our own pages: no open redirect through the login form."""
    if target.startswith("/console/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/console/tickets"
