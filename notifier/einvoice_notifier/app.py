"""The notifier's web application: the Alertmanager webhook, the JSON API, /metrics, /-/healthy.

`create_app` wires one `Notifier` (engine, service, outbox senders, deadline scheduler, metrics)
into a FastAPI app; nothing starts at import. The webhook stores before it answers: 200 only after
the transaction committed, 503 when the database failed (Alertmanager retries 5xx, not 4xx), 4xx
with a message for requests that can never succeed.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from einvoice_core.contract import WEBHOOK_PATH, Route, TicketClass

from . import db
from .auth import Authenticator, Principal, Throttled
from .messaging.base import Channel
from .metrics import Counters, RosterCollector, StoreCollector
from .outbox import Outbox, list_messages, replica_name
from .payload import Notification
from .service import (
    InvalidInputError,
    InvalidTransitionError,
    MessageNotFoundError,
    StoreUnavailableError,
    TicketNotFoundError,
    TicketService,
    TicketView,
    month_bounds,
)
from .settings import Settings, generate_token
from .systems import system_keys

log = logging.getLogger(__name__)

SCHEDULER_LEASE = "scheduler"
"""The lease (db.leases) of the deadline checks and pruning: one replica runs them at a time."""
_DRAIN_LIMIT = 128 * 1024 * 1024
"""An oversized body is read and discarded up to this size so the client sees the 413."""


def build_channels(settings: Settings) -> dict[str, Channel]:
    from .messaging.config import build_channel

    return {cfg.name: build_channel(cfg) for cfg in settings.channels}


class Notifier:
    """Everything one running notifier holds; tests build it with their own clock and channels."""

    def __init__(self, settings: Settings, engine: Engine | None = None,
                 clock: Callable[[], datetime] = db.utcnow, channels: Mapping[str, Channel] | None = None,
                 webhook_token: str | None = None, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.engine = engine or db.make_engine(settings.resolved_database_url())
        self.clock = clock
        self.channels = dict(channels) if channels is not None else build_channels(settings)
        self.webhook_token = webhook_token or settings.configured_webhook_token() or generate_token()
        self.token_generated = webhook_token is None and settings.configured_webhook_token() is None
        self.registry = CollectorRegistry()
        self.counters = Counters(self.registry, self.channels)
        self.outbox = Outbox(self.engine, self.channels, settings.outbox, clock, self.counters.sends)
        self.service = TicketService(self.engine, settings, clock, self.channels,
                                     on_enqueue=self.outbox.notify)
        self.registry.register(StoreCollector(self.engine, self.channels, clock, self.reports_store))
        self.registry.register(RosterCollector(self.service, self.reports_store))
        from .registers import Registers, RegistersCollector

        self.registers = Registers(self.engine, clock)
        self.registry.register(RegistersCollector(self.registers, self.reports_store))
        self.monotonic = monotonic
        self.authenticator = Authenticator(settings, monotonic)
        self._stop = threading.Event()
        self.migrated = threading.Event()
        self._scheduler: threading.Thread | None = None
        self.replica = replica_name()
        self._pruned_at: datetime | None = None

    def start(self) -> None:
        """Start senders and the scheduler. A database that is down at start is not fatal: the
        webhook answers 503 (Alertmanager keeps the alerts and retries) until it is back."""
        self._stop.clear()
        self._try_migrate()
        self.outbox.start()
        self._scheduler = threading.Thread(target=self._schedule, name="deadline-scheduler", daemon=True)
        self._scheduler.start()

    def stop(self) -> None:
        self._stop.set()
        self.outbox.stop()
        if self._scheduler is not None:
            self._scheduler.join(10)
        if self.migrated.is_set():
            # Another replica takes the scheduler over now instead of when the lease ends.
            with contextlib.suppress(DBAPIError):
                db.release_lease(self.engine, SCHEDULER_LEASE, self.replica)

    def _try_migrate(self) -> bool:
        if self.migrated.is_set():
            return True
        try:
            db.migrate(self.engine)
        except DBAPIError as exc:
            log.warning("database unavailable at start (%s); retrying", type(exc.orig).__name__)
            return False
        except db.MigrationLockTimeoutError as exc:  # another replica's migration: try again later
            log.warning("%s; retrying", exc)
            return False
        self.migrated.set()
        return True

    def reports_store(self) -> bool:
        """Whether /metrics carries the store's figures: on the replica holding the scheduler lease,
        or on every replica while none holds it (a single notifier always does)."""
        return db.lease_holder(self.engine, SCHEDULER_LEASE, self.clock()) in (None, self.replica)

    def scheduler_lease_ttl(self) -> float:
        """How long the scheduler's lease lasts: a few of its rounds, so a replica that died is
        replaced within that time (and a live one renews it every round)."""
        return max(3 * self.settings.scheduler_interval, 10.0)

    def run_scheduled(self) -> bool:
        """One round of the jobs one replica runs at a time: deadlines (the escalation timers),
        every `retention.interval` pruning, and the notices of reports newly in `report_archive`.
        False when another replica holds them."""
        now = self.clock()
        if not db.take_lease(self.engine, SCHEDULER_LEASE, self.replica, self.scheduler_lease_ttl(), now):
            return False
        escalated = self.service.check_deadlines()
        if escalated:
            log.info("escalated %d ticket(s) past a deadline", len(escalated))
        since = None if self._pruned_at is None else (now - self._pruned_at).total_seconds()
        due = since is None or since >= self.settings.retention.interval
        if due and not self.service.prune()["more"]:  # something left: the rest on the next round
            self._pruned_at = now
        archive = self.settings.report_archive
        if archive is not None and self.settings.announce_reports:
            announced = self.service.announce_reports(archive)
            if announced:
                log.info("announced new reports in %d message(s)", announced)
        return True

    def _schedule(self) -> None:
        while not self._stop.is_set():
            try:
                if self._try_migrate():
                    self.run_scheduled()
            except DBAPIError as exc:
                log.warning("deadline check: database unavailable (%s)", type(exc.orig).__name__)
            except Exception:  # a bug must not silently end escalations for good: log, keep going
                log.exception("deadline check failed")
            wait = self.settings.scheduler_interval if self.migrated.is_set() else 2.0
            self._stop.wait(min(wait, self.settings.scheduler_interval))


class TicketOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    group_key: str
    fingerprint: str
    alertname: str
    item: str | None
    zone: str | None
    target: str | None
    severity_class: TicketClass
    severity_zh: str
    state: Literal["open", "acknowledged", "in_progress", "resolved", "closed"]
    state_zh: str
    summary: str
    description: str
    labels: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None
    created_at: datetime | None
    acknowledged_at: datetime | None
    in_progress_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    response_deadline: datetime
    resolution_deadline: datetime
    response_breached: bool
    resolution_breached: bool
    escalated: bool
    overdue: bool
    second_line: bool
    recurrence_of: int | None
    cause: str | None
    solution: str | None
    resolved_locally: bool | None
    source: Literal["alert", "report"] = "alert"
    report_channel: str | None = None
    report_channel_zh: str = ""
    reporter: str | None = None
    substantive_deadline: datetime | None = None
    substantive_breached: bool = False
    agreed_fix_at: datetime | None = None
    agreed_fix_ref: str | None = None
    duplicate_of: int | None = None
    escalated_to: Literal["second_line", "bureau"] | None = None
    major_incident_at: datetime | None = None
    typical: bool = False
    system: str | None = None
    drill: bool = False


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    before: dict[str, Any]
    after: dict[str, Any]
    note: str


class TicketDetail(TicketOut):
    timeline: list[AuditOut]


class NoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=10000)


class ResolveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field(default="", max_length=10000)


class CloseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cause: str = Field(min_length=1, max_length=10000)
    solution: str = Field(min_length=1, max_length=10000)
    resolved_locally: bool
    """True: solved by the on-site team (本级解决); False: escalated to the second line/vendor."""


class RatesOut(BaseModel):
    """本级解决率 and 一次性解决率 of [start, end) (service.ResolutionRates); null: nothing to count."""

    start: datetime
    end: datetime
    closed: int
    closed_locally: int
    local_ratio: float | None
    resolved: int
    recurred: int
    one_time_ratio: float | None


class OutboxOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    ticket_id: int | None
    channel: str
    event: str
    state: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    sent_at: datetime | None
    last_error: str


def source_of(request: Request) -> str:
    """The TCP peer (X-Forwarded-For is not trusted: anyone can write it)."""
    return request.client.host if request.client is not None else ""


def _principal(request: Request) -> Principal:
    authenticator: Authenticator = request.app.state.notifier.authenticator
    try:
        found = authenticator.authenticate(request.headers.get("authorization"), source_of(request))
    except Throttled as exc:
        raise HTTPException(429, str(exc), headers={"Retry-After": f"{exc.retry_after:.0f}"}) from None
    if found is None:
        raise HTTPException(401, "authentication required",
                            headers={"WWW-Authenticate": 'Basic realm="einvoice-notifier"'})
    return found


def _operator(request: Request, who: Annotated[Principal, Depends(_principal)]) -> Principal:
    if not who.may("operator"):
        raise HTTPException(403, "the operator role is required")
    origin = request.headers.get("origin")
    public = urlsplit(request.app.state.notifier.settings.public_url).netloc
    if origin is not None and urlsplit(origin).netloc not in (request.headers.get("host"), public):
        # A browser remembers HTTP basic credentials; a page elsewhere must not act with them.
        raise HTTPException(403, "cross-origin requests cannot change tickets")
    return who


Viewer = Annotated[Principal, Depends(_principal)]
Operator = Annotated[Principal, Depends(_operator)]
StateName = Literal["open", "acknowledged", "in_progress", "resolved", "closed"]


def _ticket_out(view: TicketView) -> TicketOut:
    return TicketOut.model_validate({**asdict(view), "state_zh": view.state_zh,
                                     "severity_zh": view.severity_zh,
                                     "report_channel_zh": view.report_channel_zh})


def _error(code: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"status": "error", "error": message, **extra}, status_code=code)


DOCS_ASSETS_PATH = "/docs-assets"
MAX_ROW_ID = 2**63 - 1
"""Ids are BIGINT in the store: a larger number names no row (404), it is not a server error."""


def addressable(row_id: int) -> bool:
    """Whether a row id from a URL can name a stored row at all (the store cannot bind others)."""
    return 0 < row_id <= MAX_ROW_ID


def _docs_assets() -> Path:
    """Swagger UI's files as the fastapi-offline package ships them (nothing loads from a CDN)."""
    import fastapi_offline

    return Path(fastapi_offline.__file__).parent / "static"


def _serve_docs_offline(app: FastAPI) -> None:
    """/docs with Swagger UI served from the notifier itself: the platform's intranet has no CDN.
    The online validator badge is switched off too (it would fetch from swagger.io)."""
    app.mount(DOCS_ASSETS_PATH, StaticFiles(directory=_docs_assets()), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} · API",
            swagger_js_url=f"{DOCS_ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS_PATH}/favicon.png",
            swagger_ui_parameters={"validatorUrl": None})


_UNAVAILABLE_HTML = ("<!doctype html><html lang=\"zh-CN\"><meta charset=\"utf-8\">"
                     "<title>工单库暂不可用</title><h1>工单库暂时不可用</h1><p>数据库连接失败，请稍后刷新重试。告警不会丢失："
                     "Alertmanager 会重发。</p></html>")


def _answer_503_while_the_store_is_down(app: FastAPI) -> None:
    """The API and the console answer 503 (retry later), like the webhook, when the database fails."""

    async def unavailable(request: Request, exc: Exception) -> Response:
        orig = getattr(exc, "orig", None)
        log.warning("%s %s: database unavailable (%s)", request.method, request.url.path,
                    type(orig or exc).__name__)
        headers = {"Retry-After": "30", "Cache-Control": "no-store"}
        if request.url.path.startswith("/console"):
            return HTMLResponse(_UNAVAILABLE_HTML, status_code=503, headers=headers)
        return JSONResponse({"detail": "ticket store unavailable; retry later"}, status_code=503,
                            headers=headers)

    app.add_exception_handler(DBAPIError, unavailable)
    app.add_exception_handler(StoreUnavailableError, unavailable)


def create_app(notifier: Notifier, start_background: bool = True) -> FastAPI:
    """The ASGI app; `start_background=False` leaves senders and scheduler to the test."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if start_background:
            await run_in_threadpool(notifier.start)
        else:
            await run_in_threadpool(db.migrate, notifier.engine)
        try:
            yield
        finally:
            if start_background:
                await run_in_threadpool(notifier.stop)

    app = FastAPI(title="einvoice-notifier", version="0.1.0", lifespan=lifespan,
                  description="Alertmanager webhook → 工单 (SLA 时限) → 企业微信消息",
                  docs_url=None, redoc_url=None)
    app.state.notifier = notifier
    _serve_docs_offline(app)
    _answer_503_while_the_store_is_down(app)
    counters = notifier.counters
    service = notifier.service
    expected_token = notifier.webhook_token.encode()
    limit = notifier.settings.body_limit_bytes

    @app.post(WEBHOOK_PATH, tags=["webhook"], summary="Alertmanager webhook (payload version 4)")
    async def webhook(request: Request, route: str | None = None) -> JSONResponse:
        try:
            response = await _webhook(request, route)
        except Exception:  # a bug: answered and counted as one, never an uncounted crash
            log.exception("webhook: unexpected error")
            response = _error(500, "internal error")
        counters.webhook_requests.labels(code=str(response.status_code)).inc()
        return response

    async def _webhook(request: Request, route: str | None) -> JSONResponse:
        scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected_token):
            response = _error(401, "missing or wrong bearer token")
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
        if route is not None and route not in set(Route):
            return _error(400, "query parameter route must be one of " + ", ".join(Route))
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > _DRAIN_LIMIT:
            return _error(413, f"body larger than {limit} bytes")
        body = bytearray()
        too_large = False
        async for chunk in request.stream():
            if too_large or len(body) + len(chunk) > limit:
                too_large = True
                continue
            body.extend(chunk)
        if too_large:
            return _error(413, f"body larger than {limit} bytes")
        try:
            raw = json.loads(bytes(body).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return _error(400, f"body is not valid JSON: {exc}")
        except RecursionError:
            return _error(400, "body is not valid JSON: nested too deeply")
        except ValueError as exc:  # e.g. an integer of more than 4300 digits
            return _error(400, f"body is not valid JSON: {str(exc)[:120]}")
        try:
            notification = Notification.model_validate(raw)
        except RecursionError:
            return _error(422, "payload is not an Alertmanager version 4 notification: nested too deeply")
        except ValidationError as exc:
            details = [{"loc": ".".join(str(part) for part in error["loc"]), "msg": error["msg"]}
                       for error in exc.errors()[:20]]
            return _error(422, "payload is not an Alertmanager version 4 notification", details=details)
        if notification.truncated_alerts:
            log.warning("notification from receiver %s dropped %d alert(s) (max_alerts in Alertmanager's "
                        "webhook_config): those alerts get no ticket", notification.receiver,
                        notification.truncated_alerts)
        try:
            result = await run_in_threadpool(service.ingest, notification, route or Route.FIRST_LINE)
        except StoreUnavailableError as exc:
            log.warning("webhook: could not store notification (%s); answering 503", exc)
            return _error(503, "ticket store unavailable; retry later")
        log.debug("webhook: %d alert(s), %d new event(s), %d new ticket(s), %d message(s)", result.alerts,
                  result.new_events, result.new_tickets, result.messages)
        return JSONResponse({"status": "ok", "alerts": result.alerts, "new_events": result.new_events,
                             "new_tickets": result.new_tickets})

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(notifier.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/-/healthy", include_in_schema=False)
    def healthy() -> PlainTextResponse:
        return PlainTextResponse("OK")

    @app.get("/-/ready", include_in_schema=False)
    def ready() -> PlainTextResponse:
        try:
            service.ping()
        except DBAPIError:
            return PlainTextResponse("database unavailable", status_code=503)
        return PlainTextResponse("OK")

    app.include_router(_api_router(notifier))
    from .api_duty import duty_router

    app.include_router(duty_router(notifier))
    from .api_registers import registers_router

    app.include_router(registers_router(notifier, notifier.registers))
    try:
        from .console import build_router
    except ImportError:
        log.info("console package not available; serving the JSON API only")
    else:
        router = build_router(service, notifier.settings, notifier.authenticator)
        if router.prefix:
            app.include_router(router)
        else:
            app.include_router(router, prefix="/console")
    return app


def _api_router(notifier: Notifier) -> APIRouter:
    service = notifier.service
    router = APIRouter(prefix="/api/v1", tags=["tickets"])

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

    @router.get("/tickets", response_model=list[TicketOut], summary="工单列表")
    def list_tickets(_who: Viewer,
                     state: StateName | None = None,
                     severity_class: TicketClass | None = None,
                     item: str | None = None, overdue: bool | None = None,
                     limit: Annotated[int, Query(ge=1, le=5000)] = 200,
                     system: str | None = None, drill: bool | None = None) -> list[TicketOut]:
        if system is not None and system not in system_keys():
            raise HTTPException(422, f"system {system!r} 不是 thresholds.yaml systems 中的系统（可选："
                                     + "、".join(system_keys()) + "）")
        found = service.list_tickets(state, severity_class, item, overdue, limit, system, drill)
        return [_ticket_out(view) for view in found]

    @router.get("/tickets/{ticket_id}", response_model=TicketDetail, summary="工单详情与时间线")
    def get_ticket(ticket_id: int, _who: Viewer) -> TicketDetail:
        view = service.get_ticket(ticket_id) if addressable(ticket_id) else None
        if view is None:
            raise HTTPException(404, f"工单 {ticket_id} 不存在")
        timeline = [AuditOut.model_validate(asdict(entry)) for entry in service.timeline(ticket_id)]
        return TicketDetail.model_validate({**_ticket_out(view).model_dump(), "timeline": timeline})

    @router.post("/tickets/{ticket_id}/acknowledge", response_model=TicketOut, summary="响应")
    def acknowledge(ticket_id: int, who: Operator) -> TicketOut:
        return act(ticket_id, lambda: service.acknowledge(ticket_id, who.name))

    @router.post("/tickets/{ticket_id}/progress", response_model=TicketOut, summary="开始处理")
    def progress(ticket_id: int, who: Operator) -> TicketOut:
        return act(ticket_id, lambda: service.start_progress(ticket_id, who.name))

    @router.post("/tickets/{ticket_id}/note", response_model=TicketOut, summary="添加备注")
    def note(ticket_id: int, body: NoteIn, who: Operator) -> TicketOut:
        return act(ticket_id, lambda: service.add_note(ticket_id, who.name, body.text))

    @router.post("/tickets/{ticket_id}/resolve", response_model=TicketOut, summary="解决")
    def resolve(ticket_id: int, body: ResolveIn, who: Operator) -> TicketOut:
        return act(ticket_id, lambda: service.resolve(ticket_id, who.name, body.note))

    @router.post("/tickets/{ticket_id}/close", response_model=TicketOut, summary="关闭（填写原因与解决方案）")
    def close(ticket_id: int, body: CloseIn, who: Operator) -> TicketOut:
        return act(ticket_id, lambda: service.close(ticket_id, who.name, body.cause, body.solution,
                                         body.resolved_locally))

    @router.get("/rates", response_model=RatesOut, tags=["reports"], summary="本级/一次性解决率（按区间）")
    def rates(_who: Viewer, start: datetime | None = None, end: datetime | None = None) -> RatesOut:
        if start is None and end is None:  # the current calendar month, as /metrics shows it
            start, end = month_bounds(notifier.clock(), service.calendar.tz)
        if start is None or end is None:
            raise HTTPException(422, "start 与 end 需同时给出（ISO 8601，带时区）")
        try:
            found = service.rates(start, end)
        except InvalidInputError as exc:
            raise HTTPException(422, str(exc)) from None
        return RatesOut(start=found.start, end=found.end, closed=found.closed,
                        closed_locally=found.closed_locally, local_ratio=found.local_ratio,
                        resolved=found.resolved, recurred=found.recurred, one_time_ratio=found.one_time_ratio)

    @router.get("/outbox", response_model=list[OutboxOut], tags=["outbox"], summary="消息队列（默认死信）")
    def outbox_messages(_who: Viewer, state: Literal["pending", "sent", "dead"] | None = "dead",
                        limit: Annotated[int, Query(ge=1, le=5000)] = 200) -> list[OutboxOut]:
        return [OutboxOut.model_validate(row) for row in list_messages(notifier.engine, state, limit)]

    @router.post("/outbox/{message_id}/requeue", status_code=204, tags=["outbox"], summary="重新发送失败消息")
    def requeue(message_id: int, who: Operator) -> Response:
        if not addressable(message_id):
            raise HTTPException(404, f"消息 {message_id} 不存在")
        try:
            service.requeue_dead_letter(message_id, who.name)
        except MessageNotFoundError as exc:
            raise HTTPException(404, str(exc)) from None
        except InvalidInputError as exc:
            raise HTTPException(409, str(exc)) from None
        return Response(status_code=204)

    return router
