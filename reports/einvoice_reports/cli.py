"""einvoice-report KIND --period P: build one report from Prometheus and the ticket store into the archive.

Exit status: 0 written (complete), 3 written but marked incomplete (gaps named inside), 2 failed
(bad arguments, unreachable source: the reason on stderr, nothing written)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from einvoice_core.thresholds import load_thresholds

from .errors import ReportError
from .period import Period, parse_period, previous_period
from .prom import PrometheusClient
from .store import TicketStore

log = logging.getLogger("einvoice_reports")

KINDS = ("daily", "monthly", "scorecard", "handbook", "incident")
PERIOD_KIND = {"daily": "day", "monthly": "month", "scorecard": "month", "handbook": "quarter"}
"""What period each report covers."""
TITLES = {"daily": "系统运行监控报告", "monthly": "月度系统运维报告", "scorecard": "运维厂商考核评级表",
          "handbook": "常见问题处理手册", "incident": "突发事件分析报告"}


@dataclass(frozen=True, slots=True)
class Options:
    kind: str
    period: Period | None
    """None for the incident report, which is about one ticket."""
    prometheus: str
    store: str
    out: Path
    formats: tuple[str, ...]
    now: datetime
    ticket: int | None = None
    edits: Path | None = None
    final: bool = False

    @property
    def span(self) -> Period:
        """The period of a periodic report (every kind but the incident report has one)."""
        if self.period is None:
            raise ReportError("该报告需要 --period")
        return self.period


@dataclass(frozen=True, slots=True)
class Outcome:
    files: list[Path]
    gaps: list[str]


def _monthly(options: Options) -> Outcome:
    from . import monthly, render

    report = monthly.build_monthly(options.span, PrometheusClient(options.prometheus),
                                   TicketStore(options.store), load_thresholds(), options.now)
    context = monthly.context(report) | {"title": TITLES["monthly"], "gaps": report.gaps,
                                          "sources": report.sources}
    html = render.render_html("monthly.html.j2", context)
    files = [render.write_atomic(render.archive_path(options.out, "monthly", options.span.label, "html"),
                                 html.encode())]
    if "pdf" in options.formats:
        pdf_path = render.archive_path(options.out, "monthly", options.span.label, "pdf")
        files.append(render.write_atomic(pdf_path,
                                         render.html_to_pdf(html)))
    return Outcome(files, report.gaps)


def _daily(options: Options) -> Outcome:
    from . import daily, render

    report = daily.build_daily(options.span, PrometheusClient(options.prometheus),
                               TicketStore(options.store), load_thresholds(), options.now)
    html = render.render_html("daily.html.j2", daily.context(report) | {"title": TITLES["daily"]})
    label = options.span.label
    files = [render.write_atomic(render.archive_path(options.out, "daily", label, "html"), html.encode())]
    if "pdf" in options.formats:
        files.append(render.write_atomic(render.archive_path(options.out, "daily", label, "pdf"),
                                         render.html_to_pdf(html)))
    return Outcome(files, report.gaps)


def _incident(options: Options) -> Outcome:
    from . import incident, render

    assert options.ticket is not None
    edits = incident.load_edits(options.edits) if options.edits else None
    report = incident.build_incident(options.ticket, TicketStore(options.store), options.now, edits,
                                     options.final)
    context = incident.context(report) | {"title": TITLES["incident"], "subtitle": f"工单 #{options.ticket}"}
    html = render.render_html("incident.html.j2", context)
    label = f"ticket-{options.ticket}"
    files = [render.write_atomic(render.archive_path(options.out, "incident", label, "html"), html.encode())]
    if "pdf" in options.formats:
        files.append(render.write_atomic(render.archive_path(options.out, "incident", label, "pdf"),
                                         render.html_to_pdf(html)))
    return Outcome(files, [])


def _handbook(options: Options) -> Outcome:
    from . import handbook, render

    book = handbook.build_handbook(options.span, TicketStore(options.store), options.now)
    html = render.render_html("handbook.html.j2", handbook.context(book) | {"title": TITLES["handbook"]})
    label = options.span.label
    files = [render.write_atomic(render.archive_path(options.out, "handbook", label, "html"), html.encode())]
    if "pdf" in options.formats:
        files.append(render.write_atomic(render.archive_path(options.out, "handbook", label, "pdf"),
                                         render.html_to_pdf(html)))
    return Outcome(files, [])


def _scorecard(options: Options) -> Outcome:
    from . import scorecard

    return scorecard.produce(options)


BUILDERS: dict[str, Callable[[Options], Outcome]] = {"daily": _daily, "monthly": _monthly,
                                                     "scorecard": _scorecard, "handbook": _handbook,
                                                     "incident": _incident}


def parse_args(argv: Sequence[str] | None, now: datetime) -> Options:
    parser = argparse.ArgumentParser(prog="einvoice-report", description="生成合同约定的运维报告并归档")
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--period", help="日报 2026-11-05，月报与评级表 2026-11；省略时为上一个完整周期")
    parser.add_argument("--prometheus",
                        default=os.environ.get("EINVOICE_REPORT_PROMETHEUS", "http://127.0.0.1:9090"),
                        help="Prometheus（或 VictoriaMetrics、Thanos Query）的地址")
    parser.add_argument("--store", default=os.environ.get("EINVOICE_REPORT_STORE", ""),
                        help="工单库 SQLAlchemy URL（与 notifier 的 database_url 相同）")
    parser.add_argument("--out", type=Path,
                        default=Path(os.environ.get("EINVOICE_REPORT_ARCHIVE", "archive")),
                        help="归档目录（写入 KIND/PERIOD.html|pdf|xlsx）")
    parser.add_argument("--no-pdf", action="store_true", help="只生成 HTML（和 xlsx）")
    parser.add_argument("--ticket", type=int, help="突发事件分析报告：工单编号")
    parser.add_argument("--edits", type=Path, help="突发事件分析报告：运维人员修改的章节（YAML）")
    parser.add_argument("--final", action="store_true", help="突发事件分析报告：标记为定稿")
    args = parser.parse_args(argv)
    formats = ("html",) if args.no_pdf else ("html", "pdf")
    if args.kind == "incident":
        if args.ticket is None:
            raise ReportError("突发事件分析报告需要 --ticket 工单编号")
        return Options(args.kind, None, args.prometheus, args.store, args.out, formats, now, args.ticket,
                       args.edits, args.final)
    wanted = PERIOD_KIND[args.kind]
    period = parse_period(args.period) if args.period else previous_period(wanted, now)
    if period.kind != wanted:
        forms = {"day": "日（如 2026-11-05）", "month": "月（如 2026-11）", "quarter": "季度（如 2026-Q4）"}
        raise ReportError(f"{TITLES[args.kind]}的周期应为{forms.get(wanted, wanted)}，收到 {period.label}")
    return Options(args.kind, period, args.prometheus, args.store, args.out, formats, now)


def main(argv: Sequence[str] | None = None, now: datetime | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    moment = now or datetime.now(UTC)
    try:
        options = parse_args(argv, moment)
        outcome = BUILDERS[options.kind](options)
    except ReportError as exc:
        print(f"einvoice-report: 未生成报告：{exc}", file=sys.stderr)
        return 2
    for path in outcome.files:
        print(path)
    if outcome.gaps:
        for gap in outcome.gaps:
            print(f"einvoice-report: 数据不完整：{gap}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
