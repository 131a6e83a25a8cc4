"""Rules of items 14, 16, 17, 18 and 19 (data checks, GoldenGate, scheduled jobs, business volumes,
sync queue): alert_rules/einvoice-data.rules.yml and its promtool tests.

The series are what the `sql` and `goldengate` collectors export. A value column `x` of a SQL check
is `einvoice_sql_x`; the ready-made checks of config/example.yml name their columns as listed in
`SQL_COLUMNS`, which is the contract between those templates and these rules. Thresholds come from
the `data:` section of thresholds.yaml; holidays (item 18) from the notifier's calendar file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from einvoice_core.catalogue import ITEMS
from einvoice_core.thresholds import Thresholds, duration_seconds

RULES_FILE = "einvoice-data.rules.yml"
CALENDAR = Path(__file__).resolve().parents[2] / "deploy" / "notifier" / "calendar.yml"

SQL_COLUMNS = {
    "14": ("data_count", "push_backlog", "push_oldest_unpushed_age_seconds", "push_failures"),
    "17": ("job_failures", "job_overdue_seconds", "job_broken"),
    "18": ("business_volume",),
    "19": ("sync_backlog", "sync_oldest_age_seconds"),
}
"""Value columns of the example.yml templates the rules below read (einvoice_sql_<column>)."""

IDENTITY = ("item", "zone", "check", "target")
_NAMES = {item.id: item.name_zh for item in ITEMS}


@dataclass
class DataAlert:
    """One alert rule and the two promtool cases (fires at `for`, quiet) generated with it."""

    name: str
    item: str
    severity: str
    expr: str
    for_: str
    summary: str
    description: str
    fire: list[tuple[str, str]]
    """(series, value) that make it fire."""
    quiet: list[tuple[str, str]]
    """(series, value) that must not."""
    exp_labels: dict[str, str] = field(default_factory=dict)
    """Labels of the fired alert besides severity."""


def _g(value: float) -> str:
    return f"{value:g}"


def _zh_seconds(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)} 小时"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)} 分钟"
    return f"{_g(seconds)} 秒"


def _zh_duration(text: str) -> str:
    return _zh_seconds(duration_seconds(text)) if duration_seconds(text) else "立即"


def _series(name: str, item: str, **labels: str) -> str:
    zone = next(i.zone for i in ITEMS if i.id == item)
    base = {"item": item, "zone": str(zone), "check": f"data_{item}", "target": "db.example:1521/EINV",
            **labels}
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in base.items()) + "}"


def _labels(item: str, **labels: str) -> dict[str, str]:
    zone = next(i.zone for i in ITEMS if i.id == item)
    return {"item": item, "zone": str(zone), "check": f"data_{item}", "target": "db.example:1521/EINV",
            **labels}


def alerts(th: Thresholds) -> list[DataAlert]:
    d = th.data
    i14, gg, jobs, sq = d.integrity, d.goldengate, d.jobs, d.sync_queue
    source = 'sum by (item, zone, dataset) (einvoice_sql_data_count{side="source"})'
    target = 'sum by (item, zone, dataset) (einvoice_sql_data_count{side="target"})'
    diff = f"abs({source} - {target})"
    mismatch_fire = [(_series("einvoice_sql_data_count", "14", query="counts_src", dataset="invoice",
                              side="source"), "100000"),
                     (_series("einvoice_sql_data_count", "14", query="counts_dst", dataset="invoice",
                              side="target"), "99000")]
    mismatch_quiet = [(mismatch_fire[0][0], "100000"), (mismatch_fire[1][0], "99995")]
    age = "einvoice_sql_push_oldest_unpushed_age_seconds"
    gg_lag = "(einvoice_goldengate_lag_seconds or einvoice_goldengate_heartbeat_lag_seconds)"
    gg_proc = {"process": "EXT1", "type": "extract"}
    running = 'einvoice_goldengate_process_status{status="running"} == 1'
    return [
        DataAlert(
            "EinvoiceDataCountMismatch", "14", "warning",
            f"{diff} > {_g(i14.count_mismatch_ratio)} * {source}\nand\n{diff} > {i14.count_mismatch_min}",
            i14.count_mismatch_for,
            "【14 数据检查】数据集 {{ $labels.dataset }} 源端与目标端记录数不一致",
            f"数据集 {{{{ $labels.dataset }}}} 源端与目标端的记录数"
            f"相差超过 {_g(i14.count_mismatch_ratio * 100)}%"
            f"（且多于 {i14.count_mismatch_min} 条）已持续 {_zh_duration(i14.count_mismatch_for)}。"
            "请检查 OGG 复制、推送任务与目标库写入是否中断。",
            mismatch_fire, mismatch_quiet, {"item": "14", "zone": "intranet", "dataset": "invoice"}),
        *[DataAlert(
            "EinvoiceDataPushStalled", "14", severity, f"{age} > {_g(limit)}"
            + (f" and {age} <= {_g(i14.oldest_unpushed_critical)}" if severity == "warning" else ""),
            i14.oldest_unpushed_for,
            "【14 数据检查】最早未推送数据已等待 " + _zh_seconds(limit) + " 以上",
            f"检查 {{{{ $labels.check }}}} 的查询 {{{{ $labels.query }}}} 显示最早一条未推送数据已等待超过"
            f" {_zh_seconds(limit)}，已持续 {_zh_duration(i14.oldest_unpushed_for)}。"
            "请检查推送任务是否运行、接收方接口是否可用。",
            [(_series(age, "14", query="push_backlog"), _g(value))],
            [(_series(age, "14", query="push_backlog"), "60")],
            _labels("14", query="push_backlog"))
          for severity, limit, value in (
              ("warning", i14.oldest_unpushed_warning, i14.oldest_unpushed_warning + 60),
              ("critical", i14.oldest_unpushed_critical, i14.oldest_unpushed_critical + 60))],
        DataAlert(
            "EinvoiceDataPushFailures", "14", "warning",
            f"einvoice_sql_push_failures >= {i14.push_failures_warning}", i14.push_failures_for,
            "【14 数据检查】数据推送失败",
            f"检查 {{{{ $labels.check }}}} 的查询 {{{{ $labels.query }}}} 统计到推送失败记录（不少于"
            f" {i14.push_failures_warning} 条）已持续 {_zh_duration(i14.push_failures_for)}。"
            f"请查看推送日志中的失败原因并重推。",
            [(_series("einvoice_sql_push_failures", "14", query="push_failures"), "3")],
            [(_series("einvoice_sql_push_failures", "14", query="push_failures"), "0")],
            _labels("14", query="push_failures")),
        DataAlert(
            "EinvoiceGoldenGateAbended", "16", "critical",
            'einvoice_goldengate_process_status{status="abended"} == 1', gg.abended_for,
            "【16 数据传输日志检查】OGG 进程 {{ $labels.process }} 异常终止（ABENDED）",
            "GoldenGate {{ $labels.type }} 进程 {{ $labels.process }} 处于 ABENDED 状态，数据复制已中断。"
            "请查看该进程的报告文件（ggserr.log、dirrpt）定位原因，修复后重启进程。",
            [(_series("einvoice_goldengate_process_status", "16", **gg_proc, status="abended"), "1")],
            [(_series("einvoice_goldengate_process_status", "16", **gg_proc, status="abended"), "0")],
            _labels("16", **gg_proc, status="abended")),
        *[DataAlert(
            "EinvoiceGoldenGateLagHigh", "16", severity, f"{gg_lag} > {_g(limit)}"
            + (f" and {gg_lag} <= {_g(gg.lag_critical)}" if severity == "warning" else ""),
            gg.lag_for,
            f"【16 数据传输日志检查】OGG 复制延迟超过 {_zh_seconds(limit)}",
            f"GoldenGate 进程或复制路径 {{{{ $labels.process }}}}{{{{ $labels.path }}}} 的延迟超过"
            f" {_zh_seconds(limit)} 已持续 {_zh_duration(gg.lag_for)}。"
            f"请检查源库日志量、网络与目标端应用速度。",
            [(_series("einvoice_goldengate_lag_seconds", "16", **gg_proc), _g(value))],
            [(_series("einvoice_goldengate_lag_seconds", "16", **gg_proc), "5")],
            _labels("16", **gg_proc))
          for severity, limit, value in (("warning", gg.lag_warning, gg.lag_warning + 10),
                                         ("critical", gg.lag_critical, gg.lag_critical + 10))],
        DataAlert(
            "EinvoiceGoldenGateCheckpointStale", "16", "warning",
            f"einvoice_goldengate_checkpoint_age_seconds > {_g(gg.checkpoint_age_warning)}\n"
            f"and on ({', '.join(IDENTITY)}, process, type)\n{running}", gg.checkpoint_age_for,
            "【16 数据传输日志检查】OGG 进程 {{ $labels.process }} 长时间未写检查点",
            f"运行中的 GoldenGate 进程 {{{{ $labels.process }}}} "
            f"超过 {_zh_seconds(gg.checkpoint_age_warning)}"
            f" 未更新检查点，已持续 {_zh_duration(gg.checkpoint_age_for)}。"
            f"进程可能卡住，请用 SEND … STATUS 查看。",
            [(_series("einvoice_goldengate_checkpoint_age_seconds", "16", **gg_proc), "3600"),
             (_series("einvoice_goldengate_process_status", "16", **gg_proc, status="running"), "1")],
            [(_series("einvoice_goldengate_checkpoint_age_seconds", "16", **gg_proc), "3600"),
             (_series("einvoice_goldengate_process_status", "16", **gg_proc, status="running"), "0")],
            _labels("16", **gg_proc)),
        DataAlert(
            "EinvoiceJobFailed", "17", "warning", "einvoice_sql_job_failures > 0", jobs.failed_for,
            "【17 业务数据自动任务检查】自动任务 {{ $labels.job }} 运行失败",
            "自动任务 {{ $labels.job }} 在检查窗口内有失败的运行记录。"
            "请查看调度日志（DBA_SCHEDULER_JOB_RUN_DETAILS 或任务日志表）中的错误并补跑。",
            [(_series("einvoice_sql_job_failures", "17", query="scheduler_jobs", job="PUSH_DAILY"), "1")],
            [(_series("einvoice_sql_job_failures", "17", query="scheduler_jobs", job="PUSH_DAILY"), "0")],
            _labels("17", query="scheduler_jobs", job="PUSH_DAILY")),
        DataAlert(
            "EinvoiceJobOverdue", "17", "warning",
            f"einvoice_sql_job_overdue_seconds > {_g(jobs.overdue_grace)}", jobs.overdue_for,
            "【17 业务数据自动任务检查】自动任务 {{ $labels.job }} 逾期未运行",
            f"自动任务 {{{{ $labels.job }}}} 已超过计划运行时间 {_zh_seconds(jobs.overdue_grace)} 仍未运行，"
            f"已持续 {_zh_duration(jobs.overdue_for)}。请检查调度器与任务所在会话。",
            [(_series("einvoice_sql_job_overdue_seconds", "17", query="scheduler_jobs", job="PUSH_DAILY"),
              _g(jobs.overdue_grace + 600))],
            [(_series("einvoice_sql_job_overdue_seconds", "17", query="scheduler_jobs", job="PUSH_DAILY"),
              "0")],
            _labels("17", query="scheduler_jobs", job="PUSH_DAILY")),
        DataAlert(
            "EinvoiceJobBroken", "17", "warning", "einvoice_sql_job_broken == 1", jobs.broken_for,
            "【17 业务数据自动任务检查】自动任务 {{ $labels.job }} 已失效或被禁用",
            "自动任务 {{ $labels.job }} 处于 BROKEN 或 DISABLED 状态，不会再按计划运行。"
            "请确认是否有意停用，否则重新启用。",
            [(_series("einvoice_sql_job_broken", "17", query="scheduler_jobs", job="PUSH_DAILY"), "1")],
            [(_series("einvoice_sql_job_broken", "17", query="scheduler_jobs", job="PUSH_DAILY"), "0")],
            _labels("17", query="scheduler_jobs", job="PUSH_DAILY")),
        DataAlert(
            "EinvoiceSyncQueueBacklog", "19", "warning",
            f"einvoice_sql_sync_backlog > {sq.backlog_warning}", sq.for_,
            "【19 数据同步接口监控】同步队列积压",
            f"同步队列（查询 {{{{ $labels.query }}}}）"
            f"积压超过 {sq.backlog_warning} 条已持续 {_zh_duration(sq.for_)}。"
            "请检查同步接口与消费程序。",
            [(_series("einvoice_sql_sync_backlog", "19", query="sync_queue"), _g(sq.backlog_warning + 1))],
            [(_series("einvoice_sql_sync_backlog", "19", query="sync_queue"), "10")],
            _labels("19", query="sync_queue")),
        DataAlert(
            "EinvoiceSyncQueueStale", "19", "warning",
            f"einvoice_sql_sync_oldest_age_seconds > {_g(sq.oldest_age_warning)}", sq.for_,
            "【19 数据同步接口监控】同步队列最早记录等待过久",
            f"同步队列（查询 {{{{ $labels.query }}}}）"
            f"中最早一条记录已等待超过 {_zh_seconds(sq.oldest_age_warning)}，"
            f"已持续 {_zh_duration(sq.for_)}。同步可能已停止。",
            [(_series("einvoice_sql_sync_oldest_age_seconds", "19", query="sync_queue"),
              _g(sq.oldest_age_warning + 60))],
            [(_series("einvoice_sql_sync_oldest_age_seconds", "19", query="sync_queue"), "30")],
            _labels("19", query="sync_queue")),
    ]


# --------------------------------------------------------------------------------------------
# Item 18: business volume against the same hour of previous weeks


def holiday_ranges(path: Path = CALENDAR) -> list[tuple[date, date]]:
    """Holidays of the notifier's calendar (`holidays:` entries with `date` or `start`/`end`)."""
    if not path.is_file():
        return []
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    ranges = []
    for index, entry in enumerate(data.get("holidays") or []):
        try:
            if "date" in entry:
                day = date.fromisoformat(str(entry["date"]))
                ranges.append((day, day))
            else:
                start, end = str(entry["start"]), str(entry["end"])
                ranges.append((date.fromisoformat(start), date.fromisoformat(end)))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: holidays[{index}] needs date or start/end dates ({exc})") from None
    return sorted(ranges)


def holiday_expr(ranges: list[tuple[date, date]], utc_offset_hours: int) -> str:
    """1 while the local date is a holiday, else 0 (dates compared as YYYYMMDD numbers)."""
    if not ranges:
        return "vector(0)"
    now = f"vector(time() + {utc_offset_hours * 3600})"
    today = f"(year({now}) * 10000 + month({now}) * 100 + day_of_month({now}))"

    def number(day: date) -> int:
        return day.year * 10000 + day.month * 100 + day.day

    terms = [f"({today} >= bool {number(a)}) * ({today} <= bool {number(b)})" for a, b in ranges]
    return "clamp_max(\n  " + "\n  + ".join(terms) + ",\n  1\n)"


def volume_rules(th: Thresholds, holidays: list[tuple[date, date]]) -> list[dict[str, Any]]:
    bv = th.data.business_volume
    current = "max by (item, zone, flow) (einvoice_sql_business_volume)"
    weeks = "\n  or ".join(
        f'label_replace(max by (item, zone, flow) (einvoice_sql_business_volume offset {w}w),'
        f' "weeks_ago", "{w}", "", "")' for w in range(1, bv.weeks + 1))
    return [
        {"record": "einvoice:business_volume", "expr": current},
        {"record": "einvoice:business_volume:baseline", "expr": _block(
            f"quantile without (weeks_ago) (0.5,\n  {weeks}\n)")},
        {"record": "einvoice:business_holiday", "expr": _block(holiday_expr(holidays, bv.utc_offset_hours))},
    ]


def volume_alerts(th: Thresholds) -> list[dict[str, Any]]:
    bv = th.data.business_volume
    not_holiday = "unless on () (einvoice:business_holiday == 1)"
    base = "einvoice:business_volume:baseline"
    vol = "einvoice:business_volume"
    desc = (f"与前 {bv.weeks} 周同一时段的中位数相比（基线低于 {_g(bv.floor)} 的安静时段与节假日不告警），"
            f"已持续 {_zh_duration(bv.for_)}。")
    return [
        _rule(th, "EinvoiceBusinessVolumeLow", "18", "warning",
              f"{vol} < {_g(bv.low_ratio)} * {base}\nand {base} >= {_g(bv.floor)}\n{not_holiday}", bv.for_,
              "【18 业务数据监控】{{ $labels.flow }} 业务量明显低于往常",
              f"业务量 {{{{ $labels.flow }}}} 低于往常的 {_g(bv.low_ratio * 100)}%，" + desc
              + "请确认开票/查验服务与数据推送是否正常。"),
        _rule(th, "EinvoiceBusinessVolumeHigh", "18", "warning",
              f"{vol} > {_g(bv.high_ratio)} * {base}\nand {base} >= {_g(bv.floor)}\n{not_holiday}", bv.for_,
              "【18 业务数据监控】{{ $labels.flow }} 业务量明显高于往常",
              f"业务量 {{{{ $labels.flow }}}} 超过往常的 {_g(bv.high_ratio)} 倍，" + desc
              + "请确认是否为征期高峰或异常重复提交。"),
    ]


# --------------------------------------------------------------------------------------------


class _Block(str):
    pass


def _block(text: str) -> str:
    return _Block(text + "\n") if "\n" in text else text


def _rule(th: Thresholds, name: str, item: str, severity: str, expr: str, for_: str, summary: str,
          description: str) -> dict[str, Any]:
    rule: dict[str, Any] = {"alert": name, "expr": _block(expr)}
    if duration_seconds(for_) > 0:
        rule["for"] = for_
    rule["labels"] = {"severity": severity}
    rule["annotations"] = {"summary": summary, "description": description,
                           "runbook_url": f"{th.runbook_url}#{name.lower()}"}
    return rule


def groups(th: Thresholds, holidays: list[tuple[date, date]] | None = None) -> list[dict[str, Any]]:
    found = holiday_ranges() if holidays is None else holidays
    return [
        {"name": "einvoice-data", "interval": th.evaluation_interval,
         "rules": [_rule(th, a.name, a.item, a.severity, a.expr, a.for_, a.summary, a.description)
                   for a in alerts(th)]},
        {"name": "einvoice-business-volume", "interval": th.evaluation_interval,
         "rules": [*volume_rules(th, found), *volume_alerts(th)]},
    ]


def _render(text: str, labels: dict[str, str]) -> str:
    return re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels.get(m.group(1), ""), text)


def _tests(th: Thresholds) -> dict[str, Any]:
    step = duration_seconds(th.evaluation_interval)
    cases = []
    for alert in alerts(th):
        for_s = duration_seconds(alert.for_)
        steps = int(for_s // step) + 3
        labels = {**alert.exp_labels, "severity": alert.severity}
        annotations = {"summary": _render(alert.summary, labels),
                       "description": _render(alert.description, labels),
                       "runbook_url": f"{th.runbook_url}#{alert.name.lower()}"}
        checks: list[dict[str, Any]] = []
        if for_s > 0:
            checks.append({"eval_time": f"{int(for_s - step)}s", "alertname": alert.name, "exp_alerts": []})
        checks.append({"eval_time": f"{int(for_s)}s", "alertname": alert.name,
                       "exp_alerts": [{"exp_labels": labels, "exp_annotations": annotations}]})
        cases.append({"name": f"{alert.name} ({alert.severity}) fires after {alert.for_}",
                      "interval": th.evaluation_interval,
                      "input_series": [{"series": s, "values": f"{v}x{steps}"} for s, v in alert.fire],
                      "alert_rule_test": checks})
        cases.append({"name": f"{alert.name} ({alert.severity}) stays quiet",
                      "interval": th.evaluation_interval,
                      "input_series": [{"series": s, "values": f"{v}x{steps}"} for s, v in alert.quiet],
                      "alert_rule_test": [{"eval_time": f"{int(for_s + step)}s", "alertname": alert.name,
                                           "exp_alerts": []}]})
    return {"rule_files": [f"../{RULES_FILE}"], "evaluation_interval": th.evaluation_interval,
            "tests": cases}


def _volume_tests(th: Thresholds) -> dict[str, Any]:
    """`weeks` weeks of hourly history, then a drop / a surge / quiet hours. Hourly samples evaluated
    on the hour: every instant and `offset Nw` lookup lands on a sample, and the test stays fast."""
    bv = th.data.business_volume
    history = bv.weeks * 7 * 24
    for_steps = max(1, -(-int(duration_seconds(bv.for_)) // 3600))
    usual = 1000.0
    low = usual * bv.low_ratio / 2
    high = usual * bv.high_ratio * 2
    quiet_hours = bv.floor / 2
    labels = {"item": "18", "zone": "intranet", "flow": "issued"}

    def series(value_now: float, value_before: float) -> list[dict[str, str]]:
        return [{"series": _series("einvoice_sql_business_volume", "18", query="volume", flow="issued"),
                 "values": f"{_g(value_before)}x{history - 1} {_g(value_now)}x{for_steps + 2}"}]

    def fired(name: str) -> dict[str, Any]:
        alert = next(r for r in volume_alerts(th) if r["alert"] == name)
        exp = {**labels, "severity": "warning"}
        return {"eval_time": f"{history + for_steps}h", "alertname": name, "exp_alerts": [{
            "exp_labels": exp,
            "exp_annotations": {k: _render(v, exp) for k, v in alert["annotations"].items()}}]}

    def pending(name: str) -> dict[str, Any]:
        return {"eval_time": f"{history + for_steps - 1}h", "alertname": name, "exp_alerts": []}

    return {"rule_files": [f"../{RULES_FILE}"], "evaluation_interval": "1h", "tests": [
        {"name": f"volume drops below {_g(bv.low_ratio)} of the {bv.weeks}-week median", "interval": "1h",
         "input_series": series(low, usual),
         "alert_rule_test": [
             pending("EinvoiceBusinessVolumeLow"), fired("EinvoiceBusinessVolumeLow"),
             {"eval_time": f"{history + for_steps}h", "alertname": "EinvoiceBusinessVolumeHigh",
              "exp_alerts": []}],
         "promql_expr_test": [{"expr": "einvoice:business_volume:baseline",
                               "eval_time": f"{history + for_steps}h",
                               "exp_samples": [{"labels": 'einvoice:business_volume:baseline{flow="issued",'
                                                'item="18",zone="intranet"}', "value": usual}]}]},
        {"name": f"volume surges above {_g(bv.high_ratio)} times the median", "interval": "1h",
         "input_series": series(high, usual),
         "alert_rule_test": [pending("EinvoiceBusinessVolumeHigh"), fired("EinvoiceBusinessVolumeHigh")]},
        {"name": "quiet hours under the floor do not alert", "interval": "1h",
         "input_series": series(0, quiet_hours),
         "alert_rule_test": [{"eval_time": f"{history + for_steps}h",
                              "alertname": "EinvoiceBusinessVolumeLow",
                              "exp_alerts": []}]},
    ]}


def files(th: Thresholds) -> dict[str, str]:
    """File name (under alert_rules/) -> content: the rule file and its two promtool test files."""
    from einvoice_core.generate.rules import HEADER, _Dumper

    _Dumper.add_representer(_Block, lambda dumper, value: dumper.represent_scalar(
        "tag:yaml.org,2002:str", value, style="|"))

    def dump(data: Any) -> str:
        return yaml.dump(data, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=1000)

    doc = ("# Items 14, 16, 17, 18, 19 (einvoice_core/generate/rules_data.py). Recording rules:\n"
           "#   einvoice:business_volume{item,zone,flow}           max of einvoice_sql_business_volume\n"
           "#   einvoice:business_volume:baseline{item,zone,flow}  median of the same time 1..N weeks ago\n"
           "#   einvoice:business_holiday                          1 on a holiday of the notifier calendar\n")
    return {
        RULES_FILE: HEADER + doc + dump({"groups": groups(th)}),
        "tests/data.test.yml": HEADER + dump(_tests(th)),
        "tests/data_volume.test.yml": HEADER + dump(_volume_tests(th)),
    }

