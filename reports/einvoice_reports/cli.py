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
from typing import Any

from einvoice_core.thresholds import load_thresholds

from .errors import ReportError
from .period import Period, parse_period, previous_period
from .prom import PrometheusClient
from .store import TicketStore

log = logging.getLogger("einvoice_reports")

KINDS = ("daily", "health", "monthly", "scorecard", "handbook", "yearly", "incident", "params", "drill",
         "weekly", "evidence")
PERIOD_KIND = {"daily": "day", "health": "day|month", "monthly": "month", "scorecard": "month",
               "handbook": "quarter", "yearly": "year", "params": "day|month", "weekly": "week"}
"""What period each report covers ("day|month": either; the first is the default)."""
TITLES = {"daily": "系统运行监控报告", "health": "专项健康检查报告", "monthly": "月度系统运维报告",
          "scorecard": "运维厂商考核评级表", "handbook": "常见问题处理手册", "yearly": "年度服务报告总结",
          "incident": "突发事件分析报告", "params": "参数配置报告", "drill": "容灾演练报告",
          "weekly": "运维周报", "evidence": "故障定责证据包"}
TICKET_KINDS = ("incident", "evidence")
"""Reports about one ticket (--ticket) rather than a period."""


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
    window: str | None = None
    """The drill report's window (a name in drill_windows.yml)."""
    drill_windows: Path | None = None
    system: str | None = None
    """The scorecard of one system (thresholds.yaml `systems` key); None: the whole platform."""
    calendar: Path | None = None
    """The notifier's calendar file (holidays, make-up workdays) for the scorecard's working days."""

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


def _publish(options: Options, kind: str, label: str, template: str, context: dict[str, Any],
             gaps: list[str]) -> Outcome:
    """Render `template` and write KIND/LABEL.html (and .pdf unless --no-pdf) into the archive."""
    from . import render

    html = render.render_html(template, context | {"title": TITLES[kind]})
    files = [render.write_atomic(render.archive_path(options.out, kind, label, "html"), html.encode())]
    if "pdf" in options.formats:
        files.append(render.write_atomic(render.archive_path(options.out, kind, label, "pdf"),
                                         render.html_to_pdf(html)))
    return Outcome(files, gaps)


def _monthly(options: Options) -> Outcome:
    from . import monthly

    report = monthly.build_monthly(options.span, PrometheusClient(options.prometheus),
                                   TicketStore(options.store), load_thresholds(), options.now)
    context = monthly.context(report) | {"gaps": report.gaps, "sources": report.sources}
    return _publish(options, "monthly", options.span.label, "monthly.html.j2", context, report.gaps)


def _daily(options: Options) -> Outcome:
    from . import daily

    report = daily.build_daily(options.span, PrometheusClient(options.prometheus),
                               TicketStore(options.store), load_thresholds(), options.now)
    return _publish(options, "daily", options.span.label, "daily.html.j2", daily.context(report), report.gaps)


def _yearly(options: Options) -> Outcome:
    from . import yearly
    from .drill import load_windows

    report = yearly.build_yearly(options.span, PrometheusClient(options.prometheus),
                                 TicketStore(options.store), load_thresholds(), options.now,
                                 load_windows(options.drill_windows))
    context = yearly.context(report)
    return _publish(options, "yearly", options.span.label, "yearly.html.j2", context, report.gaps)


def _health(options: Options) -> Outcome:
    from . import health

    report = health.build_health(options.span, PrometheusClient(options.prometheus),
                                 TicketStore(options.store), load_thresholds(), options.now)
    context = health.context(report)
    return _publish(options, "health", options.span.label, "health.html.j2", context, report.gaps)


def _handbook(options: Options) -> Outcome:
    from . import handbook

    book = handbook.build_handbook(options.span, TicketStore(options.store), options.now)
    return _publish(options, "handbook", options.span.label, "handbook.html.j2", handbook.context(book), [])


def _incident(options: Options) -> Outcome:
    from . import incident

    assert options.ticket is not None
    edits = incident.load_edits(options.edits) if options.edits else None
    report = incident.build_incident(options.ticket, TicketStore(options.store), options.now, edits,
                                     options.final)
    context = incident.context(report) | {"subtitle": f"工单 #{options.ticket}"}
    return _publish(options, "incident", f"ticket-{options.ticket}", "incident.html.j2", context, [])


def _params(options: Options) -> Outcome:
    from . import params

    report = params.build_params(options.span, PrometheusClient(options.prometheus), options.now)
    return _publish(options, "params", options.span.label, "params.html.j2", params.context(report),
                    report.gaps)


def _drill(options: Options) -> Outcome:
    from . import drill

    assert options.window is not None
    thresholds = load_thresholds()
    window = drill.find_window(drill.load_windows(options.drill_windows), options.window)
    report = drill.build_drill(window, PrometheusClient(options.prometheus), thresholds, options.now)
    return _publish(options, "drill", report.label, "drill.html.j2", drill.context(report, thresholds),
                    report.gaps)


def _scorecard(options: Options) -> Outcome:
    from . import scorecard

    return scorecard.produce(options)


def _weekly(options: Options) -> Outcome:
    from . import weekly

    return weekly.produce(options)


def _evidence(options: Options) -> Outcome:
    from . import evidence

    return evidence.produce(options)


BUILDERS: dict[str, Callable[[Options], Outcome]] = {
    "daily": _daily, "health": _health, "monthly": _monthly, "scorecard": _scorecard, "handbook": _handbook,
    "yearly": _yearly, "incident": _incident, "params": _params, "drill": _drill, "weekly": _weekly,
    "evidence": _evidence,
}


def parse_args(argv: Sequence[str] | None, now: datetime) -> Options:
    parser = argparse.ArgumentParser(prog="einvoice-report", description="生成合同约定的运维报告并归档")
    parser.add_argument("kind", choices=KINDS)
    chosen = parser.add_mutually_exclusive_group()
    chosen.add_argument("--period", help="日报 2026-11-05，月报与评级表 2026-11；省略时为上一个完整周期")
    chosen.add_argument("--previous", choices=("day", "week", "month", "quarter", "year"),
                        help="上一个完整的日、周、月、季度或年（计划任务用，如 --previous month）")
    parser.add_argument("--prometheus",
                        default=os.environ.get("EINVOICE_REPORT_PROMETHEUS", "http://127.0.0.1:9090"),
                        help="Prometheus（或 VictoriaMetrics、Thanos Query）的地址")
    parser.add_argument("--store", default=os.environ.get("EINVOICE_REPORT_STORE", ""),
                        help="工单库 SQLAlchemy URL（与 notifier 的 database_url 相同）")
    parser.add_argument("--out", type=Path,
                        default=Path(os.environ.get("EINVOICE_REPORT_ARCHIVE", "archive")),
                        help="归档目录（写入 KIND/PERIOD.html|pdf|xlsx）")
    parser.add_argument("--no-pdf", action="store_true", help="只生成 HTML（和 xlsx）")
    parser.add_argument("--ticket", type=int, help="突发事件分析报告、故障定责证据包：工单编号")
    parser.add_argument("--system",
                        help="评级表：按系统评分（thresholds.yaml systems 的键）；省略为全平台")
    parser.add_argument("--edits", type=Path, help="突发事件分析报告：运维人员修改的章节（YAML）")
    parser.add_argument("--final", action="store_true", help="突发事件分析报告：标记为定稿")
    parser.add_argument("--window", help="容灾演练报告：演练窗口名称（drill_windows.yml 的 name）")
    parser.add_argument("--drill-windows", type=Path,
                        default=Path(os.environ["EINVOICE_REPORT_DRILL_WINDOWS"])
                        if os.environ.get("EINVOICE_REPORT_DRILL_WINDOWS") else None,
                        help="演练窗口文件（默认为本仓库的 alert_rules/drill_windows.yml）")
    parser.add_argument("--calendar", type=Path,
                        default=Path(os.environ["EINVOICE_REPORT_CALENDAR"])
                        if os.environ.get("EINVOICE_REPORT_CALENDAR") else None,
                        help="工作日历（notifier 的 calendar_file：节假日与调休上班日），用于评级表第 11 项")
    args = parser.parse_args(argv)
    formats = ("html",) if args.no_pdf else ("html", "pdf")
    if args.kind == "drill":
        if not args.window:
            raise ReportError("容灾演练报告需要 --window 演练窗口名称")
        return Options(args.kind, None, args.prometheus, "", args.out, formats, now,
                       window=args.window, drill_windows=args.drill_windows)
    if args.kind in TICKET_KINDS:
        if args.ticket is None:
            raise ReportError(f"{TITLES[args.kind]}需要 --ticket 工单编号")
        return Options(args.kind, None, args.prometheus, args.store, args.out, formats, now,
                       args.ticket, args.edits, args.final)
    wanted = PERIOD_KIND[args.kind].split("|")
    period = parse_period(args.period) if args.period else previous_period(args.previous or wanted[0], now)
    if period.kind not in wanted:
        forms = {"day": "日（如 2026-11-05）", "week": "周（如 2026-W48）", "month": "月（如 2026-11）",
                 "quarter": "季度（如 2026-Q4）",
                 "year": "年（如 2026）"}
        expected = "或".join(forms[kind] for kind in wanted)
        raise ReportError(f"{TITLES[args.kind]}的周期应为{expected}，收到 {period.label}")
    if args.system is not None and args.kind != "scorecard":
        raise ReportError("--system 只用于运维厂商考核评级表（scorecard）")
    return Options(args.kind, period, args.prometheus, args.store, args.out, formats, now,
                   drill_windows=args.drill_windows, system=args.system, calendar=args.calendar)


def main(argv: Sequence[str] | None = None, now: datetime | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for noisy in ("weasyprint", "fontTools"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
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
