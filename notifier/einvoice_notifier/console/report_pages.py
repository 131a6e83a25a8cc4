"""Console pages for management: the report archive (报告) and the service level (SLA).

报告: the folder `einvoice-report` writes to (`report_archive` in the notifier's settings; the same
path as the reports' `--out` / EINVOICE_REPORT_ARCHIVE), listed by report kind and served for
download. Only `<kind>/<period>.<html|pdf|xlsx>` files of the known kinds are served: the kind is one
of the reports' own, the name matches a fixed pattern, and the resolved path must stay inside the
archive (a symlink pointing out of it is refused), so no request can reach another file
(einvoice_notifier.archive).

SLA: per service the month's availability, outage time, longest outage, outages over 2 h and the
yearly outage budget used and left, from Prometheus through the reports' own code (einvoice_reports.sla,
the same figures as the monthly report), and the month's 本级解决率 / 一次性解决率 from the ticket
store through the notifier's own definition (TicketService.rates). A Prometheus that is not configured
or does not answer is said on the page (503), never shown as zeros.

Both need a login (viewer or operator), as every console page.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from ..archive import FORMAT_ZH, MEDIA, archived_file, list_archive
from .forms import Forms
from .views import SHANGHAI

log = logging.getLogger(__name__)

MONTH_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
_FILE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # a report page is static: its inline styles and SVG, nothing else, no scripts, no framing
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
}


@dataclass(slots=True)
class SlaPage:
    month: str
    services: list[Any]
    rates: Any
    objective: float
    budget_hours: float
    error: str = ""
    gaps: tuple[str, ...] = ()


def _month_now(now: datetime) -> str:
    local = now.astimezone(SHANGHAI)
    return f"{local.year:04d}-{local.month:02d}"


def sla_figures(settings: Any, service: Any, month: str, now: datetime) -> SlaPage:
    """The page's figures; the einvoice_reports package is installed with the notifier (one project)."""
    from einvoice_reports.errors import ReportError
    from einvoice_reports.period import parse_period
    from einvoice_reports.prom import PrometheusClient
    from einvoice_reports.sla import collect_sla

    from einvoice_core.thresholds import duration_seconds, load_thresholds

    thresholds = load_thresholds()
    period = parse_period(month)
    rates = service.rates(period.start, min(period.end, now))
    page = SlaPage(month, [], rates, thresholds.sla.objective,
                   duration_seconds(thresholds.sla.yearly_outage_budget) / 3600)
    url = getattr(settings, "prometheus_url", None)
    if not url:
        page.error = "未配置 Prometheus（notifier 配置 prometheus_url），无法显示可用率与宕机数据"
        return page
    try:
        figures = collect_sla(PrometheusClient(url, timeout=float(settings.prometheus_timeout)), period,
                              thresholds)
    except ReportError as exc:
        log.warning("SLA page: %s", exc)
        page.error = str(exc)
        return page
    page.services = figures.services
    page.gaps = tuple(figures.gaps)
    return page


def add_report_pages(
    router: APIRouter, service: Any, settings: Any, forms: Forms, *, now: Callable[[], datetime]
) -> None:
    page = forms.page

    def archive() -> Path | None:
        found = getattr(settings, "report_archive", None)
        return Path(found) if found else None

    @router.get("/reports")
    def reports(request: Request) -> Response:
        who, refused = forms.guard(request)
        if refused:
            return refused
        folder = archive()
        listed = list_archive(folder) if folder is not None and folder.is_dir() else []
        return page("reports.html", who=who, reports=listed, configured=folder is not None,
                    exists=folder is not None and folder.is_dir(), FORMAT_ZH=FORMAT_ZH)

    @router.get("/reports/{kind}/{name}")
    def report_file(request: Request, kind: str, name: str) -> Response:
        who, refused = forms.guard(request)
        if refused:
            return refused
        folder = archive()
        path = archived_file(folder, kind, name) if folder is not None else None
        if path is None:
            return page("error.html", 404, who=who, message="报告不存在")
        ext = path.suffix[1:]
        disposition = "attachment" if ext == "xlsx" else "inline"
        return FileResponse(path, media_type=MEDIA[ext], headers={
            **_FILE_HEADERS, "Content-Disposition": f'{disposition}; filename="{kind}-{path.name}"'})

    @router.get("/sla")
    def sla(request: Request, month: str = "") -> Response:
        who, refused = forms.guard(request)
        if refused:
            return refused
        wanted = month or _month_now(now())
        if not MONTH_RE.fullmatch(wanted):
            return page("error.html", 400, who=who, message="月份格式应为 2026-11")
        figures = sla_figures(settings, service, wanted, now())
        from einvoice_reports.fmt import duration, pct

        return page("sla.html", 503 if figures.error else 200, who=who, s=figures, pct=pct, duration=duration)
